//! A data query whose result has over a million rows, run by `auditx
//! scheduler` and `auditx worker` processes on Redis, RabbitMQ and S3 over
//! HTTP: the result is streamed into S3 in parts, never held in memory —
//! the worker's peak RSS stays far below the result's size — and a worker
//! killed in the middle of a query loses nothing: the task is redelivered.

use std::time::Duration;

use auditx_lake::tables::{generate::generate_table, AUDIT_LOGIN_EVENT};
use auditx_proto::TenantId;
use auditx_tests::{Fleet, Sandbox, SandboxOptions};
use futures::StreamExt;

const ROWS: u64 = 1_500_000;
/// Peak resident memory allowed to the worker process.
const WORKER_RSS_LIMIT: u64 = 256 * 1024 * 1024;

/// Peak resident set size of a process (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_million_row_result_streams_through_a_worker_process_in_bounded_memory() {
    let sandbox = Sandbox::start(SandboxOptions {
        start_roles: false,
        row_group_rows: 50_000,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let tenant = TenantId::from("bulkq");
    let written = generate_table(
        &sandbox.backends.store,
        &sandbox.config.s3.lake_bucket,
        &tenant,
        &AUDIT_LOGIN_EVENT,
        ROWS,
        7,
        50_000,
    )
    .await
    .unwrap();
    assert_eq!(written, ROWS);

    let mut fleet = Fleet::distributed(&sandbox)
        .rows(5_000_000, 50_000)
        .workers(1)
        .start()
        .await;
    let mut worker = fleet.workers.remove(0).process;
    let worker_pid = worker.id().unwrap();

    let client = fleet.client(&sandbox.token("bulkq"));
    let job = client
        .submit_query("SELECT * FROM auditloginevent", "CSV", "NONE")
        .await
        .unwrap();
    let job = client
        .wait_query(job["id"].as_str().unwrap(), Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(job["queryStatus"], "completed", "{job}");
    assert_eq!(job["outputRows"], ROWS);

    // Stream the download and count its lines.
    let response = reqwest::get(job["dataFile"].as_str().unwrap())
        .await
        .unwrap();
    assert!(response.status().is_success());
    let mut body = response.bytes_stream();
    let (mut lines, mut bytes, mut pending) = (0u64, 0u64, Vec::new());
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        bytes += chunk.len() as u64;
        pending.extend_from_slice(&chunk);
        let last_newline = pending.iter().rposition(|b| *b == b'\n');
        if let Some(end) = last_newline {
            for line in pending[..end].split(|b| *b == b'\n') {
                if lines == 0 {
                    // `SELECT *` shows every column but `deleted`, which
                    // only a query naming it sees (readDeleted).
                    let header = AUDIT_LOGIN_EVENT
                        .columns
                        .iter()
                        .map(|(c, _)| *c)
                        .filter(|c| *c != "deleted")
                        .collect::<Vec<_>>()
                        .join(",");
                    assert_eq!(String::from_utf8_lossy(line), header);
                } else {
                    assert!(line.len() > 40, "{}", String::from_utf8_lossy(line));
                }
                lines += 1;
            }
            pending.drain(..=end);
        }
    }
    assert!(pending.is_empty(), "the file ends with a newline");
    assert_eq!(lines, ROWS + 1);

    let rss = peak_rss(worker_pid);
    println!(
        "result: {ROWS} rows, {bytes} bytes; worker peak RSS {} MiB",
        rss / (1024 * 1024)
    );
    assert!(
        bytes > WORKER_RSS_LIMIT,
        "the result ({bytes} bytes) must be larger than the RSS limit"
    );
    assert!(
        rss < WORKER_RSS_LIMIT,
        "worker peak RSS {} MiB",
        rss / (1024 * 1024)
    );

    // The same query again, its worker killed half-way: the broker hands
    // the task to a fresh worker, whose attempt becomes the result.
    let job = client
        .submit_query("SELECT * FROM auditloginevent", "JSON", "GZIP")
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while client.query_job(&id).await.unwrap()["queryStatus"] != "in_progress" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the query never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    worker.start_kill().unwrap();
    worker.wait().await.unwrap();
    assert_eq!(
        client.query_job(&id).await.unwrap()["queryStatus"],
        "in_progress",
        "the query ended before its worker was killed"
    );
    let _replacement = fleet.spawn_worker();
    let job = client
        .wait_query(&id, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(job["queryStatus"], "completed", "{job}");
    assert_eq!(job["outputRows"], ROWS);
    let gz = sandbox
        .download(job["dataFile"].as_str().unwrap())
        .await
        .unwrap();
    let mut json = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut json).unwrap();
    assert_eq!(json.lines().count() as u64, ROWS);
    let objects = sandbox
        .export_objects(&format!("bulkq/queries/{id}/"))
        .await
        .unwrap();
    assert_eq!(
        objects.len(),
        1,
        "only the winning attempt's object: {objects:?}"
    );
    sandbox.stop().await.unwrap();
}

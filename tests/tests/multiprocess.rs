//! The distributed mode: `auditx scheduler` and two `auditx worker`
//! processes against real RabbitMQ and Redis and S3 over HTTP export over a
//! million rows into several files — and a worker killed mid-export loses
//! nothing.

use std::time::Duration;

use auditx::client::ExportRequest;
use auditx_lake::audit_trail::generate::{audit_rows, run_rows, GenerateSpec};
use auditx_proto::{MeterId, TenantId};
use auditx_tests::expect::{self, Query};
use auditx_tests::verify::{assert_export_exact, assert_next_export_runs};
use auditx_tests::{Fleet, Sandbox, SandboxOptions};
use chrono::DateTime;

const FROM: &str = "2025-07-01T00:00:00Z";
const TO: &str = "2025-07-04T00:00:00Z";
const NEXT_TO: &str = "2025-07-01T12:00:00Z";
const FILE_ROWS: u64 = 300_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn separate_processes_export_a_million_rows_into_several_files_despite_a_killed_worker() {
    let sandbox = Sandbox::start(SandboxOptions {
        start_roles: false,
        row_group_rows: 50_000,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let spec = GenerateSpec {
        tenant: TenantId::from("bulk"),
        meter: MeterId(5),
        rows: 1_300_000,
        from_ms: DateTime::parse_from_rfc3339(FROM)
            .unwrap()
            .timestamp_millis(),
        to_ms: DateTime::parse_from_rfc3339(TO).unwrap().timestamp_millis(),
        error_rate: 0.01,
        seed: 99,
    };
    sandbox.generate(&spec, 400_000).await.unwrap();
    let query = Query {
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        from_ms: spec.from_ms,
        to_ms: spec.to_ms,
        ..Query::default()
    };
    let expected = expect::expected_lines(audit_rows(&spec), &run_rows(&spec), &query);
    assert!(
        expected.len() >= 1_000_000,
        "the export must hold a million rows: {}",
        expected.len()
    );

    // 10,000-row chunks (about 120): the export still has seconds to run
    // when three chunks are seen done (progress is saved every 0.5 s).
    let mut fleet = Fleet::distributed(&sandbox)
        .rows(FILE_ROWS, 10_000)
        .workers(2)
        .start()
        .await;
    let mut first_worker = fleet.workers.remove(0);

    let client = fleet.client(&sandbox.token("bulk"));
    let request = ExportRequest {
        meter_id: 5,
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        query_from_time: FROM.into(),
        query_to_time: TO.into(),
        ..ExportRequest::default()
    };
    let request_id = client.create_export(&request).await.unwrap();

    // Kill a worker once rendering is under way; a fresh one takes its place.
    let mut replacement = None;
    let mut killed = None;
    let job = client
        .wait(5, &request_id, Duration::from_secs(900), |job| {
            let done = job["progress"]["chunksDone"].as_u64().unwrap_or(0);
            if replacement.is_none() && done >= 3 {
                first_worker.process.start_kill().unwrap();
                killed = Some(std::time::Instant::now());
                replacement = Some(fleet.spawn_worker());
            }
        })
        .await
        .unwrap();
    assert!(
        replacement.is_some(),
        "the export finished before a worker could be killed"
    );
    eprintln!(
        "FAULT worker kill: the export finished {:.1} s after the kill ({} rows)",
        killed.unwrap().elapsed().as_secs_f64(),
        expected.len()
    );
    assert_eq!(job["status"], "FINISHED", "{job}");
    assert_eq!(job["count"], expected.len() as u64);

    let files = job["fileList"].as_array().unwrap().len();
    assert!(
        files >= 4,
        "{} rows in files of {FILE_ROWS} need 4+ files: {job}",
        expected.len()
    );
    assert_export_exact(&client, &sandbox, &job, &expected, FILE_ROWS).await;

    // The tenant's next export runs on the fleet that lost a worker.
    assert_next_export_runs(
        &client, &sandbox, &spec, &request, &query, NEXT_TO, FILE_ROWS,
    )
    .await;
    sandbox.stop().await.unwrap();
}

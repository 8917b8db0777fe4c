//! Data queries end to end on Redis + RabbitMQ + S3 over HTTP: the seed's
//! six sample queries over hand-made tables (downloaded results compared
//! with hand-written expectations), output formats and compression, tenant
//! isolation, refused statements, per-tenant limits, cancel and the
//! completion event.

use std::path::{Path, PathBuf};
use std::time::Duration;

use auditx::client::ApiClient;
use auditx_common::config::QueryConfig;
use auditx_tests::{Adapters, Sandbox, SandboxOptions};
use futures::StreamExt;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(120);

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../lake/tests/fixtures/seed")
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Ingests every `<table>.ndjson` fixture for `tenant` through the API.
async fn ingest_fixtures(sandbox: &Sandbox, tenant: &str) {
    let http = reqwest::Client::new();
    let mut ingested = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("ndjson") {
            continue;
        }
        let table = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let response = http
            .post(format!("{}/audit/tables/{table}/rows", sandbox.api))
            .bearer_auth(sandbox.token(tenant))
            .header("content-type", "application/x-ndjson")
            .body(std::fs::read(&path).unwrap())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "ingest {table}: {status} {body}");
        ingested += 1;
    }
    assert!(ingested >= 3, "fixtures not found in {:?}", fixtures());
}

/// Submits `sql`, waits for the query to end and returns the job.
async fn run(client: &ApiClient, sql: &str, format: &str, compression: &str) -> Value {
    let job = client.submit_query(sql, format, compression).await.unwrap();
    assert_eq!(job["queryStatus"], "accepted", "{job}");
    client
        .wait_query(job["id"].as_str().unwrap(), WAIT)
        .await
        .unwrap()
}

/// Runs `sql` and downloads its result through `dataFile`.
async fn result_of(
    sandbox: &Sandbox,
    client: &ApiClient,
    sql: &str,
    format: &str,
    compression: &str,
) -> Vec<u8> {
    let job = run(client, sql, format, compression).await;
    assert_eq!(job["queryStatus"], "completed", "{job}");
    sandbox
        .download(job["dataFile"].as_str().expect("dataFile"))
        .await
        .unwrap()
}

async fn sandbox(adapters: Adapters, workers: usize, query: QueryConfig) -> Sandbox {
    Sandbox::start(SandboxOptions {
        adapters,
        workers,
        query,
        ..SandboxOptions::default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_six_seed_queries_give_the_seed_semantics() {
    let sandbox = sandbox(Adapters::Real, 2, QueryConfig::default()).await;
    ingest_fixtures(&sandbox, "seed").await;
    let client = sandbox.client("seed");
    let mut events = sandbox
        .backends
        .queue
        .subscribe_events("query.completed.seed")
        .await
        .unwrap();
    for n in 1..=6 {
        let sql = fixture(&format!("q{n}.sql"));
        let expected = fixture(&format!("q{n}.expected.csv"));
        let job = run(&client, &sql, "CSV", "NONE").await;
        assert_eq!(job["queryStatus"], "completed", "q{n}: {job}");
        assert_eq!(job["query"], sql.as_str());
        assert_eq!(job["outputFormat"], "CSV");
        assert_eq!(
            job["outputRows"].as_u64().unwrap(),
            expected.lines().count() as u64 - 1,
            "q{n} outputRows"
        );
        let got = sandbox
            .download(job["dataFile"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), expected, "q{n} result");

        // Events are at least once (consumers dedupe on `id`) and carry
        // no order between queries: look for this query's.
        let event = loop {
            let delivery = tokio::time::timeout(WAIT, events.next())
                .await
                .expect("a completion event")
                .unwrap()
                .unwrap();
            let event: Value = serde_json::from_slice(&delivery.message.payload).unwrap();
            delivery.ack().await.unwrap();
            if event["subject"] == job["id"] {
                break event;
            }
            eprintln!(
                "skipping event {} while waiting for {}",
                event["id"], job["id"]
            );
        };
        assert_eq!(event["type"], "com.auditx.query.completed");
        assert_eq!(
            event["id"],
            format!("{}:completed", job["id"].as_str().unwrap())
        );
        assert_eq!(event["data"]["outputRows"], job["outputRows"]);
        let from_event = sandbox
            .download(event["data"]["dataFile"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(String::from_utf8(from_event).unwrap(), expected);
    }
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn results_come_as_json_lines_tsv_and_gzip() {
    let sandbox = sandbox(Adapters::InProcess, 1, QueryConfig::default()).await;
    ingest_fixtures(&sandbox, "fmt").await;
    let client = sandbox.client("fmt");
    let sql = "SELECT username AS Username, oldvalue AS OldValue, sequencenumber AS Seq, \
               timestamp AS Timestamp FROM auditsettingchangeevent \
               WHERE namespace = 'UserManagement' ORDER BY timestamp DESC, id LIMIT 2";
    let csv = String::from_utf8(result_of(&sandbox, &client, sql, "CSV", "NONE").await).unwrap();
    let mut csv_lines = csv.lines();
    assert_eq!(csv_lines.next(), Some("Username,OldValue,Seq,Timestamp"));
    let rows: Vec<Vec<&str>> = csv_lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2, "{csv}");

    let tsv = String::from_utf8(result_of(&sandbox, &client, sql, "TSV", "NONE").await).unwrap();
    let mut tsv_lines = tsv.lines();
    assert_eq!(tsv_lines.next(), Some("Username\tOldValue\tSeq\tTimestamp"));
    for (tsv_row, csv_row) in tsv_lines.zip(&rows) {
        assert_eq!(tsv_row.split('\t').collect::<Vec<_>>(), *csv_row);
    }

    let json = String::from_utf8(result_of(&sandbox, &client, sql, "JSON", "NONE").await).unwrap();
    let objects: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 2, "{json}");
    for (object, csv_row) in objects.iter().zip(&rows) {
        let keys: Vec<&String> = object.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["Username", "OldValue", "Seq", "Timestamp"]);
        assert_eq!(object["Username"], csv_row[0]);
        // NULL: an empty CSV field, a JSON null.
        if csv_row[1].is_empty() {
            assert_eq!(object["OldValue"], Value::Null);
        } else {
            assert_eq!(object["OldValue"], csv_row[1]);
        }
        assert_eq!(object["Seq"].as_i64().unwrap().to_string(), csv_row[2]);
        assert_eq!(object["Timestamp"], csv_row[3]);
    }

    let gz = result_of(&sandbox, &client, sql, "CSV", "GZIP").await;
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "a gzip stream");
    let mut unzipped = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut unzipped)
        .unwrap();
    assert_eq!(unzipped, csv);
    let job = run(&client, sql, "json", "gzip").await;
    assert_eq!(job["outputFormat"], "JSON");
    assert_eq!(job["compression"], "GZIP");
    sandbox.stop().await.unwrap();
}

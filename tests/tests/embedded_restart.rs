//! The embedded default keeps its state in its data folder: an
//! `auditx standalone` killed (SIGKILL) in the middle of an export and
//! started again on the same folder still knows its jobs, finishes the
//! interrupted export with exactly the expected rows, and still refuses
//! eventIds it was sent before — and eventIds that `auditx generate` wrote.

use std::time::Duration;

use auditx::client::{ApiClient, ExportRequest};
use auditx_lake::audit_trail::generate::{audit_rows, run_rows, GenerateSpec};
use auditx_proto::{MeterId, TenantId};
use auditx_tests::expect::{self, Query};
use auditx_tests::processes::run_auditx as run;
use auditx_tests::Fleet;
use chrono::DateTime;
use serde_json::{json, Value};

const FROM: &str = "2025-07-01T00:00:00Z";
const TO: &str = "2025-07-08T00:00:00Z";

/// `auditx standalone` on `data`. Small chunks one at a time: the export
/// runs long enough (hundreds of chunks, each with its own upload and
/// report) to be caught in the middle however fast a chunk renders.
async fn standalone(data: &str) -> Fleet {
    Fleet::standalone(data)
        .env("AUDITX_EXPORT__CHUNK_ROWS", "2000")
        .env("AUDITX_WORKER__CONCURRENCY", "1")
        .start()
        .await
}

async fn ingest(api: u16, token: &str, entries: &Value) -> Value {
    let answer = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{api}/meters/12/auditTrail/entries"
        ))
        .bearer_auth(token)
        .json(entries)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    answer.json::<Value>().await.unwrap()["data"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_standalone_resumes_its_jobs_and_keeps_its_dedupe() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let spec = GenerateSpec {
        tenant: TenantId::from("acme"),
        meter: MeterId(12),
        rows: 300_000,
        from_ms: DateTime::parse_from_rfc3339(FROM)
            .unwrap()
            .timestamp_millis(),
        to_ms: DateTime::parse_from_rfc3339(TO).unwrap().timestamp_millis(),
        error_rate: 0.02,
        seed: 9,
    };
    run(&[
        "generate",
        "--data-dir",
        data,
        "--tenant",
        "acme",
        "--meter",
        "12",
        "--rows",
        "300000",
        "--seed",
        "9",
        "--from",
        FROM,
        "--to",
        TO,
    ])
    .await;

    let mut server = standalone(data).await;
    let api = server.port;
    let token = run(&["token", "--data-dir", data, "--tenant", "acme"]).await;
    let token = token.trim();
    let client = ApiClient::new(&format!("http://127.0.0.1:{api}"), token);

    // One entry sent before the crash (an ERROR row: not in the export).
    let sent = json!([{
        "eventId": "sent-before-the-crash", "eventTime": "2025-07-02T10:00:00.000Z",
        "sessionId": "R-1", "runType": "NORMAL", "recordType": "ERROR",
        "payload": {"n": 1}
    }]);
    assert_eq!(ingest(api, token, &sent).await["accepted"], 1);

    let request = ExportRequest {
        meter_id: 12,
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        query_from_time: FROM.into(),
        query_to_time: TO.into(),
        ..ExportRequest::default()
    };
    let id = client.create_export(&request).await.unwrap();
    let mut running = false;
    for _ in 0..10_000 {
        let job = client.job(12, &id).await.unwrap();
        assert_ne!(job["status"], "FINISHED", "finished before the kill");
        if job["status"] == "RUNNING" && job["progress"]["chunksDone"].as_u64().unwrap_or(0) >= 1 {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(running, "the export never started");
    server.kill_scheduler().await;

    // Started again on the same folder: the job is there and finishes.
    server.restart_scheduler().await;
    let job = client
        .wait(12, &id, Duration::from_secs(300), |_| {})
        .await
        .unwrap();
    assert_eq!(job["status"], "FINISHED", "{job}");
    let query = Query {
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        from_ms: spec.from_ms,
        to_ms: spec.to_ms,
        ..Query::default()
    };
    let expected = expect::expected_lines(audit_rows(&spec), &run_rows(&spec), &query);
    let mut lines = Vec::new();
    for key in job["fileList"].as_array().unwrap() {
        let url = client.presigned_url(key.as_str().unwrap()).await.unwrap();
        let file = reqwest::get(url).await.unwrap().text().await.unwrap();
        let mut file_lines = expect::split_lines(&file);
        assert_eq!(file_lines.remove(0), expect::HEADER);
        lines.extend(file_lines);
    }
    assert_eq!(lines.len(), expected.len());
    assert!(
        lines == expected,
        "rows lost, duplicated or reordered across the restart"
    );

    // Dedupe survived the restart, and covers generated rows too.
    let generated = audit_rows(&spec).next().unwrap();
    let again = json!([
        sent[0].clone(),
        {
            "eventId": generated.event_id, "eventTime": generated.event_time_ms,
            "sessionId": generated.session_id, "runType": generated.run_type,
            "recordType": generated.record_type, "payload": {"resent": true}
        },
        {
            "eventId": "new-after-the-restart", "eventTime": "2025-07-02T10:00:00.000Z",
            "sessionId": "R-1", "runType": "NORMAL", "recordType": "ERROR", "payload": {}
        }
    ]);
    let summary = ingest(api, token, &again).await;
    assert_eq!(summary["accepted"], 1, "{summary}");
    assert_eq!(summary["duplicates"], 2, "{summary}");
    server.kill_scheduler().await;
}

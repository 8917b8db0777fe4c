//! A hot millisecond: 30,000 rows ingested with one `eventTime` (plus a few
//! around it) export exactly, in (`eventTime`, `eventId`) order, through
//! chunks of at most `chunk_rows` = 5,000 rows — the millisecond is split
//! by eventId into several chunks instead of one unbounded chunk.

use std::collections::BTreeMap;

use auditx::client::ExportRequest;
use auditx_lake::AuditRow;
use auditx_tests::expect;
use auditx_tests::{export_and_download, Adapters, Sandbox, SandboxOptions};
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

/// 2025-07-23T18:46:48.775Z: the hot millisecond.
const HOT: i64 = 1_753_296_408_775;
const HOT_ROWS: u64 = 30_000;
const CHUNK_ROWS: u64 = 5_000;

fn iso(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The hot millisecond's rows (eventIds in scrambled order) and 200 rows
/// spread over the seconds around it.
fn entries() -> Vec<(String, i64)> {
    let hot = (0..HOT_ROWS).map(|i| (format!("hot-{:06}", (i * 7_919) % HOT_ROWS), HOT));
    let around = (0..200i64).map(|i| (format!("cold-{i:03}"), HOT + (i - 100) * 37));
    hot.chain(around).collect()
}

fn body(batch: &[(String, i64)]) -> Vec<u8> {
    let rows: Vec<Value> = batch
        .iter()
        .map(|(id, time)| {
            json!({
                "eventId": id,
                "eventTime": iso(*time),
                "sessionId": "R-00000001",
                "runType": "NORMAL",
                "recordType": "SAMPLE",
                "operatorId": "op-1",
                "payload": {"id": id},
            })
        })
        .collect();
    serde_json::to_vec(&rows).unwrap()
}

fn as_row(id: &str, time: i64) -> AuditRow {
    AuditRow {
        tenant: "hot".into(),
        entity: None,
        org: None,
        meter_id: 9,
        session_id: "R-00000001".into(),
        run_type: "NORMAL".into(),
        record_type: "SAMPLE".into(),
        operator_id: Some("op-1".into()),
        operator_type: None,
        operator_name: None,
        event_id: id.into(),
        trace_id: None,
        event_time_ms: time,
        error_code: None,
        error_message: None,
        payload: Some(format!(r#"{{"id":"{id}"}}"#)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hot_millisecond_is_split_by_event_id_and_exports_exactly() {
    let sandbox = Sandbox::start(SandboxOptions {
        adapters: Adapters::InProcess,
        chunk_rows: CHUNK_ROWS,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let entries = entries();
    let http = reqwest::Client::new();
    for batch in entries.chunks(10_000) {
        let response = http
            .post(format!("{}/meters/9/auditTrail/entries", sandbox.api))
            .bearer_auth(sandbox.token("hot"))
            .header("Content-Type", "application/json")
            .body(body(batch))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert!(status.is_success(), "{status} {answer}");
    }

    let request = ExportRequest {
        meter_id: 9,
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        query_from_time: iso(HOT - 3_600_000),
        query_to_time: iso(HOT + 3_600_000),
        ..ExportRequest::default()
    };
    let exported = export_and_download(&sandbox, "hot", &request)
        .await
        .unwrap();

    let mut rows: Vec<AuditRow> = entries.iter().map(|(id, t)| as_row(id, *t)).collect();
    rows.sort_by(|a, b| (a.event_time_ms, &a.event_id).cmp(&(b.event_time_ms, &b.event_id)));
    let statuses = BTreeMap::new();
    let expected: Vec<String> = rows
        .iter()
        .map(|r| expect::csv_line(r, &statuses))
        .collect();
    let lines = exported.data_lines();
    assert_eq!(lines.len(), expected.len());
    assert!(lines == expected, "rows lost, duplicated or reordered");

    // The user sees the split: the 30,000 rows of one millisecond went
    // through at least six chunks (each at most ~chunk_rows rows), not one.
    let progress = &exported.job["progress"];
    let chunks = progress["chunksTotal"].as_u64().unwrap();
    assert!(
        chunks >= HOT_ROWS / CHUNK_ROWS,
        "{chunks} chunks for {HOT_ROWS} rows at one millisecond: {progress}"
    );
    assert!(
        chunks <= 2 * (HOT_ROWS + 200) / CHUNK_ROWS + 3,
        "{progress}"
    );
    assert_eq!(exported.job["count"], expected.len() as u64);
    sandbox.stop().await.unwrap();
}

//! Ingest load cannot starve export driving: while eight clients post
//! 5,000-row batches as fast as they are answered (more than the
//! scheduler's `ingest.max_concurrent` slots), an export of another tenant
//! runs to the end with every row exactly once. Ingest calls past the
//! slots wait, then get 429 with `Retry-After` — never a 5xx.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use auditx::client::ExportRequest;
use auditx_lake::audit_trail::generate::{audit_rows, run_rows, GenerateSpec};
use auditx_proto::{MeterId, TenantId};
use auditx_tests::expect::{self, Query};
use auditx_tests::{export_and_download, Adapters, Sandbox, SandboxOptions};
use chrono::DateTime;
use serde_json::{json, Value};

const FROM: &str = "2025-07-01T00:00:00Z";
const TO: &str = "2025-07-02T00:00:00Z";
const FLOODERS: usize = 8;
const BATCH: usize = 5_000;

fn batch(client: usize, round: u64) -> Vec<u8> {
    let rows: Vec<Value> = (0..BATCH)
        .map(|i| {
            json!({
                "eventId": format!("flood-{client}-{round}-{i}"),
                "eventTime": 1_751_328_000_000i64 + i as i64,
                "sessionId": "R-00000001",
                "runType": "NORMAL",
                "recordType": "SAMPLE",
                "operatorId": "op-1",
                "payload": {"client": client, "round": round, "i": i, "pad": "x".repeat(100)},
            })
        })
        .collect();
    serde_json::to_vec(&rows).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_export_finishes_exactly_while_ingest_is_flooded() {
    let sandbox = Sandbox::start(SandboxOptions {
        adapters: Adapters::InProcess,
        chunk_rows: 10_000,
        row_group_rows: 10_000,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let spec = GenerateSpec {
        tenant: TenantId::from("steady"),
        meter: MeterId(3),
        rows: 120_000,
        from_ms: DateTime::parse_from_rfc3339(FROM)
            .unwrap()
            .timestamp_millis(),
        to_ms: DateTime::parse_from_rfc3339(TO).unwrap().timestamp_millis(),
        error_rate: 0.02,
        seed: 5,
    };
    sandbox.generate(&spec, 60_000).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (accepted, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut flooders = Vec::new();
    for client in 0..FLOODERS {
        let (api, token) = (sandbox.api.clone(), sandbox.token("flood"));
        let (stop, accepted, refused) = (stop.clone(), accepted.clone(), refused.clone());
        flooders.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut round = 0;
            while !stop.load(Ordering::SeqCst) {
                let response = http
                    .post(format!("{api}/meters/1/auditTrail/entries"))
                    .bearer_auth(&token)
                    .header("Content-Type", "application/json")
                    .body(batch(client, round))
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let retry_after = response.headers().get("retry-after").cloned();
                let body: Value = response.json().await.unwrap();
                match status {
                    200 => accepted.fetch_add(1, Ordering::SeqCst),
                    429 => {
                        assert!(retry_after.is_some(), "429 without Retry-After: {body}");
                        refused.fetch_add(1, Ordering::SeqCst)
                    }
                    _ => panic!("ingest answered {status}: {body}"),
                };
                round += 1;
            }
        }));
    }

    let request = ExportRequest {
        meter_id: 3,
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        query_from_time: FROM.into(),
        query_to_time: TO.into(),
        ..ExportRequest::default()
    };
    let started = Instant::now();
    let exported = export_and_download(&sandbox, "steady", &request)
        .await
        .unwrap();
    let took = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    for flooder in flooders {
        tokio::time::timeout(Duration::from_secs(120), flooder)
            .await
            .expect("an ingest call hung")
            .unwrap();
    }
    let (accepted, refused) = (
        accepted.load(Ordering::SeqCst),
        refused.load(Ordering::SeqCst),
    );
    eprintln!(
        "INGEST FLOOD: export of {} rows finished in {:.1} s under {FLOODERS} ingest clients \
         ({accepted} batches of {BATCH} accepted, {refused} refused with 429)",
        exported.job["count"],
        took.as_secs_f64()
    );
    assert!(accepted > 0, "no ingest call was served during the export");

    let query = Query {
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        from_ms: spec.from_ms,
        to_ms: spec.to_ms,
        ..Query::default()
    };
    let expected = expect::expected_lines(audit_rows(&spec), &run_rows(&spec), &query);
    let lines = exported.data_lines();
    assert_eq!(lines.len(), expected.len());
    assert!(lines == expected, "rows lost, duplicated or reordered");
    sandbox.stop().await.unwrap();
}

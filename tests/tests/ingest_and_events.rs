//! Rows ingested through the API in shuffled, overlapping batches still
//! export in (`eventTime`, `eventId`) order, once each; and ended jobs
//! announce themselves on the RabbitMQ events exchange.

use std::io::Write;
use std::time::Duration;

use auditx::client::ExportRequest;
use auditx_lake::{AuditRow, RunRow};
use auditx_tests::expect::{self, Query};
use auditx_tests::{export_and_download, Sandbox, SandboxOptions};
use chrono::{TimeZone, Utc};
use flate2::write::GzEncoder;
use futures::StreamExt;
use serde_json::{json, Value};

const DAY_START_MS: i64 = 1_753_228_800_000; // 2025-07-23T00:00:00Z

fn iso(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// A deterministic spread of entries over one day, some sharing a millisecond.
fn entries() -> Vec<Value> {
    (0..3_000u64)
        .map(|i| {
            let scrambled = (i * 7_919) % 3_000;
            let time = DAY_START_MS + (scrambled as i64 / 2) * 28_000;
            let error = i % 5 == 0;
            json!({
                "eventId": format!("evt-{:05}", (i * 31) % 3_000),
                "eventTime": if i % 2 == 0 { json!(iso(time)) } else { json!(time) },
                "sessionId": format!("R-{:08}", 100 + i % 3),
                "runType": if i % 7 == 0 { "DEBUG" } else { "NORMAL" },
                "recordType": if error { "ERROR" } else { "SAMPLE" },
                "operatorId": format!("op-{}", i % 4),
                "operatorType": "Transform",
                "operatorName": "Rate, \"tiered\"",
                "errorCode": if error { json!("E42") } else { Value::Null },
                "errorMessage": if error { json!("quantity, \"unit\"\nmismatch") } else { Value::Null },
                "traceId": format!("{:032x}", i * 977),
                "payload": {"accountNumber": format!("A-{i}"), "quantity": i as f64 / 4.0, "nested": {"k": [1, 2]}},
            })
        })
        .collect()
}

fn as_row(entry: &Value) -> AuditRow {
    let text = |k: &str| entry[k].as_str().map(str::to_owned);
    let time = match &entry["eventTime"] {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis(),
        other => other.as_i64().unwrap(),
    };
    AuditRow {
        tenant: "ingest".into(),
        entity: None,
        org: None,
        meter_id: 77,
        session_id: text("sessionId").unwrap(),
        run_type: text("runType").unwrap(),
        record_type: text("recordType").unwrap(),
        operator_id: text("operatorId"),
        operator_type: text("operatorType"),
        operator_name: text("operatorName"),
        event_id: text("eventId").unwrap(),
        trace_id: text("traceId"),
        event_time_ms: time,
        error_code: text("errorCode"),
        error_message: text("errorMessage"),
        payload: Some(serde_json::to_string(&entry["payload"]).unwrap()),
    }
}

async fn post(
    sandbox: &Sandbox,
    path: &str,
    body: Vec<u8>,
    content_type: &str,
    gzip: bool,
) -> Value {
    let mut request = reqwest::Client::new()
        .post(format!("{}{path}", sandbox.api))
        .bearer_auth(sandbox.token("ingest"))
        .header("Content-Type", content_type);
    let body = if gzip {
        request = request.header("Content-Encoding", "gzip");
        let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&body).unwrap();
        encoder.finish().unwrap()
    } else {
        body
    };
    let response = request.body(body).send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {body}");
    body["data"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shuffled_overlapping_batches_export_in_order_once_each() {
    let sandbox = Sandbox::start(SandboxOptions {
        chunk_rows: 300,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let entries = entries();
    // Six batches of 600, each overlapping the previous by 100 entries (re-sent).
    let mut accepted = 0;
    for (n, start) in (0..3_000usize).step_by(500).enumerate() {
        let batch = &entries[start.saturating_sub(100)..(start + 500).min(3_000)];
        let data = match n % 3 {
            0 => {
                post(
                    &sandbox,
                    "/meters/77/auditTrail/entries",
                    serde_json::to_vec(batch).unwrap(),
                    "application/json",
                    false,
                )
                .await
            }
            1 => {
                let ndjson: String = batch.iter().map(|e| format!("{e}\n")).collect();
                post(
                    &sandbox,
                    "/meters/77/auditTrail/entries",
                    ndjson.into_bytes(),
                    "application/x-ndjson",
                    false,
                )
                .await
            }
            _ => {
                post(
                    &sandbox,
                    "/meters/77/auditTrail/entries",
                    serde_json::to_vec(batch).unwrap(),
                    "application/json",
                    true,
                )
                .await
            }
        };
        accepted += data["accepted"].as_u64().unwrap();
    }
    assert_eq!(accepted, 3_000, "every eventId is kept exactly once");

    let runs = [
        ("R-00000100", "COMPLETED"),
        ("R-00000101", "FAILED"),
        ("R-00000102", "RUNNING"),
    ];
    let run_entries: Vec<Value> = runs
        .iter()
        .map(|(s, status)| json!({"sessionId": s, "runType": "NORMAL", "status": status, "updatedAt": iso(DAY_START_MS)}))
        .collect();
    post(
        &sandbox,
        "/meters/77/runs",
        serde_json::to_vec(&run_entries).unwrap(),
        "application/json",
        false,
    )
    .await;
    let run_rows: Vec<RunRow> = runs
        .iter()
        .map(|(s, status)| RunRow {
            tenant: "ingest".into(),
            meter_id: 77,
            session_id: s.to_string(),
            run_type: "NORMAL".into(),
            status: status.to_string(),
            updated_at_ms: DAY_START_MS,
        })
        .collect();

    let mut rows: Vec<AuditRow> = entries.iter().map(as_row).collect();
    rows.sort_by(|a, b| (a.event_time_ms, &a.event_id).cmp(&(b.event_time_ms, &b.event_id)));
    for export_type in ["SAMPLE", "ERROR"] {
        let query = Query {
            export_type: export_type.into(),
            run_type: "NORMAL".into(),
            from_ms: DAY_START_MS,
            to_ms: DAY_START_MS + 24 * 3600 * 1000,
            ..Query::default()
        };
        let expected = expect::expected_lines(rows.clone().into_iter(), &run_rows, &query);
        assert!(expected.len() > 400);
        let request = ExportRequest {
            meter_id: 77,
            export_type: export_type.into(),
            run_type: "NORMAL".into(),
            query_from_time: iso(query.from_ms),
            query_to_time: iso(query.to_ms),
            ..ExportRequest::default()
        };
        let exported = export_and_download(&sandbox, "ingest", &request)
            .await
            .unwrap();
        assert_eq!(exported.data_lines(), expected, "{export_type} export");
    }
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finished_and_canceled_jobs_publish_cloudevents_on_rabbitmq() {
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    let mut events = sandbox
        .backends
        .queue
        .subscribe_events("export.*.events")
        .await
        .unwrap();
    let entries: Vec<Value> = entries().into_iter().take(200).collect();
    post_as(&sandbox, "events", &entries).await;

    let client = sandbox.client("events");
    let request = ExportRequest {
        meter_id: 77,
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        query_from_time: iso(DAY_START_MS),
        query_to_time: iso(DAY_START_MS + 24 * 3600 * 1000),
        ..ExportRequest::default()
    };
    let first = client.create_export(&request).await.unwrap();
    let second = client.create_export(&request).await.unwrap();
    // The second one waits for the tenant's lease: cancel it while PENDING.
    let canceled = reqwest::Client::new()
        .delete(format!(
            "{}/meters/77/auditTrail/export/{second}",
            sandbox.api
        ))
        .bearer_auth(sandbox.token("events"))
        .send()
        .await
        .unwrap();
    assert!(canceled.status().is_success());
    let job = client
        .wait(77, &first, Duration::from_secs(120), |_| {})
        .await
        .unwrap();
    assert_eq!(job["status"], "FINISHED");

    let mut seen = std::collections::BTreeMap::new();
    while seen.len() < 2 {
        let delivery = tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .expect("an event within 30 s")
            .unwrap()
            .unwrap();
        let event: Value = serde_json::from_slice(&delivery.message.payload).unwrap();
        delivery.ack().await.unwrap();
        seen.insert(event["subject"].as_str().unwrap().to_owned(), event);
    }
    let finished = &seen[&first];
    assert_eq!(finished["specversion"], "1.0");
    assert_eq!(finished["type"], "com.auditx.export.finished");
    assert_eq!(finished["data"]["status"], "FINISHED");
    assert_eq!(finished["data"]["tenant"], "events");
    assert_eq!(finished["data"]["meterId"], 77);
    assert_eq!(finished["data"]["count"], job["count"]);
    // The API shows keys without the tenant, as Zuora's reference does; the
    // event carries the object keys.
    let with_tenant = |key: &Value| json!(format!("events/{}", key.as_str().unwrap()));
    let listed: Vec<Value> = job["fileList"]
        .as_array()
        .unwrap()
        .iter()
        .map(with_tenant)
        .collect();
    assert_eq!(finished["data"]["fileList"], json!(listed));
    assert_eq!(
        finished["data"]["manifestKey"],
        with_tenant(&job["manifestKey"])
    );
    let url = finished["data"]["files"][0]["url"].as_str().unwrap();
    let file = sandbox.download(url).await.unwrap();
    assert!(
        file.starts_with(expect::HEADER.as_bytes()),
        "the event's presigned URL downloads the file"
    );
    let canceled = &seen[&second];
    assert_eq!(canceled["type"], "com.auditx.export.canceled");
    assert_eq!(canceled["data"]["status"], "CANCELED");
    assert_ne!(canceled["id"], finished["id"]);
    sandbox.stop().await.unwrap();
}

/// Payloads are exported exactly as they were sent: numbers as written
/// (not through f64), key order and unicode escapes kept; only the
/// whitespace between tokens goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payloads_export_as_sent_numbers_key_order_and_escapes_kept() {
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    // Written by hand: serde_json would normalize the very numbers under test.
    let sent = [
        (
            "p-1",
            r#"{"price": 1.10, "count" : 1e2}"#,
            r#"{"price":1.10,"count":1e2}"#,
        ),
        (
            "p-2",
            "{\n  \"big\": 123456789012345678901234567890,\n  \"neg\": -0.0\n}",
            r#"{"big":123456789012345678901234567890,"neg":-0.0}"#,
        ),
        (
            "p-3",
            r#"{"zeta": {"b": 2, "a": [1, {"y": "caf\u00e9 \u2603", "x": "say \"hi\",  twice"}]}, "alpha": null, "mid": 1E-7}"#,
            r#"{"zeta":{"b":2,"a":[1,{"y":"caf\u00e9 \u2603","x":"say \"hi\",  twice"}]},"alpha":null,"mid":1E-7}"#,
        ),
    ];
    let body: Vec<String> = sent
        .iter()
        .enumerate()
        .map(|(i, (id, payload, _))| {
            format!(
                r#"{{"eventId":"{id}","eventTime":{time},"sessionId":"R-1","runType":"NORMAL","recordType":"SAMPLE","payload":{payload}}}"#,
                time = DAY_START_MS + i as i64 * 1000
            )
        })
        .collect();
    let data = post(
        &sandbox,
        "/meters/77/auditTrail/entries",
        body.join("\n").into_bytes(),
        "application/x-ndjson",
        false,
    )
    .await;
    assert_eq!(data["accepted"], 3, "{data}");

    let request = ExportRequest {
        meter_id: 77,
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        query_from_time: iso(DAY_START_MS),
        query_to_time: iso(DAY_START_MS + 3600 * 1000),
        ..ExportRequest::default()
    };
    let exported = export_and_download(&sandbox, "ingest", &request)
        .await
        .unwrap();
    let lines = exported.data_lines();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for ((id, _, payload), line) in sent.iter().zip(&lines) {
        // The payload is the last column, quoted, its quotes doubled.
        let cell = format!(",\"{}\"\n", payload.replace('"', "\"\""));
        assert!(line.starts_with(&format!("{id},")), "{line}");
        assert!(
            line.ends_with(&cell),
            "{id}: {line} does not end with {cell}"
        );
    }
    sandbox.stop().await.unwrap();
}

async fn post_as(sandbox: &Sandbox, tenant: &str, entries: &[Value]) {
    let response = reqwest::Client::new()
        .post(format!("{}/meters/77/auditTrail/entries", sandbox.api))
        .bearer_auth(sandbox.token(tenant))
        .json(entries)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
}

//! The ingest routes: JSON / NDJSON batches, gzip, limits and validation.

mod api_support;

use std::io::Write;
use std::time::Duration;

use api_support::{authed, in_an_hour, token_for, TestApi};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::json;

const ENTRIES: &str = "/meters/9/auditTrail/entries";

fn entry(event_id: &str, event_time: serde_json::Value) -> serde_json::Value {
    json!({
        "eventId": event_id,
        "eventTime": event_time,
        "sessionId": "R-00000001",
        "runType": "NORMAL",
        "recordType": "SAMPLE",
        "operatorId": "op-1",
        "payload": { "amount": 3 },
    })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn post(uri: &str, content_type: &str) -> axum::http::request::Builder {
    authed(Method::POST, uri).header(header::CONTENT_TYPE, content_type)
}

#[tokio::test]
async fn batches_are_ingested_once_per_event_id() {
    let api = TestApi::start().await;
    let ndjson = [
        entry("e1", json!("2025-07-01T10:00:00.000Z")),
        entry("e2", json!(1_751_364_000_000_i64)),
        entry("e3", json!("2025-07-01T12:00:00+02:00")),
    ]
    .iter()
    .map(|e| e.to_string())
    .collect::<Vec<_>>()
    .join("\n");
    let send = |body: Vec<u8>| {
        let request = post(ENTRIES, "application/x-ndjson")
            .header(header::CONTENT_ENCODING, "gzip")
            .body(Body::from(body))
            .unwrap();
        api.send(request)
    };
    let first = send(gzip(ndjson.as_bytes())).await.data();
    assert_eq!(
        first,
        json!({ "received": 3, "accepted": 3, "duplicates": 0 })
    );
    let again = send(gzip(ndjson.as_bytes())).await.data();
    assert_eq!(
        again,
        json!({ "received": 3, "accepted": 0, "duplicates": 3 })
    );

    let array = json!([entry("e4", json!("2025-07-01T13:00:00Z"))]).to_string();
    let request = post(ENTRIES, "application/json; charset=utf-8")
        .body(Body::from(array))
        .unwrap();
    assert_eq!(
        api.send(request).await.data(),
        json!({ "received": 1, "accepted": 1, "duplicates": 0 })
    );
}

#[tokio::test]
async fn run_status_changes_are_ingested() {
    let api = TestApi::start().await;
    let runs = json!([
        { "sessionId": "R-1", "runType": "NORMAL", "status": "RUNNING",
          "updatedAt": "2025-07-01T10:00:00Z" },
        { "sessionId": "R-1", "runType": "NORMAL", "status": "COMPLETED",
          "updatedAt": 1_751_364_000_000_i64 },
    ]);
    let request = post("/meters/9/runs", "application/json")
        .body(Body::from(runs.to_string()))
        .unwrap();
    assert_eq!(
        api.send(request).await.data(),
        json!({ "received": 2, "accepted": 2, "duplicates": 0 })
    );
}

#[tokio::test]
async fn an_invalid_row_rejects_the_batch_naming_row_and_field() {
    let api = TestApi::start().await;
    let batch = json!([
        entry("e1", json!("2025-07-01T10:00:00Z")),
        entry("e2", json!("yesterday"))
    ]);
    let request = post(ENTRIES, "application/json")
        .body(Body::from(batch.to_string()))
        .unwrap();
    api.send(request).await.assert_error(
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER",
        "row 1: eventTime: \"yesterday\" is not an ISO-8601 time with zone or epoch milliseconds",
    );
    let runs =
        json!([{ "sessionId": "R-1", "runType": "NORMAL", "status": "DONE", "updatedAt": 1 }]);
    let request = post("/meters/9/runs", "application/json")
        .body(Body::from(runs.to_string()))
        .unwrap();
    let response = api.send(request).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    let message = response.json()["reasons"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.starts_with("row 0: status: \"DONE\" is not one of NEVER_RUN"),
        "{message}"
    );

    // Nothing of the rejected batch was written: e1 is still new.
    let batch = json!([entry("e1", json!("2025-07-01T10:00:00Z"))]);
    let request = post(ENTRIES, "application/json")
        .body(Body::from(batch.to_string()))
        .unwrap();
    assert_eq!(api.send(request).await.data()["accepted"], 1);
}

#[tokio::test]
async fn oversize_bodies_are_refused_before_and_after_inflating() {
    let api = TestApi::with_config(|config| config.ingest.max_body_bytes = 1000).await;
    let batch: Vec<_> = (0..50)
        .map(|i| entry(&format!("e{i}"), json!(1_751_364_000_000_i64 + i)))
        .collect();
    let batch = serde_json::to_vec(&batch).unwrap();
    let compressed = gzip(&batch);
    assert!(
        batch.len() > 1000 && compressed.len() < 1000,
        "{} / {}",
        batch.len(),
        compressed.len()
    );

    let request = post(ENTRIES, "application/json")
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from(compressed))
        .unwrap();
    api.send(request).await.assert_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        "request body exceeds 1000 bytes",
    );
    let request = post(ENTRIES, "application/json")
        .body(Body::from(batch))
        .unwrap();
    api.send(request).await.assert_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        "request body exceeds 1000 bytes",
    );
}

#[tokio::test]
async fn media_types_and_encodings_are_checked() {
    let api = TestApi::start().await;
    let body = || Body::from(json!([entry("e1", json!(1))]).to_string());
    let request = post(ENTRIES, "text/plain").body(body()).unwrap();
    api.send(request).await.assert_error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
        "Content-Type: \"text/plain\" is not one of application/json, application/x-ndjson",
    );
    let request = post(ENTRIES, "application/json")
        .header(header::CONTENT_ENCODING, "br")
        .body(body())
        .unwrap();
    api.send(request).await.assert_error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
        "Content-Encoding: \"br\" is not supported (use gzip)",
    );
    let request = post(ENTRIES, "application/json")
        .header(header::CONTENT_ENCODING, "gzip")
        .body(body())
        .unwrap();
    let response = api.send(request).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    let message = response.json()["reasons"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.starts_with("body is not valid gzip"), "{message}");
}

#[tokio::test]
async fn ingest_needs_one_entity_when_the_token_has_several() {
    let api = TestApi::start().await;
    let token = token_for("acme", &["e1", "e2"], &[], in_an_hour());
    let request = |entity: Option<&str>| {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(ENTRIES)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(entity) = entity {
            request = request.header("Zuora-Entity-Ids", entity);
        }
        request
            .body(Body::from(json!([entry("x1", json!(1))]).to_string()))
            .unwrap()
    };
    api.send(request(None)).await.assert_error(
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER",
        "Zuora-Entity-Ids: name exactly one of e1, e2 for this call",
    );
    api.send(request(Some("e3"))).await.assert_error(
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
        "Zuora-Entity-Ids: \"e3\" is not allowed for this token",
    );
    assert_eq!(api.send(request(Some("e2"))).await.data()["accepted"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_concurrent_ingests_a_call_waits_then_gets_429_with_retry_after() {
    let api = TestApi::with_config(|config| {
        config.ingest.max_concurrent = 1;
        config.ingest.max_wait_ms = 50;
    })
    .await;
    // The ingest of meter 9 takes the only slot, then waits for its meter's
    // ingest lease, held here.
    let lease = api
        .services
        .state
        .try_acquire_lease("lease/ingest/acme/9", "test", Duration::from_secs(60))
        .await
        .unwrap()
        .expect("the lease is free");
    let batch = |id: &str| json!([entry(id, json!(1_751_364_000_000_i64))]).to_string();
    let held = async {
        let request = post(ENTRIES, "application/json")
            .body(Body::from(batch("held")))
            .unwrap();
        api.send(request).await
    };
    let probe = async {
        // Meter 10 is not leased: it only waits for the slot.
        let mut refused = None;
        for attempt in 0..200 {
            let request = post("/meters/10/auditTrail/entries", "application/json")
                .body(Body::from(batch(&format!("probe-{attempt}"))))
                .unwrap();
            let response = api.send(request).await;
            if response.status == StatusCode::TOO_MANY_REQUESTS {
                refused = Some(response);
                break;
            }
            assert_eq!(response.status, StatusCode::OK, "{}", response.text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let refused = refused.expect("a call past the bound is refused");
        refused.assert_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            "ingest: this scheduler is busy with other batches (waited 50 ms); retry later",
        );
        assert_eq!(refused.headers[header::RETRY_AFTER], "1");
        // Table rows share the bound.
        let request = post("/audit/tables/auditloginevent/rows", "application/json")
            .body(Body::from(r#"[{"id":"l1"}]"#))
            .unwrap();
        assert_eq!(
            api.send(request).await.status,
            StatusCode::TOO_MANY_REQUESTS
        );
        api.services.state.release_lease(&lease).await.unwrap();
    };
    let (held, ()) = tokio::join!(held, probe);
    assert_eq!(held.data()["accepted"], 1, "{}", held.text());
    // The slot is free again.
    let request = post("/meters/10/auditTrail/entries", "application/json")
        .body(Body::from(batch("after")))
        .unwrap();
    assert_eq!(api.send(request).await.data()["accepted"], 1);
}

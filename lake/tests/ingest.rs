//! Ingest as a client sees it: what a batch may contain, the message a bad
//! batch gets, and that retries and repeats keep one row per eventId.

mod support;

use std::io::Write;

use auditx_common::state::MemoryStore;
use auditx_lake::audit_trail::ingest::{
    ingest_audit, ingest_runs, parse_audit_entries, parse_run_entries, IngestContext,
};
use auditx_lake::audit_trail::read::{latest_statuses, read_runs};
use auditx_lake::batch::{decode_body, IngestError, IngestSummary};
use auditx_lake::AuditRow;
use flate2::write::GzEncoder;
use flate2::Compression;
use support::{lake, read_all, tenant, Lake, DAY_MS, METER};

fn ctx() -> IngestContext {
    IngestContext {
        tenant: tenant(),
        entity: Some("entity-1".into()),
        org: None,
        meter: METER,
    }
}

/// A valid entry; `extra` fields are added or override.
fn entry(event_id: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut entry = serde_json::json!({
        "eventId": event_id,
        "eventTime": "2025-07-23T18:46:48.775Z",
        "sessionId": "R-00002283",
        "runType": "NORMAL",
        "recordType": "SAMPLE",
    });
    entry
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    entry
}

fn array(entries: &[serde_json::Value]) -> Vec<u8> {
    serde_json::to_vec(entries).unwrap()
}

/// The message a client gets for a batch with `bad` as its row 1.
fn rejection(bad: serde_json::Value) -> String {
    let body = array(&[entry("ok", serde_json::json!({})), bad]);
    parse_audit_entries(&body, &ctx()).unwrap_err().to_string()
}

#[test]
fn a_full_entry_is_kept_as_sent() {
    let body = array(&[entry(
        "e-1",
        serde_json::json!({
            "eventTime": "2025-07-23T20:46:48.775+02:00",
            "recordType": "ERROR",
            "operatorId": "op-3", "operatorType": "Transform", "operatorName": "Enrich Account",
            "errorCode": "ACCOUNT_NOT_FOUND", "errorMessage": "Account \"A1\" not found,\nskipped",
            "traceId": "0af7651916cd43dd8448eb211c80319c",
            "payload": {"zeta": 1, "alpha": {"y": [1, 2], "b": null}, "unit": "GB"},
        }),
    )]);
    let rows = parse_audit_entries(&body, &ctx()).unwrap();
    assert_eq!(
        rows,
        vec![AuditRow {
            tenant: "acme".into(),
            entity: Some("entity-1".into()),
            org: None,
            meter_id: 7,
            session_id: "R-00002283".into(),
            run_type: "NORMAL".into(),
            record_type: "ERROR".into(),
            operator_id: Some("op-3".into()),
            operator_type: Some("Transform".into()),
            operator_name: Some("Enrich Account".into()),
            event_id: "e-1".into(),
            trace_id: Some("0af7651916cd43dd8448eb211c80319c".into()),
            event_time_ms: 1_753_296_408_775,
            error_code: Some("ACCOUNT_NOT_FOUND".into()),
            error_message: Some("Account \"A1\" not found,\nskipped".into()),
            payload: Some(r#"{"zeta":1,"alpha":{"y":[1,2],"b":null},"unit":"GB"}"#.into()),
        }]
    );
}

#[test]
fn payloads_are_kept_as_written_not_through_f64() {
    let head =
        r#""eventId":"e","eventTime":1,"sessionId":"R","runType":"NORMAL","recordType":"SAMPLE""#;
    let cases = [
        (r#"{"a": 1.10, "b": 1e2}"#, r#"{"a":1.10,"b":1e2}"#),
        (
            r#"{ "n" : 123456789012345678901234567890 , "z": -0.0 }"#,
            r#"{"n":123456789012345678901234567890,"z":-0.0}"#,
        ),
        (
            "{\"z\":{\"y\":1,\"b\":[ 2 ,\n3 ]},\"a\":\"caf\\u00e9  \\\" ,\"}",
            r#"{"z":{"y":1,"b":[2,3]},"a":"caf\u00e9  \" ,"}"#,
        ),
    ];
    for (sent, kept) in cases {
        let body = format!("[{{{head},\"payload\":{sent}}}]");
        let rows = parse_audit_entries(body.as_bytes(), &ctx()).unwrap();
        assert_eq!(rows[0].payload.as_deref(), Some(kept), "{sent}");
    }
}

#[test]
fn times_may_be_iso_with_any_zone_or_epoch_milliseconds() {
    for time in [
        serde_json::json!(1_753_296_408_775i64),
        serde_json::json!("2025-07-23T18:46:48.775Z"),
        serde_json::json!("2025-07-23T13:46:48.775-05:00"),
        serde_json::json!("2025-07-23T18:46:48.775+0000"),
    ] {
        let body = array(&[entry("e", serde_json::json!({ "eventTime": time }))]);
        assert_eq!(
            parse_audit_entries(&body, &ctx()).unwrap()[0].event_time_ms,
            1_753_296_408_775,
            "{time}"
        );
    }
}

#[test]
fn ndjson_with_blank_lines_and_nulls_for_absent_fields() {
    let body = b"{\"eventId\":\"a\",\"eventTime\":1000,\"sessionId\":\"R-1\",\"runType\":\"DEBUG\",\"recordType\":\"SAMPLE\",\"errorCode\":null,\"operatorId\":\"\"}\r\n\n   \n{\"eventId\":\"b\",\"eventTime\":2000,\"sessionId\":\"R-1\",\"runType\":\"NORMAL\",\"recordType\":\"SAMPLE\"}\n";
    let rows = parse_audit_entries(body, &ctx()).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.event_id.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(
        (
            rows[0].error_code.clone(),
            rows[0].operator_id.clone(),
            rows[0].payload.clone()
        ),
        (None, None, None)
    );
    assert_eq!(rows[0].run_type, "DEBUG");
    assert!(parse_audit_entries(b"", &ctx()).unwrap().is_empty());
    assert!(parse_audit_entries(b" [ ] ", &ctx()).unwrap().is_empty());
}

#[test]
fn every_invalid_field_is_named_with_its_row() {
    use serde_json::json;
    let cases = [
        (json!({"eventId": null}), "row 1: eventId: is required"),
        (json!({"eventId": ""}), "row 1: eventId: must not be empty"),
        (json!({"eventId": 5}), "row 1: eventId: expected a string, found 5"),
        (
            json!({"eventTime": "yesterday"}),
            "row 1: eventTime: \"yesterday\" is not an ISO-8601 time with zone or epoch milliseconds",
        ),
        (
            json!({"eventTime": "2025-07-23T18:46:48"}),
            "row 1: eventTime: \"2025-07-23T18:46:48\" is not an ISO-8601 time with zone or epoch milliseconds",
        ),
        (json!({"eventTime": 1.5}), "row 1: eventTime: 1.5 is not an ISO-8601 time with zone or epoch milliseconds"),
        (json!({"sessionId": null}), "row 1: sessionId: is required"),
        (json!({"sessionId": ["R-1"]}), "row 1: sessionId: expected a string, found [\"R-1\"]"),
        (json!({"runType": "PROD"}), "row 1: runType: \"PROD\" is not one of NORMAL, DEBUG"),
        (json!({"recordType": "sample"}), "row 1: recordType: \"sample\" is not one of SAMPLE, ERROR"),
        (json!({"operatorId": 7}), "row 1: operatorId: expected a string, found 7"),
        (json!({"operatorType": true}), "row 1: operatorType: expected a string, found true"),
        (json!({"operatorName": {}}), "row 1: operatorName: expected a string, found {}"),
        (json!({"errorCode": 500}), "row 1: errorCode: expected a string, found 500"),
        (json!({"errorMessage": ["x"]}), "row 1: errorMessage: expected a string, found [\"x\"]"),
        (json!({"traceId": 1}), "row 1: traceId: expected a string, found 1"),
        (json!({"payload": "{\"a\":1}"}), "row 1: payload: expected a JSON object, found \"{\\\"a\\\":1}\""),
        (
            json!({"meterId": 7}),
            "row 1: meterId: unknown field; expected one of eventId, eventTime, sessionId, runType, recordType, \
             operatorId, operatorType, operatorName, errorCode, errorMessage, traceId, payload",
        ),
    ];
    for (bad, message) in cases {
        assert_eq!(rejection(entry("e-2", bad.clone())), message, "{bad}");
    }
    let long = "x".repeat(200);
    let message = rejection(entry("e-2", json!({ "eventTime": long })));
    assert!(
        message.ends_with("xxxx… is not an ISO-8601 time with zone or epoch milliseconds"),
        "{message}"
    );
}

#[test]
fn bodies_that_are_not_arrays_or_ndjson_of_objects_are_malformed() {
    let malformed = |body: &[u8]| match parse_audit_entries(body, &ctx()) {
        Err(IngestError::Malformed(message)) => message,
        other => panic!("{other:?}"),
    };
    let ok =
        r#"{"eventId":"a","eventTime":1,"sessionId":"R","runType":"NORMAL","recordType":"SAMPLE"}"#;
    // Rows are validated as the array is read; its broken end comes after.
    assert_eq!(
        malformed(format!("[{ok},").as_bytes()),
        "body is not a valid JSON array: EOF while parsing a value at line 1 column 88"
    );
    assert_eq!(
        malformed(format!("[{ok}, 5]").as_bytes()),
        "row 1: expected a JSON object, found 5"
    );
    assert_eq!(
        malformed(format!("{ok}\n{{\"eventId\": nope}}\n").as_bytes()),
        "row 1: invalid JSON: expected ident at line 2 column 14"
    );
    assert_eq!(
        malformed(format!("{ok}\n\n\"x\"\n").as_bytes()),
        "row 1 (line 3): expected a JSON object, found \"x\""
    );
}

#[test]
fn run_entries_are_validated_too() {
    let ok = serde_json::json!({"sessionId": "R-1", "runType": "NORMAL", "status": "COMPLETED", "updatedAt": "2025-07-23T00:00:00Z"});
    let rows = parse_run_entries(&array(std::slice::from_ref(&ok)), &ctx()).unwrap();
    assert_eq!(
        (
            rows[0].status.as_str(),
            rows[0].updated_at_ms,
            rows[0].meter_id
        ),
        ("COMPLETED", DAY_MS, 7)
    );

    let reject = |patch: serde_json::Value| {
        let mut bad = ok.clone();
        bad.as_object_mut()
            .unwrap()
            .extend(patch.as_object().unwrap().clone());
        parse_run_entries(&array(&[ok.clone(), bad]), &ctx())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        reject(serde_json::json!({"status": "DONE"})),
        "row 1: status: \"DONE\" is not one of NEVER_RUN, TESTING, TESTING_FAILED, TESTING_PASSED, RUNNING, PAUSED, \
         COMPLETED, FAILED, CANCELED, INITIALIZING, USAGE_PUSHING, PUSH_COMPLETED, CONSUME_COMPLETED"
    );
    assert_eq!(
        reject(serde_json::json!({"updatedAt": null})),
        "row 1: updatedAt: is required"
    );
    assert_eq!(
        reject(serde_json::json!({"runType": "X"})),
        "row 1: runType: \"X\" is not one of NORMAL, DEBUG"
    );
    assert_eq!(
        reject(serde_json::json!({"eventId": "e"})),
        "row 1: eventId: unknown field; expected one of sessionId, runType, status, updatedAt"
    );
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn gzip_bodies_are_inflated_within_the_size_cap() {
    let body = array(&[entry("e-1", serde_json::json!({}))]);
    let gzipped = gzip(&body);
    let inflated = decode_body(&gzipped, true, body.len()).unwrap();
    assert_eq!(parse_audit_entries(&inflated, &ctx()).unwrap().len(), 1);
    assert_eq!(decode_body(&body, false, body.len()).unwrap(), body);

    let bomb = gzip(&vec![b' '; 10_000_000]);
    assert!(bomb.len() < 20_000);
    let err = decode_body(&bomb, true, 1_000_000).unwrap_err();
    assert_eq!(err.to_string(), "request body exceeds 1000000 bytes");
    assert!(matches!(
        decode_body(&body, false, body.len() - 1),
        Err(IngestError::TooLarge { .. })
    ));
    assert!(decode_body(b"plain text", true, 100)
        .unwrap_err()
        .to_string()
        .starts_with("body is not valid gzip: "));
}

async fn ingest(lake: &Lake, state: &MemoryStore, entries: &[serde_json::Value]) -> IngestSummary {
    let rows = parse_audit_entries(&array(entries), &ctx()).unwrap();
    ingest_audit(&lake.store, state, lake.bucket, &ctx(), rows, 1_000)
        .await
        .unwrap()
}

fn at(ms: i64) -> serde_json::Value {
    serde_json::json!({ "eventTime": DAY_MS + ms, "payload": { "n": ms } })
}

fn ids_and_payloads(rows: &[AuditRow]) -> Vec<(&str, &str)> {
    rows.iter()
        .map(|r| (r.event_id.as_str(), r.payload.as_deref().unwrap_or("")))
        .collect()
}

#[tokio::test]
async fn an_event_id_is_kept_once_within_and_across_batches() {
    let lake = lake().await;
    let state = MemoryStore::new();
    let first = ingest(
        &lake,
        &state,
        &[entry("a", at(1)), entry("b", at(2)), entry("a", at(3))],
    )
    .await;
    assert_eq!(
        first,
        IngestSummary {
            received: 3,
            accepted: 2,
            duplicates: 1
        }
    );

    let second = ingest(&lake, &state, &[entry("b", at(4)), entry("c", at(5))]).await;
    assert_eq!(
        second,
        IngestSummary {
            received: 2,
            accepted: 1,
            duplicates: 1
        }
    );

    let files_before = lake.keys("meter_audit_trail/").await;
    let retry = ingest(&lake, &state, &[entry("b", at(4)), entry("c", at(5))]).await;
    assert_eq!(
        retry,
        IngestSummary {
            received: 2,
            accepted: 0,
            duplicates: 2
        }
    );
    assert_eq!(
        lake.keys("meter_audit_trail/").await,
        files_before,
        "a retry writes nothing"
    );

    let rows = read_all(&lake, DAY_MS, DAY_MS + 10).await;
    assert_eq!(
        ids_and_payloads(&rows),
        [
            ("a", r#"{"n":1}"#),
            ("b", r#"{"n":2}"#),
            ("c", r#"{"n":5}"#)
        ]
    );
    assert!(rows.iter().all(|r| r.entity.as_deref() == Some("entity-1")));
}

#[tokio::test]
async fn a_store_that_lost_its_ids_rebuilds_them_from_the_lake() {
    // A crash before the ids were recorded, or a state store that came back
    // empty: a fresh store stands for both.
    let lake = lake().await;
    let batch = [entry("a", at(1)), entry("b", at(86_400_000))];
    let first = ingest(&lake, &MemoryStore::new(), &batch).await;
    assert_eq!(first.accepted, 2);
    let files = lake.keys("meter_audit_trail/").await;
    assert_eq!(files.len(), 2, "one file per date: {files:?}");

    let state = MemoryStore::new();
    let retried = ingest(
        &lake,
        &state,
        &[batch[0].clone(), batch[1].clone(), entry("c", at(3))],
    )
    .await;
    assert_eq!(
        retried,
        IngestSummary {
            received: 3,
            accepted: 1,
            duplicates: 2
        },
        "the lake's eventIds were indexed before the batch was checked"
    );
    assert_eq!(lake.keys("meter_audit_trail/").await.len(), 3);
    assert_eq!(
        read_all(&lake, DAY_MS, DAY_MS + 2 * 86_400_000).await.len(),
        3
    );
}

#[tokio::test]
async fn generated_rows_are_deduplicated_against_too() {
    use auditx_lake::audit_trail::generate::{generate_to_lake, GenerateSpec};
    let lake = lake().await;
    let spec = GenerateSpec {
        tenant: tenant(),
        meter: METER,
        rows: 3_000,
        from_ms: DAY_MS,
        to_ms: DAY_MS + 3_600_000,
        error_rate: 0.0,
        seed: 5,
    };
    generate_to_lake(&lake.store, lake.bucket, &spec, 1_000, 500, &|_| {})
        .await
        .unwrap();
    let generated = read_all(&lake, DAY_MS, DAY_MS + 3_600_000).await;
    assert_eq!(generated.len(), 3_000);

    // A client re-sends two generated events (and one new one).
    let state = MemoryStore::new();
    let resent: Vec<serde_json::Value> = generated[..2]
        .iter()
        .map(|r| entry(&r.event_id, at(r.event_time_ms - DAY_MS)))
        .chain([entry("brand-new", at(7))])
        .collect();
    let summary = ingest(&lake, &state, &resent).await;
    assert_eq!((summary.accepted, summary.duplicates), (1, 2));
    assert_eq!(
        read_all(&lake, DAY_MS, DAY_MS + 3_600_000).await.len(),
        3_001
    );

    // The generated files were indexed once: the next ingest reads none.
    let again = ingest(&lake, &state, &resent).await;
    assert_eq!((again.accepted, again.duplicates), (0, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ingests_of_one_meter_take_turns() {
    let lake = lake().await;
    let state = MemoryStore::new();
    let batch: Vec<serde_json::Value> = (0..200)
        .map(|i| entry(&format!("e-{i:03}"), at(i)))
        .collect();
    let (a, b) = tokio::join!(
        ingest(&lake, &state, &batch[..150]),
        ingest(&lake, &state, &batch[50..])
    );
    assert_eq!(a.accepted + b.accepted, 200);
    assert_eq!(a.duplicates + b.duplicates, 100);
    assert_eq!(read_all(&lake, DAY_MS, DAY_MS + 1_000).await.len(), 200);
}

#[tokio::test]
async fn a_batch_with_one_bad_row_writes_nothing() {
    let lake = lake().await;
    let mut entries: Vec<serde_json::Value> =
        (0..10).map(|i| entry(&format!("e-{i}"), at(i))).collect();
    entries[7] = entry("e-7", serde_json::json!({ "eventTime": "soon" }));
    let err = parse_audit_entries(&array(&entries), &ctx()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "row 7: eventTime: \"soon\" is not an ISO-8601 time with zone or epoch milliseconds"
    );
    assert!(lake.keys("").await.is_empty());
}

#[tokio::test]
async fn run_status_changes_are_ingested_and_decide_the_run_status() {
    let lake = lake().await;
    let body = b"{\"sessionId\":\"R-1\",\"runType\":\"NORMAL\",\"status\":\"RUNNING\",\"updatedAt\":1000}\n\
                 {\"sessionId\":\"R-1\",\"runType\":\"NORMAL\",\"status\":\"COMPLETED\",\"updatedAt\":\"1970-01-01T00:00:02Z\"}\n";
    let rows = parse_run_entries(body, &ctx()).unwrap();
    let summary = ingest_runs(&lake.store, lake.bucket, &ctx(), rows)
        .await
        .unwrap();
    assert_eq!(
        summary,
        IngestSummary {
            received: 2,
            accepted: 2,
            duplicates: 0
        }
    );
    let runs = read_runs(&lake.store, lake.bucket, &tenant(), METER)
        .await
        .unwrap();
    assert_eq!(
        latest_statuses(&runs).get("R-1").map(String::as_str),
        Some("COMPLETED")
    );
}

//! Exports end to end through the public API, checked byte for byte against
//! expectations computed from the generator's rows.

use std::collections::BTreeSet;

use auditx::client::ExportRequest;
use auditx_lake::audit_trail::generate::{audit_rows, run_rows, GenerateSpec};
use auditx_proto::{MeterId, TenantId};
use auditx_tests::expect::{self, Query};
use auditx_tests::{export_and_download, Adapters, Sandbox, SandboxOptions};
use chrono::{TimeZone, Utc};

const DAY_MS: i64 = 24 * 3600 * 1000;
/// 2025-07-01T00:00:00Z
const START_MS: i64 = 1_751_328_000_000;

fn iso(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn spec(tenant: &str, meter: i64, rows: u64, error_rate: f64, seed: u64) -> GenerateSpec {
    GenerateSpec {
        tenant: TenantId::from(tenant),
        meter: MeterId(meter),
        rows,
        from_ms: START_MS,
        to_ms: START_MS + 3 * DAY_MS,
        error_rate,
        seed,
    }
}

fn request(meter: i64, query: &Query) -> ExportRequest {
    ExportRequest {
        meter_id: meter,
        export_type: query.export_type.clone(),
        run_type: query.run_type.clone(),
        query_from_time: iso(query.from_ms),
        query_to_time: iso(query.to_ms),
        session_ids: query.session_ids.clone(),
        run_statuses: query.run_statuses.clone(),
        operator_ids: query.operator_ids.clone(),
        format: Some("csv".into()),
    }
}

/// Every filter at once, over several output files, on real Redis and
/// RabbitMQ (and once on the in-process adapters of the embedded default).
async fn every_filter_combined(adapters: Adapters) {
    let sandbox = Sandbox::start(SandboxOptions {
        adapters,
        max_rows_per_file: 700,
        offset_stride: 50,
        chunk_rows: 2_000,
        row_group_rows: 1_000,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let spec = spec("acme", 42, 60_000, 0.3, 11);
    sandbox.generate(&spec, 20_000).await.unwrap();

    let runs = run_rows(&spec);
    let statuses = expect::latest_statuses(&runs);
    let sessions: Vec<String> = statuses.keys().cloned().collect();
    let status_values: BTreeSet<String> = statuses.values().cloned().collect();
    assert!(
        sessions.len() >= 4 && status_values.len() >= 2,
        "the generator needs variety: {statuses:?}"
    );
    let operators: BTreeSet<String> = audit_rows(&spec).filter_map(|r| r.operator_id).collect();
    let operators: Vec<String> = operators.into_iter().collect();
    assert!(operators.len() >= 3);

    let query = Query {
        export_type: "ERROR".into(),
        run_type: "NORMAL".into(),
        // Three quarters of the sessions, then only those in two statuses.
        session_ids: sessions
            .iter()
            .take(sessions.len() * 3 / 4)
            .cloned()
            .collect(),
        run_statuses: status_values.iter().take(2).cloned().collect(),
        operator_ids: operators
            .iter()
            .take(operators.len() - 1)
            .cloned()
            .collect(),
        from_ms: START_MS + DAY_MS / 3,
        to_ms: START_MS + 2 * DAY_MS + 7,
    };
    let expected = expect::expected_lines(audit_rows(&spec), &runs, &query);
    assert!(
        expected.len() > 1_000,
        "a meaningful export: {} rows",
        expected.len()
    );

    let exported = export_and_download(&sandbox, "acme", &request(42, &query))
        .await
        .unwrap();
    let lines = exported.data_lines();
    assert_eq!(lines.len(), expected.len());
    assert_eq!(
        lines, expected,
        "downloaded rows differ from the expected rows"
    );
    assert_eq!(exported.job["count"], expected.len() as u64);
    assert!(
        exported.files.len() >= 2,
        "several files of at most 700 rows"
    );
    for file in &exported.files {
        assert!(
            expect::split_lines(file).len() - 1 <= 700,
            "a file holds more than 700 rows"
        );
    }
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_filter_combined_on_redis_and_rabbitmq() {
    every_filter_combined(Adapters::Real).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_filter_combined_on_the_embedded_default() {
    every_filter_combined(Adapters::InProcess).await;
}

/// An ERROR export whose few rows fall in few of many chunks: the file is
/// still one valid object with the header once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tiny_outputs_spread_over_many_chunks_make_one_valid_file() {
    let sandbox = Sandbox::start(SandboxOptions {
        chunk_rows: 1_000,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let spec = spec("tiny", 7, 40_000, 0.0005, 3);
    sandbox.generate(&spec, 10_000).await.unwrap();
    let query = Query {
        export_type: "ERROR".into(),
        run_type: "NORMAL".into(),
        from_ms: spec.from_ms,
        to_ms: spec.to_ms,
        ..Query::default()
    };
    let expected = expect::expected_lines(audit_rows(&spec), &run_rows(&spec), &query);
    assert!(
        (1..=60).contains(&expected.len()),
        "a handful of errors: {}",
        expected.len()
    );

    let exported = export_and_download(&sandbox, "tiny", &request(7, &query))
        .await
        .unwrap();
    assert!(
        exported.job["progress"]["chunksTotal"].as_u64().unwrap() >= 20,
        "the export was planned into many chunks: {}",
        exported.job["progress"]
    );
    assert_eq!(exported.files.len(), 1);
    assert_eq!(exported.data_lines(), expected);
    sandbox.stop().await.unwrap();
}

/// No row matches: the export finishes with count 0 and one header-only file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_empty_result_finishes_with_a_header_only_file() {
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    let spec = spec("empty", 9, 5_000, 0.1, 5);
    sandbox.generate(&spec, 5_000).await.unwrap();
    let query = Query {
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        // Before any data.
        from_ms: START_MS - 10 * DAY_MS,
        to_ms: START_MS - 9 * DAY_MS,
        ..Query::default()
    };
    let exported = export_and_download(&sandbox, "empty", &request(9, &query))
        .await
        .unwrap();
    assert_eq!(exported.job["count"], 0);
    assert_eq!(exported.files, vec![expect::HEADER.to_string()]);
    sandbox.stop().await.unwrap();
}

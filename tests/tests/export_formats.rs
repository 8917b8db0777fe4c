//! One export in each format — CSV, JSON Lines, Parquet — through the
//! public API on real RabbitMQ and Redis with two workers, several chunks
//! and several files: every format holds the rows the test expects from the
//! generator's rows, in the same order, in files named for the format and
//! of at most the row limit, with the manifest describing the bytes a user
//! downloads. Parquet files are read back with the parquet crate.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, TimeUnit, TimestampMillisecondType};
use auditx::client::ExportRequest;
use auditx_lake::audit_trail::generate::{audit_rows, run_rows, GenerateSpec};
use auditx_lake::AuditRow;
use auditx_proto::{MeterId, TenantId};
use auditx_tests::expect::{self, Query, COLUMNS};
use auditx_tests::{export_and_download_files, ExportedFiles, Sandbox, SandboxOptions};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::{Digest, Sha256};

const DAY_MS: i64 = 24 * 3600 * 1000;
/// 2025-07-01T00:00:00Z
const START_MS: i64 = 1_751_328_000_000;
const MAX_ROWS_PER_FILE: u64 = 700;

fn spec(tenant: &str, meter: i64, rows: u64) -> GenerateSpec {
    GenerateSpec {
        tenant: TenantId::from(tenant),
        meter: MeterId(meter),
        rows,
        from_ms: START_MS,
        to_ms: START_MS + 3 * DAY_MS,
        error_rate: 0.5,
        seed: 23,
    }
}

fn request(meter: i64, query: &Query, format: &str) -> ExportRequest {
    ExportRequest {
        meter_id: meter,
        export_type: query.export_type.clone(),
        run_type: query.run_type.clone(),
        query_from_time: expect::iso_millis(query.from_ms),
        query_to_time: expect::iso_millis(query.to_ms),
        session_ids: query.session_ids.clone(),
        run_statuses: query.run_statuses.clone(),
        operator_ids: query.operator_ids.clone(),
        format: Some(format.into()),
    }
}

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxOptions {
        workers: 2,
        max_rows_per_file: MAX_ROWS_PER_FILE,
        offset_stride: 50,
        chunk_rows: 2_000,
        row_group_rows: 1_000,
        ..SandboxOptions::default()
    })
    .await
    .unwrap()
}

/// Checks the names, the row limit and the manifest of an export's files;
/// returns each file's bytes.
async fn check_files(
    sandbox: &Sandbox,
    tenant: &str,
    exported: &ExportedFiles,
    extension: &str,
    rows_of: impl Fn(&[u8]) -> usize,
) -> Vec<Vec<u8>> {
    assert!(!exported.files.is_empty());
    let manifest_key = exported.job["manifestKey"].as_str().expect("a manifest");
    let url = sandbox
        .client(tenant)
        .presigned_url(manifest_key)
        .await
        .unwrap();
    let manifest: Value = serde_json::from_slice(&sandbox.download(&url).await.unwrap()).unwrap();
    let listed = manifest["files"].as_array().unwrap();
    assert_eq!(listed.len(), exported.files.len());
    for ((key, bytes), entry) in exported.files.iter().zip(listed) {
        assert!(
            key.ends_with(&format!(".{extension}")),
            "{key} does not end in .{extension}"
        );
        let rows = rows_of(bytes);
        assert!(
            rows as u64 <= MAX_ROWS_PER_FILE,
            "{key} holds {rows} rows, over the limit"
        );
        // The manifest holds object keys; the API lists them without the
        // tenant, as Zuora's reference does.
        assert_eq!(entry["key"], format!("{tenant}/{key}"));
        assert_eq!(entry["rows"], rows as u64, "{key}");
        assert_eq!(entry["bytes"], bytes.len() as u64, "{key}");
        assert_eq!(
            entry["sha256"],
            hex::encode(Sha256::digest(bytes)),
            "the manifest's SHA-256 of {key} is not that of its bytes"
        );
    }
    exported.files.iter().map(|(_, b)| b.clone()).collect()
}

fn jsonl_lines(file: &[u8]) -> Vec<&str> {
    let text = std::str::from_utf8(file).expect("UTF-8");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "a JSON Lines file ends with a line end"
    );
    text.lines().collect()
}

fn parquet_batches(file: &[u8]) -> Vec<RecordBatch> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::copy_from_slice(file))
        .expect("a valid Parquet file");
    let schema = builder.schema().clone();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, COLUMNS);
    assert_eq!(
        schema.field(1).data_type(),
        &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        "eventTime is a UTC timestamp in milliseconds"
    );
    for (i, field) in schema.fields().iter().enumerate() {
        if i != 1 {
            assert_eq!(field.data_type(), &DataType::Utf8, "{}", field.name());
        }
    }
    builder
        .build()
        .unwrap()
        .collect::<Result<_, _>>()
        .expect("readable row groups")
}

fn parquet_rows(file: &[u8]) -> usize {
    let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::copy_from_slice(file))
        .expect("a valid Parquet file");
    builder.metadata().file_metadata().num_rows() as usize
}

/// A row as the Parquet file holds it: each column's text (`eventTime` as
/// epoch milliseconds), `None` for null.
type CellRow = Vec<Option<String>>;

fn cells(batches: &[RecordBatch]) -> Vec<CellRow> {
    let mut rows = Vec::new();
    for batch in batches {
        for r in 0..batch.num_rows() {
            let row = batch
                .columns()
                .iter()
                .enumerate()
                .map(|(c, column)| {
                    if column.is_null(r) {
                        None
                    } else if c == 1 {
                        let times = column.as_primitive::<TimestampMillisecondType>();
                        Some(times.value(r).to_string())
                    } else {
                        Some(column.as_string::<i32>().value(r).to_owned())
                    }
                })
                .collect();
            rows.push(row);
        }
    }
    rows
}

fn expected_cells(row: &AuditRow, statuses: &BTreeMap<String, String>) -> CellRow {
    vec![
        Some(row.event_id.clone()),
        Some(row.event_time_ms.to_string()),
        Some(row.session_id.clone()),
        Some(row.run_type.clone()),
        statuses.get(&row.session_id).cloned(),
        row.operator_id.clone(),
        row.operator_type.clone(),
        row.operator_name.clone(),
        row.error_code.clone(),
        row.error_message.clone(),
        row.trace_id.clone(),
        row.payload.clone(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_three_formats_hold_the_same_rows_in_the_same_order() {
    let sandbox = sandbox().await;
    let (tenant, meter) = ("formats", 51);
    let spec = spec(tenant, meter, 20_000);
    sandbox.generate(&spec, 5_000).await.unwrap();
    // SAMPLE rows have no error code or message: nulls in JSON and Parquet.
    let query = Query {
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        from_ms: START_MS + DAY_MS / 3,
        to_ms: START_MS + 2 * DAY_MS + 7,
        ..Query::default()
    };
    let runs = run_rows(&spec);
    let statuses = expect::latest_statuses(&runs);
    let rows = expect::expected_rows(audit_rows(&spec), &runs, &query);
    assert!(
        rows.len() as u64 > 4 * MAX_ROWS_PER_FILE,
        "several files: {} rows",
        rows.len()
    );
    assert!(rows.iter().all(|r| r.error_code.is_none()));

    // CSV: byte for byte what the independent renderer makes.
    let csv = export_and_download_files(&sandbox, tenant, &request(meter, &query, "csv"))
        .await
        .unwrap();
    assert!(
        csv.job["progress"]["chunksTotal"].as_u64().unwrap() >= 4,
        "several chunks: {}",
        csv.job["progress"]
    );
    let files = check_files(&sandbox, tenant, &csv, "csv", |f| {
        expect::split_lines(std::str::from_utf8(f).unwrap()).len() - 1
    })
    .await;
    let mut csv_lines = Vec::new();
    for file in &files {
        let mut lines = expect::split_lines(std::str::from_utf8(file).unwrap());
        assert_eq!(lines.remove(0), expect::HEADER);
        csv_lines.extend(lines);
    }
    let expected_csv: Vec<String> = rows
        .iter()
        .map(|r| expect::csv_line(r, &statuses))
        .collect();
    assert_eq!(csv_lines, expected_csv, "CSV rows differ");

    // JSON Lines: one object per line, the CSV's columns as keys in order,
    // the payload the stored JSON text itself.
    let jsonl = export_and_download_files(&sandbox, tenant, &request(meter, &query, "jsonl"))
        .await
        .unwrap();
    assert_eq!(jsonl.files.len(), csv.files.len());
    let files = check_files(&sandbox, tenant, &jsonl, "jsonl", |f| jsonl_lines(f).len()).await;
    let lines: Vec<&str> = files.iter().flat_map(|f| jsonl_lines(f)).collect();
    assert_eq!(lines.len(), rows.len());
    for (line, row) in lines.iter().zip(&rows) {
        let value: Value = serde_json::from_str(line).expect("a JSON object per line");
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, COLUMNS, "{line}");
        assert_eq!(value, expect::json_row(row, &statuses), "{line}");
        let raw: BTreeMap<String, &RawValue> = serde_json::from_str(line).unwrap();
        assert_eq!(
            Some(raw["payload"].get()),
            row.payload.as_deref(),
            "the payload is not the stored text"
        );
    }

    // Parquet: each file one valid Parquet file whose row groups came from
    // chunks rendered by both workers.
    let parquet = export_and_download_files(&sandbox, tenant, &request(meter, &query, "parquet"))
        .await
        .unwrap();
    assert_eq!(parquet.files.len(), csv.files.len());
    let files = check_files(&sandbox, tenant, &parquet, "parquet", parquet_rows).await;
    let mut got = Vec::new();
    for file in &files {
        assert!(file.starts_with(b"PAR1") && file.ends_with(b"PAR1"));
        let file_rows = cells(&parquet_batches(file));
        assert_eq!(file_rows.len(), parquet_rows(file));
        got.extend(file_rows);
    }
    let expected: Vec<CellRow> = rows.iter().map(|r| expected_cells(r, &statuses)).collect();
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected, "Parquet rows differ");

    for exported in [&csv, &jsonl, &parquet] {
        assert_eq!(exported.job["count"], rows.len() as u64);
    }
    sandbox.stop().await.unwrap();
}

/// No row in range: one file in each format, still valid — a header-only
/// CSV, an empty JSON Lines file, a Parquet file with no row groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_empty_export_is_one_valid_file_in_every_format() {
    let sandbox = sandbox().await;
    let (tenant, meter) = ("formats-empty", 52);
    let spec = spec(tenant, meter, 3_000);
    sandbox.generate(&spec, 3_000).await.unwrap();
    let query = Query {
        export_type: "ERROR".into(),
        run_type: "NORMAL".into(),
        from_ms: START_MS - 10 * DAY_MS,
        to_ms: START_MS - 9 * DAY_MS,
        ..Query::default()
    };
    for (format, expected) in [
        ("csv", expect::HEADER.as_bytes()),
        ("jsonl", b"".as_slice()),
    ] {
        let exported = export_and_download_files(&sandbox, tenant, &request(meter, &query, format))
            .await
            .unwrap();
        assert_eq!(exported.job["count"], 0);
        assert_eq!(exported.files.len(), 1, "{format}");
        assert!(exported.files[0].0.ends_with(&format!(".{format}")));
        assert_eq!(exported.files[0].1, expected, "{format}");
        check_files(&sandbox, tenant, &exported, format, |_| 0).await;
    }
    let exported = export_and_download_files(&sandbox, tenant, &request(meter, &query, "parquet"))
        .await
        .unwrap();
    assert_eq!(exported.files.len(), 1);
    let file = &exported.files[0].1;
    let metadata = ParquetRecordBatchReaderBuilder::try_new(Bytes::copy_from_slice(file))
        .unwrap()
        .metadata()
        .clone();
    assert_eq!(metadata.num_row_groups(), 0);
    assert_eq!(metadata.file_metadata().num_rows(), 0);
    assert!(cells(&parquet_batches(file)).is_empty());
    check_files(&sandbox, tenant, &exported, "parquet", parquet_rows).await;
    sandbox.stop().await.unwrap();
}

/// A format the API does not know is a 400 that names `format` and lists
/// the formats it takes; every listed one is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unknown_format_is_refused_naming_the_parameter_and_the_allowed_values() {
    let sandbox = sandbox().await;
    let http = reqwest::Client::new();
    let create = |format: &str| {
        http.post(format!("{}/meters/53/auditTrail/export", sandbox.api))
            .query(&[
                ("exportType", "SAMPLE"),
                ("runType", "NORMAL"),
                ("queryFromTime", "2025-07-01T00:00:00Z"),
                ("queryToTime", "2025-07-02T00:00:00Z"),
                ("format", format),
            ])
            .bearer_auth(sandbox.token("formats-bad"))
            .send()
    };
    for bad in ["xml", "PARQUET", "json", "csv,jsonl"] {
        let response = create(bad).await.unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["success"], false);
        // format's resource code, category 20 (invalid value).
        assert_eq!(body["reasons"][0]["code"], 58_101_220);
        assert_eq!(
            body["reasons"][0]["message"],
            format!("format: \"{bad}\" is not one of csv, jsonl, parquet")
        );
    }
    let openapi: Value = reqwest::get(format!("{}/openapi.json", sandbox.api))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let documented = &openapi["components"]["schemas"]["ExportFormat"]["enum"];
    assert_eq!(documented, &serde_json::json!(["csv", "jsonl", "parquet"]));
    for format in ["csv", "jsonl", "parquet"] {
        let response = create(format).await.unwrap();
        assert_eq!(response.status(), 200, "{format}");
    }
    sandbox.stop().await.unwrap();
}

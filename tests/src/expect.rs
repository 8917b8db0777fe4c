//! Expected export output, computed from the generator's rows with
//! renderers of its own (CSV text, JSON values) — independent of the
//! worker's rendering code.

use std::collections::BTreeMap;

use auditx_lake::{AuditRow, RunRow};
use chrono::{TimeZone, Utc};

pub const HEADER: &str = "eventId,eventTime,sessionId,runType,runStatus,operatorId,operatorType,operatorName,errorCode,errorMessage,traceId,payload\n";

/// The columns of every format, in order (CSV header, JSON keys, Parquet
/// columns).
pub const COLUMNS: [&str; 12] = [
    "eventId",
    "eventTime",
    "sessionId",
    "runType",
    "runStatus",
    "operatorId",
    "operatorType",
    "operatorName",
    "errorCode",
    "errorMessage",
    "traceId",
    "payload",
];

/// The filters of an export, as a test states them.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub export_type: String,
    pub run_type: String,
    pub session_ids: Vec<String>,
    pub run_statuses: Vec<String>,
    pub operator_ids: Vec<String>,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// sessionId → status of its latest row (the last one wins a tie).
pub fn latest_statuses(runs: &[RunRow]) -> BTreeMap<String, String> {
    let mut latest: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for run in runs {
        let newer = latest
            .get(&run.session_id)
            .is_none_or(|(at, _)| run.updated_at_ms >= *at);
        if newer {
            latest.insert(
                run.session_id.clone(),
                (run.updated_at_ms, run.status.clone()),
            );
        }
    }
    latest.into_iter().map(|(k, (_, v))| (k, v)).collect()
}

fn field(out: &mut String, value: &str) {
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

/// `2025-07-23T18:46:48.775Z`
pub fn iso_millis(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// One CSV line (with its `\n`) for a row.
pub fn csv_line(row: &AuditRow, statuses: &BTreeMap<String, String>) -> String {
    let time = iso_millis(row.event_time_ms);
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let values = [
        row.event_id.clone(),
        time,
        row.session_id.clone(),
        row.run_type.clone(),
        statuses.get(&row.session_id).cloned().unwrap_or_default(),
        opt(&row.operator_id),
        opt(&row.operator_type),
        opt(&row.operator_name),
        opt(&row.error_code),
        opt(&row.error_message),
        opt(&row.trace_id),
        opt(&row.payload),
    ];
    let mut line = String::new();
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        field(&mut line, value);
    }
    line.push('\n');
    line
}

/// Does `row` belong in the export?
pub fn matches(row: &AuditRow, query: &Query, statuses: &BTreeMap<String, String>) -> bool {
    let listed = |list: &[String], value: Option<&String>| {
        list.is_empty() || value.is_some_and(|v| list.contains(v))
    };
    row.event_time_ms >= query.from_ms
        && row.event_time_ms < query.to_ms
        && row.record_type == query.export_type
        && row.run_type == query.run_type
        && listed(&query.session_ids, Some(&row.session_id))
        && listed(&query.operator_ids, row.operator_id.as_ref())
        && listed(&query.run_statuses, statuses.get(&row.session_id))
}

/// The expected data lines, in order, of an export over rows already in
/// (`eventTime`, `eventId`) order.
pub fn expected_lines(
    rows: impl Iterator<Item = AuditRow>,
    runs: &[RunRow],
    query: &Query,
) -> Vec<String> {
    let statuses = latest_statuses(runs);
    rows.filter(|row| matches(row, query, &statuses))
        .map(|row| csv_line(&row, &statuses))
        .collect()
}

/// The rows of an export, in order, over rows already in (`eventTime`,
/// `eventId`) order.
pub fn expected_rows(
    rows: impl Iterator<Item = AuditRow>,
    runs: &[RunRow],
    query: &Query,
) -> Vec<AuditRow> {
    let statuses = latest_statuses(runs);
    rows.filter(|row| matches(row, query, &statuses)).collect()
}

/// The expected JSON Lines object of a row: the CSV's values, `null` where
/// the CSV has an empty string for an absent value, the payload object
/// itself.
pub fn json_row(row: &AuditRow, statuses: &BTreeMap<String, String>) -> serde_json::Value {
    let payload = row
        .payload
        .as_deref()
        .map(|text| serde_json::from_str::<serde_json::Value>(text).expect("payloads are JSON"));
    serde_json::json!({
        "eventId": row.event_id,
        "eventTime": iso_millis(row.event_time_ms),
        "sessionId": row.session_id,
        "runType": row.run_type,
        "runStatus": statuses.get(&row.session_id),
        "operatorId": row.operator_id,
        "operatorType": row.operator_type,
        "operatorName": row.operator_name,
        "errorCode": row.error_code,
        "errorMessage": row.error_message,
        "traceId": row.trace_id,
        "payload": payload,
    })
}

/// Splits a downloaded CSV file into its header and data lines, honouring
/// quoted newlines.
pub fn split_lines(file: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in file.chars() {
        current.push(c);
        match c {
            '"' => quoted = !quoted,
            '\n' if !quoted => lines.push(std::mem::take(&mut current)),
            _ => {}
        }
    }
    assert!(
        current.is_empty(),
        "file does not end with a newline: {current:?}"
    );
    lines
}

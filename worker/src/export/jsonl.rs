//! The JSON Lines format of meter audit trail exports: one object per row
//! and line, `\n` line ends, no header.
//!
//! Keys are the CSV columns, in the CSV's order. `eventTime` is the CSV's
//! UTC text with milliseconds; `payload` is the JSON object itself, written
//! as the lake stored it (checked to be JSON, never parsed into numbers and
//! printed again, so no precision or key order is lost). Absent values are
//! `null`, not the CSV's empty string: JSON can tell "absent" from "empty",
//! and a Parquet export of the same rows has nulls in the same places.

use std::collections::BTreeMap;

use auditx_lake::sql::write_timestamp_millis;
use auditx_lake::AuditRow;
use serde_json::value::RawValue;

use crate::error::WorkerError;

/// Appends one row as a JSON object and a `\n`; `run_statuses` maps a
/// `sessionId` to its run's status. Fails on a payload that is not JSON.
pub fn write_row(
    out: &mut Vec<u8>,
    row: &AuditRow,
    run_statuses: &BTreeMap<String, String>,
) -> Result<(), WorkerError> {
    out.extend_from_slice(b"{\"eventId\":");
    write_string(out, &row.event_id);
    out.extend_from_slice(b",\"eventTime\":\"");
    write_timestamp_millis(out, row.event_time_ms);
    out.extend_from_slice(b"\",\"sessionId\":");
    write_string(out, &row.session_id);
    out.extend_from_slice(b",\"runType\":");
    write_string(out, &row.run_type);
    out.extend_from_slice(b",\"runStatus\":");
    write_optional(out, run_statuses.get(&row.session_id).map(String::as_str));
    out.extend_from_slice(b",\"operatorId\":");
    write_optional(out, row.operator_id.as_deref());
    out.extend_from_slice(b",\"operatorType\":");
    write_optional(out, row.operator_type.as_deref());
    out.extend_from_slice(b",\"operatorName\":");
    write_optional(out, row.operator_name.as_deref());
    out.extend_from_slice(b",\"errorCode\":");
    write_optional(out, row.error_code.as_deref());
    out.extend_from_slice(b",\"errorMessage\":");
    write_optional(out, row.error_message.as_deref());
    out.extend_from_slice(b",\"traceId\":");
    write_optional(out, row.trace_id.as_deref());
    out.extend_from_slice(b",\"payload\":");
    match &row.payload {
        Some(payload) => write_payload(out, &row.event_id, payload)?,
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}\n");
    Ok(())
}

fn write_string(out: &mut Vec<u8>, value: &str) {
    serde_json::to_writer(out, value).expect("writing JSON to a Vec cannot fail");
}

fn write_optional(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(value) => write_string(out, value),
        None => out.extend_from_slice(b"null"),
    }
}

/// The payload's JSON text as stored. A line break can only be whitespace
/// between tokens in valid JSON (inside strings it must be escaped), so it
/// becomes a space and the object stays on its line.
fn write_payload(out: &mut Vec<u8>, event_id: &str, payload: &str) -> Result<(), WorkerError> {
    let raw: &RawValue = serde_json::from_str(payload).map_err(|e| {
        WorkerError::Render(format!(
            "the payload of event {event_id:?} is not valid JSON: {e}"
        ))
    })?;
    let text = raw.get().as_bytes();
    let start = out.len();
    out.extend_from_slice(text);
    if text.contains(&b'\n') || text.contains(&b'\r') {
        for byte in &mut out[start..] {
            if matches!(*byte, b'\n' | b'\r') {
                *byte = b' ';
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn row() -> AuditRow {
        AuditRow {
            tenant: "t1".into(),
            entity: None,
            org: None,
            meter_id: 7,
            session_id: "R-00002283".into(),
            run_type: "NORMAL".into(),
            record_type: "ERROR".into(),
            operator_id: Some("op-1".into()),
            operator_type: Some("Transform".into()),
            operator_name: Some("Rate, usage".into()),
            event_id: "e-1".into(),
            trace_id: None,
            event_time_ms: 1_753_296_408_775,
            error_code: Some("E42".into()),
            error_message: Some("bad \"unit\"\nline 2 ✓".into()),
            payload: Some(r#"{"b":1.10,"a":12345678901234567890,"s":"x"}"#.into()),
        }
    }

    fn render(row: &AuditRow, statuses: &BTreeMap<String, String>) -> String {
        let mut out = Vec::new();
        write_row(&mut out, row, statuses).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rows_are_objects_with_the_csv_columns_in_order() {
        let statuses = BTreeMap::from([("R-00002283".to_string(), "COMPLETED".to_string())]);
        assert_eq!(
            render(&row(), &statuses),
            "{\"eventId\":\"e-1\",\"eventTime\":\"2025-07-23T18:46:48.775Z\",\
             \"sessionId\":\"R-00002283\",\"runType\":\"NORMAL\",\"runStatus\":\"COMPLETED\",\
             \"operatorId\":\"op-1\",\"operatorType\":\"Transform\",\"operatorName\":\"Rate, usage\",\
             \"errorCode\":\"E42\",\"errorMessage\":\"bad \\\"unit\\\"\\nline 2 ✓\",\
             \"traceId\":null,\"payload\":{\"b\":1.10,\"a\":12345678901234567890,\"s\":\"x\"}}\n"
        );
    }

    #[test]
    fn absent_values_are_null_and_the_line_parses() {
        let bare = AuditRow {
            operator_id: None,
            operator_type: None,
            operator_name: None,
            error_code: None,
            error_message: Some(String::new()),
            payload: None,
            ..row()
        };
        let line = render(&bare, &BTreeMap::new());
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let value: Value = serde_json::from_str(&line).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
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
                "payload"
            ]
        );
        assert_eq!(value["runStatus"], Value::Null);
        assert_eq!(value["operatorId"], Value::Null);
        assert_eq!(value["errorMessage"], "");
        assert_eq!(value["payload"], Value::Null);
    }

    #[test]
    fn a_payload_with_line_breaks_stays_on_one_line() {
        let spread = AuditRow {
            payload: Some("{\n  \"a\": [1,\r\n 2]\n}".into()),
            ..row()
        };
        let line = render(&spread, &BTreeMap::new());
        assert_eq!(line.matches('\n').count(), 1);
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["payload"], serde_json::json!({"a": [1, 2]}));
    }

    #[test]
    fn a_payload_that_is_not_json_fails_the_row() {
        let broken = AuditRow {
            payload: Some("{\"a\":".into()),
            ..row()
        };
        let err = write_row(&mut Vec::new(), &broken, &BTreeMap::new()).unwrap_err();
        assert!(
            err.to_string()
                .contains("payload of event \"e-1\" is not valid JSON"),
            "{err}"
        );
        assert!(!err.is_transient());
    }
}

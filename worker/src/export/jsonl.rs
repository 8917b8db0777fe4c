//! The JSON Lines format of meter audit trail exports: one object per row
//! and line, `\n` line ends, no header.
//!
//! Keys are the CSV columns, in the CSV's order. `eventTime` is the CSV's
//! UTC text with milliseconds; `payload` is the JSON object itself, written
//! as the lake stored it (checked to be JSON, never parsed into numbers and
//! printed again, so no precision or key order is lost). Absent values are
//! `null`, not the CSV's empty string: JSON can tell "absent" from "empty",
//! and a Parquet export of the same rows has nulls in the same places.

use auditx_lake::sql::write_timestamp_millis;
use serde_json::value::RawValue;

use crate::error::WorkerError;
use crate::export::chunk::Fields;

/// Appends one row as a JSON object and a `\n`. Fails on a payload that is
/// not JSON.
pub fn write_row(out: &mut Vec<u8>, row: &Fields) -> Result<(), WorkerError> {
    const KEYS: [&[u8]; 6] = [
        b",\"operatorId\":",
        b",\"operatorType\":",
        b",\"operatorName\":",
        b",\"errorCode\":",
        b",\"errorMessage\":",
        b",\"traceId\":",
    ];
    out.extend_from_slice(b"{\"eventId\":");
    write_string(out, row.event_id);
    out.extend_from_slice(b",\"eventTime\":\"");
    write_timestamp_millis(out, row.event_time_ms);
    out.extend_from_slice(b"\",\"sessionId\":");
    write_string(out, row.session_id);
    out.extend_from_slice(b",\"runType\":");
    write_string(out, row.run_type);
    out.extend_from_slice(b",\"runStatus\":");
    write_optional(out, row.run_status);
    for (key, value) in KEYS.iter().zip(row.optional) {
        out.extend_from_slice(key);
        write_optional(out, value);
    }
    out.extend_from_slice(b",\"payload\":");
    match row.payload() {
        Some(payload) => write_payload(out, row.event_id, payload)?,
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}\n");
    Ok(())
}

/// A JSON string. Most values need no escaping (no quote, backslash or
/// control character) and are copied as they are.
fn write_string(out: &mut Vec<u8>, value: &str) {
    if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(value.len() + 2);
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(out, value).expect("writing JSON to a Vec cannot fail");
    }
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

    fn row() -> Fields<'static> {
        Fields {
            event_id: "e-1",
            event_time_ms: 1_753_296_408_775,
            session_id: "R-00002283",
            run_type: "NORMAL",
            run_status: Some("COMPLETED"),
            optional: [
                Some("op-1"),
                Some("Transform"),
                Some("Rate, usage"),
                Some("E42"),
                Some("bad \"unit\"\nline 2 ✓"),
                None,
                Some(r#"{"b":1.10,"a":12345678901234567890,"s":"x"}"#),
            ],
        }
    }

    fn render(row: &Fields) -> String {
        let mut out = Vec::new();
        write_row(&mut out, row).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rows_are_objects_with_the_csv_columns_in_order() {
        assert_eq!(
            render(&row()),
            "{\"eventId\":\"e-1\",\"eventTime\":\"2025-07-23T18:46:48.775Z\",\
             \"sessionId\":\"R-00002283\",\"runType\":\"NORMAL\",\"runStatus\":\"COMPLETED\",\
             \"operatorId\":\"op-1\",\"operatorType\":\"Transform\",\"operatorName\":\"Rate, usage\",\
             \"errorCode\":\"E42\",\"errorMessage\":\"bad \\\"unit\\\"\\nline 2 ✓\",\
             \"traceId\":null,\"payload\":{\"b\":1.10,\"a\":12345678901234567890,\"s\":\"x\"}}\n"
        );
    }

    #[test]
    fn strings_are_escaped_like_serde_json() {
        for value in [
            "plain",
            "",
            "q\"uote",
            "back\\slash",
            "tab\tnew\nline",
            "\u{1}",
            "ünï ✓",
            "</script>",
        ] {
            let mut out = Vec::new();
            write_string(&mut out, value);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(value).unwrap(),
                "{value:?}"
            );
        }
    }

    #[test]
    fn absent_values_are_null_and_the_line_parses() {
        let bare = Fields {
            run_status: None,
            optional: [None, None, None, None, Some(""), None, None],
            ..row()
        };
        let line = render(&bare);
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
        let mut spread = row();
        spread.optional[6] = Some("{\n  \"a\": [1,\r\n 2]\n}");
        let line = render(&spread);
        assert_eq!(line.matches('\n').count(), 1);
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["payload"], serde_json::json!({"a": [1, 2]}));
    }

    #[test]
    fn a_payload_that_is_not_json_fails_the_row() {
        let mut broken = row();
        broken.optional[6] = Some("{\"a\":");
        let err = write_row(&mut Vec::new(), &broken).unwrap_err();
        assert!(
            err.to_string()
                .contains("payload of event \"e-1\" is not valid JSON"),
            "{err}"
        );
        assert!(!err.is_transient());
    }
}

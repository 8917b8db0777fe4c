//! The CSV format of meter audit trail exports (SPEC §6): RFC 4180 quoting,
//! `\n` line ends, UTC timestamps with milliseconds, empty strings for
//! absent values.
//!
//! Exports run to millions of rows, so every field is written straight into
//! one output buffer: no per-field allocation, no formatting machinery on
//! the hot path.

use std::collections::BTreeMap;

use auditx_lake::sql::{write_csv_field, write_timestamp_millis};
use auditx_lake::AuditRow;

/// The first line of every CSV file, line end included.
pub const HEADER: &[u8] = b"eventId,eventTime,sessionId,runType,runStatus,operatorId,operatorType,\
operatorName,errorCode,errorMessage,traceId,payload\n";

/// Appends one data row; `run_statuses` maps a `sessionId` to its run's status.
pub fn write_row(out: &mut Vec<u8>, row: &AuditRow, run_statuses: &BTreeMap<String, String>) {
    write_csv_field(out, &row.event_id);
    out.push(b',');
    write_timestamp_millis(out, row.event_time_ms);
    out.push(b',');
    write_csv_field(out, &row.session_id);
    out.push(b',');
    write_csv_field(out, &row.run_type);
    out.push(b',');
    write_csv_field(
        out,
        run_statuses.get(&row.session_id).map_or("", String::as_str),
    );
    out.push(b',');
    write_csv_field(out, optional(&row.operator_id));
    out.push(b',');
    write_csv_field(out, optional(&row.operator_type));
    out.push(b',');
    write_csv_field(out, optional(&row.operator_name));
    out.push(b',');
    write_csv_field(out, optional(&row.error_code));
    out.push(b',');
    write_csv_field(out, optional(&row.error_message));
    out.push(b',');
    write_csv_field(out, optional(&row.trace_id));
    out.push(b',');
    write_csv_field(out, optional(&row.payload));
    out.push(b'\n');
}

fn optional(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;

    fn field(value: &str) -> String {
        let mut out = Vec::new();
        write_csv_field(&mut out, value);
        String::from_utf8(out).unwrap()
    }

    fn time(millis: i64) -> String {
        let mut out = Vec::new();
        write_timestamp_millis(&mut out, millis);
        String::from_utf8(out).unwrap()
    }

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
            error_message: Some("bad \"unit\"\nline 2".into()),
            payload: Some(r#"{"a":1,"b":"x"}"#.into()),
        }
    }

    #[test]
    fn header_lists_the_columns_in_order() {
        assert_eq!(
            std::str::from_utf8(HEADER).unwrap(),
            "eventId,eventTime,sessionId,runType,runStatus,operatorId,operatorType,operatorName,\
             errorCode,errorMessage,traceId,payload\n"
        );
    }

    #[test]
    fn fields_are_quoted_only_when_needed() {
        assert_eq!(field(""), "");
        assert_eq!(field("plain value"), "plain value");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("\""), "\"\"\"\"");
        assert_eq!(field("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(field("carriage\rreturn"), "\"carriage\rreturn\"");
        assert_eq!(field("ünïcødé ✓"), "ünïcødé ✓");
        assert_eq!(field(r#"{"k":"v"}"#), r#""{""k"":""v""}""#);
        // A special byte past the first 16-byte block is still found.
        assert_eq!(field("0123456789abcdefghij,"), "\"0123456789abcdefghij,\"");
    }

    #[test]
    fn event_times_are_utc_with_milliseconds() {
        assert_eq!(time(1_753_296_408_775), "2025-07-23T18:46:48.775Z");
        assert_eq!(time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(time(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(time(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(time(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(time(253_402_300_800_000), "+10000-01-01T00:00:00.000Z");
    }

    #[test]
    fn event_times_match_chrono_across_the_calendar() {
        let step = 7_919_993_117_i64; // ~92 days, not a multiple of a day
        let mut millis = -62_167_219_200_000; // 0000-01-01
        while millis < 253_402_300_800_000 {
            let expected = DateTime::from_timestamp_millis(millis)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            assert_eq!(time(millis), expected, "{millis}");
            millis += step;
        }
    }

    #[test]
    fn rows_render_every_column_and_empty_absent_values() {
        let statuses = BTreeMap::from([("R-00002283".to_string(), "COMPLETED".to_string())]);
        let mut out = Vec::new();
        write_row(&mut out, &row(), &statuses);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "e-1,2025-07-23T18:46:48.775Z,R-00002283,NORMAL,COMPLETED,op-1,Transform,\
             \"Rate, usage\",E42,\"bad \"\"unit\"\"\nline 2\",,\"{\"\"a\"\":1,\"\"b\"\":\"\"x\"\"}\"\n"
        );

        let bare = AuditRow {
            operator_id: None,
            operator_type: None,
            operator_name: None,
            error_code: None,
            error_message: None,
            payload: None,
            ..row()
        };
        let mut out = Vec::new();
        write_row(&mut out, &bare, &BTreeMap::new());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "e-1,2025-07-23T18:46:48.775Z,R-00002283,NORMAL,,,,,,,,\n"
        );
    }
}

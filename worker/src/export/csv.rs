//! The CSV format of meter audit trail exports (SPEC §6): RFC 4180 quoting,
//! `\n` line ends, UTC timestamps with milliseconds, empty strings for
//! absent values.
//!
//! Exports run to millions of rows, so every field is written straight into
//! one output buffer: no per-field allocation, no formatting machinery on
//! the hot path.

use auditx_lake::sql::{write_csv_field, write_timestamp_millis};

/// The first line of every CSV file, line end included.
pub const HEADER: &[u8] = b"eventId,eventTime,sessionId,runType,runStatus,operatorId,operatorType,\
operatorName,errorCode,errorMessage,traceId,payload\n";

/// The fields of one data row, borrowed from wherever the row is held;
/// absent values are empty strings.
#[derive(Clone, Copy, Debug, Default)]
pub struct Row<'a> {
    pub event_id: &'a str,
    pub event_time_ms: i64,
    pub session_id: &'a str,
    pub run_type: &'a str,
    /// The status of the row's run, from the runs table.
    pub run_status: &'a str,
    pub operator_id: &'a str,
    pub operator_type: &'a str,
    pub operator_name: &'a str,
    pub error_code: &'a str,
    pub error_message: &'a str,
    pub trace_id: &'a str,
    pub payload: &'a str,
}

/// Appends one data row.
pub fn write_row(out: &mut Vec<u8>, row: &Row) {
    write_csv_field(out, row.event_id);
    out.push(b',');
    write_timestamp_millis(out, row.event_time_ms);
    for field in [
        row.session_id,
        row.run_type,
        row.run_status,
        row.operator_id,
        row.operator_type,
        row.operator_name,
        row.error_code,
        row.error_message,
        row.trace_id,
        row.payload,
    ] {
        out.push(b',');
        write_csv_field(out, field);
    }
    out.push(b'\n');
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

    fn row() -> Row<'static> {
        Row {
            event_id: "e-1",
            event_time_ms: 1_753_296_408_775,
            session_id: "R-00002283",
            run_type: "NORMAL",
            run_status: "COMPLETED",
            operator_id: "op-1",
            operator_type: "Transform",
            operator_name: "Rate, usage",
            error_code: "E42",
            error_message: "bad \"unit\"\nline 2",
            trace_id: "",
            payload: r#"{"a":1,"b":"x"}"#,
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
        let mut out = Vec::new();
        write_row(&mut out, &row());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "e-1,2025-07-23T18:46:48.775Z,R-00002283,NORMAL,COMPLETED,op-1,Transform,\
             \"Rate, usage\",E42,\"bad \"\"unit\"\"\nline 2\",,\"{\"\"a\"\":1,\"\"b\"\":\"\"x\"\"}\"\n"
        );

        let bare = Row {
            run_status: "",
            operator_id: "",
            operator_type: "",
            operator_name: "",
            error_code: "",
            error_message: "",
            payload: "",
            ..row()
        };
        let mut out = Vec::new();
        write_row(&mut out, &bare);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "e-1,2025-07-23T18:46:48.775Z,R-00002283,NORMAL,,,,,,,,\n"
        );
    }
}

//! The CSV format of meter audit trail exports (SPEC §6): RFC 4180 quoting,
//! `\n` line ends, UTC timestamps with milliseconds, empty strings for
//! absent values.
//!
//! Exports run to millions of rows, so every field is written straight into
//! one output buffer: no per-field allocation, no formatting machinery on
//! the hot path.

use std::collections::BTreeMap;

use auditx_common::lake::AuditRow;

/// The first line of every CSV file, line end included.
pub const HEADER: &[u8] = b"eventId,eventTime,sessionId,runType,runStatus,operatorId,operatorType,\
operatorName,errorCode,errorMessage,traceId,payload\n";

const MILLIS_PER_DAY: i64 = 86_400_000;

/// Appends one data row; `run_statuses` maps a `sessionId` to its run's status.
pub fn write_row(out: &mut Vec<u8>, row: &AuditRow, run_statuses: &BTreeMap<String, String>) {
    write_field(out, &row.event_id);
    out.push(b',');
    write_event_time(out, row.event_time_ms);
    out.push(b',');
    write_field(out, &row.session_id);
    out.push(b',');
    write_field(out, &row.run_type);
    out.push(b',');
    write_field(
        out,
        run_statuses.get(&row.session_id).map_or("", String::as_str),
    );
    out.push(b',');
    write_field(out, optional(&row.operator_id));
    out.push(b',');
    write_field(out, optional(&row.operator_type));
    out.push(b',');
    write_field(out, optional(&row.operator_name));
    out.push(b',');
    write_field(out, optional(&row.error_code));
    out.push(b',');
    write_field(out, optional(&row.error_message));
    out.push(b',');
    write_field(out, optional(&row.trace_id));
    out.push(b',');
    write_field(out, optional(&row.payload));
    out.push(b'\n');
}

fn optional(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("")
}

/// Appends `value`, quoted iff it holds a comma, a quote, CR or LF, with
/// inner quotes doubled.
pub fn write_field(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    if !needs_quotes(bytes) {
        out.extend_from_slice(bytes);
        return;
    }
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut rest = bytes;
    while let Some(i) = rest.iter().position(|&b| b == b'"') {
        out.extend_from_slice(&rest[..=i]);
        out.push(b'"');
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// Scans 16 bytes at a time without an early exit inside a block, which
/// the compiler turns into vector compares.
fn needs_quotes(bytes: &[u8]) -> bool {
    let special = |b: u8| b == b',' || b == b'"' || b == b'\n' || b == b'\r';
    bytes
        .chunks(16)
        .any(|block| block.iter().fold(false, |found, &b| found | special(b)))
}

/// Appends `millis` (since the Unix epoch) as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
/// Years outside 0..=9999 get a sign and at least four digits, as chrono's
/// `%Y` writes them.
pub fn write_event_time(out: &mut Vec<u8>, millis: i64) {
    let (year, month, day) = civil_from_days(millis.div_euclid(MILLIS_PER_DAY));
    let ms_of_day = millis.rem_euclid(MILLIS_PER_DAY) as u32;
    if (0..=9999).contains(&year) {
        let year = year as u32;
        out.extend_from_slice(&[
            digit(year / 1000),
            digit(year / 100 % 10),
            digit(year / 10 % 10),
            digit(year % 10),
        ]);
    } else {
        use std::io::Write as _;
        write!(out, "{year:+05}").expect("writing to a Vec cannot fail");
    }
    let (hour, minute) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60);
    let (second, milli) = (ms_of_day / 1000 % 60, ms_of_day % 1000);
    out.extend_from_slice(&[
        b'-',
        digit(month / 10),
        digit(month % 10),
        b'-',
        digit(day / 10),
        digit(day % 10),
        b'T',
        digit(hour / 10),
        digit(hour % 10),
        b':',
        digit(minute / 10),
        digit(minute % 10),
        b':',
        digit(second / 10),
        digit(second % 10),
        b'.',
        digit(milli / 100),
        digit(milli / 10 % 10),
        digit(milli % 10),
        b'Z',
    ]);
}

fn digit(value: u32) -> u8 {
    b'0' + value as u8
}

/// (year, month, day) of a day count since 1970-01-01 in the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;

    fn field(value: &str) -> String {
        let mut out = Vec::new();
        write_field(&mut out, value);
        String::from_utf8(out).unwrap()
    }

    fn time(millis: i64) -> String {
        let mut out = Vec::new();
        write_event_time(&mut out, millis);
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

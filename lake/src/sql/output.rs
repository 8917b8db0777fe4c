//! Rendering query results: CSV (RFC 4180 quoting, as the export), TSV
//! (backslash escapes, no quoting), DSV (CSV's quoting around any one
//! column separator: a field holding the separator, a quote, CR or LF is
//! quoted) and JSON Lines.
//!
//! Common rules: the header and JSON keys are the output column names
//! exactly; `\n` ends lines; timestamps are UTC with milliseconds
//! (`2019-06-30T04:29:06.571Z`) whatever their unit or zone; NULL is an
//! empty field (`null` in JSON).
//!
//! Results run to millions of rows: strings, timestamps and booleans are
//! written straight from their arrays into the output buffer; other types go
//! through arrow's `ArrayFormatter` into one reused scratch string.

use std::fmt::Write as _;

use arrow::array::{Array, AsArray, BooleanArray, GenericStringArray, StringViewArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{
    DataType, Schema, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use auditx_proto::QueryOutputFormat;

use super::SqlError;

const MILLIS_PER_DAY: i64 = 86_400_000;

/// Renders the batches of one result in one format.
pub struct ResultWriter {
    format: QueryOutputFormat,
    /// Between the fields of CSV, TSV and DSV rows.
    separator: Vec<u8>,
    names: Vec<String>,
    /// JSON: `{"name":` for the first column, `,"name":` for the others.
    json_keys: Vec<Vec<u8>>,
    /// Cells of types without a fast path are formatted here first.
    scratch: String,
}

impl ResultWriter {
    pub fn new(schema: &Schema, format: QueryOutputFormat) -> Self {
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let json_keys = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mut key = vec![if i == 0 { b'{' } else { b',' }];
                write_json_string(&mut key, name);
                key.push(b':');
                key
            })
            .collect();
        let separator = match format {
            QueryOutputFormat::Tsv => b"\t".to_vec(),
            _ => b",".to_vec(),
        };
        Self {
            format,
            separator,
            names,
            json_keys,
            scratch: String::new(),
        }
    }

    /// DSV's column separator (one character; an empty one keeps `,`).
    /// CSV, TSV and JSON keep theirs.
    pub fn with_column_separator(mut self, separator: &str) -> Self {
        if self.format == QueryOutputFormat::Dsv && !separator.is_empty() {
            self.separator = separator.as_bytes().to_vec();
        }
        self
    }

    /// The column names line of CSV and TSV; nothing for JSON Lines.
    pub fn header(&self, out: &mut Vec<u8>) {
        if self.format == QueryOutputFormat::Json {
            return;
        }
        for (i, name) in self.names.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(&self.separator);
            }
            write_delimited_field(self.format, &self.separator, out, name);
        }
        out.push(b'\n');
    }

    /// Appends every row of `batch`.
    pub fn write_batch(&mut self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), SqlError> {
        let options = FormatOptions::new().with_null("");
        let columns = batch
            .columns()
            .iter()
            .map(|array| Column::new(array.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SqlError::Execution(format!("rendering results: {e}")))?;
        for row in 0..batch.num_rows() {
            match self.format {
                QueryOutputFormat::Json => self.write_json_row(&columns, row, out)?,
                QueryOutputFormat::Csv | QueryOutputFormat::Tsv | QueryOutputFormat::Dsv => {
                    self.write_delimited_row(&columns, row, out)?
                }
            }
        }
        Ok(())
    }

    fn write_delimited_row(
        &mut self,
        columns: &[Column<'_>],
        row: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), SqlError> {
        let format = self.format;
        let separator = self.separator.as_slice();
        let write_text =
            |out: &mut Vec<u8>, value: &str| write_delimited_field(format, separator, out, value);
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(separator);
            }
            if column.is_null(row) {
                continue;
            }
            match &column.cells {
                Cells::Utf8(array) => write_text(out, array.value(row)),
                Cells::LargeUtf8(array) => write_text(out, array.value(row)),
                Cells::Utf8View(array) => write_text(out, array.value(row)),
                Cells::Timestamp { values, unit } => {
                    write_timestamp_millis(out, to_millis(values[row], *unit))
                }
                Cells::Boolean(array) => out.extend_from_slice(bool_text(array.value(row))),
                Cells::Formatted { formatter, .. } => {
                    format_cell(&mut self.scratch, formatter, row)?;
                    write_text(out, &self.scratch);
                }
            }
        }
        out.push(b'\n');
        Ok(())
    }

    fn write_json_row(
        &mut self,
        columns: &[Column<'_>],
        row: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), SqlError> {
        if columns.is_empty() {
            out.extend_from_slice(b"{}\n");
            return Ok(());
        }
        for (key, column) in self.json_keys.iter().zip(columns) {
            out.extend_from_slice(key);
            if column.is_null(row) {
                out.extend_from_slice(b"null");
                continue;
            }
            match &column.cells {
                Cells::Utf8(array) => write_json_string(out, array.value(row)),
                Cells::LargeUtf8(array) => write_json_string(out, array.value(row)),
                Cells::Utf8View(array) => write_json_string(out, array.value(row)),
                Cells::Timestamp { values, unit } => {
                    out.push(b'"');
                    write_timestamp_millis(out, to_millis(values[row], *unit));
                    out.push(b'"');
                }
                Cells::Boolean(array) => out.extend_from_slice(bool_text(array.value(row))),
                Cells::Formatted { formatter, numeric } => {
                    format_cell(&mut self.scratch, formatter, row)?;
                    if *numeric && is_json_number(&self.scratch) {
                        out.extend_from_slice(self.scratch.as_bytes());
                    } else {
                        write_json_string(out, &self.scratch);
                    }
                }
            }
        }
        out.extend_from_slice(b"}\n");
        Ok(())
    }
}

/// One column of a batch, with the fastest way to render its cells.
struct Column<'a> {
    /// Logical nulls (a `NullArray` has no validity buffer but is all NULL).
    nulls: Option<NullBuffer>,
    cells: Cells<'a>,
}

enum Cells<'a> {
    Utf8(&'a GenericStringArray<i32>),
    LargeUtf8(&'a GenericStringArray<i64>),
    Utf8View(&'a StringViewArray),
    Timestamp {
        values: &'a [i64],
        unit: TimeUnit,
    },
    Boolean(&'a BooleanArray),
    Formatted {
        formatter: ArrayFormatter<'a>,
        /// Integers, floats and decimals: JSON numbers.
        numeric: bool,
    },
}

impl<'a> Column<'a> {
    fn new(
        array: &'a dyn Array,
        options: &FormatOptions<'a>,
    ) -> Result<Self, arrow::error::ArrowError> {
        let cells = match array.data_type() {
            DataType::Utf8 => Cells::Utf8(array.as_string::<i32>()),
            DataType::LargeUtf8 => Cells::LargeUtf8(array.as_string::<i64>()),
            DataType::Utf8View => Cells::Utf8View(array.as_string_view()),
            DataType::Boolean => Cells::Boolean(array.as_boolean()),
            DataType::Timestamp(unit, _) => Cells::Timestamp {
                values: match unit {
                    TimeUnit::Second => array.as_primitive::<TimestampSecondType>().values(),
                    TimeUnit::Millisecond => {
                        array.as_primitive::<TimestampMillisecondType>().values()
                    }
                    TimeUnit::Microsecond => {
                        array.as_primitive::<TimestampMicrosecondType>().values()
                    }
                    TimeUnit::Nanosecond => {
                        array.as_primitive::<TimestampNanosecondType>().values()
                    }
                },
                unit: *unit,
            },
            data_type => Cells::Formatted {
                formatter: ArrayFormatter::try_new(array, options)?,
                numeric: data_type.is_numeric(),
            },
        };
        Ok(Self {
            nulls: array.logical_nulls(),
            cells,
        })
    }

    fn is_null(&self, row: usize) -> bool {
        self.nulls.as_ref().is_some_and(|nulls| nulls.is_null(row))
    }
}

/// Milliseconds since the epoch of a timestamp in `unit`, rounded down.
fn to_millis(value: i64, unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => value.saturating_mul(1000),
        TimeUnit::Millisecond => value,
        TimeUnit::Microsecond => value.div_euclid(1000),
        TimeUnit::Nanosecond => value.div_euclid(1_000_000),
    }
}

fn format_cell(
    scratch: &mut String,
    formatter: &ArrayFormatter<'_>,
    row: usize,
) -> Result<(), SqlError> {
    scratch.clear();
    write!(scratch, "{}", formatter.value(row))
        .map_err(|_| SqlError::Execution("rendering results: a value cannot be formatted".into()))
}

fn bool_text(value: bool) -> &'static [u8] {
    if value {
        b"true"
    } else {
        b"false"
    }
}

/// `1`, `-2.5`, `1e-7`: what a JSON parser reads as a number (`NaN` and
/// `inf` are not).
fn is_json_number(text: &str) -> bool {
    let bytes = text.as_bytes();
    matches!(bytes.first(), Some(b'-' | b'0'..=b'9'))
        && bytes
            .iter()
            .all(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
}

fn write_json_string(out: &mut Vec<u8>, value: &str) {
    serde_json::to_writer(out, value).expect("writing JSON to a Vec cannot fail");
}

/// Appends `value` as one field of a `format` row separated by `separator`.
fn write_delimited_field(
    format: QueryOutputFormat,
    separator: &[u8],
    out: &mut Vec<u8>,
    value: &str,
) {
    match format {
        QueryOutputFormat::Tsv => write_tsv_field(out, value),
        _ if separator == b"," => write_csv_field(out, value),
        _ => write_dsv_field(out, value, separator),
    }
}

/// Appends `value` as one DSV field: CSV's rule with `separator` in place
/// of the comma (quoted iff it holds the separator, a quote, CR or LF).
fn write_dsv_field(out: &mut Vec<u8>, value: &str, separator: &[u8]) {
    let bytes = value.as_bytes();
    let special = bytes.iter().any(|&b| b == b'"' || b == b'\n' || b == b'\r')
        || (!separator.is_empty() && bytes.windows(separator.len()).any(|w| w == separator));
    if !special {
        out.extend_from_slice(bytes);
        return;
    }
    out.push(b'"');
    for &b in bytes {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Appends `value` as one CSV field: quoted iff it holds a comma, a quote,
/// CR or LF, with inner quotes doubled (the export's rule, SPEC §6).
pub fn write_csv_field(out: &mut Vec<u8>, value: &str) {
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

/// Appends `value` as one TSV field: backslash, tab, LF and CR as `\\`,
/// `\t`, `\n`, `\r`; nothing is quoted.
fn write_tsv_field(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escaped);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends `millis` (since the Unix epoch) as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
/// Years outside 0..=9999 get a sign and at least four digits, as chrono's
/// `%Y` writes them.
pub fn write_timestamp_millis(out: &mut Vec<u8>, millis: i64) {
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
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, NullArray, StringArray,
        TimestampMillisecondArray, TimestampNanosecondArray,
    };
    use arrow::datatypes::Field;

    use super::*;

    /// 2019-06-30T04:29:06.571Z
    const T: i64 = 1_561_868_946_571;

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap()
    }

    fn render(batch: &RecordBatch, format: QueryOutputFormat) -> String {
        let mut writer = ResultWriter::new(&batch.schema(), format);
        let mut out = Vec::new();
        writer.header(&mut out);
        writer.write_batch(batch, &mut out).unwrap();
        writer.write_batch(batch, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn sample() -> RecordBatch {
        batch(vec![
            (
                "Name",
                Arc::new(StringArray::from(vec![
                    Some("plain"),
                    Some("a,b \"q\"\nline\\tab\there\r"),
                    None,
                ])),
            ),
            (
                "Timestamp",
                Arc::new(
                    TimestampMillisecondArray::from(vec![Some(T), None, Some(-1)])
                        .with_timezone("UTC"),
                ),
            ),
            (
                "n",
                Arc::new(Int64Array::from(vec![Some(42), Some(-7), None])),
            ),
            (
                "x",
                Arc::new(Float64Array::from(vec![Some(1.5), Some(f64::NAN), None])),
            ),
            (
                "ok",
                Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
            ),
            (
                "day",
                Arc::new(Date32Array::from(vec![Some(17_987), None, Some(0)])),
            ),
        ])
    }

    #[test]
    fn csv_quotes_like_the_export_and_leaves_nulls_empty() {
        let rows = "plain,2019-06-30T04:29:06.571Z,42,1.5,true,2019-04-01\n\
                    \"a,b \"\"q\"\"\nline\\tab\there\r\",,-7,NaN,false,\n\
                    ,1969-12-31T23:59:59.999Z,,,,1970-01-01\n";
        assert_eq!(
            render(&sample(), QueryOutputFormat::Csv),
            format!("Name,Timestamp,n,x,ok,day\n{rows}{rows}")
        );
    }

    #[test]
    fn tsv_escapes_instead_of_quoting() {
        let rows = "plain\t2019-06-30T04:29:06.571Z\t42\t1.5\ttrue\t2019-04-01\n\
                    a,b \"q\"\\nline\\\\tab\\there\\r\t\t-7\tNaN\tfalse\t\n\
                    \t1969-12-31T23:59:59.999Z\t\t\t\t1970-01-01\n";
        assert_eq!(
            render(&sample(), QueryOutputFormat::Tsv),
            format!("Name\tTimestamp\tn\tx\tok\tday\n{rows}{rows}")
        );
    }

    #[test]
    fn json_lines_type_numbers_booleans_and_nulls() {
        let rows = concat!(
            r#"{"Name":"plain","Timestamp":"2019-06-30T04:29:06.571Z","n":42,"x":1.5,"ok":true,"day":"2019-04-01"}"#,
            "\n",
            r#"{"Name":"a,b \"q\"\nline\\tab\there\r","Timestamp":null,"n":-7,"x":"NaN","ok":false,"day":null}"#,
            "\n",
            r#"{"Name":null,"Timestamp":"1969-12-31T23:59:59.999Z","n":null,"x":null,"ok":null,"day":"1970-01-01"}"#,
            "\n",
        );
        let out = render(&sample(), QueryOutputFormat::Json);
        assert_eq!(out, format!("{rows}{rows}"));
        for line in out.lines() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(value.as_object().unwrap().len(), 6);
        }
    }

    #[test]
    fn timestamps_of_any_unit_and_zone_are_utc_milliseconds() {
        let b = batch(vec![
            (
                "paris",
                Arc::new(TimestampMillisecondArray::from(vec![T]).with_timezone("Europe/Paris")),
            ),
            (
                "ns",
                Arc::new(TimestampNanosecondArray::from(vec![
                    T * 1_000_000 + 999_999,
                ])),
            ),
            ("nothing", Arc::new(NullArray::new(1))),
        ]);
        assert_eq!(
            render(&b, QueryOutputFormat::Csv),
            "paris,ns,nothing\n\
             2019-06-30T04:29:06.571Z,2019-06-30T04:29:06.571Z,\n\
             2019-06-30T04:29:06.571Z,2019-06-30T04:29:06.571Z,\n"
        );
        assert!(render(&b, QueryOutputFormat::Json).contains(r#""nothing":null}"#));
    }

    #[test]
    fn dsv_quotes_fields_holding_its_separator() {
        let b = batch(vec![
            (
                "a|b",
                Arc::new(StringArray::from(vec![Some("x|y"), Some("q\"1"), None])),
            ),
            (
                "n,m",
                Arc::new(Int64Array::from(vec![Some(1), Some(2), Some(3)])),
            ),
            (
                "t",
                Arc::new(StringArray::from(vec![
                    Some("a,b"),
                    Some("l\nf"),
                    Some("¦"),
                ])),
            ),
        ]);
        let mut writer =
            ResultWriter::new(&b.schema(), QueryOutputFormat::Dsv).with_column_separator("|");
        let mut out = Vec::new();
        writer.header(&mut out);
        writer.write_batch(&b, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a|b\"|n,m|t\n\"x|y\"|1|a,b\n\"q\"\"1\"|2|\"l\nf\"\n|3|¦\n"
        );
        // A separator of several bytes (one character).
        let mut writer =
            ResultWriter::new(&b.schema(), QueryOutputFormat::Dsv).with_column_separator("¦");
        let mut out = Vec::new();
        writer.write_batch(&b, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "x|y¦1¦a,b\n\"q\"\"1\"¦2¦\"l\nf\"\n¦3¦\"¦\"\n"
        );
        // The separator only applies to DSV.
        let writer =
            ResultWriter::new(&b.schema(), QueryOutputFormat::Csv).with_column_separator("|");
        let mut out = Vec::new();
        writer.header(&mut out);
        assert_eq!(out, b"a|b,\"n,m\",t\n");
    }

    #[test]
    fn headers_keep_names_exactly_and_escape_them() {
        let b = batch(vec![
            ("Mixed Case", Arc::new(Int64Array::from(vec![1]))),
            ("a,b", Arc::new(Int64Array::from(vec![2]))),
            ("t\tab", Arc::new(Int64Array::from(vec![3]))),
        ]);
        let mut out = Vec::new();
        ResultWriter::new(&b.schema(), QueryOutputFormat::Csv).header(&mut out);
        assert_eq!(out, b"Mixed Case,\"a,b\",t\tab\n");
        out.clear();
        ResultWriter::new(&b.schema(), QueryOutputFormat::Tsv).header(&mut out);
        assert_eq!(out, b"Mixed Case\ta,b\tt\\tab\n");
        out.clear();
        ResultWriter::new(&b.schema(), QueryOutputFormat::Json).header(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn timestamps_match_chrono_far_from_the_epoch() {
        for millis in [0, T, -62_135_596_800_000, 253_402_300_799_999, -86_400_001] {
            let mut out = Vec::new();
            write_timestamp_millis(&mut out, millis);
            let expected = chrono::DateTime::from_timestamp_millis(millis)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }
}

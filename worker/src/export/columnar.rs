//! Every format rendered straight from the Arrow columns the lake returns.
//! The chunk's rows are put in export order as positions in its record
//! batches; CSV and JSON Lines are written field by field from the arrays,
//! Parquet row groups gathered from them ([`super::parquet`]): no row is
//! built, no field copied on the way, and columns the export does not show
//! are never read.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::datatypes::TimestampMillisecondType;
use auditx_lake::audit_trail::schema::audit_columns as ac;

use crate::error::WorkerError;
use crate::export::chunk::{Fields, RenderedChunk, PAYLOAD};
use crate::export::{buffers, csv, jsonl};

/// The lake columns an export row is made of, in CSV order (the run's
/// status, fifth in the export, comes from the runs table): four always
/// set, then the optional ones (from [`FIRST_OPTIONAL`]).
pub const COLUMNS: [&str; 11] = [
    ac::EVENT_ID,
    ac::EVENT_TIME,
    ac::SESSION_ID,
    ac::RUN_TYPE,
    ac::OPERATOR_ID,
    ac::OPERATOR_TYPE,
    ac::OPERATOR_NAME,
    ac::ERROR_CODE,
    ac::ERROR_MESSAGE,
    ac::TRACE_ID,
    ac::PAYLOAD,
];

const FIRST_OPTIONAL: usize = 4;

/// The export columns of one record batch.
pub(crate) struct Columns<'a> {
    pub(crate) event_id: &'a StringArray,
    event_time: &'a [i64],
    pub(crate) session_id: &'a StringArray,
    pub(crate) run_type: &'a StringArray,
    /// The optional columns of [`COLUMNS`].
    pub(crate) optional: [&'a StringArray; 7],
}

impl<'a> Columns<'a> {
    fn new(batch: &'a RecordBatch) -> Result<Self, WorkerError> {
        let strings = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or_else(|| missing(name))
        };
        let event_time = batch
            .column_by_name(ac::EVENT_TIME)
            .and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>())
            .ok_or_else(|| missing(ac::EVENT_TIME))?;
        let event_id = strings(ac::EVENT_ID)?;
        let mut optional = [event_id; 7];
        for (column, name) in optional.iter_mut().zip(&COLUMNS[FIRST_OPTIONAL..]) {
            *column = strings(name)?;
        }
        Ok(Self {
            event_id,
            event_time: event_time.values(),
            session_id: strings(ac::SESSION_ID)?,
            run_type: strings(ac::RUN_TYPE)?,
            optional,
        })
    }

    fn optional(&self, column: usize, row: usize) -> Option<&'a str> {
        let array = self.optional[column];
        array.is_valid(row).then(|| array.value(row))
    }

    /// The bytes of text the row's fields hold (an estimate of its CSV).
    fn text_len(&self) -> usize {
        let len = |a: &StringArray| {
            let offsets = a.value_offsets();
            (offsets[offsets.len() - 1] - offsets[0]) as usize
        };
        len(self.event_id)
            + len(self.session_id)
            + len(self.run_type)
            + self.optional.iter().map(|a| len(a)).sum::<usize>()
            + len(self.optional[PAYLOAD]) / 4
    }
}

fn missing(name: &str) -> WorkerError {
    WorkerError::Render(format!(
        "the lake returned no {name} column of the expected type"
    ))
}

/// A row: its eventTime (the first sort key, kept inline), its batch and
/// its index there.
pub(crate) type Position = (i64, u32, u32);

/// The rows of a chunk's record batches in export order: by (`eventTime`,
/// `eventId`), re-sent copies of an event (same eventTime and eventId)
/// once; which copy is decided on the other columns, so the output does
/// not depend on the order the lake returned the rows in.
pub(crate) struct Ordered<'a> {
    pub(crate) columns: Vec<Columns<'a>>,
    pub(crate) order: Vec<Position>,
}

impl<'a> Ordered<'a> {
    pub(crate) fn new(batches: &'a [RecordBatch]) -> Result<Self, WorkerError> {
        let columns = batches
            .iter()
            .map(Columns::new)
            .collect::<Result<Vec<_>, _>>()?;
        let order = ordered(&columns);
        Ok(Self { columns, order })
    }

    /// Bytes of text the rows' fields hold (an estimate of their CSV).
    fn text_len(&self) -> usize {
        self.columns.iter().map(Columns::text_len).sum()
    }
}

/// Writes the rows of `batches` in export order with `write`, noting the
/// offset of every `stride`-th row; `per_row` is what a row's format adds
/// to its text, for the buffer's size.
fn render_text(
    batches: &[RecordBatch],
    run_statuses: &BTreeMap<String, String>,
    stride: u32,
    per_row: usize,
    mut write: impl FnMut(&mut Vec<u8>, &Fields) -> Result<(), WorkerError>,
) -> Result<RenderedChunk, WorkerError> {
    let rows = Ordered::new(batches)?;
    let stride = stride.max(1) as usize;
    let mut bytes = buffers::take(rows.text_len() + rows.order.len() * per_row);
    let mut row_offsets = Vec::with_capacity(rows.order.len().div_ceil(stride));
    let mut statuses = StatusLookup::new(run_statuses);
    for (i, &(time, batch, row)) in rows.order.iter().enumerate() {
        if i % stride == 0 {
            row_offsets.push(bytes.len() as u64);
        }
        let (c, row) = (&rows.columns[batch as usize], row as usize);
        let session_id = c.session_id.value(row);
        let fields = Fields {
            event_id: c.event_id.value(row),
            event_time_ms: time,
            session_id,
            run_type: c.run_type.value(row),
            run_status: statuses.get(session_id),
            optional: std::array::from_fn(|column| c.optional(column, row)),
        };
        write(&mut bytes, &fields)?;
    }
    Ok(RenderedChunk {
        data_len: bytes.len() as u64,
        bytes,
        rows: rows.order.len() as u64,
        row_offsets,
    })
}

/// Run statuses by sessionId. Rows in time order mostly follow their run's
/// rows: a status is looked up only when the run changes.
pub(crate) struct StatusLookup<'a> {
    statuses: &'a BTreeMap<String, String>,
    last: Option<(&'a str, Option<&'a str>)>,
}

impl<'a> StatusLookup<'a> {
    pub(crate) fn new(statuses: &'a BTreeMap<String, String>) -> Self {
        Self {
            statuses,
            last: None,
        }
    }

    pub(crate) fn get(&mut self, session_id: &'a str) -> Option<&'a str> {
        match self.last {
            Some((session, status)) if session == session_id => status,
            _ => {
                let status = self.statuses.get(session_id).map(String::as_str);
                self.last = Some((session_id, status));
                status
            }
        }
    }
}

/// Orders the rows of `batches` (see [`Ordered`]) and renders them as CSV
/// data rows, noting the offset of every `stride`-th row.
pub fn render_csv(
    batches: &[RecordBatch],
    run_statuses: &BTreeMap<String, String>,
    stride: u32,
) -> Result<RenderedChunk, WorkerError> {
    render_text(batches, run_statuses, stride, 64, |out, f| {
        let text = |column: usize| f.optional[column].unwrap_or("");
        csv::write_row(
            out,
            &csv::Row {
                event_id: f.event_id,
                event_time_ms: f.event_time_ms,
                session_id: f.session_id,
                run_type: f.run_type,
                run_status: f.run_status.unwrap_or(""),
                operator_id: text(0),
                operator_type: text(1),
                operator_name: text(2),
                error_code: text(3),
                error_message: text(4),
                trace_id: text(5),
                payload: text(PAYLOAD),
            },
        );
        Ok(())
    })
}

/// Orders the rows of `batches` (see [`Ordered`]) and renders them as JSON
/// Lines, noting the offset of every `stride`-th row.
pub fn render_jsonl(
    batches: &[RecordBatch],
    run_statuses: &BTreeMap<String, String>,
    stride: u32,
) -> Result<RenderedChunk, WorkerError> {
    // Keys and quotes: about 200 bytes a row over the text.
    render_text(batches, run_statuses, stride, 200, jsonl::write_row)
}

/// The rows in export order, re-sent copies dropped.
fn ordered(columns: &[Columns]) -> Vec<Position> {
    let mut order: Vec<Position> =
        Vec::with_capacity(columns.iter().map(|c| c.event_time.len()).sum());
    for (batch, c) in columns.iter().enumerate() {
        order.extend(
            c.event_time
                .iter()
                .enumerate()
                .map(|(row, &time)| (time, batch as u32, row as u32)),
        );
    }
    let event_id =
        |&(_, batch, row): &Position| columns[batch as usize].event_id.value(row as usize);
    order.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| event_id(a).cmp(event_id(b)))
            .then_with(|| tie_break(columns, a, b))
    });
    order.dedup_by(|a, b| a.0 == b.0 && event_id(a) == event_id(b));
    order
}

/// The order of two copies of one event: on sessionId, runType, payload,
/// then the other optional columns in CSV order (absent before empty).
fn tie_break(columns: &[Columns], a: &Position, b: &Position) -> Ordering {
    let (ca, ra) = (&columns[a.1 as usize], a.2 as usize);
    let (cb, rb) = (&columns[b.1 as usize], b.2 as usize);
    ca.session_id
        .value(ra)
        .cmp(cb.session_id.value(rb))
        .then_with(|| ca.run_type.value(ra).cmp(cb.run_type.value(rb)))
        .then_with(|| {
            [PAYLOAD, 0, 1, 2, 3, 4, 5]
                .into_iter()
                .map(|column| ca.optional(column, ra).cmp(&cb.optional(column, rb)))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, TimestampMillisecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    use super::*;

    /// One event: id, time, run, payload.
    type Event<'a> = (&'a str, i64, &'a str, Option<&'a str>);

    /// A record batch of the CSV columns, as the lake returns them.
    fn batch(events: &[Event]) -> RecordBatch {
        let utf8 = |name: &str| Field::new(name, DataType::Utf8, true);
        let mut fields = vec![
            utf8(ac::EVENT_ID),
            Field::new(
                ac::EVENT_TIME,
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
            utf8(ac::SESSION_ID),
            utf8(ac::RUN_TYPE),
        ];
        fields.extend(COLUMNS[FIRST_OPTIONAL..].iter().map(|name| utf8(name)));
        let strings = |f: &dyn Fn(&Event) -> Option<String>| -> ArrayRef {
            Arc::new(events.iter().map(f).collect::<StringArray>())
        };
        let mut arrays: Vec<ArrayRef> = vec![
            strings(&|e| Some(e.0.to_owned())),
            Arc::new(
                TimestampMillisecondArray::from_iter_values(events.iter().map(|e| e.1))
                    .with_timezone("UTC"),
            ),
            strings(&|e| Some(e.2.to_owned())),
            strings(&|_| Some("NORMAL".to_owned())),
            strings(&|e| Some(format!("op-{}", e.0))),
            strings(&|_| None),
            strings(&|_| Some("Rate, usage".to_owned())),
            strings(&|_| None),
            strings(&|_| None),
            strings(&|_| None),
        ];
        arrays.push(strings(&|e| e.3.map(str::to_owned)));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
    }

    fn render(batches: &[RecordBatch], stride: u32) -> (String, Vec<u64>) {
        let statuses = BTreeMap::from([
            ("R-1".to_owned(), "COMPLETED".to_owned()),
            ("R-2".to_owned(), "FAILED".to_owned()),
        ]);
        let rendered = render_csv(batches, &statuses, stride).unwrap();
        assert_eq!(rendered.data_len, rendered.bytes.len() as u64);
        let text = String::from_utf8(rendered.bytes).unwrap();
        assert_eq!(rendered.rows, text.lines().count() as u64);
        (text, rendered.row_offsets)
    }

    fn ids_and_times(text: &str) -> Vec<String> {
        text.lines()
            .map(|line| line.split(',').take(2).collect::<Vec<_>>().join(" "))
            .collect()
    }

    #[test]
    fn rows_of_every_batch_are_ordered_by_time_then_event_id_and_duplicates_dropped() {
        let batches = [
            batch(&[("b", 2, "R-1", None), ("a", 3, "R-1", None)]),
            batch(&[("a", 2, "R-2", None), ("b", 2, "R-1", None)]),
            batch(&[("c", 1, "R-1", None), ("b", 3, "R-2", None)]),
        ];
        let (text, _) = render(&batches, 1);
        assert_eq!(
            ids_and_times(&text),
            [
                "c 1970-01-01T00:00:00.001Z",
                "a 1970-01-01T00:00:00.002Z",
                "b 1970-01-01T00:00:00.002Z",
                "a 1970-01-01T00:00:00.003Z",
                "b 1970-01-01T00:00:00.003Z",
            ]
        );
        // Every column, the run's status looked up, absent values empty.
        assert_eq!(
            text.lines().next().unwrap(),
            "c,1970-01-01T00:00:00.001Z,R-1,NORMAL,COMPLETED,op-c,,\"Rate, usage\",,,,"
        );
        assert!(text
            .lines()
            .any(|l| l.starts_with("a,1970-01-01T00:00:00.002Z,R-2,NORMAL,FAILED,op-a,")));
    }

    #[test]
    fn the_surviving_copy_does_not_depend_on_input_order() {
        let copies = [
            ("a", 1, "R-1", Some(r#"{"v":2}"#)),
            ("a", 1, "R-1", None),
            ("a", 1, "R-1", Some(r#"{"v":1}"#)),
        ];
        let forward = render(&[batch(&copies)], 1).0;
        let mut reversed = copies;
        reversed.reverse();
        let split: Vec<_> = reversed.iter().map(|e| batch(&[*e])).collect();
        assert_eq!(render(&split, 1).0, forward);
        // An absent payload sorts before any present one.
        assert_eq!(
            forward,
            "a,1970-01-01T00:00:00.001Z,R-1,NORMAL,COMPLETED,op-a,,\"Rate, usage\",,,,\n"
        );
    }

    #[test]
    fn offsets_mark_every_stride_th_row() {
        let events: Vec<_> = (0..5)
            .map(|i| {
                (
                    ["e0", "e1", "e2", "e3", "e4"][i],
                    i as i64,
                    "R-1",
                    Some("{\"x\":\"y\"}"),
                )
            })
            .collect();
        let (text, offsets) = render(&[batch(&events)], 2);
        let line_starts: Vec<u64> = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i as u64 + 1))
            .take(5)
            .collect();
        assert_eq!(offsets, [line_starts[0], line_starts[2], line_starts[4]]);
        assert!(text.ends_with(",\"{\"\"x\"\":\"\"y\"\"}\"\n"), "{text}");
        assert_eq!(render(&[batch(&events)], 1).1, line_starts);
        assert_eq!(render(&[batch(&events)], 1000).1, [0]);
    }

    #[test]
    fn no_rows_render_nothing() {
        let empty = RenderedChunk {
            bytes: Vec::new(),
            rows: 0,
            row_offsets: Vec::new(),
            data_len: 0,
        };
        assert_eq!(render_csv(&[], &BTreeMap::new(), 10).unwrap(), empty);
        assert_eq!(
            render_csv(&[batch(&[])], &BTreeMap::new(), 10).unwrap(),
            empty
        );
    }

    #[test]
    fn a_batch_without_a_csv_column_is_an_error_not_a_panic() {
        let full = batch(&[("a", 1, "R-1", None)]);
        let without = full.project(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
        let error = render_csv(&[without], &BTreeMap::new(), 1).unwrap_err();
        assert_eq!(
            error.to_string(),
            "rendering failed: the lake returned no payload column of the expected type"
        );
    }

    #[test]
    fn jsonl_rows_come_in_the_csv_order_with_nulls_and_line_offsets() {
        let batches = [
            batch(&[("b", 2, "R-1", Some("{\"v\":1}")), ("a", 3, "R-2", None)]),
            batch(&[("a", 2, "R-3", Some("[1,\n2]")), ("b", 2, "R-1", None)]),
        ];
        let statuses = BTreeMap::from([("R-1".to_owned(), "COMPLETED".to_owned())]);
        let rendered = render_jsonl(&batches, &statuses, 2).unwrap();
        let text = String::from_utf8(rendered.bytes.clone()).unwrap();
        assert_eq!(rendered.data_len, text.len() as u64);
        assert_eq!(rendered.rows, 3);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let keys: Vec<(String, String)> = lines
            .iter()
            .map(|l| (l["eventId"].to_string(), l["eventTime"].to_string()))
            .collect();
        assert_eq!(
            keys,
            [
                ("\"a\"".into(), "\"1970-01-01T00:00:00.002Z\"".into()),
                ("\"b\"".into(), "\"1970-01-01T00:00:00.002Z\"".into()),
                ("\"a\"".into(), "\"1970-01-01T00:00:00.003Z\"".into()),
            ]
        );
        // The copy of b@2 without a payload sorts first and survives; R-3
        // has no status: null, where the CSV has an empty field.
        assert_eq!(lines[1]["payload"], serde_json::Value::Null);
        assert_eq!(lines[1]["runStatus"], "COMPLETED");
        assert_eq!(lines[0]["runStatus"], serde_json::Value::Null);
        assert_eq!(lines[0]["payload"], serde_json::json!([1, 2]));
        assert_eq!(lines[0]["operatorType"], serde_json::Value::Null);
        assert_eq!(lines[0]["operatorName"], "Rate, usage");
        let second_line = text.find('\n').unwrap() as u64 + 1;
        let third_line = second_line + text[second_line as usize..].find('\n').unwrap() as u64 + 1;
        assert_eq!(rendered.row_offsets, [0, third_line]);
    }
}

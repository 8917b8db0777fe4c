//! CSV rendered straight from the Arrow columns the lake returns. The
//! chunk's rows are put in export order as positions in its record
//! batches and written field by field from the arrays: no row is built,
//! no field copied on the way, and columns the CSV does not show are never
//! read. (JSON Lines and Parquet still build [`auditx_lake::AuditRow`]s:
//! see [`super::render`].)

use std::cmp::Ordering;
use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::datatypes::TimestampMillisecondType;
use auditx_lake::audit_trail::schema::audit_columns as ac;

use crate::error::WorkerError;
use crate::export::chunk::RenderedChunk;
use crate::export::csv;

/// The lake columns a CSV row is made of, in CSV order: four always set,
/// then the optional ones (from [`FIRST_OPTIONAL`]).
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
/// The payload among the optional columns.
const PAYLOAD: usize = 6;

/// The CSV columns of one record batch.
struct Columns<'a> {
    event_id: &'a StringArray,
    event_time: &'a [i64],
    session_id: &'a StringArray,
    run_type: &'a StringArray,
    /// The optional columns of [`COLUMNS`].
    optional: [&'a StringArray; 7],
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
type Position = (i64, u32, u32);

/// Orders the rows of `batches` by (`eventTime`, `eventId`) and renders
/// them as CSV data rows, noting the offset of every `stride`-th row.
/// Re-sent copies of an event (same eventTime and eventId) are rendered
/// once; which copy is decided on the other CSV columns, so the bytes do
/// not depend on the order the lake returned the rows in.
pub fn render_csv(
    batches: &[RecordBatch],
    run_statuses: &BTreeMap<String, String>,
    stride: u32,
) -> Result<RenderedChunk, WorkerError> {
    let columns = batches
        .iter()
        .map(Columns::new)
        .collect::<Result<Vec<_>, _>>()?;
    let order = ordered(&columns);
    let stride = stride.max(1) as usize;
    let estimate: usize = columns.iter().map(Columns::text_len).sum::<usize>() + order.len() * 64;
    let mut bytes = Vec::with_capacity(estimate);
    let mut row_offsets = Vec::with_capacity(order.len().div_ceil(stride));
    // Rows in time order mostly follow their run's rows: look a status
    // up only when the run changes.
    let (mut last_session, mut last_status) = (None, "");
    for (i, &(time, batch, row)) in order.iter().enumerate() {
        if i % stride == 0 {
            row_offsets.push(bytes.len() as u64);
        }
        let (c, row) = (&columns[batch as usize], row as usize);
        let session_id = c.session_id.value(row);
        if last_session != Some(session_id) {
            last_status = run_statuses.get(session_id).map_or("", String::as_str);
            last_session = Some(session_id);
        }
        let text = |column| c.optional(column, row).unwrap_or("");
        csv::write_row(
            &mut bytes,
            &csv::Row {
                event_id: c.event_id.value(row),
                event_time_ms: time,
                session_id,
                run_type: c.run_type.value(row),
                run_status: last_status,
                operator_id: text(0),
                operator_type: text(1),
                operator_name: text(2),
                error_code: text(3),
                error_message: text(4),
                trace_id: text(5),
                payload: text(PAYLOAD),
            },
        );
    }
    Ok(RenderedChunk {
        data_len: bytes.len() as u64,
        bytes,
        rows: order.len() as u64,
        row_offsets,
    })
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
}

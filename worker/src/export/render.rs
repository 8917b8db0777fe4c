//! Stage one of an export: render one chunk of the lake into a staging
//! object and report the byte offsets the scheduler cuts files at.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use auditx_common::s3::ObjectStore;
use auditx_lake::audit_trail::read::{ChunkRead, EventIdRange};
use auditx_lake::AuditRow;
use auditx_proto::{OutputFormat, RenderOutcome, RenderTask};
use bytes::Bytes;

use crate::error::WorkerError;
use crate::export::chunk::RenderedChunk;
use crate::export::{columnar, jsonl, parquet};

/// Reads the chunk's rows from the lake, renders them in export order and
/// writes them to `task.staging_key` in the export bucket.
///
/// Rendering is deterministic, so a redelivered task overwrites the staging
/// object with the very bytes (and offsets) it reported the first time.
pub async fn render_chunk(
    store: &ObjectStore,
    lake_bucket: &str,
    export_bucket: &str,
    task: &RenderTask,
) -> Result<RenderOutcome, WorkerError> {
    if task.offset_stride == 0 {
        return Err(WorkerError::InvalidTask(
            "offset_stride must be positive".into(),
        ));
    }
    // A hot millisecond split by eventId: only this chunk's share of it is
    // decoded, so memory stays bounded by the chunk, not the millisecond.
    let event_ids = EventIdRange {
        from: task.event_id_from.clone(),
        to: task.event_id_to.clone(),
    };
    // Sorting and rendering are CPU work (tens of milliseconds per chunk)
    // that must not stall the threads driving I/O.
    let read = ChunkRead {
        sources: &task.sources,
        from_ms: task.from_ms,
        to_ms: task.to_ms,
        event_ids: &event_ids,
        filter: &task.filter,
    };
    let (run_statuses, stride) = (task.run_statuses.clone(), task.offset_stride);
    let rendered = match task.format {
        OutputFormat::Csv => {
            let batches = read.batches(store, lake_bucket, &columnar::COLUMNS).await?;
            off_the_runtime(move || columnar::render_csv(&batches, &run_statuses, stride)).await?
        }
        format => {
            let mut rows = read.rows(store, lake_bucket).await?;
            off_the_runtime(move || {
                order_rows(&mut rows);
                match format {
                    OutputFormat::Jsonl => render_jsonl(&rows, &run_statuses, stride),
                    _ => parquet::render_parquet(&rows, &run_statuses, stride),
                }
            })
            .await?
        }
    };
    let bytes = rendered.data_len;
    store
        .put(
            export_bucket,
            &task.staging_key,
            Bytes::from(rendered.bytes),
            task.format.content_type(),
        )
        .await?;
    Ok(RenderOutcome {
        request_id: task.request_id.clone(),
        chunk: task.chunk,
        staging_key: task.staging_key.clone(),
        rows: rendered.rows,
        bytes,
        row_offsets: rendered.row_offsets,
        event_ids_bounded: true,
    })
}

/// Runs `work` on the blocking pool, inside the current span.
async fn off_the_runtime<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, WorkerError> + Send + 'static,
) -> Result<T, WorkerError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Sorts rows by (`eventTime`, `eventId`) and drops re-sent copies of an
/// event. Ties are broken on every other column so that the result does not
/// depend on the order the lake returned the rows in.
pub fn order_rows(rows: &mut Vec<AuditRow>) {
    rows.sort_unstable_by(|a, b| {
        a.event_time_ms
            .cmp(&b.event_time_ms)
            .then_with(|| a.event_id.cmp(&b.event_id))
            .then_with(|| tie_break(a, b))
    });
    rows.dedup_by(|a, b| a.event_time_ms == b.event_time_ms && a.event_id == b.event_id);
}

fn tie_break(a: &AuditRow, b: &AuditRow) -> Ordering {
    fn key(r: &AuditRow) -> impl Ord + '_ {
        (
            (&r.session_id, &r.run_type, &r.record_type, &r.payload),
            (&r.operator_id, &r.operator_type, &r.operator_name),
            (&r.error_code, &r.error_message, &r.trace_id),
            (&r.tenant, &r.entity, &r.org, r.meter_id),
        )
    }
    key(a).cmp(&key(b))
}

/// Renders ordered rows as JSON Lines, noting the offset of every
/// `stride`-th row.
pub fn render_jsonl(
    rows: &[AuditRow],
    run_statuses: &BTreeMap<String, String>,
    stride: u32,
) -> Result<RenderedChunk, WorkerError> {
    let stride = stride.max(1) as usize;
    // Keys and quotes: about 200 bytes a row over the CSV's.
    let mut bytes = Vec::with_capacity(estimated_size(rows) + rows.len() * 200);
    let mut row_offsets = Vec::with_capacity(rows.len().div_ceil(stride));
    for (i, row) in rows.iter().enumerate() {
        if i % stride == 0 {
            row_offsets.push(bytes.len() as u64);
        }
        jsonl::write_row(&mut bytes, row, run_statuses)?;
    }
    Ok(RenderedChunk {
        data_len: bytes.len() as u64,
        bytes,
        rows: rows.len() as u64,
        row_offsets,
    })
}

/// Close to the rendered size (quotes aside), so the buffer is allocated once.
fn estimated_size(rows: &[AuditRow]) -> usize {
    let len = |value: &Option<String>| value.as_ref().map_or(0, String::len);
    rows.iter()
        .map(|r| {
            // Timestamp, separators, line end, a run status and some quoting.
            64 + r.event_id.len()
                + r.session_id.len()
                + r.run_type.len()
                + len(&r.operator_id)
                + len(&r.operator_type)
                + len(&r.operator_name)
                + len(&r.error_code)
                + len(&r.error_message)
                + len(&r.trace_id)
                + len(&r.payload) * 5 / 4
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(event_id: &str, event_time_ms: i64, payload: &str) -> AuditRow {
        AuditRow {
            tenant: "t1".into(),
            entity: None,
            org: None,
            meter_id: 7,
            session_id: "R-1".into(),
            run_type: "NORMAL".into(),
            record_type: "SAMPLE".into(),
            operator_id: None,
            operator_type: None,
            operator_name: None,
            event_id: event_id.into(),
            trace_id: None,
            event_time_ms,
            error_code: None,
            error_message: None,
            payload: Some(payload.into()),
        }
    }

    fn ids(rows: &[AuditRow]) -> Vec<&str> {
        rows.iter().map(|r| r.event_id.as_str()).collect()
    }

    #[test]
    fn rows_are_ordered_by_time_then_event_id_and_duplicates_dropped() {
        let mut rows = vec![
            row("b", 2, "{}"),
            row("a", 3, "{}"),
            row("a", 2, "{}"),
            row("b", 2, "{}"),
            row("c", 1, "{}"),
            row("b", 3, "{}"),
        ];
        order_rows(&mut rows);
        assert_eq!(ids(&rows), ["c", "a", "b", "a", "b"]);
        assert_eq!(
            rows.iter().map(|r| r.event_time_ms).collect::<Vec<_>>(),
            [1, 2, 2, 3, 3]
        );
    }

    #[test]
    fn the_surviving_duplicate_does_not_depend_on_input_order() {
        let mut forward = vec![row("a", 1, r#"{"v":2}"#), row("a", 1, r#"{"v":1}"#)];
        let mut backward: Vec<_> = forward.iter().rev().cloned().collect();
        order_rows(&mut forward);
        order_rows(&mut backward);
        assert_eq!(forward, backward);
        assert_eq!(forward.len(), 1);
    }

    #[test]
    fn an_empty_chunk_renders_nothing() {
        assert_eq!(
            render_jsonl(&[], &BTreeMap::new(), 10).unwrap(),
            RenderedChunk {
                bytes: Vec::new(),
                rows: 0,
                row_offsets: Vec::new(),
                data_len: 0,
            }
        );
    }

    #[test]
    fn jsonl_offsets_mark_every_stride_th_line() {
        let rows: Vec<_> = (0..5).map(|i| row(&format!("e{i}"), i, "{}")).collect();
        let rendered = render_jsonl(&rows, &BTreeMap::new(), 2).unwrap();
        let text = String::from_utf8(rendered.bytes.clone()).unwrap();
        let line_starts: Vec<u64> = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i as u64 + 1))
            .collect();
        assert_eq!(rendered.data_len, text.len() as u64);
        assert_eq!(
            rendered.row_offsets,
            [line_starts[0], line_starts[2], line_starts[4]]
        );
        assert!(text.starts_with("{\"eventId\":\"e0\",\"eventTime\":\"1970-01-01T00:00:00.000Z\""));
        assert_eq!(text.lines().count(), 5);
    }
}

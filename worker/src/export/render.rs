//! Stage one of an export: render one chunk of the lake into a staging
//! object and report the byte offsets the scheduler cuts files at.

use auditx_common::s3::ObjectStore;
use auditx_lake::audit_trail::read::{ChunkRead, EventIdRange};
use auditx_proto::{OutputFormat, RenderOutcome, RenderTask};

use crate::error::WorkerError;
use crate::export::{buffers, columnar, parquet};

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
    let batches = read.batches(store, lake_bucket, &columnar::COLUMNS).await?;
    let format = task.format;
    let rendered = off_the_runtime(move || match format {
        OutputFormat::Csv => columnar::render_csv(&batches, &run_statuses, stride),
        OutputFormat::Jsonl => columnar::render_jsonl(&batches, &run_statuses, stride),
        OutputFormat::Parquet => parquet::render_parquet(&batches, &run_statuses, stride),
    })
    .await?;
    let bytes = rendered.data_len;
    store
        .put(
            export_bucket,
            &task.staging_key,
            buffers::into_bytes(rendered.bytes),
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

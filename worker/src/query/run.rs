//! Running one data query task: check the SQL again, plan it against a
//! catalog holding only the task's tenant's tables (only the rows of the
//! task's entity/org scope), and stream the result
//! batches, rendered, into one S3 object — while watching the query's
//! cancel key, its time limit and the worker's shutdown.
//!
//! Planning, execution and rendering run on the query pool
//! ([`QueryExecutor`]); the rendered bytes come back over a bounded
//! channel and are uploaded here, on the caller's (I/O) runtime, which
//! also keeps the time limit and polls the cancel key. Ending the query
//! early stops it ([`QueryStop`]: every operator of its plan ends at its
//! next batch, naming the reason, even one that never yields) and drops
//! the pool task, which aborts it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use auditx_common::s3::ObjectStore;
use auditx_common::state::StateStore;
use auditx_lake::sql::{check_query, start_query, QueryLimits, QueryStop, ResultWriter, SqlError};
use auditx_proto::{Compression, QueryId, QueryOutcome, QueryTask};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::instrument;

use super::executor::QueryExecutor;
use super::result_upload::{Packing, ResultUpload};
use crate::error::WorkerError;

/// How often a running query looks at its cancel key (a cancel takes
/// effect within this plus the abort, well under a second).
const CANCEL_POLL: Duration = Duration::from_millis(200);

/// Rendered bytes gathered on the pool before they go to the upload.
const RENDERED_CHUNK: usize = 256 * 1024;

/// Rendered chunks in flight between the pool and the upload: the query
/// waits (holding no thread) while the upload is behind.
const RENDERED_IN_FLIGHT: usize = 4;

/// What a worker needs to run data queries.
#[derive(Clone)]
pub struct QueryRunner {
    pub store: ObjectStore,
    /// The lake as DataFusion reads it (its requests run on the I/O
    /// runtime: see [`auditx_lake::sql::lake_object_store_on`]).
    pub lake: Arc<dyn object_store::ObjectStore>,
    pub lake_bucket: String,
    pub export_bucket: String,
    pub state: Arc<dyn StateStore>,
    /// The pool the queries run on.
    pub executor: QueryExecutor,
    /// The worker's shutdown: a running query stops and its task goes back
    /// to the queue ([`WorkerError::Interrupted`]).
    pub shutdown: CancellationToken,
}

/// Runs `task` to a completed result object. A cancelled, timed-out or
/// failed query leaves no object behind.
#[instrument(name = "worker.run_query", skip_all, fields(query_id = %task.query_id, tenant = %task.tenant))]
pub async fn run_query_task(
    runner: &QueryRunner,
    task: &QueryTask,
) -> Result<QueryOutcome, WorkerError> {
    let started = Instant::now();
    if is_cancelled(runner.state.as_ref(), &task.query_id).await {
        return Err(WorkerError::Cancelled);
    }
    let encryption = task
        .encryption_key
        .as_deref()
        .map(auditx_common::result_file::parse_public_key)
        .transpose()
        .map_err(|e| WorkerError::InvalidTask(format!("encryptionKey: {e}")))?;
    let file = format!(
        "result-{}.{}",
        uuid::Uuid::now_v7(),
        task.format.extension()
    );
    let key = format!(
        "{}{file}{}{}",
        task.key_prefix,
        task.compression.suffix(),
        if encryption.is_some() { ".enc" } else { "" }
    );
    let (content_type, packing) = match task.compression {
        Compression::None => (task.format.content_type(), Packing::Plain),
        Compression::Gzip => ("application/gzip", Packing::Gzip),
        Compression::Zip => ("application/zip", Packing::Zip(file)),
    };
    let content_type = match encryption {
        Some(_) => "application/octet-stream",
        None => content_type,
    };
    let mut upload = ResultUpload::new(
        &runner.store,
        &runner.export_bucket,
        key,
        content_type,
        task.part_size,
        packing,
        encryption,
    );
    let time_limit = Duration::from_millis(task.time_limit_ms);
    let stop = QueryStop::new();
    let result = {
        let work = write_result(runner, task, &mut upload, &stop);
        tokio::pin!(work);
        let ended = tokio::select! {
            rows = &mut work => rows,
            () = tokio::time::sleep(time_limit) => Err(WorkerError::TimeLimit {
                secs: time_limit.as_secs_f64(),
            }),
            () = wait_for_cancel(runner.state.as_ref(), &task.query_id) => Err(WorkerError::Cancelled),
            () = runner.shutdown.cancelled() => Err(WorkerError::Interrupted),
        };
        // Ended early: the plan's operators end at their next batch (the
        // reason given before `work` drops and stops it as merely ended).
        if let Err(error) = &ended {
            stop.stop(error.to_string());
        }
        ended
    };
    let rows = match result {
        Ok(rows) => rows,
        Err(error) => {
            upload.abort().await;
            return Err(error);
        }
    };
    let key = upload.key().to_owned();
    let bytes = upload.finish().await?;
    Ok(QueryOutcome {
        query_id: task.query_id.clone(),
        key,
        rows,
        bytes,
        processing_ms: started.elapsed().as_millis() as u64,
    })
}

/// Runs the query on the pool and uploads what it renders; the rows.
async fn write_result(
    runner: &QueryRunner,
    task: &QueryTask,
    upload: &mut ResultUpload<'_>,
    stop: &QueryStop,
) -> Result<u64, WorkerError> {
    let (rendered, mut chunks) = mpsc::channel(RENDERED_IN_FLIGHT);
    // Dropped with this future (cancel, time limit, shutdown, a failed
    // upload, the query's own failure): the query is stopped and aborted
    // on the pool, its operators ending at their next batch.
    let _stop = stop.on_drop("the query ended");
    let query = runner.executor.spawn(render_result(
        runner.lake.clone(),
        runner.lake_bucket.clone(),
        task.clone(),
        rendered,
        stop.clone(),
    ));
    while let Some(chunk) = chunks.recv().await {
        upload.write(&chunk).await?;
    }
    query
        .await
        .map_err(|e| WorkerError::Query(SqlError::Execution(e.to_string())))?
}

/// On the pool: plans and runs the query, rendering every batch, and sends
/// the rendered bytes to `out` in chunks of about [`RENDERED_CHUNK`].
async fn render_result(
    lake: Arc<dyn object_store::ObjectStore>,
    lake_bucket: String,
    task: QueryTask,
    out: mpsc::Sender<Vec<u8>>,
    stop: QueryStop,
) -> Result<u64, WorkerError> {
    // However this ends (a failed batch, the memory limit), partitions
    // still running on other threads of the pool end at their next batch.
    let _stop = stop.on_drop("the query ended");
    let checked = check_query(&task.sql)?;
    let limits = QueryLimits {
        memory_limit_bytes: task.memory_limit_bytes as usize,
    };
    let mut query = start_query(
        lake,
        &lake_bucket,
        &task.tenant,
        &task.scope,
        &checked,
        &limits,
        task.read_deleted,
        &stop,
    )
    .await?;
    let mut writer = ResultWriter::new(&query.batches.schema(), task.format)
        .with_column_separator(task.column_separator.as_deref().unwrap_or(","));
    let mut rendered = Vec::new();
    writer.header(&mut rendered);
    let mut rows = 0;
    // The upload side has gone away (it ended the query): stop quietly.
    let gone = || WorkerError::Cancelled;
    while let Some(batch) = query.batches.next().await {
        let batch = batch.map_err(|e| auditx_lake::sql::classify(e, &limits))?;
        rows += batch.num_rows() as u64;
        writer.write_batch(&batch, &mut rendered)?;
        if rendered.len() >= RENDERED_CHUNK {
            let full = std::mem::replace(&mut rendered, Vec::with_capacity(RENDERED_CHUNK * 2));
            out.send(full).await.map_err(|_| gone())?;
        }
    }
    let scans = query.scans();
    tracing::info!(
        query_id = %task.query_id,
        rows,
        files = scans.files,
        row_groups_read = scans.row_groups_read(),
        row_groups_pruned = scans.row_groups_pruned(),
        bytes_scanned = scans.bytes_scanned,
        "query scanned"
    );
    if !rendered.is_empty() {
        out.send(rendered).await.map_err(|_| gone())?;
    }
    Ok(rows)
}

async fn is_cancelled(state: &dyn StateStore, id: &QueryId) -> bool {
    match auditx_common::query_cancel::is_raised(state, id).await {
        Ok(raised) => raised,
        Err(error) => {
            tracing::debug!(query_id = %id, %error, "cancel flag not read");
            false
        }
    }
}

/// Returns once the query is cancelled.
async fn wait_for_cancel(state: &dyn StateStore, id: &QueryId) {
    loop {
        tokio::time::sleep(CANCEL_POLL).await;
        if is_cancelled(state, id).await {
            tracing::info!(query_id = %id, "query cancelled, stopping");
            return;
        }
    }
}

//! Running one data query task: check the SQL again, plan it against a
//! catalog holding only the task's tenant's tables (only the rows of the
//! task's entity/org scope), and stream the result
//! batches, rendered, into one S3 object — while watching the query's
//! cancel key and its time limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use auditx_common::s3::ObjectStore;
use auditx_common::state::StateStore;
use auditx_lake::sql::{check_query, run_query, QueryLimits, ResultWriter};
use auditx_proto::{query_cancel_key, Compression, QueryId, QueryOutcome, QueryTask};
use futures::StreamExt;
use tracing::instrument;

use super::result_upload::{Packing, ResultUpload};
use crate::error::WorkerError;

/// How often a running query looks at its cancel key.
const CANCEL_POLL: Duration = Duration::from_millis(500);

/// What a worker needs to run data queries.
#[derive(Clone)]
pub struct QueryRunner {
    pub store: ObjectStore,
    /// The lake as DataFusion reads it.
    pub lake: Arc<dyn object_store::ObjectStore>,
    pub lake_bucket: String,
    pub export_bucket: String,
    pub state: Arc<dyn StateStore>,
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
    let result = {
        let work = write_result(runner, task, &mut upload);
        tokio::select! {
            rows = work => rows,
            () = tokio::time::sleep(time_limit) => Err(WorkerError::TimeLimit {
                secs: time_limit.as_secs_f64(),
            }),
            () = wait_for_cancel(runner.state.as_ref(), &task.query_id) => Err(WorkerError::Cancelled),
        }
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

/// Plans and runs the query, rendering every batch into the upload.
async fn write_result(
    runner: &QueryRunner,
    task: &QueryTask,
    upload: &mut ResultUpload<'_>,
) -> Result<u64, WorkerError> {
    let checked = check_query(&task.sql)?;
    let limits = QueryLimits {
        memory_limit_bytes: task.memory_limit_bytes as usize,
    };
    let mut batches = run_query(
        runner.lake.clone(),
        &runner.lake_bucket,
        &task.tenant,
        &task.scope,
        &checked,
        &limits,
        task.read_deleted,
    )
    .await?;
    let mut writer = ResultWriter::new(&batches.schema(), task.format)
        .with_column_separator(task.column_separator.as_deref().unwrap_or(","));
    let mut rendered = Vec::new();
    writer.header(&mut rendered);
    let mut rows = 0;
    while let Some(batch) = batches.next().await {
        let batch = batch.map_err(|e| auditx_lake::sql::classify(e, &limits))?;
        rows += batch.num_rows() as u64;
        writer.write_batch(&batch, &mut rendered)?;
        upload.write(&rendered).await?;
        rendered.clear();
    }
    upload.write(&rendered).await?;
    Ok(rows)
}

async fn is_cancelled(state: &dyn StateStore, id: &QueryId) -> bool {
    match state.get(&query_cancel_key(id)).await {
        Ok(flag) => flag.is_some(),
        Err(error) => {
            tracing::debug!(query_id = %id, %error, "cancel key not read");
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

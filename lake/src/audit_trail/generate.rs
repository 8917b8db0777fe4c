//! Realistic, deterministic synthetic data for demos, tests and benchmarks.
//!
//! Tests compute their expectations from [`audit_rows`] and [`run_rows`],
//! independently of the export code.

mod content;
mod plan;
mod rows;
mod runs;

use std::collections::VecDeque;

use auditx_proto::{MeterId, TenantId};
use chrono::NaiveDate;
use tokio::task::JoinHandle;

use super::layout;
use super::write::{put_audit_file, utc_date, write_run_rows};
use crate::{AuditRow, LakeError, LakeResult, RunRow};
use auditx_common::s3::ObjectStore;

/// Files encoded and uploaded at once while the next one is generated.
const FILES_IN_FLIGHT: usize = 2;

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenerateSpec {
    pub tenant: TenantId,
    pub meter: MeterId,
    pub rows: u64,
    /// Rows are spread over `[from_ms, to_ms)`.
    pub from_ms: i64,
    pub to_ms: i64,
    /// Share of rows with `recordType = ERROR` (0.0–1.0).
    pub error_rate: f64,
    pub seed: u64,
}

/// What was written.
#[derive(Clone, Debug, Default)]
pub struct GenerateSummary {
    pub rows: u64,
    pub files: Vec<String>,
}

/// The generated audit rows in (`eventTime`, `eventId`) order; the same
/// spec always yields the same rows. Streams: never holds all rows.
pub fn audit_rows(spec: &GenerateSpec) -> impl Iterator<Item = AuditRow> + use<> {
    rows::AuditRows::new(spec)
}

/// The runs (sessions) of the generated data with their status history.
pub fn run_rows(spec: &GenerateSpec) -> Vec<RunRow> {
    runs::run_rows(spec)
}

/// Cuts the row stream into files of at most `file_rows` rows that never
/// span two UTC dates, sending each to `files`. Runs on a blocking thread:
/// generation is CPU-bound.
fn split_into_files(
    spec: GenerateSpec,
    file_rows: usize,
    files: tokio::sync::mpsc::Sender<(NaiveDate, Vec<AuditRow>)>,
) {
    let mut file: Vec<AuditRow> = Vec::new();
    let mut date = NaiveDate::MIN;
    for row in audit_rows(&spec) {
        let row_date = utc_date(row.event_time_ms);
        if row_date != date || file.len() >= file_rows {
            if !file.is_empty()
                && files
                    .blocking_send((date, std::mem::take(&mut file)))
                    .is_err()
            {
                return; // the writer gave up
            }
            date = row_date;
        }
        file.push(row);
    }
    if !file.is_empty() {
        let _ = files.blocking_send((date, file));
    }
}

type Upload = JoinHandle<LakeResult<(String, u64)>>;

async fn finish(upload: Upload) -> LakeResult<(String, u64)> {
    upload
        .await
        .map_err(|e| LakeError::Parquet(format!("file upload task failed: {e}")))?
}

/// Writes the generated rows and runs to the lake in files of at most
/// `file_rows` rows, reporting rows written so far to `progress`.
///
/// Generation, encoding and upload overlap; memory holds a few files' rows.
#[tracing::instrument(name = "lake.generate", skip_all, fields(tenant = %spec.tenant, meter = %spec.meter, rows = spec.rows))]
pub async fn generate_to_lake(
    store: &ObjectStore,
    bucket: &str,
    spec: &GenerateSpec,
    file_rows: usize,
    row_group_rows: usize,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> LakeResult<GenerateSummary> {
    let (sender, mut files) = tokio::sync::mpsc::channel(1);
    let producer = {
        let spec = spec.clone();
        tokio::task::spawn_blocking(move || split_into_files(spec, file_rows.max(1), sender))
    };
    let mut summary = GenerateSummary::default();
    let mut uploads: VecDeque<Upload> = VecDeque::new();
    let complete = |(key, rows): (String, u64), summary: &mut GenerateSummary| {
        summary.rows += rows;
        summary.files.push(key);
        progress(summary.rows);
    };
    let result: LakeResult<()> = async {
        while let Some((date, rows)) = files.recv().await {
            if uploads.len() >= FILES_IN_FLIGHT {
                let done = uploads.pop_front().expect("uploads in flight");
                complete(finish(done).await?, &mut summary);
            }
            let (store, bucket) = (store.clone(), bucket.to_owned());
            let prefix = layout::audit_date_prefix(&spec.tenant, spec.meter, date);
            uploads.push_back(tokio::spawn(async move {
                let count = rows.len() as u64;
                Ok((
                    put_audit_file(&store, &bucket, &prefix, rows, row_group_rows).await?,
                    count,
                ))
            }));
        }
        while let Some(done) = uploads.pop_front() {
            complete(finish(done).await?, &mut summary);
        }
        Ok(())
    }
    .await;
    if let Err(err) = result {
        uploads.iter().for_each(JoinHandle::abort);
        return Err(err);
    }
    producer
        .await
        .map_err(|e| LakeError::Parquet(format!("generator task failed: {e}")))?;
    if let Some(key) =
        write_run_rows(store, bucket, &spec.tenant, spec.meter, run_rows(spec)).await?
    {
        summary.files.push(key);
    }
    tracing::info!(
        rows = summary.rows,
        files = summary.files.len(),
        "synthetic data generated"
    );
    Ok(summary)
}

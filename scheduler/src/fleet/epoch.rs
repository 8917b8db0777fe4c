//! Noticing that the state store lost its data, and recovering from it.
//!
//! The state store (Redis in the distributed mode) holds every job. Run
//! with AOF (`appendonly yes`, `appendfsync everysec`, as `deploy/` does),
//! a restart keeps it; without, or if its disk is lost, it comes back
//! empty, and nothing in the store itself can tell "empty because new"
//! from "empty because it forgot". So two marks are kept:
//!
//! * an **epoch** key in the state store, written when the fleet first
//!   starts on it (and again after each recovery);
//! * a **marker** object in the export bucket, written before the first
//!   epoch and never deleted: "this fleet has had a history".
//!
//! No epoch but a marker means the store lost its data. Then no replica
//! grants a tenant lease (no export starts on a store without its
//! history) until one replica, under a recovery lease, has recovered what
//! can be recovered: every export that was RUNNING left a record of its
//! spec in its staging folder (written when it started, deleted once it
//! ended), so each such export whose job is gone from the store is
//! recorded as FAILED with a reason, its partial objects and uploads are
//! removed and its `FAILED` event is published; its tenant's next export
//! then runs. PENDING exports had left no trace outside the store and are
//! gone (404), which is why the deployment runs Redis with AOF. Data
//! queries are recorded from their submit to their settling
//! ([`crate::query::record`]): every one the store forgot, accepted or
//! running, is failed with a reason and announced.

use std::time::Duration;

use auditx_common::s3::StorageError;
use auditx_proto::{RequestId, TenantId};
use bytes::Bytes;

use crate::context::Services;
use crate::error::DriveError;
use crate::export::completion;
use crate::export::jobs::{Job, JobSpec, JobState, JobStatus};
use crate::export::layout;
use crate::fleet::store_epoch;
use crate::metrics;

const RECOVERY_TTL: Duration = Duration::from_secs(120);
/// The record of a running export's spec, in its staging folder.
const JOB_RECORD: &str = "job.json";

/// The reason a lost export fails with.
pub const LOST_REASON: &str = "the state store lost this export's progress (it restarted \
     without its data); nothing was delivered: please request the export again";

/// The key of the marker object in the export bucket (one per state-store
/// prefix, so fleets sharing a bucket do not mix).
pub fn marker_key(services: &Services) -> String {
    let prefix: String = services
        .config
        .redis
        .prefix
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("_auditx/state-epoch/{prefix}")
}

/// `_staging/<tenant>/<requestId>/job.json`
pub fn job_record_key(tenant: &TenantId, id: &RequestId) -> String {
    format!("{}{JOB_RECORD}", layout::staging_prefix(tenant, id))
}

/// Records a starting (or resumed) export's spec beside its staging
/// objects, so that it can be failed properly if the store forgets it.
pub async fn record_running_job(services: &Services, spec: &JobSpec) -> Result<(), StorageError> {
    let body = serde_json::to_vec(spec).expect("a job spec serializes to JSON");
    services
        .store
        .put(
            &services.config.s3.export_bucket,
            &job_record_key(&spec.tenant, &spec.request_id),
            Bytes::from(body),
            "application/json",
        )
        .await
        .map(drop)
}

/// Whether the store has its history, so leases may be granted. Starts
/// a fresh fleet's epoch; recovers a store that lost its data if no
/// other replica is doing it (false until the recovery is done).
pub async fn check(services: &Services) -> Result<bool, DriveError> {
    if let Some(epoch) = store_epoch::read(services.state.as_ref()).await? {
        services.epoch.remember(&epoch, false);
        return Ok(true);
    }
    let _slow_path = services.epoch.slow_path.lock().await;
    if let Some(epoch) = store_epoch::read(services.state.as_ref()).await? {
        services.epoch.remember(&epoch, false);
        return Ok(true); // done by the other loop meanwhile
    }
    let bucket = &services.config.s3.export_bucket;
    let marker = marker_key(services);
    let had_history = services.store.head(bucket, &marker).await?.is_some();
    if !had_history {
        // A new fleet: the marker first, so a crash in between cannot
        // leave an epoch without one.
        let epoch = new_epoch();
        services
            .store
            .put(bucket, &marker, Bytes::from(epoch.clone()), "text/plain")
            .await?;
        store_epoch::start(services.state.as_ref(), &epoch).await?;
        tracing::info!("state store epoch started");
        return Ok(true);
    }
    metrics::state_loss_detected();
    let Some(lease) =
        store_epoch::take_recovery_lease(services.state.as_ref(), &services.replica, RECOVERY_TTL)
            .await?
    else {
        tracing::warn!("state store lost its data; another replica is recovering");
        return Ok(false);
    };
    tracing::error!("state store lost its data (no epoch, but this fleet had one): recovering");
    let outcome = recover(services).await;
    if outcome.is_ok() {
        let epoch = new_epoch();
        store_epoch::write(services.state.as_ref(), &epoch).await?;
        services.epoch.remember(&epoch, true);
    }
    if let Err(error) = store_epoch::release(services.state.as_ref(), &lease).await {
        tracing::warn!(%error, "recovery lease not released, it will expire");
    }
    let failed = outcome?;
    tracing::warn!(
        failed,
        "state store recovered: lost exports and queries failed and announced"
    );
    Ok(true)
}

fn new_epoch() -> String {
    format!(
        "{}:{}",
        chrono::Utc::now().to_rfc3339(),
        uuid::Uuid::new_v4()
    )
}

/// Fails every running export the store forgot; returns how many.
async fn recover(services: &Services) -> Result<usize, DriveError> {
    let bucket = &services.config.s3.export_bucket;
    let records: Vec<String> = services
        .store
        .list(bucket, "_staging/")
        .await?
        .into_iter()
        .map(|o| o.key)
        .filter(|key| key.ends_with(&format!("/{JOB_RECORD}")))
        .collect();
    let mut failed = 0;
    for key in records {
        let bytes = match services.store.get(bucket, &key).await {
            Ok(bytes) => bytes,
            Err(StorageError::NotFound { .. }) => continue, // ended meanwhile
            Err(error) => return Err(error.into()),
        };
        let spec: JobSpec = match serde_json::from_slice(&bytes) {
            Ok(spec) => spec,
            Err(error) => {
                tracing::error!(key, %error, "unreadable job record skipped");
                continue;
            }
        };
        if services.jobs.get(&spec.request_id).await?.is_some() {
            continue; // the store still knows it
        }
        let now = chrono::Utc::now().timestamp_millis();
        let state = JobState {
            status: JobStatus::Failed,
            completed_at_ms: Some(now),
            error: Some(LOST_REASON.into()),
            ..JobState::pending()
        };
        services.jobs.record_ended(&spec, &state).await?;
        completion::discard_outputs(services, &spec).await?;
        abort_orphaned_uploads(services, &spec).await;
        let job = Job {
            spec,
            state,
            cancel_requested: false,
        };
        completion::settle(services, &job).await?;
        metrics::job_entered(JobStatus::Failed);
        tracing::warn!(request_id = %job.spec.request_id, tenant = %job.spec.tenant, "export lost with the state store: failed");
        failed += 1;
    }
    // Data queries: failed here, settled (announced) by the query driver.
    failed += crate::query::record::restore_lost(services).await?;
    Ok(failed)
}

/// Aborts the multipart uploads left under a lost export's folder (their
/// ids were in the store). Best effort: a bucket lifecycle rule
/// (`AbortIncompleteMultipartUpload`) catches what this misses.
async fn abort_orphaned_uploads(services: &Services, spec: &JobSpec) {
    let bucket = &services.config.s3.export_bucket;
    let prefix = layout::export_prefix(&spec.tenant, &spec.request_id);
    match services.store.list_uploads(bucket, &prefix).await {
        Ok(uploads) => {
            for (key, upload_id) in uploads {
                if let Err(error) = services
                    .store
                    .abort_multipart(bucket, &key, &upload_id)
                    .await
                {
                    tracing::warn!(key, %error, "orphaned upload not aborted");
                }
            }
        }
        Err(error) => {
            tracing::warn!(prefix, %error, "uploads not listed; the bucket's lifecycle rule aborts them")
        }
    }
}

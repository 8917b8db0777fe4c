//! Retention: an ended export's record and files are removed
//! `export.retention_secs` after it ended (30 days by default).
//!
//! Settling an ended job adds it to the `jobs/ended` index, scored by when
//! it ended. One replica at a time (under a lease) sweeps the index: for
//! each job past retention it deletes the job's files and staging objects
//! in the export bucket, then every key of the job — also keys a late
//! worker report recreated after the job was settled — and its entries in
//! the meter's index and in `jobs/ended`, in one atomic batch.

use std::time::Duration;

use auditx_common::state::{Guard, Write};
use auditx_proto::RequestId;
use tokio_util::sync::CancellationToken;

use crate::context::Services;
use crate::error::DriveError;
use crate::export::completion::uploads_key;
use crate::export::job_plan::plan_key;
use crate::export::jobs::{cancel_key, meter_index_key, reports_key, spec_key, state_key};
use crate::export::layout;

use crate::export::jobs::ENDED_INDEX_KEY as ENDED_KEY;
const LEASE_KEY: &str = "lease/retention";
/// Jobs removed per sweep step.
const BATCH: usize = 200;

/// How often the index is swept: often enough that a job outlives its
/// retention by at most a quarter of it, at most every 5 minutes.
fn sweep_every(retention: Duration) -> Duration {
    (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(300))
}

/// Sweeps until shutdown.
pub async fn sweep_loop(services: Services, shutdown: CancellationToken) {
    let retention = Duration::from_secs(services.config.export.retention_secs);
    loop {
        match sweep(&services, retention).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "ended exports past retention removed"),
            Err(error) => tracing::warn!(%error, "retention sweep failed, retrying later"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(sweep_every(retention)) => {}
        }
    }
}

/// Removes every ended job past `retention`; returns how many.
pub async fn sweep(services: &Services, retention: Duration) -> Result<usize, DriveError> {
    let Some(lease) = services
        .state
        .try_acquire_lease(LEASE_KEY, &services.replica, Duration::from_secs(60))
        .await?
    else {
        return Ok(0); // another replica is sweeping
    };
    let cutoff = chrono::Utc::now().timestamp_millis() - retention.as_millis() as i64;
    let mut removed = 0;
    let outcome = async {
        loop {
            let due = services.state.index_up_to(ENDED_KEY, cutoff, BATCH).await?;
            if due.is_empty() {
                return Ok::<_, DriveError>(());
            }
            for id in due {
                remove_job(services, &lease, &RequestId(id)).await?;
                removed += 1;
            }
        }
    }
    .await;
    if let Err(error) = services.state.release_lease(&lease).await {
        tracing::debug!(%error, "retention lease not released, it expires");
    }
    outcome.map(|()| removed)
}

async fn remove_job(
    services: &Services,
    lease: &auditx_common::state::Lease,
    id: &RequestId,
) -> Result<(), DriveError> {
    let mut writes = vec![
        Write::Delete(spec_key(id)),
        Write::Delete(state_key(id)),
        Write::Delete(cancel_key(id)),
        Write::Delete(reports_key(id)),
        Write::Delete(plan_key(id)),
        Write::Delete(uploads_key(id)),
        Write::IndexRemove(ENDED_KEY.into(), id.to_string()),
    ];
    if let Some(spec) = services.jobs.spec(id).await? {
        let bucket = &services.config.s3.export_bucket;
        for prefix in [
            layout::export_prefix(&spec.tenant, id),
            layout::staging_prefix(&spec.tenant, id),
        ] {
            services.store.delete_prefix(bucket, &prefix).await?;
        }
        writes.push(Write::IndexRemove(
            meter_index_key(&spec.tenant, spec.meter_id),
            id.to_string(),
        ));
    }
    services
        .state
        .apply_atomically(Guard::Held(lease.clone()), writes)
        .await?;
    tracing::debug!(request_id = %id, "ended export past retention removed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_often_enough_but_not_constantly() {
        assert_eq!(sweep_every(Duration::from_secs(2)), Duration::from_secs(1));
        assert_eq!(
            sweep_every(Duration::from_secs(40)),
            Duration::from_secs(10)
        );
        assert_eq!(
            sweep_every(Duration::from_secs(30 * 24 * 3600)),
            Duration::from_secs(300)
        );
    }
}

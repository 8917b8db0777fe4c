//! Retention, for exports and data queries alike: settling an ended job adds
//! it to its kind's ended index, scored by when it ended. One replica at a
//! time (under the kind's lease) sweeps the index and removes each job past
//! `export.retention_secs` (30 days by default) with its kind's
//! [`Retained::remove`]: its objects first, then every key of the job (also
//! keys a late worker report recreated after it was settled) and its index
//! entries, in one atomic batch under the lease.

use std::future::Future;
use std::time::Duration;

use auditx_common::state::Lease;
use tokio_util::sync::CancellationToken;

use crate::context::Services;
use crate::error::DriveError;
use crate::fleet::job_records::JobRecords;

/// Jobs removed per sweep step.
const BATCH: usize = 200;

/// A kind of job whose ended records are removed after retention, as its
/// store keeps them.
pub(crate) trait Retained {
    /// What the logs call them ("exports", "data queries").
    const WHAT: &'static str;

    /// Where this kind's ended index and retention lease are kept.
    fn records(services: &Services) -> &JobRecords;

    /// Removes the ended job `id`: its objects, its keys and its index
    /// entries (the last in one atomic batch guarded by `lease`).
    fn remove(
        services: &Services,
        lease: &Lease,
        id: String,
    ) -> impl Future<Output = Result<(), DriveError>> + Send;
}

/// How often the index is swept: often enough that a job outlives its
/// retention by at most a quarter of it, at most every 5 minutes.
fn sweep_every(retention: Duration) -> Duration {
    (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(300))
}

/// Sweeps `R`'s ended jobs until shutdown.
pub(crate) async fn sweep_loop<R: Retained>(services: Services, shutdown: CancellationToken) {
    let retention = Duration::from_secs(services.config.export.retention_secs);
    loop {
        match sweep::<R>(&services, retention).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "ended {} past retention removed", R::WHAT),
            Err(error) => {
                tracing::warn!(%error, "retention sweep of {} failed, retrying later", R::WHAT)
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(sweep_every(retention)) => {}
        }
    }
}

/// Removes every ended job of `R` past `retention`; returns how many.
pub(crate) async fn sweep<R: Retained>(
    services: &Services,
    retention: Duration,
) -> Result<usize, DriveError> {
    let records = R::records(services);
    let Some(lease) = records
        .take_retention_lease(&services.replica, Duration::from_secs(60))
        .await?
    else {
        return Ok(0); // another replica is sweeping
    };
    let cutoff = chrono::Utc::now().timestamp_millis() - retention.as_millis() as i64;
    let mut removed = 0;
    let outcome = async {
        loop {
            let due = records.ended_before(cutoff, BATCH).await?;
            if due.is_empty() {
                return Ok::<_, DriveError>(());
            }
            for id in due {
                R::remove(services, &lease, id).await?;
                removed += 1;
            }
        }
    }
    .await;
    if let Err(error) = records.release(&lease).await {
        tracing::debug!(%error, "retention lease not released, it expires");
    }
    outcome.map(|()| removed)
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

//! Retention of data queries, as for exports: an ended query's record and
//! result objects are removed `export.retention_secs` after it ended (30
//! days by default; its presigned `dataFile` stops working then too).
//!
//! Settling an ended query adds it to the `queries/ended` index, scored by
//! when it ended. One replica at a time (under a lease) sweeps the index:
//! for each query past retention it deletes the query's result objects,
//! then its keys — also a report a late worker recreated — and its entries
//! in the tenant's index and in `queries/ended`, in one atomic batch.

use std::time::Duration;

use auditx_common::state::{Guard, Lease, Write};
use auditx_proto::QueryId;
use tokio_util::sync::CancellationToken;

use super::jobs::{cancel_key, reports_key, spec_key, state_key, tenant_index_key};
use super::result_prefix;
use crate::context::Services;
use crate::error::DriveError;

/// Ended queries, scored by when they ended.
pub const ENDED_INDEX_KEY: &str = "queries/ended";
const LEASE_KEY: &str = "lease/query-retention";
/// Queries removed per sweep step.
const BATCH: usize = 200;

/// How often the index is swept: a quarter of the retention, between 1 s
/// and 5 minutes.
fn sweep_every(retention: Duration) -> Duration {
    (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(300))
}

/// Sweeps until shutdown.
pub async fn sweep_loop(services: Services, shutdown: CancellationToken) {
    let retention = Duration::from_secs(services.config.export.retention_secs);
    loop {
        match sweep(&services, retention).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "ended data queries past retention removed"),
            Err(error) => tracing::warn!(%error, "query retention sweep failed, retrying later"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(sweep_every(retention)) => {}
        }
    }
}

/// Removes every ended query past `retention`; returns how many.
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
            let due = services
                .state
                .index_up_to(ENDED_INDEX_KEY, cutoff, BATCH)
                .await?;
            if due.is_empty() {
                return Ok::<_, DriveError>(());
            }
            for id in due {
                remove_query(services, &lease, &QueryId(id)).await?;
                removed += 1;
            }
        }
    }
    .await;
    if let Err(error) = services.state.release_lease(&lease).await {
        tracing::debug!(%error, "query retention lease not released, it expires");
    }
    outcome.map(|()| removed)
}

async fn remove_query(services: &Services, lease: &Lease, id: &QueryId) -> Result<(), DriveError> {
    let mut writes = vec![
        Write::Delete(spec_key(id)),
        Write::Delete(state_key(id)),
        Write::Delete(cancel_key(id)),
        Write::Delete(reports_key(id)),
        Write::IndexRemove(ENDED_INDEX_KEY.into(), id.to_string()),
    ];
    if let Some(spec) = services.queries.spec(id).await? {
        services
            .store
            .delete_prefix(
                &services.config.s3.export_bucket,
                &result_prefix(&spec.tenant, id),
            )
            .await?;
        writes.push(Write::IndexRemove(
            tenant_index_key(&spec.tenant),
            id.to_string(),
        ));
    }
    services
        .state
        .apply_atomically(Guard::Held(lease.clone()), writes)
        .await?;
    tracing::debug!(query_id = %id, "ended data query past retention removed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_often_enough_but_not_constantly() {
        assert_eq!(sweep_every(Duration::from_secs(2)), Duration::from_secs(1));
        assert_eq!(
            sweep_every(Duration::from_secs(30 * 24 * 3600)),
            Duration::from_secs(300)
        );
    }
}

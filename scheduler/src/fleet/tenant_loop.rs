//! The tenant loop both kinds of job run (exports, `export::tenants`; data
//! queries, `query::driver`): every replica scans the tenants with queued
//! jobs — when woken by the API and every poll interval — and takes the
//! lease of each tenant it is not serving yet; the holder serves the
//! tenant's queue in one task, renewing the lease, and releases it when the
//! queue is empty or the replica shuts down. Different tenants run at once;
//! one tenant's jobs run on one replica at a time.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auditx_proto::TenantId;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::context::Services;
use crate::error::DriveError;
use crate::fleet::epoch;
use crate::fleet::job_records::JobRecords;
use crate::fleet::lease::TenantLease;
use crate::fleet::wakers::JobWakers;
use crate::metrics;

/// One kind of job's side of the loop.
pub(crate) trait TenantQueues: Send + Sync + 'static {
    /// "export" or "query", for logs and metrics.
    const KIND: &'static str;

    /// What the API notifies when it queues a job of this kind.
    fn wake(services: &Services) -> &Notify;

    /// Where this kind's queues and tenant leases are kept.
    fn records(services: &Services) -> &JobRecords;

    /// For a tenant not served here: true if it has nothing queued after
    /// all (it is then forgotten, and no lease is taken).
    fn idle(
        services: &Services,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<bool, DriveError>> + Send;

    /// For a tenant served here: a job queued while its server waits is
    /// taken at once, not at its next poll.
    fn nudge(wakers: &JobWakers, tenant: &TenantId);

    /// Serves the tenant's queue while `lease` is held; returns when the
    /// queue is empty or the lease is lost or stopped (the loop then
    /// releases it).
    fn serve(
        services: &Services,
        wakers: &Arc<JobWakers>,
        lease: &TenantLease,
        tenant: &TenantId,
    ) -> impl Future<Output = ()> + Send;
}

/// Tenants whose queue this replica is serving.
type Active = Arc<Mutex<HashSet<TenantId>>>;

/// Runs until shutdown, then waits for the tenant tasks to stop.
pub(crate) async fn run<Q: TenantQueues>(
    services: Services,
    wakers: Arc<JobWakers>,
    shutdown: CancellationToken,
) {
    let mut tasks = JoinSet::new();
    let active = Active::default();
    let poll = Duration::from_millis(services.config.export.poll_interval_ms);
    loop {
        if let Err(error) = scan::<Q>(&services, &wakers, &shutdown, &active, &mut tasks).await {
            tracing::warn!(%error, kind = Q::KIND, "tenant scan failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = Q::wake(&services).notified() => {}
            _ = tokio::time::sleep(poll) => {}
            Some(done) = tasks.join_next(), if !tasks.is_empty() => log_panic::<Q>(done),
        }
    }
    while let Some(done) = tasks.join_next().await {
        log_panic::<Q>(done);
    }
}

fn log_panic<Q: TenantQueues>(done: Result<(), tokio::task::JoinError>) {
    if let Err(error) = done {
        tracing::error!(%error, kind = Q::KIND, "tenant task failed");
    }
}

fn lock(active: &Active) -> std::sync::MutexGuard<'_, HashSet<TenantId>> {
    active
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Marks a tenant as served here until dropped (even if its task panics).
struct Serving {
    active: Active,
    tenant: TenantId,
}

impl Drop for Serving {
    fn drop(&mut self) {
        lock(&self.active).remove(&self.tenant);
    }
}

/// Takes the lease of every waiting tenant it can and starts its task.
async fn scan<Q: TenantQueues>(
    services: &Services,
    wakers: &Arc<JobWakers>,
    shutdown: &CancellationToken,
    active: &Active,
    tasks: &mut JoinSet<()>,
) -> Result<(), DriveError> {
    let ttl = Duration::from_secs(services.config.export.lease_ttl_secs);
    if !epoch::check(services).await? {
        return Ok(()); // the store lost its data and is being recovered
    }
    let records = Q::records(services);
    for tenant in records.pending_tenants().await? {
        if lock(active).contains(&tenant) {
            Q::nudge(wakers, &tenant);
            continue;
        }
        if Q::idle(services, &tenant).await? {
            continue;
        }
        let Some(lease) = records
            .take_tenant_lease(&tenant, &services.replica, ttl)
            .await?
        else {
            continue;
        };
        tracing::info!(tenant = %tenant, kind = Q::KIND, token = lease.token, "tenant lease acquired");
        metrics::lease_acquired(Q::KIND);
        let lease = TenantLease::hold(services.state.clone(), lease, ttl, shutdown);
        lock(active).insert(tenant.clone());
        let serving = Serving {
            active: active.clone(),
            tenant,
        };
        let (services, wakers) = (services.clone(), wakers.clone());
        tasks.spawn(async move {
            Q::serve(&services, &wakers, &lease, &serving.tenant).await;
            tracing::info!(tenant = %serving.tenant, kind = Q::KIND, "tenant lease released");
            lease.release().await;
            drop(serving);
        });
    }
    Ok(())
}

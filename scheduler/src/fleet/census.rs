//! Counting the jobs that are not settled yet, from the state store, for
//! the `auditx_scheduler_jobs`, `..._oldest_pending_seconds` and
//! `..._tenant_queue_length` gauges. Counting from the store (rather than
//! adding and subtracting at each transition) keeps the gauges right across
//! restarts and takeovers, and every replica reports the same values. The
//! cost is one read per unsettled job per sample: the tenant queues hold
//! only unsettled jobs, which the per-tenant limits bound.

use std::time::Duration;

use crate::context::Services;
use crate::error::DriveError;
use crate::export::jobs::JobStatus;
use crate::metrics::{self, JobCensus};
use crate::query::jobs::QueryStatus;

/// Statuses of an unsettled export (ended ones are settled within a pass).
const EXPORT_STATUSES: [JobStatus; 2] = [JobStatus::Pending, JobStatus::Running];
const QUERY_STATUSES: [QueryStatus; 2] = [QueryStatus::Accepted, QueryStatus::InProgress];

/// Counts both kinds and replaces the gauges.
pub async fn sample(services: &Services) -> Result<(), DriveError> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let exports = exports(services, now_ms).await?;
    let queries = queries(services, now_ms).await?;
    metrics::reset_tenant_queues();
    metrics::jobs_counted("export", &EXPORT_STATUSES.map(JobStatus::as_str), &exports);
    metrics::jobs_counted("query", &QUERY_STATUSES.map(QueryStatus::as_str), &queries);
    Ok(())
}

async fn exports(services: &Services, now_ms: i64) -> Result<JobCensus, DriveError> {
    let jobs = &services.jobs;
    let mut census = JobCensus::default();
    for tenant in jobs.pending_tenants().await? {
        let ids = jobs.tenant_queue(&tenant).await?;
        let mut oldest_seen = false;
        for id in &ids {
            let Some((state, _)) = jobs.state_raw(id).await? else {
                continue;
            };
            census.by_status.push((state.status.as_str(), 1));
            // The queue is FIFO: its first PENDING job waited longest.
            if state.status == JobStatus::Pending && !oldest_seen {
                oldest_seen = true;
                if let Some(spec) = jobs.spec(id).await? {
                    census.oldest_pending =
                        census.oldest_pending.max(age(now_ms, spec.created_at_ms));
                }
            }
        }
        census
            .tenant_queues
            .push((tenant.to_string(), ids.len() as i64));
    }
    Ok(census)
}

async fn queries(services: &Services, now_ms: i64) -> Result<JobCensus, DriveError> {
    let queries = &services.queries;
    let mut census = JobCensus::default();
    for tenant in queries.pending_tenants().await? {
        let ids = queries.tenant_queue(&tenant).await?;
        for id in &ids {
            let Some((state, _)) = queries.state_raw(id).await? else {
                continue;
            };
            census.by_status.push((state.status.as_str(), 1));
            if state.status == QueryStatus::Accepted {
                // An accepted query's `updated_at_ms` is its creation.
                census.oldest_pending = census.oldest_pending.max(age(now_ms, state.updated_at_ms));
            }
        }
        census
            .tenant_queues
            .push((tenant.to_string(), ids.len() as i64));
    }
    Ok(census)
}

fn age(now_ms: i64, since_ms: i64) -> Duration {
    Duration::from_millis((now_ms - since_ms).max(0) as u64)
}

//! Data queries' side of the tenant loop ([`crate::fleet::tenant_loop`]):
//! every replica scans the tenants with unsettled queries and takes the
//! query lease of those it can; the holder starts accepted
//! queries up to the tenant's limit, ends running ones from their reports
//! and settles ended ones (event, then off the queue).
//!
//! Every step is a compare-and-set on the query's state, so a replica that
//! takes the lease over after a crash simply goes on: a task that was
//! started but not recorded as sent is sent again, and of two attempts the
//! first report wins (the other's object is deleted).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use auditx_common::queue::{Headers, Message, TENANT_HEADER};
use auditx_common::retry::Backoff;
use auditx_common::telemetry::{inject_trace_context, set_parent_from_headers};
use auditx_proto::{encode, QueryId, QueryTask, Task, TenantId, WorkerReport, TRACEPARENT_HEADER};
use tokio::sync::Notify;
use tracing::Instrument;

use super::jobs::{QuerySpec, QueryState, QueryStatus};
use super::result_prefix;
use crate::context::Services;
use crate::error::DriveError;
use crate::fleet::events;
use crate::fleet::job_records::JobRecords;
use crate::fleet::lease::TenantLease;
use crate::fleet::tenant_loop::TenantQueues;
use crate::fleet::wakers::JobWakers;

/// The waker key of a tenant's query driver.
pub fn waker_key(tenant: &TenantId) -> String {
    format!("queries/{tenant}")
}

/// Data queries' side of the tenant loop.
pub(crate) struct QueryQueues;

impl TenantQueues for QueryQueues {
    const KIND: &'static str = "query";

    fn wake(services: &Services) -> &Notify {
        &services.query_wake
    }

    fn records(services: &Services) -> &JobRecords {
        services.queries.records()
    }

    /// The tenant's driver forgets it once its queue is empty.
    async fn idle(_: &Services, _: &TenantId) -> Result<bool, DriveError> {
        Ok(false)
    }

    /// Its driver waits between passes: a query submitted or cancelled
    /// meanwhile is taken at once.
    fn nudge(wakers: &JobWakers, tenant: &TenantId) {
        wakers.wake(&waker_key(tenant));
    }

    async fn serve(
        services: &Services,
        wakers: &Arc<JobWakers>,
        lease: &TenantLease,
        tenant: &TenantId,
    ) {
        serve_tenant(services, wakers, lease, tenant).await
    }
}

/// Works through a tenant's queries while holding its query lease, until
/// none is left to settle.
async fn serve_tenant(
    services: &Services,
    wakers: &Arc<JobWakers>,
    lease: &TenantLease,
    tenant: &TenantId,
) {
    let waker = wakers.register(&waker_key(tenant));
    let wake = waker.notify();
    let poll = Duration::from_millis(services.config.export.poll_interval_ms);
    let backoff = Backoff::PATIENT;
    let mut failures = 0;
    // Queries this driver sent to the workers.
    let mut sent = HashSet::new();
    while !lease.stopped().is_cancelled() {
        let pause = match step(services, lease, tenant, &mut sent).await {
            Ok(true) => {
                failures = 0;
                poll
            }
            Ok(false) | Err(DriveError::Stopped) => break,
            Err(error) => {
                failures += 1;
                tracing::warn!(tenant = %tenant, %error, failures, "query step failed, retrying");
                backoff.delay(failures)
            }
        };
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(pause) => {}
            _ = lease.stopped().cancelled() => {}
        }
    }
}

/// One pass over the tenant's queue; false once it is empty.
async fn step(
    services: &Services,
    lease: &TenantLease,
    tenant: &TenantId,
    sent: &mut HashSet<QueryId>,
) -> Result<bool, DriveError> {
    let queries = &services.queries;
    let ids = queries.tenant_queue(tenant).await?;
    if ids.is_empty() {
        queries.forget_tenant_if_idle(tenant).await?;
        return Ok(false);
    }
    let max_running = services.config.query.max_running_per_tenant as usize;
    let mut running = 0;
    for id in ids {
        let (Some(spec), Some((state, raw))) =
            (queries.spec(&id).await?, queries.state_raw(&id).await?)
        else {
            tracing::warn!(tenant = %tenant, query_id = %id, "queued query has no stored job, dropped");
            queries.dequeue(tenant, &id).await?;
            continue;
        };
        match state.status {
            status if status.is_terminal() => settle(services, &spec, &state).await?,
            QueryStatus::InProgress => match queries.report(&id).await? {
                Some(report) => {
                    let next = ended_by(&spec, &state, &report);
                    if queries.transition(&id, &raw, &next).await? {
                        settle(services, &spec, &next).await?;
                    }
                }
                None => {
                    running += 1;
                    // Not sent yet; or sent before this driver started,
                    // into an in-process queue that died with the process
                    // (an embedded restart): send it (again). Of two
                    // attempts the first report wins.
                    let lost = !services.queue.outlives_process() && !sent.contains(&id);
                    if !state.dispatched || lost {
                        if state.dispatched {
                            tracing::info!(tenant = %tenant, query_id = %id, "running query resumed, its task sent again");
                        }
                        dispatch(services, &spec, &state, &raw).await?;
                        sent.insert(id.clone());
                    }
                }
            },
            QueryStatus::Accepted if running < max_running => {
                if !lease.confirm().await? {
                    return Err(DriveError::Stopped);
                }
                let now = chrono::Utc::now().timestamp_millis();
                let started = QueryState {
                    status: QueryStatus::InProgress,
                    started_at_ms: Some(now),
                    updated_at_ms: now,
                    fence: lease.lease().token,
                    ..state
                };
                if queries.transition(&id, &raw, &started).await? {
                    running += 1;
                    tracing::info!(tenant = %tenant, query_id = %id, "query started");
                    let raw = encode(&started).map_err(|e| DriveError::Permanent(e.to_string()))?;
                    dispatch(services, &spec, &started, &raw).await?;
                    sent.insert(id.clone());
                }
            }
            QueryStatus::Accepted
            | QueryStatus::Completed
            | QueryStatus::Failed
            | QueryStatus::Cancelled => {}
        }
    }
    Ok(true)
}

/// The state a report ends a running query in.
fn ended_by(spec: &QuerySpec, state: &QueryState, report: &WorkerReport) -> QueryState {
    let now = chrono::Utc::now().timestamp_millis();
    match report {
        WorkerReport::Queried(outcome)
            if outcome
                .key
                .starts_with(&result_prefix(&spec.tenant, &spec.id)) =>
        {
            QueryState {
                output_rows: outcome.rows,
                processing_ms: outcome.processing_ms,
                data_key: Some(outcome.key.clone()),
                ..state.ended(QueryStatus::Completed, None, now)
            }
        }
        WorkerReport::QueryFailed(failure) => {
            state.ended(QueryStatus::Failed, Some(failure.error.clone()), now)
        }
        other => state.ended(
            QueryStatus::Failed,
            Some(format!(
                "unexpected worker report for query {}: {}",
                spec.id,
                other.job_id()
            )),
            now,
        ),
    }
}

/// Sends the query to the workers and records that it went out.
async fn dispatch(
    services: &Services,
    spec: &QuerySpec,
    state: &QueryState,
    raw: &[u8],
) -> Result<(), DriveError> {
    let config = &services.config;
    let task = Task::Query(QueryTask {
        query_id: spec.id.clone(),
        tenant: spec.tenant.clone(),
        sql: spec.checked_sql.clone(),
        format: spec.output_format,
        compression: spec.compression,
        key_prefix: result_prefix(&spec.tenant, &spec.id),
        part_size: config.export.part_size,
        time_limit_ms: config.query.time_limit_secs.saturating_mul(1000),
        memory_limit_bytes: config.query.memory_limit_mb.saturating_mul(1024 * 1024),
        scope: spec.scope.clone(),
        column_separator: spec.column_separator.clone(),
        read_deleted: spec.read_deleted,
        encryption_key: spec.encryption_key.clone(),
    });
    let payload = encode(&task).map_err(|e| DriveError::Permanent(e.to_string()))?;
    let mut message = Message::new(payload);
    // Tenants' queries take turns for the workers' slots (embedded queue).
    message
        .headers
        .insert(TENANT_HEADER.to_owned(), spec.tenant.to_string());
    let span = query_span(spec);
    span.in_scope(|| inject_trace_context(&mut message.headers));
    services
        .queue
        .publish(&services.topology.tasks(), message)
        .instrument(span)
        .await?;
    let sent = QueryState {
        dispatched: true,
        ..state.clone()
    };
    // Lost to a cancel meanwhile: the worker sees the cancel key and stops.
    services.queries.transition(&spec.id, raw, &sent).await?;
    Ok(())
}

/// Announces an ended query and takes it off the tenant's queue. A
/// cancelled or failed query's result object (a worker may have finished
/// just before) is deleted.
async fn settle(
    services: &Services,
    spec: &QuerySpec,
    state: &QueryState,
) -> Result<(), DriveError> {
    let span = tracing::info_span!(
        "scheduler.query_settle",
        query_id = %spec.id,
        tenant = %spec.tenant,
        status = state.status.as_str(),
    );
    continue_trace(&span, spec);
    settle_in_span(services, spec, state).instrument(span).await
}

async fn settle_in_span(
    services: &Services,
    spec: &QuerySpec,
    state: &QueryState,
) -> Result<(), DriveError> {
    let bucket = &services.config.s3.export_bucket;
    let data_file = match (&state.status, &state.data_key) {
        (QueryStatus::Completed, Some(key)) => Some(presign(services, key).await?),
        _ => {
            services
                .store
                .delete_prefix(bucket, &result_prefix(&spec.tenant, &spec.id))
                .await?;
            None
        }
    };
    match events::publish_query_event(services.queue.as_ref(), spec, state, data_file).await {
        Ok(()) => {}
        Err(error) if error.is_transient() => return Err(error.into()),
        Err(error) => tracing::error!(query_id = %spec.id, %error, "query event not published"),
    }
    // Indexed for retention before it leaves the queue, so an ended query
    // is always either queued or indexed.
    services
        .queries
        .index_ended(
            &spec.id,
            state.completed_at_ms.unwrap_or(state.updated_at_ms),
        )
        .await?;
    // Settled: no longer needed should the state store lose its data.
    super::record::delete(services, spec).await?;
    services.queries.dequeue(&spec.tenant, &spec.id).await?;
    tracing::info!(query_id = %spec.id, status = state.status.as_str(), rows = state.output_rows, "query ended");
    Ok(())
}

/// A presigned GET URL of a result object.
pub async fn presign(services: &Services, key: &str) -> Result<String, DriveError> {
    let expiry = Duration::from_secs(services.config.s3.presign_expiry_secs);
    Ok(services
        .store
        .presign_get(&services.config.s3.export_bucket, key, expiry)
        .await?)
}

/// The span a query's dispatch runs in, continuing the submit call's trace.
fn query_span(spec: &QuerySpec) -> tracing::Span {
    let span = tracing::info_span!(
        "scheduler.query",
        query_id = %spec.id,
        tenant = %spec.tenant,
        track_id = spec.track_id.as_deref().unwrap_or(""),
    );
    continue_trace(&span, spec);
    span
}

/// Makes `span` a child of the submit call's span (stored with the query).
fn continue_trace(span: &tracing::Span, spec: &QuerySpec) {
    if let Some(traceparent) = &spec.traceparent {
        let headers = Headers::from([(TRACEPARENT_HEADER.to_owned(), traceparent.clone())]);
        set_parent_from_headers(span, &headers);
    }
}

/// Records a worker's query report for the driver. The first report of a
/// query wins; the result object of any other (a duplicate attempt, or a
/// report for a query that has ended without it) is deleted.
pub async fn record_report(
    services: &Services,
    id: &QueryId,
    report: &WorkerReport,
) -> Result<Option<TenantId>, DriveError> {
    let queries = &services.queries;
    let (Some(spec), Some((state, _))) = (queries.spec(id).await?, queries.state_raw(id).await?)
    else {
        tracing::warn!(query_id = %id, "report for an unknown query dropped");
        return Ok(None);
    };
    let counted = !state.status.is_terminal() && queries.record_report(id, report).await?;
    if let (false, WorkerReport::Queried(outcome)) = (counted, report) {
        let winner = match queries.report(id).await? {
            Some(WorkerReport::Queried(winner)) => Some(winner.key),
            _ => None,
        };
        let ours = outcome.key.starts_with(&result_prefix(&spec.tenant, id));
        let kept = winner.as_deref() == Some(outcome.key.as_str())
            || state.data_key.as_deref() == Some(outcome.key.as_str());
        if ours && !kept {
            services
                .store
                .delete(&services.config.s3.export_bucket, &outcome.key)
                .await?;
        }
    }
    Ok(Some(spec.tenant))
}

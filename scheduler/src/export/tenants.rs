//! Exports' side of the tenant loop ([`crate::fleet::tenant_loop`]): one
//! export per tenant at a time, in FIFO order, and different tenants
//! concurrently. The holder of a tenant's lease runs one task that works
//! through the tenant's queue: it starts the head job if PENDING,
//! resumes it if RUNNING (its previous driver died and the lease expired),
//! settles it if it already ended, and goes straight on to the next one.

use std::sync::Arc;
use std::time::Duration;

use auditx_common::queue::Headers;
use auditx_common::retry::Backoff;
use auditx_common::telemetry::set_parent_from_headers;
use auditx_proto::{TenantId, TRACEPARENT_HEADER};
use tokio::sync::Notify;
use tracing::Instrument;

use crate::context::Services;
use crate::error::DriveError;
use crate::export::completion;
use crate::export::driver::JobDriver;
use crate::export::jobs::{Job, JobSpec, JobState, JobStatus};
use crate::fleet::epoch;
use crate::fleet::job_records::JobRecords;
use crate::fleet::lease::TenantLease;
use crate::fleet::tenant_loop::TenantQueues;
use crate::fleet::wakers::JobWakers;
use crate::metrics;

/// Exports' side of the tenant loop.
pub(crate) struct ExportQueues;

impl TenantQueues for ExportQueues {
    const KIND: &'static str = "export";

    fn wake(services: &Services) -> &Notify {
        &services.wake
    }

    fn records(services: &Services) -> &JobRecords {
        services.jobs.records()
    }

    async fn idle(services: &Services, tenant: &TenantId) -> Result<bool, DriveError> {
        if services.jobs.tenant_queue_len(tenant).await? > 0 {
            return Ok(false);
        }
        services.jobs.forget_tenant_if_idle(tenant).await?;
        Ok(true)
    }

    /// The tenant's task goes straight on to its next job: nothing to wake.
    fn nudge(_: &JobWakers, _: &TenantId) {}

    async fn serve(
        services: &Services,
        wakers: &Arc<JobWakers>,
        lease: &TenantLease,
        tenant: &TenantId,
    ) {
        serve_tenant(services, wakers, lease, tenant).await
    }
}

/// Works through a tenant's queue while holding its lease.
async fn serve_tenant(
    services: &Services,
    wakers: &Arc<JobWakers>,
    lease: &TenantLease,
    tenant: &TenantId,
) {
    let backoff = Backoff::PATIENT;
    let mut failures = 0;
    while !lease.stopped().is_cancelled() {
        match next_job(services, wakers, tenant, lease).await {
            Ok(true) => failures = 0,
            Ok(false) | Err(DriveError::Stopped) => break,
            Err(error) => {
                failures += 1;
                tracing::warn!(tenant = %tenant, %error, failures, "tenant queue step failed, retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff.delay(failures)) => {}
                    _ = lease.stopped().cancelled() => {}
                }
            }
        }
    }
}

/// Handles the head of the tenant's queue; false once the queue is empty.
async fn next_job(
    services: &Services,
    wakers: &Arc<JobWakers>,
    tenant: &TenantId,
    lease: &TenantLease,
) -> Result<bool, DriveError> {
    let jobs = &services.jobs;
    let Some(id) = jobs.tenant_queue_head(tenant).await? else {
        jobs.forget_tenant_if_idle(tenant).await?;
        return Ok(false);
    };
    let (Some(spec), Some((state, raw))) = (jobs.spec(&id).await?, jobs.state_raw(&id).await?)
    else {
        tracing::warn!(tenant = %tenant, request_id = %id, "queued export has no stored job, dropped");
        jobs.dequeue(tenant, &id).await?;
        return Ok(true);
    };
    let state = match state.status {
        status if status.is_terminal() => {
            // Ended by a driver that died before settling it, or canceled
            // while pending: finish the cleanup and announce it (the event
            // id makes a repeat harmless).
            if status != JobStatus::Finished {
                if !lease.confirm().await? {
                    return Err(DriveError::Stopped);
                }
                completion::discard_outputs(services, &spec).await?;
            }
            completion::settle(
                services,
                &Job {
                    spec,
                    state,
                    cancel_requested: false,
                },
            )
            .await?;
            return Ok(true);
        }
        JobStatus::Pending => {
            let now = chrono::Utc::now().timestamp_millis();
            let running = JobState {
                status: JobStatus::Running,
                started_at_ms: Some(now),
                fence: lease.lease().token,
                ..state
            };
            if !jobs.transition(&id, &raw, &running).await? {
                return Ok(true); // canceled meanwhile: look again
            }
            metrics::job_entered(JobStatus::Running);
            metrics::lock_waited(Duration::from_millis(
                (now - spec.created_at_ms).max(0) as u64
            ));
            tracing::info!(tenant = %tenant, request_id = %id, "export started");
            running
        }
        _ => {
            metrics::export_taken_over();
            tracing::info!(tenant = %tenant, request_id = %id, "export resumed");
            state
        }
    };
    // A record of the running job outside the state store, so it can be
    // failed and announced should the store lose its data.
    epoch::record_running_job(services, &spec).await?;
    let waker = wakers.register(id.as_str());
    let span = job_span(&spec);
    let job = JobDriver::new(services, lease, waker.notify(), spec, state)
        .run()
        .instrument(span.clone())
        .await?;
    completion::settle(services, &job).instrument(span).await?;
    Ok(true)
}

/// The span a job's work runs in, continuing the create call's trace.
fn job_span(spec: &JobSpec) -> tracing::Span {
    let span = tracing::info_span!(
        "scheduler.job",
        request_id = %spec.request_id,
        tenant = %spec.tenant,
        meter = spec.meter_id.0,
        track_id = spec.track_id.as_deref().unwrap_or(""),
    );
    if let Some(traceparent) = &spec.traceparent {
        let headers = Headers::from([(TRACEPARENT_HEADER.to_owned(), traceparent.clone())]);
        set_parent_from_headers(&span, &headers);
    }
    span
}

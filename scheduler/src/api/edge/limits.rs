//! Per-tenant limits on create calls, so one tenant's flood cannot make
//! everyone else wait: a token bucket per tenant over export creates and
//! query submits (`api.create_rate_per_sec`, `api.create_burst`) and a cap
//! on a tenant's PENDING exports (`export.max_pending_per_tenant`). Past
//! either the call is a 429 with `Retry-After`.
//!
//! Both hold fleet-wide: the bucket lives in the state store (Redis in the
//! distributed mode, on Redis' clock), and the PENDING count is read from
//! the tenant's FIFO there. The count is read before the job is queued, so
//! creates racing on several replicas may pass the cap by at most their
//! number (the bucket bounds that too).

use auditx_proto::TenantId;

use crate::api::response::error::{ApiError, ApiResult};
use crate::context::Services;
use crate::export::jobs::JobStatus;

/// Admits an export create of `tenant`: within its create rate and under
/// its PENDING cap.
pub async fn admit_export(services: &Services, tenant: &TenantId) -> ApiResult<()> {
    take_create_token(services, tenant).await?;
    check_pending_exports(services, tenant).await
}

/// Admits a data query submit of `tenant`: within its create rate (the
/// running + queued cap is checked by the submit itself).
pub async fn admit_query(services: &Services, tenant: &TenantId) -> ApiResult<()> {
    take_create_token(services, tenant).await
}

fn rate_key(tenant: &TenantId) -> String {
    format!("tenant/{tenant}/create-rate")
}

async fn take_create_token(services: &Services, tenant: &TenantId) -> ApiResult<()> {
    let api = &services.config.api;
    let refused = services
        .state
        .take_token(&rate_key(tenant), api.create_rate_per_sec, api.create_burst)
        .await?;
    match refused {
        None => Ok(()),
        Some(wait) => {
            let retry_after_secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            tracing::debug!(%tenant, retry_after_secs, "create rate exceeded");
            Err(ApiError::TooManyRequests {
                message: format!(
                    "tenant {tenant} is over its create rate ({} per second, bursts of {}); retry after {retry_after_secs} s",
                    api.create_rate_per_sec, api.create_burst
                ),
                retry_after_secs,
            })
        }
    }
}

async fn check_pending_exports(services: &Services, tenant: &TenantId) -> ApiResult<()> {
    let export = &services.config.export;
    let cap = export.max_pending_per_tenant as usize;
    let pending = pending_count(services, tenant).await?;
    if pending < cap {
        return Ok(());
    }
    tracing::debug!(%tenant, pending, "pending export cap reached");
    Err(ApiError::TooManyRequests {
        message: format!(
            "tenant {tenant} already has {pending} PENDING exports (limit {cap}); retry when some have run"
        ),
        retry_after_secs: export.retry_after_secs,
    })
}

/// The PENDING jobs of a tenant's FIFO: all of it but a running head. The
/// queue's length is read, not the queue (one state call however many
/// wait); the head's state only when the count matters.
async fn pending_count(services: &Services, tenant: &TenantId) -> ApiResult<usize> {
    let cap = services.config.export.max_pending_per_tenant as usize;
    let queued = services.jobs.tenant_queue_len(tenant).await? as usize;
    if queued < cap {
        return Ok(queued);
    }
    let Some(head) = services.jobs.tenant_queue_head(tenant).await? else {
        return Ok(0);
    };
    let head_pending = match services.jobs.get(&head).await? {
        Some(job) => job.state.status == JobStatus::Pending,
        // Ended and removed meanwhile: not waiting either.
        None => false,
    };
    Ok(queued.saturating_sub(usize::from(!head_pending)))
}

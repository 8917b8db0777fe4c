//! Retention: an ended export's record and files are removed
//! `export.retention_secs` after it ended (30 days by default).
//!
//! The sweep is [`crate::fleet::retention`]'s; removing one export deletes
//! its files and staging objects in the export bucket, then every key of
//! the job and its entries in the meter's index and in `jobs/ended`.

use std::time::Duration;

use auditx_common::state::Lease;
use auditx_proto::RequestId;

use crate::context::Services;
use crate::error::DriveError;
use crate::export::layout;
use crate::fleet::retention::Retained;

/// Ended exports.
pub(crate) struct Exports;

impl Retained for Exports {
    const WHAT: &'static str = "exports";

    async fn take_lease(services: &Services, ttl: Duration) -> Result<Option<Lease>, DriveError> {
        Ok(services
            .jobs
            .take_retention_lease(&services.replica, ttl)
            .await?)
    }

    async fn ended_before(
        services: &Services,
        cutoff_ms: i64,
        max: usize,
    ) -> Result<Vec<String>, DriveError> {
        let ids = services.jobs.ended_before(cutoff_ms, max).await?;
        Ok(ids.into_iter().map(|id| id.0).collect())
    }

    async fn remove(services: &Services, lease: &Lease, id: String) -> Result<(), DriveError> {
        remove_job(services, lease, &RequestId(id)).await
    }

    async fn release(services: &Services, lease: &Lease) -> Result<(), DriveError> {
        Ok(services.jobs.release(lease).await?)
    }
}

async fn remove_job(services: &Services, lease: &Lease, id: &RequestId) -> Result<(), DriveError> {
    let spec = services.jobs.spec(id).await?;
    if let Some(spec) = &spec {
        let bucket = &services.config.s3.export_bucket;
        for prefix in [
            layout::export_prefix(&spec.tenant, id),
            layout::staging_prefix(&spec.tenant, id),
        ] {
            services.store.delete_prefix(bucket, &prefix).await?;
        }
    }
    services.jobs.remove(lease, id, spec.as_ref()).await?;
    tracing::debug!(request_id = %id, "ended export past retention removed");
    Ok(())
}

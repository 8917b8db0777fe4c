//! Retention: an ended export's record and files are removed
//! `export.retention_secs` after it ended (30 days by default).
//!
//! The sweep is [`crate::fleet::retention`]'s; removing one export deletes
//! its files and staging objects in the export bucket, then every key of
//! the job and its entries in the meter's index and in `jobs/ended`.

use auditx_common::state::Lease;
use auditx_proto::RequestId;

use crate::context::Services;
use crate::error::DriveError;
use crate::export::layout;
use crate::fleet::job_records::JobRecords;
use crate::fleet::retention::Retained;

/// Ended exports.
pub(crate) struct Exports;

impl Retained for Exports {
    const WHAT: &'static str = "exports";

    fn records(services: &Services) -> &JobRecords {
        services.jobs.records()
    }

    async fn remove(services: &Services, lease: &Lease, id: String) -> Result<(), DriveError> {
        remove_job(services, lease, &RequestId(id)).await
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

//! Retention: an ended export's record and files are removed
//! `export.retention_secs` after it ended (30 days by default).
//!
//! The sweep is [`crate::fleet::retention`]'s; removing one export deletes
//! its files and staging objects in the export bucket, then every key of
//! the job and its entries in the meter's index and in `jobs/ended`.

use auditx_common::state::{Guard, Lease, Write};
use auditx_proto::RequestId;

use crate::context::Services;
use crate::error::DriveError;
use crate::export::completion::uploads_key;
use crate::export::job_plan::plan_key;
use crate::export::jobs::ENDED_INDEX_KEY as ENDED_KEY;
use crate::export::jobs::{cancel_key, meter_index_key, reports_key, spec_key, state_key};
use crate::export::layout;
use crate::fleet::retention::Retained;

/// Ended exports.
pub(crate) struct Exports;

impl Retained for Exports {
    const WHAT: &'static str = "exports";
    const LEASE_KEY: &'static str = "lease/retention";
    const ENDED_INDEX: &'static str = ENDED_KEY;

    async fn remove(services: &Services, lease: &Lease, id: String) -> Result<(), DriveError> {
        remove_job(services, lease, &RequestId(id)).await
    }
}

async fn remove_job(services: &Services, lease: &Lease, id: &RequestId) -> Result<(), DriveError> {
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

//! Retention of data queries, as for exports: an ended query's record and
//! result objects are removed `export.retention_secs` after it ended (30
//! days by default; its presigned `dataFile` stops working then too).
//!
//! The sweep is [`crate::fleet::retention`]'s; removing one query deletes
//! its result objects, then its keys and its entries in the tenant's index
//! and in `queries/ended`.

use auditx_common::state::Lease;
use auditx_proto::QueryId;

use super::result_prefix;
use crate::context::Services;
use crate::error::DriveError;
use crate::fleet::job_records::JobRecords;
use crate::fleet::retention::Retained;

/// Ended data queries.
pub(crate) struct Queries;

impl Retained for Queries {
    const WHAT: &'static str = "data queries";

    fn records(services: &Services) -> &JobRecords {
        services.queries.records()
    }

    async fn remove(services: &Services, lease: &Lease, id: String) -> Result<(), DriveError> {
        remove_query(services, lease, &QueryId(id)).await
    }
}

async fn remove_query(services: &Services, lease: &Lease, id: &QueryId) -> Result<(), DriveError> {
    let spec = services.queries.spec(id).await?;
    if let Some(spec) = &spec {
        services
            .store
            .delete_prefix(
                &services.config.s3.export_bucket,
                &result_prefix(&spec.tenant, id),
            )
            .await?;
    }
    services.queries.remove(lease, id, spec.as_ref()).await?;
    tracing::debug!(query_id = %id, "ended data query past retention removed");
    Ok(())
}

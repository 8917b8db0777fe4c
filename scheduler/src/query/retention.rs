//! Retention of data queries, as for exports: an ended query's record and
//! result objects are removed `export.retention_secs` after it ended (30
//! days by default; its presigned `dataFile` stops working then too).
//!
//! The sweep is [`crate::fleet::retention`]'s; removing one query deletes
//! its result objects, then its keys and its entries in the tenant's index
//! and in `queries/ended`.

use auditx_common::state::{Guard, Lease, Write};
use auditx_proto::QueryId;

use super::jobs::{cancel_key, reports_key, spec_key, state_key, tenant_index_key};
use super::result_prefix;
use crate::context::Services;
use crate::error::DriveError;
use crate::fleet::retention::Retained;

/// Ended queries, scored by when they ended.
pub const ENDED_INDEX_KEY: &str = "queries/ended";

/// Ended data queries.
pub(crate) struct Queries;

impl Retained for Queries {
    const WHAT: &'static str = "data queries";
    const LEASE_KEY: &'static str = "lease/query-retention";
    const ENDED_INDEX: &'static str = ENDED_INDEX_KEY;

    async fn remove(services: &Services, lease: &Lease, id: String) -> Result<(), DriveError> {
        remove_query(services, lease, &QueryId(id)).await
    }
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

//! A query's record in the export bucket, so that a query outlives the
//! state store's data.
//!
//! The state store holds every query job. Should it come back empty (a
//! Redis restarted without AOF, or its disk lost), a query would vanish:
//! `GET /query/jobs/{id}` answering 404 for a query the user was told was
//! accepted. So the API writes the query's spec to
//! `_queries/<tenant>/<id>.json` before it stores the job, and the
//! scheduler deletes it once the query is settled (ended, announced and
//! indexed for retention). The recovery of a store that lost its data
//! ([`crate::fleet::epoch`]) stores every recorded query the store no longer
//! knows as failed, with [`LOST_REASON`]; the query driver then settles it
//! like any other (its event, its partial result objects deleted), and a
//! worker still running it stops at its cancel key.

use auditx_common::s3::StorageError;
use auditx_proto::{QueryId, TenantId};
use bytes::Bytes;

use super::jobs::{QuerySpec, QueryState, QueryStatus};
use crate::context::Services;
use crate::error::DriveError;

/// Where the records are, in the export bucket.
pub const RECORDS_PREFIX: &str = "_queries/";

/// The reason a lost query fails with.
pub const LOST_REASON: &str = "the state store lost this query (it restarted without its \
     data); nothing was delivered: please submit the query again";

/// `_queries/<tenant>/<id>.json`
pub fn record_key(tenant: &TenantId, id: &QueryId) -> String {
    format!("{RECORDS_PREFIX}{tenant}/{id}.json")
}

/// Writes the record of a query about to be stored.
pub async fn write(services: &Services, spec: &QuerySpec) -> Result<(), StorageError> {
    let body = serde_json::to_vec(spec).expect("a query spec serializes to JSON");
    services
        .store
        .put(
            &services.config.s3.export_bucket,
            &record_key(&spec.tenant, &spec.id),
            Bytes::from(body),
            "application/json",
        )
        .await
        .map(drop)
}

/// Deletes the record of a settled query.
pub async fn delete(services: &Services, spec: &QuerySpec) -> Result<(), StorageError> {
    services
        .store
        .delete(
            &services.config.s3.export_bucket,
            &record_key(&spec.tenant, &spec.id),
        )
        .await
}

/// Stores every recorded query the state store forgot as failed with
/// [`LOST_REASON`]; returns how many.
pub async fn restore_lost(services: &Services) -> Result<usize, DriveError> {
    let bucket = &services.config.s3.export_bucket;
    let keys: Vec<String> = services
        .store
        .list(bucket, RECORDS_PREFIX)
        .await?
        .into_iter()
        .map(|o| o.key)
        .filter(|key| key.ends_with(".json"))
        .collect();
    let mut failed = 0;
    for key in keys {
        let bytes = match services.store.get(bucket, &key).await {
            Ok(bytes) => bytes,
            Err(StorageError::NotFound { .. }) => continue, // settled meanwhile
            Err(error) => return Err(error.into()),
        };
        let spec: QuerySpec = match serde_json::from_slice(&bytes) {
            Ok(spec) => spec,
            Err(error) => {
                tracing::error!(key, %error, "unreadable query record skipped");
                continue;
            }
        };
        if services.queries.spec(&spec.id).await?.is_some() {
            continue; // the store still knows it
        }
        let now = chrono::Utc::now().timestamp_millis();
        let state = QueryState::accepted(spec.created_at_ms).ended(
            QueryStatus::Failed,
            Some(LOST_REASON.to_owned()),
            now,
        );
        services.queries.restore_lost(&spec, &state).await?;
        tracing::warn!(query_id = %spec.id, tenant = %spec.tenant, "query lost with the state store: failed");
        failed += 1;
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_outside_every_tenant_prefix() {
        let key = record_key(&TenantId::from("acme"), &QueryId("q-1".into()));
        assert_eq!(key, "_queries/acme/q-1.json");
        // Tenants' objects are under `<tenant>/`, staging under `_staging/`.
        assert!(!key.starts_with("acme/") && !key.starts_with("_staging/"));
    }
}

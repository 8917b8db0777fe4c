//! Saved data queries as the state store keeps them, per tenant: each one
//! a JSON record under `savedquery/<tenant>/<id>`, their ids in the set
//! `tenant/<tenant>/savedqueries`. The API's routes
//! (`api/routes/queries/saved.rs`) shape and check the records; the keys
//! are built here only.

use std::sync::Arc;

use auditx_common::state::{Guard, StateResult, StateStore, Write};
use auditx_proto::TenantId;

fn index_key(tenant: &TenantId) -> String {
    format!("tenant/{tenant}/savedqueries")
}

fn query_key(tenant: &TenantId, id: &str) -> String {
    format!("savedquery/{tenant}/{id}")
}

/// The saved queries of every tenant.
#[derive(Clone)]
pub struct SavedQueries {
    state: Arc<dyn StateStore>,
}

impl SavedQueries {
    pub fn new(state: Arc<dyn StateStore>) -> Self {
        Self { state }
    }

    /// The ids of `tenant`'s saved queries, in no order.
    pub async fn ids(&self, tenant: &TenantId) -> StateResult<Vec<String>> {
        self.state.set_members(&index_key(tenant)).await
    }

    /// The record of `tenant`'s saved query `id`.
    pub async fn get(&self, tenant: &TenantId, id: &str) -> StateResult<Option<Vec<u8>>> {
        self.state.get(&query_key(tenant, id)).await
    }

    /// Stores a new record and lists it, at once; false if `id` exists.
    pub async fn insert(&self, tenant: &TenantId, id: &str, record: Vec<u8>) -> StateResult<bool> {
        let key = query_key(tenant, id);
        self.state
            .apply_atomically(
                Guard::Absent(key.clone()),
                vec![
                    Write::Set(key, record),
                    Write::SetAdd(index_key(tenant), id.to_owned()),
                ],
            )
            .await
    }

    /// Replaces the record `before` with `after`; false if it changed
    /// meanwhile.
    pub async fn replace(
        &self,
        tenant: &TenantId,
        id: &str,
        before: Vec<u8>,
        after: Vec<u8>,
    ) -> StateResult<bool> {
        let key = query_key(tenant, id);
        self.state
            .apply_atomically(
                Guard::Equals(key.clone(), before),
                vec![Write::Set(key, after)],
            )
            .await
    }

    /// Deletes the record and unlists it, at once.
    pub async fn remove(&self, tenant: &TenantId, id: &str) -> StateResult<()> {
        self.state
            .apply_atomically(
                Guard::Always,
                vec![
                    Write::Delete(query_key(tenant, id)),
                    Write::SetRemove(index_key(tenant), id.to_owned()),
                ],
            )
            .await
            .map(drop)
    }
}

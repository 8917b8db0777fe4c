//! Per-tenant FIFO lists of job ids, and the set of tenants that have
//! something queued: the API pushes, the replica holding a tenant's lease
//! works through the tenant's list. Exports and data queries each have
//! their own lists (keys below), with the same operations.

use std::sync::Arc;

use auditx_common::state::{StateResult, StateStore, Write};
use auditx_proto::TenantId;

#[derive(Clone)]
pub struct TenantQueues {
    state: Arc<dyn StateStore>,
    /// The list under `tenant/<t>/`.
    list: &'static str,
    /// The set of tenants with a non-empty list.
    pending: &'static str,
}

impl TenantQueues {
    /// Exports: `tenant/<t>/queue`, tenants in `tenants/pending`.
    pub fn exports(state: Arc<dyn StateStore>) -> Self {
        Self {
            state,
            list: "queue",
            pending: "tenants/pending",
        }
    }

    /// Data queries: `tenant/<t>/query-queue`, tenants in `queries/pending`.
    pub fn queries(state: Arc<dyn StateStore>) -> Self {
        Self {
            state,
            list: "query-queue",
            pending: "queries/pending",
        }
    }

    fn key(&self, tenant: &TenantId) -> String {
        format!("tenant/{tenant}/{}", self.list)
    }

    /// The writes that queue `id` behind the tenant's others, for an
    /// atomic batch.
    pub fn push_writes(&self, tenant: &TenantId, id: &str) -> [Write; 2] {
        [
            Write::ListPush(self.key(tenant), id.to_owned()),
            Write::SetAdd(self.pending.to_owned(), tenant.to_string()),
        ]
    }

    /// The write that takes `id` off the tenant's list, for an atomic batch.
    pub fn remove_write(&self, tenant: &TenantId, id: &str) -> Write {
        Write::ListRemove(self.key(tenant), id.to_owned())
    }

    /// The tenant's ids, oldest first.
    pub async fn ids(&self, tenant: &TenantId) -> StateResult<Vec<String>> {
        self.state.list_all(&self.key(tenant)).await
    }

    /// How many ids the tenant has queued (one state call, whatever the count).
    pub async fn len(&self, tenant: &TenantId) -> StateResult<u64> {
        self.state.list_len(&self.key(tenant)).await
    }

    /// The tenant's oldest id.
    pub async fn first(&self, tenant: &TenantId) -> StateResult<Option<String>> {
        self.state.list_first(&self.key(tenant)).await
    }

    pub async fn remove(&self, tenant: &TenantId, id: &str) -> StateResult<()> {
        self.state.list_remove(&self.key(tenant), id).await
    }

    pub async fn pending_tenants(&self) -> StateResult<Vec<TenantId>> {
        Ok(self
            .state
            .set_members(self.pending)
            .await?
            .into_iter()
            .map(TenantId)
            .collect())
    }

    /// Forgets a tenant with an empty list (re-adding it if an id raced in).
    pub async fn forget_tenant_if_idle(&self, tenant: &TenantId) -> StateResult<()> {
        self.state
            .set_remove(self.pending, &[tenant.to_string()])
            .await?;
        if !self.ids(tenant).await?.is_empty() {
            self.state
                .set_add(self.pending, &[tenant.to_string()])
                .await?;
        }
        Ok(())
    }
}

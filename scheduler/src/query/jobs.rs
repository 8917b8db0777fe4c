//! Data query jobs as stored in the state store, and the operations the API
//! and the scheduler share.
//!
//! Keys (relative to the store's prefix):
//!
//! | key | kind | written by |
//! |---|---|---|
//! | `query/<id>/spec` | value: [`QuerySpec`] | API, once |
//! | `query/<id>/state` | value: [`QueryState`] | compare-and-set only (API and scheduler) |
//! | `query/<id>/cancel` | value | API; workers poll it to stop a running query |
//! | `query/<id>/reports` | hash, field `result`: the first worker report | results consumer, write-once |
//! | `tenant/<t>/queries` | index by creation time | API |
//! | `tenant/<t>/query-queue` | list of queries not yet settled | API pushes, scheduler removes |
//! | `queries/pending` | set of tenants with queries to settle | API adds, scheduler removes |
//! | `lease/query/<t>` | lease: the replica running the tenant's queries | scheduler |
//! | `queries/ended` | index by end time | the query driver adds, retention removes |
//! | `lease/query-retention` | lease: the replica sweeping ended queries | retention |
//!
//! The cancel flag's key is built by [`auditx_common::query_cancel`], which
//! workers poll too; nothing else outside this store builds these keys.

use std::sync::Arc;

use auditx_common::query_cancel;
use auditx_common::state::{Lease, StateStore};
use auditx_proto::{
    decode, Compression, QueryId, QueryOutputFormat, Scope, TenantId, WorkerReport,
};
use serde::{Deserialize, Serialize};

use crate::fleet::job_records::{JobRecords, Kind, RecordError};

/// What was asked for; immutable once written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuerySpec {
    pub id: QueryId,
    pub tenant: TenantId,
    /// The SQL as submitted (shown back to the user).
    pub query: String,
    /// The SQL as checked and rewritten, sent to the workers.
    pub checked_sql: String,
    pub output_format: QueryOutputFormat,
    pub compression: Compression,
    pub created_at_ms: i64,
    #[serde(default)]
    pub traceparent: Option<String>,
    #[serde(default)]
    pub track_id: Option<String>,
    /// The submitter's entities and orgs: the query reads only their rows,
    /// and only callers covering them see it (queries from before scopes
    /// decode as tenant-wide).
    #[serde(default)]
    pub scope: Scope,
    /// The token's subject (`createdBy`).
    #[serde(default)]
    pub created_by: String,
    /// DSV's column separator.
    #[serde(default)]
    pub column_separator: Option<String>,
    /// `readDeleted`: the deleted rows instead of the live ones.
    #[serde(default)]
    pub read_deleted: bool,
    /// `encryptionKey` as given (base64 DER of an RSA public key).
    #[serde(default)]
    pub encryption_key: Option<String>,
    /// `sourceData` as given (`LIVE` or `WAREHOUSE`; both read the lake).
    #[serde(default = "live")]
    pub source_data: String,
    /// `useIndexJoin` as given (DataFusion plans joins itself).
    #[serde(default)]
    pub use_index_join: bool,
    /// `warehouseSize` as given.
    #[serde(default)]
    pub warehouse_size: Option<String>,
}

fn live() -> String {
    "LIVE".to_owned()
}

/// `queryStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryStatus {
    /// Waiting for one of the tenant's running slots.
    Accepted,
    InProgress,
    Completed,
    Failed,
    Cancelled,
}

impl QueryStatus {
    pub const ALL: [QueryStatus; 5] = [
        QueryStatus::Accepted,
        QueryStatus::InProgress,
        QueryStatus::Completed,
        QueryStatus::Failed,
        QueryStatus::Cancelled,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            QueryStatus::Accepted => "accepted",
            QueryStatus::InProgress => "in_progress",
            QueryStatus::Completed => "completed",
            QueryStatus::Failed => "failed",
            QueryStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            QueryStatus::Completed | QueryStatus::Failed | QueryStatus::Cancelled
        )
    }
}

/// Where a query is; every change is a compare-and-set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryState {
    pub status: QueryStatus,
    pub updated_at_ms: i64,
    #[serde(default)]
    pub started_at_ms: Option<i64>,
    #[serde(default)]
    pub completed_at_ms: Option<i64>,
    /// The task went out to the workers (so a replica that takes over does
    /// not send it again).
    #[serde(default)]
    pub dispatched: bool,
    #[serde(default)]
    pub output_rows: u64,
    #[serde(default)]
    pub processing_ms: u64,
    /// The result object in the export bucket (completed queries).
    #[serde(default)]
    pub data_key: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    /// Fencing token of the lease under which the query was started.
    #[serde(default)]
    pub fence: u64,
}

impl QueryState {
    pub fn accepted(now_ms: i64) -> Self {
        Self {
            status: QueryStatus::Accepted,
            updated_at_ms: now_ms,
            started_at_ms: None,
            completed_at_ms: None,
            dispatched: false,
            output_rows: 0,
            processing_ms: 0,
            data_key: None,
            error: None,
            fence: 0,
        }
    }

    /// This state ended with `status` at `now_ms`.
    pub fn ended(&self, status: QueryStatus, error: Option<String>, now_ms: i64) -> Self {
        Self {
            status,
            updated_at_ms: now_ms,
            completed_at_ms: Some(now_ms),
            error,
            ..self.clone()
        }
    }
}

/// A query as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryJob {
    pub spec: QuerySpec,
    pub state: QueryState,
}

pub type QueryJobError = RecordError;
pub type QueryJobResult<T> = Result<T, QueryJobError>;

/// The one field of a query's reports hash: the first report wins.
pub const RESULT_FIELD: &str = "result";

/// Data queries' key names.
static QUERIES: Kind = Kind {
    prefix: "query",
    what: "query",
    queue: "query-queue",
    pending: "queries/pending",
    tenant_lease: "lease/query",
    ended_index: "queries/ended",
    retention_lease: "lease/query-retention",
};

const REPORTS: &str = "reports";

fn tenant_index_key(tenant: &TenantId) -> String {
    format!("tenant/{tenant}/queries")
}

/// What a cancel call found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    Cancelled(QueryJob),
    AlreadyEnded(QueryJob),
    NotFound,
}

/// Query job storage over any [`StateStore`].
#[derive(Clone)]
pub struct QueryStore {
    records: JobRecords,
}

impl QueryStore {
    pub fn new(state: Arc<dyn StateStore>) -> Self {
        Self {
            records: JobRecords::new(state, &QUERIES),
        }
    }

    /// What this store keeps the way the other job store does (leases,
    /// queues, the ended index), for the loops both kinds run.
    pub(crate) fn records(&self) -> &JobRecords {
        &self.records
    }

    fn state(&self) -> &dyn StateStore {
        self.records.state.as_ref()
    }

    /// Stores a new accepted query and queues it behind the tenant's others.
    pub async fn create(&self, spec: &QuerySpec) -> QueryJobResult<()> {
        self.store_queued(spec, &QueryState::accepted(spec.created_at_ms))
            .await
    }

    /// Stores again a query the state store lost, ended as `state`
    /// (failed, with the reason), and queues it so that the scheduler
    /// settles it (event, result objects, retention) like any other; raises
    /// its cancel flag, so a worker still running it stops. Nothing if the
    /// store knows the query (again).
    pub async fn restore_lost(&self, spec: &QuerySpec, state: &QueryState) -> QueryJobResult<()> {
        query_cancel::raise(self.state(), &spec.id).await?;
        self.store_queued(spec, state).await
    }

    /// One atomic batch: all or nothing, and a retry after a lost reply
    /// neither overwrites the job nor queues it twice.
    async fn store_queued(&self, spec: &QuerySpec, state: &QueryState) -> QueryJobResult<()> {
        self.records
            .create(
                spec.id.as_str(),
                &spec.tenant,
                spec,
                state,
                tenant_index_key(&spec.tenant),
                spec.created_at_ms,
                true,
            )
            .await
    }

    pub async fn spec(&self, id: &QueryId) -> QueryJobResult<Option<QuerySpec>> {
        self.records.spec(id.as_str()).await
    }

    /// The state and its raw bytes (the compare-and-set expectation).
    pub async fn state_raw(&self, id: &QueryId) -> QueryJobResult<Option<(QueryState, Vec<u8>)>> {
        self.records.state_raw(id.as_str()).await
    }

    /// The query, if it exists and belongs to `tenant`.
    pub async fn get(&self, tenant: &TenantId, id: &QueryId) -> QueryJobResult<Option<QueryJob>> {
        let Some(spec) = self.spec(id).await? else {
            return Ok(None);
        };
        if &spec.tenant != tenant {
            return Ok(None);
        }
        let Some((state, _)) = self.state_raw(id).await? else {
            return Ok(None);
        };
        Ok(Some(QueryJob { spec, state }))
    }

    /// Every query of a tenant, oldest first.
    pub async fn list(&self, tenant: &TenantId) -> QueryJobResult<Vec<QueryJob>> {
        let ids = self.records.indexed(&tenant_index_key(tenant)).await?;
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(job) = self.get(tenant, &QueryId(id)).await? {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }

    /// Moves a query from the state encoded as `expected` to `next`; false
    /// if someone changed it first.
    pub async fn transition(
        &self,
        id: &QueryId,
        expected: &[u8],
        next: &QueryState,
    ) -> QueryJobResult<bool> {
        self.records.transition(id.as_str(), expected, next).await
    }

    /// Cancels a query that has not ended: an accepted one never runs, a
    /// running one is stopped by its worker (which polls the cancel flag).
    pub async fn cancel(
        &self,
        tenant: &TenantId,
        id: &QueryId,
        now_ms: i64,
    ) -> QueryJobResult<CancelOutcome> {
        loop {
            let Some(job) = self.get(tenant, id).await? else {
                return Ok(CancelOutcome::NotFound);
            };
            if job.state.status.is_terminal() {
                return Ok(CancelOutcome::AlreadyEnded(job));
            }
            let Some((state, raw)) = self.state_raw(id).await? else {
                return Ok(CancelOutcome::NotFound);
            };
            if state.status.is_terminal() {
                continue;
            }
            query_cancel::raise(self.state(), id).await?;
            let next = state.ended(
                QueryStatus::Cancelled,
                Some("cancelled by request".into()),
                now_ms,
            );
            if self.transition(id, &raw, &next).await? {
                return Ok(CancelOutcome::Cancelled(QueryJob {
                    spec: job.spec,
                    state: next,
                }));
            }
        }
    }

    /// Queries of a tenant not yet settled, oldest first.
    pub async fn tenant_queue(&self, tenant: &TenantId) -> QueryJobResult<Vec<QueryId>> {
        let ids = self.records.queue(tenant).await?;
        Ok(ids.into_iter().map(QueryId).collect())
    }

    pub async fn dequeue(&self, tenant: &TenantId, id: &QueryId) -> QueryJobResult<()> {
        Ok(self.records.dequeue(tenant, id.as_str()).await?)
    }

    pub async fn pending_tenants(&self) -> QueryJobResult<Vec<TenantId>> {
        Ok(self.records.pending_tenants().await?)
    }

    /// Forgets a tenant with an empty queue (re-adding it if a query raced in).
    pub async fn forget_tenant_if_idle(&self, tenant: &TenantId) -> QueryJobResult<()> {
        Ok(self.records.forget_tenant_if_idle(tenant).await?)
    }

    /// Records a worker's report; true if it is the first one (the one
    /// that counts).
    pub async fn record_report(&self, id: &QueryId, report: &WorkerReport) -> QueryJobResult<bool> {
        let bytes = self.records.encode(id.as_str(), report)?;
        let key = self.records.key(id.as_str(), REPORTS);
        Ok(self
            .state()
            .hash_set_if_absent(&key, RESULT_FIELD, &bytes)
            .await?)
    }

    /// The report that counts, once a worker has sent one.
    pub async fn report(&self, id: &QueryId) -> QueryJobResult<Option<WorkerReport>> {
        let key = self.records.key(id.as_str(), REPORTS);
        let fields = self.state().hash_get_all(&key).await?;
        match fields.into_iter().find(|(field, _)| field == RESULT_FIELD) {
            Some((_, bytes)) => Ok(Some(
                decode(&bytes).map_err(|e| self.records.corrupt(id.as_str(), e))?,
            )),
            None => Ok(None),
        }
    }

    /// Indexes an ended query for retention, by when it ended.
    pub async fn index_ended(&self, id: &QueryId, ended_at_ms: i64) -> QueryJobResult<()> {
        self.records.index_ended(id.as_str(), ended_at_ms).await
    }

    /// Forgets an ended query for good, under the retention `lease`: its
    /// keys and its entries in the tenant's index (`spec`, when still
    /// known) and in the ended index, in one atomic batch.
    pub async fn remove(
        &self,
        lease: &Lease,
        id: &QueryId,
        spec: Option<&QuerySpec>,
    ) -> QueryJobResult<()> {
        let index = spec.map(|spec| tenant_index_key(&spec.tenant));
        self.records
            .remove(
                lease,
                id.as_str(),
                &[REPORTS],
                vec![query_cancel::forget(id)],
                index,
            )
            .await
    }
}

//! What the two job stores share (export jobs, `export::jobs`, and data
//! query jobs, `query::jobs`): a job's spec, written once, and its state,
//! moved by compare-and-set or written fenced by its tenant's lease; its
//! creation, atomic with its place in its tenant's FIFO queue and in its
//! owner's index; the tenant's lease; the index of ended jobs and the lease
//! of the replica that sweeps it. Each kind names its keys ([`Kind`]); the
//! stores add their own records (reports, plans, uploads) and verbs.

use std::sync::Arc;
use std::time::Duration;

use auditx_common::state::{Guard, Lease, StateError, StateResult, StateStore, Write};
use auditx_proto::{decode, encode, TenantId};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The key names of one kind of job.
pub(crate) struct Kind {
    /// Job keys are `<prefix>/<id>/<record>`.
    pub prefix: &'static str,
    /// What errors call one ("job", "query").
    pub what: &'static str,
    /// A tenant's FIFO list is `tenant/<t>/<queue>`.
    pub queue: &'static str,
    /// The set of tenants with a non-empty list.
    pub pending: &'static str,
    /// A tenant's lease is `<tenant_lease>/<t>`.
    pub tenant_lease: &'static str,
    /// Ended jobs by the time they ended (epoch ms).
    pub ended_index: &'static str,
    /// The lease of the replica sweeping `ended_index`.
    pub retention_lease: &'static str,
}

/// Failures of job storage.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("stored {what} {id} is unreadable: {error}")]
    Corrupt {
        what: &'static str,
        id: String,
        error: String,
    },
}

impl RecordError {
    pub fn is_transient(&self) -> bool {
        matches!(self, RecordError::State(e) if e.is_transient())
    }
}

pub type RecordResult<T> = Result<T, RecordError>;

/// One kind's jobs over any [`StateStore`].
#[derive(Clone)]
pub(crate) struct JobRecords {
    pub(crate) state: Arc<dyn StateStore>,
    kind: &'static Kind,
}

impl JobRecords {
    pub(crate) fn new(state: Arc<dyn StateStore>, kind: &'static Kind) -> Self {
        Self { state, kind }
    }

    /// `<prefix>/<id>/<record>`.
    pub(crate) fn key(&self, id: &str, record: &str) -> String {
        format!("{}/{id}/{record}", self.kind.prefix)
    }

    fn queue_key(&self, tenant: &TenantId) -> String {
        format!("tenant/{tenant}/{}", self.kind.queue)
    }

    pub(crate) fn corrupt(&self, id: &str, error: impl std::fmt::Display) -> RecordError {
        RecordError::Corrupt {
            what: self.kind.what,
            id: id.to_owned(),
            error: error.to_string(),
        }
    }

    pub(crate) fn encode<T: Serialize>(&self, id: &str, value: &T) -> RecordResult<Vec<u8>> {
        encode(value).map_err(|e| self.corrupt(id, e))
    }

    /// The job's `record`, decoded, with its raw bytes (the expectation of
    /// a compare-and-set).
    pub(crate) async fn read<T: DeserializeOwned>(
        &self,
        id: &str,
        record: &str,
    ) -> RecordResult<Option<(T, Vec<u8>)>> {
        match self.state.get(&self.key(id, record)).await? {
            Some(bytes) => Ok(Some((
                decode(&bytes).map_err(|e| self.corrupt(id, e))?,
                bytes,
            ))),
            None => Ok(None),
        }
    }

    pub(crate) async fn spec<S: DeserializeOwned>(&self, id: &str) -> RecordResult<Option<S>> {
        Ok(self.read(id, "spec").await?.map(|(spec, _)| spec))
    }

    pub(crate) async fn state_raw<T: DeserializeOwned>(
        &self,
        id: &str,
    ) -> RecordResult<Option<(T, Vec<u8>)>> {
        self.read(id, "state").await
    }

    /// Stores a new job (`spec`, `state`), in its owner's index `index` at
    /// `created_at_ms` and, if `queued`, behind its tenant's others: one
    /// atomic batch, so a retried create (after a lost reply) neither
    /// overwrites the job nor queues it twice.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn create<S: Serialize, T: Serialize>(
        &self,
        id: &str,
        tenant: &TenantId,
        spec: &S,
        state: &T,
        index: String,
        created_at_ms: i64,
        queued: bool,
    ) -> RecordResult<()> {
        let mut writes = vec![
            Write::Set(self.key(id, "spec"), self.encode(id, spec)?),
            Write::Set(self.key(id, "state"), self.encode(id, state)?),
            Write::IndexAdd {
                key: index,
                score: created_at_ms,
                member: id.to_owned(),
            },
        ];
        let guard = if queued {
            writes.push(Write::ListPush(self.queue_key(tenant), id.to_owned()));
            writes.push(Write::SetAdd(
                self.kind.pending.to_owned(),
                tenant.to_string(),
            ));
            Guard::Absent(self.key(id, "state"))
        } else {
            Guard::Always
        };
        self.state.apply_atomically(guard, writes).await?;
        Ok(())
    }

    /// Moves a job from the state encoded as `expected` to `next`; false if
    /// someone changed it first.
    pub(crate) async fn transition<T: Serialize>(
        &self,
        id: &str,
        expected: &[u8],
        next: &T,
    ) -> RecordResult<bool> {
        let encoded = self.encode(id, next)?;
        Ok(self
            .state
            .compare_and_set(&self.key(id, "state"), Some(expected), &encoded)
            .await?)
    }

    /// Moves a job's state as [`Self::transition`] does and takes it off
    /// its tenant's queue, at once; false if the state changed first.
    pub(crate) async fn transition_and_dequeue<T: Serialize>(
        &self,
        id: &str,
        tenant: &TenantId,
        expected: Vec<u8>,
        next: &T,
    ) -> RecordResult<bool> {
        let state_key = self.key(id, "state");
        let writes = vec![
            Write::Set(state_key.clone(), self.encode(id, next)?),
            Write::ListRemove(self.queue_key(tenant), id.to_owned()),
        ];
        Ok(self
            .state
            .apply_atomically(Guard::Equals(state_key, expected), writes)
            .await?)
    }

    /// Writes a running job's state while `lease` is held.
    pub(crate) async fn save_state<T: Serialize>(
        &self,
        lease: &Lease,
        id: &str,
        state: &T,
    ) -> RecordResult<()> {
        let encoded = self.encode(id, state)?;
        Ok(self
            .state
            .set_fenced(lease, &self.key(id, "state"), &encoded)
            .await?)
    }

    /// The ids in the owner's index `index`, oldest first.
    pub(crate) async fn indexed(&self, index: &str) -> RecordResult<Vec<String>> {
        Ok(self.state.index_all(index).await?)
    }

    /// Retires an ended job: off its tenant's queue, `records` deleted,
    /// into the ended index at `ended_at_ms`; one atomic batch (safe to
    /// repeat).
    pub(crate) async fn retire(
        &self,
        id: &str,
        tenant: &TenantId,
        records: &[&str],
        ended_at_ms: i64,
    ) -> RecordResult<()> {
        let mut writes = vec![Write::ListRemove(self.queue_key(tenant), id.to_owned())];
        writes.extend(
            records
                .iter()
                .map(|record| Write::Delete(self.key(id, record))),
        );
        writes.push(Write::IndexAdd {
            key: self.kind.ended_index.into(),
            score: ended_at_ms,
            member: id.to_owned(),
        });
        self.state.apply_atomically(Guard::Always, writes).await?;
        Ok(())
    }

    /// Indexes an ended job for retention at `ended_at_ms`.
    pub(crate) async fn index_ended(&self, id: &str, ended_at_ms: i64) -> RecordResult<()> {
        Ok(self
            .state
            .index_add(self.kind.ended_index, ended_at_ms, id)
            .await?)
    }

    /// Forgets an ended job for good under the retention `lease`: its spec,
    /// state and `records`, `extra` writes, its entry in the owner's index
    /// `index` (if known) and in the ended index; one atomic batch.
    pub(crate) async fn remove(
        &self,
        lease: &Lease,
        id: &str,
        records: &[&str],
        extra: Vec<Write>,
        index: Option<String>,
    ) -> RecordResult<()> {
        let mut writes: Vec<Write> = ["spec", "state"]
            .iter()
            .chain(records)
            .map(|record| Write::Delete(self.key(id, record)))
            .collect();
        writes.extend(extra);
        writes.push(Write::IndexRemove(
            self.kind.ended_index.into(),
            id.to_owned(),
        ));
        if let Some(index) = index {
            writes.push(Write::IndexRemove(index, id.to_owned()));
        }
        self.state
            .apply_atomically(Guard::Held(lease.clone()), writes)
            .await?;
        Ok(())
    }

    /// Up to `max` jobs that ended at or before `cutoff_ms`, oldest first.
    pub(crate) async fn ended_before(
        &self,
        cutoff_ms: i64,
        max: usize,
    ) -> RecordResult<Vec<String>> {
        Ok(self
            .state
            .index_up_to(self.kind.ended_index, cutoff_ms, max)
            .await?)
    }

    /// Takes the lease of `tenant`'s jobs for `ttl`, unless another replica
    /// holds it.
    pub(crate) async fn take_tenant_lease(
        &self,
        tenant: &TenantId,
        replica: &str,
        ttl: Duration,
    ) -> RecordResult<Option<Lease>> {
        let key = format!("{}/{tenant}", self.kind.tenant_lease);
        Ok(self.state.try_acquire_lease(&key, replica, ttl).await?)
    }

    /// Takes the lease of the replica sweeping the ended jobs.
    pub(crate) async fn take_retention_lease(
        &self,
        replica: &str,
        ttl: Duration,
    ) -> RecordResult<Option<Lease>> {
        Ok(self
            .state
            .try_acquire_lease(self.kind.retention_lease, replica, ttl)
            .await?)
    }

    /// Releases a lease taken here; one that cannot be released expires.
    pub(crate) async fn release(&self, lease: &Lease) -> RecordResult<()> {
        Ok(self.state.release_lease(lease).await?)
    }

    /// The tenant's queued ids, oldest first (the running one included).
    pub(crate) async fn queue(&self, tenant: &TenantId) -> StateResult<Vec<String>> {
        self.state.list_all(&self.queue_key(tenant)).await
    }

    /// How many ids the tenant has queued (one state call, whatever the count).
    pub(crate) async fn queue_len(&self, tenant: &TenantId) -> StateResult<u64> {
        self.state.list_len(&self.queue_key(tenant)).await
    }

    /// The tenant's oldest queued id.
    pub(crate) async fn queue_head(&self, tenant: &TenantId) -> StateResult<Option<String>> {
        self.state.list_first(&self.queue_key(tenant)).await
    }

    pub(crate) async fn dequeue(&self, tenant: &TenantId, id: &str) -> StateResult<()> {
        self.state.list_remove(&self.queue_key(tenant), id).await
    }

    /// The tenants with something queued.
    pub(crate) async fn pending_tenants(&self) -> StateResult<Vec<TenantId>> {
        Ok(self
            .state
            .set_members(self.kind.pending)
            .await?
            .into_iter()
            .map(TenantId)
            .collect())
    }

    /// Forgets a tenant with an empty queue (re-adding it if an id raced in).
    pub(crate) async fn forget_tenant_if_idle(&self, tenant: &TenantId) -> StateResult<()> {
        let member = [tenant.to_string()];
        self.state.set_remove(self.kind.pending, &member).await?;
        if !self.queue(tenant).await?.is_empty() {
            self.state.set_add(self.kind.pending, &member).await?;
        }
        Ok(())
    }
}

//! Export jobs as stored in the state store, and the operations the API and
//! the scheduler's drivers share.
//!
//! Keys (all relative to the store's prefix):
//!
//! | key | kind | written by |
//! |---|---|---|
//! | `job/<id>/spec` | value: [`JobSpec`] | API, once |
//! | `job/<id>/state` | value: [`JobState`] | CAS (PENDING→RUNNING/CANCELED), then the lease holder, fenced |
//! | `job/<id>/cancel` | value | API (cancel of a RUNNING job) |
//! | `job/<id>/reports` | log: one [`auditx_proto::WorkerReport`] per task id, appended once | results consumers, write-once |
//! | `meter/<tenant>/<meter>/jobs` | index by creation time | API |
//! | `tenant/<tenant>/queue` | list: FIFO of request ids | API pushes, scheduler removes |
//! | `tenants/pending` | set of tenants with queued jobs | API adds, scheduler removes |
//! | `lease/tenant/<tenant>` | lease: one running export per tenant | scheduler |
//! | `jobs/ended` | index by end time | settle adds, retention removes |
//!
//! Creating a job, canceling a PENDING one and recording an ended one are
//! each one atomic batch ([`StateStore::apply_atomically`]: a Lua script on
//! Redis); a transition is a compare-and-set; a running job's state is
//! written fenced by its tenant's lease.

use std::sync::Arc;

use auditx_proto::{
    decode, encode, MeterId, OutputFormat, RecordType, RequestId, RunType, Scope, TenantId,
};
use serde::{Deserialize, Serialize};

use auditx_common::state::{Guard, Lease, StateError, StateStore, Write};

use crate::fleet::tenant_queues::TenantQueues;

/// The echo of a create call's query, as the API returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportQuery {
    pub export_type: RecordType,
    pub run_type: RunType,
    #[serde(default)]
    pub session_ids: Vec<String>,
    #[serde(default)]
    pub run_statuses: Vec<String>,
    #[serde(default)]
    pub operator_ids: Vec<String>,
    /// As given by the caller (ISO-8601 with zone).
    pub query_from_time: String,
    pub query_to_time: String,
    pub format: OutputFormat,
}

/// What was asked for; immutable once written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    pub request_id: RequestId,
    pub tenant: TenantId,
    pub meter_id: MeterId,
    pub query: ExportQuery,
    /// `queryFromTime` / `queryToTime` in epoch milliseconds, `[from, to)`.
    pub from_ms: i64,
    pub to_ms: i64,
    pub created_at_ms: i64,
    /// The API call's W3C trace context, continued by the scheduler.
    #[serde(default)]
    pub traceparent: Option<String>,
    /// `Zuora-Track-Id` of the create call, attached to logs.
    #[serde(default)]
    pub track_id: Option<String>,
    /// The creator's entities and orgs: the export holds only their rows,
    /// and only callers covering them see the job (jobs from before
    /// scopes decode as tenant-wide).
    #[serde(default)]
    pub scope: Scope,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    /// Waiting for the tenant's lease.
    Pending,
    Running,
    Finished,
    Failed,
    Canceled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Finished,
        JobStatus::Failed,
        JobStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "PENDING",
            JobStatus::Running => "RUNNING",
            JobStatus::Finished => "FINISHED",
            JobStatus::Failed => "FAILED",
            JobStatus::Canceled => "CANCELED",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Finished | JobStatus::Failed | JobStatus::Canceled
        )
    }
}

/// Progress of a running job, shown by the API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ProgressCounts)]
pub struct Progress {
    pub chunks_total: u64,
    pub chunks_done: u64,
    pub files_total: u64,
    pub files_done: u64,
    /// Rows rendered so far.
    pub rows: u64,
}

impl Progress {
    /// Percent done (0–100): rendering counts for 90%, assembling for 10%.
    pub fn percent(&self) -> u8 {
        if self.chunks_total == 0 {
            return 0;
        }
        let render = self.chunks_done as f64 / self.chunks_total as f64;
        let assemble = if self.files_total == 0 {
            0.0
        } else {
            self.files_done as f64 / self.files_total as f64
        };
        ((render * 90.0 + assemble * 10.0).floor() as u8).min(100)
    }
}

/// Where a job is; changes as it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobState {
    pub status: JobStatus,
    #[serde(default)]
    pub started_at_ms: Option<i64>,
    #[serde(default)]
    pub completed_at_ms: Option<i64>,
    /// Rows exported (final once FINISHED).
    #[serde(default)]
    pub count: u64,
    /// Keys of the output files in the export bucket, in order.
    #[serde(default)]
    pub file_list: Vec<String>,
    #[serde(default)]
    pub manifest_key: Option<String>,
    /// Why the job failed (or was canceled), for the user.
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub progress: Progress,
    /// Fencing token of the lease the last writer held.
    #[serde(default)]
    pub fence: u64,
}

impl JobState {
    pub fn pending() -> Self {
        Self {
            status: JobStatus::Pending,
            started_at_ms: None,
            completed_at_ms: None,
            count: 0,
            file_list: Vec::new(),
            manifest_key: None,
            error: None,
            progress: Progress::default(),
            fence: 0,
        }
    }
}

/// A job as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub spec: JobSpec,
    pub state: JobState,
    /// A cancel was requested and the driver has not acted on it yet.
    pub cancel_requested: bool,
}

/// What a cancel request did.
// Built once per cancel call: boxing the job would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The job was waiting; it is now CANCELED.
    CanceledPending(Job),
    /// The job is running; its driver stops it shortly.
    Requested,
    /// The job had already ended with this status.
    AlreadyEnded(JobStatus),
    NotFound,
}

/// Failures of job storage.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("stored job {0} is unreadable: {1}")]
    Corrupt(String, String),
}

impl JobError {
    pub fn is_transient(&self) -> bool {
        matches!(self, JobError::State(e) if e.is_transient())
    }
}

pub type JobResult<T> = Result<T, JobError>;

pub fn spec_key(id: &RequestId) -> String {
    format!("job/{id}/spec")
}
pub fn state_key(id: &RequestId) -> String {
    format!("job/{id}/state")
}
pub fn cancel_key(id: &RequestId) -> String {
    format!("job/{id}/cancel")
}
pub fn reports_key(id: &RequestId) -> String {
    format!("job/{id}/reports")
}
pub fn meter_index_key(tenant: &TenantId, meter: MeterId) -> String {
    format!("meter/{tenant}/{meter}/jobs")
}
/// Ended exports by the time they ended (epoch ms), swept by retention.
pub const ENDED_INDEX_KEY: &str = "jobs/ended";

pub fn tenant_lease_key(tenant: &TenantId) -> String {
    format!("lease/tenant/{tenant}")
}

fn corrupt(id: &RequestId, e: impl std::fmt::Display) -> JobError {
    JobError::Corrupt(id.to_string(), e.to_string())
}

/// Job storage over any [`StateStore`].
#[derive(Clone)]
pub struct JobStore {
    state: Arc<dyn StateStore>,
    queues: TenantQueues,
}

impl JobStore {
    pub fn new(state: Arc<dyn StateStore>) -> Self {
        Self {
            queues: TenantQueues::exports(state.clone()),
            state,
        }
    }

    pub fn state_store(&self) -> &Arc<dyn StateStore> {
        &self.state
    }

    /// Stores a new PENDING job and queues it behind the tenant's others,
    /// atomically: all of it or nothing, and a retried create (after a
    /// lost reply) neither overwrites the job nor queues it twice.
    pub async fn create(&self, spec: &JobSpec) -> JobResult<()> {
        let id = &spec.request_id;
        let encoded = encode(spec).map_err(|e| corrupt(id, e))?;
        let state = encode(&JobState::pending()).map_err(|e| corrupt(id, e))?;
        let mut writes = vec![
            Write::Set(spec_key(id), encoded),
            Write::Set(state_key(id), state),
            Write::IndexAdd {
                key: meter_index_key(&spec.tenant, spec.meter_id),
                score: spec.created_at_ms,
                member: id.to_string(),
            },
        ];
        writes.extend(self.queues.push_writes(&spec.tenant, id.as_str()));
        self.state
            .apply_atomically(Guard::Absent(state_key(id)), writes)
            .await?;
        Ok(())
    }

    /// Stores a job that has already ended (never queued), atomically: a
    /// job rebuilt from its record after the state store lost it.
    pub async fn record_ended(&self, spec: &JobSpec, state: &JobState) -> JobResult<()> {
        let id = &spec.request_id;
        let writes = vec![
            Write::Set(spec_key(id), encode(spec).map_err(|e| corrupt(id, e))?),
            Write::Set(state_key(id), encode(state).map_err(|e| corrupt(id, e))?),
            Write::IndexAdd {
                key: meter_index_key(&spec.tenant, spec.meter_id),
                score: spec.created_at_ms,
                member: id.to_string(),
            },
        ];
        self.state.apply_atomically(Guard::Always, writes).await?;
        Ok(())
    }

    pub async fn spec(&self, id: &RequestId) -> JobResult<Option<JobSpec>> {
        match self.state.get(&spec_key(id)).await? {
            Some(bytes) => Ok(Some(decode(&bytes).map_err(|e| corrupt(id, e))?)),
            None => Ok(None),
        }
    }

    /// The state and its raw bytes (the raw bytes are the CAS expectation).
    pub async fn state_raw(&self, id: &RequestId) -> JobResult<Option<(JobState, Vec<u8>)>> {
        match self.state.get(&state_key(id)).await? {
            Some(bytes) => Ok(Some((decode(&bytes).map_err(|e| corrupt(id, e))?, bytes))),
            None => Ok(None),
        }
    }

    pub async fn get(&self, id: &RequestId) -> JobResult<Option<Job>> {
        let Some(spec) = self.spec(id).await? else {
            return Ok(None);
        };
        let Some((state, _)) = self.state_raw(id).await? else {
            return Ok(None);
        };
        let cancel_requested =
            !state.status.is_terminal() && self.state.get(&cancel_key(id)).await?.is_some();
        Ok(Some(Job {
            spec,
            state,
            cancel_requested,
        }))
    }

    /// Every job of a meter, oldest first.
    pub async fn list_for_meter(&self, tenant: &TenantId, meter: MeterId) -> JobResult<Vec<Job>> {
        let ids = self
            .state
            .index_all(&meter_index_key(tenant, meter))
            .await?;
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(job) = self.get(&RequestId(id)).await? {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }

    /// Moves a job from the state encoded as `expected` to `next`; false if
    /// someone changed it first.
    pub async fn transition(
        &self,
        id: &RequestId,
        expected: &[u8],
        next: &JobState,
    ) -> JobResult<bool> {
        let encoded = encode(next).map_err(|e| corrupt(id, e))?;
        Ok(self
            .state
            .compare_and_set(&state_key(id), Some(expected), &encoded)
            .await?)
    }

    /// Writes a running job's state while `lease` is held.
    pub async fn save_state(
        &self,
        lease: &Lease,
        id: &RequestId,
        state: &JobState,
    ) -> JobResult<()> {
        let encoded = encode(state).map_err(|e| corrupt(id, e))?;
        Ok(self
            .state
            .set_fenced(lease, &state_key(id), &encoded)
            .await?)
    }

    pub async fn cancel_requested(&self, id: &RequestId) -> JobResult<bool> {
        Ok(self.state.get(&cancel_key(id)).await?.is_some())
    }

    /// Cancels a PENDING job at once; flags a RUNNING one for its driver.
    pub async fn request_cancel(&self, id: &RequestId, now_ms: i64) -> JobResult<CancelOutcome> {
        loop {
            let Some(spec) = self.spec(id).await? else {
                return Ok(CancelOutcome::NotFound);
            };
            let Some((state, raw)) = self.state_raw(id).await? else {
                return Ok(CancelOutcome::NotFound);
            };
            match state.status {
                JobStatus::Pending => {
                    let next = JobState {
                        status: JobStatus::Canceled,
                        completed_at_ms: Some(now_ms),
                        error: Some("canceled by request".into()),
                        ..state
                    };
                    // The new state and leaving the queue, at once.
                    let encoded = encode(&next).map_err(|e| corrupt(id, e))?;
                    let writes = vec![
                        Write::Set(state_key(id), encoded),
                        self.queues.remove_write(&spec.tenant, id.as_str()),
                    ];
                    let guard = Guard::Equals(state_key(id), raw);
                    if self.state.apply_atomically(guard, writes).await? {
                        return Ok(CancelOutcome::CanceledPending(Job {
                            spec,
                            state: next,
                            cancel_requested: false,
                        }));
                    }
                    // The scheduler started it meanwhile: look again.
                }
                JobStatus::Running => {
                    self.state.set(&cancel_key(id), b"1").await?;
                    return Ok(CancelOutcome::Requested);
                }
                ended => return Ok(CancelOutcome::AlreadyEnded(ended)),
            }
        }
    }

    /// Request ids queued for a tenant, oldest first (includes the running one).
    pub async fn tenant_queue(&self, tenant: &TenantId) -> JobResult<Vec<RequestId>> {
        let ids = self.queues.ids(tenant).await?;
        Ok(ids.into_iter().map(RequestId).collect())
    }

    /// How many jobs the tenant has queued (running head included),
    /// without reading the queue: admission checks it on every create.
    pub async fn tenant_queue_len(&self, tenant: &TenantId) -> JobResult<u64> {
        Ok(self.queues.len(tenant).await?)
    }

    /// The tenant's oldest queued job: the one running or next to run.
    pub async fn tenant_queue_head(&self, tenant: &TenantId) -> JobResult<Option<RequestId>> {
        Ok(self.queues.first(tenant).await?.map(RequestId))
    }

    /// Settles an ended job: off its tenant's queue, its driver state
    /// (`driver_keys`) deleted, and into the index of ended jobs that
    /// retention sweeps, in one atomic batch (safe to repeat).
    pub async fn settle(&self, job: &Job, driver_keys: Vec<String>) -> JobResult<()> {
        let (tenant, id) = (&job.spec.tenant, &job.spec.request_id);
        let ended_at = job
            .state
            .completed_at_ms
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        let mut writes = vec![self.queues.remove_write(tenant, id.as_str())];
        writes.extend(driver_keys.into_iter().map(Write::Delete));
        writes.push(Write::IndexAdd {
            key: ENDED_INDEX_KEY.into(),
            score: ended_at,
            member: id.to_string(),
        });
        self.state.apply_atomically(Guard::Always, writes).await?;
        Ok(())
    }

    pub async fn dequeue(&self, tenant: &TenantId, id: &RequestId) -> JobResult<()> {
        Ok(self.queues.remove(tenant, id.as_str()).await?)
    }

    pub async fn pending_tenants(&self) -> JobResult<Vec<TenantId>> {
        Ok(self.queues.pending_tenants().await?)
    }

    /// Forgets a tenant with an empty queue (re-adding it if a job raced in).
    pub async fn forget_tenant_if_idle(&self, tenant: &TenantId) -> JobResult<()> {
        Ok(self.queues.forget_tenant_if_idle(tenant).await?)
    }
}

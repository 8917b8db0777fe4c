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
//! | `job/<id>/plan` | value: the driver's plan | the lease holder, fenced, before dispatching |
//! | `job/<id>/uploads` | hash: file index → multipart upload id | the lease holder, first id wins |
//! | `meter/<tenant>/<meter>/jobs` | index by creation time | API |
//! | `tenant/<tenant>/queue` | list: FIFO of request ids | API pushes, scheduler removes |
//! | `tenants/pending` | set of tenants with queued jobs | API adds, scheduler removes |
//! | `lease/tenant/<tenant>` | lease: one running export per tenant | scheduler |
//! | `jobs/ended` | index by end time | retire adds, retention removes |
//! | `lease/retention` | lease: the replica sweeping ended exports | retention |
//!
//! Nothing outside this store builds these keys: the API, the drivers,
//! the report consumers and retention speak in its verbs.
//!
//! Creating a job, canceling a PENDING one and recording an ended one are
//! each one atomic batch ([`StateStore::apply_atomically`]: a Lua script on
//! Redis); a transition is a compare-and-set; a running job's state is
//! written fenced by its tenant's lease.

use std::collections::BTreeMap;
use std::sync::Arc;

use auditx_proto::{
    decode, MeterId, OutputFormat, RecordType, RequestId, RunType, Scope, TenantId, WorkerReport,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use auditx_common::state::{Lease, StateStore};

use crate::fleet::job_records::{JobRecords, Kind, RecordError};

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
pub type JobError = RecordError;
pub type JobResult<T> = Result<T, JobError>;

/// Export jobs' key names.
static EXPORTS: Kind = Kind {
    prefix: "job",
    what: "job",
    queue: "queue",
    pending: "tenants/pending",
    tenant_lease: "lease/tenant",
    ended_index: "jobs/ended",
    retention_lease: "lease/retention",
};

/// The driver's records of a job: deleted when it is retired, and again
/// (with whatever a late report recreated) when it is removed.
const DRIVER_RECORDS: [&str; 4] = [PLAN, UPLOADS, REPORTS, CANCEL];
const PLAN: &str = "plan";
const UPLOADS: &str = "uploads";
const REPORTS: &str = "reports";
const CANCEL: &str = "cancel";

fn meter_index_key(tenant: &TenantId, meter: MeterId) -> String {
    format!("meter/{tenant}/{meter}/jobs")
}

/// The lease of a tenant's exports: one running export per tenant.
pub fn tenant_lease_key(tenant: &TenantId) -> String {
    format!("{}/{tenant}", EXPORTS.tenant_lease)
}

/// Job storage over any [`StateStore`].
#[derive(Clone)]
pub struct JobStore {
    records: JobRecords,
}

impl JobStore {
    pub fn new(state: Arc<dyn StateStore>) -> Self {
        Self {
            records: JobRecords::new(state, &EXPORTS),
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

    /// Stores a new PENDING job and queues it behind the tenant's others,
    /// atomically: all of it or nothing, and a retried create (after a
    /// lost reply) neither overwrites the job nor queues it twice.
    pub async fn create(&self, spec: &JobSpec) -> JobResult<()> {
        self.records
            .create(
                spec.request_id.as_str(),
                &spec.tenant,
                spec,
                &JobState::pending(),
                meter_index_key(&spec.tenant, spec.meter_id),
                spec.created_at_ms,
                true,
            )
            .await
    }

    /// Stores a job that has already ended (never queued), atomically: a
    /// job rebuilt from its record after the state store lost it.
    pub async fn record_ended(&self, spec: &JobSpec, state: &JobState) -> JobResult<()> {
        self.records
            .create(
                spec.request_id.as_str(),
                &spec.tenant,
                spec,
                state,
                meter_index_key(&spec.tenant, spec.meter_id),
                spec.created_at_ms,
                false,
            )
            .await
    }

    pub async fn spec(&self, id: &RequestId) -> JobResult<Option<JobSpec>> {
        self.records.spec(id.as_str()).await
    }

    /// The state and its raw bytes (the raw bytes are the CAS expectation).
    pub async fn state_raw(&self, id: &RequestId) -> JobResult<Option<(JobState, Vec<u8>)>> {
        self.records.state_raw(id.as_str()).await
    }

    pub async fn get(&self, id: &RequestId) -> JobResult<Option<Job>> {
        let Some(spec) = self.spec(id).await? else {
            return Ok(None);
        };
        let Some((state, _)) = self.state_raw(id).await? else {
            return Ok(None);
        };
        let cancel_requested = !state.status.is_terminal() && self.cancel_requested(id).await?;
        Ok(Some(Job {
            spec,
            state,
            cancel_requested,
        }))
    }

    /// Every job of a meter, oldest first.
    pub async fn list_for_meter(&self, tenant: &TenantId, meter: MeterId) -> JobResult<Vec<Job>> {
        let ids = self
            .records
            .indexed(&meter_index_key(tenant, meter))
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
        self.records.transition(id.as_str(), expected, next).await
    }

    /// Writes a running job's state while `lease` is held.
    pub async fn save_state(
        &self,
        lease: &Lease,
        id: &RequestId,
        state: &JobState,
    ) -> JobResult<()> {
        self.records.save_state(lease, id.as_str(), state).await
    }

    pub async fn cancel_requested(&self, id: &RequestId) -> JobResult<bool> {
        let key = self.records.key(id.as_str(), CANCEL);
        Ok(self.state().get(&key).await?.is_some())
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
                    if self
                        .records
                        .transition_and_dequeue(id.as_str(), &spec.tenant, raw, &next)
                        .await?
                    {
                        return Ok(CancelOutcome::CanceledPending(Job {
                            spec,
                            state: next,
                            cancel_requested: false,
                        }));
                    }
                    // The scheduler started it meanwhile: look again.
                }
                JobStatus::Running => {
                    let key = self.records.key(id.as_str(), CANCEL);
                    self.state().set(&key, b"1").await?;
                    return Ok(CancelOutcome::Requested);
                }
                ended => return Ok(CancelOutcome::AlreadyEnded(ended)),
            }
        }
    }

    /// Request ids queued for a tenant, oldest first (includes the running one).
    pub async fn tenant_queue(&self, tenant: &TenantId) -> JobResult<Vec<RequestId>> {
        let ids = self.records.queue(tenant).await?;
        Ok(ids.into_iter().map(RequestId).collect())
    }

    /// How many jobs the tenant has queued (running head included),
    /// without reading the queue: admission checks it on every create.
    pub async fn tenant_queue_len(&self, tenant: &TenantId) -> JobResult<u64> {
        Ok(self.records.queue_len(tenant).await?)
    }

    /// The tenant's oldest queued job: the one running or next to run.
    pub async fn tenant_queue_head(&self, tenant: &TenantId) -> JobResult<Option<RequestId>> {
        Ok(self.records.queue_head(tenant).await?.map(RequestId))
    }

    /// Retires a settled job: off its tenant's queue, its driver's plan,
    /// uploads, reports and cancel flag deleted, and into the index of ended
    /// jobs that retention sweeps, in one atomic batch (safe to repeat).
    pub async fn retire(&self, job: &Job) -> JobResult<()> {
        let ended_at = job
            .state
            .completed_at_ms
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        self.records
            .retire(
                job.spec.request_id.as_str(),
                &job.spec.tenant,
                &DRIVER_RECORDS,
                ended_at,
            )
            .await
    }

    pub async fn dequeue(&self, tenant: &TenantId, id: &RequestId) -> JobResult<()> {
        Ok(self.records.dequeue(tenant, id.as_str()).await?)
    }

    pub async fn pending_tenants(&self) -> JobResult<Vec<TenantId>> {
        Ok(self.records.pending_tenants().await?)
    }

    /// Forgets a tenant with an empty queue (re-adding it if a job raced in).
    pub async fn forget_tenant_if_idle(&self, tenant: &TenantId) -> JobResult<()> {
        Ok(self.records.forget_tenant_if_idle(tenant).await?)
    }

    /// The job's stored plan, if its driver stored one.
    pub async fn plan<P: DeserializeOwned>(&self, id: &RequestId) -> JobResult<Option<P>> {
        Ok(self
            .records
            .read(id.as_str(), PLAN)
            .await?
            .map(|(plan, _)| plan))
    }

    /// Stores the job's plan while `lease` is held, before anything of it
    /// is dispatched: every later driver works from the same one.
    pub async fn save_plan<P: Serialize>(
        &self,
        lease: &Lease,
        id: &RequestId,
        plan: &P,
    ) -> JobResult<()> {
        let bytes = self.records.encode(id.as_str(), plan)?;
        let key = self.records.key(id.as_str(), PLAN);
        Ok(self.state().set_fenced(lease, &key, &bytes).await?)
    }

    /// Appends a worker's report to the job's log, once per `task` (a
    /// redelivered task's second report is dropped); false if it was there.
    pub async fn append_report(
        &self,
        id: &RequestId,
        task: &str,
        report: &WorkerReport,
    ) -> JobResult<bool> {
        let bytes = self.records.encode(id.as_str(), report)?;
        let key = self.records.key(id.as_str(), REPORTS);
        Ok(self.state().log_append_once(&key, task, &bytes).await?)
    }

    /// Up to `max` reports of the job's log from position `from`, each as
    /// stored (one that cannot be decoded is an `Err` in its place, so
    /// positions stay right).
    pub async fn reports(
        &self,
        id: &RequestId,
        from: u64,
        max: usize,
    ) -> JobResult<Vec<Result<WorkerReport, String>>> {
        let key = self.records.key(id.as_str(), REPORTS);
        let entries = self.state().log_read(&key, from, max).await?;
        Ok(entries
            .iter()
            .map(|bytes| decode(bytes).map_err(|e| e.to_string()))
            .collect())
    }

    /// The job's multipart uploads by file index.
    pub async fn uploads(&self, id: &RequestId) -> JobResult<BTreeMap<u32, String>> {
        let key = self.records.key(id.as_str(), UPLOADS);
        let fields = self.state().hash_get_all(&key).await?;
        Ok(fields
            .into_iter()
            .filter_map(|(file, upload)| {
                Some((file.parse().ok()?, String::from_utf8(upload).ok()?))
            })
            .collect())
    }

    /// Records `upload_id` as file `file`'s multipart upload unless one is
    /// recorded already (the first wins); true if this one was recorded.
    pub async fn record_upload(
        &self,
        id: &RequestId,
        file: u32,
        upload_id: &str,
    ) -> JobResult<bool> {
        let key = self.records.key(id.as_str(), UPLOADS);
        Ok(self
            .state()
            .hash_set_if_absent(&key, &file.to_string(), upload_id.as_bytes())
            .await?)
    }

    /// Forgets an ended job for good, under the retention `lease`: every key
    /// of it (also those a late report recreated after it was retired) and
    /// its entries in the meter's index (`spec`, when it is still known)
    /// and in the ended index, in one atomic batch.
    pub async fn remove(
        &self,
        lease: &Lease,
        id: &RequestId,
        spec: Option<&JobSpec>,
    ) -> JobResult<()> {
        let index = spec.map(|spec| meter_index_key(&spec.tenant, spec.meter_id));
        self.records
            .remove(lease, id.as_str(), &DRIVER_RECORDS, Vec::new(), index)
            .await
    }
}

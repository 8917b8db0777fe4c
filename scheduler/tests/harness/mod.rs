//! A scheduler test bench: the in-process state store and queue, the
//! embedded S3 endpoint, real workers, and schedulers that can be stopped
//! or "crashed" (their task dropped mid-flight, leases left to expire).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use auditx_common::config::Config;
use auditx_common::embedded_s3::EmbeddedS3;
use auditx_common::queue::{MemoryQueue, TaskQueue};
use auditx_common::s3::ObjectStore;
use auditx_common::state::{MemoryStore, StateResult, StateStore};
use auditx_lake::audit_trail::write::{write_audit_rows, write_run_rows};
use auditx_lake::{AuditRow, RunRow};
use auditx_proto::{
    CloudEvent, ExportEventData, MeterId, RecordType, RequestId, TenantId, Topology,
};
use auditx_scheduler::context::Services;
use auditx_scheduler::export::jobs::{Job, JobStatus, JobStore};
use axum::body::{to_bytes, Body};
use axum::http::{header, Method, Request, StatusCode};
use futures::StreamExt;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

#[path = "../backends/mod.rs"]
mod backends;
mod store_fault;

pub use store_fault::{Faulty, StoreFault};

/// 2025-07-23T00:00:00Z: every test row lies in this day.
pub const DAY_MS: i64 = 1_753_228_800_000;

pub struct Harness {
    pub config: Arc<Config>,
    pub state: Arc<dyn StateStore>,
    pub queue: Arc<dyn TaskQueue>,
    pub store: ObjectStore,
    pub jobs: JobStore,
    pub events: Arc<Mutex<Vec<CloudEvent<ExportEventData>>>>,
    workers: Vec<(CancellationToken, JoinHandle<anyhow::Result<()>>)>,
    _events_task: JoinHandle<()>,
    _s3: EmbeddedS3,
    _dir: TempDir,
}

/// A scheduler replica running in its own task.
pub struct Scheduler {
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Scheduler {
    /// Stops it the way a killed process stops: nothing released.
    pub async fn crash(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Graceful shutdown: drivers stop and release their leases.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await?
    }
}

impl Harness {
    /// Small files, chunks and leases so that a few hundred rows exercise
    /// every path; `tweak` adjusts the configuration further.
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        Self::start_on(tweak, Arc::new(MemoryStore::new())).await
    }

    /// [`Harness::start`] on the state store `state`.
    pub async fn start_on(
        tweak: impl FnOnce(&mut Config),
        state: Arc<dyn StateStore>,
    ) -> anyhow::Result<Self> {
        let backends::Backends {
            config,
            store,
            s3,
            dir,
        } = backends::start_backends(|config| {
            config.export.chunk_rows = 40;
            config.export.max_rows_per_file = 100;
            config.export.offset_stride = 10;
            config.export.max_chunks_in_flight = 2;
            config.export.lease_ttl_secs = 1;
            config.export.poll_interval_ms = 50;
            config.worker.concurrency = 2;
            tweak(config);
        })
        .await?;
        config.validate()?;
        let topology = Topology::new(config.rabbitmq.prefix.clone());
        let queue: Arc<dyn TaskQueue> =
            Arc::new(MemoryQueue::new(topology, config.rabbitmq.delivery_limit));
        let events = Arc::new(Mutex::new(Vec::new()));
        let mut subscription = queue.subscribe_events("export.#").await?;
        let sink = events.clone();
        let events_task = tokio::spawn(async move {
            while let Some(Ok(delivery)) = subscription.next().await {
                if let Ok(event) = serde_json::from_slice(&delivery.message.payload) {
                    sink.lock().unwrap().push(event);
                }
                let _ = delivery.ack().await;
            }
        });
        Ok(Self {
            config: Arc::new(config),
            jobs: JobStore::new(state.clone()),
            state,
            queue,
            store,
            events,
            workers: Vec::new(),
            _events_task: events_task,
            _s3: s3,
            _dir: dir,
        })
    }

    /// The services a scheduler replica of this bench runs with.
    fn services(&self) -> Services {
        Services::new(
            self.config.clone(),
            self.state.clone(),
            self.queue.clone(),
            self.store.clone(),
        )
    }

    pub fn start_scheduler(&self, replica: &str) -> Scheduler {
        let mut services = self.services();
        services.replica = replica.to_owned();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(auditx_scheduler::run(services, shutdown.clone()));
        Scheduler { shutdown, task }
    }

    pub fn start_workers(&mut self, count: usize) {
        for _ in 0..count {
            let shutdown = CancellationToken::new();
            let task = tokio::spawn(auditx_worker::run(
                self.config.clone(),
                self.queue.clone(),
                self.store.clone(),
                self.state.clone(),
                shutdown.clone(),
            ));
            self.workers.push((shutdown, task));
        }
    }

    pub async fn stop_workers(&mut self) -> anyhow::Result<()> {
        for (shutdown, task) in self.workers.drain(..) {
            shutdown.cancel();
            task.await??;
        }
        Ok(())
    }

    pub async fn write_lake(
        &self,
        tenant: &TenantId,
        meter: MeterId,
        rows: Vec<AuditRow>,
    ) -> anyhow::Result<()> {
        let bucket = &self.config.s3.lake_bucket;
        write_audit_rows(&self.store, bucket, tenant, meter, rows, 25).await?;
        Ok(())
    }

    pub async fn write_runs(
        &self,
        tenant: &TenantId,
        meter: MeterId,
        runs: Vec<RunRow>,
    ) -> anyhow::Result<()> {
        write_run_rows(
            &self.store,
            &self.config.s3.lake_bucket,
            tenant,
            meter,
            runs,
        )
        .await?;
        Ok(())
    }

    /// Creates an export of `[from_ms, to_ms)` of `tenant` through the API
    /// (`POST /meters/{meter}/auditTrail/export`), as a client does.
    pub async fn submit(
        &self,
        tenant: &TenantId,
        meter: MeterId,
        query: Query,
    ) -> anyhow::Result<RequestId> {
        let mut uri = format!(
            "/meters/{}/auditTrail/export?exportType={}&runType=NORMAL\
             &queryFromTime={}&queryToTime={}",
            meter.0,
            query.export_type.as_str(),
            iso(query.from_ms),
            iso(query.to_ms),
        );
        for session in &query.session_ids {
            uri.push_str(&format!("&sessionIds={session}"));
        }
        for status in &query.run_statuses {
            uri.push_str(&format!("&runStatuses={status}"));
        }
        let token = backends::token_for(tenant.as_str(), &[], &[], backends::in_an_hour());
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())?;
        let response = auditx_scheduler::api::router(self.services())
            .oneshot(request)
            .await?;
        let status = response.status();
        let body = to_bytes(response.into_body(), usize::MAX).await?;
        anyhow::ensure!(
            status == StatusCode::OK,
            "create answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        let body: serde_json::Value = serde_json::from_slice(&body)?;
        let id = body["data"]["requestId"]
            .as_str()
            .with_context(|| format!("no requestId in {body}"))?;
        Ok(RequestId(id.to_owned()))
    }

    pub async fn job(&self, id: &RequestId) -> anyhow::Result<Job> {
        self.jobs.get(id).await?.context("job not found")
    }

    /// Waits (up to 60 s) until the job satisfies `done`.
    pub async fn wait_for(
        &self,
        id: &RequestId,
        what: &str,
        done: impl Fn(&Job) -> bool,
    ) -> anyhow::Result<Job> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let job = self.job(id).await?;
            if done(&job) {
                return Ok(job);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {:?}",
                job.state
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_for_end(&self, id: &RequestId) -> anyhow::Result<Job> {
        self.wait_for(id, "the job to end", |job| job.state.status.is_terminal())
            .await
    }

    /// [`Self::wait_for_end`], asserting that the job FINISHED (its error
    /// shown if not).
    pub async fn wait_for_finished(&self, id: &RequestId) -> anyhow::Result<Job> {
        let job = self.wait_for_end(id).await?;
        assert_eq!(
            job.state.status,
            JobStatus::Finished,
            "{:?}",
            job.state.error
        );
        Ok(job)
    }

    /// Waits for the job's completion event.
    pub async fn event(&self, id: &RequestId) -> anyhow::Result<CloudEvent<ExportEventData>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(event) = self
                .events
                .lock()
                .unwrap()
                .iter()
                .find(|e| &e.data.request_id == id)
            {
                return Ok(event.clone());
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "no event for {id}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Keys in the export bucket under `prefix`.
    pub async fn export_objects(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        let objects = self
            .store
            .list(&self.config.s3.export_bucket, prefix)
            .await?;
        Ok(objects.into_iter().map(|o| o.key).collect())
    }

    pub async fn export_object(&self, key: &str) -> anyhow::Result<Vec<u8>> {
        Ok(self
            .store
            .get(&self.config.s3.export_bucket, key)
            .await?
            .to_vec())
    }
}

/// The parts of an export request the tests vary.
pub struct Query {
    pub export_type: RecordType,
    pub from_ms: i64,
    pub to_ms: i64,
    pub session_ids: Vec<String>,
    pub run_statuses: Vec<String>,
}

impl Query {
    pub fn new(export_type: RecordType, from_ms: i64, to_ms: i64) -> Self {
        Self {
            export_type,
            from_ms,
            to_ms,
            session_ids: vec![],
            run_statuses: vec![],
        }
    }
}

pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("valid time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `count` rows of `tenant`, spread over the test day a few milliseconds
/// apart (some sharing a millisecond), one in four an ERROR, sessions
/// `R-0`..`R-2`.
pub fn audit_rows(tenant: &TenantId, meter: MeterId, count: usize) -> Vec<AuditRow> {
    (0..count)
        .map(|i| AuditRow {
            tenant: tenant.to_string(),
            entity: None,
            org: None,
            meter_id: meter.0,
            session_id: format!("R-{}", i % 3),
            run_type: "NORMAL".into(),
            record_type: if i % 4 == 0 { "ERROR" } else { "SAMPLE" }.into(),
            operator_id: Some(format!("op-{}", i % 5)),
            operator_type: Some("TRANSFORM".into()),
            operator_name: Some("mapper, \"v2\"".into()),
            event_id: format!("ev-{i:06}"),
            trace_id: None,
            event_time_ms: DAY_MS + 1_000 + (i as i64 / 2) * 7,
            error_code: (i % 4 == 0).then(|| "E42".into()),
            error_message: (i % 4 == 0).then(|| "bad record".into()),
            payload: Some(format!("{{\"n\":{i}}}")),
        })
        .collect()
}

/// Writes `rows` as three interleaved batches: lake files overlapping in time.
pub async fn write_interleaved(
    h: &Harness,
    tenant: &TenantId,
    meter: MeterId,
    rows: &[AuditRow],
) -> anyhow::Result<()> {
    for batch in 0..3 {
        let part: Vec<AuditRow> = rows.iter().skip(batch).step_by(3).cloned().collect();
        h.write_lake(tenant, meter, part).await?;
    }
    Ok(())
}

/// The event ids an export of `query` must produce, in order.
pub fn expected_ids(rows: &[AuditRow], query: &Query, sessions: Option<&[&str]>) -> Vec<String> {
    let mut selected: Vec<&AuditRow> = rows
        .iter()
        .filter(|r| r.record_type == query.export_type.as_str())
        .filter(|r| r.event_time_ms >= query.from_ms && r.event_time_ms < query.to_ms)
        .filter(|r| sessions.is_none_or(|s| s.contains(&r.session_id.as_str())))
        .collect();
    selected.sort_by(|a, b| (a.event_time_ms, &a.event_id).cmp(&(b.event_time_ms, &b.event_id)));
    selected.into_iter().map(|r| r.event_id.clone()).collect()
}

/// What a user finds after downloading every file of a finished export
/// through its presigned URL: the event ids in file order, checked against
/// the manifest (rows, bytes, SHA-256) and the header of every file.
pub async fn downloaded_ids(
    h: &Harness,
    job: &Job,
    event: &CloudEvent<ExportEventData>,
) -> anyhow::Result<Vec<String>> {
    use sha2::Digest;
    let manifest_key = job.state.manifest_key.clone().context("no manifest")?;
    let manifest: serde_json::Value =
        serde_json::from_slice(&h.export_object(&manifest_key).await?)?;
    let files = manifest["files"].as_array().context("manifest files")?;
    anyhow::ensure!(
        files.len() == job.state.file_list.len(),
        "manifest lists every file"
    );
    anyhow::ensure!(
        event.data.files.len() == files.len(),
        "the event presigns every file"
    );
    let mut ids = Vec::new();
    for ((entry, key), presigned) in files
        .iter()
        .zip(&job.state.file_list)
        .zip(&event.data.files)
    {
        anyhow::ensure!(entry["key"] == key.as_str() && &presigned.file_key == key);
        let body = reqwest::get(&presigned.url)
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        anyhow::ensure!(entry["bytes"] == body.len() as u64, "size of {key}");
        anyhow::ensure!(
            entry["sha256"] == hex::encode(sha2::Sha256::digest(&body)),
            "hash of {key}"
        );
        let text = std::str::from_utf8(&body)?;
        let mut lines = text.lines();
        anyhow::ensure!(lines.next() == Some(HEADER), "{key} starts with the header");
        let file_ids: Vec<String> = lines
            .map(|l| l.split(',').next().unwrap_or("").to_owned())
            .collect();
        anyhow::ensure!(entry["rows"] == file_ids.len() as u64, "rows of {key}");
        ids.extend(file_ids);
    }
    anyhow::ensure!(manifest["count"] == ids.len() as u64);
    anyhow::ensure!(job.state.count == ids.len() as u64);
    Ok(ids)
}

pub const HEADER: &str = "eventId,eventTime,sessionId,runType,runStatus,operatorId,operatorType,operatorName,errorCode,errorMessage,traceId,payload";

/// Every `meter_runs` row for the test sessions: `R-0` COMPLETED, `R-1`
/// FAILED, `R-2` RUNNING (after having been COMPLETED earlier).
pub fn runs(tenant: &TenantId, meter: MeterId) -> Vec<RunRow> {
    let run = |session: &str, status: &str, at: i64| RunRow {
        tenant: tenant.to_string(),
        meter_id: meter.0,
        session_id: session.into(),
        run_type: "NORMAL".into(),
        status: status.into(),
        updated_at_ms: DAY_MS + at,
    };
    vec![
        run("R-0", "RUNNING", 1),
        run("R-0", "COMPLETED", 2),
        run("R-1", "FAILED", 1),
        run("R-2", "COMPLETED", 1),
        run("R-2", "RUNNING", 2),
    ]
}

/// A state store whose every `hash_set_if_absent` is answered the way a
/// retried command is answered after a lost reply (the store applied the
/// first attempt, then a connection dropped and Redis restarted): the write
/// is applied once and the caller is told it was not (the retry's answer).
/// Every other call goes to the store unchanged ([`StoreFault`]).
pub struct RepliesLost(pub MemoryStore);

#[async_trait::async_trait]
impl StoreFault for RepliesLost {
    fn store(&self) -> &dyn StateStore {
        &self.0
    }

    async fn hash_set_if_absent(&self, key: &str, field: &str, value: &[u8]) -> StateResult<bool> {
        self.0.hash_set_if_absent(key, field, value).await?;
        self.0.hash_set_if_absent(key, field, value).await
    }
}

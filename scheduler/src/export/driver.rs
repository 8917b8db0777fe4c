//! The driver of one running export, on the replica that holds its
//! tenant's lease: plans it, dispatches render tasks (a bounded number in
//! flight), applies the workers' reports, sends each file's prefix for
//! assembly in stages while its chunks render and the rest once its extent
//! is final, completes the uploads and finishes the job — or
//! cleans up after a cancel or a failure.
//!
//! Everything it needs to go on is in the state store (the plan, the
//! upload ids, the reports), so a replica that takes the job over after a
//! crash rebuilds the same state and re-dispatches what has no report yet;
//! duplicates are harmless because reports are write-once and outputs
//! deterministic. Its writes are fenced by the lease: once the lease is
//! lost it stops without side effects.

use std::sync::Arc;
use std::time::{Duration, Instant};

use auditx_common::queue::Message;
use auditx_common::retry::Backoff;
use auditx_common::telemetry::inject_trace_context;
use auditx_proto::{
    encode, AssembleTask, ChunkId, FileIndex, RenderTask, RequestId, Task, WorkerReport,
    TRACK_ID_HEADER,
};
use tokio::sync::Notify;
use tracing::instrument;

use crate::context::Services;
pub use crate::error::DriveError;
use crate::export::completion;
use crate::export::job_plan::{self, JobPlan};
use crate::export::jobs::{Job, JobSpec, JobState, JobStatus};
use crate::export::work::{AssembleStep, JobWork};
use crate::fleet::lease::TenantLease;
use crate::metrics;

/// What one pass over the job found.
enum Step {
    Continue,
    Finished(Box<Job>),
    /// The job must end (cancel or failure) with this status and reason.
    End(JobStatus, String),
}

/// Reports applied in one pass at most; the rest wait for the next pass,
/// which comes at once.
const REPORTS_PER_PASS: usize = 2_000;

/// Progress is saved at most this often (the API polls it).
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Transient failures wait this long (with jitter) before the next pass.
const RETRY: Backoff = Backoff::PATIENT;

pub struct JobDriver<'a> {
    services: &'a Services,
    lease: &'a TenantLease,
    wake: Arc<Notify>,
    spec: JobSpec,
    state: JobState,
    progress_saved: Option<Instant>,
    /// Entries of the job's report log already applied: each pass reads
    /// only what came after, so a pass costs the same at chunk 10 and at
    /// chunk 10,000.
    reports_read: u64,
    /// The last pass left reports unread.
    reports_pending: bool,
}

impl<'a> JobDriver<'a> {
    /// A driver for a RUNNING job whose state is `state`.
    pub fn new(
        services: &'a Services,
        lease: &'a TenantLease,
        wake: Arc<Notify>,
        spec: JobSpec,
        mut state: JobState,
    ) -> Self {
        state.fence = lease.lease().token;
        Self {
            services,
            lease,
            wake,
            spec,
            state,
            progress_saved: None,
            reports_read: 0,
            reports_pending: false,
        }
    }

    fn id(&self) -> &RequestId {
        &self.spec.request_id
    }

    /// Drives the job until it ends (the ended job is returned, its event
    /// not yet published) or the driver must stop.
    pub async fn run(mut self) -> Result<Job, DriveError> {
        let mut work: Option<JobWork> = None;
        let mut ending: Option<(JobStatus, String)> = None;
        let mut failures = 0;
        loop {
            if self.lease.stopped().is_cancelled() {
                return Err(DriveError::Stopped);
            }
            let outcome = match &ending {
                Some((status, reason)) => self
                    .abandon(*status, reason.clone())
                    .await
                    .map(|job| Step::Finished(Box::new(job))),
                None => self.step(&mut work).await,
            };
            let pause = match outcome {
                Ok(Step::Finished(job)) => return Ok(*job),
                Ok(Step::End(status, reason)) => {
                    ending = Some((status, reason));
                    continue;
                }
                Ok(Step::Continue) if self.reports_pending => {
                    failures = 0;
                    continue;
                }
                Ok(Step::Continue) => {
                    failures = 0;
                    Duration::from_millis(self.services.config.export.poll_interval_ms)
                }
                Err(DriveError::Stopped) => return Err(DriveError::Stopped),
                Err(DriveError::Permanent(reason)) if ending.is_none() => {
                    tracing::warn!(request_id = %self.id(), error = %reason, "export failed");
                    ending = Some((JobStatus::Failed, reason));
                    continue;
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(request_id = %self.id(), %error, failures, "export step failed, retrying");
                    RETRY.delay(failures)
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
                _ = self.lease.stopped().cancelled() => {}
            }
        }
    }

    /// One pass: look for a cancel, apply new reports, dispatch what can go.
    async fn step(&mut self, work: &mut Option<JobWork>) -> Result<Step, DriveError> {
        if self.services.jobs.cancel_requested(self.id()).await? {
            return Ok(Step::End(JobStatus::Canceled, "canceled by request".into()));
        }
        let work = match work {
            Some(work) => work,
            None => work.insert(JobWork::new(self.spec.clone(), self.load_or_plan().await?)),
        };
        if let Err(reason) = work.apply(self.new_reports().await?) {
            return Ok(Step::End(JobStatus::Failed, reason));
        }
        work.cut_files();
        let timeout = Duration::from_secs(self.services.config.export.task_timeout_secs);
        let overdue = work.requeue_overdue(timeout, Instant::now());
        if overdue > 0 {
            tracing::warn!(request_id = %self.id(), overdue, "tasks without a report for too long, sent again");
        }
        for step in work.files_to_assemble() {
            self.assemble(work, &step).await?;
            work.assemble_sent(step.file.index, Instant::now());
        }
        let ready = match work.files_to_complete() {
            Ok(ready) => ready,
            Err(reason) => return Ok(Step::End(JobStatus::Failed, reason)),
        };
        for outcome in ready {
            completion::complete_file(self.services, &outcome).await?;
            let done = work.file_completed(outcome.file);
            completion::delete_staged_chunks(self.services, self.id(), done);
        }
        if work.is_complete() {
            return self
                .complete(work)
                .await
                .map(|job| Step::Finished(Box::new(job)));
        }
        for chunk in work.chunks_to_dispatch(self.services.config.export.max_chunks_in_flight) {
            self.render(work, chunk).await?;
            work.chunk_sent(chunk, Instant::now());
        }
        self.save_progress(work).await?;
        Ok(Step::Continue)
    }

    /// The stored plan, or a new one (stored before anything is dispatched
    /// so that every replica works from the same one).
    async fn load_or_plan(&self) -> Result<JobPlan, DriveError> {
        if let Some(plan) = self.services.jobs.plan(self.id()).await? {
            return Ok(plan);
        }
        let plan = job_plan::prepare(self.services, &self.spec)
            .await
            .map_err(|e| match e {
                DriveError::Permanent(reason) => {
                    DriveError::Permanent(format!("planning failed: {reason}"))
                }
                other => other,
            })?;
        self.services
            .jobs
            .save_plan(self.lease.lease(), self.id(), &plan)
            .await?;
        Ok(plan)
    }

    /// Reports recorded since the last pass (each task's first report
    /// only: the log keeps one per task).
    async fn new_reports(&mut self) -> Result<Vec<WorkerReport>, DriveError> {
        let entries = self
            .services
            .jobs
            .reports(self.id(), self.reports_read, REPORTS_PER_PASS)
            .await?;
        self.reports_read += entries.len() as u64;
        self.reports_pending = entries.len() == REPORTS_PER_PASS;
        let mut reports = Vec::with_capacity(entries.len());
        for entry in entries {
            match entry {
                Ok(report) => reports.push(report),
                Err(error) => {
                    tracing::warn!(request_id = %self.id(), %error, "unreadable report skipped")
                }
            }
        }
        Ok(reports)
    }

    #[instrument(name = "scheduler.dispatch", skip_all, fields(request_id = %self.spec.request_id, tenant = %self.spec.tenant, meter = self.spec.meter_id.0, chunk = chunk.0))]
    async fn render(&self, work: &JobWork, chunk: ChunkId) -> Result<(), DriveError> {
        let planned = &work.plan.chunks[chunk.0 as usize];
        let task = Task::Render(RenderTask {
            request_id: self.spec.request_id.clone(),
            tenant: self.spec.tenant.clone(),
            meter_id: self.spec.meter_id,
            chunk,
            from_ms: planned.from_ms,
            to_ms: planned.to_ms,
            sources: planned.sources.clone(),
            filter: work.plan.filter.clone(),
            run_statuses: work.plan.run_statuses.clone(),
            format: self.spec.query.format,
            staging_key: work.staging_key(chunk),
            offset_stride: work.plan.offset_stride,
            event_id_from: planned.event_id_from.clone(),
            event_id_to: planned.event_id_to.clone(),
        });
        self.publish(&task).await?;
        metrics::chunk_dispatched();
        Ok(())
    }

    /// Sends a file, or a stage of its prefix, for assembly into its
    /// multipart upload (created first if it has none).
    #[instrument(name = "scheduler.assemble", skip_all, fields(request_id = %self.spec.request_id, file = step.file.index.0, stage = step.stage, prefix = step.prefix))]
    async fn assemble(&self, work: &JobWork, step: &AssembleStep) -> Result<(), DriveError> {
        let file = &step.file;
        let key = work.file_key(file.index);
        let upload_id = self.upload_id(file.index, &key).await?;
        let task = AssembleTask {
            request_id: self.spec.request_id.clone(),
            tenant: self.spec.tenant.clone(),
            file: file.index,
            key,
            upload_id,
            format: self.spec.query.format,
            segments: file.segments.clone(),
            rows: file.rows,
            part_size: work.plan.part_size,
            resume: step.resume.clone(),
            stage: step.stage,
        };
        let task = if step.prefix {
            Task::AssemblePrefix(task)
        } else {
            Task::Assemble(task)
        };
        self.publish(&task).await
    }

    /// The file's upload id, creating the upload if it has none. The first
    /// id recorded wins: a driver that loses the race (a stale one) aborts
    /// its own upload, so no task ever names an upload that gets dropped.
    async fn upload_id(&self, file: FileIndex, key: &str) -> Result<String, DriveError> {
        let uploads = self.services.jobs.uploads(self.id()).await?;
        if let Some(id) = uploads.get(&file.0) {
            return Ok(id.clone());
        }
        let bucket = &self.services.config.s3.export_bucket;
        let content_type = self.spec.query.format.content_type();
        let created = self
            .services
            .store
            .create_multipart(bucket, key, content_type)
            .await?;
        if self
            .services
            .jobs
            .record_upload(self.id(), file.0, &created)
            .await?
        {
            return Ok(created);
        }
        let recorded = self
            .services
            .jobs
            .uploads(self.id())
            .await?
            .remove(&file.0)
            .ok_or_else(|| DriveError::Transient(format!("upload of {key} vanished")))?;
        // The store retries a command whose reply was lost (a restart
        // between applying and answering): the retry then finds this
        // driver's own id. That upload is the file's; aborting it would
        // fail the assembly with NoSuchUpload.
        if recorded == created {
            return Ok(created);
        }
        if let Err(error) = self
            .services
            .store
            .abort_multipart(bucket, key, &created)
            .await
        {
            tracing::warn!(request_id = %self.id(), key, %error, "duplicate multipart upload not aborted");
        }
        Ok(recorded)
    }

    async fn publish(&self, task: &Task) -> Result<(), DriveError> {
        let payload = encode(task).map_err(|e| DriveError::Permanent(e.to_string()))?;
        let mut message = Message::new(payload);
        inject_trace_context(&mut message.headers);
        if let Some(track_id) = &self.spec.track_id {
            message
                .headers
                .insert(TRACK_ID_HEADER.to_owned(), track_id.clone());
        }
        Ok(self
            .services
            .queue
            .publish(&self.services.topology.tasks(), message)
            .await?)
    }

    async fn save_progress(&mut self, work: &JobWork) -> Result<(), DriveError> {
        let progress = work.progress();
        let due = self
            .progress_saved
            .is_none_or(|at| at.elapsed() >= PROGRESS_EVERY);
        if progress == self.state.progress || !due {
            return Ok(());
        }
        self.state.progress = progress;
        self.services
            .jobs
            .save_state(self.lease.lease(), self.id(), &self.state)
            .await?;
        self.progress_saved = Some(Instant::now());
        Ok(())
    }

    /// Writes the manifest, marks the job FINISHED, then drops the staging
    /// objects.
    #[instrument(name = "scheduler.complete", skip_all, fields(request_id = %self.spec.request_id))]
    async fn complete(&mut self, work: &JobWork) -> Result<Job, DriveError> {
        let files = work.completed_files();
        let manifest_key =
            completion::write_manifest(self.services, &self.spec, &work.plan, &files).await?;
        let now = chrono::Utc::now().timestamp_millis();
        let state = JobState {
            status: JobStatus::Finished,
            completed_at_ms: Some(now),
            count: files.iter().map(|(f, _)| f.rows).sum(),
            file_list: files.iter().map(|(_, o)| o.key.clone()).collect(),
            manifest_key: Some(manifest_key),
            error: None,
            progress: work.progress(),
            ..self.state.clone()
        };
        let job = self.record_end(state).await?;
        // The files are complete: the staged chunks are of no more use, and
        // the job need not wait for their deletion. Left-overs (a crash
        // just now) expire by the bucket's lifecycle rule on `_staging/`.
        if let Err(error) = completion::delete_staging(self.services, &self.spec).await {
            tracing::warn!(request_id = %self.id(), %error, "staging objects not deleted");
        }
        Ok(job)
    }

    /// Ends the job as CANCELED or FAILED: aborts its uploads, deletes
    /// whatever it wrote, then records the status. Only while the lease is
    /// still ours: a stale driver must not destroy its successor's work.
    #[instrument(name = "scheduler.abandon", skip_all, fields(request_id = %self.spec.request_id, status = status.as_str()))]
    async fn abandon(&mut self, status: JobStatus, reason: String) -> Result<Job, DriveError> {
        if !self.lease.confirm().await? {
            return Err(DriveError::Stopped);
        }
        completion::discard_outputs(self.services, &self.spec).await?;
        let state = JobState {
            status,
            completed_at_ms: Some(chrono::Utc::now().timestamp_millis()),
            error: Some(reason),
            ..self.state.clone()
        };
        let job = self.record_end(state).await?;
        // Chunks rendered while we cleaned up; later ones are deleted by
        // the results consumer, which now sees the job ended.
        if let Err(error) = completion::delete_staging(self.services, &self.spec).await {
            tracing::warn!(request_id = %self.id(), %error, "staging objects not deleted");
        }
        Ok(job)
    }

    /// Saves the job's end (`state`, a terminal status) under the lease and
    /// counts and logs it.
    async fn record_end(&mut self, state: JobState) -> Result<Job, DriveError> {
        self.services
            .jobs
            .save_state(self.lease.lease(), self.id(), &state)
            .await?;
        metrics::job_entered(state.status);
        tracing::info!(
            request_id = %self.id(),
            tenant = %self.spec.tenant,
            status = state.status.as_str(),
            count = state.count,
            files = state.file_list.len(),
            error = state.error.as_deref().unwrap_or(""),
            "export ended"
        );
        self.state = state.clone();
        Ok(Job {
            spec: self.spec.clone(),
            state,
            cancel_requested: false,
        })
    }
}

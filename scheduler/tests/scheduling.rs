//! The scheduler end to end on the in-process adapters with real workers:
//! FIFO per tenant, takeover after a crash, cancel and failure cleanup.

mod harness;

use std::sync::Arc;
use std::time::Duration;

use auditx_common::queue::Message;
use auditx_common::state::MemoryStore;
use auditx_proto::{
    encode, ChunkId, MeterId, RecordType, Task, TaskFailure, TaskRef, TenantId, WorkerReport,
};
use auditx_scheduler::export::jobs::{CancelOutcome, JobStatus};
use harness::*;

const METER: MeterId = MeterId(7);

fn whole_day() -> (i64, i64) {
    (DAY_MS, DAY_MS + 86_400_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_export_per_tenant_in_order_while_other_tenants_run() -> anyhow::Result<()> {
    let mut h = Harness::start(|_| {}).await?;
    let (acme, globex) = (TenantId::from("acme"), TenantId::from("globex"));
    let acme_rows = audit_rows(&acme, METER, 900);
    let globex_rows = audit_rows(&globex, METER, 300);
    write_interleaved(&h, &acme, METER, &acme_rows).await?;
    write_interleaved(&h, &globex, METER, &globex_rows).await?;
    let (from, to) = whole_day();
    let first = Query::new(RecordType::Sample, from, to);
    // A narrower, later request of the same tenant.
    let second = Query::new(RecordType::Error, DAY_MS + 1_500, DAY_MS + 2_500);
    let other = Query::new(RecordType::Sample, from, to);
    let want = [
        expected_ids(&acme_rows, &first, None),
        expected_ids(&acme_rows, &second, None),
        expected_ids(&globex_rows, &other, None),
    ];
    let ids = [
        h.submit(&acme, METER, first).await?,
        h.submit(&acme, METER, second).await?,
        h.submit(&globex, METER, other).await?,
    ];
    assert_eq!(h.job(&ids[1]).await?.state.status, JobStatus::Pending);

    h.start_workers(2);
    let scheduler = h.start_scheduler("s1");
    let mut jobs = Vec::new();
    for (id, want) in ids.iter().zip(&want) {
        let job = h.wait_for_finished(id).await?;
        let event = h.event(id).await?;
        assert_eq!(event.data.status, "FINISHED");
        assert_eq!(&downloaded_ids(&h, &job, &event).await?, want);
        assert_eq!(
            job.state.progress.chunks_done,
            job.state.progress.chunks_total
        );
        jobs.push(job);
    }
    let (acme_first, acme_second, globex) = (&jobs[0].state, &jobs[1].state, &jobs[2].state);
    assert!(
        acme_first.file_list.len() > 1,
        "several files: {:?}",
        acme_first.file_list
    );
    assert!(
        acme_first.completed_at_ms <= acme_second.started_at_ms,
        "same tenant: one at a time"
    );
    assert!(
        globex.started_at_ms < acme_first.completed_at_ms,
        "other tenants run meanwhile"
    );
    // Staging objects go right after FINISHED (the job does not wait for it).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !h.export_objects("_staging/").await?.is_empty() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "staging objects are not cleaned up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    scheduler.stop().await?;
    h.stop_workers().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_export_without_rows_is_one_header_only_file() -> anyhow::Result<()> {
    let mut h = Harness::start(|_| {}).await?;
    let acme = TenantId::from("acme");
    let rows = audit_rows(&acme, METER, 100);
    write_interleaved(&h, &acme, METER, &rows).await?;
    h.write_runs(&acme, METER, runs(&acme, METER)).await?;
    let (from, to) = whole_day();
    let mut no_session = Query::new(RecordType::Sample, from, to);
    no_session.run_statuses = vec!["PAUSED".into()];
    let empty_range = Query::new(RecordType::Sample, DAY_MS + 80_000_000, to);
    let ids = [
        h.submit(&acme, METER, no_session).await?,
        h.submit(&acme, METER, empty_range).await?,
    ];

    h.start_workers(1);
    let scheduler = h.start_scheduler("s1");
    for id in &ids {
        let job = h.wait_for_finished(id).await?;
        assert_eq!((job.state.count, job.state.file_list.len()), (0, 1));
        let event = h.event(id).await?;
        assert!(downloaded_ids(&h, &job, &event).await?.is_empty());
        assert!(job.state.file_list[0].ends_with("/audit_trail_sample_0001.csv"));
    }
    scheduler.stop().await?;
    h.stop_workers().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_statuses_select_sessions_by_their_latest_status() -> anyhow::Result<()> {
    let mut h = Harness::start(|_| {}).await?;
    let acme = TenantId::from("acme");
    let rows = audit_rows(&acme, METER, 300);
    write_interleaved(&h, &acme, METER, &rows).await?;
    h.write_runs(&acme, METER, runs(&acme, METER)).await?;
    let (from, to) = whole_day();
    let mut query = Query::new(RecordType::Sample, from, to);
    query.run_statuses = vec!["COMPLETED".into(), "FAILED".into()];
    query.session_ids = vec!["R-1".into(), "R-2".into()];
    let want = expected_ids(&rows, &query, Some(&["R-1"]));
    let id = h.submit(&acme, METER, query).await?;

    h.start_workers(1);
    let scheduler = h.start_scheduler("s1");
    let job = h.wait_for_finished(&id).await?;
    let event = h.event(&id).await?;
    assert_eq!(downloaded_ids(&h, &job, &event).await?, want);
    let first = h.export_object(&job.state.file_list[0]).await?;
    let line = String::from_utf8(first)?
        .lines()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    assert!(
        line.contains(",R-1,NORMAL,FAILED,"),
        "runStatus column: {line}"
    );
    scheduler.stop().await?;
    h.stop_workers().await
}

/// The state store retries a command whose reply was lost, so recording a
/// file's upload id can answer "already recorded" when the id recorded is
/// the driver's own (Redis restarted between applying the write and
/// answering). The driver must keep that upload: it used to abort it, and
/// the file failed with NoSuchUpload (seen in `faults_state`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upload_recorded_by_a_retried_command_is_kept() -> anyhow::Result<()> {
    let state = Arc::new(Faulty(RepliesLost(MemoryStore::new())));
    let mut h = Harness::start_on(|_| {}, state).await?;
    let acme = TenantId::from("acme");
    let rows = audit_rows(&acme, METER, 300);
    write_interleaved(&h, &acme, METER, &rows).await?;
    h.write_runs(&acme, METER, runs(&acme, METER)).await?;
    let (from, to) = whole_day();
    let query = Query::new(RecordType::Sample, from, to);
    let want = expected_ids(&rows, &query, None);
    let id = h.submit(&acme, METER, query).await?;

    h.start_workers(1);
    let scheduler = h.start_scheduler("s1");
    let job = h.wait_for_finished(&id).await?;
    assert!(
        job.state.file_list.len() > 1,
        "several files, several uploads"
    );
    let event = h.event(&id).await?;
    assert_eq!(downloaded_ids(&h, &job, &event).await?, want);
    scheduler.stop().await?;
    h.stop_workers().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crashed_scheduler_is_taken_over_after_the_lease_expires() -> anyhow::Result<()> {
    let mut h = Harness::start(|c| c.export.chunk_rows = 20).await?;
    let acme = TenantId::from("acme");
    let rows = audit_rows(&acme, METER, 1_200);
    write_interleaved(&h, &acme, METER, &rows).await?;
    let (from, to) = whole_day();
    let query = Query::new(RecordType::Sample, from, to);
    let want = expected_ids(&rows, &query, None);
    let id = h.submit(&acme, METER, query).await?;

    h.start_workers(2);
    let first = h.start_scheduler("s1");
    // Crash once some chunks are rendered but not all.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while h.jobs.reports(&id, 0, 1).await?.is_empty() {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "no chunk rendered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.crash().await;
    let crashed = h.job(&id).await?;
    assert_eq!(
        crashed.state.status,
        JobStatus::Running,
        "crashed mid-export"
    );

    let second = h.start_scheduler("s2");
    let job = h.wait_for_finished(&id).await?;
    assert!(
        job.state.fence > crashed.state.fence,
        "finished under a new lease"
    );
    let event = h.event(&id).await?;
    assert_eq!(
        downloaded_ids(&h, &job, &event).await?,
        want,
        "no row lost, duplicated or reordered"
    );

    second.stop().await?;
    h.stop_workers().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_scheduler_hands_its_jobs_over_at_once() -> anyhow::Result<()> {
    let mut h = Harness::start(|c| c.export.lease_ttl_secs = 600).await?;
    let acme = TenantId::from("acme");
    let rows = audit_rows(&acme, METER, 600);
    write_interleaved(&h, &acme, METER, &rows).await?;
    let (from, to) = whole_day();
    let query = Query::new(RecordType::Sample, from, to);
    let want = expected_ids(&rows, &query, None);
    let id = h.submit(&acme, METER, query).await?;

    let first = h.start_scheduler("s1");
    h.wait_for(&id, "the job to start", |job| {
        job.state.status == JobStatus::Running
    })
    .await?;
    first.stop().await?;
    h.start_workers(2);
    let second = h.start_scheduler("s2");
    // Well within the 10-minute lease: the stopped replica released it.
    let job = h.wait_for_finished(&id).await?;
    let event = h.event(&id).await?;
    assert_eq!(downloaded_ids(&h, &job, &event).await?, want);
    second.stop().await?;
    h.stop_workers().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_aborts_uploads_and_leaves_no_objects() -> anyhow::Result<()> {
    let mut h = Harness::start(|c| {
        c.export.chunk_rows = 20;
        c.export.max_rows_per_file = 60;
        c.export.max_chunks_in_flight = 1;
    })
    .await?;
    let acme = TenantId::from("acme");
    let rows = audit_rows(&acme, METER, 2_000);
    write_interleaved(&h, &acme, METER, &rows).await?;
    let (from, to) = whole_day();
    let id = h
        .submit(&acme, METER, Query::new(RecordType::Sample, from, to))
        .await?;
    let next = h
        .submit(&acme, METER, Query::new(RecordType::Error, from, to))
        .await?;

    h.start_workers(2);
    let scheduler = h.start_scheduler("s1");
    // Cancel once a file is being uploaded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let uploads = loop {
        let uploads = h.jobs.uploads(&id).await?;
        if !uploads.is_empty() {
            break uploads;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "no upload started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let canceled = h
        .jobs
        .request_cancel(&id, chrono::Utc::now().timestamp_millis())
        .await?;
    assert_eq!(canceled, CancelOutcome::Requested);

    let job = h.wait_for_end(&id).await?;
    assert_eq!(job.state.status, JobStatus::Canceled);
    assert_eq!(job.state.error.as_deref(), Some("canceled by request"));
    let event = h.event(&id).await?;
    assert_eq!(
        (event.data.status.as_str(), event.data.files.len()),
        ("CANCELED", 0)
    );
    // The tenant's next export runs once the lease is freed.
    h.wait_for_finished(&next).await?;

    let tenant_dir = format!("{acme}/{id}/");
    let staging_dir = format!("_staging/{acme}/{id}/");
    assert_eq!(h.export_objects(&tenant_dir).await?, Vec::<String>::new());
    // A render still running at the cancel lands later; its report gets it deleted.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !h.export_objects(&staging_dir).await?.is_empty() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "staging objects left behind"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bucket = &h.config.s3.export_bucket;
    for (file, upload_id) in uploads {
        let key = format!("{tenant_dir}audit_trail_sample_{:04}.csv", file + 1);
        let part = h
            .store
            .upload_part(bucket, &key, &upload_id, 1, vec![b'x'; 10].into())
            .await;
        assert!(part.is_err(), "upload {upload_id} of {key} was aborted");
    }
    scheduler.stop().await?;
    h.stop_workers().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_report_fails_the_job_with_its_message() -> anyhow::Result<()> {
    let h = Harness::start(|_| {}).await?;
    let acme = TenantId::from("acme");
    write_interleaved(&h, &acme, METER, &audit_rows(&acme, METER, 200)).await?;
    let (from, to) = whole_day();
    let id = h
        .submit(&acme, METER, Query::new(RecordType::Sample, from, to))
        .await?;

    // No workers: the chunks stay queued; a "worker" reports a failure.
    let scheduler = h.start_scheduler("s1");
    h.wait_for(&id, "the job to start", |job| {
        job.state.progress.chunks_total > 0
    })
    .await?;
    let failure = WorkerReport::Failed(TaskFailure {
        request_id: id.clone(),
        task: TaskRef::Render { chunk: ChunkId(1) },
        error: "lake file x is unreadable".into(),
    });
    let results = auditx_proto::Topology::new(h.config.rabbitmq.prefix.clone()).results();
    h.queue
        .publish(&results, Message::new(encode(&failure)?))
        .await?;

    let job = h.wait_for_end(&id).await?;
    assert_eq!(job.state.status, JobStatus::Failed);
    assert_eq!(
        job.state.error.as_deref(),
        Some("chunk 1 failed: lake file x is unreadable")
    );
    let event = h.event(&id).await?;
    assert_eq!(event.data.status, "FAILED");
    assert_eq!(event.data.error, job.state.error);
    scheduler.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_lettered_task_fails_the_job() -> anyhow::Result<()> {
    let h = Harness::start(|_| {}).await?;
    let acme = TenantId::from("acme");
    write_interleaved(&h, &acme, METER, &audit_rows(&acme, METER, 200)).await?;
    let (from, to) = whole_day();
    let id = h
        .submit(&acme, METER, Query::new(RecordType::Sample, from, to))
        .await?;

    let scheduler = h.start_scheduler("s1");
    h.wait_for(&id, "the job to start", |job| {
        job.state.progress.chunks_total > 0
    })
    .await?;
    // Take a real task off the queue and dead-letter it, as the broker
    // does once its delivery limit is reached.
    let topology = auditx_proto::Topology::new(h.config.rabbitmq.prefix.clone());
    let mut tasks = h.queue.consume(&topology.tasks(), 1).await?;
    let delivery = futures::StreamExt::next(&mut tasks)
        .await
        .expect("a task")?;
    let task: Task = auditx_proto::decode(&delivery.message.payload)?;
    let Task::Render(render) = &task else {
        panic!("a render task first")
    };
    delivery.nack(false).await?;

    let job = h.wait_for_end(&id).await?;
    assert_eq!(job.state.status, JobStatus::Failed);
    assert_eq!(
        job.state.error,
        Some(format!(
            "chunk {} failed: could not be processed after repeated deliveries",
            render.chunk
        ))
    );
    scheduler.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrupt_lake_file_fails_planning_with_its_name() -> anyhow::Result<()> {
    let h = Harness::start(|_| {}).await?;
    let acme = TenantId::from("acme");
    let key = "meter_audit_trail/tenant=acme/meter=7/date=2025-07-23/broken.parquet";
    h.store
        .put(
            &h.config.s3.lake_bucket,
            key,
            "not parquet".into(),
            "application/octet-stream",
        )
        .await?;
    let (from, to) = whole_day();
    let id = h
        .submit(&acme, METER, Query::new(RecordType::Sample, from, to))
        .await?;

    let scheduler = h.start_scheduler("s1");
    let job = h.wait_for_end(&id).await?;
    assert_eq!(job.state.status, JobStatus::Failed);
    let error = job.state.error.unwrap_or_default();
    assert!(
        error.starts_with("planning failed: ") && error.contains(key),
        "{error}"
    );
    scheduler.stop().await
}

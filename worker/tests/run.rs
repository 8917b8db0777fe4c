//! The worker loop end to end on the in-process queue: tasks in, reports
//! out, acks only after the report, dead-lettering, graceful shutdown.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use auditx_common::config::{Config, RabbitConfig, WorkerConfig};
use auditx_common::queue::{Consumer, MemoryQueue, Message, TaskQueue};
use auditx_common::state::MemoryStore;
use auditx_lake::audit_trail::read::list_audit_files;
use auditx_lake::audit_trail::write::write_audit_rows;
use auditx_lake::AuditRow;
use auditx_proto::{
    AssembleTask, ChunkId, FileIndex, LakeSource, MeterId, OutputFormat, RecordType, RenderTask,
    RequestId, RowFilter, RunType, Segment, Task, TaskRef, Topology, WorkerReport,
};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

const T: i64 = 1_753_296_408_775;

fn row(i: i64) -> AuditRow {
    AuditRow {
        tenant: "acme".into(),
        entity: None,
        org: None,
        meter_id: 7,
        session_id: "R-1".into(),
        run_type: "NORMAL".into(),
        record_type: "SAMPLE".into(),
        operator_id: Some("op-1".into()),
        operator_type: None,
        operator_name: None,
        event_id: format!("e-{i:03}"),
        trace_id: None,
        event_time_ms: T + i,
        error_code: None,
        error_message: None,
        payload: Some(format!(r#"{{"i":{i}}}"#)),
    }
}

fn render_task(sources: Vec<LakeSource>, chunk: u32) -> Task {
    Task::Render(RenderTask {
        request_id: RequestId::from("r-run"),
        tenant: "acme".into(),
        meter_id: MeterId(7),
        chunk: ChunkId(chunk),
        from_ms: T,
        to_ms: T + 1000,
        sources,
        filter: RowFilter {
            run_type: RunType::Normal,
            record_type: RecordType::Sample,
            session_ids: None,
            operator_ids: None,
            scope: Default::default(),
        },
        run_statuses: BTreeMap::new(),
        format: OutputFormat::Csv,
        staging_key: format!("_staging/r-run/{chunk:06}"),
        offset_stride: 10,
        event_id_from: None,
        event_id_to: None,
    })
}

struct Harness {
    s3: support::TestS3,
    queue: Arc<MemoryQueue>,
    topology: Topology,
    results: Consumer,
    shutdown: CancellationToken,
    worker: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Harness {
    async fn start(prefix: &str) -> anyhow::Result<Self> {
        let s3 = support::start_s3().await?;
        let topology = Topology::new(prefix);
        let queue = Arc::new(MemoryQueue::new(topology.clone(), 5));
        let config = Arc::new(Config {
            s3: s3.config.clone(),
            rabbitmq: RabbitConfig {
                prefix: prefix.into(),
                ..RabbitConfig::default()
            },
            worker: WorkerConfig {
                concurrency: 2,
                ..WorkerConfig::default()
            },
            ..Config::default()
        });
        let results = queue.consume(&topology.results(), 10).await?;
        let shutdown = CancellationToken::new();
        let worker = tokio::spawn(auditx_worker::run(
            config,
            queue.clone(),
            s3.store.clone(),
            Arc::new(MemoryStore::new()),
            shutdown.clone(),
        ));
        Ok(Self {
            s3,
            queue,
            topology,
            results,
            shutdown,
            worker,
        })
    }

    async fn send(&self, payload: Vec<u8>) -> anyhow::Result<()> {
        self.queue
            .publish(&self.topology.tasks(), Message::new(payload))
            .await?;
        Ok(())
    }

    async fn run(&mut self, task: &Task) -> anyhow::Result<WorkerReport> {
        self.send(auditx_proto::encode(task)?).await?;
        let delivery = tokio::time::timeout(Duration::from_secs(60), self.results.next())
            .await
            .context("no report within a minute")?
            .context("results consumer closed")??;
        let report = auditx_proto::decode(&delivery.message.payload)?;
        delivery.ack().await?;
        Ok(report)
    }

    async fn wait_for_depth(&self, queue: &str, depth: u64) -> anyhow::Result<()> {
        for _ in 0..500 {
            if self.queue.depth(queue).await? == depth {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        anyhow::bail!("{queue} never reached depth {depth}")
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.worker).await???;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tasks_are_rendered_assembled_and_reported() -> anyhow::Result<()> {
    let mut h = Harness::start("worker-run-ok").await?;
    let (tenant, meter) = ("acme".into(), MeterId(7));
    let lake = h.s3.config.lake_bucket.clone();
    let rows: Vec<_> = (0..25).map(row).collect();
    write_audit_rows(&h.s3.store, &lake, &tenant, meter, rows, 10).await?;
    let sources = list_audit_files(&h.s3.store, &lake, &tenant, meter, T, T + 1000)
        .await?
        .into_iter()
        .map(|f| LakeSource {
            key: f.key,
            size: f.size,
            row_groups: f.row_groups.iter().map(|g| g.index).collect(),
        })
        .collect();

    let WorkerReport::Rendered(rendered) = h.run(&render_task(sources, 0)).await? else {
        panic!("expected a rendered report")
    };
    assert_eq!(rendered.rows, 25);
    assert_eq!(rendered.row_offsets.len(), 3);
    let staged =
        h.s3.store
            .get(&h.s3.config.export_bucket, &rendered.staging_key)
            .await?;
    assert_eq!(staged.len() as u64, rendered.bytes);
    assert!(staged
        .starts_with(b"e-000,2025-07-23T18:46:48.775Z,R-1,NORMAL,,op-1,,,,,,\"{\"\"i\"\":0}\"\n"));

    let bucket = h.s3.config.export_bucket.clone();
    let key = "acme/r-run/audit_trail_sample_0001.csv";
    let upload_id =
        h.s3.store
            .create_multipart(&bucket, key, "text/csv")
            .await?;
    let assemble = Task::Assemble(AssembleTask {
        request_id: RequestId::from("r-run"),
        tenant: "acme".into(),
        file: FileIndex(0),
        key: key.into(),
        upload_id: upload_id.clone(),
        format: OutputFormat::Csv,
        segments: vec![Segment {
            key: rendered.staging_key.clone(),
            start: 0,
            end: rendered.bytes,
        }],
        rows: rendered.rows,
        part_size: 5 * 1024 * 1024,
        resume: None,
        stage: 0,
    });
    let WorkerReport::Assembled(assembled) = h.run(&assemble).await? else {
        panic!("expected an assembled report")
    };
    let parts: Vec<_> = assembled
        .parts
        .iter()
        .map(|p| (p.number, p.etag.clone()))
        .collect();
    h.s3.store
        .complete_multipart(&bucket, key, &upload_id, &parts)
        .await?;
    let file = h.s3.store.get(&bucket, key).await?;
    assert_eq!(file, [auditx_worker::export::csv::HEADER, &staged].concat());
    assert_eq!(assembled.bytes, file.len() as u64);

    h.wait_for_depth(&h.topology.tasks(), 0).await?;
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failures_are_reported_and_garbage_is_dead_lettered() -> anyhow::Result<()> {
    let mut h = Harness::start("worker-run-fail").await?;
    let missing = LakeSource {
        key: "meter_audit_trail/tenant=acme/meter=7/date=2025-07-23/missing.parquet".into(),
        size: 4096,
        row_groups: vec![0],
    };
    let WorkerReport::Failed(failure) = h.run(&render_task(vec![missing], 4)).await? else {
        panic!("expected a failed report")
    };
    assert_eq!(failure.request_id, RequestId::from("r-run"));
    assert_eq!(failure.task, TaskRef::Render { chunk: ChunkId(4) });
    assert!(
        failure.error.contains("missing.parquet"),
        "{}",
        failure.error
    );

    h.send(b"not a task".to_vec()).await?;
    h.wait_for_depth(&h.topology.dead_tasks(), 1).await?;
    h.wait_for_depth(&h.topology.tasks(), 0).await?;
    h.stop().await
}

/// Shutdown stops taking tasks but finishes (and reports) the running one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_finishes_the_running_task_and_takes_no_more() -> anyhow::Result<()> {
    let mut h = Harness::start("worker-run-stop").await?;
    let bucket = h.s3.config.export_bucket.clone();
    let staged = vec![b'x'; 6 * 1024 * 1024];
    h.s3.store
        .put(&bucket, "_staging/r-stop/000000", staged.into(), "text/csv")
        .await?;
    let key = "acme/r-stop/audit_trail_sample_0001.csv";
    let upload_id =
        h.s3.store
            .create_multipart(&bucket, key, "text/csv")
            .await?;
    let task = Task::Assemble(AssembleTask {
        request_id: RequestId::from("r-stop"),
        tenant: "acme".into(),
        file: FileIndex(0),
        key: key.into(),
        upload_id: upload_id.clone(),
        format: OutputFormat::Csv,
        segments: vec![Segment {
            key: "_staging/r-stop/000000".into(),
            start: 0,
            end: 6 << 20,
        }],
        rows: 1,
        part_size: 5 * 1024 * 1024,
        resume: None,
        stage: 0,
    });
    h.send(auditx_proto::encode(&task)?).await?;
    // Stop once the task is surely running: its first part is being uploaded.
    let parts = || {
        h.s3.store
            .client()
            .list_parts()
            .bucket(&bucket)
            .key(key)
            .upload_id(&upload_id)
            .send()
    };
    let mut polls = 0;
    while parts().await?.parts().is_empty() {
        polls += 1;
        anyhow::ensure!(polls < 3000, "the task never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), &mut h.worker).await???;

    let delivery = tokio::time::timeout(Duration::from_secs(5), h.results.next())
        .await
        .context("the running task was not reported")?
        .context("results consumer closed")??;
    let report: WorkerReport = auditx_proto::decode(&delivery.message.payload)?;
    assert!(matches!(report, WorkerReport::Assembled(ref a) if a.parts.len() == 2));

    h.send(auditx_proto::encode(&task)?).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.queue.depth(&h.topology.tasks()).await?, 1);
    Ok(())
}

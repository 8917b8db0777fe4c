//! The worker loop: consume tasks, run them with retries, report, and only
//! then acknowledge, so a crash at any point leaves the task to be
//! redelivered rather than lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use auditx_common::config::Config;
use auditx_common::queue::{Consumer, Delivery, Message, QueueError, QueueResult, TaskQueue};
use auditx_common::retry::{retry, Backoff};
use auditx_common::s3::ObjectStore;
use auditx_common::state::StateStore;
use auditx_common::telemetry::{inject_trace_context, set_parent_from_headers};
use auditx_lake::sql::lake_object_store;
use auditx_proto::{Task, Topology, WorkerReport, TRACK_ID_HEADER};
use futures::{FutureExt, StreamExt};
use tokio::sync::Semaphore;
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, info_span, warn, Instrument};

use crate::error::WorkerError;
use crate::export::assemble::assemble_file;
use crate::export::render::render_chunk;
use crate::metrics::{self, InFlight, Outcome};
use crate::query::{run_query_task, QueryRunner};

/// Pause before subscribing again after the consumer failed, so a broker
/// in trouble is not hammered.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_secs(1);

/// Runs tasks from the tasks queue, `config.worker.concurrency` at a time,
/// until `shutdown` fires; then stops taking tasks, finishes the running
/// ones and returns. Tasks prefetched but not started are never acked, so
/// the broker hands them to another worker.
pub async fn run(
    config: Arc<Config>,
    queue: Arc<dyn TaskQueue>,
    store: ObjectStore,
    state: Arc<dyn StateStore>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    metrics::register();
    let topology = Topology::new(&config.rabbitmq.prefix);
    let tasks_queue = topology.tasks();
    let concurrency = config.worker.concurrency.max(1);
    let queries = QueryRunner {
        store: store.clone(),
        lake: lake_object_store(&config.s3).context("opening the lake for data queries")?,
        lake_bucket: config.s3.lake_bucket.clone(),
        export_bucket: config.s3.export_bucket.clone(),
        state,
    };
    let worker = Arc::new(Worker {
        queue: queue.clone(),
        store,
        lake_bucket: config.s3.lake_bucket.clone(),
        export_bucket: config.s3.export_bucket.clone(),
        results_queue: topology.results(),
        queries,
    });
    let slots = Arc::new(Semaphore::new(usize::from(concurrency)));
    let mut running = JoinSet::new();
    let mut consumer = subscribe(queue.as_ref(), &tasks_queue, concurrency).await?;
    info!(queue = %tasks_queue, concurrency, "worker consuming tasks");

    let result = 'consume: loop {
        while let Some(joined) = running.try_join_next() {
            log_panic(joined);
        }
        let slot = tokio::select! {
            biased;
            () = shutdown.cancelled() => break 'consume Ok(()),
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let next = tokio::select! {
            biased;
            () = shutdown.cancelled() => break 'consume Ok(()),
            next = consumer.next() => next,
        };
        match next {
            Some(Ok(delivery)) => {
                let worker = worker.clone();
                running.spawn(async move {
                    worker.handle(delivery).await;
                    drop(slot);
                });
            }
            failure => {
                match failure {
                    Some(Err(e)) => warn!(error = %e, "task consumer failed, subscribing again"),
                    _ => warn!("task consumer closed, subscribing again"),
                }
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break 'consume Ok(()),
                    () = tokio::time::sleep(RESUBSCRIBE_PAUSE) => {}
                }
                match subscribe(queue.as_ref(), &tasks_queue, concurrency).await {
                    Ok(fresh) => consumer = fresh,
                    Err(e) => break 'consume Err(e.into()),
                }
            }
        }
    };
    info!(
        in_flight = running.len(),
        "worker stopping, finishing running tasks"
    );
    while let Some(joined) = running.join_next().await {
        log_panic(joined);
    }
    drop(consumer);
    info!("worker stopped");
    result
}

async fn subscribe(queue: &dyn TaskQueue, name: &str, prefetch: u16) -> QueueResult<Consumer> {
    retry(Backoff::default(), QueueError::is_transient, || {
        queue.consume(name, prefetch)
    })
    .await
}

/// A panicking task handler never settled its delivery; the broker
/// redelivers it.
fn log_panic(joined: Result<(), JoinError>) {
    if let Err(e) = joined {
        error!(error = %e, "task handler panicked; the task will be redelivered");
    }
}

struct Worker {
    queue: Arc<dyn TaskQueue>,
    store: ObjectStore,
    lake_bucket: String,
    export_bucket: String,
    results_queue: String,
    queries: QueryRunner,
}

impl Worker {
    async fn handle(&self, delivery: Delivery) {
        let task = match auditx_proto::decode::<Task>(&delivery.message.payload) {
            Ok(task) => task,
            Err(e) => {
                error!(error = %e, redelivered = delivery.redelivered, "undecodable task, dead-lettering it");
                metrics::task_finished(metrics::UNKNOWN_KIND, Outcome::Rejected);
                settle(delivery.nack(false).await, "dead-letter");
                return;
            }
        };
        let headers = &delivery.message.headers;
        let track_id = headers.get(TRACK_ID_HEADER).map_or("", String::as_str);
        let span = match &task {
            Task::Render(t) => info_span!(
                "worker.render_chunk",
                request_id = %t.request_id,
                tenant = %t.tenant,
                meter = t.meter_id.0,
                track_id,
                chunk = t.chunk.0,
            ),
            Task::Assemble(t) => info_span!(
                "worker.assemble_file",
                request_id = %t.request_id,
                tenant = %t.tenant,
                track_id,
                file = t.file.0,
            ),
            Task::Query(t) => {
                info_span!("worker.query", query_id = %t.query_id, tenant = %t.tenant)
            }
        };
        set_parent_from_headers(&span, headers);
        self.process(task, delivery).instrument(span).await;
    }

    /// Runs a task to a report, publishes the report, then settles the delivery.
    async fn process(&self, task: Task, delivery: Delivery) {
        let _in_flight = InFlight::start();
        let kind = kind(&task);
        let started = Instant::now();
        // Boxed as `dyn Future + Send`: without it rustc cannot prove the
        // spawned handler `Send` through the borrowing retry closure.
        let result = retry(Backoff::default(), WorkerError::is_transient, || {
            self.execute(&task)
        })
        .boxed()
        .await;
        let (report, outcome) = match result {
            Ok(report) => {
                record_success(&report, started.elapsed());
                (report, Outcome::Succeeded)
            }
            Err(e) if e.is_transient() => {
                warn!(error = %e, "task still failing after retries, requeueing it");
                metrics::task_finished(kind, Outcome::Requeued);
                settle(delivery.nack(true).await, "requeue");
                return;
            }
            Err(e) => {
                error!(error = %e, "task failed");
                (task.failure(e.to_string()), Outcome::Failed)
            }
        };
        match self.publish(&report).await {
            Ok(()) => {
                metrics::task_finished(kind, outcome);
                settle(delivery.ack().await, "ack");
            }
            Err(e) => {
                warn!(error = %e, "could not publish the task's report, requeueing it");
                metrics::task_finished(kind, Outcome::Requeued);
                settle(delivery.nack(true).await, "requeue");
            }
        }
    }

    async fn execute(&self, task: &Task) -> Result<WorkerReport, WorkerError> {
        match task {
            Task::Render(t) => render_chunk(&self.store, &self.lake_bucket, &self.export_bucket, t)
                .await
                .map(WorkerReport::Rendered),
            Task::Assemble(t) => assemble_file(&self.store, &self.export_bucket, t)
                .await
                .map(WorkerReport::Assembled),
            Task::Query(t) => run_query_task(&self.queries, t)
                .await
                .map(WorkerReport::Queried),
        }
    }

    /// Publishes a report (confirmed) with the current trace context.
    async fn publish(&self, report: &WorkerReport) -> QueueResult<()> {
        let payload = auditx_proto::encode(report).map_err(|e| QueueError::Other(e.to_string()))?;
        let mut message = Message::new(payload);
        inject_trace_context(&mut message.headers);
        retry(Backoff::default(), QueueError::is_transient, || {
            self.queue.publish(&self.results_queue, message.clone())
        })
        .boxed()
        .await
    }
}

fn kind(task: &Task) -> &'static str {
    match task {
        Task::Render(_) => "render",
        Task::Assemble(_) => "assemble",
        Task::Query(_) => "query",
    }
}

fn record_success(report: &WorkerReport, elapsed: Duration) {
    let elapsed_ms = elapsed.as_millis() as u64;
    match report {
        WorkerReport::Rendered(r) => {
            metrics::chunk_rendered(r.rows, r.bytes, elapsed);
            info!(request_id = %r.request_id, chunk = r.chunk.0, rows = r.rows, bytes = r.bytes, elapsed_ms, "chunk rendered");
        }
        WorkerReport::Assembled(r) => {
            metrics::file_assembled(r.rows, r.bytes, elapsed);
            info!(request_id = %r.request_id, file = r.file.0, parts = r.parts.len(), bytes = r.bytes, elapsed_ms, "file assembled");
        }
        WorkerReport::Queried(r) => {
            metrics::query_ran(elapsed);
            info!(query_id = %r.query_id, rows = r.rows, bytes = r.bytes, elapsed_ms, "query result written");
        }
        WorkerReport::Failed(_) | WorkerReport::QueryFailed(_) => {}
    }
}

/// An ack or nack that fails leaves the delivery unsettled; the broker
/// redelivers it once the channel closes, and reports are idempotent.
fn settle(result: QueueResult<()>, action: &'static str) {
    if let Err(e) = result {
        warn!(error = %e, action, "could not settle the task delivery; it will be redelivered");
    }
}

//! The worker loop: consume tasks, run them with retries, report, and only
//! then acknowledge, so a crash at any point leaves the task to be
//! redelivered rather than lost.
//!
//! A broker outage never stops the worker: it subscribes again forever,
//! with capped backoff. Task failures are counted here, not by the broker:
//! a task whose attempt fails transiently is published again with its
//! failure count in the [`FAILURES_HEADER`] header (and the delivery
//! acked); after `worker.max_task_attempts` failed attempts it is reported
//! failed with its last error. A task returned by a broker or connection
//! failure keeps its count, so broker trouble cannot fail a healthy job.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use auditx_common::config::Config;
use auditx_common::fleet::throughput::{self, ThroughputCounter};
use auditx_common::queue::{Consumer, Delivery, Message, QueueError, QueueResult, TaskQueue};
use auditx_common::retry::{retry, Backoff};
use auditx_common::s3::ObjectStore;
use auditx_common::state::StateStore;
use auditx_common::telemetry::{inject_trace_context, set_parent_from_headers};
use auditx_lake::sql::lake_object_store_on;
use auditx_proto::{Task, Topology, WorkerReport, TRACK_ID_HEADER};
use futures::{FutureExt, StreamExt};
use tokio::sync::Semaphore;
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, info_span, warn, Instrument};

use crate::error::WorkerError;
use crate::export::assemble::{assemble_file, assemble_prefix};
use crate::export::render::render_chunk;
use crate::metrics::{self, InFlight, Outcome};
use crate::query::{run_query_task, QueryExecutor, QueryRunner};

/// Message header carrying how many attempts of a task failed; a message
/// without it (first delivery, or from a worker older than the header) has
/// none.
pub const FAILURES_HEADER: &str = "auditx-failures";

/// Retries of one attempt inside the worker before the attempt counts as
/// failed (about 10–20 s of a failing dependency).
const ATTEMPT_RETRY: Backoff = Backoff::BOUNDED;

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
    let executor = QueryExecutor::shared(config.worker.query_threads)
        .context("starting the data query pool")?;
    // The worker loops of a process share one memory pool, as they share
    // the executor's threads.
    auditx_lake::sql::limit_process_memory(
        config.worker.query_memory_mb.saturating_mul(1024 * 1024) as usize,
    );
    let queries = QueryRunner {
        store: store.clone(),
        // The pool has no I/O driver: the lake's requests run here.
        lake: lake_object_store_on(&config.s3, tokio::runtime::Handle::current())
            .context("opening the lake for data queries")?,
        lake_bucket: config.s3.lake_bucket.clone(),
        export_bucket: config.s3.export_bucket.clone(),
        state: state.clone(),
        executor,
        shutdown: shutdown.clone(),
    };
    let worker = Arc::new(Worker {
        queue: queue.clone(),
        store,
        lake_bucket: config.s3.lake_bucket.clone(),
        export_bucket: config.s3.export_bucket.clone(),
        tasks_queue: tasks_queue.clone(),
        results_queue: topology.results(),
        max_attempts: config.worker.max_task_attempts.max(1),
        queries,
        throughput: Arc::new(ThroughputCounter::default()),
    });
    let slots = Arc::new(Semaphore::new(usize::from(concurrency)));
    let announcing = shutdown.child_token();
    let tasks_running = crate::announce::Running::default();
    let announcer = crate::announce::spawn(
        state.clone(),
        concurrency,
        tasks_running.clone(),
        announcing.clone(),
    );
    let recorder = tokio::spawn(throughput::record(
        state,
        worker.throughput.clone(),
        announcing.clone(),
    ));
    let mut running = JoinSet::new();
    let Some(mut consumer) = subscribe(queue.as_ref(), &tasks_queue, concurrency, &shutdown).await
    else {
        info!("worker stopped before it could subscribe");
        return Ok(());
    };
    info!(queue = %tasks_queue, concurrency, query_threads = worker.queries.executor.threads(), "worker consuming tasks");

    'consume: loop {
        while let Some(joined) = running.try_join_next() {
            log_panic(joined);
        }
        let slot = tokio::select! {
            biased;
            () = shutdown.cancelled() => break 'consume,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let next = tokio::select! {
            biased;
            () = shutdown.cancelled() => break 'consume,
            next = consumer.next() => next,
        };
        match next {
            Some(Ok(delivery)) => {
                let worker = worker.clone();
                let task = tasks_running.start();
                running.spawn(async move {
                    worker.handle(delivery).await;
                    drop(task);
                    drop(slot);
                });
            }
            failure => {
                match failure {
                    Some(Err(e)) => warn!(error = %e, "task consumer failed, subscribing again"),
                    _ => warn!("task consumer closed, subscribing again"),
                }
                match subscribe(queue.as_ref(), &tasks_queue, concurrency, &shutdown).await {
                    Some(fresh) => consumer = fresh,
                    None => break 'consume,
                }
            }
        }
    }
    info!(
        in_flight = running.len(),
        "worker stopping, finishing running tasks"
    );
    while let Some(joined) = running.join_next().await {
        log_panic(joined);
    }
    drop(consumer);
    announcing.cancel();
    let _ = announcer.await;
    let _ = recorder.await;
    info!("worker stopped");
    Ok(())
}

/// Subscribes to the task queue, retrying forever (a broker outage must not
/// stop the worker); `None` if shutdown came first.
async fn subscribe(
    queue: &dyn TaskQueue,
    name: &str,
    prefetch: u16,
    shutdown: &CancellationToken,
) -> Option<Consumer> {
    let mut failures = 0;
    loop {
        let consumed = tokio::select! {
            biased;
            () = shutdown.cancelled() => return None,
            consumed = queue.consume(name, prefetch) => consumed,
        };
        match consumed {
            Ok(consumer) => {
                if failures > 0 {
                    info!(queue = name, failures, "subscribed to the task queue again");
                }
                return Some(consumer);
            }
            Err(e) => {
                failures += 1;
                let delay = Backoff::FOREVER.delay(failures);
                let delay_ms = delay.as_millis() as u64;
                if e.is_transient() {
                    warn!(queue = name, failures, delay_ms, error = %e, "cannot subscribe to the task queue, retrying");
                } else {
                    error!(queue = name, failures, delay_ms, error = %e, "the broker refused the subscription, retrying");
                }
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return None,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Failed attempts recorded on a task message.
fn failures_of(message: &Message) -> u32 {
    message
        .headers
        .get(FAILURES_HEADER)
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// The task message to publish again after `failures` failed attempts: the
/// same payload and headers (trace context), without the ones the broker
/// added.
fn retry_message(message: &Message, failures: u32) -> Message {
    let mut headers: auditx_common::queue::Headers = message
        .headers
        .iter()
        .filter(|(name, _)| !name.starts_with("x-"))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    headers.insert(FAILURES_HEADER.to_owned(), failures.to_string());
    Message {
        payload: message.payload.clone(),
        headers,
    }
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
    tasks_queue: String,
    results_queue: String,
    /// Failed attempts after which a task fails for good.
    max_attempts: u32,
    queries: QueryRunner,
    /// What this worker finished, for the fleet's throughput chart.
    throughput: Arc<ThroughputCounter>,
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
                stage = t.stage,
            ),
            Task::AssemblePrefix(t) => info_span!(
                "worker.assemble_prefix",
                request_id = %t.request_id,
                tenant = %t.tenant,
                track_id,
                file = t.file.0,
                stage = t.stage,
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
        let result = retry(ATTEMPT_RETRY, WorkerError::is_transient, || {
            self.execute(&task)
        })
        .boxed()
        .await;
        let (report, outcome) = match result {
            Err(WorkerError::Interrupted) => {
                // Shutting down mid-query: no report; the task runs again.
                warn!("task interrupted by shutdown, returning it to the queue");
                metrics::task_finished(kind, Outcome::Requeued);
                settle(delivery.nack(true).await, "requeue");
                return;
            }
            Ok(report) => {
                record_success(&report, started.elapsed());
                (report, Outcome::Succeeded)
            }
            Err(e) if e.is_transient() => {
                let failures = failures_of(&delivery.message) + 1;
                if failures >= self.max_attempts {
                    error!(error = %e, failures, "task failed on every attempt");
                    let message = format!("{e} (failed {failures} attempts)");
                    (task.failure(message), Outcome::Failed)
                } else {
                    self.try_again(delivery, failures, &e).await;
                    metrics::task_finished(kind, Outcome::Requeued);
                    return;
                }
            }
            Err(e) => {
                error!(error = %e, "task failed");
                (task.failure(e.to_string()), Outcome::Failed)
            }
        };
        match self.publish(&report).await {
            Ok(()) => {
                metrics::task_finished(kind, outcome);
                let rows = match &report {
                    WorkerReport::Rendered(r) => r.rows,
                    _ => 0,
                };
                let query = matches!(report, WorkerReport::Queried(_));
                self.throughput.task_finished(rows, query);
                settle(delivery.ack().await, "ack");
            }
            Err(e) => {
                warn!(error = %e, "could not publish the task's report, requeueing it");
                metrics::task_finished(kind, Outcome::Requeued);
                settle(delivery.nack(true).await, "requeue");
            }
        }
    }

    /// Publishes the task again with its failure count, then acks this
    /// delivery. If the broker cannot take it, the delivery is requeued
    /// instead (that return counts towards the broker's delivery limit).
    async fn try_again(&self, delivery: Delivery, failures: u32, error: &WorkerError) {
        let message = retry_message(&delivery.message, failures);
        match self.queue.publish(&self.tasks_queue, message).await {
            Ok(()) => {
                warn!(error = %error, failures, max_attempts = self.max_attempts, "task attempt failed, queued again");
                settle(delivery.ack().await, "ack");
            }
            Err(e) => {
                warn!(error = %e, task_error = %error, failures, "could not queue the task again, requeueing it");
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
            Task::AssemblePrefix(t) => assemble_prefix(&self.store, &self.export_bucket, t)
                .await
                .map(WorkerReport::AssembledPrefix),
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
        Task::AssemblePrefix(_) => "assemble_prefix",
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
        WorkerReport::AssembledPrefix(r) => {
            info!(request_id = %r.request_id, file = r.file.0, stage = r.stage, parts = r.parts.len(), bytes = r.sha256.bytes, elapsed_ms, "file prefix assembled");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn message(headers: &[(&str, &str)]) -> Message {
        Message {
            payload: b"task".to_vec(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn a_message_without_the_header_has_no_failures() {
        // First deliveries, and tasks queued by a worker older than the header.
        assert_eq!(failures_of(&message(&[])), 0);
        assert_eq!(failures_of(&message(&[(FAILURES_HEADER, "garbage")])), 0);
        // A broker redelivery (x-delivery-count) is not a failure.
        assert_eq!(failures_of(&message(&[("x-delivery-count", "7")])), 0);
        assert_eq!(failures_of(&message(&[(FAILURES_HEADER, "3")])), 3);
    }

    #[test]
    fn a_task_queued_again_carries_its_count_and_trace_but_not_broker_headers() {
        let original = message(&[
            ("traceparent", "00-abc-def-01"),
            ("x-delivery-count", "2"),
            (FAILURES_HEADER, "1"),
        ]);
        let again = retry_message(&original, 2);
        assert_eq!(again.payload, original.payload);
        assert_eq!(failures_of(&again), 2);
        assert_eq!(again.headers["traceparent"], "00-abc-def-01");
        assert!(!again.headers.contains_key("x-delivery-count"));
    }
}

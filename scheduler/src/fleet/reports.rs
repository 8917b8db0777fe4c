//! Applying worker reports: the results consumer appends each report to its
//! job's `reports` log (once per task id, so redeliveries and duplicate
//! tasks change nothing) and wakes the job's driver if it runs here; the
//! driver may run on another replica, which reads the same log. The
//! dead-letter consumer turns a task that could not be processed into a
//! failure report.

use std::sync::Arc;

use auditx_common::queue::{Consumer, Delivery};
use auditx_common::retry::{retry, Backoff};
use auditx_common::telemetry::set_parent_from_headers;
use auditx_proto::{decode, QueryId, RequestId, Task, TaskRef, WorkerReport};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::context::Services;
use crate::error::DriveError;
use crate::export::layout;
use crate::fleet::wakers::JobWakers;
use crate::metrics;
use crate::query;

/// Reports applied at once by one consumer.
const CONCURRENCY: usize = 16;
const PREFETCH: u16 = 64;

/// The write-once field of a report: one per task, and one per failed task.
pub fn report_field(report: &WorkerReport) -> String {
    match report {
        WorkerReport::Rendered(r) => format!("render/{}", r.chunk),
        WorkerReport::Assembled(a) => format!("assemble/{}", a.file),
        WorkerReport::AssembledPrefix(a) => format!("assemble-prefix/{}/{}", a.file, a.stage),
        WorkerReport::Failed(f) => match f.task {
            TaskRef::Render { chunk } => format!("failed/render/{chunk}"),
            TaskRef::Assemble { file } => format!("failed/assemble/{file}"),
            TaskRef::AssemblePrefix { file, stage } => {
                format!("failed/assemble-prefix/{file}/{stage}")
            }
        },
        WorkerReport::Queried(_) | WorkerReport::QueryFailed(_) => {
            crate::query::jobs::RESULT_FIELD.to_owned()
        }
    }
}

/// Records a report for its job's driver and returns the key of the
/// driver to wake.
pub async fn record_report(
    services: &Services,
    report: &WorkerReport,
) -> Result<Option<String>, DriveError> {
    let id = match report {
        WorkerReport::Rendered(r) => &r.request_id,
        WorkerReport::Assembled(r) => &r.request_id,
        WorkerReport::AssembledPrefix(r) => &r.request_id,
        WorkerReport::Failed(r) => &r.request_id,
        WorkerReport::Queried(r) => return query_report(services, &r.query_id, report).await,
        WorkerReport::QueryFailed(r) => return query_report(services, &r.query_id, report).await,
    };
    record_export_report(services, id, report).await?;
    Ok(Some(id.to_string()))
}

async fn query_report(
    services: &Services,
    id: &QueryId,
    report: &WorkerReport,
) -> Result<Option<String>, DriveError> {
    let tenant = query::driver::record_report(services, id, report).await?;
    Ok(tenant.map(|t| query::driver::waker_key(&t)))
}

/// Records an export report for its job's driver. A report for an ended
/// job is dropped; if it is a rendered chunk (a late duplicate, after the
/// job's cleanup), its staging object is deleted.
async fn record_export_report(
    services: &Services,
    id: &RequestId,
    report: &WorkerReport,
) -> Result<(), DriveError> {
    let Some((state, _)) = services.jobs.state_raw(id).await? else {
        tracing::warn!(request_id = %id, "report for an unknown export dropped");
        return Ok(());
    };
    if !state.status.is_terminal() {
        services
            .jobs
            .append_report(id, &report_field(report), report)
            .await?;
        return Ok(());
    }
    if let (WorkerReport::Rendered(outcome), Some(spec)) = (report, services.jobs.spec(id).await?) {
        // Only ever the job's own staging objects, whatever the report says.
        if outcome
            .staging_key
            .starts_with(&layout::staging_prefix(&spec.tenant, id))
        {
            let bucket = &services.config.s3.export_bucket;
            services.store.delete(bucket, &outcome.staging_key).await?;
        }
    }
    Ok(())
}

/// Consumes worker reports until shutdown.
pub async fn consume_results(
    services: Services,
    wakers: Arc<JobWakers>,
    shutdown: CancellationToken,
) {
    let queue = services.topology.results();
    consume(&services, &queue, &shutdown, |delivery| {
        let (services, wakers) = (&services, &wakers);
        async move {
            match decode::<WorkerReport>(&delivery.message.payload) {
                Ok(report) => {
                    // Continues the worker's task span, hence the job's trace.
                    let span =
                        tracing::info_span!("scheduler.record_report", job_id = report.job_id());
                    set_parent_from_headers(&span, &delivery.message.headers);
                    apply(services, wakers, &report, delivery)
                        .instrument(span)
                        .await
                }
                Err(error) => {
                    tracing::warn!(%error, "undecodable worker report rejected");
                    settle(delivery.nack(false).await);
                }
            }
        }
    })
    .await;
}

/// Consumes dead-lettered tasks until shutdown: each fails its job.
pub async fn consume_dead_tasks(
    services: Services,
    wakers: Arc<JobWakers>,
    shutdown: CancellationToken,
) {
    let queue = services.topology.dead_tasks();
    consume(&services, &queue, &shutdown, |delivery| {
        let (services, wakers) = (&services, &wakers);
        async move {
            match decode::<Task>(&delivery.message.payload) {
                Ok(task) => {
                    let span = tracing::info_span!("scheduler.dead_letter", job_id = task.job_id());
                    set_parent_from_headers(&span, &delivery.message.headers);
                    metrics::task_dead_lettered(task_kind(&task));
                    let report =
                        task.failure("could not be processed after repeated deliveries".into());
                    async move {
                        tracing::warn!(job_id = task.job_id(), "task dead-lettered");
                        apply(services, wakers, &report, delivery).await;
                    }
                    .instrument(span)
                    .await;
                }
                Err(error) => {
                    tracing::warn!(%error, "undecodable dead-lettered task dropped");
                    settle(delivery.nack(false).await);
                }
            }
        }
    })
    .await;
}

/// The `kind` label of a task in the metrics.
fn task_kind(task: &Task) -> &'static str {
    match task {
        Task::Render(_) => "render",
        Task::Assemble(_) => "assemble",
        Task::AssemblePrefix(_) => "assemble_prefix",
        Task::Query(_) => "query",
    }
}

/// Records `report` (retrying while the store is unavailable), wakes its
/// driver, then acks; a report that cannot be recorded is requeued.
async fn apply(services: &Services, wakers: &JobWakers, report: &WorkerReport, delivery: Delivery) {
    let backoff = Backoff::BOUNDED;
    let transient = |e: &DriveError| matches!(e, DriveError::Transient(_));
    match retry(backoff, transient, || record_report(services, report)).await {
        Ok(driver) => {
            if let Some(driver) = driver {
                wakers.wake(&driver);
            }
            settle(delivery.ack().await);
        }
        Err(error) => {
            tracing::error!(job_id = report.job_id(), %error, "report not recorded, requeued");
            settle(delivery.nack(true).await);
        }
    }
}

fn settle(result: auditx_common::queue::QueueResult<()>) {
    if let Err(error) = result {
        tracing::warn!(%error, "delivery not acknowledged, it will be redelivered");
    }
}

/// Runs `handle` on every delivery of `queue`, a few at a time,
/// reconnecting after broker trouble, until shutdown.
async fn consume<F, Fut>(services: &Services, queue: &str, shutdown: &CancellationToken, handle: F)
where
    F: Fn(Delivery) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let backoff = Backoff::FOREVER;
    let mut failures = 0;
    while !shutdown.is_cancelled() {
        let consumer: Consumer = match services.queue.consume(queue, PREFETCH).await {
            Ok(consumer) => consumer,
            Err(error) => {
                failures += 1;
                tracing::warn!(queue, %error, "consuming failed, retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff.delay(failures)) => continue,
                }
            }
        };
        failures = 0;
        let deliveries = consumer
            .take_until(shutdown.cancelled())
            .take_while(|delivery| {
                if let Err(error) = delivery {
                    tracing::warn!(queue, %error, "consumer failed");
                }
                futures::future::ready(delivery.is_ok())
            })
            .filter_map(|delivery| futures::future::ready(delivery.ok()));
        deliveries.for_each_concurrent(CONCURRENCY, &handle).await;
        if !shutdown.is_cancelled() {
            tracing::warn!(queue, "consumer ended, reconnecting");
            tokio::time::sleep(backoff.delay(1)).await;
        }
    }
}

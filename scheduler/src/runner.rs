//! The scheduler's background work: the tenant loop (leases, FIFO, job
//! drivers), the query loop, the results consumer, the dead-letter consumer
//! and the sampler of queue depths and job counts, until shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::context::Services;
use crate::export::retention::Exports;
use crate::export::tenants::ExportQueues;
use crate::fleet::census;
use crate::fleet::reports;
use crate::fleet::retention::sweep_loop;
use crate::fleet::tenant_loop;
use crate::fleet::wakers::JobWakers;
use crate::metrics;
use crate::query::driver::QueryQueues;
use crate::query::retention::Queries;

/// How often queue depths and job counts are sampled for the metrics.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Runs the scheduler until `shutdown` is canceled. Drivers stop at their
/// next step and release their leases, so another replica resumes their
/// jobs at once; nothing is lost since every step is recorded. Dropping the
/// returned future instead stops everything on the spot, like a crash: the
/// leases then expire after their TTL.
pub async fn run(services: Services, shutdown: CancellationToken) -> anyhow::Result<()> {
    metrics::register();
    let wakers = Arc::new(JobWakers::default());
    let mut loops = JoinSet::new();
    loops.spawn(tenant_loop::run::<ExportQueues>(
        services.clone(),
        wakers.clone(),
        shutdown.clone(),
    ));
    loops.spawn(tenant_loop::run::<QueryQueues>(
        services.clone(),
        wakers.clone(),
        shutdown.clone(),
    ));
    loops.spawn(reports::consume_results(
        services.clone(),
        wakers.clone(),
        shutdown.clone(),
    ));
    loops.spawn(reports::consume_dead_tasks(
        services.clone(),
        wakers,
        shutdown.clone(),
    ));
    loops.spawn(sample_gauges(services.clone(), shutdown.clone()));
    loops.spawn(sweep_loop::<Exports>(services.clone(), shutdown.clone()));
    loops.spawn(sweep_loop::<Queries>(services.clone(), shutdown.clone()));
    tracing::info!(replica = %services.replica, "scheduler running");
    while let Some(done) = loops.join_next().await {
        if let Err(error) = done {
            shutdown.cancel();
            anyhow::bail!("scheduler loop failed: {error}");
        }
    }
    tracing::info!(replica = %services.replica, "scheduler stopped");
    Ok(())
}

async fn sample_gauges(services: Services, shutdown: CancellationToken) {
    let topology = &services.topology;
    let queues = [topology.tasks(), topology.results(), topology.dead_tasks()];
    loop {
        for queue in &queues {
            match services.queue.depth(queue).await {
                Ok(depth) => metrics::queue_depth(queue, depth),
                Err(error) => tracing::debug!(queue, %error, "queue depth not sampled"),
            }
        }
        if let Err(error) = census::sample(&services).await {
            tracing::debug!(%error, "jobs not counted");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SAMPLE_EVERY) => {}
        }
    }
}

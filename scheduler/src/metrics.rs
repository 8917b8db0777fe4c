//! The scheduler's Prometheus metrics, in the default registry (served by
//! the API's `/metrics`).

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{histogram_opts, opts, Histogram, IntCounter, IntCounterVec, IntGaugeVec};

use crate::export::jobs::JobStatus;

/// Registers `metric` in the default registry. The metrics are process-wide
/// statics, so this runs once per metric; should another component have
/// taken the name, the metric still counts but is not exported.
fn registered<T: Collector + Clone + 'static>(metric: T) -> T {
    if let Err(error) = prometheus::register(Box::new(metric.clone())) {
        tracing::debug!(%error, "metric already registered");
    }
    metric
}

static JOB_TRANSITIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    registered(
        IntCounterVec::new(
            opts!(
                "auditx_scheduler_job_transitions_total",
                "Export jobs entering each status"
            ),
            &["status"],
        )
        .expect("valid metric"),
    )
});

static CHUNKS_DISPATCHED: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(
        IntCounter::with_opts(opts!(
            "auditx_scheduler_chunks_dispatched_total",
            "Render tasks published (re-dispatches after a takeover included)"
        ))
        .expect("valid metric"),
    )
});

static CHUNKS_COMPLETED: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(
        IntCounter::with_opts(opts!(
            "auditx_scheduler_chunks_completed_total",
            "Rendered chunks applied by a job's driver"
        ))
        .expect("valid metric"),
    )
});

static CHUNK_LATENCY: LazyLock<Histogram> = LazyLock::new(|| {
    registered(
        Histogram::with_opts(histogram_opts!(
            "auditx_scheduler_chunk_latency_seconds",
            "Time from dispatching a render task to applying its report",
            prometheus::exponential_buckets(0.01, 2.0, 16).expect("valid buckets")
        ))
        .expect("valid metric"),
    )
});

static LOCK_WAIT: LazyLock<Histogram> = LazyLock::new(|| {
    registered(
        Histogram::with_opts(histogram_opts!(
            "auditx_scheduler_lock_wait_seconds",
            "Time an export waited PENDING for its tenant's lease",
            prometheus::exponential_buckets(0.01, 2.0, 20).expect("valid buckets")
        ))
        .expect("valid metric"),
    )
});

static QUEUE_DEPTH: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    registered(
        IntGaugeVec::new(
            opts!(
                "auditx_scheduler_queue_depth",
                "Messages ready in a queue, as last sampled"
            ),
            &["queue"],
        )
        .expect("valid metric"),
    )
});

pub fn job_entered(status: JobStatus) {
    JOB_TRANSITIONS.with_label_values(&[status.as_str()]).inc();
}

pub fn chunk_dispatched() {
    CHUNKS_DISPATCHED.inc();
}

/// A chunk's report was applied; `latency` is known if this replica
/// dispatched it.
pub fn chunk_completed(latency: Option<Duration>) {
    CHUNKS_COMPLETED.inc();
    if let Some(latency) = latency {
        CHUNK_LATENCY.observe(latency.as_secs_f64());
    }
}

pub fn lock_waited(wait: Duration) {
    LOCK_WAIT.observe(wait.as_secs_f64());
}

pub fn queue_depth(queue: &str, depth: u64) {
    QUEUE_DEPTH
        .with_label_values(&[queue])
        .set(i64::try_from(depth).unwrap_or(i64::MAX));
}

static STATE_LOSSES: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(
        IntCounter::with_opts(opts!(
            "auditx_scheduler_state_loss_detected_total",
            "Checks that found the state store without its epoch (it lost its data)"
        ))
        .expect("valid metric"),
    )
});

pub fn state_loss_detected() {
    STATE_LOSSES.inc();
}

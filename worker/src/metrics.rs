//! The worker's Prometheus metrics (process-wide default registry).

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    exponential_buckets, register_histogram_vec, register_int_counter, register_int_counter_vec,
    register_int_gauge, HistogramVec, IntCounter, IntCounterVec, IntGauge,
};

/// `kind` label of tasks whose payload could not be decoded.
pub const UNKNOWN_KIND: &str = "unknown";

/// How a task ended for this worker.
#[derive(Clone, Copy, Debug)]
pub enum Outcome {
    /// Done and reported.
    Succeeded,
    /// Failed for good and reported as failed.
    Failed,
    /// Handed back to the queue for a later attempt.
    Requeued,
    /// Undecodable: dead-lettered.
    Rejected,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Requeued => "requeued",
            Outcome::Rejected => "rejected",
        }
    }
}

static TASKS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "auditx_worker_tasks_total",
        "Tasks finished by this worker, by kind (render, assemble, assemble_prefix, query) and outcome.",
        &["kind", "outcome"]
    )
    .expect("metric registers once")
});

static TASKS_IN_FLIGHT: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "auditx_worker_tasks_in_flight",
        "Tasks this worker is running."
    )
    .expect("metric registers once")
});

static ROWS_RENDERED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "auditx_worker_rows_rendered_total",
        "Data rows rendered into chunks."
    )
    .expect("metric registers once")
});

static BYTES_RENDERED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "auditx_worker_bytes_rendered_total",
        "Bytes of rendered chunks written to staging."
    )
    .expect("metric registers once")
});

static ROWS_ASSEMBLED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "auditx_worker_rows_assembled_total",
        "Data rows of the output files this worker assembled and uploaded."
    )
    .expect("metric registers once")
});

static BYTES_ASSEMBLED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "auditx_worker_bytes_assembled_total",
        "Bytes of output files uploaded as multipart parts."
    )
    .expect("metric registers once")
});

/// Latency of successful tasks, retries included, by kind.
static TASK_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "auditx_worker_task_duration_seconds",
        "Time to run a task to success, retries included, by kind (render, assemble, assemble_prefix, query).",
        &["kind"],
        exponential_buckets(0.01, 2.0, 16).expect("valid buckets")
    )
    .expect("metric registers once")
});

/// Registers every metric, so that they are exported before the first task.
pub fn register() {
    for kind in ["render", "assemble", "assemble_prefix", "query"] {
        for outcome in [
            Outcome::Succeeded,
            Outcome::Failed,
            Outcome::Requeued,
            Outcome::Rejected,
        ] {
            TASKS.with_label_values(&[kind, outcome.label()]);
        }
        TASK_SECONDS.with_label_values(&[kind]);
    }
    LazyLock::force(&TASKS_IN_FLIGHT);
    LazyLock::force(&ROWS_RENDERED);
    LazyLock::force(&BYTES_RENDERED);
    LazyLock::force(&ROWS_ASSEMBLED);
    LazyLock::force(&BYTES_ASSEMBLED);
    LazyLock::force(&TASK_SECONDS);
    auditx_common::metrics::register();
}

pub fn task_finished(kind: &str, outcome: Outcome) {
    TASKS.with_label_values(&[kind, outcome.label()]).inc();
}

pub fn chunk_rendered(rows: u64, bytes: u64, elapsed: Duration) {
    ROWS_RENDERED.inc_by(rows);
    BYTES_RENDERED.inc_by(bytes);
    TASK_SECONDS
        .with_label_values(&["render"])
        .observe(elapsed.as_secs_f64());
}

pub fn file_assembled(rows: u64, bytes: u64, elapsed: Duration) {
    ROWS_ASSEMBLED.inc_by(rows);
    BYTES_ASSEMBLED.inc_by(bytes);
    TASK_SECONDS
        .with_label_values(&["assemble"])
        .observe(elapsed.as_secs_f64());
}

pub fn query_ran(elapsed: Duration) {
    TASK_SECONDS
        .with_label_values(&["query"])
        .observe(elapsed.as_secs_f64());
}

/// Counts a running task until dropped.
pub struct InFlight(());

impl InFlight {
    pub fn start() -> Self {
        TASKS_IN_FLIGHT.inc();
        Self(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        TASKS_IN_FLIGHT.dec();
    }
}

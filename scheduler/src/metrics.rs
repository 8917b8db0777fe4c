//! The scheduler's Prometheus metrics, in the default registry (served by
//! the API's `/metrics`).

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{
    histogram_opts, opts, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec,
};

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

static JOBS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    registered(
        IntGaugeVec::new(
            opts!(
                "auditx_scheduler_jobs",
                "Jobs not yet settled, by kind (export, query) and status, as last counted in the state store"
            ),
            &["kind", "status"],
        )
        .expect("valid metric"),
    )
});

static OLDEST_PENDING: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    registered(
        IntGaugeVec::new(
            opts!(
                "auditx_scheduler_oldest_pending_seconds",
                "Age of the oldest job still waiting to start (0 if none), by kind"
            ),
            &["kind"],
        )
        .expect("valid metric"),
    )
});

static TENANT_QUEUE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    registered(
        IntGaugeVec::new(
            opts!(
                "auditx_scheduler_tenant_queue_length",
                "Unsettled jobs in a tenant's queue, by kind; the longest queues only, the rest summed under tenant=\"_other\""
            ),
            &["kind", "tenant"],
        )
        .expect("valid metric"),
    )
});

static LEASES_ACQUIRED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    registered(
        IntCounterVec::new(
            opts!(
                "auditx_scheduler_lease_acquisitions_total",
                "Tenant leases acquired by this replica, by kind (export, query)"
            ),
            &["kind"],
        )
        .expect("valid metric"),
    )
});

static TAKEOVERS: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(
        IntCounter::with_opts(opts!(
            "auditx_scheduler_export_takeovers_total",
            "RUNNING exports this replica resumed from another driver (crashed, stopped or lease lost)"
        ))
        .expect("valid metric"),
    )
});

static DEAD_LETTERED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    registered(
        IntCounterVec::new(
            opts!(
                "auditx_scheduler_dead_lettered_tasks_total",
                "Dead-lettered tasks turned into job failures, by task kind"
            ),
            &["kind"],
        )
        .expect("valid metric"),
    )
});

static HTTP_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    registered(
        IntCounterVec::new(
            opts!(
                "auditx_http_requests_total",
                "API requests answered, by method, route template and status code"
            ),
            &["method", "route", "status"],
        )
        .expect("valid metric"),
    )
});

static HTTP_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    registered(
        HistogramVec::new(
            histogram_opts!(
                "auditx_http_request_duration_seconds",
                "Time to answer an API request, by method and route template",
                prometheus::exponential_buckets(0.001, 2.0, 18).expect("valid buckets")
            ),
            &["method", "route"],
        )
        .expect("valid metric"),
    )
});

/// Tenants with a `tenant` label of their own in
/// `auditx_scheduler_tenant_queue_length` (the longest queues); the others
/// are summed under `_other`, so the series count stays bounded.
pub const TENANT_SERIES: usize = 20;

/// Registers every metric, so that a scrape shows them before their first
/// event.
pub fn register() {
    LazyLock::force(&JOB_TRANSITIONS);
    LazyLock::force(&CHUNKS_DISPATCHED);
    LazyLock::force(&CHUNKS_COMPLETED);
    LazyLock::force(&CHUNK_LATENCY);
    LazyLock::force(&LOCK_WAIT);
    LazyLock::force(&QUEUE_DEPTH);
    LazyLock::force(&JOBS);
    LazyLock::force(&OLDEST_PENDING);
    LazyLock::force(&TENANT_QUEUE);
    for kind in ["export", "query"] {
        LEASES_ACQUIRED.with_label_values(&[kind]);
    }
    LazyLock::force(&TAKEOVERS);
    for kind in ["render", "assemble", "assemble_prefix", "query"] {
        DEAD_LETTERED.with_label_values(&[kind]);
    }
    for status in JobStatus::ALL {
        JOB_TRANSITIONS.with_label_values(&[status.as_str()]);
    }
    LazyLock::force(&HTTP_REQUESTS);
    LazyLock::force(&HTTP_SECONDS);
    auditx_common::metrics::register();
}

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

/// What one count of the unsettled jobs of a kind found.
#[derive(Debug, Default)]
pub struct JobCensus {
    /// Jobs by status name.
    pub by_status: Vec<(&'static str, i64)>,
    /// Age of the oldest job waiting to start.
    pub oldest_pending: Duration,
    /// Unsettled jobs per tenant.
    pub tenant_queues: Vec<(String, i64)>,
}

/// Replaces the gauges of `kind` with `census`. Every status of `statuses`
/// gets a value (0 if absent), so alerts see a series even when idle.
pub fn jobs_counted(kind: &str, statuses: &[&'static str], census: &JobCensus) {
    for status in statuses {
        let count = census
            .by_status
            .iter()
            .filter(|(s, _)| s == status)
            .map(|(_, n)| n)
            .sum();
        JOBS.with_label_values(&[kind, status]).set(count);
    }
    OLDEST_PENDING
        .with_label_values(&[kind])
        .set(census.oldest_pending.as_secs() as i64);
    for (tenant, length) in tenant_series(&census.tenant_queues) {
        TENANT_QUEUE
            .with_label_values(&[kind, tenant.as_str()])
            .set(length);
    }
}

/// Drops the tenant series of every kind (before setting them again), so
/// that tenants whose queue emptied disappear.
pub fn reset_tenant_queues() {
    TENANT_QUEUE.reset();
}

/// The longest [`TENANT_SERIES`] queues by name, and `_other` for the sum
/// of the rest (absent if there is no rest).
fn tenant_series(queues: &[(String, i64)]) -> Vec<(String, i64)> {
    let mut sorted: Vec<&(String, i64)> = queues.iter().filter(|(_, n)| *n > 0).collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut series: Vec<(String, i64)> = sorted
        .iter()
        .take(TENANT_SERIES)
        .map(|(t, n)| (t.clone(), *n))
        .collect();
    let rest: i64 = sorted.iter().skip(TENANT_SERIES).map(|(_, n)| n).sum();
    if rest > 0 {
        series.push(("_other".to_owned(), rest));
    }
    series
}

pub fn lease_acquired(kind: &str) {
    LEASES_ACQUIRED.with_label_values(&[kind]).inc();
}

pub fn export_taken_over() {
    TAKEOVERS.inc();
}

pub fn task_dead_lettered(kind: &str) {
    DEAD_LETTERED.with_label_values(&[kind]).inc();
}

/// One answered API request; `route` is the matched route template (or
/// `unmatched`), never the raw path, so ids do not become label values.
pub fn http_request(method: &http::Method, route: &str, status: u16, elapsed: Duration) {
    let method = match method.as_str() {
        known @ ("GET" | "POST" | "PUT" | "DELETE" | "PATCH" | "HEAD" | "OPTIONS") => known,
        _ => "other",
    };
    HTTP_REQUESTS
        .with_label_values(&[method, route, &status.to_string()])
        .inc();
    HTTP_SECONDS
        .with_label_values(&[method, route])
        .observe(elapsed.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_series_keep_the_longest_queues_and_sum_the_rest() {
        let queues: Vec<(String, i64)> = (0..30)
            .map(|i| (format!("t{i:02}"), i64::from(i)))
            .collect();
        let series = tenant_series(&queues);
        assert_eq!(series.len(), TENANT_SERIES + 1);
        assert_eq!(series[0], ("t29".to_owned(), 29));
        assert_eq!(series[TENANT_SERIES - 1], ("t10".to_owned(), 10));
        // t01..t09 are summed; t00 has an empty queue and no series.
        assert_eq!(series[TENANT_SERIES], ("_other".to_owned(), (1..10).sum()));
        assert!(tenant_series(&[("a".into(), 0)]).is_empty());
    }
}

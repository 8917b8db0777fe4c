//! Metrics of the plumbing both roles share (S3, RabbitMQ, retries), in the
//! process-wide default registry that the scheduler's `/metrics` and the
//! worker's health endpoint serve.

use std::sync::LazyLock;

use prometheus::{opts, IntCounter, IntCounterVec};

use crate::queue::QueueError;
use crate::s3::StorageError;

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(opts!(name, help), labels).expect("valid metric");
    if let Err(error) = prometheus::register(Box::new(metric.clone())) {
        tracing::debug!(%error, "metric already registered");
    }
    metric
}

static S3_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "auditx_s3_errors_total",
        "Failed S3 calls (after the SDK's own retries), by kind: transient (network, throttling, 5xx) or permanent (denied, bad request); not-found answers are not counted",
        &["kind"],
    )
});

static S3_RETRIES: LazyLock<IntCounter> = LazyLock::new(|| {
    let metric = IntCounter::with_opts(opts!(
        "auditx_s3_retries_total",
        "S3 request attempts after the first, made by the SDK's retry strategy"
    ))
    .expect("valid metric");
    if let Err(error) = prometheus::register(Box::new(metric.clone())) {
        tracing::debug!(%error, "metric already registered");
    }
    metric
});

static QUEUE_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "auditx_rabbitmq_errors_total",
        "Failed RabbitMQ calls (publish, consume, declare), by kind: unavailable, rejected (nack or return) or other",
        &["kind"],
    )
});

static RETRIES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "auditx_retries_total",
        "Retries after a transient failure by auditx's own backoff loops, by error type (StorageError = S3, QueueError = RabbitMQ, WorkerError, DriveError, ...)",
        &["error"],
    )
});

/// Registers the metrics with every label value at 0, so that a scrape
/// shows the series (and `rate()` sees the first event) before it happens.
pub fn register() {
    for kind in ["transient", "permanent"] {
        S3_ERRORS.with_label_values(&[kind]);
    }
    LazyLock::force(&S3_RETRIES);
    for kind in ["unavailable", "rejected", "other"] {
        QUEUE_ERRORS.with_label_values(&[kind]);
    }
    for error in ["StorageError", "QueueError"] {
        RETRIES.with_label_values(&[error]);
    }
}

pub(crate) fn s3_error(error: &StorageError) {
    let kind = match error {
        StorageError::NotFound { .. } => return,
        StorageError::Transient(_) => "transient",
        StorageError::Permanent(_) => "permanent",
    };
    S3_ERRORS.with_label_values(&[kind]).inc();
}

pub(crate) fn s3_retry() {
    S3_RETRIES.inc();
}

pub(crate) fn queue_error(error: &QueueError) {
    let kind = match error {
        QueueError::Unavailable(_) => "unavailable",
        QueueError::Rejected(_) => "rejected",
        QueueError::Other(_) => "other",
    };
    QUEUE_ERRORS.with_label_values(&[kind]).inc();
}

/// A retry by [`crate::retry::retry`]; `E` names the error type.
pub(crate) fn retried<E>() {
    let full = std::any::type_name::<E>();
    let short = full.rsplit("::").next().unwrap_or(full);
    RETRIES.with_label_values(&[short]).inc();
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_retry_is_labelled_with_the_short_error_type() {
        super::retried::<crate::s3::StorageError>();
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&prometheus::gather())
            .unwrap();
        assert!(
            text.contains("auditx_retries_total{error=\"StorageError\"}"),
            "{text}"
        );
    }
}

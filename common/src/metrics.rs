//! Metrics of the plumbing both roles share (S3, RabbitMQ, retries), in the
//! process-wide default registry that the scheduler's `/metrics` and the
//! worker's health endpoint serve.

use std::sync::LazyLock;

use prometheus::{opts, IntCounter, IntCounterVec};

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

/// An S3 error of `kind` ("transient" or "permanent").
pub(crate) fn s3_error(kind: &'static str) {
    S3_ERRORS.with_label_values(&[kind]).inc();
}

pub(crate) fn s3_retry() {
    S3_RETRIES.inc();
}

/// A RabbitMQ error of `kind` ("unavailable", "rejected" or "other").
pub(crate) fn queue_error(kind: &'static str) {
    QUEUE_ERRORS.with_label_values(&[kind]).inc();
}

/// The content type of [`exposition`].
pub const EXPOSITION_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Every registered metric of this process in Prometheus' text format (what
/// `/metrics` serves, on the API and on a worker's health port alike).
pub fn exposition() -> Result<Vec<u8>, String> {
    use prometheus::Encoder;
    let mut body = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&prometheus::gather(), &mut body)
        .map_err(|e| format!("encoding metrics: {e}"))?;
    Ok(body)
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
        struct StorageError;
        super::retried::<StorageError>();
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&prometheus::gather())
            .unwrap();
        assert!(
            text.contains("auditx_retries_total{error=\"StorageError\"}"),
            "{text}"
        );
    }
}

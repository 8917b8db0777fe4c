//! Logging and tracing: JSON (or text) logs through `tracing`, spans
//! exported over OTLP/HTTP when an endpoint is configured, and the W3C trace
//! context carried in message headers from API to scheduler to worker.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Level, Metadata};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{filter_fn, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::TelemetryConfig;
use crate::queue::Headers;

/// Keeps the tracer provider alive; flushes spans when dropped.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    /// Exports the spans still buffered. The binaries drop the guard when
    /// their role returns, which is after SIGTERM's graceful shutdown too.
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(error) = provider.shutdown() {
                eprintln!("auditx: spans not flushed at exit: {error}");
            }
        }
    }
}

/// Spans exported over OTLP: auditx's own, at info and above, whatever
/// `log_level` says (a `warn` log level must not switch tracing off).
const TRACED_TARGETS: &str = "auditx=info";

/// Whether logs are written as text for a person: `text`, or `auto` (the
/// default) when standard error is a terminal; JSON otherwise (`json`, or
/// `auto` writing to a pipe or file, as under Kubernetes).
fn text_logs(log_format: &str) -> bool {
    use std::io::IsTerminal;
    match log_format {
        "text" => true,
        "json" => false,
        _ => std::io::stderr().is_terminal(),
    }
}

/// Installs the global subscriber. Call once, early, from a binary; `role`
/// (`scheduler`, `worker`, ...) becomes the `auditx.role` resource attribute
/// of the exported spans, beside a `service.instance.id` unique to the
/// process.
///
/// The exporter sends with a blocking HTTP client from the batch span
/// processor's own thread: that thread runs no Tokio runtime, so an async
/// client there panics and no span ever leaves the process.
pub fn init(config: &TelemetryConfig, role: &str) -> anyhow::Result<TelemetryGuard> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let text = text_logs(&config.log_format);
    let provider = match &config.otlp_endpoint {
        Some(endpoint) => {
            use opentelemetry_otlp::WithExportConfig;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
                .build()?;
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name(config.service_name.clone())
                .with_attributes([
                    KeyValue::new("service.instance.id", uuid::Uuid::new_v4().to_string()),
                    KeyValue::new("process.pid", i64::from(std::process::id())),
                    KeyValue::new("auditx.role", role.to_owned()),
                ])
                .build();
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .build(),
            )
        }
        None => None,
    };
    let refusals = filter_fn(|meta| !is_s3s_refusal(meta));
    match &provider {
        // Logs only: the log level is a global filter. A per-layer one
        // loses events: a `log` record it turns down (DataFusion logs
        // through `log`, bridged to tracing) leaves the thread's "disabled"
        // mark set, and the next event whose callsite is always enabled
        // (`RUST_LOG=warn,auditx_lake=debug`: the lake's debug events right
        // after DataFusion's planning) finds the mark and is dropped.
        None => tracing_subscriber::registry()
            .with(refusals)
            .with(filter)
            .with(log_layer(text))
            .try_init()?,
        // Spans are exported at `auditx=info` whatever the log level, so
        // each layer has its own filter.
        Some(p) => {
            opentelemetry::global::set_tracer_provider(p.clone());
            let traced: Targets = TRACED_TARGETS.parse()?;
            let otel = tracing_opentelemetry::layer()
                .with_tracer(p.tracer("auditx"))
                .with_filter(traced);
            tracing_subscriber::registry()
                .with(refusals)
                .with(log_layer(text).with_filter(filter))
                .with(otel)
                .try_init()?
        }
    }
    Ok(TelemetryGuard { provider })
}

/// The log lines, as text or JSON (see [`text_logs`]), on standard error.
fn log_layer<S>(text: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    if text {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .boxed()
    }
}

/// The two ERROR events s3s emits for every request it refuses before
/// running an operation (unsigned, badly signed, malformed): the `err` of
/// its `prepare` span and "failed to prepare", both from `s3s::ops`. The
/// embedded endpoint logs those refusals itself, at debug, and counts them
/// (see [`crate::embedded_s3`]); s3s's "op returns error" (which carries an
/// `op` field) and its `s3s::service` line for 5xx answers are kept.
fn is_s3s_refusal(meta: &Metadata<'_>) -> bool {
    meta.is_event()
        && *meta.level() == Level::ERROR
        && meta.target() == "s3s::ops"
        && meta.fields().field("op").is_none()
}

struct HeaderInjector<'a>(&'a mut Headers);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

struct HeaderExtractor<'a>(&'a Headers);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Writes the current span's trace context (`traceparent`) into `headers`.
pub fn inject_trace_context(headers: &mut Headers) {
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
}

/// Makes `span` a child of the trace context found in `headers`, if any.
pub fn set_parent_from_headers(span: &tracing::Span, headers: &Headers) {
    let context = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let _ = span.set_parent(context);
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn s3s_refusals_are_dropped_and_its_other_errors_kept() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry()
            .with(filter_fn(|meta| !is_s3s_refusal(meta)))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(captured.clone()),
            );
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "s3s::ops", err = "AccessDenied", "failed to prepare");
            tracing::error!(target: "s3s::ops", error = "AccessDenied");
            tracing::error!(target: "s3s::ops", op = "GetObject", err = "Io", "op returns error");
            tracing::error!(target: "s3s::service", status = 500);
            tracing::error!(target: "auditx", "kept");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("failed to prepare"), "{text}");
        assert!(!text.contains("AccessDenied"), "{text}");
        assert!(text.contains("op returns error"), "{text}");
        assert!(text.contains("status=500"), "{text}");
        assert!(text.contains("kept"), "{text}");
    }
}

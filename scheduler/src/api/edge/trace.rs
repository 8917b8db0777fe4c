//! One tracing span per request (`http.request`), continuing the caller's
//! W3C trace context, carrying the checked `Zuora-Track-Id` (which is also
//! echoed on the response), and the request's metrics by route template.
//! Handlers record `tenant` (auth), `meter`, `request_id` and `query_id` on
//! the span when they know them.

use std::time::Instant;

use auditx_common::queue::Headers;
use auditx_common::telemetry::set_parent_from_headers;
use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::field::Empty;
use tracing::Instrument;

use crate::api::edge::headers::{track_id, TRACK_ID_HEADER};

/// The request's validated `Zuora-Track-Id`, for handlers that store it.
#[derive(Clone, Debug)]
pub struct TrackId(pub Option<String>);

/// Routes polled by probes and scrapers: logged at debug, not info.
const QUIET_ROUTES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

pub async fn request_span(mut request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = request.method().clone();
    let span = tracing::info_span!(
        "http.request",
        method = %method,
        route = %route,
        track_id = Empty,
        tenant = Empty,
        meter = Empty,
        request_id = Empty,
        query_id = Empty,
        status = Empty,
    );
    set_parent_from_headers(&span, &trace_context(&request));
    async move {
        let started = Instant::now();
        let (mut response, track_id) = match track_id(request.headers()) {
            Ok(track_id) => {
                if let Some(id) = &track_id {
                    tracing::Span::current().record("track_id", id.as_str());
                }
                request.extensions_mut().insert(TrackId(track_id.clone()));
                (next.run(request).await, track_id)
            }
            Err(e) => (e.into_response(), None),
        };
        if let Some(value) = track_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
            response.headers_mut().insert(TRACK_ID_HEADER, value);
        }
        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        crate::metrics::http_request(&method, &route, status, elapsed);
        let latency_ms = elapsed.as_millis() as u64;
        tracing::Span::current().record("status", status);
        if QUIET_ROUTES.contains(&route.as_str()) {
            tracing::debug!(status, latency_ms, "request served");
        } else {
            tracing::info!(status, latency_ms, "request served");
        }
        response
    }
    .instrument(span)
    .await
}

/// The caller's `traceparent` / `tracestate` headers, if any.
fn trace_context(request: &Request) -> Headers {
    ["traceparent", "tracestate"]
        .into_iter()
        .filter_map(|name| {
            let value = request.headers().get(name)?.to_str().ok()?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}

//! The HTTP API (SPEC §3): export jobs, data query jobs, presigned
//! downloads, ingest, probes, metrics and the OpenAPI document.
//!
//! Every answer is the envelope of [`envelope`]; every failure is an
//! [`error::ApiError`] whose kind alone decides the status. Layers, outermost
//! first: the bounds (URI and header sizes, requests in flight, the request
//! deadline), gzip of responses over 1000 bytes, the request span (which
//! checks and echoes `Zuora-Track-Id`), the body size limit, the routes.
//! [`server`] runs the accept loop (slow clients, open connections).

pub mod auth;
mod bounds;
mod envelope;
mod error;
mod export_query;
mod exports;
mod headers;
mod health;
mod ingest;
mod limits;
mod openapi;
mod params;
mod presign;
mod queries;
mod server;
mod tables;
mod trace;
mod views;

use std::net::SocketAddr;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, Request};
use axum::routing::{get, post};
use axum::{middleware, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::compression::predicate::SizeAbove;
use tower_http::compression::CompressionLayer;

use self::error::ApiError;
use crate::context::Services;

/// Responses of at least this many bytes are gzipped for callers that
/// accept it ("over 1000 bytes", SPEC §3).
const COMPRESS_FROM_BYTES: u16 = 1001;

/// The API's routes over `services`.
pub fn router(services: Services) -> Router {
    let body_limit = services.config.ingest.max_body_bytes;
    let edge = bounds::Bounds::new(&services.config.api);
    Router::new()
        .route(
            "/meters/{meterId}/auditTrail/export",
            post(exports::create).get(exports::list),
        )
        .route(
            "/meters/{meterId}/auditTrail/export/{requestId}",
            get(exports::get).delete(exports::cancel),
        )
        .route(
            "/meters/auditTrail/presignedUrl",
            get(presign::presigned_url),
        )
        .route(
            "/meters/{meterId}/auditTrail/entries",
            post(ingest::audit_entries),
        )
        .route("/meters/{meterId}/runs", post(ingest::runs))
        .route("/audit/tables/{table}/rows", post(tables::rows))
        .route("/query/jobs", post(queries::submit).get(queries::list))
        .route(
            "/query/jobs/{id}",
            get(queries::get).delete(queries::cancel),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::document))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(trace::request_span))
        .layer(CompressionLayer::new().compress_when(SizeAbove::new(COMPRESS_FROM_BYTES)))
        .layer(middleware::from_fn_with_state(edge, bounds::bound))
        .with_state(services)
}

/// Serves the API on `listen` until `shutdown` is canceled, then finishes
/// the requests in flight.
pub async fn serve(
    services: Services,
    listen: SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the api to {listen}"))?;
    serve_on(listener, services, shutdown).await
}

/// Like [`serve`] on a bound listener (tests bind port 0 and read its
/// address first).
pub async fn serve_on(
    listener: TcpListener,
    services: Services,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let config = services.config.clone();
    server::run(listener, router(services), &config.api, shutdown).await
}

async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound(format!("no route for {}", request.uri().path()))
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "{} is not allowed on {}",
        request.method(),
        request.uri().path()
    ))
}

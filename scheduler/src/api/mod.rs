//! The HTTP API (SPEC §3): export jobs, online entries and summaries, data
//! query jobs, presigned downloads, ingest, probes, metrics and the OpenAPI
//! document.
//!
//! The folder is grouped by role:
//!
//! - [`routes`]: the handlers, one module per resource;
//! - [`request`]: reading parameters and bodies into typed requests (the
//!   request structs are also what the OpenAPI document describes);
//! - [`edge`]: the layers around every route (request id, bounds, tracing,
//!   idempotency, limits, the accept loop) and [`auth`] (the token check);
//! - [`response`]: the envelope and the errors;
//! - [`openapi`]: the document, generated from the routes and the types.
//!
//! Every answer is the envelope of [`response::envelope`]; every failure
//! is an [`error::ApiError`] whose kind alone decides the status (the data
//! query routes answer failures as `{code, message}`, see
//! [`response::data_query`]). Layers, outermost first: the request id
//! (`Zuora-Request-Id` on every answer), the bounds (URI and header sizes,
//! requests in flight, the request deadline), gzip of responses over 1000
//! bytes, the request span (which checks and echoes `Zuora-Track-Id`), the
//! body size limit, the `Idempotency-Key` replay of POSTs
//! ([`edge::idempotency`]), the routes. [`edge::server`] runs the accept
//! loop (slow clients, open connections).

pub mod auth;
mod edge;
pub(crate) mod openapi;
mod request;
mod response;
mod routes;
pub(crate) mod schema_names;

pub use routes::console;

// `auth` (kept at `api/auth`) reads these by their old paths.
use self::edge::headers;
use self::response::error;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, Request};
use axum::{middleware, Extension, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::compression::predicate::SizeAbove;
use tower_http::compression::CompressionLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::auth::TokenKeys;
use self::edge::{bounds, idempotency, request_id, server, trace};
use self::error::ApiError;
use self::response::data_query;
use self::routes::exports::presign;
use self::routes::ingest::tables;
use self::routes::queries::{saved as saved_queries, schema};
use self::routes::{entries, exports, fleet, health, ingest, queries, summary};
use crate::context::Services;

/// Responses of at least this many bytes are gzipped for callers that
/// accept it ("over 1000 bytes", SPEC §3).
const COMPRESS_FROM_BYTES: u16 = 1001;

/// The API's routes over `services`, and the OpenAPI document generated
/// from the same registrations (served at `/openapi.json`).
pub fn router(services: Services) -> Router {
    let body_limit = services.config.ingest.max_body_bytes;
    let edge = bounds::Bounds::new(&services.config.api);
    let (routes, mut doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(exports::create, exports::list))
        .routes(routes!(exports::get, exports::cancel))
        .routes(routes!(presign::presigned_url))
        .routes(routes!(ingest::audit_entries, entries::list))
        .routes(routes!(summary::summarize))
        .routes(routes!(ingest::runs))
        .routes(routes!(tables::rows))
        .routes(routes!(queries::submit, queries::list))
        .routes(routes!(queries::get, queries::cancel))
        .routes(routes!(saved_queries::list, saved_queries::create))
        .routes(routes!(saved_queries::update, saved_queries::delete))
        .routes(routes!(schema::schema))
        .routes(routes!(fleet::workers))
        .routes(routes!(fleet::throughput))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(openapi::document))
        .split_for_parts();
    openapi::finish(&mut doc);
    let served = openapi::Served(Arc::new(
        serde_json::to_value(&doc).expect("the OpenAPI document serializes to JSON"),
    ));
    routes
        .merge(console::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            services.clone(),
            idempotency::replay,
        ))
        .layer(Extension(served))
        .layer(Extension(Arc::new(TokenKeys::new(&services.config))))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(trace::request_span))
        .layer(middleware::from_fn(data_query::data_query_errors))
        .layer(CompressionLayer::new().compress_when(SizeAbove::new(COMPRESS_FROM_BYTES)))
        .layer(middleware::from_fn_with_state(edge, bounds::bound))
        .layer(middleware::from_fn(request_id::tag))
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
    crate::metrics::register();
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

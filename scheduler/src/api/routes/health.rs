//! Probes and metrics, open without a token.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde::Serialize;

use crate::api::openapi::OPEN;
use crate::api::response::envelope::{Envelope, Reason};
use crate::api::response::error::{ApiError, ApiResult};
use crate::context::Services;

/// `GET /healthz`: the process serves requests.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = OPEN,
    operation_id = "health",
    summary = "The process is up",
    responses((status = 200, description = "ok", body = String, content_type = "text/plain"))
)]
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: every dependency (broker, state store, S3) answers. The
/// body names each with whether it is up, so a 503 says which is down.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = OPEN,
    operation_id = "ready",
    summary = "Every dependency answers (broker, state store, S3)",
    responses(
        (status = 200, description = "ready: `data.dependencies` has `broker`, `stateStore` and `s3`, each `{up, latencyMs}`", body = serde_json::Value),
        (status = 503, description = "SERVICE_UNAVAILABLE: a dependency is down; `data.dependencies` names it (`up: false` with an `error`) and so does the reason.", body = serde_json::Value),
    )
)]
pub async fn readyz(State(services): State<Services>) -> Response {
    let readiness = services.dependencies().check().await;
    if readiness.ready {
        return Envelope::ok(readiness).into_response();
    }
    let error = ApiError::Unavailable(format!("not ready: {}", readiness.summary()));
    tracing::warn!(reason = %error, "readiness probe failed");
    let body = NotReady {
        success: false,
        process_id: crate::api::edge::request_id::process_id(),
        reasons: error.reasons(),
        data: readiness,
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

/// A failed readiness probe: the error body plus what was checked.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NotReady<T> {
    success: bool,
    process_id: String,
    reasons: Vec<Reason>,
    data: T,
}

/// `GET /metrics`: every registered metric in Prometheus' text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = OPEN,
    operation_id = "metrics",
    summary = "Prometheus metrics (text exposition format)",
    responses((status = 200, description = "The metrics.", body = String, content_type = "text/plain"))
)]
pub async fn metrics() -> ApiResult<impl IntoResponse> {
    let body = auditx_common::metrics::exposition().map_err(ApiError::Internal)?;
    Ok((
        [(
            CONTENT_TYPE,
            auditx_common::metrics::EXPOSITION_CONTENT_TYPE,
        )],
        body,
    ))
}

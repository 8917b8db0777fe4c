//! Probes and metrics, open without a token.

use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use prometheus::{Encoder, TextEncoder};

use super::error::{ApiError, ApiResult};
use super::openapi::{ErrorEnvelope, OPEN};
use crate::context::Services;

/// A key nobody writes: reading it proves the state store answers.
const READINESS_KEY: &str = "readyz/probe";

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

/// A probe that waits longer than this has failed anyway; answering keeps
/// hung probes from piling up.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /readyz`: the state store answers, so calls can be served.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = OPEN,
    operation_id = "ready",
    summary = "The state store answers",
    responses(
        (status = 200, description = "ready", body = String, content_type = "text/plain"),
        (status = 503, description = "SERVICE_UNAVAILABLE: the state store does not answer.", body = ErrorEnvelope),
    )
)]
pub async fn readyz(State(services): State<Services>) -> ApiResult<&'static str> {
    match tokio::time::timeout(READINESS_TIMEOUT, services.state.get(READINESS_KEY)).await {
        Ok(Ok(_)) => Ok("ready"),
        Ok(Err(e)) => Err(ApiError::Unavailable(e.to_string())),
        Err(_) => Err(ApiError::Unavailable(format!(
            "state store did not answer within {}s",
            READINESS_TIMEOUT.as_secs()
        ))),
    }
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
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    encoder
        .encode(&prometheus::gather(), &mut body)
        .map_err(|e| ApiError::Internal(format!("encoding metrics: {e}")))?;
    Ok(([(CONTENT_TYPE, encoder.format_type().to_owned())], body))
}

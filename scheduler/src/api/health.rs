//! Probes and metrics, open without a token.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use prometheus::{Encoder, TextEncoder};

use super::error::{ApiError, ApiResult};
use crate::context::Services;

/// A key nobody writes: reading it proves the state store answers.
const READINESS_KEY: &str = "readyz/probe";

/// `GET /healthz`: the process serves requests.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the state store answers, so calls can be served.
pub async fn readyz(State(services): State<Services>) -> ApiResult<&'static str> {
    services
        .state
        .get(READINESS_KEY)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok("ready")
}

/// `GET /metrics`: every registered metric in Prometheus' text format.
pub async fn metrics() -> ApiResult<impl IntoResponse> {
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    encoder
        .encode(&prometheus::gather(), &mut body)
        .map_err(|e| ApiError::Internal(format!("encoding metrics: {e}")))?;
    Ok(([(CONTENT_TYPE, encoder.format_type().to_owned())], body))
}

//! The worker's health and metrics endpoint, for Kubernetes probes and
//! Prometheus scrapes.

use std::net::SocketAddr;

use auditx_common::readiness::Dependencies;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::metrics;

/// Serves `GET /healthz`, `GET /readyz` and `GET /metrics` on `listen`
/// until `shutdown` fires. `/readyz` probes `dependencies` and answers
/// 200 or 503 with every dependency by name (`broker`, `stateStore`,
/// `s3`), each up or down with its error.
pub async fn serve_health(
    listen: SocketAddr,
    dependencies: Dependencies,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    metrics::register();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus_text))
        .with_state(dependencies);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "worker health endpoint listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}

async fn readyz(State(dependencies): State<Dependencies>) -> impl IntoResponse {
    let readiness = dependencies.check().await;
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        tracing::warn!(down = %readiness.summary(), "readiness probe failed");
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness))
}

async fn prometheus_text() -> impl IntoResponse {
    match auditx_common::metrics::exposition() {
        Ok(body) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                auditx_common::metrics::EXPOSITION_CONTENT_TYPE,
            )],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

//! The API's accept loop: HTTP/1.1 over hyper with the slow-client
//! defences `axum::serve` lacks.
//!
//! - A connection whose request head is not complete within
//!   `api.header_read_timeout_secs` is closed (this also ends idle
//!   keep-alive connections after that long).
//! - At most `api.max_connections` connections are open: the loop takes a
//!   permit before it accepts, so further connections wait in the kernel's
//!   listen backlog (or are refused by it once that is full).
//! - hyper's read buffer is sized well above the configured URI and header
//!   limits, so it is [`crate::api::edge::bounds`] that answers those, with the
//!   envelope.
//!
//! On shutdown the loop stops accepting, idle connections are closed and
//! requests in flight finish.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use auditx_common::config::{ApiConfig, MAX_URI_BYTES};
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Pause after a failed accept (e.g. out of file descriptors) so the loop
/// does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// hyper's HTTP/1 settings for `config`.
fn http1_builder(config: &ApiConfig) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(config.header_read_timeout_secs))
        .keep_alive(true)
        // Room for hyper's own URI limit plus twice our header limit: a
        // request has to be far past the configured limits to meet hyper's
        // bare answers instead of the envelope.
        .max_buf_size(MAX_URI_BYTES + 2 * config.max_header_bytes + 8192)
        // hyper's default of 100 fields would answer a bare 431 first; each
        // field costs hyper 64 bytes while parsing.
        .max_headers((config.max_header_bytes / 16).max(100));
    builder
}

/// Serves `app` on `listener` until `shutdown` is canceled.
pub async fn run(
    listener: TcpListener,
    app: Router,
    config: &ApiConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener
        .local_addr()
        .context("reading the api listener's address")?;
    let builder = http1_builder(config);
    let connections = Arc::new(Semaphore::new(config.max_connections));
    let graceful = GracefulShutdown::new();
    tracing::info!(%addr, max_connections = config.max_connections, "api listening");
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = connections.clone().acquire_owned() => {
                permit.context("connection permits closed")?
            }
        };
        let socket = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(error) => {
                    tracing::warn!(%error, "accepting an api connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        if let Err(error) = socket.set_nodelay(true) {
            tracing::debug!(%error, "setting TCP_NODELAY failed");
        }
        let connection =
            builder.serve_connection(TokioIo::new(socket), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                // Timeouts and clients going away: theirs, not ours.
                tracing::debug!(%error, "api connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!(%addr, "api stopping, finishing requests in flight");
    graceful.shutdown().await;
    tracing::info!(%addr, "api stopped");
    Ok(())
}

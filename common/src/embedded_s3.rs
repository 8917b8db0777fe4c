//! The embedded S3-compatible endpoint (s3s + s3s-fs on a local folder, its
//! data path in [`FastFs`](fs)) used
//! by the embedded default and by tests. SigV4 authentication is on, so
//! presigned URLs are really verified and download with plain curl.
//!
//! Requests it refuses (no or a bad signature: 401/403) are counted in
//! `auditx_embedded_s3_rejected_total` and logged at debug: s3s itself logs
//! each at ERROR, twice, which [`crate::telemetry`] filters out, so that
//! anonymous probes cannot flood the logs. Server errors (5xx) still log at
//! error, from s3s and from here.

mod composite;
pub mod fs;
mod listing;
mod parts;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use hyper::body::Incoming;
use hyper::service::{service_fn, Service};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::S3Config;
use crate::embedded_s3::fs::FastFs;

/// Requests the embedded endpoint refused for want of a valid signature.
static REJECTED: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    let counter = prometheus::IntCounter::new(
        "auditx_embedded_s3_rejected_total",
        "Requests the embedded S3 endpoint refused (401/403: unsigned or badly signed)",
    )
    .expect("valid metric");
    // A second endpoint in the same process (tests) shares the counter.
    if let Err(error) = prometheus::register(Box::new(counter.clone())) {
        tracing::debug!(%error, "metric already registered");
    }
    counter
});

/// Runs one request through s3s and accounts for how it ended.
async fn serve_one(
    s3: S3Service,
    request: Request<Incoming>,
) -> Result<s3s::HttpResponse, s3s::HttpError> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = Service::call(&s3, request).await?;
    let status = response.status();
    if status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED {
        REJECTED.inc();
        tracing::debug!(%method, path, status = status.as_u16(), "embedded s3 request refused");
    } else if status.is_server_error() {
        tracing::error!(%method, path, status = status.as_u16(), "embedded s3 request failed");
    }
    Ok(response)
}

/// A running embedded S3 endpoint; stops when dropped (open connections
/// included).
pub struct EmbeddedS3 {
    pub addr: SocketAddr,
    pub root: PathBuf,
    pub access_key_id: String,
    pub secret_access_key: String,
    task: JoinHandle<()>,
}

impl EmbeddedS3 {
    /// Serves `root` on `listen` (port 0 picks a free one) with the given keys.
    pub async fn start(
        root: &Path,
        listen: SocketAddr,
        access_key_id: &str,
        secret_access_key: &str,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        let fs = FastFs::new(root)?;
        let service = {
            let mut builder = S3ServiceBuilder::new(fs);
            builder.set_auth(SimpleAuth::from_single(access_key_id, secret_access_key));
            builder.build()
        };
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        // Shown (as 0) on /metrics from the start, not from the first refusal.
        LazyLock::force(&REJECTED);
        let task = tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            // Owned by the accept loop: stopping the endpoint drops open
            // (keep-alive) connections too, as a stopped server would.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                while connections.try_join_next().is_some() {}
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                // A response goes out in several writes (head, then body
                // blocks): with Nagle's algorithm on, the last small one
                // waits for the client's delayed ACK, up to 40 ms a request.
                if let Err(error) = socket.set_nodelay(true) {
                    tracing::debug!(%error, "embedded s3: TCP_NODELAY not set");
                }
                let s3 = service.clone();
                let conn = http
                    .serve_connection(
                        TokioIo::new(socket),
                        service_fn(move |request| serve_one(s3.clone(), request)),
                    )
                    .into_owned();
                connections.spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        tracing::info!(%addr, root = %root.display(), "embedded s3 endpoint listening");
        Ok(Self {
            addr,
            root: root.to_owned(),
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
            task,
        })
    }

    /// The S3 settings that point a client at this endpoint, keeping the
    /// bucket names and presign expiry of `base`.
    pub fn client_config(&self, base: &S3Config) -> S3Config {
        S3Config {
            endpoint: Some(format!("http://{}", self.addr)),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            force_path_style: true,
            create_buckets: true,
            ..base.clone()
        }
    }
}

impl Drop for EmbeddedS3 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

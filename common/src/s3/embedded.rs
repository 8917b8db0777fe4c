//! The embedded S3-compatible endpoint (s3s + s3s-fs on a local folder) used
//! by the embedded default and by tests. SigV4 authentication is on, so
//! presigned URLs are really verified and download with plain curl.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::S3Config;

/// A running embedded S3 endpoint; stops when dropped.
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
        let fs =
            s3s_fs::FileSystem::new(root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let service = {
            let mut builder = S3ServiceBuilder::new(fs);
            builder.set_auth(SimpleAuth::from_single(access_key_id, secret_access_key));
            builder.build()
        };
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let conn = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(async move {
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

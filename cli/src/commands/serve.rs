//! `auditx standalone`, `auditx scheduler`, `auditx worker`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use auditx_common::telemetry;
use tokio_util::sync::CancellationToken;

use super::load_config;
use crate::runtime::{self, shutdown_on_signal};
use crate::secrets;

/// `auditx standalone`: the whole product on the embedded default.
#[derive(Debug, clap::Args)]
pub struct StandaloneArgs {
    /// Address of the HTTP API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Folder holding the lake, the exports and the development secrets.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Address of the embedded S3 endpoint (presigned URLs point here).
    #[arg(long, default_value = "127.0.0.1:9310")]
    pub s3_listen: SocketAddr,
    /// Worker loops in the process.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Optional configuration file (TOML).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub async fn standalone(args: StandaloneArgs) -> anyhow::Result<()> {
    let mut config = load_config(args.config.as_ref())?;
    let _telemetry = telemetry::init(&config.telemetry, "standalone")?;
    let secret = secrets::jwt_secret(config.jwt_secret.as_deref(), &args.data_dir)?;
    config.jwt_secret = Some(secret.clone());
    let embedded = runtime::embedded(&mut config, &args.data_dir, args.s3_listen).await?;
    let listener = runtime::bind(args.listen, "--listen").await?;
    let api = listener.local_addr()?;
    let token = super::tools::mint_with(
        &secret,
        &config.auth,
        &super::tools::TokenSpec::new("dev", 24 * 30),
    )?;
    println!(
        "auditx is serving the API on http://{api} (embedded S3 on http://{})",
        embedded.s3.addr
    );
    println!("data folder: {}", args.data_dir.display());
    println!("development bearer token (tenant \"dev\", 30 days):\n{token}");
    println!(
        "console (signs in as tenant \"dev\"; the link works once, for 15 minutes):\n{}",
        auditx_scheduler::api::console::signin_link(&format!("http://{api}"), &token)
    );
    println!(
        "mint others with: auditx token --tenant T --data-dir {}",
        args.data_dir.display()
    );
    let shutdown = CancellationToken::new();
    shutdown_on_signal(shutdown.clone());
    runtime::run_all_in_one(
        Arc::new(runtime::fit_to_local_workers(&config, args.workers)),
        embedded.backends,
        listener,
        args.workers,
        shutdown,
    )
    .await
}

/// `auditx scheduler` / `auditx worker`: a distributed role.
#[derive(Debug, clap::Args)]
pub struct RoleArgs {
    /// Configuration file (TOML); `AUDITX_*` variables override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub async fn scheduler(args: RoleArgs) -> anyhow::Result<()> {
    let config = load_config(args.config.as_ref())?;
    let _telemetry = telemetry::init(&config.telemetry, "scheduler")?;
    anyhow::ensure!(
        config.jwt_secret.is_some()
            || config.auth.jwks_file.is_some()
            || config.auth.jwks_url.is_some(),
        "jwt_secret, auth.jwks_file or auth.jwks_url: required (set AUDITX_JWT_SECRET, AUDITX_AUTH__JWKS_FILE or AUDITX_AUTH__JWKS_URL)"
    );
    let backends = runtime::distributed(&config).await?;
    let listener = runtime::bind(config.listen, "`listen` (AUDITX_LISTEN)").await?;
    tracing::info!(listen = %listener.local_addr()?, "scheduler started");
    let shutdown = CancellationToken::new();
    shutdown_on_signal(shutdown.clone());
    runtime::run_scheduler(Arc::new(config), backends, listener, shutdown).await
}

pub async fn worker(args: RoleArgs) -> anyhow::Result<()> {
    let config = load_config(args.config.as_ref())?;
    let _telemetry = telemetry::init(&config.telemetry, "worker")?;
    let backends = runtime::distributed(&config).await?;
    tracing::info!(concurrency = config.worker.concurrency, "worker started");
    let shutdown = CancellationToken::new();
    shutdown_on_signal(shutdown.clone());
    runtime::run_worker(Arc::new(config), backends, shutdown).await
}

/// `auditx s3`: only the embedded S3 endpoint, for a distributed set-up on
/// one machine (development, `scripts/bench.sh --distributed`).
#[derive(Debug, clap::Args)]
pub struct S3Args {
    /// Folder holding the buckets (`<data-dir>/s3`) and the endpoint's secret.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Address of the endpoint.
    #[arg(long, default_value = "127.0.0.1:9310")]
    pub listen: SocketAddr,
    /// Optional configuration file (TOML): the bucket names.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub async fn s3(args: S3Args) -> anyhow::Result<()> {
    let mut config = load_config(args.config.as_ref())?;
    let _telemetry = telemetry::init(&config.telemetry, "s3")?;
    let embedded =
        runtime::embedded_s3(&mut config, &args.data_dir, args.listen, "--listen").await?;
    println!(
        "embedded S3 endpoint on http://{} (path-style, SigV4): access key {}, secret key in {}",
        embedded.addr,
        runtime::EMBEDDED_S3_ACCESS_KEY,
        args.data_dir.join(secrets::S3_SECRET_FILE).display()
    );
    let shutdown = CancellationToken::new();
    shutdown_on_signal(shutdown.clone());
    shutdown.cancelled().await;
    drop(embedded);
    Ok(())
}

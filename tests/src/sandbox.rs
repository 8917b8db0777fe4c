//! An in-process auditx: API + scheduler + workers, started the way the
//! binary starts them (`auditx::runtime`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use auditx::client::ApiClient;
use auditx::runtime::{self, Backends};
use auditx_common::config::{ApiConfig, Config, ExportConfig, QueryConfig};
use auditx_common::embedded_s3::EmbeddedS3;
use auditx_common::queue::{MemoryQueue, RabbitQueue};
use auditx_common::s3::ObjectStore;
use auditx_common::state::{MemoryStore, RedisStore};
use auditx_lake::audit_trail::generate::{generate_to_lake, GenerateSpec};
use auditx_proto::Topology;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const JWT_SECRET: &str = "sandbox-jwt-secret";

/// Which state store and queue the sandbox runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adapters {
    /// Redis and RabbitMQ on loopback (AUDITX_TEST_REDIS_URL / AUDITX_TEST_AMQP_URL).
    Real,
    /// The embedded default's in-process store and queue.
    InProcess,
}

#[derive(Clone, Debug)]
pub struct SandboxOptions {
    pub adapters: Adapters,
    pub workers: usize,
    pub max_rows_per_file: u64,
    pub chunk_rows: u64,
    pub offset_stride: u32,
    pub row_group_rows: usize,
    /// Start the API and scheduler (false: only the backends, for tests
    /// that run the roles as separate processes).
    pub start_roles: bool,
    /// Data query limits.
    pub query: QueryConfig,
    /// The API's edge limits (rates, timeouts, connection bounds, sizes).
    pub api: ApiConfig,
    /// PENDING exports one tenant may have.
    pub max_pending_per_tenant: u32,
    /// How long ended exports are kept.
    pub retention_secs: u64,
    /// The task queue's `x-delivery-limit` (small, so crash loops
    /// dead-letter quickly in tests).
    pub delivery_limit: u32,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            adapters: Adapters::Real,
            workers: 2,
            max_rows_per_file: 5_000_000,
            chunk_rows: 5_000,
            offset_stride: 100,
            row_group_rows: 2_000,
            start_roles: true,
            query: QueryConfig::default(),
            api: ApiConfig::default(),
            max_pending_per_tenant: ExportConfig::default().max_pending_per_tenant,
            retention_secs: ExportConfig::default().retention_secs,
            delivery_limit: 5,
        }
    }
}

pub fn redis_url() -> String {
    std::env::var("AUDITX_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

pub fn amqp_url() -> String {
    std::env::var("AUDITX_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub struct Sandbox {
    /// Base URL of the API, e.g. `http://127.0.0.1:40123` (empty if roles not started).
    pub api: String,
    pub config: Arc<Config>,
    pub backends: Backends,
    pub s3: EmbeddedS3,
    rabbit: Option<Arc<RabbitQueue>>,
    shutdown: CancellationToken,
    roles: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl Sandbox {
    pub async fn start(options: SandboxOptions) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let mut config = Config {
            jwt_secret: Some(JWT_SECRET.into()),
            ..Config::default()
        };
        config.rabbitmq.prefix = format!("auditx-test-{unique}");
        config.rabbitmq.url = amqp_url();
        config.rabbitmq.delivery_limit = options.delivery_limit;
        config.redis.prefix = format!("auditx-test-{unique}:");
        config.redis.url = redis_url();
        config.export.max_rows_per_file = options.max_rows_per_file;
        config.export.chunk_rows = options.chunk_rows;
        config.export.offset_stride = options.offset_stride;
        config.export.lease_ttl_secs = 3;
        config.export.poll_interval_ms = 100;
        config.ingest.row_group_rows = options.row_group_rows;
        config.ingest.table_row_group_rows = options.row_group_rows;
        config.query = options.query.clone();
        config.api = options.api.clone();
        config.export.max_pending_per_tenant = options.max_pending_per_tenant;
        config.export.retention_secs = options.retention_secs;
        config.telemetry.log_format = "text".into();
        let s3 = runtime::embedded_s3(
            &mut config,
            &dir.path().join("data"),
            "127.0.0.1:0".parse()?,
            "--s3-listen",
        )
        .await?;
        let store = ObjectStore::new(&config.s3);
        let topology = Topology::new(config.rabbitmq.prefix.clone());
        let (backends, rabbit) = match options.adapters {
            Adapters::Real => {
                let state = RedisStore::connect(&config.redis.url, &config.redis.prefix).await?;
                let queue = Arc::new(RabbitQueue::connect(&config.rabbitmq, topology).await?);
                (
                    Backends {
                        state: Arc::new(state),
                        queue: queue.clone(),
                        store,
                    },
                    Some(queue),
                )
            }
            Adapters::InProcess => (
                Backends {
                    state: Arc::new(MemoryStore::new()),
                    queue: Arc::new(MemoryQueue::new(topology, config.rabbitmq.delivery_limit)),
                    store,
                },
                None,
            ),
        };
        let config = Arc::new(config);
        let shutdown = CancellationToken::new();
        let mut api = String::new();
        let mut roles = None;
        if options.start_roles {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            api = format!("http://{}", listener.local_addr()?);
            roles = Some(tokio::spawn(runtime::run_all_in_one(
                config.clone(),
                backends.clone(),
                listener,
                options.workers,
                shutdown.clone(),
            )));
        }
        Ok(Self {
            api,
            config,
            backends,
            s3,
            rabbit,
            shutdown,
            roles,
            _dir: dir,
        })
    }

    /// A bearer token for `tenant`.
    pub fn token(&self, tenant: &str) -> String {
        auditx::commands::tools::mint(JWT_SECRET, tenant, &[], &[], 1).expect("token")
    }

    /// An API client acting for `tenant`.
    pub fn client(&self, tenant: &str) -> ApiClient {
        ApiClient::new(&self.api, &self.token(tenant))
    }

    /// Writes generated rows into the lake.
    pub async fn generate(&self, spec: &GenerateSpec, file_rows: usize) -> anyhow::Result<()> {
        generate_to_lake(
            &self.backends.store,
            &self.config.s3.lake_bucket,
            spec,
            file_rows,
            self.config.ingest.row_group_rows,
            &|_| {},
        )
        .await
        .context("generating lake data")?;
        Ok(())
    }

    /// Downloads a URL with a plain GET (as curl would).
    pub async fn download(&self, url: &str) -> anyhow::Result<Vec<u8>> {
        let response = reqwest::get(url).await?;
        anyhow::ensure!(
            response.status().is_success(),
            "GET {url}: {}",
            response.status()
        );
        Ok(response.bytes().await?.to_vec())
    }

    /// Every object key under `prefix` in the export bucket.
    pub async fn export_objects(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        let objects = self
            .backends
            .store
            .list(&self.config.s3.export_bucket, prefix)
            .await?;
        Ok(objects.into_iter().map(|o| o.key).collect())
    }

    /// Stops the roles and removes the sandbox's queues.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        if let Some(roles) = self.roles.take() {
            tokio::time::timeout(Duration::from_secs(30), roles)
                .await
                .context("roles did not stop")???;
        }
        if let Some(rabbit) = &self.rabbit {
            // The connection may be recovering from a channel the roles
            // closed on their way out: give it a moment.
            let mut attempt = 0;
            loop {
                match rabbit.delete_topology().await {
                    Err(e) if e.is_transient() && attempt < 20 => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    done => break done?,
                }
            }
        }
        Ok(())
    }
}

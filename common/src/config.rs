//! Configuration: a TOML file plus `AUDITX_` environment variables, the
//! environment winning. Nested keys use `__` in variable names, e.g.
//! `AUDITX_S3__ENDPOINT` sets `s3.endpoint`. Every setting is documented in
//! the README's configuration reference.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::tls::{ClientTls, TlsError, TlsFile};

/// Longest request target hyper itself parses (it answers a bare 414 past it).
pub const MAX_URI_BYTES: usize = 65_534;
/// Largest `api.max_header_bytes` accepted.
pub const MAX_HEADER_BYTES: usize = 1024 * 1024;

/// S3's minimum size of every multipart part but the last.
pub const S3_MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address the HTTP API (scheduler) listens on.
    pub listen: SocketAddr,
    /// HS256 secret for bearer tokens (`AUDITX_JWT_SECRET`).
    pub jwt_secret: Option<String>,
    pub auth: AuthConfig,
    pub api: ApiConfig,
    pub s3: S3Config,
    pub rabbitmq: RabbitConfig,
    pub redis: RedisConfig,
    pub export: ExportConfig,
    pub query: QueryConfig,
    pub worker: WorkerConfig,
    pub ingest: IngestConfig,
    pub telemetry: TelemetryConfig,
}

/// How bearer tokens are verified besides `jwt_secret` (HS256).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// When set, tokens must carry this `iss`.
    pub issuer: Option<String>,
    /// When set, tokens must carry this `aud` (or list it).
    pub audience: Option<String>,
    /// A JWKS file of RS256 / ES256 public keys, chosen by the token's
    /// `kid`; re-read when it changes, so keys rotate without a restart.
    pub jwks_file: Option<PathBuf>,
    /// An identity provider's JWKS endpoint (`http://` or `https://`),
    /// instead of `jwks_file`: fetched, cached, and fetched again when a
    /// token names a `kid` the cached keys lack.
    pub jwks_url: Option<String>,
    /// Seconds between re-reads of the JWKS file even when its mtime and
    /// size look unchanged, or between fetches of `jwks_url` (done in the
    /// background, so rotated-out keys stop being accepted).
    pub jwks_refresh_secs: u64,
    /// Fewest seconds between two fetches of `jwks_url` (and between
    /// attempts after a failed one): tokens naming unknown keys cannot make
    /// the scheduler hammer the identity provider.
    pub jwks_min_refetch_secs: u64,
}

/// Limits of the HTTP API's edge: per-tenant create rates, slow clients,
/// connection and request bounds, request line and header sizes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiConfig {
    /// Sustained create calls (export create + query submit) per second
    /// and tenant, fleet-wide (counted in the state store).
    pub create_rate_per_sec: f64,
    /// Create calls a tenant may make at once before the rate applies.
    pub create_burst: u32,
    /// A connection whose request headers are not complete after this long
    /// is closed.
    pub header_read_timeout_secs: u64,
    /// A request (body included) not answered after this long gets a 408.
    pub request_timeout_secs: u64,
    /// Open connections per replica; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Requests being handled at once per replica; past it a 503.
    pub max_in_flight: usize,
    /// Longest request target (path and query) accepted; past it a 414.
    pub max_uri_bytes: usize,
    /// Most bytes of request header fields (names and values) accepted;
    /// past it a 431.
    pub max_header_bytes: usize,
    /// Seconds a client is told to wait (`Retry-After`) after a 503.
    pub retry_after_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct S3Config {
    /// Endpoint URL; unset means AWS's regional endpoint.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most
    /// S3-compatible servers.
    pub force_path_style: bool,
    /// Bucket holding the audit lake (Parquet).
    pub lake_bucket: String,
    /// Bucket receiving export files, manifests and staging objects.
    pub export_bucket: String,
    /// Lifetime of presigned download URLs (seconds, ≤ 7 days).
    pub presign_expiry_secs: u64,
    /// Create the buckets at start-up if they are missing.
    pub create_buckets: bool,
    /// Hash every uploaded body into its SigV4 signature. Off (the
    /// default), uploads are signed with `UNSIGNED-PAYLOAD`, which AWS S3
    /// and S3-compatible servers accept: one SHA-256 pass less per byte;
    /// TLS protects the body in transit.
    pub sign_payload: bool,
    /// Attempts of every S3 call, the first included, when it fails on
    /// network trouble, throttling or a 5xx: the one retry policy of S3
    /// access (the SDK's calls and the query engine's reads alike), with
    /// jittered backoff from 100 ms up to 5 s. 1 turns retries off.
    pub max_attempts: u32,
    /// PEM bundle of the CA(s) that signed the S3 endpoint's certificate
    /// (an S3-compatible server with a private CA), trusted besides the
    /// system's CAs by every S3 client: the SDK's, the query engine's.
    pub ca_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RabbitConfig {
    pub url: String,
    /// Prefix of every queue and exchange name.
    pub prefix: String,
    /// The broker's safety net (`x-delivery-limit` of the task queue):
    /// returns of one task, for any reason, before the broker dead-letters
    /// it and its job fails. Broker restarts and connection failures return
    /// every unacknowledged task and count here too, so keep it high; task
    /// failures are counted by `worker.max_task_attempts`.
    pub delivery_limit: u32,
    /// With an `amqps://` URL: PEM bundle of the CA(s) that signed the
    /// broker's certificate, trusted besides the system's CAs.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) presented to a broker that asks for
    /// one (mutual TLS, `ssl_options.verify = verify_peer`).
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file` (unencrypted PKCS#8, RSA or EC).
    pub client_key_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port/db`. With `sentinel` set, only
    /// its user, password and db are used: the host is the one the
    /// sentinels name as the primary.
    pub url: String,
    /// Prefix of every key.
    pub prefix: String,
    /// Redis Sentinel: find the primary through these sentinels, and find
    /// it again after a failover.
    pub sentinel: Option<SentinelConfig>,
    /// With a `rediss://` URL: PEM bundle of the CA(s) that signed the
    /// server's certificate, trusted instead of the system's CAs.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) presented to a server that asks for
    /// one (mutual TLS, `tls-auth-clients yes`).
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file` (unencrypted PKCS#8, RSA or EC).
    pub client_key_file: Option<PathBuf>,
}

/// The sentinels watching the Redis primary of the state store.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SentinelConfig {
    /// The name the sentinels monitor the primary under (`sentinel monitor
    /// <master_name> ...`).
    pub master_name: String,
    /// `host:port` of each sentinel (usually three or more).
    pub addresses: Vec<String>,
    /// Password of the sentinels themselves (`requirepass` of the
    /// sentinels), if they need one.
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ExportConfig {
    /// Most data rows in one output file.
    pub max_rows_per_file: u64,
    /// Target rows per render chunk (bounds worker memory).
    pub chunk_rows: u64,
    /// Multipart part size in bytes (every part but a file's last).
    pub part_size: u64,
    /// Render tasks of one job queued or running at once, so one huge
    /// export cannot starve other tenants.
    pub max_chunks_in_flight: u32,
    /// Per-tenant lease lifetime; a dead scheduler's jobs are taken over
    /// after at most this long.
    pub lease_ttl_secs: u64,
    /// Rows between byte offsets reported by render tasks; files end within
    /// this many rows of `max_rows_per_file`.
    pub offset_stride: u32,
    /// How often a job's driver looks for new results besides being woken.
    pub poll_interval_ms: u64,
    /// PENDING exports one tenant may have; past it a create answers 429.
    pub max_pending_per_tenant: u32,
    /// Seconds a client is told to wait (`Retry-After`) after that 429.
    pub retry_after_secs: u64,
    /// A render or assemble task with no report this long after it was
    /// sent is sent again (a lost message or report must not stall a job).
    pub task_timeout_secs: u64,
    /// An ended export's record and files are removed this long after it
    /// ended (default 30 days; presigned URLs stop working then too); so
    /// are an ended data query's record and result object.
    pub retention_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct QueryConfig {
    /// Data queries of one tenant running at once.
    pub max_running_per_tenant: u32,
    /// Data queries of one tenant waiting to run; past running + queued a
    /// submit answers 429.
    pub max_queued_per_tenant: u32,
    /// A query still running after this long fails.
    pub time_limit_secs: u64,
    /// Memory one query's operators may use (sorts and aggregations spill
    /// to disk before failing; hash-join build sides cannot).
    pub memory_limit_mb: u64,
    /// Seconds a client is told to wait (`Retry-After`) after a 429.
    pub retry_after_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerConfig {
    /// Tasks one worker process runs at once (and its prefetch).
    pub concurrency: u16,
    /// Address of the worker's health and metrics endpoint.
    pub listen: SocketAddr,
    /// Deliveries of one task that may end in a transient failure (after
    /// the worker's own retries) before the task fails its job. Only such
    /// failures count: a task returned by a broker or connection failure
    /// does not.
    pub max_task_attempts: u32,
    /// Threads of the process's data query pool (DataFusion runs there,
    /// never on the threads serving the API, leases and the task queue);
    /// 0, the default, means one per core.
    pub query_threads: usize,
    /// Memory the data queries running in this process may hold together
    /// (each also within `query.memory_limit_mb`): past it, operators that
    /// can spill do, and a query that still needs more fails and is retried
    /// once others have ended.
    pub query_memory_mb: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct IngestConfig {
    /// Largest request body accepted, after gzip decompression.
    pub max_body_bytes: usize,
    /// Rows per Parquet row group of the meter audit trail written by
    /// ingest and `generate` (what export chunks are cut from).
    pub row_group_rows: usize,
    /// Rows per Parquet row group of the audit tables (data queries'
    /// tables) written by ingest and `generate`. Larger than the audit
    /// trail's: a lookup reads one bloom filter per row group, and scans
    /// and aggregates pay a cost per row group (docs/performance.md).
    pub table_row_group_rows: usize,
    /// Ingest calls (meter entries, runs, table rows) one scheduler
    /// decodes, parses and writes at once; each may hold up to about three
    /// times `max_body_bytes`, and none may starve export driving.
    pub max_concurrent: usize,
    /// How long a call waits for one of those slots before it is answered
    /// 429 with `Retry-After`.
    pub max_wait_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetryConfig {
    /// `auto` (text on a terminal, JSON otherwise), `json` or `text`.
    pub log_format: String,
    /// `tracing` filter directive, e.g. `info,auditx=debug`; `RUST_LOG` wins.
    pub log_level: String,
    /// OTLP/HTTP endpoint for traces, e.g. `http://otel-collector:4318`.
    pub otlp_endpoint: Option<String>,
    pub service_name: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".parse().expect("valid address"),
            jwt_secret: None,
            auth: AuthConfig::default(),
            api: ApiConfig::default(),
            s3: S3Config::default(),
            rabbitmq: RabbitConfig::default(),
            redis: RedisConfig::default(),
            export: ExportConfig::default(),
            query: QueryConfig::default(),
            worker: WorkerConfig::default(),
            ingest: IngestConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: None,
            audience: None,
            jwks_file: None,
            jwks_url: None,
            jwks_refresh_secs: 60,
            jwks_min_refetch_secs: 30,
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            create_rate_per_sec: 5.0,
            create_burst: 50,
            header_read_timeout_secs: 10,
            request_timeout_secs: 120,
            max_connections: 1024,
            max_in_flight: 256,
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 32 * 1024,
            retry_after_secs: 1,
        }
    }
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: "us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            force_path_style: true,
            lake_bucket: "auditx-lake".into(),
            export_bucket: "auditx-exports".into(),
            presign_expiry_secs: 3600,
            create_buckets: false,
            sign_payload: false,
            max_attempts: 4,
            ca_file: None,
        }
    }
}

impl Default for RabbitConfig {
    fn default() -> Self {
        Self {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            prefix: "auditx".into(),
            delivery_limit: 100,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
        }
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/".into(),
            prefix: "auditx:".into(),
            sentinel: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
        }
    }
}

impl Default for ExportConfig {
    fn default() -> Self {
        Self {
            max_rows_per_file: 5_000_000,
            chunk_rows: 50_000,
            part_size: 8 * 1024 * 1024,
            max_chunks_in_flight: 8,
            lease_ttl_secs: 15,
            offset_stride: 1000,
            poll_interval_ms: 250,
            max_pending_per_tenant: 100,
            retry_after_secs: 30,
            retention_secs: 30 * 24 * 3600,
            task_timeout_secs: 900,
        }
    }
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            max_running_per_tenant: 5,
            max_queued_per_tenant: 10,
            time_limit_secs: 1800,
            memory_limit_mb: 256,
            retry_after_secs: 5,
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 2,
            listen: "0.0.0.0:9090".parse().expect("valid address"),
            max_task_attempts: 5,
            query_threads: 0,
            query_memory_mb: 256,
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024 * 1024,
            row_group_rows: 65_536,
            table_row_group_rows: 262_144,
            max_concurrent: 2,
            max_wait_ms: 5_000,
        }
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: "auto".into(),
            log_level: "info".into(),
            otlp_endpoint: None,
            service_name: "auditx".into(),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration: {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

impl From<TlsError> for ConfigError {
    fn from(error: TlsError) -> Self {
        ConfigError::Invalid {
            field: error.setting,
            message: error.message,
        }
    }
}

impl S3Config {
    /// `s3.ca_file`, read and checked.
    pub fn tls(&self) -> Result<ClientTls, TlsError> {
        ClientTls::load(
            self.ca_file.as_deref().map(|path| TlsFile {
                setting: "s3.ca_file",
                path,
            }),
            ("", None),
            ("", None),
        )
    }
}

impl RabbitConfig {
    /// The `rabbitmq.*` TLS files, read and checked.
    pub fn tls(&self) -> Result<ClientTls, TlsError> {
        ClientTls::load(
            self.ca_file.as_deref().map(|path| TlsFile {
                setting: "rabbitmq.ca_file",
                path,
            }),
            (
                "rabbitmq.client_cert_file",
                self.client_cert_file.as_deref(),
            ),
            ("rabbitmq.client_key_file", self.client_key_file.as_deref()),
        )
    }
}

impl RedisConfig {
    /// The `redis.*` TLS files, read and checked.
    pub fn tls(&self) -> Result<ClientTls, TlsError> {
        ClientTls::load(
            self.ca_file.as_deref().map(|path| TlsFile {
                setting: "redis.ca_file",
                path,
            }),
            ("redis.client_cert_file", self.client_cert_file.as_deref()),
            ("redis.client_key_file", self.client_key_file.as_deref()),
        )
    }
}

impl Config {
    /// Loads defaults, then `file` (if given), then `AUDITX_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        let config: Config = figment
            .merge(Env::prefixed("AUDITX_").split("__"))
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks settings that would otherwise fail late (e.g. on real S3).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, message: &str| {
            Err(ConfigError::Invalid {
                field,
                message: message.to_owned(),
            })
        };
        if !["auto", "json", "text"].contains(&self.telemetry.log_format.as_str()) {
            return invalid("telemetry.log_format", "must be auto, json or text");
        }
        if self.export.part_size < S3_MIN_PART_SIZE {
            return invalid(
                "export.part_size",
                "must be at least 5 MiB (5242880), S3's minimum",
            );
        }
        if self.export.max_rows_per_file == 0 {
            return invalid("export.max_rows_per_file", "must be positive");
        }
        if self.export.task_timeout_secs == 0 {
            return invalid("export.task_timeout_secs", "must be positive");
        }
        if self.export.retention_secs == 0 {
            return invalid("export.retention_secs", "must be positive");
        }
        if self.export.chunk_rows == 0 {
            return invalid("export.chunk_rows", "must be positive");
        }
        if self.export.offset_stride == 0 {
            return invalid("export.offset_stride", "must be positive");
        }
        if self.export.max_chunks_in_flight == 0 {
            return invalid("export.max_chunks_in_flight", "must be positive");
        }
        if !(1..=10).contains(&self.s3.max_attempts) {
            return invalid("s3.max_attempts", "must be between 1 and 10");
        }
        if self.s3.presign_expiry_secs == 0 || self.s3.presign_expiry_secs > 7 * 24 * 3600 {
            return invalid(
                "s3.presign_expiry_secs",
                "must be between 1 and 604800 (7 days)",
            );
        }
        if self.query.max_running_per_tenant == 0 {
            return invalid("query.max_running_per_tenant", "must be positive");
        }
        if self.query.time_limit_secs == 0 {
            return invalid("query.time_limit_secs", "must be positive");
        }
        if self.worker.query_memory_mb == 0 {
            return invalid("worker.query_memory_mb", "must be positive");
        }
        if self.query.memory_limit_mb == 0 {
            return invalid("query.memory_limit_mb", "must be positive");
        }
        if self.auth.jwks_refresh_secs == 0 {
            return invalid("auth.jwks_refresh_secs", "must be positive");
        }
        if let Some(url) = &self.auth.jwks_url {
            if self.auth.jwks_file.is_some() {
                return invalid(
                    "auth.jwks_url",
                    "set auth.jwks_file or auth.jwks_url, not both",
                );
            }
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return invalid("auth.jwks_url", "must be an http:// or https:// URL");
            }
        }
        if self.auth.jwks_min_refetch_secs == 0 {
            return invalid("auth.jwks_min_refetch_secs", "must be positive");
        }
        if !(self.api.create_rate_per_sec > 0.0 && self.api.create_rate_per_sec.is_finite()) {
            return invalid("api.create_rate_per_sec", "must be a positive number");
        }
        if self.api.create_burst == 0 {
            return invalid("api.create_burst", "must be positive");
        }
        if self.api.header_read_timeout_secs == 0 {
            return invalid("api.header_read_timeout_secs", "must be positive");
        }
        if self.api.request_timeout_secs == 0 {
            return invalid("api.request_timeout_secs", "must be positive");
        }
        if self.api.max_connections == 0 {
            return invalid("api.max_connections", "must be positive");
        }
        if self.api.max_in_flight == 0 {
            return invalid("api.max_in_flight", "must be positive");
        }
        if !(256..=MAX_URI_BYTES).contains(&self.api.max_uri_bytes) {
            return invalid("api.max_uri_bytes", "must be between 256 and 65534");
        }
        if !(1024..=MAX_HEADER_BYTES).contains(&self.api.max_header_bytes) {
            return invalid("api.max_header_bytes", "must be between 1024 and 1048576");
        }
        if self.export.max_pending_per_tenant == 0 {
            return invalid("export.max_pending_per_tenant", "must be positive");
        }
        if self.worker.concurrency == 0 {
            return invalid("worker.concurrency", "must be positive");
        }
        if self.worker.max_task_attempts == 0 {
            return invalid("worker.max_task_attempts", "must be positive");
        }
        if self.rabbitmq.delivery_limit == 0 {
            return invalid("rabbitmq.delivery_limit", "must be positive");
        }
        if let Some(sentinel) = &self.redis.sentinel {
            if sentinel.master_name.is_empty() {
                return invalid("redis.sentinel.master_name", "must not be empty");
            }
            if sentinel.addresses.is_empty() {
                return invalid(
                    "redis.sentinel.addresses",
                    "must name at least one sentinel (host:port)",
                );
            }
            if let Some(bad) = sentinel.addresses.iter().find(|a| !is_host_port(a)) {
                return invalid(
                    "redis.sentinel.addresses",
                    &format!("{bad:?} is not host:port"),
                );
            }
        }
        if self.ingest.max_concurrent == 0 {
            return invalid("ingest.max_concurrent", "must be positive");
        }
        self.validate_tls()
    }

    /// Reads every TLS file (a missing file or a bad certificate is named
    /// now, not at the first connection) and checks that the files go with
    /// a TLS URL.
    fn validate_tls(&self) -> Result<(), ConfigError> {
        let invalid = |field, message: &str| {
            Err(ConfigError::Invalid {
                field,
                message: message.to_owned(),
            })
        };
        if !self.redis.tls()?.is_default() && !self.redis.url.starts_with("rediss://") {
            return invalid(
                "redis.url",
                "must start with rediss:// (TLS) when redis.ca_file or redis.client_cert_file is set",
            );
        }
        if !self.rabbitmq.tls()?.is_default() && !self.rabbitmq.url.starts_with("amqps://") {
            return invalid(
                "rabbitmq.url",
                "must start with amqps:// (TLS) when rabbitmq.ca_file or rabbitmq.client_cert_file is set",
            );
        }
        let s3_tls = self.s3.tls()?;
        let plain_endpoint = self
            .s3
            .endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        if !s3_tls.is_default() && plain_endpoint {
            return invalid(
                "s3.endpoint",
                "must start with https:// (TLS) when s3.ca_file is set",
            );
        }
        Ok(())
    }

    /// The stride actually used: never more than a file's rows, so every
    /// file can end on a reported row offset.
    pub fn effective_offset_stride(&self) -> u32 {
        let max = self.export.max_rows_per_file.min(u32::MAX as u64) as u32;
        self.export.offset_stride.min(max).max(1)
    }
}

/// `host:port` with a non-empty host and a port number.
fn is_host_port(address: &str) -> bool {
    address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

#[cfg(test)]
// figment's test jail returns its own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment_wins() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "auditx.toml",
                "[s3]\nendpoint = \"http://file:9000\"\nlake_bucket = \"from-file\"\n",
            )?;
            jail.set_env("AUDITX_S3__ENDPOINT", "http://env:9000");
            let config = Config::load(Some(Path::new("auditx.toml"))).expect("loads");
            assert_eq!(config.s3.endpoint.as_deref(), Some("http://env:9000"));
            assert_eq!(config.s3.lake_bucket, "from-file");
            assert_eq!(config.export.max_rows_per_file, 5_000_000);
            Ok(())
        });
    }

    #[test]
    fn undersized_parts_are_rejected_with_the_setting_named() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("AUDITX_EXPORT__PART_SIZE", "1024");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("export.part_size"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn tls_files_are_read_at_load_and_named_when_missing() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("AUDITX_REDIS__URL", "rediss://cache:6380/");
            jail.set_env("AUDITX_REDIS__CA_FILE", "/no/such/ca.pem");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(
                err.starts_with("configuration: redis.ca_file: cannot read /no/such/ca.pem: "),
                "{err}"
            );
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("AUDITX_RABBITMQ__CLIENT_KEY_FILE", "/no/such/client.key");
            let err = Config::load(None).unwrap_err().to_string();
            assert_eq!(
                err,
                "configuration: rabbitmq.client_key_file: set, but rabbitmq.client_cert_file is not"
            );
            Ok(())
        });
    }

    #[test]
    fn sentinels_come_from_the_environment_and_are_checked() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("AUDITX_REDIS__SENTINEL__MASTER_NAME", "auditx");
            jail.set_env(
                "AUDITX_REDIS__SENTINEL__ADDRESSES",
                "[\"10.0.0.1:26379\", \"sentinel-2:26379\"]",
            );
            let config = Config::load(None).expect("loads");
            let sentinel = config.redis.sentinel.expect("sentinel");
            assert_eq!(sentinel.master_name, "auditx");
            assert_eq!(sentinel.addresses, ["10.0.0.1:26379", "sentinel-2:26379"]);
            jail.set_env("AUDITX_REDIS__SENTINEL__ADDRESSES", "[\"sentinel-2\"]");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(
                err.contains("redis.sentinel.addresses: \"sentinel-2\" is not host:port"),
                "{err}"
            );
            Ok(())
        });
    }
}

//! Assembling the roles into processes. The embedded default and the
//! distributed mode run the same code; only the adapters behind the state
//! store, the queue and the S3 endpoint differ.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use auditx_common::config::Config;
use auditx_common::embedded_s3::EmbeddedS3;
use auditx_common::queue::{MemoryQueue, RabbitQueue, TaskQueue};
use auditx_common::readiness::Dependencies;
use auditx_common::s3::ObjectStore;
use auditx_common::state::{MemoryStore, RedisStore, StateStore};
use auditx_common::tls::redact_url;
use auditx_proto::Topology;
use auditx_scheduler::context::Services;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Access key of the embedded S3 endpoint (the secret is per data folder).
pub const EMBEDDED_S3_ACCESS_KEY: &str = "auditx-embedded";

/// The three I/O boundaries a process works with.
#[derive(Clone)]
pub struct Backends {
    pub state: Arc<dyn StateStore>,
    pub queue: Arc<dyn TaskQueue>,
    pub store: ObjectStore,
}

/// The embedded default's backends; the S3 endpoint stops when dropped.
pub struct Embedded {
    pub s3: EmbeddedS3,
    pub backends: Backends,
}

/// Starts the embedded S3 endpoint on `<data_dir>/s3`, points `config.s3`
/// at it and creates the buckets.
pub async fn embedded_s3(
    config: &mut Config,
    data_dir: &Path,
    s3_listen: SocketAddr,
    flag: &str,
) -> anyhow::Result<EmbeddedS3> {
    let secret = crate::secrets::embedded_s3_secret(data_dir)?;
    let s3 = EmbeddedS3::start(
        &data_dir.join("s3"),
        s3_listen,
        EMBEDDED_S3_ACCESS_KEY,
        &secret,
    )
    .await
    .map_err(|error| taken_or(error, s3_listen, flag))
    .with_context(|| format!("starting the embedded s3 endpoint on {s3_listen}"))?;
    config.s3 = s3.client_config(&config.s3);
    ensure_buckets(&ObjectStore::new(&config.s3), config).await?;
    Ok(s3)
}

/// Listens on `addr`; a taken address is said as such, with the option
/// (`flag`) that picks another.
pub async fn bind(addr: SocketAddr, flag: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|error| taken_or(error, addr, flag))
        .with_context(|| format!("listening on {addr}"))
}

/// An address already in use, told with the option that picks another;
/// any other error as it is.
fn taken_or(error: std::io::Error, addr: SocketAddr, flag: &str) -> anyhow::Error {
    if error.kind() == std::io::ErrorKind::AddrInUse {
        anyhow::anyhow!(
            "{addr} is already in use by another process: stop it, or pick another address with {flag}"
        )
    } else {
        error.into()
    }
}

/// In-process state store (kept in `<data_dir>/state`) and queue, embedded
/// S3: no external service. Jobs survive a restart: the store is read back
/// and each running job's driver re-dispatches what has no report yet.
pub async fn embedded(
    config: &mut Config,
    data_dir: &Path,
    s3_listen: SocketAddr,
) -> anyhow::Result<Embedded> {
    let state_dir = data_dir.join("state");
    let state = MemoryStore::open(&state_dir)
        .with_context(|| format!("opening the state store in {}", state_dir.display()))?;
    let s3 = embedded_s3(config, data_dir, s3_listen, "--s3-listen").await?;
    let topology = Topology::new(config.rabbitmq.prefix.clone());
    let backends = Backends {
        state: Arc::new(state),
        queue: Arc::new(MemoryQueue::new(topology, config.rabbitmq.delivery_limit)),
        store: ObjectStore::new(&config.s3),
    };
    Ok(Embedded { s3, backends })
}

/// Redis, RabbitMQ and S3 as configured.
pub async fn distributed(config: &Config) -> anyhow::Result<Backends> {
    let redis = &config.redis;
    let state = RedisStore::open(redis).await.with_context(|| {
        let trust = trusting(redis.ca_file.as_deref(), "redis.ca_file");
        match &redis.sentinel {
            None => format!("connecting to redis at {}{trust}", redact_url(&redis.url)),
            Some(sentinel) => format!(
                "connecting to redis primary {:?} through the sentinels {}{trust}",
                sentinel.master_name,
                sentinel.addresses.join(", ")
            ),
        }
    })?;
    let topology = Topology::new(config.rabbitmq.prefix.clone());
    let queue = RabbitQueue::connect(&config.rabbitmq, topology)
        .await
        .with_context(|| {
            format!(
                "connecting to rabbitmq at {}{}",
                redact_url(&config.rabbitmq.url),
                trusting(config.rabbitmq.ca_file.as_deref(), "rabbitmq.ca_file")
            )
        })?;
    let store = ObjectStore::new(&config.s3);
    if config.s3.create_buckets {
        ensure_buckets(&store, config).await?;
    }
    Ok(Backends {
        state: Arc::new(state),
        queue: Arc::new(queue),
        store,
    })
}

/// For a connection error: which CA the server's certificate was checked
/// against, when it is a configured one.
fn trusting(ca_file: Option<&Path>, setting: &str) -> String {
    ca_file.map_or_else(String::new, |path| {
        format!(
            " (over TLS, trusting the CAs of {setting} = {})",
            path.display()
        )
    })
}

async fn ensure_buckets(store: &ObjectStore, config: &Config) -> anyhow::Result<()> {
    for bucket in [&config.s3.lake_bucket, &config.s3.export_bucket] {
        store
            .ensure_bucket(bucket)
            .await
            .with_context(|| format!("creating bucket {bucket}"))?;
    }
    Ok(())
}

fn services(config: &Arc<Config>, backends: &Backends) -> Services {
    Services::new(
        config.clone(),
        backends.state.clone(),
        backends.queue.clone(),
        backends.store.clone(),
    )
}

/// A scheduler process: the HTTP API on `listener` plus the scheduling loops.
pub async fn run_scheduler(
    config: Arc<Config>,
    backends: Backends,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_roles(config, backends, Some(listener), 0, true, shutdown).await
}

/// A worker process: renders and assembles until shut down, with its
/// health and metrics endpoint on `config.worker.listen`.
pub async fn run_worker(
    config: Arc<Config>,
    backends: Backends,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut set = JoinSet::new();
    let dependencies = Dependencies {
        queue: backends.queue.clone(),
        queue_name: Topology::new(config.rabbitmq.prefix.clone()).tasks(),
        state: backends.state.clone(),
        store: backends.store.clone(),
        bucket: config.s3.export_bucket.clone(),
    };
    set.spawn(auditx_worker::serve_health(
        config.worker.listen,
        dependencies,
        shutdown.clone(),
    ));
    set.spawn(auditx_worker::run(
        config,
        backends.queue,
        backends.store,
        backends.state,
        shutdown.clone(),
    ));
    join_all(set, shutdown).await
}

/// API, scheduler and `workers` worker loops in one process (the embedded
/// default, and the in-process sandbox of the tests).
pub async fn run_all_in_one(
    config: Arc<Config>,
    backends: Backends,
    listener: TcpListener,
    workers: usize,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_roles(config, backends, Some(listener), workers, true, shutdown).await
}

/// `config` for a process whose own worker loops are the only ones taking
/// its tasks (the embedded default's in-process queue; not RabbitMQ, where
/// other processes' workers may take them too): a job keeps at most one
/// render task fewer in flight than the loops have task slots (and at
/// least two). More cannot render faster on the same cores: they wait in
/// the queue ahead of the stages that assemble and hash the job's file, or
/// render side by side, each holding its chunk's rows and bytes. With eight in flight on four slots, a 5 M-row
/// JSON Lines export finished hashing its file 0.8 s after its last chunk
/// and peaked at 204–209 MiB; with three, 0.2 s and 173–174 MiB, in the
/// same time (`docs/performance.md`).
pub fn fit_to_local_workers(config: &Config, workers: usize) -> Config {
    let mut config = config.clone();
    let slots = workers.saturating_mul(usize::from(config.worker.concurrency));
    let fit = u32::try_from(slots.saturating_sub(1).max(2)).unwrap_or(u32::MAX);
    let export = &mut config.export;
    export.max_chunks_in_flight = export.max_chunks_in_flight.min(fit);
    config
}

/// Runs the chosen roles until `shutdown` fires or one of them fails (which
/// then stops the others).
pub async fn run_roles(
    config: Arc<Config>,
    backends: Backends,
    api: Option<TcpListener>,
    workers: usize,
    scheduler: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let services = services(&config, &backends);
    let mut set = JoinSet::new();
    if let Some(listener) = api {
        set.spawn(auditx_scheduler::api::serve_on(
            listener,
            services.clone(),
            shutdown.clone(),
        ));
    }
    if scheduler {
        set.spawn(auditx_scheduler::runner::run(
            services.clone(),
            shutdown.clone(),
        ));
    }
    for _ in 0..workers {
        set.spawn(auditx_worker::run(
            config.clone(),
            backends.queue.clone(),
            backends.store.clone(),
            backends.state.clone(),
            shutdown.clone(),
        ));
    }
    join_all(set, shutdown).await
}

async fn join_all(
    mut set: JoinSet<anyhow::Result<()>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut first_error = None;
    while let Some(joined) = set.join_next().await {
        let result = joined.map_err(anyhow::Error::from).and_then(|r| r);
        if let Err(err) = result {
            tracing::error!(error = %format!("{err:#}"), "a role stopped with an error, shutting down");
            shutdown.cancel();
            first_error.get_or_insert(err);
        } else if !shutdown.is_cancelled() {
            tracing::warn!("a role stopped before shutdown, shutting down");
            shutdown.cancel();
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Cancels `token` on SIGTERM or Ctrl-C (Kubernetes stops pods with SIGTERM).
pub fn shutdown_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing a SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested, finishing in-flight work");
        token.cancel();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_flight(configured: u32, workers: usize, concurrency: u16) -> u32 {
        let mut config = Config::default();
        config.export.max_chunks_in_flight = configured;
        config.worker.concurrency = concurrency;
        fit_to_local_workers(&config, workers)
            .export
            .max_chunks_in_flight
    }

    #[test]
    fn a_job_leaves_the_local_loops_a_slot_for_assembly() {
        // The embedded default: two workers of two loops each.
        assert_eq!(in_flight(8, 2, 2), 3);
        // Never below two, so that one chunk renders while the next is read.
        assert_eq!(in_flight(8, 1, 1), 2);
        assert_eq!(in_flight(8, 1, 2), 2);
        // Enough loops: the configured bound holds, as does a lower one.
        assert_eq!(in_flight(8, 8, 2), 8);
        assert_eq!(in_flight(1, 2, 2), 1);
    }
}

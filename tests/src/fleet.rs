//! The one way tests run the `auditx` binary as OS processes: a
//! distributed fleet — `auditx scheduler` and N `auditx worker` processes
//! on the sandbox's Redis, RabbitMQ and S3 ([`Fleet::distributed`]) — or
//! one `auditx standalone` with its own data folder
//! ([`Fleet::standalone`]). Each process is killed when the fleet is
//! dropped.
//!
//! ```ignore
//! let sandbox = Sandbox::start(SandboxOptions { start_roles: false, ..Default::default() }).await?;
//! let fleet = Fleet::distributed(&sandbox).rows(300_000, 10_000).workers(2).start().await;
//! let client = fleet.client(&sandbox.token("acme"));
//! ```

use std::path::{Path, PathBuf};
use std::process::Stdio;

use auditx::client::ApiClient;
use tokio::process::{Child, Command};

use crate::processes::{
    auditx_bin, config_file, free_port, wait_healthy, wait_worker_healthy, without_s3_keys,
};
use crate::Sandbox;

/// What the fleet runs.
enum Kind<'a> {
    Distributed(&'a Sandbox),
    /// Distributed, on a configuration file of the test's own.
    Configured(PathBuf),
    Standalone(PathBuf),
}

/// How a fleet is started: see [`Fleet::distributed`] and
/// [`Fleet::standalone`].
pub struct FleetBuilder<'a> {
    kind: Kind<'a>,
    workers: usize,
    file_rows: u64,
    chunk_rows: u64,
    s3_keys: bool,
    config_edits: Vec<(String, String)>,
    env: Vec<(String, String)>,
    scheduler_env: Vec<(String, String)>,
    env_remove: Vec<String>,
    stdout: bool,
    stderr: bool,
}

/// A running `auditx worker` and the port of its health and metrics
/// endpoint.
pub struct Worker {
    pub process: Child,
    pub port: u16,
}

impl Worker {
    /// `http://127.0.0.1:<port>`: its `/healthz` and `/metrics`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Running `auditx` processes; see the module's documentation.
pub struct Fleet {
    /// The API's port.
    pub port: u16,
    /// The API's base URL, `http://127.0.0.1:<port>`.
    pub api: String,
    /// The roles' configuration file (distributed), or the standalone data
    /// folder.
    pub config: PathBuf,
    /// `auditx scheduler` (distributed) or `auditx standalone`.
    pub scheduler: Child,
    /// The `auditx worker` processes (none for standalone).
    pub workers: Vec<Worker>,
    /// The port of standalone's embedded S3 endpoint.
    pub s3_port: Option<u16>,
    launch: Launch,
    _dir: Option<tempfile::TempDir>,
}

/// How the fleet's processes are started.
struct Launch {
    /// Standalone, with its embedded S3 endpoint on this port.
    standalone: Option<u16>,
    /// The configuration file, or the standalone data folder.
    config: PathBuf,
    env: Vec<(String, String)>,
    scheduler_env: Vec<(String, String)>,
    env_remove: Vec<String>,
    stdout: bool,
    stderr: bool,
}

impl Fleet {
    /// `auditx scheduler` and (by default two) `auditx worker` processes
    /// on `sandbox`'s backends (a sandbox started with `start_roles:
    /// false`), configured by one file ([`config_file`]): 5,000,000-row
    /// files, 5,000-row chunks, lease TTL 3 s, JSON logs at warn.
    pub fn distributed(sandbox: &Sandbox) -> FleetBuilder<'_> {
        FleetBuilder::new(Kind::Distributed(sandbox), 2)
    }

    /// Like [`Fleet::distributed`], on a configuration file of the test's
    /// own (its `listen` and `worker.listen` are overridden with free
    /// ports; [`FleetBuilder::rows`] and the S3 and config edits do not
    /// apply).
    pub fn configured(config: impl AsRef<Path>) -> FleetBuilder<'static> {
        FleetBuilder::new(Kind::Configured(config.as_ref().to_owned()), 2)
    }

    /// `auditx standalone --data-dir <data>` on free ports (API and
    /// embedded S3), logs at warn.
    pub fn standalone(data: impl AsRef<Path>) -> FleetBuilder<'static> {
        FleetBuilder::new(Kind::Standalone(data.as_ref().to_owned()), 0)
    }

    /// An API client acting with `token`.
    pub fn client(&self, token: &str) -> ApiClient {
        ApiClient::new(&self.api, token)
    }

    /// Waits until the API answers `/healthz`.
    pub async fn wait_healthy(&self) {
        wait_healthy(self.port).await;
    }

    /// Starts another `auditx worker` like the others (not added to
    /// [`Fleet::workers`]) without waiting for it: a replacement pod.
    pub fn spawn_worker(&self) -> Worker {
        self.launch.worker()
    }

    /// Kills the scheduler (SIGKILL) and waits for it to be gone.
    pub async fn kill_scheduler(&mut self) {
        self.scheduler.start_kill().unwrap();
        self.scheduler.wait().await.unwrap();
    }

    /// Starts the scheduler (or standalone) again, as it was started,
    /// after [`Fleet::kill_scheduler`], and waits until it is healthy.
    pub async fn restart_scheduler(&mut self) {
        self.scheduler = self.launch.scheduler(self.port);
        self.wait_healthy().await;
    }

    /// Another scheduler replica with its API on its own port, on the same
    /// backends; returns it and its API's base URL once healthy.
    pub async fn start_scheduler_replica(&self) -> (Child, String) {
        let port = free_port();
        let replica = self.launch.scheduler(port);
        wait_healthy(port).await;
        (replica, format!("http://127.0.0.1:{port}"))
    }
}

impl Launch {
    /// The scheduler (its API on `port`) or the standalone process.
    fn scheduler(&self, port: u16) -> Child {
        let mut command = self.command();
        if let Some(s3_port) = self.standalone {
            command
                .args(["standalone", "--data-dir"])
                .arg(&self.config)
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(["--s3-listen", &format!("127.0.0.1:{s3_port}")]);
        } else {
            command
                .args(["scheduler", "--config"])
                .arg(&self.config)
                .envs(self.scheduler_env.iter().map(|(k, v)| (k, v)))
                .env("AUDITX_LISTEN", format!("127.0.0.1:{port}"));
        }
        command
            .spawn()
            .unwrap_or_else(|e| panic!("starting auditx: {e}"))
    }

    /// A worker with its health endpoint on a port of its own.
    fn worker(&self) -> Worker {
        let port = free_port();
        let process = self
            .command()
            .args(["worker", "--config"])
            .arg(&self.config)
            .env("AUDITX_WORKER__LISTEN", format!("127.0.0.1:{port}"))
            .spawn()
            .unwrap_or_else(|e| panic!("starting auditx worker: {e}"));
        Worker { process, port }
    }

    /// `auditx` with the fleet's environment: no inherited JWT secret,
    /// logs at warn unless set otherwise.
    fn command(&self) -> Command {
        let mut command = Command::new(auditx_bin());
        command
            .env_remove("AUDITX_JWT_SECRET")
            .env("AUDITX_TELEMETRY__LOG_LEVEL", "warn");
        for key in &self.env_remove {
            command.env_remove(key);
        }
        command
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(if self.stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(if self.stderr {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .kill_on_drop(true);
        command
    }
}

impl<'a> FleetBuilder<'a> {
    fn new(kind: Kind<'a>, workers: usize) -> Self {
        Self {
            kind,
            workers,
            file_rows: 5_000_000,
            chunk_rows: 5_000,
            s3_keys: true,
            config_edits: Vec::new(),
            env: Vec::new(),
            scheduler_env: Vec::new(),
            env_remove: Vec::new(),
            stdout: false,
            stderr: false,
        }
    }

    /// How many worker processes (distributed).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Rows per export file and per chunk (distributed).
    pub fn rows(mut self, file_rows: u64, chunk_rows: u64) -> Self {
        self.file_rows = file_rows;
        self.chunk_rows = chunk_rows;
        self
    }

    /// A setting or variable for every process (`AUDITX_*` settings win
    /// over the file).
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// A setting or variable for the scheduler only.
    pub fn scheduler_env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.scheduler_env.push((key.to_owned(), value.into()));
        self
    }

    /// A variable the processes do not inherit.
    pub fn env_remove(mut self, key: &str) -> Self {
        self.env_remove.push(key.to_owned());
        self
    }

    /// No S3 keys in the configuration file: the roles use AWS's default
    /// credential chain (distributed).
    pub fn without_s3_keys(mut self) -> Self {
        self.s3_keys = false;
        self
    }

    /// `from` replaced by `to` in the configuration file (distributed),
    /// e.g. another Redis or broker URL than the sandbox's; `from` must be
    /// there.
    pub fn replace_in_config(mut self, from: &str, to: &str) -> Self {
        self.config_edits.push((from.to_owned(), to.to_owned()));
        self
    }

    /// The processes' stdout piped (to read what they print), not dropped.
    pub fn stdout_piped(mut self) -> Self {
        self.stdout = true;
        self
    }

    /// The processes' stderr (their logs) piped, not inherited.
    pub fn stderr_piped(mut self) -> Self {
        self.stderr = true;
        self
    }

    /// Starts the processes and waits until the API and every worker
    /// answer `/healthz`.
    pub async fn start(self) -> Fleet {
        let fleet = self.spawn();
        fleet.wait_healthy().await;
        for worker in &fleet.workers {
            wait_worker_healthy(worker.port).await;
        }
        fleet
    }

    /// Starts the processes without waiting for them (to read what they
    /// print while they start); [`Fleet::wait_healthy`] waits.
    pub fn spawn(self) -> Fleet {
        let port = free_port();
        let (config, dir, standalone) = match &self.kind {
            Kind::Distributed(sandbox) => {
                let dir = tempfile::tempdir().expect("a temp dir");
                let config =
                    config_file(sandbox, dir.path(), port, self.file_rows, self.chunk_rows);
                if !self.s3_keys {
                    without_s3_keys(&config);
                }
                for (from, to) in &self.config_edits {
                    let text = std::fs::read_to_string(&config).unwrap();
                    assert!(text.contains(from.as_str()), "{from:?} not in {text}");
                    std::fs::write(&config, text.replace(from.as_str(), to)).unwrap();
                }
                (config, Some(dir), None)
            }
            Kind::Configured(config) => (config.clone(), None, None),
            Kind::Standalone(data) => (data.clone(), None, Some(free_port())),
        };
        let launch = Launch {
            standalone,
            config,
            env: self.env,
            scheduler_env: self.scheduler_env,
            env_remove: self.env_remove,
            stdout: self.stdout,
            stderr: self.stderr,
        };
        let scheduler = launch.scheduler(port);
        let workers = (0..self.workers).map(|_| launch.worker()).collect();
        Fleet {
            port,
            api: format!("http://127.0.0.1:{port}"),
            config: launch.config.clone(),
            scheduler,
            workers,
            s3_port: standalone,
            launch,
            _dir: dir,
        }
    }
}

/// Runs `sql` as a data query (CSV, uncompressed) to its end within a
/// minute; the job, which completed.
pub async fn completed_query(client: &ApiClient, sql: &str) -> serde_json::Value {
    let job = client.submit_query(sql, "CSV", "NONE").await.unwrap();
    let job = client
        .wait_query(
            job["id"].as_str().unwrap(),
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(job["queryStatus"], "completed", "{job}");
    job
}

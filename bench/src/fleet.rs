//! The product as real processes of the `auditx` binary: `standalone`, or
//! an `s3` endpoint, a scheduler and worker processes; their configuration,
//! token, peak RSS and CPU time.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use auditx::client::ApiClient;
use auditx::runtime::EMBEDDED_S3_ACCESS_KEY;
use auditx::secrets;
use auditx_common::config::Config;
use tokio::process::{Child, Command};

use crate::args::BenchArgs;
use crate::lake::TENANT;

/// A child process of the product, with its name for the report.
struct Proc {
    name: String,
    child: Child,
}

impl Proc {
    fn spawn(auditx: &Path, name: &str, args: &[&str], log: &Path) -> anyhow::Result<Self> {
        let log = std::fs::File::create(log)?;
        let child = Command::new(auditx)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting auditx {}", args.join(" ")))?;
        Ok(Self {
            name: name.to_owned(),
            child,
        })
    }

    /// The pid while the process is alive; an error naming it once it exited.
    fn pid(&mut self) -> anyhow::Result<u32> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}) during the run; see its log",
                self.name
            );
        }
        self.child.id().context("the process has ended")
    }
}

/// The running product of one run.
pub struct Fleet {
    /// What the report calls the run, e.g. "embedded, 2 worker loop(s)".
    pub label: String,
    pub distributed: bool,
    pub workers: usize,
    /// The API's address (`127.0.0.1:port`).
    pub api: String,
    /// A bearer token of the bench tenant holding every scope.
    pub token: String,
    pub client: ApiClient,
    procs: Vec<Proc>,
    dir: PathBuf,
}

impl Fleet {
    /// Starts the product on the bench folder (with no exports and no job
    /// state left by an earlier run) and waits until its API is ready.
    pub async fn start(
        auditx: &Path,
        args: &BenchArgs,
        dir: &Path,
        workers: usize,
    ) -> anyhow::Result<Self> {
        clear_exports(dir)?;
        let api = free_addr()?;
        let s3 = free_addr()?;
        let prefix = format!("bench{}", uuid::Uuid::new_v4().simple());
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let data_dir = dir.to_str().context("non-UTF-8 path")?;
        let mut procs = Vec::new();
        let label;
        let config;
        if args.distributed {
            label = format!("distributed, {workers} worker process(es)");
            let endpoint = format!("http://{s3}");
            let secret = secrets::embedded_s3_secret(dir)?;
            config = write_config(dir, &api, Some((&endpoint, &secret)), args, &prefix)?;
            let file = config.to_str().context("non-UTF-8 path")?;
            procs.push(Proc::spawn(
                auditx,
                "s3 endpoint",
                &[
                    "s3",
                    "--data-dir",
                    data_dir,
                    "--listen",
                    &s3,
                    "--config",
                    file,
                ],
                &logs.join("s3.log"),
            )?);
            wait_port(&s3).await?;
            procs.push(Proc::spawn(
                auditx,
                "scheduler",
                &["scheduler", "--config", file],
                &logs.join("scheduler.log"),
            )?);
            for i in 1..=workers {
                procs.push(Proc::spawn(
                    auditx,
                    &format!("worker {i}"),
                    &["worker", "--config", file],
                    &logs.join(format!("worker-{i}.log")),
                )?);
            }
        } else {
            label = format!("embedded, {workers} worker loop(s)");
            config = write_config(dir, &api, None, args, &prefix)?;
            procs.push(Proc::spawn(
                auditx,
                "standalone",
                &[
                    "standalone",
                    "--data-dir",
                    data_dir,
                    "--listen",
                    &api,
                    "--s3-listen",
                    &s3,
                    "--workers",
                    &workers.to_string(),
                    "--config",
                    config.to_str().context("non-UTF-8 path")?,
                ],
                &logs.join("standalone.log"),
            )?);
        }
        let mut fleet = Self {
            label,
            distributed: args.distributed,
            workers,
            token: String::new(),
            client: ApiClient::new(&format!("http://{api}"), ""),
            api,
            procs,
            dir: dir.to_owned(),
        };
        fleet.wait_ready().await?;
        fleet.token = mint_token(auditx, &config).await?;
        fleet.client = ApiClient::new(&format!("http://{}", fleet.api), &fleet.token);
        Ok(fleet)
    }

    /// A folder name for the run's downloads.
    pub fn slug(&self) -> String {
        let mode = if self.distributed {
            "distributed"
        } else {
            "embedded"
        };
        format!("{mode}-{}", self.workers)
    }

    /// Peak resident set (VmHWM) of every process so far.
    pub fn peak_rss(&mut self) -> anyhow::Result<Vec<(String, u64)>> {
        let mut peaks = Vec::new();
        for proc in &mut self.procs {
            peaks.push((proc.name.clone(), peak_rss_of(proc.pid()?)?));
        }
        Ok(peaks)
    }

    /// CPU time (user + system) every process has used so far.
    pub fn cpu_seconds(&mut self) -> anyhow::Result<Vec<(String, f64)>> {
        let mut cpu = Vec::new();
        for proc in &mut self.procs {
            cpu.push((proc.name.clone(), cpu_seconds_of(proc.pid()?)?));
        }
        Ok(cpu)
    }

    /// Bytes every process has had written to the disk so far (dirtied
    /// pages, less those of files truncated or deleted before write-back).
    pub fn disk_bytes(&mut self) -> anyhow::Result<Vec<(String, u64)>> {
        let mut written = Vec::new();
        for proc in &mut self.procs {
            written.push((proc.name.clone(), disk_bytes_of(proc.pid()?)?));
        }
        Ok(written)
    }

    /// Stops every process and deletes the exports they wrote.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        for proc in &mut self.procs {
            let _ = proc.child.start_kill();
            let _ = proc.child.wait().await;
        }
        clear_exports(&self.dir)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        for _ in 0..600 {
            for proc in &mut self.procs {
                if let Some(status) = proc.child.try_wait()? {
                    bail!(
                        "{} exited ({status}) while starting; see its log in {}",
                        proc.name,
                        self.dir.join("logs").display()
                    );
                }
            }
            let ready = http.get(format!("http://{}/readyz", self.api)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the API on {} was not ready after 30 s", self.api)
    }
}

/// `auditx token` for the bench tenant, signed with the run's secret.
async fn mint_token(auditx: &Path, config: &Path) -> anyhow::Result<String> {
    let output = Command::new(auditx)
        .arg("token")
        .args(["--tenant", TENANT, "--ttl-hours", "24", "--config"])
        .arg(config)
        .stderr(Stdio::inherit())
        .output()
        .await
        .context("running auditx token")?;
    anyhow::ensure!(output.status.success(), "auditx token failed");
    let token = String::from_utf8(output.stdout)?.trim().to_owned();
    anyhow::ensure!(!token.is_empty(), "auditx token printed no token");
    Ok(token)
}

/// The configuration of a run: caps raised so the load phase measures the
/// API, not the per-tenant limits.
fn write_config(
    dir: &Path,
    listen: &str,
    s3: Option<(&str, &str)>,
    args: &BenchArgs,
    prefix: &str,
) -> anyhow::Result<PathBuf> {
    let mut config = Config {
        listen: listen.parse()?,
        jwt_secret: Some(secrets::jwt_secret(None, dir)?),
        ..Config::default()
    };
    config.api.create_rate_per_sec = 1_000_000.0;
    config.api.create_burst = 1_000_000;
    config.api.max_in_flight = 4096;
    config.api.max_connections = 4096;
    config.export.max_pending_per_tenant = 1_000_000;
    // Every worker process reads this file: each picks its own probe port.
    config.worker.listen = "127.0.0.1:0".parse()?;
    config.telemetry.log_format = "text".into();
    config.telemetry.log_level = "warn".into();
    config.rabbitmq.url = args.amqp_url.clone();
    config.rabbitmq.prefix = prefix.to_owned();
    config.redis.url = args.redis_url.clone();
    config.redis.prefix = prefix.to_owned();
    if let Some((endpoint, secret)) = s3 {
        config.s3.endpoint = Some(endpoint.to_owned());
        config.s3.access_key_id = EMBEDDED_S3_ACCESS_KEY.to_owned();
        config.s3.secret_access_key = secret.to_owned();
        config.s3.force_path_style = true;
        config.s3.create_buckets = true;
    }
    let path = dir.join(format!("bench-{prefix}.toml"));
    std::fs::write(&path, toml::to_string(&config)?)?;
    Ok(path)
}

/// Deletes every exported file the product left in the embedded S3 folder
/// (the export bucket and its objects' metadata): each 5 M-row run writes
/// 1.3 GB there, and the bench keeps only the lake and the last downloads.
/// Also deletes the embedded default's job state and the run's
/// configuration files, so each run starts idle.
fn clear_exports(dir: &Path) -> anyhow::Result<()> {
    let root = dir.join("s3");
    let bucket = Config::default().s3.export_bucket;
    let objects = root.join(&bucket);
    if objects.exists() {
        for entry in std::fs::read_dir(&objects)? {
            let path = entry?.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
        }
    }
    // s3s-fs keeps each object's attributes and ETag beside the buckets.
    let metadata = auditx_common::embedded_s3::fs::bucket_metadata_prefix(&bucket);
    if root.exists() {
        for entry in std::fs::read_dir(&root)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&metadata) || name.starts_with(".upload") {
                std::fs::remove_file(entry.path())?;
            }
        }
    }
    // The embedded default keeps its jobs on disk: a run must not start
    // with the jobs an earlier run left (its load phase queues thousands).
    let state = dir.join("state");
    if state.exists() {
        std::fs::remove_dir_all(&state)?;
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("bench-bench") && name.ends_with(".toml") {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// utime + stime of `/proc/<pid>/stat`, in clock ticks of 1/100 s (the
/// kernel's USER_HZ, fixed at 100 for this interface).
fn cpu_seconds_of(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = |i: usize| -> anyhow::Result<u64> {
        Ok(fields.get(i).context("short /proc stat")?.parse()?)
    };
    Ok((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

/// `write_bytes` less `cancelled_write_bytes` of `/proc/<pid>/io`.
fn disk_bytes_of(pid: u32) -> anyhow::Result<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = io
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .with_context(|| format!("no {name} in /proc io"))?;
        Ok(line.trim().parse()?)
    };
    Ok(field("write_bytes:")?.saturating_sub(field("cancelled_write_bytes:")?))
}

fn peak_rss_of(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM in /proc status")?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .context("malformed VmHWM")?
        .parse()?;
    Ok(kib * 1024)
}

fn free_addr() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.to_string())
}

async fn wait_port(addr: &str) -> anyhow::Result<()> {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("nothing listens on {addr} after 15 s")
}

//! `auditx bench`: a meter export end to end, measured beside DuckDB doing
//! the same job on the same Parquet files.
//!
//! 1. Generates (or reuses) a lake in the bench folder: one large meter and
//!    one of 1,000 rows.
//! 2. Starts the product as real processes: `auditx standalone` (embedded
//!    default), or with `--distributed` an `auditx s3` endpoint, a
//!    scheduler and N worker processes on RabbitMQ and Redis; once per worker
//!    count given.
//! 3. Exports the large meter (create → FINISHED with presigned URLs),
//!    downloads the files and hashes their rows; times sequential 1,000-row
//!    exports; drives create-export calls from many connections.
//! 4. Runs DuckDB's query over the same files (DuckDB from PyPI, installed
//!    in a virtualenv if missing) and compares the bytes.
//! 5. Prints wall time, rows/s, MB/s, the peak RSS of every process and the
//!    auditx/DuckDB ratio. Exits non-zero when the outputs differ.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use auditx_common::config::Config;
use auditx_common::s3::ObjectStore;
use auditx_lake::generate::GenerateSpec;
use auditx_proto::{MeterId, TenantId};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio::process::{Child, Command};

use super::{load_config, parse_time, tools};
use crate::client::{ApiClient, ExportRequest};
use crate::{runtime, secrets};

const TENANT: &str = "bench";
/// The large meter every run exports.
const BIG_METER: i64 = 1;
/// The 1,000-row meter of the latency runs and the create-call load.
const SMALL_METER: i64 = 2;
const SMALL_ROWS: u64 = 1_000;
const FROM: &str = "2025-07-01T00:00:00Z";
const TO: &str = "2025-07-08T00:00:00Z";
const SEED: u64 = 1;
/// Timed calls per online measurement (the median is reported).
const ONLINE_RUNS: usize = 5;
/// Pages of 500 entries walked with their cursors.
const WALK_PAGES: usize = 20;
/// The selective hour of the entries measurement.
const HOUR_FROM: &str = "2025-07-04T12:00:00Z";
const HOUR_TO: &str = "2025-07-04T13:00:00Z";
/// Bumped when the generated lake changes shape, so old lakes are rebuilt.
const LAKE_VERSION: u32 = 1;
const DUCKDB_SCRIPT: &str = include_str!("bench/duckdb_export.py");
/// The DuckDB the bench installs when the interpreter has none.
const DUCKDB_REQUIREMENT: &str = "duckdb==1.4.2";

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Rows of the large meter's lake (generated once, then reused).
    #[arg(long, default_value_t = 5_000_000)]
    pub rows: u64,
    /// Bench folder: lake, downloads, logs (default ~/.cache/auditx-bench/rows-N).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Run RabbitMQ + Redis + a scheduler + N worker processes instead of
    /// `standalone`.
    #[arg(long)]
    pub distributed: bool,
    /// Worker counts to run, comma separated (a run per count): worker loops
    /// of `standalone`, or worker processes with `--distributed`. Default 2
    /// (embedded), 1,2 (distributed).
    #[arg(long, value_delimiter = ',')]
    pub workers: Vec<usize>,
    /// Sequential 1,000-row exports timed create → FINISHED.
    #[arg(long, default_value_t = 20)]
    pub latency_runs: usize,
    /// Seconds of create-export calls (0: skip).
    #[arg(long, default_value_t = 5)]
    pub load_secs: u64,
    /// Concurrent connections making create-export calls.
    #[arg(long, default_value_t = 32)]
    pub load_connections: usize,
    /// Skip DuckDB (no comparison, no ratio).
    #[arg(long)]
    pub no_duckdb: bool,
    /// Rounds of the large export, each auditx then DuckDB: run to run
    /// noise on a small machine can exceed the difference measured, so
    /// several rounds report every ratio and their median. The latency,
    /// online and load phases run in the last round only.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Python with `duckdb`, or in which to create a virtualenv for it.
    #[arg(long, default_value = "python3")]
    pub python: String,
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,
}

/// What one run of the product measured.
struct Run {
    label: String,
    workers: usize,
    export: Timed,
    /// (process, peak RSS in bytes)
    peaks: Vec<(String, u64)>,
    /// (process, CPU seconds used during the large export)
    cpu: Vec<(String, f64)>,
    latency: Option<Latency>,
    online: Option<Online>,
    load: Option<Load>,
}

/// The large export: time, rows, bytes and the hash of its rows.
struct Timed {
    seconds: f64,
    rows: u64,
    bytes: u64,
    files: usize,
    /// Render chunks the export was planned into.
    chunks: u64,
    sha256: String,
}

struct Latency {
    runs: usize,
    median_ms: f64,
    p90_ms: f64,
}

/// The online endpoints on the large meter, after its export.
struct Online {
    /// Median of [`ONLINE_RUNS`] first pages (100 entries) of the week.
    first_page_ms: f64,
    /// Median of first pages of one hour in the middle of the week.
    hour_page_ms: f64,
    /// A walk of [`WALK_PAGES`] pages of 500 entries: ms per page.
    walk_page_ms: f64,
    walked: usize,
    /// Summary by operatorId of the export's rows: time, total, groups.
    summary_ms: f64,
    summary_total: u64,
    summary_groups: usize,
}

struct Load {
    connections: usize,
    seconds: f64,
    ok: u64,
    refused: u64,
    p50_ms: f64,
    p99_ms: f64,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => home()?
            .join(".cache/auditx-bench")
            .join(format!("rows-{}", args.rows)),
    };
    std::fs::create_dir_all(&dir)?;
    let dir = dir.canonicalize()?;
    println!("auditx bench — folder {}", dir.display());
    ensure_lake(&dir, args.rows).await?;

    let worker_counts = match (&args.workers[..], args.distributed) {
        ([], false) => vec![2],
        ([], true) => vec![1, 2],
        (counts, _) => counts.to_vec(),
    };
    anyhow::ensure!(
        worker_counts.iter().all(|&n| n >= 1),
        "--workers: every count must be at least 1"
    );
    anyhow::ensure!(args.rounds >= 1, "--rounds must be at least 1");
    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        if args.rounds > 1 {
            println!("round {round} of {}", args.rounds);
        }
        let mut runs = Vec::new();
        for (i, &workers) in worker_counts.iter().enumerate() {
            let last = round == args.rounds && i + 1 == worker_counts.len();
            runs.push(run_product(&args, &dir, workers, last).await?);
        }
        let duckdb = if args.no_duckdb {
            None
        } else {
            Some(run_duckdb(&args, &dir).await?)
        };
        rounds.push((runs, duckdb));
    }
    let (runs, duckdb) = rounds.last().expect("at least one round");
    report(&args, runs, duckdb.as_ref())?;
    report_rounds(&rounds)
}

/// With several rounds: every round's wall times and ratio, and the median
/// ratio; the bytes of every round are checked against DuckDB's.
fn report_rounds(rounds: &[(Vec<Run>, Option<DuckRun>)]) -> anyhow::Result<()> {
    if rounds.len() < 2 {
        return Ok(());
    }
    let mut ratios: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (i, (runs, duckdb)) in rounds.iter().enumerate() {
        let mut line = format!("round {}:", i + 1);
        for run in runs {
            line.push_str(&format!(
                " auditx {} {:.2} s",
                run.label, run.export.seconds
            ));
        }
        if let Some(d) = duckdb {
            line.push_str(&format!(", duckdb {:.2} s", d.seconds));
            for run in runs {
                if run.export.sha256 != d.sha256 || run.export.rows != d.rows {
                    bail!(
                        "round {}: auditx and DuckDB exported different bytes",
                        i + 1
                    );
                }
                let ratio = run.export.seconds / d.seconds;
                line.push_str(&format!(", ratio {ratio:.2}×"));
                ratios.entry(run.label.clone()).or_default().push(ratio);
            }
        }
        println!("{line}");
    }
    for (label, ratios) in ratios {
        let listed: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "median ratio auditx {label} / duckdb over {} rounds: {:.2}× ({})",
            ratios.len(),
            median(ratios),
            listed.join(", ")
        );
    }
    Ok(())
}

fn home() -> anyhow::Result<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .context("HOME is not set; pass --data-dir")
}

/// Generates the bench lake unless the folder holds one of this size.
async fn ensure_lake(dir: &Path, rows: u64) -> anyhow::Result<()> {
    let marker = dir.join("bench-lake.json");
    let wanted = serde_json::json!({ "rows": rows, "seed": SEED, "version": LAKE_VERSION });
    if std::fs::read(&marker)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|found| found == wanted)
    {
        println!("reusing the lake of {rows} rows");
        return Ok(());
    }
    let s3_dir = dir.join("s3");
    if s3_dir.exists() {
        std::fs::remove_dir_all(&s3_dir)?;
    }
    let mut config = load_config(None)?;
    let embedded = runtime::embedded_s3(&mut config, dir, "127.0.0.1:0".parse()?).await?;
    let store = ObjectStore::new(&config.s3);
    let started = Instant::now();
    for (meter, rows) in [(BIG_METER, rows), (SMALL_METER, SMALL_ROWS)] {
        let spec = GenerateSpec {
            tenant: TenantId::from(TENANT),
            meter: MeterId(meter),
            rows,
            from_ms: parse_time("from", FROM)?.timestamp_millis(),
            to_ms: parse_time("to", TO)?.timestamp_millis(),
            error_rate: 0.02,
            seed: SEED,
        };
        tools::generate_with(
            &store,
            &config.s3.lake_bucket,
            &spec,
            config.ingest.row_group_rows,
        )
        .await?;
    }
    drop(embedded);
    // The lake's pages written back now, so that the first timed run does
    // not share the disk with their write-back.
    let _ = Command::new("sync").status().await;
    std::fs::write(&marker, serde_json::to_vec(&wanted)?)?;
    println!(
        "generated the lake ({rows} + {SMALL_ROWS} rows) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A child process of the product, with its name for the report.
struct Proc {
    name: String,
    child: Child,
}

impl Proc {
    fn spawn(name: &str, args: &[&str], log: &Path) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the auditx binary")?;
        let log = std::fs::File::create(log)?;
        let child = Command::new(exe)
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

    /// Peak resident set (VmHWM) while the process is alive.
    fn peak_rss(&mut self) -> anyhow::Result<u64> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}) during the run; see its log",
                self.name
            );
        }
        let pid = self.child.id().context("the process has ended")?;
        peak_rss_of(pid)
    }

    /// CPU time (user + system) the process has used so far.
    fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let pid = self.child.id().context("the process has ended")?;
        cpu_seconds_of(pid)
    }
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

/// The configuration of a run: caps raised so the load phase measures the
/// API, not the per-tenant limits.
fn bench_config(
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
        config.s3.access_key_id = runtime::EMBEDDED_S3_ACCESS_KEY.to_owned();
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
/// Also deletes the embedded default's job state, so each run starts idle.
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
    let metadata = auditx_common::s3::embedded_fs::bucket_metadata_prefix(&bucket);
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
    Ok(())
}

async fn run_product(
    args: &BenchArgs,
    dir: &Path,
    workers: usize,
    last: bool,
) -> anyhow::Result<Run> {
    clear_exports(dir)?;
    let api = free_addr()?;
    let s3 = free_addr()?;
    let prefix = format!("bench{}", uuid::Uuid::new_v4().simple());
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let mut procs = Vec::new();
    let label;
    if args.distributed {
        label = format!("distributed, {workers} worker process(es)");
        let config = bench_config(
            dir,
            &api,
            Some((&format!("http://{s3}"), &secrets::embedded_s3_secret(dir)?)),
            args,
            &prefix,
        )?;
        let config = config.to_str().context("non-UTF-8 path")?;
        let data_dir = dir.to_str().context("non-UTF-8 path")?;
        procs.push(Proc::spawn(
            "s3 endpoint",
            &[
                "s3",
                "--data-dir",
                data_dir,
                "--listen",
                &s3,
                "--config",
                config,
            ],
            &logs.join("s3.log"),
        )?);
        wait_port(&s3).await?;
        procs.push(Proc::spawn(
            "scheduler",
            &["scheduler", "--config", config],
            &logs.join("scheduler.log"),
        )?);
        for i in 0..workers {
            procs.push(Proc::spawn(
                &format!("worker {}", i + 1),
                &["worker", "--config", config],
                &logs.join(format!("worker-{}.log", i + 1)),
            )?);
        }
    } else {
        label = format!("embedded, {workers} worker loop(s)");
        let config = bench_config(dir, &api, None, args, &prefix)?;
        let workers = workers.to_string();
        procs.push(Proc::spawn(
            "standalone",
            &[
                "standalone",
                "--data-dir",
                dir.to_str().context("non-UTF-8 path")?,
                "--listen",
                &api,
                "--s3-listen",
                &s3,
                "--workers",
                &workers,
                "--config",
                config.to_str().context("non-UTF-8 path")?,
            ],
            &logs.join("standalone.log"),
        )?);
    }
    wait_healthy(&api, &mut procs).await?;

    let secret = secrets::jwt_secret(None, dir)?;
    let config = load_config(None)?;
    let token = tools::mint_with(&secret, &config.auth, &tools::TokenSpec::new(TENANT, 24))?;
    let client = ApiClient::new(&format!("http://{api}"), &token);

    println!("{label}: exporting meter {BIG_METER} …");
    let downloads = dir.join("downloads").join(format!(
        "{}-{workers}",
        if args.distributed {
            "distributed"
        } else {
            "embedded"
        }
    ));
    if downloads.exists() {
        std::fs::remove_dir_all(&downloads)?;
    }
    let cpu_before: Vec<f64> = procs
        .iter()
        .map(Proc::cpu_seconds)
        .collect::<anyhow::Result<_>>()?;
    let export = timed_export(&client, BIG_METER, &downloads).await?;
    let mut cpu = Vec::new();
    for (proc, before) in procs.iter().zip(cpu_before) {
        cpu.push((proc.name.clone(), proc.cpu_seconds()? - before));
    }
    println!(
        "  {} rows in {} file(s), {:.2} s",
        export.rows, export.files, export.seconds
    );
    // Peaks of the export itself, before the latency and load phases.
    let mut peaks = Vec::new();
    for proc in &mut procs {
        peaks.push((proc.name.clone(), proc.peak_rss()?));
    }
    let latency = if last && args.latency_runs > 0 {
        Some(latency(&client, args.latency_runs).await?)
    } else {
        None
    };
    let online = if last {
        Some(online(&client, export.rows).await?)
    } else {
        None
    };
    let load = if last && args.load_secs > 0 {
        Some(load(&api, &token, args).await?)
    } else {
        None
    };
    for proc in &mut procs {
        let _ = proc.child.start_kill();
        let _ = proc.child.wait().await;
    }
    clear_exports(dir)?;
    Ok(Run {
        label,
        workers,
        export,
        peaks,
        cpu,
        latency,
        online,
        load,
    })
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

async fn wait_healthy(api: &str, procs: &mut [Proc]) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    for _ in 0..600 {
        for proc in procs.iter_mut() {
            if let Some(status) = proc.child.try_wait()? {
                bail!(
                    "{} exited ({status}) while starting; see its log",
                    proc.name
                );
            }
        }
        let ready = http.get(format!("http://{api}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the API on {api} was not ready after 30 s")
}

fn request(meter: i64) -> ExportRequest {
    ExportRequest {
        meter_id: meter,
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        query_from_time: FROM.into(),
        query_to_time: TO.into(),
        ..ExportRequest::default()
    }
}

/// Polls a job every `every` until it ends; FINISHED or an error.
async fn finished(
    client: &ApiClient,
    meter: i64,
    id: &str,
    every: Duration,
    timeout: Duration,
) -> anyhow::Result<serde_json::Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let job = client.job(meter, id).await?;
        match job["status"].as_str() {
            Some("FINISHED") => return Ok(job),
            Some("FAILED" | "CANCELED") => {
                bail!("export {id} ended {}: {}", job["status"], job["error"])
            }
            _ if Instant::now() > deadline => bail!("export {id} did not end within {timeout:?}"),
            _ => tokio::time::sleep(every).await,
        }
    }
}

async fn timed_export(client: &ApiClient, meter: i64, out: &Path) -> anyhow::Result<Timed> {
    let started = Instant::now();
    let id = client.create_export(&request(meter)).await?;
    let job = finished(
        client,
        meter,
        &id,
        Duration::from_millis(20),
        Duration::from_secs(3600),
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    let chunks = job["progress"]["chunksTotal"].as_u64().unwrap_or(0);
    let files = client.download_all(&job, out).await?;
    let mut hasher = Sha256::new();
    let mut rows = 0;
    let mut bytes = 0;
    let mut data_files = 0;
    for file in files
        .iter()
        .filter(|f| Some(f.file_key.as_str()) != job["manifestKey"].as_str())
    {
        data_files += 1;
        bytes += file.bytes;
        rows += hash_data_rows(&file.path, &mut hasher).await?;
    }
    Ok(Timed {
        seconds,
        rows,
        bytes,
        files: data_files,
        chunks,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// Feeds a CSV file's bytes after its header line to `hasher`; returns the
/// number of records (lines outside quotes).
async fn hash_data_rows(path: &Path, hasher: &mut Sha256) -> anyhow::Result<u64> {
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let mut reader = tokio::io::BufReader::with_capacity(1 << 20, file);
    let mut header = Vec::new();
    reader.read_until(b'\n', &mut header).await?;
    let mut buffer = vec![0; 1 << 20];
    let mut rows = 0;
    let mut quoted = false;
    loop {
        let n = reader.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        for &byte in &buffer[..n] {
            match byte {
                b'"' => quoted = !quoted,
                b'\n' if !quoted => rows += 1,
                _ => {}
            }
        }
    }
    Ok(rows)
}

async fn latency(client: &ApiClient, runs: usize) -> anyhow::Result<Latency> {
    println!("  {runs} exports of {SMALL_ROWS} rows, one after another …");
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let id = client.create_export(&request(SMALL_METER)).await?;
        finished(
            client,
            SMALL_METER,
            &id,
            Duration::from_millis(2),
            Duration::from_secs(120),
        )
        .await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(Latency {
        runs,
        median_ms: percentile(&times, 0.5),
        p90_ms: percentile(&times, 0.9),
    })
}

fn filters(from: &str, to: &str) -> Vec<(&'static str, String)> {
    vec![
        ("exportType", "SAMPLE".into()),
        ("runType", "NORMAL".into()),
        ("queryFromTime", from.into()),
        ("queryToTime", to.into()),
    ]
}

/// Times one entries page; fails unless it holds `1..=size` entries.
async fn timed_page(
    client: &ApiClient,
    query: &[(&str, String)],
    size: usize,
) -> anyhow::Result<(f64, Value)> {
    let started = Instant::now();
    let page = client.entries(BIG_METER, query).await?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let entries = page["data"].as_array().map_or(0, Vec::len);
    if entries == 0 || entries > size {
        bail!("an entries page of {size} held {entries} entries");
    }
    Ok((ms, page))
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    percentile(&times, 0.5)
}

/// The entries and summary endpoints on the large meter: first pages (the
/// week, one hour), a walk of pages with their cursors, and a summary whose
/// total must equal the rows the export wrote.
async fn online(client: &ApiClient, export_rows: u64) -> anyhow::Result<Online> {
    println!("  entries pages and a summary of meter {BIG_METER} …");
    let mut week = filters(FROM, TO);
    week.push(("pageSize", "100".into()));
    let mut hour = filters(HOUR_FROM, HOUR_TO);
    hour.push(("pageSize", "100".into()));
    let (mut first, mut hourly) = (Vec::new(), Vec::new());
    for _ in 0..ONLINE_RUNS {
        first.push(timed_page(client, &week, 100).await?.0);
        hourly.push(timed_page(client, &hour, 100).await?.0);
    }

    let mut walk = filters(FROM, TO);
    walk.push(("pageSize", "500".into()));
    let started = Instant::now();
    let mut walked = 0;
    let mut cursor: Option<String> = None;
    let mut last_key: Option<(String, String)> = None;
    while walked < WALK_PAGES {
        let mut query = walk.clone();
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor.clone()));
        }
        let (_, page) = timed_page(client, &query, 500).await?;
        walked += 1;
        for entry in page["data"].as_array().into_iter().flatten() {
            let key = (
                entry["eventTime"].as_str().unwrap_or_default().to_owned(),
                entry["eventId"].as_str().unwrap_or_default().to_owned(),
            );
            if last_key.as_ref().is_some_and(|last| *last >= key) {
                bail!("entries out of order or repeated at page {walked}: {key:?}");
            }
            last_key = Some(key);
        }
        match page["nextPage"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let walk_page_ms = started.elapsed().as_secs_f64() * 1000.0 / walked as f64;

    let body = serde_json::json!({
        "exportType": "SAMPLE",
        "runType": "NORMAL",
        "queryFromTime": FROM,
        "queryToTime": TO,
        "groupBy": ["operatorId"],
    });
    let started = Instant::now();
    let summary = client.summary(BIG_METER, &body).await?;
    let summary_ms = started.elapsed().as_secs_f64() * 1000.0;
    let summary_total = summary["total"]
        .as_u64()
        .context("a summary without total")?;
    if summary_total != export_rows {
        bail!("the summary counts {summary_total} rows, the export wrote {export_rows}");
    }
    Ok(Online {
        first_page_ms: median(first),
        hour_page_ms: median(hourly),
        walk_page_ms,
        walked,
        summary_ms,
        summary_total,
        summary_groups: summary["groups"].as_array().map_or(0, Vec::len),
    })
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Create-export calls from `load_connections` connections for
/// `load_secs`, each call timed.
async fn load(api: &str, token: &str, args: &BenchArgs) -> anyhow::Result<Load> {
    println!(
        "  create-export calls from {} connections for {} s …",
        args.load_connections, args.load_secs
    );
    let url = Arc::new(format!(
        "http://{api}/meters/{SMALL_METER}/auditTrail/export?exportType=SAMPLE&runType=NORMAL&queryFromTime={FROM}&queryToTime={TO}"
    ));
    let started = Instant::now();
    let until = started + Duration::from_secs(args.load_secs);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.load_connections {
        let url = url.clone();
        let token = token.to_owned();
        tasks.spawn(async move {
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?;
            let mut times = Vec::new();
            let mut refused = 0u64;
            while Instant::now() < until {
                let sent = Instant::now();
                let response = http.post(url.as_str()).bearer_auth(&token).send().await?;
                let ok = response.status().is_success();
                response.bytes().await?;
                if ok {
                    times.push(sent.elapsed().as_secs_f64() * 1000.0);
                } else {
                    refused += 1;
                }
            }
            anyhow::Ok((times, refused))
        });
    }
    let mut times = Vec::new();
    let mut refused = 0;
    while let Some(result) = tasks.join_next().await {
        let (mut t, r) = result??;
        times.append(&mut t);
        refused += r;
    }
    let seconds = started.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    Ok(Load {
        connections: args.load_connections,
        seconds,
        ok: times.len() as u64,
        refused,
        p50_ms: percentile(&times, 0.5),
        p99_ms: percentile(&times, 0.99),
    })
}

/// What DuckDB measured.
struct DuckRun {
    version: String,
    seconds: f64,
    peak_rss: u64,
    rows: u64,
    sha256: String,
}

/// A Python that imports duckdb: `--python` if it has it, else a
/// virtualenv in ~/.cache/auditx-venv with it installed.
async fn duckdb_python(args: &BenchArgs) -> anyhow::Result<String> {
    let has = |python: String| async move {
        Command::new(&python)
            .args(["-c", "import duckdb"])
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success())
            .then_some(python)
    };
    if let Some(python) = has(args.python.clone()).await {
        return Ok(python);
    }
    let venv = home()?.join(".cache/auditx-venv");
    let python = venv.join("bin/python").to_string_lossy().into_owned();
    if let Some(python) = has(python.clone()).await {
        return Ok(python);
    }
    println!("installing {DUCKDB_REQUIREMENT} into {} …", venv.display());
    if !venv.join("bin/python").exists() {
        let status = Command::new(&args.python)
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .await?;
        anyhow::ensure!(
            status.success(),
            "creating the virtualenv {} failed",
            venv.display()
        );
    }
    let status = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", DUCKDB_REQUIREMENT])
        .status()
        .await?;
    anyhow::ensure!(status.success(), "pip install {DUCKDB_REQUIREMENT} failed");
    Ok(python)
}

async fn run_duckdb(args: &BenchArgs, dir: &Path) -> anyhow::Result<DuckRun> {
    let python = duckdb_python(args).await?;
    let script = dir.join("duckdb_export.py");
    std::fs::write(&script, DUCKDB_SCRIPT)?;
    let config = load_config(None)?;
    let lake = dir.join("s3").join(&config.s3.lake_bucket);
    let out = dir.join("downloads").join("duckdb.csv");
    std::fs::create_dir_all(out.parent().expect("a parent folder"))?;
    println!("duckdb: the same export over the same Parquet files …");
    let output = Command::new(&python)
        .arg(&script)
        .arg(&lake)
        .args([
            TENANT.to_owned(),
            BIG_METER.to_string(),
            parse_time("from", FROM)?.timestamp_millis().to_string(),
            parse_time("to", TO)?.timestamp_millis().to_string(),
            "SAMPLE".to_owned(),
            "NORMAL".to_owned(),
        ])
        .arg(&out)
        .stderr(Stdio::inherit())
        .output()
        .await?;
    anyhow::ensure!(output.status.success(), "the DuckDB query failed");
    let figures: serde_json::Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "reading DuckDB's figures: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    let mut hasher = Sha256::new();
    let rows = hash_data_rows(&out, &mut hasher).await?;
    Ok(DuckRun {
        version: figures["version"].as_str().unwrap_or("?").to_owned(),
        seconds: figures["seconds"].as_f64().context("no seconds")?,
        peak_rss: figures["peak_rss_kib"]
            .as_u64()
            .context("no peak_rss_kib")?
            * 1024,
        rows,
        sha256: hex::encode(hasher.finalize()),
    })
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or_else(
            || "?".into(),
            |kib| format!("{:.0} GiB", kib as f64 / 1048576.0),
        );
    format!("{cores} cores ({model}), {memory}")
}

fn report(args: &BenchArgs, runs: &[Run], duckdb: Option<&DuckRun>) -> anyhow::Result<()> {
    println!();
    println!("== auditx bench: lake of {} rows, export SAMPLE/NORMAL of meter {BIG_METER}, {FROM} .. {TO}", args.rows);
    println!("machine: {}", machine());
    println!(
        "{:<40} {:>9} {:>11} {:>8} {:>10}",
        "run", "wall", "rows/s", "MB/s", "rows"
    );
    for run in runs {
        let e = &run.export;
        println!(
            "{:<40} {:>7.2} s {:>11.0} {:>8.1} {:>10}",
            format!("auditx {}", run.label),
            e.seconds,
            e.rows as f64 / e.seconds,
            e.bytes as f64 / 1e6 / e.seconds,
            e.rows
        );
    }
    if let Some(d) = duckdb {
        let bytes = runs.first().map_or(0, |r| r.export.bytes);
        println!(
            "{:<40} {:>7.2} s {:>11.0} {:>8.1} {:>10}",
            format!("duckdb {}", d.version),
            d.seconds,
            d.rows as f64 / d.seconds,
            bytes as f64 / 1e6 / d.seconds,
            d.rows
        );
    }
    println!("peak RSS:");
    for run in runs {
        let peaks: Vec<String> = run
            .peaks
            .iter()
            .map(|(name, bytes)| format!("{name} {}", mib(*bytes)))
            .collect();
        println!("  auditx {}: {}", run.label, peaks.join(", "));
    }
    if let Some(d) = duckdb {
        println!("  duckdb: {}", mib(d.peak_rss));
    }
    println!("CPU during the export (per render chunk):");
    for run in runs {
        let chunks = run.export.chunks.max(1) as f64;
        let cpu: Vec<String> = run
            .cpu
            .iter()
            .map(|(name, secs)| format!("{name} {secs:.2} s ({:.1} ms/chunk)", secs * 1e3 / chunks))
            .collect();
        println!(
            "  auditx {}, {} chunks: {}",
            run.label,
            run.export.chunks,
            cpu.join(", ")
        );
    }
    if runs.len() > 1 {
        let first = &runs[0];
        for run in &runs[1..] {
            println!(
                "scaling: {} workers vs {}: {:.2}× faster ({:.2} s → {:.2} s)",
                run.workers,
                first.workers,
                first.export.seconds / run.export.seconds,
                first.export.seconds,
                run.export.seconds
            );
        }
    }
    for run in runs {
        if let Some(l) = &run.latency {
            println!(
                "latency, {SMALL_ROWS}-row export create → FINISHED ({} runs): median {:.0} ms, p90 {:.0} ms",
                l.runs, l.median_ms, l.p90_ms
            );
        }
        if let Some(o) = &run.online {
            println!(
                "entries, first page of 100 ({ONLINE_RUNS} runs, median): the week {:.1} ms, one hour {:.1} ms; \
                 {} pages of 500 walked with cursors: {:.1} ms per page",
                o.first_page_ms, o.hour_page_ms, o.walked, o.walk_page_ms
            );
            println!(
                "summary by operatorId of the week: {:.0} ms, total {} (= the export's rows), {} groups",
                o.summary_ms, o.summary_total, o.summary_groups
            );
        }
        if let Some(l) = &run.load {
            println!(
                "create-export calls, {} connections, {:.1} s: {:.0} req/s accepted, p50 {:.1} ms, p99 {:.1} ms, {} refused",
                l.connections,
                l.seconds,
                l.ok as f64 / l.seconds,
                l.p50_ms,
                l.p99_ms,
                l.refused
            );
        }
    }
    let Some(d) = duckdb else {
        return Ok(());
    };
    let mut same = true;
    for run in runs {
        println!(
            "ratio auditx {} / duckdb: {:.2}× (wall time)",
            run.label,
            run.export.seconds / d.seconds
        );
        if run.export.sha256 != d.sha256 || run.export.rows != d.rows {
            same = false;
            println!(
                "  OUTPUT DIFFERS: auditx {} rows sha256 {}, duckdb {} rows sha256 {}",
                run.export.rows, run.export.sha256, d.rows, d.sha256
            );
        }
    }
    if !same {
        bail!("auditx and DuckDB exported different bytes");
    }
    println!(
        "bytes: identical — {} rows, sha256 {} in every run",
        d.rows, d.sha256
    );
    Ok(())
}

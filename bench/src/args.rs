//! The command line of `auditx-bench`.

use std::path::PathBuf;

use anyhow::Context;

#[derive(Debug, clap::Parser)]
#[command(
    name = "auditx-bench",
    about = "Measure a large export by the auditx binary beside DuckDB on the same files"
)]
pub struct BenchArgs {
    /// The `auditx` binary to run (default: `$AUDITX_BIN`, else the `auditx`
    /// beside this executable).
    #[arg(long, env = "AUDITX_BIN")]
    pub auditx: Option<PathBuf>,
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
    /// The large export's format; DuckDB writes the same format, and the
    /// rows are compared as the format allows (CSV bytes, JSON Lines
    /// parsed, Parquet decoded: see bench/src/rows.rs).
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,
    /// Skip DuckDB (no comparison, no ratio).
    #[arg(long)]
    pub no_duckdb: bool,
    /// Rounds of the large export, each auditx then DuckDB: run to run
    /// noise on a small machine can exceed the difference measured, so
    /// several rounds report every ratio and their median. The latency,
    /// online and load phases run in the last round only.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// The Python that creates the bench's own virtualenv for the pinned
    /// DuckDB (whatever DuckDB this Python has is never used).
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Measure data queries instead of the export: the seed's six queries,
    /// a GROUP BY and two selective filters over generated audit tables,
    /// each beside DuckDB on the same files (`--query-rows` logins).
    #[arg(long)]
    pub queries: bool,
    /// `--queries`: login rows of the generated tables (setting and object
    /// changes get 30 % of this each; generated once, then reused).
    #[arg(long, default_value_t = 10_000_000)]
    pub query_rows: u64,
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,
}

impl BenchArgs {
    /// `--auditx`, else the `auditx` cargo built beside this executable.
    pub fn auditx_bin(&self) -> anyhow::Result<PathBuf> {
        let bin = match &self.auditx {
            Some(bin) => bin.clone(),
            None => std::env::current_exe()
                .context("locating auditx-bench")?
                .with_file_name("auditx"),
        };
        anyhow::ensure!(
            bin.is_file(),
            "no auditx binary at {} (build it with `cargo build -p auditx`, or pass --auditx)",
            bin.display()
        );
        Ok(bin.canonicalize()?)
    }

    /// `--data-dir`, else `~/.cache/auditx-bench/rows-N`; created.
    pub fn bench_dir(&self) -> anyhow::Result<PathBuf> {
        let dir = match &self.data_dir {
            Some(dir) => dir.clone(),
            None => cache_dir()?.join(format!("rows-{}", self.rows)),
        };
        std::fs::create_dir_all(&dir)?;
        Ok(dir.canonicalize()?)
    }

    /// `--workers`, or the default of the mode.
    pub fn worker_counts(&self) -> anyhow::Result<Vec<usize>> {
        let counts = match (&self.workers[..], self.distributed) {
            ([], false) => vec![2],
            ([], true) => vec![1, 2],
            (counts, _) => counts.to_vec(),
        };
        anyhow::ensure!(
            counts.iter().all(|&n| n >= 1),
            "--workers: every count must be at least 1"
        );
        Ok(counts)
    }
}

/// `~/.cache/auditx-bench`: the default lakes and the DuckDB virtualenv.
pub fn cache_dir() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .context("HOME is not set: the bench keeps its lakes and DuckDB under ~/.cache")?;
    Ok(PathBuf::from(home).join(".cache/auditx-bench"))
}

/// The export format the bench measures (`--format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
    Parquet,
}

impl Format {
    /// The name the API takes and the files' extension.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Parquet => "parquet",
        }
    }

    /// What "identical" means for the format, as the report says it.
    pub fn identical(self) -> &'static str {
        match self {
            Format::Csv => "bytes: identical",
            Format::Jsonl => "rows: identical (JSON lines parsed)",
            Format::Parquet => "rows: identical (Parquet decoded)",
        }
    }
}

//! DuckDB beside auditx: the pinned DuckDB in the bench's own virtualenv
//! (`~/.cache/auditx-bench/duckdb-<version>`), never whatever DuckDB the
//! machine's Python has, and the export's query over the same Parquet files.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;
use serde_json::Value;
use tokio::process::Command;

use crate::args::{cache_dir, Format};
use crate::lake::{self, BIG_METER, FROM, TENANT, TO};
use crate::rows;

/// The DuckDB every bench compares with: a newer one may plan the query
/// differently, so figures of different rounds would not compare.
pub const DUCKDB_VERSION: &str = "1.4.2";
const EXPORT_SCRIPT: &str = include_str!("duckdb_export.py");
const DECODE_SCRIPT: &str = include_str!("duckdb_decode.py");

/// What DuckDB measured.
pub struct DuckRun {
    pub version: String,
    pub seconds: f64,
    pub peak_rss: u64,
    pub rows: u64,
    pub sha256: String,
}

/// The virtualenv's Python, checked to import the pinned DuckDB from the
/// virtualenv itself.
pub struct DuckDb {
    python: PathBuf,
}

impl DuckDb {
    /// The bench's virtualenv, created with `base_python` and the pinned
    /// DuckDB installed from PyPI when missing or different.
    pub async fn ready(base_python: &str) -> anyhow::Result<Self> {
        let cache = cache_dir()?;
        std::fs::create_dir_all(&cache)?;
        let venv = cache.join(format!("duckdb-{DUCKDB_VERSION}"));
        if let Ok(python) = checked(&venv).await {
            return Ok(Self { python });
        }
        // Built beside the final folder, then renamed into place, so a bench
        // interrupted while installing (or two benches at once) never leaves
        // a half-made virtualenv where the next one looks.
        let building = cache.join(format!(
            "duckdb-{DUCKDB_VERSION}.building-{}",
            std::process::id()
        ));
        if building.exists() {
            std::fs::remove_dir_all(&building)?;
        }
        println!(
            "installing duckdb=={DUCKDB_VERSION} into {} …",
            venv.display()
        );
        run(Command::new(base_python)
            .args(["-I", "-m", "venv"])
            .arg(&building))
        .await
        .with_context(|| format!("creating a virtualenv with {base_python}"))?;
        let requirement = format!("duckdb=={DUCKDB_VERSION}");
        run(Command::new(building.join("bin/python")).args([
            "-I",
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-input",
            &requirement,
        ]))
        .await
        .with_context(|| format!("pip install {requirement}"))?;
        if venv.exists() {
            std::fs::remove_dir_all(&venv)?;
        }
        if let Err(error) = std::fs::rename(&building, &venv) {
            // Another bench put its virtualenv there first.
            std::fs::remove_dir_all(&building)?;
            if checked(&venv).await.is_err() {
                return Err(error).context("moving the virtualenv into place");
            }
        }
        Ok(Self {
            python: checked(&venv).await?,
        })
    }

    /// Runs a Python script of the bench with `args`; returns the JSON
    /// object it prints (its figures). Its stderr goes to the bench's.
    pub async fn script(
        &self,
        dir: &Path,
        name: &str,
        source: &str,
        args: &[String],
    ) -> anyhow::Result<Value> {
        let script = dir.join(name);
        std::fs::write(&script, source)?;
        let output = isolated(&self.python)
            .arg(&script)
            .args(args)
            .stderr(Stdio::inherit())
            .output()
            .await?;
        anyhow::ensure!(output.status.success(), "the DuckDB script {name} failed");
        serde_json::from_slice(&output.stdout).with_context(|| {
            format!(
                "reading the figures of {name}: {}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// The bench's export as DuckDB runs it over the same Parquet files,
    /// written in `format`.
    pub async fn export(&self, dir: &Path, format: Format) -> anyhow::Result<DuckRun> {
        let out = dir
            .join("downloads")
            .join(format!("duckdb.{}", format.as_str()));
        std::fs::create_dir_all(out.parent().expect("a parent folder"))?;
        println!("duckdb: the same export over the same Parquet files …");
        let args = [
            lake::lake_files(dir).to_string_lossy().into_owned(),
            TENANT.to_owned(),
            BIG_METER.to_string(),
            epoch_ms(FROM)?.to_string(),
            epoch_ms(TO)?.to_string(),
            "SAMPLE".to_owned(),
            "NORMAL".to_owned(),
            out.to_string_lossy().into_owned(),
            format.as_str().to_owned(),
        ];
        let figures = self
            .script(dir, "duckdb_export.py", EXPORT_SCRIPT, &args)
            .await?;
        let version = figures["version"].as_str().unwrap_or("?").to_owned();
        anyhow::ensure!(
            version == DUCKDB_VERSION,
            "the bench ran DuckDB {version}, not the pinned {DUCKDB_VERSION}"
        );
        let scratch = dir.join("downloads").join("duckdb-decoded.csv");
        let (rows, sha256) = self
            .fingerprint(format, std::slice::from_ref(&out), &scratch)
            .await?;
        Ok(DuckRun {
            version,
            seconds: figures["seconds"].as_f64().context("no seconds")?,
            peak_rss: figures["peak_rss_kib"]
                .as_u64()
                .context("no peak_rss_kib")?
                * 1024,
            rows,
            sha256,
        })
    }

    /// Rows and the SHA-256 of their canonical form of an export's `files`
    /// ([`rows`]): Parquet decoded by DuckDB into CSV at `scratch` first
    /// (the export's columns, `eventTime` as UTC text with milliseconds;
    /// not timed, removed after).
    pub async fn fingerprint(
        &self,
        format: Format,
        files: &[PathBuf],
        scratch: &Path,
    ) -> anyhow::Result<(u64, String)> {
        if format != Format::Parquet {
            return rows::fingerprint(format, files).await;
        }
        let dir = scratch.parent().context("a parent folder")?;
        let mut args = vec![scratch.to_string_lossy().into_owned()];
        args.extend(files.iter().map(|f| f.to_string_lossy().into_owned()));
        self.script(dir, "duckdb_decode.py", DECODE_SCRIPT, &args)
            .await?;
        let fingerprint = rows::fingerprint(Format::Csv, &[scratch.to_path_buf()]).await?;
        std::fs::remove_file(scratch)?;
        Ok(fingerprint)
    }
}

/// A command of `python` in isolated mode: no `PYTHON*` variables, no user
/// site-packages, so only the virtualenv's packages are importable.
fn isolated(python: &Path) -> Command {
    let mut command = Command::new(python);
    command.arg("-I");
    command
}

/// The virtualenv's Python if it imports the pinned DuckDB from inside the
/// virtualenv.
async fn checked(venv: &Path) -> anyhow::Result<PathBuf> {
    let python = venv.join("bin/python");
    anyhow::ensure!(python.exists(), "no virtualenv in {}", venv.display());
    let output = isolated(&python)
        .args([
            "-c",
            "import duckdb, os; print(duckdb.__version__); print(os.path.realpath(duckdb.__file__))",
        ])
        .stderr(Stdio::null())
        .output()
        .await?;
    anyhow::ensure!(output.status.success(), "no duckdb in {}", venv.display());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines = stdout.lines();
    let version = lines.next().unwrap_or_default();
    let module = Path::new(lines.next().unwrap_or_default());
    anyhow::ensure!(
        version == DUCKDB_VERSION,
        "duckdb {version} in {}",
        venv.display()
    );
    anyhow::ensure!(
        module.starts_with(venv.canonicalize()?),
        "duckdb imported from {} outside {}",
        module.display(),
        venv.display()
    );
    Ok(python)
}

async fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command.status().await?;
    anyhow::ensure!(status.success(), "exited with {status}");
    Ok(())
}

/// Milliseconds since the epoch of an RFC 3339 time of the bench.
fn epoch_ms(time: &str) -> anyhow::Result<i64> {
    Ok(auditx::commands::parse_time("time", time)?.timestamp_millis())
}

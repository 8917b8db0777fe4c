//! The bench's lake: what it holds, and its generation by `auditx generate`
//! into the embedded default's folder layout (`<dir>/s3/<lake bucket>`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use auditx_common::config::Config;
use tokio::process::Command;

pub const TENANT: &str = "bench";
/// The large meter every run exports.
pub const BIG_METER: i64 = 1;
/// The 1,000-row meter of the latency runs and the create-call load.
pub const SMALL_METER: i64 = 2;
pub const SMALL_ROWS: u64 = 1_000;
/// The audit table of the small-query latency runs: [`SMALL_ROWS`] rows.
pub const QUERY_TABLE: &str = "auditloginevent";
/// The generated (and exported) time range.
pub const FROM: &str = "2025-07-01T00:00:00Z";
pub const TO: &str = "2025-07-08T00:00:00Z";
const SEED: u64 = 1;
const ERROR_RATE: &str = "0.02";
/// Bumped when the generated lake changes shape, so old lakes are rebuilt.
const LAKE_VERSION: u32 = 2;

/// The folder of the lake bucket's files, which DuckDB reads.
pub fn lake_files(dir: &Path) -> PathBuf {
    dir.join("s3").join(Config::default().s3.lake_bucket)
}

/// Generates the bench lake unless the folder holds one of this size.
pub async fn ensure(auditx: &Path, dir: &Path, rows: u64) -> anyhow::Result<()> {
    let marker = dir.join("bench-lake.json");
    let wanted = serde_json::json!({ "rows": rows, "seed": SEED, "version": LAKE_VERSION });
    if marker_matches(&marker, &wanted) {
        println!("reusing the lake of {rows} rows");
        return Ok(());
    }
    let s3_dir = dir.join("s3");
    if s3_dir.exists() {
        std::fs::remove_dir_all(&s3_dir)?;
    }
    let started = Instant::now();
    for (meter, rows) in [(BIG_METER, rows), (SMALL_METER, SMALL_ROWS)] {
        generate(auditx, dir, &["--meter", &meter.to_string()], rows).await?;
    }
    generate(auditx, dir, &["--table", QUERY_TABLE], SMALL_ROWS).await?;
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

/// Whether the marker file at `path` (written after a generation) holds
/// `wanted`: the folder's data is of that size and version.
pub fn marker_matches(path: &Path, wanted: &serde_json::Value) -> bool {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|found| &found == wanted)
}

/// `auditx generate` of one meter (`--meter N`) or audit table (`--table
/// NAME`) into the folder's embedded lake.
pub async fn generate(auditx: &Path, dir: &Path, what: &[&str], rows: u64) -> anyhow::Result<()> {
    let mut command = Command::new(auditx);
    command
        .arg("generate")
        .arg("--data-dir")
        .arg(dir)
        .args(["--tenant", TENANT])
        .args(what)
        .args(["--rows", &rows.to_string(), "--seed", &SEED.to_string()]);
    if what.first() == Some(&"--meter") {
        command.args(["--from", FROM, "--to", TO, "--error-rate", ERROR_RATE]);
    }
    let status = command.status().await.context("running auditx generate")?;
    anyhow::ensure!(
        status.success(),
        "auditx generate {what:?} ({rows} rows) failed: {status}"
    );
    Ok(())
}

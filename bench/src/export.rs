//! The large export: create → FINISHED timed, its files downloaded through
//! presigned URLs and their rows hashed for the comparison with DuckDB
//! ([`crate::rows`]).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::args::Format;
use crate::duckdb::DuckDb;
use crate::lake::{FROM, TO};
use crate::rows;
use anyhow::bail;
use auditx::client::{ApiClient, ExportRequest};
use serde_json::Value;

/// The large export: time, rows, bytes and the hash of its rows.
pub struct Timed {
    pub seconds: f64,
    pub rows: u64,
    pub bytes: u64,
    pub files: usize,
    /// Render chunks the export was planned into.
    pub chunks: u64,
    pub sha256: String,
}

/// The bench's export of `meter`: SAMPLE rows of NORMAL runs over the
/// lake's week.
pub fn request(meter: i64) -> ExportRequest {
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
pub async fn finished(
    client: &ApiClient,
    meter: i64,
    id: &str,
    every: Duration,
    timeout: Duration,
) -> anyhow::Result<Value> {
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

/// Exports `meter` in `format`, timed from the create call to the FINISHED
/// status, then downloads the files into `out` and hashes their rows
/// (Parquet decoded by `duckdb`, see [`crate::rows`]).
pub async fn timed(
    client: &ApiClient,
    meter: i64,
    format: Format,
    duckdb: Option<&DuckDb>,
    out: &Path,
) -> anyhow::Result<Timed> {
    if out.exists() {
        std::fs::remove_dir_all(out)?;
    }
    let started = Instant::now();
    let request = ExportRequest {
        format: Some(format.as_str().to_owned()),
        ..request(meter)
    };
    let id = client.create_export(&request).await?;
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
    let data: Vec<_> = files
        .iter()
        .filter(|f| Some(f.file_key.as_str()) != job["manifestKey"].as_str())
        .collect();
    let paths: Vec<_> = data.iter().map(|f| f.path.clone()).collect();
    let (rows, sha256) = match duckdb {
        Some(duckdb) => {
            let scratch = out.join("decoded.csv");
            duckdb.fingerprint(format, &paths, &scratch).await?
        }
        None => rows::fingerprint(format, &paths).await?,
    };
    Ok(Timed {
        seconds,
        rows,
        bytes: data.iter().map(|f| f.bytes).sum(),
        files: data.len(),
        chunks,
        sha256,
    })
}

//! The large export: create → FINISHED timed, its files downloaded through
//! presigned URLs and their rows hashed for the comparison with DuckDB.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use auditx::client::{ApiClient, ExportRequest};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

use crate::lake::{FROM, TO};

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

/// Exports `meter`, timed from the create call to the FINISHED status, then
/// downloads the files into `out` and hashes their rows.
pub async fn timed(client: &ApiClient, meter: i64, out: &Path) -> anyhow::Result<Timed> {
    if out.exists() {
        std::fs::remove_dir_all(out)?;
    }
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
pub async fn hash_data_rows(path: &Path, hasher: &mut Sha256) -> anyhow::Result<u64> {
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

//! The rows of an export's files as one SHA-256 and a count, the same for
//! two writers of the same rows in the same order: the comparison of
//! auditx's files with DuckDB's, for each format.
//!
//! - **CSV**: the bytes after each file's header line, as they are (both
//!   write RFC 4180 with the same header: byte-identical is the test).
//! - **JSON Lines**: each line parsed and written again by `serde_json`
//!   (keys sorted, one spelling per number and string): JSON writers may
//!   escape, order keys and print numbers differently for the same values.
//! - **Parquet**: the files decoded by DuckDB (both auditx's and DuckDB's
//!   own) into CSV with the export's columns, `eventTime` as UTC text with
//!   milliseconds, then as CSV: encodings, compression and row groups may
//!   differ, the decoded rows may not.

use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

use crate::args::Format;

/// Rows and the SHA-256 of their canonical form (see the module
/// documentation) of CSV or JSON Lines `files`, in order. Parquet files
/// are decoded into CSV first ([`crate::duckdb::DuckDb::fingerprint`]);
/// given here (`--no-duckdb`), their rows are counted from their footers
/// and their raw bytes hashed, which compares with nothing.
pub async fn fingerprint(format: Format, files: &[PathBuf]) -> anyhow::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut rows = 0;
    for file in files {
        match format {
            Format::Csv => rows += hash_data_rows(file, &mut hasher).await?,
            Format::Jsonl => rows += hash_json_lines(file, &mut hasher).await?,
            Format::Parquet => {
                let bytes = bytes::Bytes::from(std::fs::read(file)?);
                rows += parquet_rows(file, bytes.clone())?;
                hasher.update(&bytes);
            }
        }
    }
    Ok((rows, hex::encode(hasher.finalize())))
}

/// The rows a Parquet file's footer declares.
fn parquet_rows(path: &Path, bytes: bytes::Bytes) -> anyhow::Result<u64> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(bytes)
        .with_context(|| format!("reading the Parquet footer of {}", path.display()))?;
    Ok(reader.metadata().file_metadata().num_rows() as u64)
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

/// Feeds each line of a JSON Lines file, parsed and written again with
/// its keys sorted ([`canonical`]), to `hasher`; returns the number of
/// lines.
async fn hash_json_lines(path: &Path, hasher: &mut Sha256) -> anyhow::Result<u64> {
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let mut lines = tokio::io::BufReader::with_capacity(1 << 20, file).lines();
    let mut rows = 0;
    while let Some(line) = lines.next_line().await? {
        rows += 1;
        let value: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("line {rows} of {} is not JSON", path.display()))?;
        let mut written = Vec::with_capacity(line.len());
        canonical(&value, &mut written)?;
        hasher.update(&written);
        hasher.update(b"\n");
    }
    Ok(rows)
}

/// `value` as JSON with every object's keys in sorted order: two writers
/// may order the keys of the same row differently, and whether
/// `serde_json::Value` keeps them as read depends on a feature another
/// crate of the build may turn on.
fn canonical(value: &serde_json::Value, out: &mut Vec<u8>) -> serde_json::Result<()> {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key)?;
                out.push(b':');
                canonical(value, out)?;
            }
            out.push(b'}');
        }
        serde_json::Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(item, out)?;
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn jsonl(text: &str) -> (u64, String) {
        static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "auditx-bench-rows-{}-{n}.jsonl",
            std::process::id()
        ));
        std::fs::write(&path, text).unwrap();
        let fingerprint = fingerprint(Format::Jsonl, std::slice::from_ref(&path))
            .await
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        fingerprint
    }

    #[tokio::test]
    async fn json_lines_compare_by_value_not_spelling() {
        let ours = jsonl("{\"a\":\"é\",\"b\":1.10,\"c\":null}\n{\"a\":\"x\"}\n").await;
        let theirs = jsonl("{\"b\":1.1, \"a\":\"\\u00e9\",\"c\":null}\n{\"a\": \"x\"}\n").await;
        assert_eq!(ours, theirs);
        assert_eq!(ours.0, 2);
        let other = jsonl("{\"a\":\"é\",\"b\":1.10,\"c\":\"\"}\n{\"a\":\"x\"}\n").await;
        assert_ne!(ours.1, other.1, "null is not an empty string");
        let reordered = jsonl("{\"a\":\"x\"}\n{\"a\":\"é\",\"b\":1.10,\"c\":null}\n").await;
        assert_ne!(ours.1, reordered.1, "row order counts");
    }
}

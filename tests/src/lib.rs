//! The end-to-end test harness: an in-process sandbox running the API, the
//! scheduler and N workers (like Quickwit's `ClusterSandbox`), on real Redis
//! and RabbitMQ or on the in-process adapters, with S3 over HTTP (the
//! embedded s3s endpoint, SigV4 on) — or, for the TLS test, Redis, RabbitMQ
//! and HTTPS of the test's own ([`tls_servers`]). Tests drive it through the
//! public HTTP API and check what a user sees: downloaded bytes, statuses,
//! messages. Tests that run the `auditx` binary as processes start them
//! with [`Fleet`]: a scheduler and workers on the sandbox's backends, or
//! `auditx standalone`.

pub mod expect;
pub mod faults;
pub mod fleet;
pub mod otlp;
pub mod private_redis;
pub mod processes;
pub mod sandbox;
pub mod tls_servers;
pub mod verify;

pub use fleet::Fleet;
pub use sandbox::{Adapters, Sandbox, SandboxOptions};

use std::time::Duration;

use auditx::client::ExportRequest;
use serde_json::Value;

/// A finished export as a user sees it: the job and its downloaded files.
pub struct Exported {
    pub job: Value,
    /// Each file of `fileList`, downloaded through its presigned URL.
    pub files: Vec<String>,
}

impl Exported {
    /// The data lines of all files in order, after checking that every file
    /// starts with the header.
    pub fn data_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (i, file) in self.files.iter().enumerate() {
            let mut file_lines = expect::split_lines(file);
            assert!(!file_lines.is_empty(), "file {i} is empty");
            assert_eq!(
                file_lines.remove(0),
                expect::HEADER,
                "file {i} does not start with the header"
            );
            lines.extend(file_lines);
        }
        lines
    }
}

/// A finished export with its files as bytes, whatever their format.
pub struct ExportedFiles {
    pub job: Value,
    /// `(fileKey, bytes)` for each file of `fileList`, in order.
    pub files: Vec<(String, Vec<u8>)>,
}

/// Creates an export for `tenant`, waits for it to end and downloads its
/// files through the presigned URLs the API hands out.
pub async fn export_and_download(
    sandbox: &Sandbox,
    tenant: &str,
    request: &ExportRequest,
) -> anyhow::Result<Exported> {
    let exported = export_and_download_files(sandbox, tenant, request).await?;
    let files = exported
        .files
        .into_iter()
        .map(|(_, bytes)| String::from_utf8(bytes))
        .collect::<Result<_, _>>()?;
    Ok(Exported {
        job: exported.job,
        files,
    })
}

/// [`export_and_download`], keeping each file's key and raw bytes.
pub async fn export_and_download_files(
    sandbox: &Sandbox,
    tenant: &str,
    request: &ExportRequest,
) -> anyhow::Result<ExportedFiles> {
    let client = sandbox.client(tenant);
    let request_id = client.create_export(request).await?;
    let job = client
        .wait(
            request.meter_id,
            &request_id,
            Duration::from_secs(600),
            |_| {},
        )
        .await?;
    anyhow::ensure!(
        job["status"] == "FINISHED",
        "export ended {}: {}",
        job["status"],
        job["error"]
    );
    let mut files = Vec::new();
    for key in job["fileList"].as_array().into_iter().flatten() {
        let key = key.as_str().unwrap_or_default();
        let url = client.presigned_url(key).await?;
        files.push((key.to_owned(), sandbox.download(&url).await?));
    }
    Ok(ExportedFiles { job, files })
}

//! A small client of the auditx HTTP API: create an export or a data
//! query, follow it, and download its files through presigned URLs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use auditx_common::tls::{read_ca, TlsFile};
use futures::StreamExt;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// The filters of an export, as the API takes them.
#[derive(Clone, Debug, Default)]
pub struct ExportRequest {
    pub meter_id: i64,
    pub export_type: String,
    pub run_type: String,
    pub query_from_time: String,
    pub query_to_time: String,
    pub session_ids: Vec<String>,
    pub run_statuses: Vec<String>,
    pub operator_ids: Vec<String>,
    pub format: Option<String>,
}

impl ExportRequest {
    fn query(&self) -> Vec<(String, String)> {
        let mut query = vec![
            ("exportType".to_owned(), self.export_type.clone()),
            ("runType".to_owned(), self.run_type.clone()),
            ("queryFromTime".to_owned(), self.query_from_time.clone()),
            ("queryToTime".to_owned(), self.query_to_time.clone()),
        ];
        for (name, values) in [
            ("sessionIds", &self.session_ids),
            ("runStatuses", &self.run_statuses),
            ("operatorIds", &self.operator_ids),
        ] {
            query.extend(values.iter().map(|v| (name.to_owned(), v.clone())));
        }
        if let Some(format) = &self.format {
            query.push(("format".to_owned(), format.clone()));
        }
        query
    }
}

/// A downloaded export file.
#[derive(Clone, Debug)]
pub struct Downloaded {
    pub file_key: String,
    pub path: PathBuf,
    pub bytes: u64,
}

#[derive(Clone)]
pub struct ApiClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// Turns a non-success envelope into an error carrying its reasons.
async fn envelope(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .with_context(|| format!("reading a {status} response"))?;
    if body["success"] == Value::Bool(true) {
        return Ok(body);
    }
    // The envelope's reasons, or the data query routes' `{code, message}`.
    let reasons = body["reasons"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter_map(|r| r["message"].as_str())
                .collect::<Vec<_>>()
                .join("; ")
        })
        .or_else(|| body["message"].as_str().map(str::to_owned))
        .unwrap_or_default();
    bail!("{status}: {reasons}")
}

impl ApiClient {
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http: reqwest::Client::builder()
                .gzip(true)
                .build()
                .expect("http client"),
        }
    }

    /// Trusts the CAs of the PEM bundle `ca_file` besides the system's,
    /// for the API and for the presigned download URLs (an S3-compatible
    /// server or an ingress with a private CA's certificate).
    pub fn trusting(mut self, ca_file: &Path) -> anyhow::Result<Self> {
        let ca = read_ca(TlsFile {
            setting: "--ca-file",
            path: ca_file,
        })?;
        let mut builder = reqwest::Client::builder().gzip(true);
        for certificate in &ca.certificates {
            builder = builder.add_root_certificate(
                reqwest::Certificate::from_der(certificate)
                    .with_context(|| format!("--ca-file {}", ca_file.display()))?,
            );
        }
        self.http = builder.build().context("an HTTP client")?;
        Ok(self)
    }

    /// The HTTP client (with the CAs of [`Self::trusting`]).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Creates an export; returns its requestId.
    pub async fn create_export(&self, request: &ExportRequest) -> anyhow::Result<String> {
        let url = format!(
            "{}/meters/{}/auditTrail/export",
            self.base, request.meter_id
        );
        let response = self
            .http
            .post(url)
            .bearer_auth(&self.token)
            .query(&request.query())
            .send()
            .await?;
        let body = envelope(response).await?;
        body["data"]["requestId"]
            .as_str()
            .map(str::to_owned)
            .context("no requestId in the response")
    }

    /// One export job as the API shows it.
    pub async fn job(&self, meter_id: i64, request_id: &str) -> anyhow::Result<Value> {
        let url = format!(
            "{}/meters/{meter_id}/auditTrail/export/{request_id}",
            self.base
        );
        let body = envelope(self.http.get(url).bearer_auth(&self.token).send().await?).await?;
        Ok(body["data"].clone())
    }

    /// Polls a job until it ends, calling `on_update` with every state seen.
    pub async fn wait(
        &self,
        meter_id: i64,
        request_id: &str,
        timeout: Duration,
        mut on_update: impl FnMut(&Value),
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let job = self.job(meter_id, request_id).await?;
            on_update(&job);
            if matches!(
                job["status"].as_str(),
                Some("FINISHED" | "FAILED" | "CANCELED")
            ) {
                return Ok(job);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "export {request_id} did not end within {timeout:?}; last status {}",
                    job["status"]
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn presigned_url(&self, file_key: &str) -> anyhow::Result<String> {
        let url = format!("{}/meters/auditTrail/presignedUrl", self.base);
        let response = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .query(&[("fileKey", file_key)])
            .send()
            .await?;
        let body = envelope(response).await?;
        body["data"]
            .as_str()
            .map(str::to_owned)
            .context("no URL in the response")
    }

    /// One page of a meter's audit entries: the response envelope, with
    /// `data` (the entries) and `nextPage` (the cursor of the next page, or
    /// null). `query` holds the export's filters, `pageSize` and `cursor`.
    pub async fn entries(&self, meter_id: i64, query: &[(&str, String)]) -> anyhow::Result<Value> {
        let url = format!("{}/meters/{meter_id}/auditTrail/entries", self.base);
        let response = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .query(query)
            .send()
            .await?;
        envelope(response).await
    }

    /// Counts of a meter's audit entries (`POST /meters/{id}/summary`):
    /// `data`, with `total` and `groups`.
    pub async fn summary(&self, meter_id: i64, body: &Value) -> anyhow::Result<Value> {
        let url = format!("{}/meters/{meter_id}/summary", self.base);
        let response = self
            .http
            .post(url)
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await?;
        Ok(envelope(response).await?["data"].clone())
    }

    /// Submits a data query; returns the job as the API shows it.
    pub async fn submit_query(
        &self,
        query: &str,
        output_format: &str,
        compression: &str,
    ) -> anyhow::Result<Value> {
        let body = serde_json::json!({
            "query": query,
            "outputFormat": output_format,
            "compression": compression,
        });
        let url = format!("{}/query/jobs", self.base);
        let response = self
            .http
            .post(url)
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        Ok(envelope(response).await?["data"].clone())
    }

    /// One data query job.
    pub async fn query_job(&self, id: &str) -> anyhow::Result<Value> {
        let url = format!("{}/query/jobs/{id}", self.base);
        let body = envelope(self.http.get(url).bearer_auth(&self.token).send().await?).await?;
        Ok(body["data"].clone())
    }

    /// Cancels a data query job; returns it as cancelled.
    pub async fn cancel_query(&self, id: &str) -> anyhow::Result<Value> {
        let url = format!("{}/query/jobs/{id}", self.base);
        let body = envelope(
            self.http
                .delete(url)
                .bearer_auth(&self.token)
                .send()
                .await?,
        )
        .await?;
        Ok(body["data"].clone())
    }

    /// Polls a data query until it ends.
    pub async fn wait_query(&self, id: &str, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let job = self.query_job(id).await?;
            if matches!(
                job["queryStatus"].as_str(),
                Some("completed" | "failed" | "cancelled")
            ) {
                return Ok(job);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "query {id} did not end within {timeout:?}; last status {}",
                    job["queryStatus"]
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Downloads every file of a finished job into `dir` (plus its manifest).
    pub async fn download_all(&self, job: &Value, dir: &Path) -> anyhow::Result<Vec<Downloaded>> {
        tokio::fs::create_dir_all(dir).await?;
        let mut keys: Vec<String> = job["fileList"]
            .as_array()
            .context("the job has no fileList")?
            .iter()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect();
        if let Some(manifest) = job["manifestKey"].as_str() {
            keys.push(manifest.to_owned());
        }
        let mut downloaded = Vec::new();
        for key in keys {
            let url = self.presigned_url(&key).await?;
            let name = key.rsplit('/').next().unwrap_or(&key);
            let path = dir.join(name);
            let bytes = download(&self.http, &url, &path).await?;
            downloaded.push(Downloaded {
                file_key: key,
                path,
                bytes,
            });
        }
        Ok(downloaded)
    }
}

/// Streams a URL to a file; a plain GET, as curl would do it.
pub async fn download(http: &reqwest::Client, url: &str, path: &Path) -> anyhow::Result<u64> {
    let response = http.get(url).send().await?;
    let status = response.status();
    if !status.is_success() {
        bail!(
            "downloading {path:?}: {status}: {}",
            response.text().await.unwrap_or_default()
        );
    }
    let mut file = tokio::fs::File::create(path).await?;
    let mut stream = response.bytes_stream();
    let mut total = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        total += chunk.len() as u64;
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    Ok(total)
}

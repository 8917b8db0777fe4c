//! Checks of a finished export as its user sees it: the files downloaded
//! through presigned URLs, against the manifest and the expected rows.

use std::time::Duration;

use auditx::client::{ApiClient, ExportRequest};
use auditx_lake::audit_trail::generate::{audit_rows, run_rows, GenerateSpec};
use chrono::DateTime;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::expect::{self, Query};
use crate::Sandbox;

/// Downloads a FINISHED export's files and checks each against the manifest
/// (key, bytes, SHA-256, rows), that no file holds more than `file_rows`
/// rows, and that the files together hold exactly `expected`, in order.
pub async fn assert_export_exact(
    client: &ApiClient,
    sandbox: &Sandbox,
    job: &Value,
    expected: &[String],
    file_rows: u64,
) {
    assert_eq!(job["status"], "FINISHED", "{job}");
    assert_eq!(job["count"], expected.len() as u64, "{job}");
    let manifest_url = client
        .presigned_url(job["manifestKey"].as_str().expect("a manifestKey"))
        .await
        .unwrap();
    let manifest: Value =
        serde_json::from_slice(&sandbox.download(&manifest_url).await.unwrap()).unwrap();
    let mut lines = Vec::with_capacity(expected.len());
    for (i, key) in job["fileList"].as_array().unwrap().iter().enumerate() {
        let key = key.as_str().unwrap();
        let url = client.presigned_url(key).await.unwrap();
        let bytes = sandbox.download(&url).await.unwrap();
        let entry = &manifest["files"][i];
        // The job lists keys as Zuora does, `<requestId>/<file>`; the
        // manifest holds the objects' whole keys (under the tenant).
        let entry_key = entry["key"].as_str().unwrap_or_default();
        assert!(
            entry_key.ends_with(&format!("/{key}")),
            "manifest entry {i}: {entry_key} is not the object of {key}"
        );
        assert_eq!(
            entry["bytes"],
            bytes.len() as u64,
            "manifest bytes of {key}"
        );
        assert_eq!(
            entry["sha256"],
            hex::encode(Sha256::digest(&bytes)),
            "manifest sha256 of {key}"
        );
        let mut file_lines = expect::split_lines(&String::from_utf8(bytes).unwrap());
        assert_eq!(file_lines.remove(0), expect::HEADER, "header of {key}");
        assert_eq!(
            entry["rows"],
            file_lines.len() as u64,
            "manifest rows of {key}"
        );
        assert!(
            file_lines.len() as u64 <= file_rows,
            "{key} has {} rows, more than {file_rows}",
            file_lines.len()
        );
        lines.extend(file_lines);
    }
    assert_eq!(lines.len(), expected.len(), "rows in the files");
    assert!(lines == expected, "rows lost, duplicated or reordered");
}

/// The tenant's next export — `request` with its range ending at `to` —
/// runs on the fleet as a fault left it and holds exactly the rows of
/// `spec` that `query`, ending at `to`, selects.
pub async fn assert_next_export_runs(
    client: &ApiClient,
    sandbox: &Sandbox,
    spec: &GenerateSpec,
    request: &ExportRequest,
    query: &Query,
    to: &str,
    file_rows: u64,
) {
    let next = ExportRequest {
        query_to_time: to.into(),
        ..request.clone()
    };
    let id = client.create_export(&next).await.unwrap();
    let job = client
        .wait(request.meter_id, &id, Duration::from_secs(300), |_| {})
        .await
        .unwrap();
    let query = Query {
        to_ms: DateTime::parse_from_rfc3339(to).unwrap().timestamp_millis(),
        ..query.clone()
    };
    let expected = expect::expected_lines(audit_rows(spec), &run_rows(spec), &query);
    assert_export_exact(client, sandbox, &job, &expected, file_rows).await;
}

//! The S3 side of ending an export: completing uploads (idempotently),
//! the manifest, discarding a canceled or failed export's objects, and
//! announcing the end with presigned links.

use std::time::Duration;

use auditx_common::s3::StorageError;
use auditx_common::time::iso_millis;
use auditx_proto::{AssembleOutcome, MeterId, PresignedFile, RequestId, TenantId};
use bytes::Bytes;
use chrono::Utc;
use serde::Serialize;
use tracing::Instrument;

use crate::context::Services;
use crate::error::DriveError;
use crate::export::assign::FileExtent;
use crate::export::job_plan::JobPlan;
use crate::export::jobs::{ExportQuery, Job, JobSpec, JobStatus};
use crate::export::layout;
use crate::fleet::events;

/// Completes a file's upload from its assembly report. Completing twice
/// (after a takeover, or by a stale driver) finds the upload gone: if the
/// object is there with the reported size, it was completed before.
#[tracing::instrument(name = "scheduler.complete_file", skip_all, fields(request_id = %outcome.request_id, file = outcome.file.0))]
pub async fn complete_file(
    services: &Services,
    outcome: &AssembleOutcome,
) -> Result<(), DriveError> {
    let bucket = &services.config.s3.export_bucket;
    let mut parts: Vec<(i32, String)> = outcome
        .parts
        .iter()
        .map(|p| (p.number, p.etag.clone()))
        .collect();
    parts.sort_by_key(|(number, _)| *number);
    let completed = services
        .store
        .complete_multipart(bucket, &outcome.key, &outcome.upload_id, &parts)
        .await;
    match completed {
        Ok(()) => Ok(()),
        Err(error) if !error.is_transient() => {
            match services.store.head(bucket, &outcome.key).await? {
                Some(size) if size == outcome.bytes => Ok(()),
                _ => Err(DriveError::Permanent(format!(
                    "completing {} failed: {error}",
                    outcome.key
                ))),
            }
        }
        Err(error) => Err(error.into()),
    }
}

/// `manifest.json` beside the files.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    request_id: &'a RequestId,
    tenant: &'a TenantId,
    meter_id: MeterId,
    query: &'a ExportQuery,
    consistent_as_of: String,
    count: u64,
    files: Vec<ManifestFile<'a>>,
}

#[derive(Serialize)]
struct ManifestFile<'a> {
    key: &'a str,
    rows: u64,
    bytes: u64,
    sha256: &'a str,
}

/// Writes the manifest; returns its key.
pub async fn write_manifest(
    services: &Services,
    spec: &JobSpec,
    plan: &JobPlan,
    files: &[(&FileExtent, &AssembleOutcome)],
) -> Result<String, DriveError> {
    let manifest = Manifest {
        request_id: &spec.request_id,
        tenant: &spec.tenant,
        meter_id: spec.meter_id,
        query: &spec.query,
        consistent_as_of: iso_millis(plan.consistent_as_of_ms),
        count: files.iter().map(|(f, _)| f.rows).sum(),
        files: files
            .iter()
            .map(|(f, o)| ManifestFile {
                key: &o.key,
                rows: f.rows,
                bytes: o.bytes,
                sha256: &o.sha256,
            })
            .collect(),
    };
    let body =
        serde_json::to_vec_pretty(&manifest).map_err(|e| DriveError::Permanent(e.to_string()))?;
    let key = layout::manifest_key(&spec.tenant, &spec.request_id);
    let bucket = &services.config.s3.export_bucket;
    services
        .store
        .put(bucket, &key, Bytes::from(body), "application/json")
        .await?;
    Ok(key)
}

/// Deletes, in the background, staged chunks whose every byte is in
/// completed files: no task of the job reads them again (a late duplicate
/// that does fails, and a failure after a success is ignored). On the
/// embedded endpoint a chunk's pages are then dropped before they are
/// written to disk; a chunk not deleted here goes at the job's end.
pub fn delete_staged_chunks(services: &Services, request_id: &RequestId, keys: Vec<String>) {
    if keys.is_empty() {
        return;
    }
    let store = services.store.clone();
    let bucket = services.config.s3.export_bucket.clone();
    let request_id = request_id.clone();
    tokio::spawn(
        async move {
            for key in keys {
                if let Err(error) = store.delete(&bucket, &key).await {
                    tracing::debug!(%request_id, key, %error, "staged chunk not deleted yet");
                }
            }
        }
        .in_current_span(),
    );
}

pub async fn delete_staging(services: &Services, spec: &JobSpec) -> Result<(), StorageError> {
    let prefix = layout::staging_prefix(&spec.tenant, &spec.request_id);
    services
        .store
        .delete_prefix(&services.config.s3.export_bucket, &prefix)
        .await
}

/// Aborts a canceled or failed export's uploads and deletes its files,
/// manifest and staging objects. Safe to repeat. Fails only on transient
/// trouble; objects that cannot be deleted for good are logged.
pub async fn discard_outputs(services: &Services, spec: &JobSpec) -> Result<(), DriveError> {
    let bucket = &services.config.s3.export_bucket;
    for (file, upload_id) in services.jobs.uploads(&spec.request_id).await? {
        let key = layout::file_key(
            &spec.tenant,
            &spec.request_id,
            spec.query.export_type,
            spec.query.format,
            auditx_proto::FileIndex(file),
        );
        match services
            .store
            .abort_multipart(bucket, &key, &upload_id)
            .await
        {
            Ok(()) => {}
            Err(error) if error.is_transient() => return Err(error.into()),
            // Already completed (the object is deleted below) or aborted.
            Err(error) => {
                tracing::debug!(request_id = %spec.request_id, key, %error, "upload not aborted")
            }
        }
    }
    let prefixes = [
        layout::export_prefix(&spec.tenant, &spec.request_id),
        layout::staging_prefix(&spec.tenant, &spec.request_id),
    ];
    for prefix in prefixes {
        match services.store.delete_prefix(bucket, &prefix).await {
            Ok(()) => {}
            Err(error) if error.is_transient() => return Err(error.into()),
            // Retrying will not help (e.g. access denied): the job ends anyway.
            Err(error) => {
                tracing::error!(request_id = %spec.request_id, prefix, %error, "export objects not deleted")
            }
        }
    }
    Ok(())
}

/// Publishes an ended job's event (with presigned links if it finished),
/// takes it off its tenant's queue and forgets its driver state.
#[tracing::instrument(name = "scheduler.settle", skip_all, fields(request_id = %job.spec.request_id, status = job.state.status.as_str()))]
pub async fn settle(services: &Services, job: &Job) -> Result<(), DriveError> {
    let id = &job.spec.request_id;
    let files = if job.state.status == JobStatus::Finished {
        presign(services, job).await?
    } else {
        Vec::new()
    };
    match events::publish_export_event(services.queue.as_ref(), job, files).await {
        Ok(()) => {}
        Err(error) if error.is_transient() => return Err(error.into()),
        Err(error) => tracing::error!(request_id = %id, %error, "export event not published"),
    }
    services.jobs.retire(job).await?;
    Ok(())
}

async fn presign(services: &Services, job: &Job) -> Result<Vec<PresignedFile>, DriveError> {
    let expiry = Duration::from_secs(services.config.s3.presign_expiry_secs);
    let expires_at = iso_millis(Utc::now().timestamp_millis() + expiry.as_millis() as i64);
    let bucket = &services.config.s3.export_bucket;
    let mut files = Vec::with_capacity(job.state.file_list.len());
    for key in &job.state.file_list {
        let url = services.store.presign_get(bucket, key, expiry).await?;
        files.push(PresignedFile {
            file_key: key.clone(),
            url,
            expires_at: expires_at.clone(),
        });
    }
    Ok(files)
}

//! How export jobs look in API responses.

use auditx_proto::{MeterId, RequestId};
use chrono::{DateTime, SecondsFormat};
use serde::Serialize;
use utoipa::ToSchema;

use super::openapi::JobStatusName;
use crate::export::jobs::{ExportQuery, Job, Progress};

/// The `data` of a create call.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    /// Follow the job with it.
    #[schema(value_type = String)]
    pub request_id: RequestId,
}

/// One export job.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Job)]
pub struct JobView<'a> {
    #[schema(value_type = String)]
    pub request_id: &'a RequestId,
    #[schema(value_type = i64)]
    pub meter_id: MeterId,
    pub query: &'a ExportQuery,
    #[schema(value_type = JobStatusName)]
    pub status: &'static str,
    /// Rows exported (once FINISHED).
    pub count: u64,
    #[schema(format = DateTime)]
    pub creation_time: String,
    /// When the job got its tenant's lease and started running.
    #[schema(format = DateTime)]
    pub start_time: Option<String>,
    #[schema(format = DateTime)]
    pub completion_time: Option<String>,
    /// The files' keys, for `GET /meters/auditTrail/presignedUrl`.
    #[schema(value_type = Vec<String>)]
    pub file_list: &'a [String],
    /// The manifest's key, once FINISHED.
    #[schema(value_type = Option<String>)]
    pub manifest_key: Option<&'a str>,
    pub progress: ProgressView<'a>,
    /// Why the job failed.
    #[schema(value_type = Option<String>)]
    pub error: Option<&'a str>,
    /// A cancel was asked for and the job's driver has not stopped it yet.
    pub cancel_requested: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Progress)]
pub struct ProgressView<'a> {
    /// 0 to 100.
    #[schema(maximum = 100)]
    pub percent: u8,
    #[serde(flatten)]
    pub counts: &'a Progress,
}

impl<'a> JobView<'a> {
    pub fn new(job: &'a Job) -> Self {
        let (spec, state) = (&job.spec, &job.state);
        Self {
            request_id: &spec.request_id,
            meter_id: spec.meter_id,
            query: &spec.query,
            status: state.status.as_str(),
            count: state.count,
            creation_time: iso_millis(spec.created_at_ms),
            start_time: state.started_at_ms.map(iso_millis),
            completion_time: state.completed_at_ms.map(iso_millis),
            file_list: &state.file_list,
            manifest_key: state.manifest_key.as_deref(),
            progress: ProgressView {
                percent: state.progress.percent(),
                counts: &state.progress,
            },
            error: state.error.as_deref(),
            cancel_requested: job.cancel_requested,
        }
    }
}

/// Epoch milliseconds as ISO-8601 UTC with milliseconds, e.g.
/// `2025-07-23T18:46:48.775Z`.
fn iso_millis(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

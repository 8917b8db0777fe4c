//! How export jobs look in API responses.

use auditx_proto::{MeterId, RequestId};
use chrono::{DateTime, SecondsFormat};
use serde::Serialize;

use crate::export::jobs::{ExportQuery, Job, Progress};

/// The `data` of a create call.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    pub request_id: RequestId,
}

/// One export job.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobView<'a> {
    pub request_id: &'a RequestId,
    pub meter_id: MeterId,
    pub query: &'a ExportQuery,
    pub status: &'static str,
    pub count: u64,
    pub creation_time: String,
    /// When the job got its tenant's lease and started running.
    pub start_time: Option<String>,
    pub completion_time: Option<String>,
    pub file_list: &'a [String],
    pub manifest_key: Option<&'a str>,
    pub progress: ProgressView<'a>,
    pub error: Option<&'a str>,
    pub cancel_requested: bool,
}

#[derive(Debug, Serialize)]
pub struct ProgressView<'a> {
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

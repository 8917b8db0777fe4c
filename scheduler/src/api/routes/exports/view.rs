//! How export jobs look in API responses.

use auditx_common::time::iso_seconds;
use auditx_proto::{MeterId, RequestId};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::schema_names::JobStatusName;
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
    pub query: QueryView<'a>,
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
    /// The files' keys (`<requestId>/<file>`), for
    /// `GET /meters/auditTrail/presignedUrl`.
    #[schema(value_type = Vec<String>)]
    pub file_list: Vec<&'a str>,
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

/// The echo of a job's query, with the reference's names: the run
/// statuses are `statuses` (null when not given).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ExportQuery)]
pub struct QueryView<'a> {
    #[schema(value_type = crate::api::schema_names::ExportType)]
    pub export_type: &'static str,
    #[schema(value_type = crate::api::schema_names::RunTypeName)]
    pub run_type: &'static str,
    #[schema(value_type = Vec<String>)]
    pub session_ids: &'a [String],
    /// Only runs whose latest status is one of these; null for all.
    #[schema(value_type = Option<Vec<crate::api::schema_names::RunStatus>>)]
    pub statuses: Option<&'a [String]>,
    #[schema(value_type = Vec<String>)]
    pub operator_ids: &'a [String],
    /// As given (ISO-8601 with zone).
    #[schema(value_type = String)]
    pub query_from_time: &'a str,
    #[schema(value_type = String)]
    pub query_to_time: &'a str,
    #[schema(value_type = crate::api::schema_names::ExportFormat)]
    pub format: &'static str,
}

impl<'a> QueryView<'a> {
    fn new(query: &'a ExportQuery) -> Self {
        Self {
            export_type: query.export_type.as_str(),
            run_type: query.run_type.as_str(),
            session_ids: &query.session_ids,
            statuses: (!query.run_statuses.is_empty()).then_some(query.run_statuses.as_slice()),
            operator_ids: &query.operator_ids,
            query_from_time: &query.query_from_time,
            query_to_time: &query.query_to_time,
            format: query.format.as_str(),
        }
    }
}

/// The `data` of a list call.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ExportJobsPage)]
pub struct JobsPage<'a> {
    /// 1-based.
    pub page: u32,
    pub page_size: u32,
    pub jobs: Vec<JobView<'a>>,
}

/// An export file's key as the API shows it: without the tenant prefix of
/// its object key (`<tenant>/<requestId>/<file>`), as Zuora's reference
/// shows them; the presign route takes either form.
pub fn shown_key<'a>(tenant: &str, key: &'a str) -> &'a str {
    key.strip_prefix(tenant)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(key)
}

impl<'a> JobView<'a> {
    pub fn new(job: &'a Job) -> Self {
        let (spec, state) = (&job.spec, &job.state);
        let tenant = spec.tenant.as_str();
        Self {
            request_id: &spec.request_id,
            meter_id: spec.meter_id,
            query: QueryView::new(&spec.query),
            status: state.status.as_str(),
            count: state.count,
            creation_time: iso_seconds(spec.created_at_ms),
            start_time: state.started_at_ms.map(iso_seconds),
            completion_time: state.completed_at_ms.map(iso_seconds),
            file_list: state
                .file_list
                .iter()
                .map(|k| shown_key(tenant, k))
                .collect(),
            manifest_key: state.manifest_key.as_deref().map(|k| shown_key(tenant, k)),
            progress: ProgressView {
                percent: state.progress.percent(),
                counts: &state.progress,
            },
            error: state.error.as_deref(),
            cancel_requested: job.cancel_requested,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_times_as_the_reference_shows_them() {
        assert_eq!(
            shown_key("acme", "acme/r-1/audit_trail.csv"),
            "r-1/audit_trail.csv"
        );
        assert_eq!(shown_key("acme", "other/r-1/a.csv"), "other/r-1/a.csv");
        assert_eq!(iso_seconds(1_763_656_858_775), "2025-11-20T16:40:58Z");
    }
}

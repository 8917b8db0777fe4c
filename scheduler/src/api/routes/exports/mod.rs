//! The export job routes: create, list, get and cancel.

pub mod presign;
pub mod view;

use auditx_common::queue::Headers;
use auditx_common::telemetry::inject_trace_context;
use auditx_proto::{MeterId, RequestId, TRACEPARENT_HEADER};
use axum::extract::State;
use axum::response::{IntoResponse, Json, Response};
use axum::Extension;
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::auth::Caller;
use crate::api::edge::trace::TrackId;
use crate::api::openapi::ErrorEnvelope;
use crate::api::request::filters::{CreateExportParams, ListRequest};
use crate::api::request::paging::page_window;
use crate::api::request::params::{JobPath, MeterPath};
use crate::api::request::query::{NoParams, Query};
use crate::api::response::envelope::Envelope;
use crate::api::response::error::{ApiError, ApiResult};
use crate::api::routes::exports::view::{Created, JobView, JobsPage};
use crate::context::Services;
use crate::export::jobs::{CancelOutcome, Job, JobSpec};
use crate::fleet::events::publish_export_event;

/// `POST /meters/{meterId}/auditTrail/export`: stores a PENDING job and
/// wakes the scheduler; the caller follows it by its request id.
#[utoipa::path(
    post,
    path = "/meters/{meterId}/auditTrail/export",
    operation_id = "createExport",
    summary = "Create a job exporting a meter's audit trail",
    description = "Returns a requestId at once; the job waits as PENDING while another export \
        of the tenant runs. Arrays may also be given comma separated or as name[]. \
        queryFromTime must be before queryToTime.",
    params(
        ("meterId" = i64, Path, minimum = 1, description = "The meter."),
        CreateExportParams,
    ),
    responses(
        (status = 200, description = "The job was created.", body = Envelope<Created>),
        (status = 429, description = "TOO_MANY_REQUESTS: a per-tenant limit is reached; retry after Retry-After seconds.", body = ErrorEnvelope),
    )
)]
pub async fn create(
    State(services): State<Services>,
    caller: Caller,
    MeterPath(meter): MeterPath,
    Extension(TrackId(track_id)): Extension<TrackId>,
    Query(params): Query<CreateExportParams>,
) -> ApiResult<Envelope<Created>> {
    let request = params.into_request()?;
    crate::api::edge::limits::admit_export(&services, &caller.tenant).await?;
    let scope = caller.scope();
    let spec = JobSpec {
        request_id: RequestId::generate(),
        tenant: caller.tenant,
        meter_id: meter,
        query: request.query,
        from_ms: request.from_ms,
        to_ms: request.to_ms,
        created_at_ms: Utc::now().timestamp_millis(),
        traceparent: current_traceparent(),
        track_id,
        scope,
    };
    let span = tracing::Span::current();
    span.record("request_id", spec.request_id.as_str());
    span.record("meter", meter.0);
    services.jobs.create(&spec).await?;
    services.wake.notify_one();
    tracing::info!(
        request_id = %spec.request_id,
        meter = meter.0,
        export_type = spec.query.export_type.as_str(),
        "export job created"
    );
    Ok(Envelope::ok(Created {
        request_id: spec.request_id,
    }))
}

/// The answer of a list call: the envelope with `data` `{page, pageSize,
/// jobs}` and the neighbour pages as links.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ExportJobsEnvelope)]
pub struct ListAnswer<'a> {
    /// Always true.
    pub success: bool,
    pub data: JobsPage<'a>,
    /// The previous page (path and query, same filters), null on the first.
    pub previous_page: Option<String>,
    /// The next page (path and query, same filters), null on the last.
    pub next_page: Option<String>,
}

/// `GET /meters/{meterId}/auditTrail/export`: the meter's jobs, newest first.
#[utoipa::path(
    get,
    path = "/meters/{meterId}/auditTrail/export",
    operation_id = "listExports",
    summary = "List a meter's export jobs, newest first",
    params(
        ("meterId" = i64, Path, minimum = 1, description = "The meter."),
        ListRequest,
    ),
    responses(
        (status = 200, description = "A page of jobs; previousPage and nextPage are the neighbour pages' links (path and query) or null.", body = ListAnswer),
    )
)]
pub async fn list(
    State(services): State<Services>,
    caller: Caller,
    MeterPath(meter): MeterPath,
    Query(request): Query<ListRequest>,
) -> ApiResult<Response> {
    let mut jobs = services.jobs.list_for_meter(&caller.tenant, meter).await?;
    jobs.reverse();
    let scope = caller.scope();
    jobs.retain(|job| scope.can_see(&job.spec.scope) && request.matches(job));
    let window = page_window(jobs.len(), request.page, request.page_size);
    let views: Vec<JobView> = jobs[window.items].iter().map(JobView::new).collect();
    let link = |page: u32| page_link(meter, &request, page);
    Ok(Json(ListAnswer {
        success: true,
        data: JobsPage {
            page: request.page,
            page_size: request.page_size,
            jobs: views,
        },
        previous_page: window.previous_page.map(link),
        next_page: window.next_page.map(link),
    })
    .into_response())
}

/// The path and query of page `page` of the list `request` asked for.
fn page_link(meter: MeterId, request: &ListRequest, page: u32) -> String {
    let mut link = format!(
        "/meters/{}/auditTrail/export?page={page}&pageSize={}",
        meter.0, request.page_size
    );
    if let Some(export_type) = request.export_type {
        link.push_str(&format!("&exportType={}", export_type.as_str()));
    }
    for session in &request.session_ids {
        link.push_str("&sessionIds=");
        link.push_str(&percent_encoded(session));
    }
    link
}

/// `text` with every byte but RFC 3986's unreserved ones percent-encoded.
fn percent_encoded(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET /meters/{meterId}/auditTrail/export/{requestId}`.
#[utoipa::path(
    get,
    path = "/meters/{meterId}/auditTrail/export/{requestId}",
    operation_id = "getExport",
    summary = "One export job",
    params(
        ("meterId" = i64, Path, minimum = 1, description = "The meter."),
        ("requestId" = String, Path, description = "The job's requestId."),
    ),
    responses(
        (status = 200, description = "The job.", body = Envelope<JobView>),
        (status = 404, description = "NOT_FOUND: no such job of this tenant and meter.", body = ErrorEnvelope),
    )
)]
pub async fn get(
    State(services): State<Services>,
    caller: Caller,
    path: JobPath,
    _: Query<NoParams>,
) -> ApiResult<Response> {
    let job = own_job(&services, &caller, path.meter, &path.request_id).await?;
    Ok(Envelope::ok(JobView::new(&job)).into_response())
}

/// `DELETE /meters/{meterId}/auditTrail/export/{requestId}`: a PENDING job
/// is canceled at once (and its event published); a RUNNING one is flagged
/// and its driver stops it, so the answer shows `cancelRequested: true`.
#[utoipa::path(
    delete,
    path = "/meters/{meterId}/auditTrail/export/{requestId}",
    operation_id = "cancelExport",
    summary = "Cancel an export job",
    description = "A PENDING job is CANCELED at once; a RUNNING one shows cancelRequested: true \
        until its driver has stopped it.",
    params(
        ("meterId" = i64, Path, minimum = 1, description = "The meter."),
        ("requestId" = String, Path, description = "The job's requestId."),
    ),
    responses(
        (status = 200, description = "The job after the cancel request.", body = Envelope<JobView>),
        (status = 404, description = "NOT_FOUND: no such job of this tenant and meter.", body = ErrorEnvelope),
        (status = 409, description = "CONFLICT: the job has already ended.", body = ErrorEnvelope),
    )
)]
pub async fn cancel(
    State(services): State<Services>,
    caller: Caller,
    path: JobPath,
    _: Query<NoParams>,
) -> ApiResult<Response> {
    let id = &path.request_id;
    own_job(&services, &caller, path.meter, id).await?;
    let job = match services
        .jobs
        .request_cancel(id, Utc::now().timestamp_millis())
        .await?
    {
        CancelOutcome::CanceledPending(job) => {
            tracing::info!(request_id = %id, "pending export job canceled");
            // The cancel has happened whatever becomes of the event; a
            // failure to announce it is logged, not turned into an error.
            if let Err(e) = publish_export_event(services.queue.as_ref(), &job, vec![]).await {
                tracing::error!(request_id = %id, error = %e, "cancel event not published");
            }
            job
        }
        CancelOutcome::Requested => {
            tracing::info!(request_id = %id, "cancel of running export job requested");
            services.jobs.get(id).await?.ok_or_else(|| not_found(id))?
        }
        CancelOutcome::AlreadyEnded(status) => {
            return Err(ApiError::Conflict(format!(
                "job already {}",
                status.as_str()
            )));
        }
        CancelOutcome::NotFound => return Err(not_found(id)),
    };
    Ok(Envelope::ok(JobView::new(&job)).into_response())
}

/// The job if it exists, belongs to this meter and the caller may see it;
/// other tenants' jobs, and jobs outside the caller's entity/org scope, are
/// indistinguishable from missing ones.
async fn own_job(
    services: &Services,
    caller: &Caller,
    meter: MeterId,
    id: &RequestId,
) -> ApiResult<Job> {
    match services.jobs.get(id).await? {
        Some(job) if job.spec.meter_id == meter && may_see(caller, &job) => Ok(job),
        _ => Err(not_found(id)),
    }
}

/// The caller's tenant made the job, within the caller's entity/org scope.
pub(crate) fn may_see(caller: &Caller, job: &Job) -> bool {
    job.spec.tenant == caller.tenant && caller.scope().can_see(&job.spec.scope)
}

fn not_found(id: &RequestId) -> ApiError {
    ApiError::NotFound(format!("requestId: {:?} not found", id.as_str()))
}

/// The W3C trace context of the request's span, for the scheduler to
/// continue when it runs the job.
pub(crate) fn current_traceparent() -> Option<String> {
    let mut headers = Headers::new();
    inject_trace_context(&mut headers);
    headers.remove(TRACEPARENT_HEADER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_links_keep_the_filters() {
        let request = ListRequest {
            export_type: Some(auditx_proto::RecordType::Sample),
            session_ids: vec!["R-1".into(), "a b&c".into()],
            page: 1,
            page_size: 5,
        };
        assert_eq!(
            page_link(MeterId(709), &request, 2),
            "/meters/709/auditTrail/export?page=2&pageSize=5&exportType=SAMPLE\
             &sessionIds=R-1&sessionIds=a%20b%26c"
        );
    }
}

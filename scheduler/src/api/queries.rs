//! The data query routes: submit, list, get and cancel (Zuora's Data Query
//! shapes: `queryStatus`, `outputFormat`, `dataFile`, ...).

use auditx_lake::sql::{check_query, SqlError};
use auditx_proto::{Compression, QueryId, QueryOutputFormat};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::auth::Caller;
use super::envelope::Envelope;
use super::error::{ApiError, ApiResult};
use super::export_query::{page_window, parse_paging, PAGE, PAGE_SIZE};
use super::exports::current_traceparent;
use super::openapi::{
    CompressionName, ErrorEnvelope, QueryFormatName, QueryStatusName, QuerySubmitBody,
};
use super::params::{parse_one_of, QueryParams};
use super::trace::TrackId;
use crate::context::Services;
use crate::query::driver::presign;
use crate::query::jobs::{CancelOutcome, QueryJob, QuerySpec, QueryState, QueryStatus};

/// Longest SQL text accepted.
const MAX_QUERY_BYTES: usize = 64 * 1024;
const DEFAULT_PAGE_SIZE: u32 = 20;
const MAX_PAGE_SIZE: u32 = 100;
const QUERY_STATUS: &str = "queryStatus";

/// A data query job as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = QueryJob)]
pub struct QueryView {
    #[schema(value_type = String)]
    pub id: QueryId,
    pub query: String,
    #[schema(value_type = QueryStatusName)]
    pub query_status: &'static str,
    #[schema(value_type = QueryFormatName)]
    pub output_format: &'static str,
    #[schema(value_type = CompressionName)]
    pub compression: &'static str,
    pub output_rows: u64,
    /// Milliseconds the worker spent running the query and writing its result.
    pub processing_time: u64,
    /// Presigned download URL of the result, once completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[schema(format = DateTime)]
    pub created_on: String,
    #[schema(format = DateTime)]
    pub updated_on: String,
}

impl QueryView {
    async fn new(services: &Services, job: &QueryJob) -> ApiResult<Self> {
        let data_file = match (&job.state.status, &job.state.data_key) {
            (QueryStatus::Completed, Some(key)) => Some(
                presign(services, key)
                    .await
                    .map_err(|e| ApiError::Unavailable(e.to_string()))?,
            ),
            _ => None,
        };
        Ok(Self {
            id: job.spec.id.clone(),
            query: job.spec.query.clone(),
            query_status: job.state.status.as_str(),
            output_format: job.spec.output_format.as_str(),
            compression: job.spec.compression.as_str(),
            output_rows: job.state.output_rows,
            processing_time: job.state.processing_ms,
            data_file,
            error_message: job.state.error.clone(),
            created_on: iso(job.spec.created_at_ms),
            updated_on: iso(job.state.updated_at_ms),
        })
    }
}

fn iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The body of a submit call.
struct Submit {
    query: String,
    output_format: QueryOutputFormat,
    compression: Compression,
}

fn parse_submit(body: &[u8]) -> ApiResult<Submit> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::InvalidParameter(format!(
            "body: not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(mut fields) = value else {
        return Err(ApiError::InvalidParameter("body: not a JSON object".into()));
    };
    let query = match fields.remove("query") {
        Some(Value::String(q)) if !q.trim().is_empty() => q,
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ApiError::MissingParameter("query: required".into()))
        }
        Some(_) => return Err(ApiError::InvalidParameter("query: must be a string".into())),
    };
    if query.len() > MAX_QUERY_BYTES {
        return Err(ApiError::InvalidParameter(format!(
            "query: longer than {MAX_QUERY_BYTES} bytes"
        )));
    }
    let output_format = match text_field(&mut fields, "outputFormat")? {
        Some(v) => parse_one_of(
            "outputFormat",
            &v.to_ascii_uppercase(),
            QueryOutputFormat::parse,
            &["CSV", "JSON", "TSV"],
        )?,
        None => QueryOutputFormat::Csv,
    };
    let compression = match text_field(&mut fields, "compression")? {
        Some(v) => parse_one_of(
            "compression",
            &v.to_ascii_uppercase(),
            Compression::parse,
            &["NONE", "GZIP"],
        )?,
        None => Compression::None,
    };
    if let Some(unknown) = fields.keys().next() {
        return Err(ApiError::InvalidParameter(format!(
            "{unknown}: unknown field (the body takes query, outputFormat, compression)"
        )));
    }
    Ok(Submit {
        query,
        output_format,
        compression,
    })
}

fn text_field(fields: &mut Map<String, Value>, name: &str) -> ApiResult<Option<String>> {
    match fields.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::InvalidParameter(format!(
            "{name}: must be a string"
        ))),
    }
}

impl From<SqlError> for ApiError {
    fn from(e: SqlError) -> Self {
        ApiError::InvalidParameter(format!("query: {e}"))
    }
}

/// `POST /query/jobs`: checks the SQL, stores the query as `accepted` and
/// wakes the scheduler.
#[utoipa::path(
    post,
    path = "/query/jobs",
    operation_id = "submitQuery",
    summary = "Submit a data query (read-only SQL over the tenant's audit tables)",
    description = "Checked at once: one read-only SELECT over the tenant tables; anything else \
        is a 400 saying why. 429 with Retry-After past the tenant's running + queued limit.",
    request_body(content = QuerySubmitBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The accepted query.", body = Envelope<QueryView>),
        (status = 429, description = "TOO_MANY_REQUESTS: the tenant's running + queued limit is reached; retry after Retry-After seconds.", body = ErrorEnvelope),
    )
)]
pub async fn submit(
    State(services): State<Services>,
    caller: Caller,
    Extension(TrackId(track_id)): Extension<TrackId>,
    params: QueryParams,
    body: Bytes,
) -> ApiResult<Response> {
    params.only(&[])?;
    let submit = parse_submit(&body)?;
    let checked = check_query(&submit.query)?;
    super::limits::admit_query(&services, &caller.tenant).await?;
    let limits = &services.config.query;
    let unsettled = services.queries.tenant_queue(&caller.tenant).await?.len() as u64;
    let most = u64::from(limits.max_running_per_tenant) + u64::from(limits.max_queued_per_tenant);
    if unsettled >= most {
        return Err(ApiError::TooManyRequests {
            message: format!(
                "tenant {} already has {unsettled} data queries running or queued (limit {} running + {} queued); retry later",
                caller.tenant, limits.max_running_per_tenant, limits.max_queued_per_tenant
            ),
            retry_after_secs: limits.retry_after_secs,
        });
    }
    let scope = caller.scope();
    let spec = QuerySpec {
        id: QueryId::generate(),
        tenant: caller.tenant,
        query: submit.query,
        checked_sql: checked.sql,
        output_format: submit.output_format,
        compression: submit.compression,
        created_at_ms: Utc::now().timestamp_millis(),
        traceparent: current_traceparent(),
        track_id,
        scope,
    };
    tracing::Span::current().record("query_id", spec.id.as_str());
    services.queries.create(&spec).await?;
    services.query_wake.notify_one();
    tracing::info!(query_id = %spec.id, tenant = %spec.tenant, "data query accepted");
    // The state as created: the scheduler may already have started it.
    let job = QueryJob {
        state: QueryState::accepted(spec.created_at_ms),
        spec,
    };
    Ok(Envelope::ok(QueryView::new(&services, &job).await?).into_response())
}

/// `GET /query/jobs`: the tenant's queries, newest first.
#[utoipa::path(
    get,
    path = "/query/jobs",
    operation_id = "listQueries",
    summary = "List the tenant's data queries, newest first",
    params(
        ("queryStatus" = Option<QueryStatusName>, Query, description = "Only this status."),
        ("page" = Option<i64>, Query, minimum = 1, maximum = 4294967295_i64, description = "1-based page number (default 1)."),
        ("pageSize" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Queries per page (default 20)."),
    ),
    responses(
        (status = 200, description = "A page of queries.", body = Envelope<Vec<QueryView>>),
    )
)]
pub async fn list(
    State(services): State<Services>,
    caller: Caller,
    params: QueryParams,
) -> ApiResult<Response> {
    params.only(&[QUERY_STATUS, PAGE, PAGE_SIZE])?;
    let status = params
        .optional(QUERY_STATUS)?
        .map(|v| {
            parse_one_of(
                QUERY_STATUS,
                v,
                QueryStatus::parse,
                &QueryStatus::ALL.map(QueryStatus::as_str),
            )
        })
        .transpose()?;
    let (page, page_size) = parse_paging(&params, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
    let mut jobs = services.queries.list(&caller.tenant).await?;
    jobs.reverse();
    let scope = caller.scope();
    jobs.retain(|job| {
        scope.can_see(&job.spec.scope) && status.is_none_or(|s| job.state.status == s)
    });
    let window = page_window(jobs.len(), page, page_size);
    let mut views = Vec::with_capacity(window.items.len());
    for job in &jobs[window.items] {
        views.push(QueryView::new(&services, job).await?);
    }
    Ok(Envelope::page(views, window.previous_page, window.next_page).into_response())
}

/// `GET /query/jobs/{id}`.
#[utoipa::path(
    get,
    path = "/query/jobs/{id}",
    operation_id = "getQuery",
    summary = "One data query; dataFile is a presigned URL once completed",
    params(("id" = String, Path, description = "The query's id.")),
    responses(
        (status = 200, description = "The query.", body = Envelope<QueryView>),
        (status = 404, description = "NOT_FOUND: no such query of this tenant.", body = ErrorEnvelope),
    )
)]
pub async fn get(
    State(services): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
    params: QueryParams,
) -> ApiResult<Response> {
    params.only(&[])?;
    let id = QueryId(id);
    let job = visible_query(&services, &caller, &id).await?;
    Ok(Envelope::ok(QueryView::new(&services, &job).await?).into_response())
}

/// `DELETE /query/jobs/{id}`: an accepted or running query is `cancelled`
/// at once; a running one's worker stops within a second.
#[utoipa::path(
    delete,
    path = "/query/jobs/{id}",
    operation_id = "cancelQuery",
    summary = "Cancel an accepted or running data query",
    params(("id" = String, Path, description = "The query's id.")),
    responses(
        (status = 200, description = "The query, cancelled.", body = Envelope<QueryView>),
        (status = 404, description = "NOT_FOUND: no such query of this tenant.", body = ErrorEnvelope),
        (status = 409, description = "CONFLICT: the query has already ended.", body = ErrorEnvelope),
    )
)]
pub async fn cancel(
    State(services): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
    params: QueryParams,
) -> ApiResult<Response> {
    params.only(&[])?;
    let id = QueryId(id);
    visible_query(&services, &caller, &id).await?;
    let now = Utc::now().timestamp_millis();
    let job = match services.queries.cancel(&caller.tenant, &id, now).await? {
        CancelOutcome::Cancelled(job) => {
            tracing::info!(query_id = %id, "data query cancelled");
            services.query_wake.notify_one();
            job
        }
        CancelOutcome::AlreadyEnded(job) => {
            return Err(ApiError::Conflict(format!(
                "query {id} already {}",
                job.state.status.as_str()
            )))
        }
        CancelOutcome::NotFound => return Err(not_found(&id)),
    };
    Ok(Envelope::ok(QueryView::new(&services, &job).await?).into_response())
}

/// The query if it exists, belongs to the caller's tenant and the caller
/// may see it (docs/security.md, "Entity and org scope").
async fn visible_query(services: &Services, caller: &Caller, id: &QueryId) -> ApiResult<QueryJob> {
    services
        .queries
        .get(&caller.tenant, id)
        .await?
        .filter(|job| caller.scope().can_see(&job.spec.scope))
        .ok_or_else(|| not_found(id))
}

/// Other tenants' queries, and queries outside the caller's entity/org
/// scope, are indistinguishable from missing ones.
fn not_found(id: &QueryId) -> ApiError {
    ApiError::NotFound(format!("query job {:?} not found", id.as_str()))
}

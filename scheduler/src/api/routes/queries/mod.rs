//! The data query routes: submit, list, get and cancel, in Zuora's Data
//! Query shapes (`api/post_dataqueryjob.md` and its siblings): the job
//! object's fields and types, and errors as `{code, message}` (the integer
//! HTTP status and the reason; [`crate::api::response::data_query`]), which is what
//! Zuora's SDK parses on these routes.

pub mod saved;
pub mod schema;
pub mod submit;

use auditx_common::time::iso_millis;
use auditx_lake::sql::{check_query, SqlError};
use auditx_proto::QueryId;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use self::submit::SubmitBody;
use crate::api::auth::Caller;
use crate::api::edge::trace::TrackId;
use crate::api::request::paging::page_window;
use crate::api::request::query::{query_of, NoParams, Query};
use crate::api::response::data_query::DataQueryError;
use crate::api::response::envelope::Envelope;
use crate::api::response::error::{ApiError, ApiResult};
use crate::api::routes::exports::current_traceparent;
use crate::api::schema_names::{CompressionName, QueryFormatName, QueryStatusName};
use crate::context::Services;
use crate::query::driver::presign;
use crate::query::jobs::{CancelOutcome, QueryJob, QuerySpec, QueryState, QueryStatus};

/// The query parameters of `GET /query/jobs`; `pageSize` as the
/// reference has it: default 20, at most 1000 (`get_dataqueryjobs.md`).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct ListQueriesParams {
    /// Only this status.
    #[param(value_type = Option<QueryStatusName>)]
    pub query_status: Option<QueryStatus>,
    /// 1-based page number.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 4294967295_i64, default = 1)]
    pub page: u32,
    /// Queries per page.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000, default = 20)]
    pub page_size: u32,
}
/// What `submit` answers a body that is not declared JSON, word for word
/// as the reference has it.
pub const UNSUPPORTED_MEDIA_TYPE: &str = "HTTP 415 Unsupported Media Type";

/// A data query job as the API shows it: the reference's job object
/// (`createdBy` ... `useIndexJoin`), then what auditx adds.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = QueryJob)]
pub struct QueryView {
    #[schema(value_type = String)]
    pub id: QueryId,
    pub query: String,
    /// As submitted (joins are planned the same either way).
    pub use_index_join: bool,
    /// As submitted, default LIVE (both read the tenant's audit tables).
    #[schema(example = "LIVE")]
    pub source_data: String,
    #[schema(value_type = QueryStatusName)]
    pub query_status: &'static str,
    /// Retries left: auditx does not retry a failed query, so 0.
    pub remaining_retries: u32,
    /// Retries a query gets: 0.
    pub retries: u32,
    #[schema(format = DateTime)]
    pub updated_on: String,
    #[schema(format = DateTime)]
    pub created_on: String,
    /// The submitting token's subject.
    pub created_by: String,
    /// Empty: tokens carry no e-mail address.
    pub created_by_user_email: String,
    /// Presigned download URL of the result, once completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_file: Option<String>,
    pub output_rows: u64,
    /// Milliseconds the worker spent running the query and writing its result.
    pub processing_time: u64,
    #[schema(value_type = QueryFormatName)]
    pub output_format: &'static str,
    /// DSV's column separator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column_separator: Option<String>,
    #[schema(value_type = CompressionName)]
    pub compression: &'static str,
    pub read_deleted: bool,
    /// Whether the result is encrypted with the submitted `encryptionKey`.
    pub encrypted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warehouse_size: Option<String>,
    /// `QUERY_FAILED` on a failed query.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub error_code: Option<&'static str>,
    /// Why the query failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
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
        let spec = &job.spec;
        let failed = job.state.status == QueryStatus::Failed;
        Ok(Self {
            id: spec.id.clone(),
            query: spec.query.clone(),
            use_index_join: spec.use_index_join,
            source_data: spec.source_data.clone(),
            query_status: job.state.status.as_str(),
            remaining_retries: 0,
            retries: 0,
            updated_on: iso_millis(job.state.updated_at_ms),
            created_on: iso_millis(spec.created_at_ms),
            created_by: spec.created_by.clone(),
            created_by_user_email: String::new(),
            data_file,
            output_rows: job.state.output_rows,
            processing_time: job.state.processing_ms,
            output_format: spec.output_format.as_str(),
            column_separator: spec.column_separator.clone(),
            compression: spec.compression.as_str(),
            read_deleted: spec.read_deleted,
            encrypted: spec.encryption_key.is_some(),
            warehouse_size: spec.warehouse_size.clone(),
            error_code: failed.then_some("QUERY_FAILED"),
            error_message: match failed {
                true => Some(job.state.error.clone().unwrap_or_default()),
                false => job.state.error.clone(),
            },
        })
    }
}

/// Whether `headers` declare a JSON body (`application/json`, any
/// parameters, or a `+json` type).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || (essence.len() > 17
            && essence[..12].eq_ignore_ascii_case("application/")
            && essence.to_ascii_lowercase().ends_with("+json"))
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
    description = "Zuora's `POST /query/jobs`: every field of its body is taken. Checked at \
        once: one read-only SELECT over the tenant tables; anything else is a 400 saying why. \
        Content-Type must be application/json (else 415). 429 with Retry-After past the \
        tenant's running + queued limit. Errors are {code, message}.",
    request_body(content = SubmitBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The accepted query.", body = Envelope<QueryView>),
        (status = 415, description = "Content-Type is not application/json.", body = DataQueryError),
        (status = 429, description = "The tenant's running + queued limit is reached; retry after Retry-After seconds.", body = DataQueryError),
    )
)]
pub async fn submit(
    State(services): State<Services>,
    caller: Caller,
    Extension(TrackId(track_id)): Extension<TrackId>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    // A body of another type is answered 415 before anything else.
    if !is_json(&headers) {
        return Err(ApiError::UnsupportedMediaType(
            UNSUPPORTED_MEDIA_TYPE.into(),
        ));
    }
    query_of::<NoParams>(&uri)?;
    let submit = submit::parse(&body)?;
    let checked = check_query(&submit.query)?;
    crate::api::edge::limits::admit_query(&services, &caller.tenant).await?;
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
        created_by: caller.subject,
        column_separator: submit.column_separator,
        read_deleted: submit.read_deleted,
        encryption_key: submit.encryption_key,
        source_data: submit.source_data,
        use_index_join: submit.use_index_join,
        warehouse_size: submit.warehouse_size,
    };
    tracing::Span::current().record("query_id", spec.id.as_str());
    // Recorded outside the state store first: should the store lose its
    // data, the query fails with a reason instead of vanishing.
    crate::query::record::write(&services, &spec).await?;
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
    params(ListQueriesParams),
    responses(
        (status = 200, description = "A page of queries.", body = Envelope<Vec<QueryView>>),
    )
)]
pub async fn list(
    State(services): State<Services>,
    caller: Caller,
    Query(params): Query<ListQueriesParams>,
) -> ApiResult<Response> {
    let (status, page, page_size) = (params.query_status, params.page, params.page_size);
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
    params(("id" = String, Path, min_length = 36, max_length = 64, description = ID_DESCRIPTION)),
    responses(
        (status = 200, description = "The query.", body = Envelope<QueryView>),
        (status = 404, description = "No such query of this tenant.", body = DataQueryError),
    )
)]
pub async fn get(
    State(services): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
    _: Query<NoParams>,
) -> ApiResult<Response> {
    let id = path_query_id(id);
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
    description = "Only accepted and in_progress queries can be cancelled: cancelling a query \
        that has ended (completed, failed or cancelled) is a 400, as Zuora's reference answers \
        it. Zuora's SDK sends the id in its 64-character form (`job_id.zfill(64)`).",
    params(("id" = String, Path, min_length = 36, max_length = 64, description = ID_DESCRIPTION)),
    responses(
        (status = 200, description = "The query, cancelled.", body = Envelope<QueryView>),
        (status = 404, description = "No such query of this tenant.", body = DataQueryError),
        (status = 400, description = "The query has already ended (only accepted and in_progress queries can be cancelled).", body = DataQueryError),
    )
)]
pub async fn cancel(
    State(services): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
    _: Query<NoParams>,
) -> ApiResult<Response> {
    let id = path_query_id(id);
    visible_query(&services, &caller, &id).await?;
    let now = Utc::now().timestamp_millis();
    let job = match services.queries.cancel(&caller.tenant, &id, now).await? {
        CancelOutcome::Cancelled(job) => {
            tracing::info!(query_id = %id, "data query cancelled");
            services.query_wake.notify_one();
            job
        }
        CancelOutcome::AlreadyEnded(job) => {
            return Err(ApiError::InvalidParameter(format!(
            "query job {id} is already {}: only accepted and in_progress queries can be cancelled",
            job.state.status.as_str()
        )))
        }
        CancelOutcome::NotFound => return Err(not_found(&id)),
    };
    Ok(Envelope::ok(QueryView::new(&services, &job).await?).into_response())
}

/// What the `{id}` of a query's path takes.
const ID_DESCRIPTION: &str = "The query's id (36 characters), or the same id after 28 zeros \
    (64 characters: Zuora's reference gives the cancel's id that length, and Zuora's SDK sends \
    no other).";

/// The zeros before a query id in its 64-character form.
const ID_PADDING: &str = "0000000000000000000000000000";

/// The query id a path names: the id (a 36-character UUID), or the same id
/// after [`ID_PADDING`]'s 28 zeros. Zuora's reference says the id is 36
/// characters (`get_dataqueryjob.md`) and 64 (`delete_dataqueryjob.md`);
/// Zuora's SDK sends a cancel's id only if it is 64 characters long, so a
/// caller of `delete_data_query_job` pads it (`job_id.zfill(64)`).
fn path_query_id(given: String) -> QueryId {
    match given.strip_prefix(ID_PADDING) {
        Some(id) if given.len() == 64 => QueryId(id.to_owned()),
        _ => QueryId(given),
    }
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

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn a_query_id_in_its_64_character_form_is_the_id() {
        let id = "00000000-1111-4222-8333-444444444444";
        assert_eq!(path_query_id(id.into()).as_str(), id);
        assert_eq!(path_query_id(format!("{ID_PADDING}{id}")).as_str(), id);
        // Only exactly 28 zeros before 36 characters.
        let longer = format!("0{ID_PADDING}{id}");
        assert_eq!(path_query_id(longer.clone()).as_str(), longer);
        let short = format!("{ID_PADDING}abc");
        assert_eq!(path_query_id(short.clone()).as_str(), short);
    }

    #[test]
    fn json_content_types() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            is_json(&headers)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/jsonl"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!is_json(&HeaderMap::new()));
    }
}

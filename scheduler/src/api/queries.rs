//! The data query routes: submit, list, get and cancel, in Zuora's Data
//! Query shapes (`api/post_dataqueryjob.md` and its siblings): the job
//! object's fields and types, and errors as `{code, message}` (the integer
//! HTTP status and the reason; [`data_query_errors`]), which is what
//! Zuora's SDK parses on these routes.

use auditx_common::result_file::parse_public_key;
use auditx_lake::sql::{check_query, SqlError};
use auditx_proto::{Compression, QueryId, QueryOutputFormat};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::auth::Caller;
use super::envelope::Envelope;
use super::error::{quoted, ApiError, ApiResult};
use super::export_query::{page_window, parse_paging, PAGE, PAGE_SIZE};
use super::exports::current_traceparent;
use super::openapi::{
    CompressionName, DataQueryError, QueryFormatName, QueryStatusName, QuerySubmitBody,
};
use super::params::{parse_one_of, QueryParams};
use super::trace::TrackId;
use crate::context::Services;
use crate::query::driver::presign;
use crate::query::jobs::{CancelOutcome, QueryJob, QuerySpec, QueryState, QueryStatus};

/// Longest SQL text accepted.
const MAX_QUERY_BYTES: usize = 64 * 1024;
/// `pageSize` of the list: default 20, at most 1000 (`get_dataqueryjobs.md`).
const DEFAULT_PAGE_SIZE: u32 = 20;
const MAX_PAGE_SIZE: u32 = 1000;
const QUERY_STATUS: &str = "queryStatus";
/// What `submit` answers a body that is not declared JSON, word for word
/// as the reference has it.
pub const UNSUPPORTED_MEDIA_TYPE: &str = "HTTP 415 Unsupported Media Type";
/// The fields of a submit body.
const SUBMIT_FIELDS: &str = "query, outputFormat, columnSeparator, compression, output, \
    encryptionKey, readDeleted, sourceData, useIndexJoin, warehouseSize";
/// `sourceData` values; both read the tenant's tables in the lake.
pub const SOURCE_DATA: [&str; 2] = ["LIVE", "WAREHOUSE"];
/// `warehouseSize` values.
pub const WAREHOUSE_SIZES: [&str; 2] = ["xsmall", "NULL"];
/// `output.target` values.
pub const OUTPUT_TARGETS: [&str; 1] = ["S3"];

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
            updated_on: iso(job.state.updated_at_ms),
            created_on: iso(spec.created_at_ms),
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

fn iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The body of a submit call.
#[derive(Debug)]
struct Submit {
    query: String,
    output_format: QueryOutputFormat,
    column_separator: Option<String>,
    compression: Compression,
    encryption_key: Option<String>,
    read_deleted: bool,
    source_data: String,
    use_index_join: bool,
    warehouse_size: Option<String>,
}

fn invalid(message: String) -> ApiError {
    ApiError::InvalidParameter(message)
}

fn parse_submit(body: &[u8]) -> ApiResult<Submit> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        invalid(format!(
            "body: not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(mut fields) = value else {
        return Err(invalid("body: not a JSON object".into()));
    };
    let query = match fields.remove("query") {
        Some(Value::String(q)) if !q.trim().is_empty() => q,
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ApiError::MissingParameter("query: required".into()))
        }
        Some(_) => return Err(invalid("query: must be a string".into())),
    };
    if query.len() > MAX_QUERY_BYTES {
        return Err(invalid(format!(
            "query: longer than {MAX_QUERY_BYTES} bytes"
        )));
    }
    let output_format = match text_field(&mut fields, "outputFormat")? {
        Some(v) => parse_one_of(
            "outputFormat",
            &v.to_ascii_uppercase(),
            QueryOutputFormat::parse,
            &QueryOutputFormat::ALL.map(QueryOutputFormat::as_str),
        )?,
        None => QueryOutputFormat::Csv,
    };
    let separator = text_field(&mut fields, "columnSeparator")?
        .map(check_separator)
        .transpose()?;
    let column_separator = match (output_format, separator) {
        (QueryOutputFormat::Dsv, None) => {
            return Err(ApiError::MissingParameter(
                "columnSeparator: required when outputFormat is DSV".into(),
            ))
        }
        (QueryOutputFormat::Dsv, separator) => separator,
        // Only applicable to DSV (the reference): not used otherwise.
        (_, _) => None,
    };
    let compression = match text_field(&mut fields, "compression")? {
        Some(v) => parse_one_of(
            "compression",
            &v.to_ascii_uppercase(),
            Compression::parse,
            &Compression::ALL.map(Compression::as_str),
        )?,
        None => Compression::None,
    };
    check_output(fields.remove("output"))?;
    let encryption_key = text_field(&mut fields, "encryptionKey")?
        .map(|key| match parse_public_key(&key) {
            Ok(_) => Ok(key),
            Err(e) => Err(invalid(format!("encryptionKey: {e}"))),
        })
        .transpose()?;
    let read_deleted = bool_field(&mut fields, "readDeleted")?.unwrap_or(false);
    let use_index_join = bool_field(&mut fields, "useIndexJoin")?.unwrap_or(false);
    let source_data = match text_field(&mut fields, "sourceData")? {
        Some(v) => parse_one_of(
            "sourceData",
            &v.to_ascii_uppercase(),
            |s| SOURCE_DATA.contains(&s).then(|| s.to_owned()),
            &SOURCE_DATA,
        )?,
        None => SOURCE_DATA[0].to_owned(),
    };
    let warehouse_size = text_field(&mut fields, "warehouseSize")?
        .map(|v| {
            parse_one_of(
                "warehouseSize",
                &v,
                |s| {
                    WAREHOUSE_SIZES
                        .iter()
                        .find(|w| w.eq_ignore_ascii_case(s))
                        .map(|w| (*w).to_owned())
                },
                &WAREHOUSE_SIZES,
            )
        })
        .transpose()?;
    if let Some(unknown) = fields.keys().next() {
        return Err(invalid(format!(
            "{}: unknown field (the body takes {SUBMIT_FIELDS})",
            unknown.chars().take(80).collect::<String>()
        )));
    }
    Ok(Submit {
        query,
        output_format,
        column_separator,
        compression,
        encryption_key,
        read_deleted,
        source_data,
        use_index_join,
        warehouse_size,
    })
}

/// `columnSeparator`: one character, not a quote, CR or LF (those would
/// make fields unreadable).
fn check_separator(separator: String) -> ApiResult<String> {
    let mut chars = separator.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if !matches!(c, '"' | '\r' | '\n') => Ok(separator),
        (Some(_), None) => Err(invalid(format!(
            "columnSeparator: {} cannot separate columns (a quote, CR or LF)",
            quoted(&separator)
        ))),
        _ => Err(invalid(format!(
            "columnSeparator: must be one character, not {}",
            quoted(&separator)
        ))),
    }
}

/// `output`: `{"target": "S3"}`, the one target auditx writes results to
/// (absent is the same).
fn check_output(output: Option<Value>) -> ApiResult<()> {
    let mut output = match output {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Object(output)) => output,
        Some(_) => {
            return Err(invalid(
                "output: must be an object like {\"target\": \"S3\"}".into(),
            ))
        }
    };
    match text_field(&mut output, "target")
        .map_err(|_| invalid("output.target: must be a string".into()))?
    {
        None => {
            return Err(ApiError::MissingParameter(
                "output.target: required (S3)".into(),
            ))
        }
        Some(target) if target.eq_ignore_ascii_case("S3") => {}
        Some(target) => {
            return Err(invalid(format!(
                "output.target: {} is not supported; results are written to S3 (\"S3\")",
                quoted(&target)
            )))
        }
    }
    if let Some(unknown) = output.keys().next() {
        return Err(invalid(format!(
            "output.{}: unknown field (output takes target)",
            unknown.chars().take(80).collect::<String>()
        )));
    }
    Ok(())
}

fn text_field(fields: &mut Map<String, Value>, name: &str) -> ApiResult<Option<String>> {
    match fields.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("{name}: must be a string"))),
    }
}

fn bool_field(fields: &mut Map<String, Value>, name: &str) -> ApiResult<Option<bool>> {
    match fields.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(_) => Err(invalid(format!("{name}: must be true or false"))),
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

/// Answers the errors of the data query routes in Data Query's own shape,
/// `{"code": <HTTP status>, "message": "..."}` (the 415 sample of
/// `post_dataqueryjob.md`), whatever produced them (the handlers, the token
/// check, unknown methods); `Retry-After` and the other headers stay.
pub async fn data_query_errors(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let data_query = path == "/query/jobs" || path.starts_with("/query/jobs/");
    let response = next.run(request).await;
    let status = response.status();
    if !data_query || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let message = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| message_of(&v))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    let body = DataQueryError {
        code: status.as_u16(),
        message,
    };
    let bytes = serde_json::to_vec(&body).expect("an error serializes");
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(bytes))
}

/// The message of an error body: `message` if it has one, else its
/// reasons' messages.
fn message_of(body: &Value) -> Option<String> {
    if let Some(message) = body["message"].as_str() {
        return Some(message.to_owned());
    }
    let messages: Vec<&str> = body["reasons"]
        .as_array()?
        .iter()
        .filter_map(|r| r["message"].as_str())
        .collect();
    (!messages.is_empty()).then(|| messages.join("; "))
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
    request_body(content = QuerySubmitBody, content_type = "application/json"),
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
    params: QueryParams,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    if !is_json(&headers) {
        return Err(ApiError::UnsupportedMediaType(
            UNSUPPORTED_MEDIA_TYPE.into(),
        ));
    }
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
    params(
        ("queryStatus" = Option<QueryStatusName>, Query, description = "Only this status."),
        ("page" = Option<i64>, Query, minimum = 1, maximum = 4294967295_i64, description = "1-based page number (default 1)."),
        ("pageSize" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Queries per page (default 20, at most 1000)."),
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
        (status = 404, description = "No such query of this tenant.", body = DataQueryError),
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
        (status = 404, description = "No such query of this tenant.", body = DataQueryError),
        (status = 400, description = "The query has already ended (only accepted and in_progress queries can be cancelled).", body = DataQueryError),
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
            return Err(ApiError::InvalidParameter(format!(
            "query job {id} is already {}: only accepted and in_progress queries can be cancelled",
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(body: Value) -> ApiResult<Submit> {
        parse_submit(body.to_string().as_bytes())
    }

    #[test]
    fn the_reference_bodies_are_accepted() {
        // post_dataqueryjob.md's sample.
        let sample = parse(json!({
            "query": "SELECT accountnumber, balance FROM Account WHERE Account.balance > 100",
            "compression": "NONE",
            "output": {"target": "S3"},
            "outputFormat": "CSV"
        }))
        .unwrap();
        assert_eq!(sample.output_format, QueryOutputFormat::Csv);
        assert_eq!(sample.compression, Compression::None);
        assert_eq!(sample.source_data, "LIVE");
        assert!(!sample.read_deleted && !sample.use_index_join);
        // The encryption doc's sample.
        let encrypted = parse(json!({
            "query": "select * from account", "outputFormat": "CSV", "compression": "GZIP",
            "encryptionKey": "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCHRHXrqriUa5nkXP6tvCv3uQtH5fYezHFZ8kXeK2LWTmY6i7FGzRcDlDpuY72iLTPTqbYKyky1EhTlr/UaMn1tugb+wVbWJ81AnisAxCDmnkbMwkfqPHxNlu+Tg2OXtgFd4QCENAgHt/DOqD9HQV+5KHp59DdoD2BzpNf63b3D1QIDAQAB",
            "output" : { "target": "S3" }
        }))
        .unwrap();
        assert!(encrypted.encryption_key.is_some());
        assert_eq!(encrypted.compression, Compression::Gzip);
        // What Zuora's Python SDK sends (every field it knows, nulls left out
        // or not).
        let sdk = parse(json!({
            "columnSeparator": "|", "compression": "ZIP", "encryptionKey": null,
            "output": {"target": "S3"}, "outputFormat": "DSV", "query": "SELECT 1",
            "readDeleted": false, "sourceData": "WAREHOUSE", "useIndexJoin": true,
            "warehouseSize": "xsmall"
        }))
        .unwrap();
        assert_eq!(sdk.output_format, QueryOutputFormat::Dsv);
        assert_eq!(sdk.column_separator.as_deref(), Some("|"));
        assert_eq!(sdk.compression, Compression::Zip);
        assert_eq!(sdk.source_data, "WAREHOUSE");
        assert_eq!(sdk.warehouse_size.as_deref(), Some("xsmall"));
        assert!(sdk.use_index_join);
        // The separator is only kept for DSV.
        let csv = parse(json!({"query": "SELECT 1", "columnSeparator": ";"})).unwrap();
        assert_eq!(csv.column_separator, None);
    }

    #[test]
    fn bad_fields_are_named() {
        for (body, message) in [
            (
                json!({"query": "SELECT 1", "output": "S3"}),
                "output: must be an object",
            ),
            (
                json!({"query": "SELECT 1", "output": {"target": "S3", "bucket": "b"}}),
                "output.bucket: unknown field",
            ),
            (
                json!({"query": "SELECT 1", "columnSeparator": ""}),
                "columnSeparator: must be one character",
            ),
            (
                json!({"query": "SELECT 1", "useIndexJoin": 1}),
                "useIndexJoin: must be true or false",
            ),
            (
                json!({"query": "SELECT 1", "warehouseSize": "large"}),
                "warehouseSize: \"large\" is not one of xsmall, NULL",
            ),
            (
                json!({"query": "SELECT 1", "encryptionKey": "%%%"}),
                "encryptionKey: not base64",
            ),
            (
                json!({"query": "SELECT 1", "limit": 1}),
                "limit: unknown field (the body takes query, outputFormat",
            ),
        ] {
            let error = parse(body.clone()).map(|_| ()).unwrap_err().to_string();
            assert!(error.starts_with(message), "{body}: {error}");
        }
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

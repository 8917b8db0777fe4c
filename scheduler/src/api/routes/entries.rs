//! `GET /meters/{meterId}/auditTrail/entries`: a meter's audit entries,
//! page by page, with the export's filters and columns.
//!
//! Paging is keyset paging on (`eventTime`, `eventId`): a page holds the
//! first `pageSize` matching rows strictly after the position its cursor
//! carries (the last row of the previous page), read from the lake as it
//! is when the page is asked for. Hence, while rows are ingested during a
//! walk over the pages:
//!
//! - no row is returned twice: positions only move forward, and a pair
//!   (`eventTime`, `eventId`) is one row (re-sent copies are dropped, as in
//!   exports);
//! - no row is skipped that was in the lake when the walk began: lake files
//!   are immutable and never removed, so such a row is still there when
//!   the walk reaches its position;
//! - a row ingested during the walk shows up if and only if it sorts after
//!   the position of the page being read when it became visible (one ingested
//!   "behind" the walk is not returned by it; a new walk sees it).
//!
//! Lake files carry no write time or sequence (they are named by their
//! content), so the walk cannot be pinned to the lake of its first page;
//! the guarantees above hold without it. The one input that is not
//! append-only is a run's latest status: with `runStatuses`, the cursor
//! carries a digest of the runs that matched and a change is answered 409
//! rather than silently adding or dropping a run's rows.

use std::collections::BTreeMap;

use auditx_lake::audit_trail::read::{list_audit_files, read_page, Position};
use auditx_lake::sql::write_timestamp_millis;
use auditx_lake::AuditRow;
use axum::extract::State;
use axum::response::{IntoResponse, Json, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::auth::Caller;
use crate::api::openapi::ErrorEnvelope;
use crate::api::request::cursor::{cursor_key, query_digest, sessions_digest, Cursor};
use crate::api::request::filters::EntriesParams;
use crate::api::request::params::MeterPath;
use crate::api::request::query::Query;
use crate::api::response::error::{ApiError, ApiResult};
use crate::api::routes::online::select;
use crate::context::Services;

/// One audit entry: the reference's fields (`errorTime` the entry's time in
/// epoch milliseconds as a string, `errorCode` and `errorMessage` empty
/// when absent), then the export's other columns. Other absent values are
/// null; `payload` is the JSON object ingested.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AuditTrailEntry)]
pub struct EntryView {
    /// The entry's eventTime in epoch milliseconds, e.g. "1753296408775".
    pub error_time: String,
    /// Empty when the entry has none.
    pub error_code: String,
    /// Empty when the entry has none.
    pub error_message: String,
    #[schema(value_type = Option<Object>)]
    pub payload: Option<serde_json::Value>,
    pub event_id: String,
    pub trace_id: Option<String>,
    pub operator_type: Option<String>,
    pub operator_name: Option<String>,
    pub operator_id: Option<String>,
    /// UTC, ISO-8601 with milliseconds.
    pub event_time: String,
    pub session_id: String,
    pub run_type: String,
    /// The run's latest status (null if the run has none).
    pub run_status: Option<String>,
}

impl EntryView {
    fn new(row: AuditRow, run_statuses: &BTreeMap<String, String>) -> Self {
        let mut time = Vec::with_capacity(24);
        write_timestamp_millis(&mut time, row.event_time_ms);
        // Ingest only stores JSON objects; text that is not JSON (a foreign
        // file) is still shown, as a string.
        let payload = row
            .payload
            .map(|text| serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)));
        Self {
            error_time: row.event_time_ms.to_string(),
            event_time: String::from_utf8(time).expect("timestamps are ASCII"),
            run_status: run_statuses.get(&row.session_id).cloned(),
            event_id: row.event_id,
            session_id: row.session_id,
            run_type: row.run_type,
            operator_id: row.operator_id,
            operator_type: row.operator_type,
            operator_name: row.operator_name,
            error_code: row.error_code.unwrap_or_default(),
            error_message: row.error_message.unwrap_or_default(),
            trace_id: row.trace_id,
            payload,
        }
    }
}

/// The envelope of a page of entries: `nextPage` is the opaque cursor of
/// the next page, null on the last one.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AuditTrailEntriesPage)]
pub struct EntriesPage {
    /// Always true.
    pub success: bool,
    pub data: Vec<EntryView>,
    /// Always null: pages are walked forward with `nextPage`.
    pub previous_page: Option<String>,
    /// Pass it as `cursor` (with the same filters) for the next page; null
    /// on the last page.
    pub next_page: Option<String>,
}

/// `GET /meters/{meterId}/auditTrail/entries`.
#[utoipa::path(
    get,
    path = "/meters/{meterId}/auditTrail/entries",
    operation_id = "listAuditEntries",
    summary = "Read a meter's audit entries page by page",
    description = "The export's filters and columns, ordered by eventTime then eventId. \
        nextPage is an opaque cursor: pass it as cursor, with the same filters, for the next \
        page. Paging never returns a row twice and never skips a row that was there when \
        the first page was read; rows ingested meanwhile appear if they sort after the page \
        being read. Arrays may also be given comma separated or as name[].",
    params(
        ("meterId" = i64, Path, minimum = 1, description = "The meter."),
        EntriesParams,
    ),
    responses(
        (status = 200, description = "A page of entries.", body = EntriesPage),
        (status = 409, description = "CONFLICT: with runStatuses, the runs matching them changed since the first page; start again without a cursor.", body = ErrorEnvelope),
    )
)]
pub async fn list(
    State(services): State<Services>,
    caller: Caller,
    MeterPath(meter): MeterPath,
    Query(params): Query<EntriesParams>,
) -> ApiResult<Response> {
    let (request, page_size, cursor) = params.into_request()?;
    let scope = caller.scope();
    let digest = query_digest(&caller.tenant, meter, &request, &scope);
    let key = cursor_key(&services).await?;
    let cursor = match cursor {
        Some(text) => {
            let cursor = Cursor::decode(&text, &key)?;
            if cursor.query != digest {
                return Err(ApiError::InvalidParameter(
                    "cursor: issued for another query (the tenant, meter, filters or \
                     entity/org scope differ)"
                        .into(),
                ));
            }
            Some(cursor)
        }
        None => None,
    };
    let selection = select(&services, &caller.tenant, meter, &request, scope).await?;
    let sessions = (!request.query.run_statuses.is_empty())
        .then(|| sessions_digest(selection.sessions.as_deref().unwrap_or_default()));
    if let Some(cursor) = &cursor {
        if cursor.sessions != sessions {
            return Err(ApiError::Conflict(
                "cursor: the runs matching runStatuses changed since the first page; start \
                 again without a cursor"
                    .into(),
            ));
        }
    }
    let after = cursor.map(|c| c.after);
    let mut rows = if selection.is_empty() {
        Vec::new()
    } else {
        let bucket = &services.config.s3.lake_bucket;
        // Only the days from the position on can hold the page.
        let start_ms = after
            .as_ref()
            .map_or(request.from_ms, |p| p.event_time_ms.max(request.from_ms));
        let files = list_audit_files(
            &services.store,
            bucket,
            &caller.tenant,
            meter,
            start_ms,
            request.to_ms,
        )
        .await?;
        read_page(
            &services.store,
            bucket,
            &files,
            request.from_ms,
            request.to_ms,
            &selection.filter,
            after.as_ref(),
            page_size as usize + 1,
        )
        .await?
    };
    let next_page = if rows.len() > page_size as usize {
        rows.truncate(page_size as usize);
        let last = rows.last().expect("a full page has a last row");
        let next = Cursor {
            query: digest,
            sessions,
            after: Position::of(last),
        };
        Some(next.encode(&key))
    } else {
        None
    };
    tracing::info!(
        meter = meter.0,
        rows = rows.len(),
        more = next_page.is_some(),
        "audit entries page read"
    );
    let data = rows
        .into_iter()
        .map(|row| EntryView::new(row, &selection.run_statuses))
        .collect();
    Ok(Json(EntriesPage {
        success: true,
        data,
        previous_page: None,
        next_page,
    })
    .into_response())
}

//! `POST /audit/tables/{table}/rows`: batches of one of the tenant audit
//! tables (and the reference tables data queries join) as a JSON array or
//! NDJSON of objects keyed by lowercase column name, gzip allowed. The
//! batch is validated whole before anything is written; rows are kept once
//! per `id`.

use auditx_lake::tables::ingest::{ingest_table_rows, parse_table_rows};
use auditx_lake::tables::{table, RowOwner, TableDef, TABLES};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;

use crate::api::auth::Caller;
use crate::api::openapi::{ErrorEnvelope, TableRow};
use crate::api::request::query::{NoParams, Query};
use crate::api::response::envelope::Envelope;
use crate::api::response::error::{quoted, ApiError, ApiResult};
use crate::api::routes::ingest::{acquire_slot, decode_and_parse, IngestBody, IngestCounts};
use crate::api::schema_names::TableName;
use crate::context::Services;

/// `{table}` of the path: one of the known tables, else 404.
pub struct TablePath(pub &'static TableDef);

impl<S: Send + Sync> FromRequestParts<S> for TablePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(name) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::from_rejection(e.status(), "path", e.body_text()))?;
        table(&name).map(TablePath).ok_or_else(|| {
            let known: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
            ApiError::NotFound(format!(
                "table: no table named {}; known tables: {}",
                quoted(&name),
                known.join(", ")
            ))
        })
    }
}

/// `POST /audit/tables/{table}/rows`.
#[utoipa::path(
    post,
    path = "/audit/tables/{table}/rows",
    operation_id = "ingestTableRows",
    summary = "Ingest rows of a tenant audit table (idempotent per id)",
    params(
        ("table" = TableName, Path),
    ),
    request_body(
        description = "Send Content-Encoding: gzip for a gzipped body (the inflated size is capped). A JSON array or NDJSON of objects keyed by lowercase column name; a missing \
            column or null is NULL. Times are ISO-8601 with zone. Rows are kept once per id. The \
            batch is validated whole: one bad row rejects it with a message naming the row \
            (0-based) and the column.",
        content(
            (Vec<TableRow> = "application/json"),
            (String = "application/x-ndjson"),
        )
    ),
    responses(
        (status = 200, description = "The batch was written.", body = Envelope<IngestCounts>),
        (status = 404, description = "NOT_FOUND: no such table.", body = ErrorEnvelope),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the (inflated) body exceeds the limit.", body = ErrorEnvelope),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE: not JSON/NDJSON, or an encoding other than gzip.", body = ErrorEnvelope),
        (status = 429, description = "TOO_MANY_REQUESTS: this scheduler's ingest slots stayed busy; retry after Retry-After seconds.", body = ErrorEnvelope),
    )
)]
pub async fn rows(
    State(services): State<Services>,
    caller: Caller,
    TablePath(def): TablePath,
    _: Query<NoParams>,
    body: IngestBody,
) -> ApiResult<Envelope<IngestCounts>> {
    let config = &services.config;
    // Rows belong to the caller's one entity and org, like meter rows.
    let owner = RowOwner {
        entity: caller.single_entity()?,
        org: caller.single_org()?,
    };
    let _slot = acquire_slot(&services).await?;
    let batch = decode_and_parse(body, config.ingest.max_body_bytes, move |raw| {
        parse_table_rows(def, raw)
    })
    .await?;
    let summary = ingest_table_rows(
        &services.store,
        services.state.as_ref(),
        &config.s3.lake_bucket,
        &caller.tenant,
        &owner,
        batch,
        config.ingest.table_row_group_rows,
    )
    .await?;
    tracing::info!(
        table = def.name,
        received = summary.received,
        accepted = summary.accepted,
        duplicates = summary.duplicates,
        "table rows ingested"
    );
    Ok(Envelope::ok(summary.into()))
}

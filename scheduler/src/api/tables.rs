//! `POST /audit/tables/{table}/rows`: batches of one of the tenant audit
//! tables (and the reference tables data queries join) as a JSON array or
//! NDJSON of objects keyed by lowercase column name, gzip allowed. The
//! batch is validated whole before anything is written; rows are kept once
//! per `id`.

use auditx_lake::ingest::decode_body;
use auditx_lake::tables::ingest::{ingest_table_rows, parse_table_rows, TableBatch};
use auditx_lake::tables::{table, RowOwner, TableDef, TABLES};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;

use super::auth::Caller;
use super::envelope::Envelope;
use super::error::{quoted, ApiError, ApiResult};
use super::ingest::{acquire_slot, IngestBody, IngestCounts};
use super::params::QueryParams;
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

/// Inflates and parses a batch off the async runtime: bodies can be tens of
/// megabytes.
async fn decode_and_parse(
    body: IngestBody,
    max_bytes: usize,
    def: &'static TableDef,
) -> ApiResult<TableBatch> {
    tokio::task::spawn_blocking(move || {
        let raw = decode_body(&body.bytes, body.gzipped, max_bytes)?;
        Ok(parse_table_rows(def, &raw)?)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("ingest parsing task failed: {e}")))?
}

/// `POST /audit/tables/{table}/rows`.
pub async fn rows(
    State(services): State<Services>,
    caller: Caller,
    TablePath(def): TablePath,
    params: QueryParams,
    body: IngestBody,
) -> ApiResult<Envelope<IngestCounts>> {
    params.only(&[])?;
    let config = &services.config;
    // Rows belong to the caller's one entity and org, like meter rows.
    let owner = RowOwner {
        entity: caller.single_entity()?,
        org: caller.single_org()?,
    };
    let _slot = acquire_slot(&services).await?;
    let batch = decode_and_parse(body, config.ingest.max_body_bytes, def).await?;
    let summary = ingest_table_rows(
        &services.store,
        services.state.as_ref(),
        &config.s3.lake_bucket,
        &caller.tenant,
        &owner,
        batch,
        config.ingest.row_group_rows,
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

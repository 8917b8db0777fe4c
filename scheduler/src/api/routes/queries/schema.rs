//! `GET /query/schema`: the tables a data query can read, with their
//! columns and SQL types (the console's schema browser and the SQL
//! editor's completion read it).

use auditx_lake::tables::{ColumnType, TABLES};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::auth::Caller;
use crate::api::request::query::{NoParams, Query};
use crate::api::response::envelope::Envelope;
use crate::api::response::error::ApiResult;

/// One table of the tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaTable {
    pub name: &'static str,
    pub columns: Vec<SchemaColumn>,
}

/// One column and its SQL type.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaColumn {
    pub name: &'static str,
    /// varchar, timestamp, bigint, integer or boolean.
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub sql_type: &'static str,
}

fn sql_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Text => "varchar",
        ColumnType::Timestamp => "timestamp",
        ColumnType::Integer => "bigint",
        ColumnType::Int32 => "integer",
        ColumnType::Boolean => "boolean",
    }
}

/// The tables a data query of the caller's tenant reads.
pub fn tables() -> Vec<SchemaTable> {
    TABLES
        .iter()
        .map(|t| SchemaTable {
            name: t.name,
            columns: t
                .columns
                .iter()
                .map(|&(name, ty)| SchemaColumn {
                    name,
                    sql_type: sql_type(ty),
                })
                .collect(),
        })
        .collect()
}

/// `GET /query/schema`.
#[utoipa::path(
    get,
    path = "/query/schema",
    operation_id = "getQuerySchema",
    summary = "The tables a data query can read, with their columns and types",
    responses(
        (status = 200, description = "Every table of the tenant.", body = Envelope<Vec<SchemaTable>>),
    )
)]
pub async fn schema(_caller: Caller, _: Query<NoParams>) -> ApiResult<Response> {
    Ok(Envelope::ok(tables()).into_response())
}

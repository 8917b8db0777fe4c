//! `GET /openapi.json`: the OpenAPI document, generated from the code.
//!
//! - Paths and methods come from the same `routes!` calls that build the
//!   router ([`crate::api::router`]), so a route cannot be missing from the
//!   document or described without existing.
//! - Each handler's `#[utoipa::path]` names its parameters and answers; the
//!   response schemas derive from the response types themselves.
//! - Enum values come from the constants the validators check against
//!   (`RecordType::ALL`, `RUN_STATUSES`, the table definitions, ...).
//! - [`finish`] adds what every authenticated route shares: the bearer
//!   requirement, the `Zuora-*` headers (checked by middleware and the
//!   [`crate::api::auth::Caller`] extractor) and the error answers every such
//!   route can give, and splits table ingest into one path per table so
//!   each body names its own table's row schema.

use std::sync::Arc;

use auditx_lake::audit_trail::ingest::fields::{
    FieldDef, FieldKind, AUDIT_ENTRY_FIELDS, RUN_STATUS_FIELDS,
};
use auditx_lake::tables::{ColumnType, TableDef, TABLES};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema,
    SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, Required, ResponseBuilder};
use utoipa::{OpenApi, PartialSchema, ToSchema};

use crate::api::edge::headers::{ENTITY_IDS_HEADER, ORG_IDS_HEADER, TRACK_ID_HEADER};
use crate::api::response::data_query::{is_data_query_path, DataQueryError};
use crate::api::response::envelope::Reason;
use crate::api::schema_names::*;

/// Tag of the routes open without a token (probes, metrics, this document).
pub const OPEN: &str = "open";

/// What `Zuora-Track-Id` may hold (see [`crate::api::edge::headers::track_id`]): at
/// most 64 printable US-ASCII characters, none of `: ; " '`.
pub const TRACK_ID_PATTERN: &str = "^[ !#-&(-9<-~]{0,64}$";

/// The document's fixed parts; paths are added by the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "auditx",
        description = "Exports of meter audit trails and data queries over the tenant audit \
            tables. Every response is the envelope {success, data, previousPage, nextPage}; \
            an error is {success: false, processId, reasons: [{code, message}]} with Zuora's \
            8-digit codes (resource code and error category), one reason per problem found. \
            Every answer carries a Zuora-Request-Id header. Responses over 1000 bytes are gzipped for \
            callers sending Accept-Encoding: gzip."
    ),
    components(schemas(
        ErrorEnvelope,
        DataQueryError,
        Reason,
        ExportType,
        RunTypeName,
        RunStatus,
        ExportFormat,
        JobStatusName,
        QueryStatusName,
        QueryFormatName,
        CompressionName,
        SourceDataName,
        WarehouseSizeName,
        OutputTargetName,
        TableName,
        TimeOrMillis,
        TableRow,
        AuditEntry,
        RunStatusChange
    ))
)]
pub struct ApiDoc;

/// The served document, built once by [`crate::api::router`].
#[derive(Clone)]
pub struct Served(pub Arc<serde_json::Value>);

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = OPEN,
    operation_id = "openapi",
    responses((status = 200, description = "This OpenAPI document.", content_type = "application/json"))
)]
pub async fn document(Extension(Served(doc)): Extension<Served>) -> Json<serde_json::Value> {
    Json(doc.as_ref().clone())
}

/// The error body: `success` false, the `processId` and why in `reasons`.
pub use crate::api::response::envelope::ErrorBody as ErrorEnvelope;

/// Name of the error schema of operations on `path`.
fn error_schema(path: &str) -> &'static str {
    if is_data_query_path(path) {
        "DataQueryError"
    } else {
        "Error"
    }
}

/// An ISO-8601 time with zone, or epoch milliseconds (ingest accepts both).
pub struct TimeOrMillis;

impl PartialSchema for TimeOrMillis {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .minimum(Some(DateTime::<Utc>::MIN_UTC.timestamp_millis()))
                    .maximum(Some(DateTime::<Utc>::MAX_UTC.timestamp_millis()))
                    .description(Some("epoch milliseconds")),
            )
            .into()
    }
}

impl ToSchema for TimeOrMillis {}

/// A row of any of the tenant tables: one of the `<table>Row` schemas. Each
/// table has its own path (see [`split_table_paths`]) whose body names its
/// own row schema.
pub struct TableRow;

impl PartialSchema for TableRow {
    fn schema() -> RefOr<Schema> {
        let mut rows = OneOfBuilder::new();
        for def in TABLES {
            rows = rows.item(RefOr::Ref(Ref::from_schema_name(row_schema_name(def))));
        }
        rows.into()
    }
}

impl ToSchema for TableRow {}

/// The component name of `def`'s row schema, e.g. `auditlogineventRow`.
fn row_schema_name(def: &TableDef) -> String {
    format!("{}Row", def.name)
}

/// One row of `def`, keyed by lowercase column name, with the columns and
/// types of the table definition.
fn row_schema(def: &TableDef) -> Schema {
    let mut row = ObjectBuilder::new()
        .schema_type(Type::Object)
        .title(Some(def.name))
        .required("id")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    for (name, ty) in def.columns {
        let (ty, format) = match ty {
            ColumnType::Text => (Type::String, None),
            ColumnType::Timestamp => (Type::String, Some(KnownFormat::DateTime)),
            ColumnType::Integer => (Type::Integer, Some(KnownFormat::Int64)),
            ColumnType::Int32 => (Type::Integer, Some(KnownFormat::Int32)),
            ColumnType::Boolean => (Type::Boolean, None),
        };
        // The id is required and non-empty; other columns take null.
        let column = if *name == "id" {
            ObjectBuilder::new().schema_type(ty).min_length(Some(1))
        } else {
            ObjectBuilder::new().schema_type(SchemaType::from_iter([ty, Type::Null]))
        };
        // The date parts' ranges, as ingest checks them.
        let column = match *name {
            "year" => column.minimum(Some(1)).maximum(Some(9999)),
            "month" => column.minimum(Some(1)).maximum(Some(12)),
            "day" => column.minimum(Some(1)).maximum(Some(31)),
            _ => column,
        };
        row = row.property(*name, column.format(format.map(SchemaFormat::KnownFormat)));
    }
    row.into()
}

/// The route template of table ingest, as the router has it.
pub const TABLE_ROWS_PATH: &str = "/audit/tables/{table}/rows";

/// Describes `POST /audit/tables/{table}/rows` as one path per table, each
/// with its own row schema: OpenAPI cannot tie a body schema to a path
/// parameter, and a client (or a generated one) must know which columns go
/// to which table. The router keeps the one template; an unknown table is
/// its 404.
fn split_table_paths(doc: &mut Document) {
    let Some(template) = doc.paths.paths.remove(TABLE_ROWS_PATH) else {
        return;
    };
    let components = doc.components.get_or_insert_with(Default::default);
    for def in TABLES {
        let schema_name = row_schema_name(def);
        components
            .schemas
            .insert(schema_name.clone(), row_schema(def).into());
        let mut item = template.clone();
        if let Some(operation) = item.post.as_mut() {
            operation.operation_id = Some(format!("ingest_{}_rows", def.name));
            operation.summary = Some(format!("Ingest rows of {} (idempotent per id)", def.name));
            if let Some(parameters) = operation.parameters.as_mut() {
                parameters.retain(|p| p.name != "table");
            }
            operation.responses.responses.remove("404");
            if let Some(content) = operation
                .request_body
                .as_mut()
                .and_then(|body| body.content.get_mut("application/json"))
            {
                content.schema = Some(
                    ArrayBuilder::new()
                        .items(RefOr::Ref(Ref::from_schema_name(schema_name)))
                        .into(),
                );
            }
        }
        doc.paths
            .paths
            .insert(TABLE_ROWS_PATH.replace("{table}", def.name), item);
    }
}

/// One meter audit entry of an ingest batch (`POST .../auditTrail/entries`):
/// the fields the ingest parser takes ([`AUDIT_ENTRY_FIELDS`]).
pub struct AuditEntry;

impl PartialSchema for AuditEntry {
    fn schema() -> RefOr<Schema> {
        ingest_row_schema(&AUDIT_ENTRY_FIELDS).into()
    }
}

impl ToSchema for AuditEntry {}

/// One run status change (`POST /meters/{meterId}/runs`): the fields the
/// ingest parser takes ([`RUN_STATUS_FIELDS`]).
pub struct RunStatusChange;

impl PartialSchema for RunStatusChange {
    fn schema() -> RefOr<Schema> {
        ingest_row_schema(&RUN_STATUS_FIELDS).into()
    }
}

impl ToSchema for RunStatusChange {}

/// The schema of an ingest row with `fields`, as the parser checks them:
/// no other keys, the required ones required (null counts as absent, so
/// only optional ones take it).
fn ingest_row_schema(fields: &[FieldDef]) -> Schema {
    let mut row = ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    for field in fields {
        let ty = match field.kind {
            FieldKind::Text | FieldKind::OneOf(_) => Some(Type::String),
            FieldKind::Object => Some(Type::Object),
            FieldKind::Time => None,
        };
        let property: RefOr<Schema> = match ty {
            Some(ty) => {
                let types = match field.required {
                    true => SchemaType::Type(ty),
                    false => SchemaType::from_iter([ty, Type::Null]),
                };
                let mut property = ObjectBuilder::new()
                    .schema_type(types)
                    .description(Some(field.description));
                if let FieldKind::OneOf(values) = field.kind {
                    property = property.enum_values(Some(values.iter().copied()));
                }
                if field.kind == FieldKind::Text && field.required {
                    property = property.min_length(Some(1));
                }
                property.into()
            }
            None => {
                let time = RefOr::Ref(Ref::from_schema_name(TimeOrMillis::name()));
                match field.required {
                    true => time,
                    false => OneOfBuilder::new()
                        .item(time)
                        .item(ObjectBuilder::new().schema_type(Type::Null))
                        .into(),
                }
            }
        };
        row = row.property(field.name, property);
        if field.required {
            row = row.required(field.name);
        }
    }
    row.into()
}

/// `(status, code words, description)` of the errors every authenticated
/// route can answer with.
const COMMON_ERRORS: [(&str, &str); 5] = [
    (
        "400",
        "Categories 20 (invalid value), 21 (unknown field), 22 (missing field), 23 (missing \
         parameter), 90 (malformed JSON): each message names the field and says why.",
    ),
    (
        "401",
        "Category 11: missing, invalid or expired bearer token.",
    ),
    (
        "403",
        "Category 10: an entity or org outside the token's, or a scope the token lacks.",
    ),
    ("500", "Category 60: internal error."),
    (
        "503",
        "Category 61 (a store is unreachable) or 70 (the replica is busy); retry later.",
    ),
];

/// Adds the common parts to every operation of `doc` once the router has
/// added the paths.
pub fn finish(doc: &mut Document) {
    split_table_paths(doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    for (path, item) in doc.paths.paths.iter_mut() {
        let errors = error_schema(path);
        if let Some(post) = item.post.as_mut() {
            idempotent(post);
        }
        for operation in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            finish_operation(operation, errors);
        }
    }
}

/// Answers any route can give before it runs (the request span checks
/// `Zuora-Track-Id` on every route).
const TRANSPORT_ERRORS: [(&str, &str); 4] = [
    (
        "400",
        "Category 20: the message names the field and says why.",
    ),
    ("408", "Category 61: the request was not received in time."),
    ("414", "Category 70: the request target exceeds the limit."),
    ("431", "Category 70: the headers exceed the limit."),
];

/// Answers of a POST sent with `Idempotency-Key`.
const IDEMPOTENCY_ERRORS: [(&str, &str); 2] = [
    (
        "409",
        "Category 50: a request with this Idempotency-Key is still being answered.",
    ),
    (
        "422",
        "Category 20: this Idempotency-Key was used for another request (body, URL or scope).",
    ),
];

/// Documents `Idempotency-Key` on a POST operation: in its description
/// and answers, not as a parameter, so generated clients and fuzzers do
/// not reuse one key for different requests (a 422 by design).
fn idempotent(operation: &mut Operation) {
    for (status, description) in IDEMPOTENCY_ERRORS {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response_of("Error", description));
    }
    let note = "Send an Idempotency-Key header (1 to 254 printable characters) to make the \
        POST safe to retry: the first answer to a key is kept 24 hours and a retry with the \
        same key and request gets it back (with Idempotent-Replayed: true) without doing \
        anything again; the key with another request is a 422.";
    operation.description = Some(match operation.description.take() {
        Some(text) => format!("{text}\n\n{note}"),
        None => note.to_owned(),
    });
}

/// Completes `operation`, whose error answers have the schema `errors`
/// (those of the edge, past the routes, are always `Error`).
fn finish_operation(operation: &mut Operation, errors: &str) {
    for (status, description) in TRANSPORT_ERRORS {
        let schema = if status == "400" { errors } else { "Error" };
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response_of(schema, description));
    }
    let open = operation
        .tags
        .as_ref()
        .is_some_and(|tags| tags.iter().any(|t| t == OPEN));
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    parameters.push(header(
        TRACK_ID_HEADER,
        "Echoed on the response and attached to logs: at most 64 printable US-ASCII \
         characters, none of : ; \" '.",
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(64))
            .pattern(Some(TRACK_ID_PATTERN))
            .into(),
    ));
    if open {
        operation.security = Some(Vec::new());
        return;
    }
    for (name, what) in [(ENTITY_IDS_HEADER, "entity"), (ORG_IDS_HEADER, "org")] {
        parameters.push(header(
            name,
            &format!(
                "Comma separated {what} ids, a subset of the token's (else 403); the call only \
                 sees jobs and rows of these. Ingest needs exactly one {what} in scope when the \
                 token has several."
            ),
            ObjectBuilder::new().schema_type(Type::String).into(),
        ));
    }
    operation.security = Some(vec![SecurityRequirement::new::<_, _, &str>(
        "bearerAuth",
        [],
    )]);
    for (status, description) in COMMON_ERRORS {
        if !operation.responses.responses.contains_key(status) {
            operation
                .responses
                .responses
                .insert(status.to_owned(), error_response_of(errors, description));
        }
    }
}

/// An error answer of the schema named `schema`.
fn error_response_of(schema: &str, description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    schema,
                ))))
                .build(),
        )
        .build()
        .into()
}

fn header(name: &str, description: &str, schema: Schema) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

#[cfg(test)]
mod tests {
    use auditx_lake::audit_trail::ingest::{parse_audit_entries, parse_run_entries, IngestContext};
    use auditx_lake::batch::IngestError;
    use auditx_proto::{MeterId, TenantId};
    use serde_json::{json, Map, Value};

    use super::*;

    fn ctx() -> IngestContext {
        IngestContext {
            tenant: TenantId("t".into()),
            entity: None,
            org: None,
            meter: MeterId(1),
        }
    }

    /// A valid value of a property of a row schema, read from the schema.
    fn example(property: &Value) -> Value {
        if property["$ref"] == "#/components/schemas/TimeOrMillis" {
            return json!("2025-07-01T00:00:00Z");
        }
        if let Some(values) = property["enum"].as_array() {
            return values[0].clone();
        }
        let ty = match &property["type"] {
            Value::Array(types) => types.iter().find(|t| *t != "null").cloned(),
            one => Some(one.clone()),
        };
        match ty.as_ref().and_then(Value::as_str) {
            Some("string") => json!("x"),
            Some("object") => json!({"k": [1.50]}),
            other => panic!("no example of {other:?}: {property}"),
        }
    }

    /// The document's schema of a row and the parser agree: a row of every
    /// property parses; without each property it parses exactly when the
    /// schema does not require it; a key outside the properties is refused,
    /// as the schema says.
    fn agree(schema: RefOr<Schema>, parse: impl Fn(&[u8]) -> Result<usize, IngestError>) {
        let schema = serde_json::to_value(schema).unwrap();
        assert_eq!(schema["additionalProperties"], false, "{schema}");
        let properties = schema["properties"].as_object().unwrap();
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        let full: Map<String, Value> = properties
            .iter()
            .map(|(name, p)| (name.clone(), example(p)))
            .collect();
        let run = |row: &Map<String, Value>| parse(&serde_json::to_vec(&[row]).unwrap());
        assert_eq!(run(&full).unwrap(), 1);
        for name in properties.keys() {
            let mut without = full.clone();
            without.remove(name);
            let parsed = run(&without);
            assert_eq!(
                parsed.is_err(),
                required.contains(&name.as_str()),
                "{name}: {parsed:?}"
            );
        }
        let mut extra = full.clone();
        extra.insert("notInTheDocument".into(), json!("x"));
        assert!(run(&extra).is_err());
    }

    #[test]
    fn the_ingest_row_schemas_are_what_the_parsers_take() {
        agree(AuditEntry::schema(), |body| {
            parse_audit_entries(body, &ctx()).map(|rows| rows.len())
        });
        agree(RunStatusChange::schema(), |body| {
            parse_run_entries(body, &ctx()).map(|rows| rows.len())
        });
    }
}

//! `GET /openapi.json`: the hand-written OpenAPI 3.0 document of the routes
//! in [`super::router`]. Keep it in step with them; the API tests check that
//! every route is described.

use auditx_lake::tables::{ColumnType, TABLES};
use auditx_lake::RUN_STATUSES;
use axum::Json;
use serde_json::{json, Value};

use super::export_query::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use super::headers::{ENTITY_IDS_HEADER, ORG_IDS_HEADER, TRACK_ID_HEADER};
use crate::query::jobs::QueryStatus;

const QUERY_STATUSES: [&str; 5] = [
    QueryStatus::Accepted.as_str(),
    QueryStatus::InProgress.as_str(),
    QueryStatus::Completed.as_str(),
    QueryStatus::Failed.as_str(),
    QueryStatus::Cancelled.as_str(),
];

pub async fn document() -> Json<Value> {
    Json(openapi())
}

fn openapi() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "auditx",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Exports of meter audit trails and data queries over the tenant audit tables. Every response is the envelope \
                {success, data, previousPage, nextPage}; errors add reasons [{code, message}]. \
                Responses over 1000 bytes are gzipped for callers sending Accept-Encoding: gzip.",
        },
        "security": [{ "bearerAuth": [] }],
        "paths": paths(),
        "components": {
            "securitySchemes": {
                "bearerAuth": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
            },
            "parameters": parameters(),
            "schemas": schemas(),
            "responses": error_responses(),
        },
    })
}

fn paths() -> Value {
    let meter = param_ref("meterId");
    let request_id = param_ref("requestId");
    let headers = [
        param_ref("trackId"),
        param_ref("entityIds"),
        param_ref("orgIds"),
    ];
    let with = |extra: Vec<Value>| -> Vec<Value> { headers.iter().cloned().chain(extra).collect() };
    let array_query = |name: &str, description: &str| {
        json!({
            "name": name, "in": "query", "description": description,
            "style": "form", "explode": true,
            "schema": { "type": "array", "items": { "type": "string" } },
        })
    };
    json!({
        "/meters/{meterId}/auditTrail/export": {
            "post": {
                "operationId": "createExport",
                "summary": "Create a job exporting a meter's audit trail",
                "description": "Returns a requestId at once; the job waits as PENDING while \
                    another export of the tenant runs. Arrays may also be given comma separated.",
                "parameters": with(vec![
                    meter.clone(),
                    enum_query("exportType", true, &["SAMPLE", "ERROR"], "Record type to export."),
                    enum_query("runType", true, &["NORMAL", "DEBUG"], "Run type to export."),
                    array_query("sessionIds", "Only these runs."),
                    json!({
                        "name": "runStatuses", "in": "query", "style": "form", "explode": true,
                        "description": "Only entries of runs whose status is one of these.",
                        "schema": {
                            "type": "array",
                            "items": { "type": "string", "enum": RUN_STATUSES },
                        },
                    }),
                    array_query("operatorIds", "Only these operators."),
                    time_query("queryFromTime", "Start of the range (inclusive)."),
                    time_query("queryToTime", "End of the range (exclusive), after queryFromTime."),
                    enum_query("format", false, &["csv"], "Output format (default csv)."),
                ]),
                "responses": responses(
                    ok("Created", "The job was created."),
                    &["BadRequest", "Unauthorized", "Forbidden", "ServiceUnavailable"],
                ),
            },
            "get": {
                "operationId": "listExports",
                "summary": "List a meter's export jobs, newest first",
                "parameters": with(vec![
                    meter.clone(),
                    enum_query("exportType", false, &["SAMPLE", "ERROR"], "Only this type."),
                    array_query("sessionIds", "Only jobs whose sessionIds include one of these."),
                    json!({ "name": "page", "in": "query", "description": "1-based page number.",
                            "schema": { "type": "integer", "minimum": 1, "default": 1 } }),
                    json!({ "name": "pageSize", "in": "query",
                            "schema": { "type": "integer", "minimum": 1,
                                        "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE } }),
                ]),
                "responses": responses(
                    json!({
                        "description": "A page of jobs; previousPage and nextPage are page \
                            numbers or null.",
                        "content": { "application/json": { "schema": envelope(json!({
                            "type": "array", "items": schema_ref("Job"),
                        })) } },
                    }),
                    &["BadRequest", "Unauthorized", "Forbidden", "ServiceUnavailable"],
                ),
            },
        },
        "/meters/{meterId}/auditTrail/export/{requestId}": {
            "get": {
                "operationId": "getExport",
                "summary": "One export job",
                "parameters": with(vec![meter.clone(), request_id.clone()]),
                "responses": responses(
                    ok("Job", "The job."),
                    &["BadRequest", "Unauthorized", "Forbidden", "NotFound", "ServiceUnavailable"],
                ),
            },
            "delete": {
                "operationId": "cancelExport",
                "summary": "Cancel an export job",
                "description": "A PENDING job is CANCELED at once; a RUNNING one shows \
                    cancelRequested: true until its driver has stopped it.",
                "parameters": with(vec![meter.clone(), request_id]),
                "responses": responses(
                    ok("Job", "The job after the cancel request."),
                    &["BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict",
                      "ServiceUnavailable"],
                ),
            },
        },
        "/meters/auditTrail/presignedUrl": {
            "get": {
                "operationId": "presignedUrl",
                "summary": "A presigned download URL for a file of one of the caller's exports",
                "parameters": with(vec![json!({
                    "name": "fileKey", "in": "query", "required": true,
                    "description": "An entry of a job's fileList, or its manifestKey.",
                    "schema": { "type": "string" },
                })]),
                "responses": responses(
                    json!({
                        "description": "data is the URL.",
                        "content": {
                            "application/json": { "schema": envelope(json!({ "type": "string" })) },
                        },
                    }),
                    &["BadRequest", "Unauthorized", "Forbidden", "NotFound", "ServiceUnavailable"],
                ),
            },
        },
        "/meters/{meterId}/auditTrail/entries": {
            "post": ingest_operation(
                "ingestAuditEntries",
                "Ingest meter audit entries (idempotent per eventId)",
                "AuditEntry",
                with(vec![meter.clone()]),
            ),
        },
        "/meters/{meterId}/runs": {
            "post": ingest_operation(
                "ingestRunStatuses",
                "Ingest run status changes",
                "RunStatusChange",
                with(vec![meter]),
            ),
        },
        "/audit/tables/{table}/rows": {
            "post": table_rows_operation(with(vec![param_ref("table")])),
        },
        "/query/jobs": {
            "post": {
                "operationId": "submitQuery",
                "summary": "Submit a data query (read-only SQL over the tenant's audit tables)",
                "description": "Checked at once: one read-only SELECT over auditloginevent, \
                    auditsettingchangeevent, auditobjectchangeevent, contact, product, \
                    productrateplan, productrateplancharge, productrateplanchargetier; \
                    anything else is a 400 saying why. 429 with Retry-After past the \
                    tenant's running + queued limit.",
                "parameters": with(vec![]),
                "requestBody": {
                    "required": true,
                    "content": { "application/json": { "schema": schema_ref("QuerySubmit") } },
                },
                "responses": responses(
                    ok("QueryJob", "The accepted query."),
                    &["BadRequest", "Unauthorized", "Forbidden", "TooManyRequests",
                      "ServiceUnavailable"],
                ),
            },
            "get": {
                "operationId": "listQueries",
                "summary": "List the tenant's data queries, newest first",
                "parameters": with(vec![
                    enum_query("queryStatus", false, &QUERY_STATUSES, "Only this status."),
                    json!({ "name": "page", "in": "query", "description": "1-based page number.",
                            "schema": { "type": "integer", "minimum": 1, "default": 1 } }),
                    json!({ "name": "pageSize", "in": "query",
                            "schema": { "type": "integer", "minimum": 1,
                                        "maximum": 100, "default": 20 } }),
                ]),
                "responses": responses(
                    json!({
                        "description": "A page of queries.",
                        "content": { "application/json": { "schema": envelope(json!({
                            "type": "array", "items": schema_ref("QueryJob"),
                        })) } },
                    }),
                    &["BadRequest", "Unauthorized", "Forbidden", "ServiceUnavailable"],
                ),
            },
        },
        "/query/jobs/{id}": {
            "get": {
                "operationId": "getQuery",
                "summary": "One data query; dataFile is a presigned URL once completed",
                "parameters": with(vec![param_ref("queryId")]),
                "responses": responses(
                    ok("QueryJob", "The query."),
                    &["BadRequest", "Unauthorized", "Forbidden", "NotFound", "ServiceUnavailable"],
                ),
            },
            "delete": {
                "operationId": "cancelQuery",
                "summary": "Cancel an accepted or running data query",
                "parameters": with(vec![param_ref("queryId")]),
                "responses": responses(
                    ok("QueryJob", "The query, cancelled."),
                    &["BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict",
                      "ServiceUnavailable"],
                ),
            },
        },
        "/healthz": {
            "get": open_text("health", "The process is up.", "ok"),
        },
        "/readyz": {
            "get": {
                "operationId": "ready",
                "summary": "The state store answers",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Ready.",
                        "content": {
                            "text/plain": { "schema": { "type": "string", "example": "ready" } },
                        },
                    },
                    "503": { "$ref": "#/components/responses/ServiceUnavailable" },
                },
            },
        },
        "/metrics": {
            "get": open_text("metrics", "Prometheus metrics (text exposition format).", "# HELP"),
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": [],
                "responses": { "200": { "description": "OpenAPI 3.0 document.",
                    "content": { "application/json": { "schema": { "type": "object" } } } } },
            },
        },
    })
}

fn ingest_operation(id: &str, summary: &str, row: &str, parameters: Vec<Value>) -> Value {
    let encoding = json!({
        "name": "Content-Encoding", "in": "header",
        "description": "gzip for a gzipped body; the inflated size is capped.",
        "schema": { "type": "string", "enum": ["gzip", "identity"] },
    });
    let batch = json!({ "type": "array", "items": schema_ref(row) });
    json!({
        "operationId": id,
        "summary": summary,
        "description": "A JSON array or NDJSON of rows. The batch is validated whole: one bad \
            row rejects it with a message naming the row (0-based) and the field.",
        "parameters": parameters.into_iter().chain([encoding]).collect::<Vec<_>>(),
        "requestBody": {
            "required": true,
            "content": {
                "application/json": { "schema": batch },
                "application/x-ndjson": {
                    "schema": { "type": "string", "description": format!("One {row} per line.") },
                },
            },
        },
        "responses": responses(
            ok("IngestCounts", "The batch was written."),
            &["BadRequest", "Unauthorized", "Forbidden", "PayloadTooLarge",
              "UnsupportedMediaType", "ServiceUnavailable"],
        ),
    })
}

/// The ingest of a tenant table: an ingest operation whose row is one of
/// the tables' rows, and 404 for an unknown table.
fn table_rows_operation(parameters: Vec<Value>) -> Value {
    let mut operation = ingest_operation(
        "ingestTableRows",
        "Ingest rows of a tenant audit table (idempotent per id)",
        "TableRow",
        parameters,
    );
    operation["description"] = json!(
        "A JSON array or NDJSON of objects keyed by lowercase column name; a missing column \
        or null is NULL. Times are ISO-8601 with zone. Rows are kept once per id. The batch \
        is validated whole: one bad row rejects it with a message naming the row (0-based) \
        and the column."
    );
    operation["responses"]["404"] = json!({ "$ref": "#/components/responses/NotFound" });
    operation
}

/// A row of each table (`Table_<name>`), and `TableRow`, any of them.
fn table_schemas(schemas: &mut serde_json::Map<String, Value>) {
    let mut rows = Vec::new();
    for def in TABLES {
        let properties: serde_json::Map<String, Value> = def
            .columns
            .iter()
            .map(|(name, ty)| {
                let schema = match ty {
                    ColumnType::Text => json!({ "type": "string", "nullable": true }),
                    ColumnType::Timestamp => {
                        json!({ "type": "string", "format": "date-time", "nullable": true })
                    }
                    ColumnType::Integer => {
                        json!({ "type": "integer", "format": "int64", "nullable": true })
                    }
                };
                (name.to_string(), schema)
            })
            .collect();
        let name = format!("Table_{}", def.name);
        rows.push(schema_ref(&name));
        schemas.insert(
            name,
            json!({
                "type": "object", "required": ["id"], "additionalProperties": false,
                "properties": properties,
            }),
        );
    }
    schemas.insert("TableRow".into(), json!({ "oneOf": rows }));
}

fn open_text(id: &str, summary: &str, example: &str) -> Value {
    json!({
        "operationId": id,
        "summary": summary,
        "security": [],
        "responses": { "200": { "description": summary,
            "content": { "text/plain": { "schema": { "type": "string", "example": example } } } } },
    })
}

fn parameters() -> Value {
    json!({
        "meterId": { "name": "meterId", "in": "path", "required": true,
                     "schema": { "type": "integer", "format": "int64", "minimum": 1 } },
        "requestId": { "name": "requestId", "in": "path", "required": true,
                       "schema": { "type": "string" } },
        "queryId": { "name": "id", "in": "path", "required": true,
                     "schema": { "type": "string" } },
        "table": { "name": "table", "in": "path", "required": true,
                   "schema": { "type": "string",
                               "enum": TABLES.iter().map(|t| t.name).collect::<Vec<_>>() } },
        "trackId": {
            "name": TRACK_ID_HEADER, "in": "header",
            "description": "Echoed on the response and attached to logs: at most 64 printable \
                US-ASCII characters, none of : ; \" '.",
            "schema": { "type": "string", "maxLength": 64 },
        },
        "entityIds": {
            "name": ENTITY_IDS_HEADER, "in": "header",
            "description": "Comma separated entity ids, a subset of the token's (else 403). \
                Ingest needs exactly one entity in scope when the token has several; exports, \
                data queries and their jobs are limited to the entities (and orgs) in scope.",
            "schema": { "type": "string" },
        },
        "orgIds": {
            "name": ORG_IDS_HEADER, "in": "header",
            "description": "Comma separated org ids, a subset of the token's (else 403).",
            "schema": { "type": "string" },
        },
    })
}

fn schemas() -> Value {
    let string = json!({ "type": "string" });
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    let count = json!({ "type": "integer", "format": "int64", "minimum": 0 });
    let mut schemas = json!({
        "Reason": {
            "type": "object", "required": ["code", "message"],
            "properties": { "code": string, "message": string },
        },
        "Error": {
            "type": "object",
            "required": ["success", "data", "previousPage", "nextPage", "reasons"],
            "properties": {
                "success": { "type": "boolean", "enum": [false] },
                "data": { "nullable": true },
                "previousPage": { "type": "integer", "nullable": true },
                "nextPage": { "type": "integer", "nullable": true },
                "reasons": { "type": "array", "items": schema_ref("Reason") },
            },
        },
        "Created": {
            "type": "object", "required": ["requestId"],
            "properties": { "requestId": string },
        },
        "ExportQuery": {
            "type": "object",
            "properties": {
                "exportType": { "type": "string", "enum": ["SAMPLE", "ERROR"] },
                "runType": { "type": "string", "enum": ["NORMAL", "DEBUG"] },
                "sessionIds": strings,
                "runStatuses": strings,
                "operatorIds": strings,
                "queryFromTime": string,
                "queryToTime": string,
                "format": { "type": "string", "enum": ["csv"] },
            },
        },
        "Progress": {
            "type": "object",
            "properties": {
                "percent": { "type": "integer", "minimum": 0, "maximum": 100 },
                "chunksTotal": count, "chunksDone": count,
                "filesTotal": count, "filesDone": count,
                "rows": count,
            },
        },
        "Job": {
            "type": "object",
            "properties": {
                "requestId": string,
                "meterId": { "type": "integer", "format": "int64" },
                "query": schema_ref("ExportQuery"),
                "status": {
                    "type": "string",
                    "enum": ["PENDING", "RUNNING", "FINISHED", "FAILED", "CANCELED"],
                },
                "count": count,
                "creationTime": { "type": "string", "format": "date-time" },
                "startTime": { "type": "string", "format": "date-time", "nullable": true, "description": "When the job got its tenant's lease and started running." },
                "completionTime": { "type": "string", "format": "date-time", "nullable": true },
                "fileList": strings,
                "manifestKey": { "type": "string", "nullable": true },
                "progress": schema_ref("Progress"),
                "error": { "type": "string", "nullable": true },
                "cancelRequested": { "type": "boolean" },
            },
        },
        "QuerySubmit": {
            "type": "object",
            "required": ["query"],
            "additionalProperties": false,
            "properties": {
                "query": { "type": "string", "minLength": 1, "maxLength": 65536 },
                "outputFormat": { "type": "string", "enum": ["CSV", "JSON", "TSV"],
                                  "default": "CSV", "description": "JSON is JSON Lines." },
                "compression": { "type": "string", "enum": ["NONE", "GZIP"], "default": "NONE" },
            },
        },
        "QueryJob": {
            "type": "object",
            "properties": {
                "id": { "type": "string" },
                "query": { "type": "string" },
                "queryStatus": { "type": "string", "enum": QUERY_STATUSES },
                "outputFormat": { "type": "string", "enum": ["CSV", "JSON", "TSV"] },
                "compression": { "type": "string", "enum": ["NONE", "GZIP"] },
                "outputRows": count,
                "processingTime": { "type": "integer", "description": "Milliseconds." },
                "dataFile": { "type": "string", "description": "Presigned URL (completed)." },
                "errorMessage": { "type": "string", "description": "Why it failed." },
                "createdOn": { "type": "string", "format": "date-time" },
                "updatedOn": { "type": "string", "format": "date-time" },
            },
        },
        "IngestCounts": {
            "type": "object",
            "properties": { "received": count, "accepted": count, "duplicates": count },
        },
        "AuditEntry": {
            "type": "object",
            "required": ["eventId", "eventTime", "sessionId", "runType", "recordType"],
            "properties": {
                "eventId": string,
                "eventTime": { "oneOf": [
                    { "type": "string", "format": "date-time" },
                    { "type": "integer", "format": "int64", "description": "epoch milliseconds" },
                ] },
                "sessionId": string,
                "runType": { "type": "string", "enum": ["NORMAL", "DEBUG"] },
                "recordType": { "type": "string", "enum": ["SAMPLE", "ERROR"] },
                "operatorId": string, "operatorType": string, "operatorName": string,
                "errorCode": string, "errorMessage": string, "traceId": string,
                "payload": { "type": "object" },
            },
        },
        "RunStatusChange": {
            "type": "object",
            "required": ["sessionId", "runType", "status", "updatedAt"],
            "properties": {
                "sessionId": string,
                "runType": { "type": "string", "enum": ["NORMAL", "DEBUG"] },
                "status": { "type": "string", "enum": RUN_STATUSES },
                "updatedAt": { "oneOf": [
                    { "type": "string", "format": "date-time" },
                    { "type": "integer", "format": "int64", "description": "epoch milliseconds" },
                ] },
            },
        },
    });
    if let Value::Object(map) = &mut schemas {
        table_schemas(map);
    }
    schemas
}

fn error_responses() -> Value {
    let error = |description: &str| {
        json!({ "description": description,
                "content": { "application/json": { "schema": schema_ref("Error") } } })
    };
    json!({
        "BadRequest": error(
            "INVALID_PARAMETER or MISSING_PARAMETER: the message names the field and why."
        ),
        "Unauthorized": error("UNAUTHORIZED: missing, invalid or expired bearer token."),
        "Forbidden": error("FORBIDDEN: an entity or org outside the token's."),
        "NotFound": error("NOT_FOUND: no such job, file or table for this tenant (jobs outside the caller's entities or orgs included)."),
        "Conflict": error("CONFLICT: the job has already ended."),
        "PayloadTooLarge": error("PAYLOAD_TOO_LARGE: the (inflated) body exceeds the limit."),
        "UnsupportedMediaType": error(
            "UNSUPPORTED_MEDIA_TYPE: not JSON/NDJSON, or an encoding other than gzip."
        ),
        "TooManyRequests": error(
            "TOO_MANY_REQUESTS: a per-tenant limit is reached; retry after Retry-After seconds."
        ),
        "ServiceUnavailable": error("SERVICE_UNAVAILABLE: a store is unreachable; retry later."),
        "InternalError": error("INTERNAL_ERROR."),
    })
}

fn responses(success: Value, errors: &[&str]) -> Value {
    let mut map = serde_json::Map::new();
    map.insert("200".into(), success);
    for name in errors.iter().copied().chain(["InternalError"]) {
        let status = match name {
            "BadRequest" => "400",
            "Unauthorized" => "401",
            "Forbidden" => "403",
            "NotFound" => "404",
            "Conflict" => "409",
            "PayloadTooLarge" => "413",
            "UnsupportedMediaType" => "415",
            "TooManyRequests" => "429",
            "ServiceUnavailable" => "503",
            _ => "500",
        };
        map.insert(
            status.into(),
            json!({ "$ref": format!("#/components/responses/{name}") }),
        );
    }
    Value::Object(map)
}

fn ok(schema: &str, description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": envelope(schema_ref(schema)) } },
    })
}

fn envelope(data: Value) -> Value {
    json!({
        "type": "object",
        "required": ["success", "data", "previousPage", "nextPage"],
        "properties": {
            "success": { "type": "boolean", "enum": [true] },
            "data": data,
            "previousPage": { "type": "integer", "nullable": true },
            "nextPage": { "type": "integer", "nullable": true },
        },
    })
}

fn enum_query(name: &str, required: bool, values: &[&str], description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": required, "description": description,
            "schema": { "type": "string", "enum": values } })
}

fn time_query(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": true,
            "description": format!("{description} ISO-8601 with zone (RFC 3339)."),
            "schema": { "type": "string", "format": "date-time" } })
}

fn param_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/parameters/{name}") })
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

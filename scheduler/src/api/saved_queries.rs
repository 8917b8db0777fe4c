//! Saved data queries (Zuora's "Save data queries"): a name, the SQL and
//! the submit options, per tenant, kept in the state store. The console
//! lists, saves, renames, deletes and runs them (running one is a plain
//! `POST /query/jobs` with its SQL and options).
//!
//! Keys: `savedquery/<tenant>/<id>` holds one query (JSON) and the set
//! `tenant/<tenant>/savedqueries` their ids.

use auditx_common::state::{Guard, Write};
use auditx_proto::TenantId;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::envelope::Envelope;
use super::error::{ApiError, ApiResult};
use super::openapi::ErrorEnvelope;
use super::params::QueryParams;
use crate::context::Services;

/// Saved queries a tenant may keep.
pub const MAX_SAVED_PER_TENANT: usize = 500;
const MAX_NAME_CHARS: usize = 100;
const MAX_QUERY_BYTES: usize = 64 * 1024;
const FORMATS: [&str; 4] = ["CSV", "JSON", "TSV", "DSV"];
const COMPRESSIONS: [&str; 3] = ["NONE", "GZIP", "ZIP"];

/// A saved query as stored and shown.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SavedQuery {
    pub id: String,
    pub name: String,
    pub query: String,
    /// CSV, JSON, TSV or DSV.
    pub output_format: String,
    /// NONE, GZIP or ZIP.
    pub compression: String,
    /// The DSV column separator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column_separator: Option<String>,
    #[serde(default)]
    pub read_deleted: bool,
    #[schema(format = DateTime)]
    pub created_on: String,
    #[schema(format = DateTime)]
    pub updated_on: String,
}

/// The body of a save (every field) or an update (any of them; a rename
/// sends only `name`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = SavedQueryBody)]
pub struct SavedQueryBody {
    /// 1 to 100 characters, not only spaces; unique within the tenant.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub name: Option<String>,
    /// The SQL (checked when it is run, not when it is saved).
    #[schema(min_length = 1, max_length = 65536, pattern = "\\S")]
    pub query: Option<String>,
    /// CSV (default), JSON, TSV or DSV (as the submit call takes them).
    #[schema(pattern = "^(CSV|JSON|TSV|DSV)$")]
    pub output_format: Option<String>,
    /// NONE (default), GZIP or ZIP.
    #[schema(pattern = "^(NONE|GZIP|ZIP)$")]
    pub compression: Option<String>,
    /// One character, for DSV.
    #[schema(min_length = 1, max_length = 1)]
    pub column_separator: Option<String>,
    pub read_deleted: Option<bool>,
}

fn parse_body(body: &[u8]) -> ApiResult<SavedQueryBody> {
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        // serde's text names the field; drop its position suffix.
        let text = text.split(" at line ").next().unwrap_or_default();
        ApiError::InvalidParameter(format!("body: {text}"))
    })
}

fn one_of(name: &str, value: &str, allowed: &[&str]) -> ApiResult<String> {
    if allowed.contains(&value) {
        Ok(value.to_owned())
    } else {
        Err(ApiError::InvalidParameter(format!(
            "{name}: must be one of {}",
            allowed.join(", ")
        )))
    }
}

impl SavedQueryBody {
    /// Applies the fields given to `saved`, checking each.
    fn apply(self, saved: &mut SavedQuery) -> ApiResult<()> {
        if let Some(name) = self.name {
            let name = name.trim().to_owned();
            if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
                return Err(ApiError::InvalidParameter(format!(
                    "name: must be 1 to {MAX_NAME_CHARS} characters"
                )));
            }
            saved.name = name;
        }
        if let Some(query) = self.query {
            if query.trim().is_empty() {
                return Err(ApiError::MissingParameter("query: required".into()));
            }
            if query.len() > MAX_QUERY_BYTES {
                return Err(ApiError::InvalidParameter(format!(
                    "query: longer than {MAX_QUERY_BYTES} bytes"
                )));
            }
            saved.query = query;
        }
        if let Some(format) = self.output_format {
            saved.output_format = one_of("outputFormat", &format, &FORMATS)?;
        }
        if let Some(compression) = self.compression {
            saved.compression = one_of("compression", &compression, &COMPRESSIONS)?;
        }
        if let Some(separator) = self.column_separator {
            if separator.chars().count() != 1 {
                return Err(ApiError::InvalidParameter(
                    "columnSeparator: must be one character".into(),
                ));
            }
            saved.column_separator = Some(separator);
        }
        if let Some(read_deleted) = self.read_deleted {
            saved.read_deleted = read_deleted;
        }
        Ok(())
    }
}

fn index_key(tenant: &TenantId) -> String {
    format!("tenant/{tenant}/savedqueries")
}

fn query_key(tenant: &TenantId, id: &str) -> String {
    format!("savedquery/{tenant}/{id}")
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "saved query {:?} not found",
        id.chars().take(80).collect::<String>()
    ))
}

async fn load_all(services: &Services, tenant: &TenantId) -> ApiResult<Vec<SavedQuery>> {
    let mut saved = Vec::new();
    for id in services.state.set_members(&index_key(tenant)).await? {
        if let Some(query) = load(services, tenant, &id).await? {
            saved.push(query);
        }
    }
    saved.sort_by(|a, b| {
        a.name
            .to_lowercase()
            .cmp(&b.name.to_lowercase())
            .then(a.id.cmp(&b.id))
    });
    Ok(saved)
}

async fn load(services: &Services, tenant: &TenantId, id: &str) -> ApiResult<Option<SavedQuery>> {
    let Some(bytes) = services.state.get(&query_key(tenant, id)).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ApiError::Internal(format!("saved query {id} unreadable: {e}")))
}

fn name_taken(all: &[SavedQuery], name: &str, except: &str) -> ApiResult<()> {
    if all
        .iter()
        .any(|q| q.id != except && q.name.eq_ignore_ascii_case(name))
    {
        return Err(ApiError::Conflict(format!(
            "name: a saved query named {name:?} already exists"
        )));
    }
    Ok(())
}

/// `GET /query/saved`: the tenant's saved queries, by name.
#[utoipa::path(
    get,
    path = "/query/saved",
    operation_id = "listSavedQueries",
    summary = "List the tenant's saved data queries, by name",
    responses(
        (status = 200, description = "Every saved query of the tenant.", body = Envelope<Vec<SavedQuery>>),
    )
)]
pub async fn list(
    State(services): State<Services>,
    caller: Caller,
    params: QueryParams,
) -> ApiResult<Response> {
    params.only(&[])?;
    let saved = load_all(&services, &caller.tenant).await?;
    Ok(Envelope::ok(saved).into_response())
}

/// `POST /query/saved`: saves a query.
#[utoipa::path(
    post,
    path = "/query/saved",
    operation_id = "saveQuery",
    summary = "Save a data query (name, SQL and options)",
    request_body(content = SavedQueryBody, content_type = "application/json",
        description = "name and query are required."),
    responses(
        (status = 200, description = "The saved query.", body = Envelope<SavedQuery>),
        (status = 409, description = "CONFLICT: the name is taken, or the tenant has 500 saved queries.", body = ErrorEnvelope),
    )
)]
pub async fn create(
    State(services): State<Services>,
    caller: Caller,
    params: QueryParams,
    body: Bytes,
) -> ApiResult<Response> {
    params.only(&[])?;
    let body = parse_body(&body)?;
    if body.name.is_none() {
        return Err(ApiError::MissingParameter("name: required".into()));
    }
    if body.query.is_none() {
        return Err(ApiError::MissingParameter("query: required".into()));
    }
    let at = now();
    let mut saved = SavedQuery {
        id: uuid::Uuid::new_v4().to_string(),
        name: String::new(),
        query: String::new(),
        output_format: "CSV".into(),
        compression: "NONE".into(),
        column_separator: None,
        read_deleted: false,
        created_on: at.clone(),
        updated_on: at,
    };
    body.apply(&mut saved)?;
    let tenant = &caller.tenant;
    let all = load_all(&services, tenant).await?;
    if all.len() >= MAX_SAVED_PER_TENANT {
        return Err(ApiError::Conflict(format!(
            "tenant {tenant} already has {MAX_SAVED_PER_TENANT} saved queries; delete some first"
        )));
    }
    name_taken(&all, &saved.name, &saved.id)?;
    let bytes = serde_json::to_vec(&saved).map_err(|e| ApiError::Internal(e.to_string()))?;
    let key = query_key(tenant, &saved.id);
    services
        .state
        .apply_atomically(
            Guard::Absent(key.clone()),
            vec![
                Write::Set(key, bytes),
                Write::SetAdd(index_key(tenant), saved.id.clone()),
            ],
        )
        .await?;
    tracing::info!(saved_query = %saved.id, "data query saved");
    Ok(Envelope::ok(saved).into_response())
}

/// `PATCH /query/saved/{id}`: renames a saved query or changes its SQL
/// or options.
#[utoipa::path(
    patch,
    path = "/query/saved/{id}",
    operation_id = "updateSavedQuery",
    summary = "Rename a saved data query, or change its SQL or options",
    params(("id" = String, Path, description = "The saved query's id.")),
    request_body(content = SavedQueryBody, content_type = "application/json",
        description = "Only the fields given change."),
    responses(
        (status = 200, description = "The saved query.", body = Envelope<SavedQuery>),
        (status = 404, description = "NOT_FOUND: no such saved query of this tenant.", body = ErrorEnvelope),
        (status = 409, description = "CONFLICT: the name is taken, or the query changed meanwhile.", body = ErrorEnvelope),
    )
)]
pub async fn update(
    State(services): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
    params: QueryParams,
    body: Bytes,
) -> ApiResult<Response> {
    params.only(&[])?;
    let body = parse_body(&body)?;
    let tenant = &caller.tenant;
    let key = query_key(tenant, &id);
    let before = services
        .state
        .get(&key)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let mut saved: SavedQuery = serde_json::from_slice(&before)
        .map_err(|e| ApiError::Internal(format!("saved query {id} unreadable: {e}")))?;
    body.apply(&mut saved)?;
    name_taken(&load_all(&services, tenant).await?, &saved.name, &saved.id)?;
    saved.updated_on = now();
    let bytes = serde_json::to_vec(&saved).map_err(|e| ApiError::Internal(e.to_string()))?;
    let applied = services
        .state
        .apply_atomically(
            Guard::Equals(key.clone(), before),
            vec![Write::Set(key, bytes)],
        )
        .await?;
    if !applied {
        return Err(ApiError::Conflict(format!(
            "saved query {id} changed meanwhile; reload it and try again"
        )));
    }
    Ok(Envelope::ok(saved).into_response())
}

/// `DELETE /query/saved/{id}`.
#[utoipa::path(
    delete,
    path = "/query/saved/{id}",
    operation_id = "deleteSavedQuery",
    summary = "Delete a saved data query",
    params(("id" = String, Path, description = "The saved query's id.")),
    responses(
        (status = 200, description = "The deleted query.", body = Envelope<SavedQuery>),
        (status = 404, description = "NOT_FOUND: no such saved query of this tenant.", body = ErrorEnvelope),
    )
)]
pub async fn delete(
    State(services): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
    params: QueryParams,
) -> ApiResult<Response> {
    params.only(&[])?;
    let tenant = &caller.tenant;
    let saved = load(&services, tenant, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    services
        .state
        .apply_atomically(
            Guard::Always,
            vec![
                Write::Delete(query_key(tenant, &id)),
                Write::SetRemove(index_key(tenant), id.clone()),
            ],
        )
        .await?;
    tracing::info!(saved_query = %id, "saved data query deleted");
    Ok(Envelope::ok(saved).into_response())
}

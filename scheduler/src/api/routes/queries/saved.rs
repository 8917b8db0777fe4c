//! Saved data queries (Zuora's "Save data queries"): a name, the SQL and
//! the submit options, per tenant, kept in the state store. The console
//! lists, saves, renames, deletes and runs them (running one is a plain
//! `POST /query/jobs` with its SQL and options).
//!
//! Stored by [`crate::query::saved::SavedQueries`].

use auditx_common::time::now_iso_millis;
use auditx_proto::TenantId;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{PartialSchema, ToSchema};

use crate::api::auth::Caller;
use crate::api::openapi::ErrorEnvelope;
use crate::api::request::body::{read_object, Given, NotAnObject, A_BOOLEAN, A_STRING};
use crate::api::request::query::{NoParams, Query};
use crate::api::response::envelope::Envelope;
use crate::api::response::error::{quoted, ApiError, ApiResult, Problems};
use crate::api::routes::queries::submit::MAX_QUERY_BYTES;
use crate::context::Services;

/// Saved queries a tenant may keep.
pub const MAX_SAVED_PER_TENANT: usize = 500;
const MAX_NAME_CHARS: usize = 100;
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

/// The body of a save: a name and the SQL, and the submit options.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewSavedQuery {
    /// 1 to 100 characters, not only spaces; unique within the tenant.
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 100, pattern = "\\S")]
    name: Given<String>,
    /// The SQL (checked when it is run, not when it is saved).
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 65536, pattern = "\\S")]
    query: Given<String>,
    /// CSV (default), JSON, TSV or DSV (as the submit call takes them).
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(CSV|JSON|TSV|DSV)$")]
    output_format: Given<String>,
    /// NONE (default), GZIP or ZIP.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(NONE|GZIP|ZIP)$")]
    compression: Given<String>,
    /// One character, for DSV.
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 1)]
    column_separator: Given<String>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    read_deleted: Given<bool>,
}

/// The body of an update: any of the fields of a save; only those given
/// change (a rename sends only `name`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SavedQueryChange {
    /// 1 to 100 characters, not only spaces; unique within the tenant.
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 100, pattern = "\\S")]
    name: Given<String>,
    /// The SQL (checked when it is run, not when it is saved).
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 65536, pattern = "\\S")]
    query: Given<String>,
    /// CSV, JSON, TSV or DSV (as the submit call takes them).
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(CSV|JSON|TSV|DSV)$")]
    output_format: Given<String>,
    /// NONE, GZIP or ZIP.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(NONE|GZIP|ZIP)$")]
    compression: Given<String>,
    /// One character, for DSV.
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 1)]
    column_separator: Given<String>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    read_deleted: Given<bool>,
}

impl From<NewSavedQuery> for SavedQueryChange {
    fn from(new: NewSavedQuery) -> Self {
        Self {
            name: new.name,
            query: new.query,
            output_format: new.output_format,
            compression: new.compression,
            column_separator: new.column_separator,
            read_deleted: new.read_deleted,
        }
    }
}

/// Reads a body of `T`; unknown fields are problems added to `problems`.
fn read_body<T: DeserializeOwned + PartialSchema>(
    body: &[u8],
    problems: &mut Problems,
) -> ApiResult<T> {
    let read = read_object::<T>(body).map_err(|e| match e {
        NotAnObject::Malformed { line, column } => ApiError::Malformed(format!(
            "body: not valid JSON (line {line}, column {column})"
        )),
        NotAnObject::OtherJson => ApiError::InvalidParameter("body: must be a JSON object".into()),
    })?;
    for name in &read.unknown {
        problems.push(ApiError::UnknownField(format!(
            "unknown field: {}",
            quoted(name)
        )));
    }
    Ok(read.fields)
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

/// The fields of a save or an update, checked; `None` leaves a field as
/// it is.
#[derive(Debug, Default, PartialEq)]
struct Fields {
    name: Option<String>,
    query: Option<String>,
    output_format: Option<String>,
    compression: Option<String>,
    column_separator: Option<String>,
    read_deleted: Option<bool>,
}

impl SavedQueryChange {
    /// Checks the fields given; every problem goes to `problems`.
    fn validate(self, problems: &mut Problems) -> Fields {
        let name = self.name.read("name", A_STRING, problems).and_then(|name| {
            let name = name.trim().to_owned();
            if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
                problems.push(ApiError::InvalidParameter(format!(
                    "name: must be 1 to {MAX_NAME_CHARS} characters"
                )));
                return None;
            }
            Some(name)
        });
        let query = self
            .query
            .read("query", A_STRING, problems)
            .and_then(|query| {
                if query.trim().is_empty() {
                    problems.push(ApiError::MissingParameter("query: required".into()));
                    return None;
                }
                if query.len() > MAX_QUERY_BYTES {
                    problems.push(ApiError::InvalidParameter(format!(
                        "query: longer than {MAX_QUERY_BYTES} bytes"
                    )));
                    return None;
                }
                Some(query)
            });
        let output_format = self
            .output_format
            .read("outputFormat", A_STRING, problems)
            .and_then(|format| problems.check(one_of("outputFormat", &format, &FORMATS)));
        let compression = self
            .compression
            .read("compression", A_STRING, problems)
            .and_then(|c| problems.check(one_of("compression", &c, &COMPRESSIONS)));
        let column_separator = self
            .column_separator
            .read("columnSeparator", A_STRING, problems)
            .and_then(|separator| {
                if separator.chars().count() != 1 {
                    problems.push(ApiError::InvalidParameter(
                        "columnSeparator: must be one character".into(),
                    ));
                    return None;
                }
                Some(separator)
            });
        let read_deleted = self.read_deleted.read("readDeleted", A_BOOLEAN, problems);
        Fields {
            name,
            query,
            output_format,
            compression,
            column_separator,
            read_deleted,
        }
    }
}

impl Fields {
    fn apply(self, saved: &mut SavedQuery) {
        if let Some(name) = self.name {
            saved.name = name;
        }
        if let Some(query) = self.query {
            saved.query = query;
        }
        if let Some(format) = self.output_format {
            saved.output_format = format;
        }
        if let Some(compression) = self.compression {
            saved.compression = compression;
        }
        if let Some(separator) = self.column_separator {
            saved.column_separator = Some(separator);
        }
        if let Some(read_deleted) = self.read_deleted {
            saved.read_deleted = read_deleted;
        }
    }
}

/// Reads the body of a save: `name` and `query` are required.
fn read_new(body: &[u8]) -> ApiResult<Fields> {
    let mut problems = Problems::default();
    let body: NewSavedQuery = read_body(body, &mut problems)?;
    for (name, given) in [("name", &body.name), ("query", &body.query)] {
        if matches!(given, Given::Absent) {
            problems.push(ApiError::MissingParameter(format!("{name}: required")));
        }
    }
    let fields = SavedQueryChange::from(body).validate(&mut problems);
    problems.finish()?;
    Ok(fields)
}

/// Reads the body of an update.
fn read_change(body: &[u8]) -> ApiResult<Fields> {
    let mut problems = Problems::default();
    let change: SavedQueryChange = read_body(body, &mut problems)?;
    let fields = change.validate(&mut problems);
    problems.finish()?;
    Ok(fields)
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "saved query {:?} not found",
        id.chars().take(80).collect::<String>()
    ))
}

async fn load_all(services: &Services, tenant: &TenantId) -> ApiResult<Vec<SavedQuery>> {
    let mut saved = Vec::new();
    for id in services.saved_queries.ids(tenant).await? {
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
    let Some(bytes) = services.saved_queries.get(tenant, id).await? else {
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
    _: Query<NoParams>,
) -> ApiResult<Response> {
    let saved = load_all(&services, &caller.tenant).await?;
    Ok(Envelope::ok(saved).into_response())
}

/// `POST /query/saved`: saves a query.
#[utoipa::path(
    post,
    path = "/query/saved",
    operation_id = "saveQuery",
    summary = "Save a data query (name, SQL and options)",
    request_body(content = NewSavedQuery, content_type = "application/json",
        description = "name and query are required."),
    responses(
        (status = 200, description = "The saved query.", body = Envelope<SavedQuery>),
        (status = 409, description = "CONFLICT: the name is taken, or the tenant has 500 saved queries.", body = ErrorEnvelope),
    )
)]
pub async fn create(
    State(services): State<Services>,
    caller: Caller,
    _: Query<NoParams>,
    body: Bytes,
) -> ApiResult<Response> {
    let fields = read_new(&body)?;
    let at = now_iso_millis();
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
    fields.apply(&mut saved);
    let tenant = &caller.tenant;
    let all = load_all(&services, tenant).await?;
    if all.len() >= MAX_SAVED_PER_TENANT {
        return Err(ApiError::Conflict(format!(
            "tenant {tenant} already has {MAX_SAVED_PER_TENANT} saved queries; delete some first"
        )));
    }
    name_taken(&all, &saved.name, &saved.id)?;
    let bytes = serde_json::to_vec(&saved).map_err(|e| ApiError::Internal(e.to_string()))?;
    services
        .saved_queries
        .insert(tenant, &saved.id, bytes)
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
    request_body(content = SavedQueryChange, content_type = "application/json",
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
    _: Query<NoParams>,
    body: Bytes,
) -> ApiResult<Response> {
    let fields = read_change(&body)?;
    let tenant = &caller.tenant;
    let before = services
        .saved_queries
        .get(tenant, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let mut saved: SavedQuery = serde_json::from_slice(&before)
        .map_err(|e| ApiError::Internal(format!("saved query {id} unreadable: {e}")))?;
    fields.apply(&mut saved);
    name_taken(&load_all(&services, tenant).await?, &saved.name, &saved.id)?;
    saved.updated_on = now_iso_millis();
    let bytes = serde_json::to_vec(&saved).map_err(|e| ApiError::Internal(e.to_string()))?;
    let applied = services
        .saved_queries
        .replace(tenant, &id, before, bytes)
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
    _: Query<NoParams>,
) -> ApiResult<Response> {
    let tenant = &caller.tenant;
    let saved = load(&services, tenant, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    services.saved_queries.remove(tenant, &id).await?;
    tracing::info!(saved_query = %id, "saved data query deleted");
    Ok(Envelope::ok(saved).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(body: &str, read: fn(&[u8]) -> ApiResult<Fields>) -> Vec<String> {
        read(body.as_bytes())
            .unwrap_err()
            .reasons()
            .into_iter()
            .map(|r| r.message)
            .collect()
    }

    #[test]
    fn a_save_names_every_problem() {
        assert_eq!(
            messages(
                r#"{"query": null, "outputFormat": "XML", "colour": 1, "readDeleted": "yes"}"#,
                read_new
            ),
            [
                "unknown field: \"colour\"",
                "name: required",
                "query: required",
                "outputFormat: must be one of CSV, JSON, TSV, DSV",
                "readDeleted: must be true or false",
            ]
        );
        assert_eq!(
            messages(r#"{"name": " ", "query": 5}"#, read_new),
            [
                "name: must be 1 to 100 characters",
                "query: must be a string"
            ]
        );
        assert_eq!(messages("[]", read_new), ["body: must be a JSON object"]);
        assert_eq!(
            messages("{", read_new),
            ["body: not valid JSON (line 1, column 1)"]
        );
        let fields = read_new(br#"{"name": " Logins ", "query": "SELECT 1"}"#).unwrap();
        assert_eq!(fields.name.as_deref(), Some("Logins"));
        assert_eq!(fields.output_format, None);
    }

    #[test]
    fn an_update_changes_only_what_it_names() {
        let fields = read_change(br#"{"name": "Renamed"}"#).unwrap();
        assert_eq!(
            fields,
            Fields {
                name: Some("Renamed".into()),
                ..Fields::default()
            }
        );
        assert_eq!(
            messages(r#"{"columnSeparator": "||", "id": "x"}"#, read_change),
            [
                "unknown field: \"id\"",
                "columnSeparator: must be one character"
            ]
        );
    }
}

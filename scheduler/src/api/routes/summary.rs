//! `POST /meters/{meterId}/summary`: how many entries match the filters,
//! success rows (`output`) and error rows (`totalErrorCount`) per group of
//! the `groupBy` fields, in one call (`api/retrievemetersummarydata.md`).
//!
//! Counted in the API process straight from the lake, one time slice at a
//! time (the export planner's slices, about [`SLICE_ROWS`] rows each),
//! reading only the filter and group columns. Memory holds the counts per
//! group, plus, for a slice whose rows come from several files, the keys of
//! that slice's rows: a pair (`eventTime`, `eventId`) is counted once, as an
//! export writes it once (within one file a pair is never repeated).
//!
//! - Every body field is optional: without `runType` both run types are
//!   counted, without times all of the meter's entries.
//! - `groupBy` takes `sessionId`, `operatorId`, `errorCode` and
//!   `processorId`. auditx's model has one id per processing node of a
//!   meter, the operator, so `processorId` groups by the operator id (under
//!   the name `processorId` in `dimensions`).
//! - Without `groupBy` (absent, null, "" or []) there is one row, with no
//!   dimensions, holding the totals.
//! - Extensions: `exportType` counts only that record type (the other count
//!   is 0), `runStatuses` as for exports.

use std::cmp::Ordering;
use std::collections::HashMap;

use auditx_lake::audit_trail::read::{count_groups, list_audit_files, GroupCounts};
use auditx_lake::batch::decode_body;
use auditx_proto::{RecordType, RunType};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::header::CONTENT_TYPE;
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;

use crate::api::auth::Caller;
use crate::api::openapi::ErrorEnvelope;
use crate::api::request::body::{read_object, Given, NotAnObject, A_STRING, STRINGS};
use crate::api::request::filters::{CreateRequest, Filters};
use crate::api::request::params::MeterPath;
use crate::api::request::query::{read_query, NoParams, Query};
use crate::api::response::envelope::Envelope;
use crate::api::response::error::{quoted, ApiError, ApiResult, Problems};
use crate::api::routes::ingest::is_gzipped;
use crate::api::routes::online::select;
use crate::api::schema_names::{ExportType, RunStatus, RunTypeName};
use crate::context::Services;
use crate::export::jobs::ExportQuery;
use crate::export::planner::plan;

const GROUP_BY: &str = "groupBy";
/// The fields a summary groups by, and the lake column each reads.
pub const GROUP_FIELDS: [(&str, &str); 4] = [
    ("sessionId", "sessionId"),
    ("operatorId", "operatorId"),
    ("errorCode", "errorCode"),
    ("processorId", "operatorId"),
];
/// Rows per time slice counted at once (bounds the keys held for
/// dropping re-sent events).
const SLICE_ROWS: u64 = 250_000;
/// Most groups a summary answers with; past it the call is a 400.
pub const MAX_GROUPS: usize = 100_000;
/// Largest (inflated) request body.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// The range counted when no time bounds it: all of the lake's entries
/// (epoch to the year 10000).
const ALL_TIME_MS: (i64, i64) = (0, 253_402_300_800_000);

/// The body of a summary call: every field optional.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = SummaryRequest)]
pub struct SummaryBody {
    /// Only this run type (both when absent).
    #[serde(default)]
    #[schema(value_type = Option<RunTypeName>)]
    run_type: Given<String>,
    /// Start of the range (inclusive), ISO-8601 with zone, extended or basic
    /// form.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    query_from_time: Given<String>,
    /// End of the range (exclusive), ISO-8601 with zone, after queryFromTime.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    query_to_time: Given<String>,
    /// Only these runs.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    session_ids: Given<Vec<String>>,
    /// Only these operators.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    operator_ids: Given<Vec<String>>,
    /// Any of sessionId, operatorId, errorCode, processorId (an array, or
    /// one string comma separated). Without it, one row of totals.
    #[serde(default)]
    #[schema(value_type = Option<Vec<GroupField>>)]
    group_by: Given<GroupBy>,
    /// Extension: count only this record type (the other count is 0).
    #[serde(default)]
    #[schema(value_type = Option<ExportType>)]
    export_type: Given<String>,
    /// Extension: only entries of runs whose latest status is one of these.
    #[serde(default)]
    #[schema(value_type = Option<Vec<RunStatus>>)]
    run_statuses: Given<Vec<String>>,
}

/// `groupBy` as sent: an array of names or one comma separated string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum GroupBy {
    Names(Vec<String>),
    Text(String),
}

/// A field to group by.
pub struct GroupField;

impl PartialSchema for GroupField {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "A field to group by; processorId is the operator (processing node) id.",
            ))
            .enum_values(Some(GROUP_FIELDS.map(|(name, _)| name)))
            .into()
    }
}

impl ToSchema for GroupField {}

/// The `data` of a summary.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = MeterSummary)]
pub struct SummaryView {
    /// This call's id.
    pub request_id: String,
    /// When the call was answered (ISO-8601 UTC).
    pub request_time: String,
    pub query: QueryEcho,
    /// One row per group, largest first.
    pub output: Vec<GroupView>,
}

/// The body as understood: absent fields null.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = MeterSummaryQuery)]
pub struct QueryEcho {
    #[schema(value_type = Option<RunTypeName>)]
    pub run_type: Option<&'static str>,
    pub session_ids: Option<Vec<String>>,
    pub operator_ids: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<GroupField>>)]
    pub group_by: Option<Vec<&'static str>>,
    pub query_from_time: Option<String>,
    pub query_to_time: Option<String>,
}

/// One group: its values of the groupBy fields and its counts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = MeterSummaryRow)]
pub struct GroupView {
    /// The group's value of each groupBy field (null when absent).
    #[schema(value_type = Object)]
    pub dimensions: Map<String, Value>,
    /// Success (SAMPLE) entries of the group.
    pub output: u64,
    /// Error entries of the group.
    pub total_error_count: u64,
}

/// A summary call, validated.
#[derive(Debug)]
pub struct SummaryCall {
    pub filters: Filters,
    /// Names from [`GROUP_FIELDS`], in the order asked, no repeats.
    pub group_by: Vec<&'static str>,
    /// Whether `groupBy` was given (for the echo).
    pub group_by_given: bool,
}

impl SummaryCall {
    /// The lake columns of the group fields, no repeats.
    fn columns(&self) -> Vec<&'static str> {
        let mut columns: Vec<&'static str> = Vec::new();
        for field in &self.group_by {
            let column = GROUP_FIELDS
                .iter()
                .find(|(name, _)| name == field)
                .map_or(*field, |(_, column)| *column);
            if !columns.contains(&column) {
                columns.push(column);
            }
        }
        columns
    }
}

/// The request body: JSON, gzip allowed, at most 64 KiB inflated.
pub struct JsonBody(Vec<u8>);

impl FromRequest<Services> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, services: &Services) -> Result<Self, ApiError> {
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        let essence = content_type.as_deref().map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
        if essence.as_deref() != Some("application/json") {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Content-Type: {} is not application/json",
                quoted(content_type.as_deref().unwrap_or_default())
            )));
        }
        let gzipped = is_gzipped(request.headers())?;
        let bytes = Bytes::from_request(request, services)
            .await
            .map_err(|e| ApiError::from_rejection(e.status(), "body", e.body_text()))?;
        let raw = decode_body(&bytes, gzipped, MAX_BODY_BYTES)?;
        Ok(Self(raw.into_owned()))
    }
}

/// Checks the names of `groupBy`: fields of [`GROUP_FIELDS`], in the order
/// asked, repeats dropped.
fn group_fields(group_by: GroupBy, problems: &mut Problems) -> Vec<&'static str> {
    let names: Vec<String> = match group_by {
        GroupBy::Names(names) => names,
        GroupBy::Text(text) => text.split(',').map(str::to_owned).collect(),
    };
    let mut fields: Vec<&'static str> = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        match GROUP_FIELDS.iter().find(|(f, _)| *f == name) {
            Some((field, _)) if !fields.contains(field) => fields.push(*field),
            Some(_) => {}
            None => problems.push(ApiError::InvalidParameter(format!(
                "{GROUP_BY}: {} is not one of {}",
                quoted(name),
                GROUP_FIELDS.map(|(name, _)| name).join(", ")
            ))),
        }
    }
    fields
}

/// Reads a summary body ([`SummaryBody`]): the filters under their query
/// parameter names and `groupBy`, all optional. Every problem is reported.
pub fn parse_body(body: &[u8]) -> ApiResult<SummaryCall> {
    if body.iter().all(u8::is_ascii_whitespace) {
        // No body at all: no filter, no grouping.
        return parse_body(b"{}");
    }
    let read = read_object::<SummaryBody>(body).map_err(|e| match e {
        NotAnObject::Malformed { line, column } => ApiError::Malformed(format!(
            "body: not valid JSON (line {line}, column {column})"
        )),
        NotAnObject::OtherJson => ApiError::InvalidParameter("body: must be a JSON object".into()),
    })?;
    let mut problems = Problems::default();
    for name in &read.unknown {
        problems.push(ApiError::UnknownField(format!(
            "unknown field: {}",
            quoted(name)
        )));
    }
    let body = read.fields;
    // The filters as the query parameters of an export, read alike.
    let mut pairs = Vec::new();
    for (name, given) in [
        ("exportType", body.export_type),
        ("runType", body.run_type),
        ("queryFromTime", body.query_from_time),
        ("queryToTime", body.query_to_time),
    ] {
        if let Some(value) = given.read(name, A_STRING, &mut problems) {
            pairs.push((name.to_owned(), value));
        }
    }
    for (name, given) in [
        ("sessionIds", body.session_ids),
        ("runStatuses", body.run_statuses),
        ("operatorIds", body.operator_ids),
    ] {
        for value in given.read(name, STRINGS, &mut problems).unwrap_or_default() {
            pairs.push((name.to_owned(), value));
        }
    }
    let group_by_given = !matches!(body.group_by, Given::Absent);
    let group_by = body
        .group_by
        .read(
            GROUP_BY,
            "must be an array of strings or a string",
            &mut problems,
        )
        .map(|names| group_fields(names, &mut problems))
        .unwrap_or_default();
    let filters = read_query::<Filters>(&pairs, &mut problems);
    if let Some(filters) = &filters {
        filters.check(&mut problems);
    }
    problems.finish()?;
    Ok(SummaryCall {
        filters: filters.unwrap_or_default(),
        group_by,
        group_by_given,
    })
}

/// `POST /meters/{meterId}/summary`.
#[utoipa::path(
    post,
    path = "/meters/{meterId}/summary",
    operation_id = "summarizeAuditEntries",
    summary = "Count a meter's success and error entries by run, operator or error code",
    description = "Every body field is optional. output holds one row per combination of the \
        groupBy fields' values (dimensions, null for an absent value) with its success entries \
        (output) and error entries (totalErrorCount), largest first. Without groupBy, one row \
        of totals with empty dimensions. processorId groups by the operator id.",
    params(
        ("meterId" = i64, Path, minimum = 1, description = "The meter."),
    ),
    request_body(
        description = "Send Content-Encoding: gzip for a gzipped body (at most 64 KiB inflated).",
        content((SummaryBody = "application/json"))
    ),
    responses(
        (status = 200, description = "The counts.", body = Envelope<SummaryView>),
        (status = 413, description = "Category 70: the (inflated) body exceeds 64 KiB.", body = ErrorEnvelope),
        (status = 415, description = "Category 20: not JSON, or an encoding other than gzip.", body = ErrorEnvelope),
    )
)]
pub async fn summarize(
    State(services): State<Services>,
    caller: Caller,
    MeterPath(meter): MeterPath,
    _: Query<NoParams>,
    JsonBody(body): JsonBody,
) -> ApiResult<Envelope<SummaryView>> {
    let call = parse_body(&body)?;
    let filters = &call.filters;
    let from_ms = filters
        .query_from_time
        .as_ref()
        .map_or(ALL_TIME_MS.0, |t| t.at.timestamp_millis());
    let to_ms = filters
        .query_to_time
        .as_ref()
        .map_or(ALL_TIME_MS.1, |t| t.at.timestamp_millis());
    let record_types = match filters.export_type {
        Some(one) => vec![one],
        None => RecordType::ALL.to_vec(),
    };
    let run_types = match filters.run_type {
        Some(one) => vec![one],
        None => RunType::ALL.to_vec(),
    };
    let request = CreateRequest {
        query: ExportQuery {
            export_type: record_types[0],
            run_type: run_types[0],
            session_ids: filters.session_ids.clone(),
            run_statuses: filters.run_statuses.clone(),
            operator_ids: filters.operator_ids.clone(),
            query_from_time: String::new(),
            query_to_time: String::new(),
            format: Default::default(),
        },
        from_ms,
        to_ms,
    };
    let selection = select(&services, &caller.tenant, meter, &request, caller.scope()).await?;
    let columns = call.columns();
    // Per group: (success entries, error entries).
    let mut counts: HashMap<Vec<Option<String>>, (u64, u64)> = HashMap::new();
    if !selection.is_empty() {
        let bucket = &services.config.s3.lake_bucket;
        let files = list_audit_files(
            &services.store,
            bucket,
            &caller.tenant,
            meter,
            from_ms,
            to_ms,
        )
        .await?;
        for slice in plan(from_ms, to_ms, &files, SLICE_ROWS) {
            if slice.sources.is_empty() {
                continue;
            }
            for &record_type in &record_types {
                for &run_type in &run_types {
                    let mut filter = selection.filter.clone();
                    filter.record_type = record_type;
                    filter.run_type = run_type;
                    let part = count_groups(
                        &services.store,
                        bucket,
                        &slice.sources,
                        slice.from_ms,
                        slice.to_ms,
                        &filter,
                        &columns,
                        slice.sources.len() > 1,
                    )
                    .await?;
                    merge(&mut counts, part, record_type);
                }
            }
            if counts.len() > MAX_GROUPS {
                return Err(ApiError::InvalidParameter(format!(
                    "{GROUP_BY}: the entries fall into more than {MAX_GROUPS} groups; group by \
                     fewer fields or narrow the filters"
                )));
            }
        }
    }
    if call.group_by.is_empty() && counts.is_empty() {
        counts.insert(Vec::new(), (0, 0));
    }
    let output = rows(&call, &columns, counts);
    tracing::info!(
        meter = meter.0,
        groups = output.len(),
        "audit entries summarized"
    );
    Ok(Envelope::ok(SummaryView {
        request_id: Uuid::new_v4().to_string(),
        request_time: Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true),
        query: QueryEcho {
            run_type: filters.run_type.map(RunType::as_str),
            session_ids: (!filters.session_ids.is_empty()).then(|| filters.session_ids.clone()),
            operator_ids: (!filters.operator_ids.is_empty()).then(|| filters.operator_ids.clone()),
            group_by: call.group_by_given.then(|| call.group_by.clone()),
            query_from_time: filters.query_from_time.as_ref().map(|t| t.text.clone()),
            query_to_time: filters.query_to_time.as_ref().map(|t| t.text.clone()),
        },
        output,
    }))
}

fn merge(
    into: &mut HashMap<Vec<Option<String>>, (u64, u64)>,
    part: GroupCounts,
    record_type: RecordType,
) {
    for (key, n) in part {
        let entry = into.entry(key).or_default();
        match record_type {
            RecordType::Sample => entry.0 += n,
            RecordType::Error => entry.1 += n,
        }
    }
}

/// The groups as rows, largest (success plus error entries) first, then by
/// their values.
fn rows(
    call: &SummaryCall,
    columns: &[&str],
    counts: HashMap<Vec<Option<String>>, (u64, u64)>,
) -> Vec<GroupView> {
    let mut groups: Vec<_> = counts.into_iter().collect();
    groups.sort_by(|a, b| match (b.1 .0 + b.1 .1).cmp(&(a.1 .0 + a.1 .1)) {
        Ordering::Equal => a.0.cmp(&b.0),
        other => other,
    });
    groups
        .into_iter()
        .map(|(values, (output, errors))| {
            let mut dimensions = Map::new();
            for field in &call.group_by {
                let column = GROUP_FIELDS
                    .iter()
                    .find(|(name, _)| name == field)
                    .map_or(*field, |(_, column)| *column);
                let value = columns
                    .iter()
                    .position(|c| *c == column)
                    .and_then(|i| values.get(i).cloned().flatten());
                dimensions.insert(
                    (*field).to_owned(),
                    value.map_or(Value::Null, Value::String),
                );
            }
            GroupView {
                dimensions,
                output,
                total_error_count: errors,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        parse_body(body.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn the_references_sample_body_is_read() {
        let body = r#"{
            "runType": "NORMAL",
            "queryFromTime": "2025-10-01T0000+0000",
            "queryToTime": "2025-11-17T23:59:59+0000",
            "operatorIds": ["4610a876-61ee-4e5e-a634-152e7a635f75"],
            "sessionIds": ["R-00002247", "R-00002293"],
            "groupBy": ["errorCode", "processorId", "sessionId"]
        }"#;
        let call = parse_body(body.as_bytes()).unwrap();
        assert_eq!(call.filters.run_type, Some(RunType::Normal));
        assert_eq!(call.filters.session_ids, ["R-00002247", "R-00002293"]);
        assert_eq!(call.group_by, ["errorCode", "processorId", "sessionId"]);
        assert_eq!(call.columns(), ["errorCode", "operatorId", "sessionId"]);
        assert_eq!(
            call.filters
                .query_from_time
                .as_ref()
                .unwrap()
                .at
                .timestamp(),
            1_759_276_800
        );
    }

    #[test]
    fn every_field_is_optional() {
        for body in ["{}", "", "  ", r#"{"groupBy":null}"#] {
            let call = parse_body(body.as_bytes()).unwrap();
            assert!(call.group_by.is_empty());
            assert!(call.filters.run_type.is_none() && call.filters.query_from_time.is_none());
        }
        let call = parse_body(br#"{"groupBy":"operatorId, sessionId,operatorId"}"#).unwrap();
        assert_eq!(call.group_by, ["operatorId", "sessionId"]);
    }

    #[test]
    fn bad_bodies_name_every_field() {
        assert_eq!(
            err(r#"{"groupBy":["tenant"]}"#),
            "groupBy: \"tenant\" is not one of sessionId, operatorId, errorCode, processorId"
        );
        assert_eq!(
            err(r#"{"groupBy":7}"#),
            "groupBy: must be an array of strings or a string"
        );
        assert_eq!(
            err(r#"{"format":"csv","runType":"FAST","sessionIds":[1]}"#),
            "unknown field: \"format\"; sessionIds: must be an array of strings; \
             runType: \"FAST\" is not one of NORMAL, DEBUG"
        );
        assert_eq!(
            err(r#"{"exportType":["ERROR"]}"#),
            "exportType: must be a string"
        );
        assert_eq!(err("[1]"), "body: must be a JSON object");
        let malformed = parse_body(b"{").unwrap_err();
        assert_eq!(
            malformed.to_string(),
            "body: not valid JSON (line 1, column 1)"
        );
        assert_eq!(malformed.category(), 90);
    }
}

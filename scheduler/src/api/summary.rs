//! `POST /meters/{meterId}/summary`: how many entries match the export's
//! filters, by run, operator and/or error code.
//!
//! Counted in the API process straight from the lake, one time slice at a
//! time (the export planner's slices, about [`SLICE_ROWS`] rows each),
//! reading only the filter and group columns. Memory holds the counts per
//! group, plus, for a slice whose rows come from several files, the keys of
//! that slice's rows: a pair (`eventTime`, `eventId`) is counted once, as an
//! export writes it once (within one file a pair is never repeated).
//!
//! - `total` is the number of matching entries; `groups` the counts by the
//!   values of the `groupBy` fields (null for an absent operator or error
//!   code), largest first, then by the values.
//! - Without `groupBy` (absent, null, "" or []) only `total` is counted and
//!   `groups` is empty.

use auditx_lake::ingest::decode_body;
use auditx_lake::read::{count_groups, list_audit_files, rank_groups, GroupCounts};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::header::CONTENT_TYPE;
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use super::auth::Caller;
use super::envelope::Envelope;
use super::error::{quoted, ApiError, ApiResult};
use super::export_query::{parse_filters, CreateRequest, FILTER_PARAMS, SINGLE_FILTER_PARAMS};
use super::ingest::is_gzipped;
use super::online::select;
use super::openapi::{ErrorEnvelope, ExportType, RunStatus, RunTypeName};
use super::params::{MeterPath, QueryParams};
use crate::context::Services;
use crate::export::planner::plan;

const GROUP_BY: &str = "groupBy";
/// The fields a summary groups by (they are lake column names too).
pub const GROUP_FIELDS: [&str; 3] = ["sessionId", "operatorId", "errorCode"];
/// Rows per time slice counted at once (bounds the keys held for
/// dropping re-sent events).
const SLICE_ROWS: u64 = 250_000;
/// Most groups a summary answers with; past it the call is a 400.
pub const MAX_GROUPS: usize = 100_000;
/// Largest (inflated) request body.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The body of a summary call (the export's filters, as JSON, and
/// `groupBy`).
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // a description of the body `parse_body` reads
#[schema(as = SummaryRequest)]
pub struct SummaryBody {
    #[schema(value_type = ExportType, rename = "exportType")]
    export_type: String,
    #[schema(value_type = RunTypeName, rename = "runType")]
    run_type: String,
    /// Start of the range (inclusive), ISO-8601 with zone.
    #[schema(format = DateTime, rename = "queryFromTime")]
    query_from_time: String,
    /// End of the range (exclusive), ISO-8601 with zone, after queryFromTime.
    #[schema(format = DateTime, rename = "queryToTime")]
    query_to_time: String,
    /// Only these runs.
    #[schema(rename = "sessionIds")]
    session_ids: Option<Vec<String>>,
    /// Only entries of runs whose latest status is one of these.
    #[schema(value_type = Option<Vec<RunStatus>>, rename = "runStatuses")]
    run_statuses: Option<Vec<String>>,
    /// Only these operators.
    #[schema(rename = "operatorIds")]
    operator_ids: Option<Vec<String>>,
    /// Any of sessionId, operatorId, errorCode (an array, or one string
    /// comma separated). Without it only total is counted.
    #[schema(value_type = Option<Vec<GroupField>>, rename = "groupBy")]
    group_by: Option<Vec<String>>,
}

/// A field to group by.
pub struct GroupField;

impl PartialSchema for GroupField {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("A field to group by."))
            .enum_values(Some(GROUP_FIELDS))
            .into()
    }
}

impl ToSchema for GroupField {}

/// The `data` of a summary.
#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryView {
    /// Matching entries.
    pub total: u64,
    /// Counts by the groupBy fields, largest first.
    pub groups: Vec<GroupView>,
}

/// One group: its values of the groupBy fields (only those) and its count.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupView {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub session_id: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub operator_id: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub error_code: Option<Option<String>>,
    pub count: u64,
}

impl GroupView {
    fn new(fields: &[&str], values: Vec<Option<String>>, count: u64) -> Self {
        let mut view = GroupView {
            count,
            ..Default::default()
        };
        for (field, value) in fields.iter().zip(values) {
            match *field {
                "sessionId" => view.session_id = Some(value),
                "operatorId" => view.operator_id = Some(value),
                _ => view.error_code = Some(value),
            }
        }
        view
    }
}

/// A summary call, validated.
#[derive(Debug)]
pub struct SummaryCall {
    pub filters: CreateRequest,
    /// A subset of [`GROUP_FIELDS`], in the order asked, no repeats.
    pub group_by: Vec<&'static str>,
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

/// Reads `groupBy`: an array of field names or one comma separated string.
fn parse_group_by(value: &Value) -> ApiResult<Vec<&'static str>> {
    let names: Vec<&str> = match value {
        Value::Null => Vec::new(),
        Value::String(text) => text.split(',').collect(),
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str())
            .collect::<Option<_>>()
            .ok_or_else(|| {
                ApiError::InvalidParameter(format!(
                    "{GROUP_BY}: must be an array of strings or a string"
                ))
            })?,
        _ => {
            return Err(ApiError::InvalidParameter(format!(
                "{GROUP_BY}: must be an array of strings or a string"
            )))
        }
    };
    let mut fields: Vec<&'static str> = Vec::new();
    for name in names.into_iter().map(str::trim).filter(|n| !n.is_empty()) {
        let field = GROUP_FIELDS.iter().find(|f| **f == name).ok_or_else(|| {
            ApiError::InvalidParameter(format!(
                "{GROUP_BY}: {} is not one of {}",
                quoted(name),
                GROUP_FIELDS.join(", ")
            ))
        })?;
        if !fields.contains(field) {
            fields.push(field);
        }
    }
    Ok(fields)
}

/// Reads a summary body: the export's filters under their query parameter
/// names (strings; arrays of strings for the list filters) and `groupBy`.
pub fn parse_body(body: &[u8]) -> ApiResult<SummaryCall> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::InvalidParameter(format!(
            "body: not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(fields) = value else {
        return Err(ApiError::InvalidParameter(
            "body: must be a JSON object".into(),
        ));
    };
    let mut pairs = Vec::new();
    let mut group_by = Vec::new();
    for (name, value) in &fields {
        if name == GROUP_BY {
            group_by = parse_group_by(value)?;
            continue;
        }
        if !FILTER_PARAMS.contains(&name.as_str()) {
            return Err(ApiError::InvalidParameter(format!(
                "unknown field: {}",
                quoted(name)
            )));
        }
        let single = SINGLE_FILTER_PARAMS.contains(&name.as_str());
        match value {
            Value::Null => {}
            Value::String(text) if single => pairs.push((name.clone(), text.clone())),
            Value::Array(items) if !single => {
                for item in items {
                    let Value::String(text) = item else {
                        return Err(ApiError::InvalidParameter(format!(
                            "{name}: must be an array of strings"
                        )));
                    };
                    pairs.push((name.clone(), text.clone()));
                }
            }
            _ if single => {
                return Err(ApiError::InvalidParameter(format!(
                    "{name}: must be a string"
                )))
            }
            _ => {
                return Err(ApiError::InvalidParameter(format!(
                    "{name}: must be an array of strings"
                )))
            }
        }
    }
    let filters = parse_filters(&QueryParams::new(pairs))?;
    Ok(SummaryCall { filters, group_by })
}

/// `POST /meters/{meterId}/summary`.
#[utoipa::path(
    post,
    path = "/meters/{meterId}/summary",
    operation_id = "summarizeAuditEntries",
    summary = "Count a meter's audit entries by run, operator or error code",
    description = "The export's filters, as a JSON body, plus groupBy. total counts the \
        matching entries; groups holds a count per combination of the groupBy fields' values \
        (null for an absent value), largest first, then by the values. Without groupBy, \
        groups is empty.",
    params(
        ("meterId" = i64, Path, minimum = 1, description = "The meter."),
    ),
    request_body(
        description = "Send Content-Encoding: gzip for a gzipped body (at most 64 KiB inflated).",
        content((SummaryBody = "application/json"))
    ),
    responses(
        (status = 200, description = "The counts.", body = Envelope<SummaryView>),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the (inflated) body exceeds 64 KiB.", body = ErrorEnvelope),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE: not JSON, or an encoding other than gzip.", body = ErrorEnvelope),
    )
)]
pub async fn summarize(
    State(services): State<Services>,
    caller: Caller,
    MeterPath(meter): MeterPath,
    params: QueryParams,
    JsonBody(body): JsonBody,
) -> ApiResult<Envelope<SummaryView>> {
    params.only(&[])?;
    let SummaryCall { filters, group_by } = parse_body(&body)?;
    let selection = select(&services, &caller.tenant, meter, &filters, caller.scope()).await?;
    let mut counts = GroupCounts::new();
    if !selection.is_empty() {
        let bucket = &services.config.s3.lake_bucket;
        let files = list_audit_files(
            &services.store,
            bucket,
            &caller.tenant,
            meter,
            filters.from_ms,
            filters.to_ms,
        )
        .await?;
        for slice in plan(filters.from_ms, filters.to_ms, &files, SLICE_ROWS) {
            if slice.sources.is_empty() {
                continue;
            }
            let part = count_groups(
                &services.store,
                bucket,
                &slice.sources,
                slice.from_ms,
                slice.to_ms,
                &selection.filter,
                &group_by,
                slice.sources.len() > 1,
            )
            .await?;
            merge(&mut counts, part);
            if counts.len() > MAX_GROUPS {
                return Err(ApiError::InvalidParameter(format!(
                    "{GROUP_BY}: the entries fall into more than {MAX_GROUPS} groups; group by \
                     fewer fields or narrow the filters"
                )));
            }
        }
    }
    let total: u64 = counts.values().sum();
    let groups = if group_by.is_empty() {
        Vec::new()
    } else {
        rank_groups(counts)
            .into_iter()
            .map(|(values, count)| GroupView::new(&group_by, values, count))
            .collect()
    };
    tracing::info!(
        meter = meter.0,
        total,
        groups = groups.len(),
        "audit entries summarized"
    );
    Ok(Envelope::ok(SummaryView { total, groups }))
}

fn merge(into: &mut GroupCounts, part: GroupCounts) {
    for (key, n) in part {
        *into.entry(key).or_default() += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        parse_body(body.as_bytes()).unwrap_err().to_string()
    }

    const VALID: &str = r#""exportType":"ERROR","runType":"NORMAL","queryFromTime":"2025-07-01T00:00:00Z","queryToTime":"2025-07-02T00:00:00Z""#;

    #[test]
    fn a_body_carries_the_export_filters_and_group_by() {
        let body = format!(
            r#"{{{VALID},"sessionIds":["R-1","R-2"],"groupBy":["errorCode","sessionId","errorCode"]}}"#
        );
        let request = parse_body(body.as_bytes()).unwrap();
        assert_eq!(request.filters.query.session_ids, ["R-1", "R-2"]);
        assert_eq!(request.group_by, ["errorCode", "sessionId"]);
        let body = format!(r#"{{{VALID},"groupBy":"operatorId, sessionId"}}"#);
        assert_eq!(
            parse_body(body.as_bytes()).unwrap().group_by,
            ["operatorId", "sessionId"]
        );
        let body = format!(r#"{{{VALID}}}"#);
        assert!(parse_body(body.as_bytes()).unwrap().group_by.is_empty());
    }

    #[test]
    fn bad_bodies_name_the_field() {
        assert_eq!(
            err(&format!(r#"{{{VALID},"groupBy":["tenant"]}}"#)),
            "groupBy: \"tenant\" is not one of sessionId, operatorId, errorCode"
        );
        assert_eq!(
            err(&format!(r#"{{{VALID},"groupBy":7}}"#)),
            "groupBy: must be an array of strings or a string"
        );
        assert_eq!(
            err(&format!(r#"{{{VALID},"format":"csv"}}"#)),
            "unknown field: \"format\""
        );
        assert_eq!(
            err(r#"{"exportType":["ERROR"]}"#),
            "exportType: must be a string"
        );
        assert_eq!(
            err(&format!(r#"{{{VALID},"sessionIds":[1]}}"#)),
            "sessionIds: must be an array of strings"
        );
        assert_eq!(err(r#"{"runType":"NORMAL"}"#), "exportType: required");
        assert_eq!(err("[1]"), "body: must be a JSON object");
        assert_eq!(err("{"), "body: not valid JSON (line 1, column 1)");
    }
}

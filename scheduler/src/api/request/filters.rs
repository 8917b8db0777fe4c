//! The filters an export, the online entries and the summary share, and
//! the export routes' query parameters: each route's parameters are one
//! struct, which the OpenAPI document lists and
//! [`crate::api::request::query`] reads (see there).

use auditx_proto::{OutputFormat, RecordType, RunType};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::api::request::time::GivenTime;
use crate::api::response::error::{ApiError, ApiResult, Problems};
use crate::api::schema_names::{ExportFormat, ExportType, RunStatus, RunTypeName};
use crate::export::jobs::{ExportQuery, Job};

/// A validated create call (or entries call: the same filters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateRequest {
    pub query: ExportQuery,
    /// `[from_ms, to_ms)`, epoch milliseconds.
    pub from_ms: i64,
    pub to_ms: i64,
}

/// The query parameters of `POST /meters/{meterId}/auditTrail/export`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct CreateExportParams {
    #[param(value_type = ExportType)]
    pub export_type: RecordType,
    #[param(value_type = RunTypeName)]
    pub run_type: RunType,
    /// Only these runs.
    #[param(value_type = Option<Vec<String>>, style = Form, explode)]
    #[serde(default)]
    pub session_ids: Vec<String>,
    /// Only entries of runs whose latest status is one of these.
    #[param(value_type = Option<Vec<RunStatus>>, style = Form, explode)]
    #[serde(default)]
    pub run_statuses: Vec<String>,
    /// Only these operators.
    #[param(value_type = Option<Vec<String>>, style = Form, explode)]
    #[serde(default)]
    pub operator_ids: Vec<String>,
    /// Start of the range (inclusive), ISO-8601 with zone, extended or basic form.
    #[param(value_type = String, format = DateTime)]
    pub query_from_time: GivenTime,
    /// End of the range (exclusive), ISO-8601 with zone, after queryFromTime.
    #[param(value_type = String, format = DateTime)]
    pub query_to_time: GivenTime,
    /// Default csv. csv: RFC 4180 with a header row in every file; jsonl: JSON Lines, one
    /// object per row with the CSV's columns as keys, payload the JSON object itself, absent
    /// values null; parquet: the same twelve columns, eventTime a UTC timestamp in
    /// milliseconds, payload JSON text, absent values null. File names end in .csv, .jsonl
    /// or .parquet.
    #[param(value_type = Option<ExportFormat>)]
    pub format: Option<OutputFormat>,
}

impl CreateExportParams {
    pub fn into_request(self) -> ApiResult<CreateRequest> {
        let query = ExportQuery {
            export_type: self.export_type,
            run_type: self.run_type,
            session_ids: self.session_ids,
            run_statuses: self.run_statuses,
            operator_ids: self.operator_ids,
            query_from_time: String::new(),
            query_to_time: String::new(),
            format: self.format.unwrap_or_default(),
        };
        export_request(query, self.query_from_time, self.query_to_time)
    }
}

/// The query parameters of `GET /meters/{meterId}/auditTrail/entries`:
/// the export's filters, with the reference's single `sessionId` and
/// `operatorId`, and paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct EntriesParams {
    #[param(value_type = ExportType)]
    pub export_type: RecordType,
    #[param(value_type = RunTypeName)]
    pub run_type: RunType,
    /// Only this run (added to sessionIds).
    #[param(min_length = 1)]
    pub session_id: Option<String>,
    /// Only these runs.
    #[param(value_type = Option<Vec<String>>, style = Form, explode)]
    #[serde(default)]
    pub session_ids: Vec<String>,
    /// Only entries of runs whose latest status is one of these.
    #[param(value_type = Option<Vec<RunStatus>>, style = Form, explode)]
    #[serde(default)]
    pub run_statuses: Vec<String>,
    /// Only this operator (added to operatorIds).
    #[param(min_length = 1)]
    pub operator_id: Option<String>,
    /// Only these operators.
    #[param(value_type = Option<Vec<String>>, style = Form, explode)]
    #[serde(default)]
    pub operator_ids: Vec<String>,
    /// Start of the range (inclusive), ISO-8601 with zone, extended or basic form.
    #[param(value_type = String, format = DateTime)]
    pub query_from_time: GivenTime,
    /// End of the range (exclusive), ISO-8601 with zone, after queryFromTime.
    #[param(value_type = String, format = DateTime)]
    pub query_to_time: GivenTime,
    /// Entries per page.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500, default = 30)]
    pub page_size: u32,
    /// The previous page's nextPage.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

impl EntriesParams {
    /// The filters as an export's (the single ids added to the lists), and
    /// the paging.
    pub fn into_request(self) -> ApiResult<(CreateRequest, u32, Option<String>)> {
        let mut session_ids = self.session_ids;
        let mut operator_ids = self.operator_ids;
        for (one, into) in [
            (self.session_id, &mut session_ids),
            (self.operator_id, &mut operator_ids),
        ] {
            if let Some(one) = one.filter(|one| !into.contains(one)) {
                into.push(one);
            }
        }
        let query = ExportQuery {
            export_type: self.export_type,
            run_type: self.run_type,
            session_ids,
            run_statuses: self.run_statuses,
            operator_ids,
            query_from_time: String::new(),
            query_to_time: String::new(),
            format: OutputFormat::default(),
        };
        let request = export_request(query, self.query_from_time, self.query_to_time)?;
        Ok((request, self.page_size, self.cursor))
    }
}

/// `query` over `[from, to)`, which must not be empty.
fn export_request(
    mut query: ExportQuery,
    from: GivenTime,
    to: GivenTime,
) -> ApiResult<CreateRequest> {
    check_range(Some(&from), Some(&to))?;
    query.query_from_time = from.text;
    query.query_to_time = to.text;
    Ok(CreateRequest {
        query,
        from_ms: from.at.timestamp_millis(),
        to_ms: to.at.timestamp_millis(),
    })
}

/// Refuses a range whose start is not before its end.
pub fn check_range(from: Option<&GivenTime>, to: Option<&GivenTime>) -> ApiResult<()> {
    match (from, to) {
        (Some(from), Some(to)) if from.at >= to.at => Err(ApiError::InvalidParameter(
            "queryFromTime: must be before queryToTime".into(),
        )),
        _ => Ok(()),
    }
}

/// The filters of a summary, every one optional: read from the body's
/// fields by [`crate::api::request::query::read_query`] as if they were
/// query parameters, so they are checked exactly as an export's.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct Filters {
    #[param(value_type = Option<ExportType>)]
    pub export_type: Option<RecordType>,
    #[param(value_type = Option<RunTypeName>)]
    pub run_type: Option<RunType>,
    #[param(value_type = Option<Vec<String>>)]
    #[serde(default)]
    pub session_ids: Vec<String>,
    #[param(value_type = Option<Vec<RunStatus>>)]
    #[serde(default)]
    pub run_statuses: Vec<String>,
    #[param(value_type = Option<Vec<String>>)]
    #[serde(default)]
    pub operator_ids: Vec<String>,
    #[param(value_type = Option<String>, format = DateTime)]
    pub query_from_time: Option<GivenTime>,
    #[param(value_type = Option<String>, format = DateTime)]
    pub query_to_time: Option<GivenTime>,
}

impl Filters {
    /// Adds the problem of an empty range to `problems`.
    pub fn check(&self, problems: &mut Problems) {
        problems.check(check_range(
            self.query_from_time.as_ref(),
            self.query_to_time.as_ref(),
        ));
    }
}

/// The query parameters of `GET /meters/{meterId}/auditTrail/export`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct ListRequest {
    /// Only jobs of this type.
    #[param(value_type = Option<ExportType>)]
    pub export_type: Option<RecordType>,
    /// Only jobs whose sessionIds include one of these.
    #[param(value_type = Option<Vec<String>>, style = Form, explode)]
    #[serde(default)]
    pub session_ids: Vec<String>,
    /// 1-based page number.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 4294967295_i64, default = 1)]
    pub page: u32,
    /// Jobs per page.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100, default = 30)]
    pub page_size: u32,
}

impl ListRequest {
    pub fn matches(&self, job: &Job) -> bool {
        let query = &job.spec.query;
        self.export_type.is_none_or(|t| t == query.export_type)
            && (self.session_ids.is_empty()
                || query
                    .session_ids
                    .iter()
                    .any(|s| self.session_ids.contains(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::request::query::read_query;

    fn pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
        query
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn parse_create(query: &[(&str, &str)]) -> ApiResult<CreateRequest> {
        let mut problems = Problems::default();
        let params = read_query::<CreateExportParams>(&pairs(query), &mut problems);
        problems.finish()?;
        params.unwrap().into_request()
    }

    fn parse_list(query: &[(&str, &str)]) -> ApiResult<ListRequest> {
        let mut problems = Problems::default();
        let params = read_query::<ListRequest>(&pairs(query), &mut problems);
        problems.finish()?;
        Ok(params.unwrap())
    }

    const VALID: [(&str, &str); 4] = [
        ("exportType", "ERROR"),
        ("runType", "NORMAL"),
        ("queryFromTime", "2025-07-01T00:00:00Z"),
        ("queryToTime", "2025-07-02T00:00:00+02:00"),
    ];

    #[test]
    fn a_create_query_is_echoed_and_converted() {
        let mut query = VALID.to_vec();
        query.extend([("sessionIds", "R-1,R-2"), ("runStatuses", "COMPLETED")]);
        let request = parse_create(&query).unwrap();
        assert_eq!(request.query.export_type, RecordType::Error);
        assert_eq!(request.query.session_ids, vec!["R-1", "R-2"]);
        assert_eq!(request.query.run_statuses, vec!["COMPLETED"]);
        assert_eq!(request.query.format, OutputFormat::Csv);
        assert_eq!(request.query.query_to_time, "2025-07-02T00:00:00+02:00");
        assert_eq!(request.from_ms, 1_751_328_000_000);
        assert_eq!(request.to_ms, 1_751_328_000_000 + 22 * 3_600_000);
    }

    #[test]
    fn every_format_is_accepted_and_others_are_refused_naming_the_allowed_ones() {
        for (name, format) in [
            ("csv", OutputFormat::Csv),
            ("jsonl", OutputFormat::Jsonl),
            ("parquet", OutputFormat::Parquet),
        ] {
            let mut query = VALID.to_vec();
            query.push(("format", name));
            assert_eq!(parse_create(&query).unwrap().query.format, format);
        }
        for bad in ["xml", "CSV", "json"] {
            let mut query = VALID.to_vec();
            query.push(("format", bad));
            let err = parse_create(&query).unwrap_err().to_string();
            assert_eq!(
                err,
                format!("format: \"{bad}\" is not one of csv, jsonl, parquet")
            );
        }
        let mut query = VALID.to_vec();
        query.push(("format", ""));
        let err = parse_create(&query).unwrap_err().to_string();
        assert_eq!(err, "format: must not be empty");
    }

    #[test]
    fn unknown_run_statuses_are_refused() {
        let mut query = VALID.to_vec();
        query.push(("runStatuses", "COMPLETED,DONE"));
        let err = parse_create(&query).unwrap_err().to_string();
        assert!(
            err.starts_with("runStatuses: \"DONE\" is not one of NEVER_RUN, TESTING,"),
            "{err}"
        );
    }

    #[test]
    fn every_problem_of_a_query_is_listed() {
        let query = [
            ("runType", "FAST"),
            ("queryFromTime", "2025-07-01T00:00:00"),
            ("queryToTime", "2025-07-01T0000+0000"),
            ("bogus", "1"),
        ];
        let err = parse_create(&query).unwrap_err();
        let messages: Vec<String> = err.reasons().into_iter().map(|r| r.message).collect();
        assert_eq!(
            messages,
            [
                "unknown query parameter: bogus",
                "exportType: required",
                "runType: \"FAST\" is not one of NORMAL, DEBUG",
                "queryFromTime: \"2025-07-01T00:00:00\" has no time zone (add Z or an offset such as +00:00)",
            ]
        );
        let mut query = VALID.to_vec();
        query[3] = ("queryToTime", "2025-07-01T00:00:00Z");
        assert_eq!(
            parse_create(&query).unwrap_err().to_string(),
            "queryFromTime: must be before queryToTime"
        );
    }

    #[test]
    fn the_references_sample_times_are_accepted() {
        let query = [
            ("exportType", "SAMPLE"),
            ("runType", "DEBUG"),
            ("queryFromTime", "2025-07-01T00:00:00+0530"),
            ("queryToTime", "2025-10-01T0000+0000"),
        ];
        let request = parse_create(&query).unwrap();
        assert_eq!(request.from_ms, 1_751_328_000_000 - 19_800_000);
        assert_eq!(request.query.query_to_time, "2025-10-01T0000+0000");
    }

    #[test]
    fn the_entries_single_ids_add_to_the_lists() {
        let mut query = VALID.to_vec();
        query.extend([
            ("sessionId", "R-2"),
            ("sessionIds", "R-1,R-2"),
            ("operatorId", "op"),
            ("cursor", "abc"),
        ]);
        let mut problems = Problems::default();
        let params = read_query::<EntriesParams>(&pairs(&query), &mut problems).unwrap();
        let (request, page_size, cursor) = params.into_request().unwrap();
        assert_eq!(request.query.session_ids, ["R-1", "R-2"]);
        assert_eq!(request.query.operator_ids, ["op"]);
        assert_eq!((page_size, cursor.as_deref()), (30, Some("abc")));
    }

    #[test]
    fn list_paging_parameters_are_checked() {
        let err = |q: &[(&str, &str)]| parse_list(q).unwrap_err().to_string();
        assert_eq!(
            err(&[("page", "0")]),
            "page: must be between 1 and 4294967295"
        );
        assert_eq!(err(&[("page", "x")]), "page: \"x\" is not an integer");
        assert_eq!(
            err(&[("pageSize", "101")]),
            "pageSize: must be between 1 and 100"
        );
        assert_eq!(
            err(&[("pageSize", "-3")]),
            "pageSize: must be between 1 and 100"
        );
        let list = parse_list(&[]).unwrap();
        assert_eq!((list.page, list.page_size), (1, 30));
    }
}

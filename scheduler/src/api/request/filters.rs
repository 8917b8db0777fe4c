//! The filters an export, the online entries and the summary share, and
//! the export routes' query parameters, validated as pure functions.

use auditx_lake::RUN_STATUSES;
use auditx_proto::{OutputFormat, RecordType, RunType};

use chrono::{DateTime, FixedOffset};

use crate::api::request::paging::{parse_paging, PAGE, PAGE_SIZE};
use crate::api::request::params::{parse_one_of, QueryParams};
use crate::api::request::time::parse_time;
use crate::api::response::error::{ApiError, ApiResult, Problems};
use crate::export::jobs::{ExportQuery, Job};

const EXPORT_TYPE: &str = "exportType";
const RUN_TYPE: &str = "runType";
const SESSION_IDS: &str = "sessionIds";
const RUN_STATUSES_PARAM: &str = "runStatuses";
const OPERATOR_IDS: &str = "operatorIds";
/// The entries route's single-valued forms of the two lists.
pub const SESSION_ID: &str = "sessionId";
pub const OPERATOR_ID: &str = "operatorId";
const QUERY_FROM_TIME: &str = "queryFromTime";
const QUERY_TO_TIME: &str = "queryToTime";
const FORMAT: &str = "format";

pub const DEFAULT_PAGE_SIZE: u32 = 30;
pub const MAX_PAGE_SIZE: u32 = 100;

/// A validated create call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateRequest {
    pub query: ExportQuery,
    /// `[from_ms, to_ms)`, epoch milliseconds.
    pub from_ms: i64,
    pub to_ms: i64,
}

/// The filters an export, the online entries and the summary share.
pub const FILTER_PARAMS: [&str; 7] = [
    EXPORT_TYPE,
    RUN_TYPE,
    SESSION_IDS,
    RUN_STATUSES_PARAM,
    OPERATOR_IDS,
    QUERY_FROM_TIME,
    QUERY_TO_TIME,
];

pub fn parse_create(params: &QueryParams) -> ApiResult<CreateRequest> {
    let mut allowed = FILTER_PARAMS.to_vec();
    allowed.push(FORMAT);
    let mut problems = Problems::default();
    problems.check(params.only(&allowed));
    let filters = read_filters(params, &mut problems, true);
    let format = match problems.check(params.optional(FORMAT)).flatten() {
        Some(value) => problems.check(parse_one_of(
            FORMAT,
            value,
            OutputFormat::parse,
            &OutputFormat::ALL.map(OutputFormat::as_str),
        )),
        None => Some(OutputFormat::default()),
    };
    problems.finish()?;
    let mut request = filters.into_request()?;
    request.query.format = format.unwrap_or_default();
    Ok(request)
}

/// The filters as given, each absent one `None` (or empty).
#[derive(Clone, Debug, Default)]
pub struct Filters {
    pub export_type: Option<RecordType>,
    pub run_type: Option<RunType>,
    pub session_ids: Vec<String>,
    pub run_statuses: Vec<String>,
    pub operator_ids: Vec<String>,
    pub from: Option<(DateTime<FixedOffset>, String)>,
    pub to: Option<(DateTime<FixedOffset>, String)>,
}

/// Reads the filters, every problem found into `problems`; with
/// `required`, `exportType`, `runType` and the two times must be given.
/// The single `sessionId` and `operatorId` (the entries route's names) add
/// to `sessionIds` and `operatorIds`.
pub fn read_filters(params: &QueryParams, problems: &mut Problems, required: bool) -> Filters {
    let mut value = |name: &str| {
        if required {
            problems.check(params.required(name))
        } else {
            problems.check(params.optional(name)).flatten()
        }
    };
    let export_type = value(EXPORT_TYPE);
    let run_type = value(RUN_TYPE);
    let from = value(QUERY_FROM_TIME);
    let to = value(QUERY_TO_TIME);
    let export_type = export_type.and_then(|v| problems.check(self::export_type(v)));
    let run_type = run_type.and_then(|v| {
        problems.check(parse_one_of(
            RUN_TYPE,
            v,
            RunType::parse,
            &RunType::ALL.map(RunType::as_str),
        ))
    });
    let run_statuses = params.list(RUN_STATUSES_PARAM);
    for status in &run_statuses {
        problems.check(parse_one_of(
            RUN_STATUSES_PARAM,
            status,
            |s| RUN_STATUSES.contains(&s).then_some(()),
            &RUN_STATUSES,
        ));
    }
    let from = from.and_then(|v| problems.check(parse_time(QUERY_FROM_TIME, v)));
    let to = to.and_then(|v| problems.check(parse_time(QUERY_TO_TIME, v)));
    if let (Some((from, _)), Some((to, _))) = (&from, &to) {
        if from >= to {
            problems.push(ApiError::InvalidParameter(format!(
                "{QUERY_FROM_TIME}: must be before {QUERY_TO_TIME}"
            )));
        }
    }
    let mut session_ids = params.list(SESSION_IDS);
    let mut operator_ids = params.list(OPERATOR_IDS);
    for (single, into) in [
        (SESSION_ID, &mut session_ids),
        (OPERATOR_ID, &mut operator_ids),
    ] {
        if let Some(one) = problems.check(params.optional(single)).flatten() {
            if !into.iter().any(|i| i == one) {
                into.push(one.to_owned());
            }
        }
    }
    Filters {
        export_type,
        run_type,
        session_ids,
        run_statuses,
        operator_ids,
        from,
        to,
    }
}

impl Filters {
    /// The request of filters read with `required` and no problem.
    pub fn into_request(self) -> ApiResult<CreateRequest> {
        let (
            Some(export_type),
            Some(run_type),
            Some((from, query_from_time)),
            Some((to, query_to_time)),
        ) = (self.export_type, self.run_type, self.from, self.to)
        else {
            return Err(ApiError::Internal(
                "filters read without their required values".into(),
            ));
        };
        Ok(CreateRequest {
            query: ExportQuery {
                export_type,
                run_type,
                session_ids: self.session_ids,
                run_statuses: self.run_statuses,
                operator_ids: self.operator_ids,
                query_from_time,
                query_to_time,
                format: OutputFormat::default(),
            },
            from_ms: from.timestamp_millis(),
            to_ms: to.timestamp_millis(),
        })
    }
}

fn export_type(value: &str) -> ApiResult<RecordType> {
    parse_one_of(
        EXPORT_TYPE,
        value,
        RecordType::parse,
        &RecordType::ALL.map(RecordType::as_str),
    )
}

/// A validated list call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListRequest {
    pub export_type: Option<RecordType>,
    /// Jobs whose query names one of these sessions (all jobs if empty).
    pub session_ids: Vec<String>,
    /// 1-based.
    pub page: u32,
    pub page_size: u32,
}

pub fn parse_list(params: &QueryParams) -> ApiResult<ListRequest> {
    let mut problems = Problems::default();
    problems.check(params.only(&[EXPORT_TYPE, SESSION_IDS, PAGE, PAGE_SIZE]));
    let export_type = problems
        .check(params.optional(EXPORT_TYPE))
        .flatten()
        .and_then(|v| problems.check(export_type(v)));
    let paging = problems.check(parse_paging(params, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE));
    problems.finish()?;
    let (page, page_size) = paging.unwrap_or((1, DEFAULT_PAGE_SIZE));
    Ok(ListRequest {
        export_type,
        session_ids: params.list(SESSION_IDS),
        page,
        page_size,
    })
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

    fn params(query: &[(&str, &str)]) -> QueryParams {
        QueryParams::new(
            query
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
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
        query.extend([("sessionIds", "R-1,R-2"), ("runStatuses[]", "COMPLETED")]);
        let request = parse_create(&params(&query)).unwrap();
        assert_eq!(request.query.export_type, RecordType::Error);
        assert_eq!(request.query.session_ids, vec!["R-1", "R-2"]);
        assert_eq!(request.query.run_statuses, vec!["COMPLETED"]);
        assert_eq!(request.query.format, OutputFormat::Csv);
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
            assert_eq!(parse_create(&params(&query)).unwrap().query.format, format);
        }
        for bad in ["xml", "CSV", "json"] {
            let mut query = VALID.to_vec();
            query.push(("format", bad));
            let err = parse_create(&params(&query)).unwrap_err().to_string();
            assert_eq!(
                err,
                format!("format: \"{bad}\" is not one of csv, jsonl, parquet")
            );
        }
        let mut query = VALID.to_vec();
        query.push(("format", ""));
        let err = parse_create(&params(&query)).unwrap_err().to_string();
        assert_eq!(err, "format: must not be empty");
    }

    #[test]
    fn unknown_run_statuses_are_refused() {
        let mut query = VALID.to_vec();
        query.push(("runStatuses", "COMPLETED,DONE"));
        let err = parse_create(&params(&query)).unwrap_err().to_string();
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
        let err = parse_create(&params(&query)).unwrap_err();
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
    }

    #[test]
    fn the_references_sample_times_are_accepted() {
        let query = [
            ("exportType", "SAMPLE"),
            ("runType", "DEBUG"),
            ("queryFromTime", "2025-07-01T00:00:00+0530"),
            ("queryToTime", "2025-10-01T0000+0000"),
        ];
        let request = parse_create(&params(&query)).unwrap();
        assert_eq!(request.from_ms, 1_751_328_000_000 - 19_800_000);
        assert_eq!(request.query.query_to_time, "2025-10-01T0000+0000");
    }

    #[test]
    fn list_paging_parameters_are_checked() {
        let err = |q: &[(&str, &str)]| parse_list(&params(q)).unwrap_err().to_string();
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
        let list = parse_list(&params(&[])).unwrap();
        assert_eq!((list.page, list.page_size), (1, 30));
    }
}

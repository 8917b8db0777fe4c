//! Validation of the export routes' query parameters and the list's paging,
//! as pure functions.

use std::ops::Range;

use auditx_lake::RUN_STATUSES;
use auditx_proto::{OutputFormat, RecordType, RunType};

use chrono::{DateTime, FixedOffset};

use super::error::{ApiError, ApiResult, Problems};
use super::params::{parse_int, parse_one_of, parse_time, QueryParams};
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
pub const PAGE: &str = "page";
pub const PAGE_SIZE: &str = "pageSize";

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

/// The single-valued ones among [`FILTER_PARAMS`].
pub const SINGLE_FILTER_PARAMS: [&str; 4] = [EXPORT_TYPE, RUN_TYPE, QUERY_FROM_TIME, QUERY_TO_TIME];

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

/// `page` (1-based, default 1) and `pageSize` (1..=`max`, default `default`).
pub fn parse_paging(params: &QueryParams, default: u32, max: u32) -> ApiResult<(u32, u32)> {
    let mut problems = Problems::default();
    let page = match problems.check(params.optional(PAGE)).flatten() {
        Some(value) => problems.check(parse_int(PAGE, value)).and_then(|p| {
            let page = u32::try_from(p).ok().filter(|&p| p >= 1);
            if page.is_none() {
                problems.push(ApiError::InvalidParameter(format!(
                    "{PAGE}: must be between 1 and {}",
                    u32::MAX
                )));
            }
            page
        }),
        None => Some(1),
    };
    let page_size = match problems.check(params.optional(PAGE_SIZE)).flatten() {
        Some(value) => problems.check(parse_int(PAGE_SIZE, value)).and_then(|s| {
            let size = u32::try_from(s).ok().filter(|s| (1..=max).contains(s));
            if size.is_none() {
                problems.push(ApiError::InvalidParameter(format!(
                    "{PAGE_SIZE}: must be between 1 and {max}"
                )));
            }
            size
        }),
        None => Some(default),
    };
    problems.finish()?;
    Ok((page.unwrap_or(1), page_size.unwrap_or(default)))
}

/// One page of a list of `total` items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageWindow {
    pub items: Range<usize>,
    pub previous_page: Option<u32>,
    pub next_page: Option<u32>,
}

/// Which items page `page` (1-based) holds and its neighbours. A page past
/// the end is empty; its previous page is the last one with items.
pub fn page_window(total: usize, page: u32, page_size: u32) -> PageWindow {
    let size = page_size as usize;
    let last_page = total.div_ceil(size).max(1);
    let start = (page as usize - 1).saturating_mul(size).min(total);
    let end = start.saturating_add(size).min(total);
    PageWindow {
        items: start..end,
        previous_page: (page > 1).then(|| (page as usize - 1).min(last_page) as u32),
        next_page: ((page as usize) < last_page).then(|| page + 1),
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
    fn pages_and_their_neighbours() {
        let window = |total, page, size| page_window(total, page, size);
        assert_eq!(
            window(0, 1, 30),
            PageWindow {
                items: 0..0,
                previous_page: None,
                next_page: None
            }
        );
        assert_eq!(
            window(65, 1, 30),
            PageWindow {
                items: 0..30,
                previous_page: None,
                next_page: Some(2)
            }
        );
        assert_eq!(
            window(65, 2, 30),
            PageWindow {
                items: 30..60,
                previous_page: Some(1),
                next_page: Some(3)
            }
        );
        assert_eq!(
            window(65, 3, 30),
            PageWindow {
                items: 60..65,
                previous_page: Some(2),
                next_page: None
            }
        );
        assert_eq!(
            window(60, 2, 30),
            PageWindow {
                items: 30..60,
                previous_page: Some(1),
                next_page: None
            }
        );
        assert_eq!(
            window(65, 9, 30),
            PageWindow {
                items: 65..65,
                previous_page: Some(3),
                next_page: None
            }
        );
        assert_eq!(
            window(5, u32::MAX, 100),
            PageWindow {
                items: 5..5,
                previous_page: Some(1),
                next_page: None
            }
        );
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

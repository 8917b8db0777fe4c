//! The API's errors and the one place that turns them into HTTP statuses and
//! error envelopes, so handlers never pick status codes themselves.

use auditx_common::s3::StorageError;
use auditx_common::state::StateError;
use auditx_lake::batch::IngestError;
use auditx_lake::LakeError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use axum::Json;

use crate::api::response::envelope::{ErrorBody, Reason};
use crate::fleet::job_records::RecordError;

/// Most characters of a caller's value a message quotes ([`quoted`]).
const QUOTED_CHARS: usize = 80;
/// Longest message sent back, whatever built it: a last guard against
/// echoing a large input.
const MAX_MESSAGE_CHARS: usize = 400;

/// A caller's value as a message quotes it: in quotes, cut to 80
/// characters and then saying how long it was.
pub fn quoted(value: &str) -> String {
    match value.char_indices().nth(QUOTED_CHARS) {
        Some((cut, _)) => format!(
            "{:?}… ({} characters)",
            &value[..cut],
            value.chars().count()
        ),
        None => format!("{value:?}"),
    }
}

/// `message` cut to [`MAX_MESSAGE_CHARS`].
fn bounded(message: String) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message,
    }
}

/// A failed API call. Messages are shown to the caller: they name the field
/// (or header) at fault and say why, e.g. `exportType: required`. They
/// quote at most 80 characters of what the caller sent ([`quoted`]) and
/// never a parser's or framework's own text.
///
/// Each kind has its HTTP status and its Zuora error category (the last two
/// digits of the 8-digit code, `api/error-codes.md`); the first six digits
/// are the resource code of the field the message names ([`resource_code`]).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// An invalid format or value (category 20).
    #[error("{0}")]
    InvalidParameter(String),
    /// A query parameter or body field the route does not take (21).
    #[error("{0}")]
    UnknownField(String),
    /// A required field of the request body is missing (22).
    #[error("{0}")]
    MissingField(String),
    /// A required query parameter is missing (23).
    #[error("{0}")]
    MissingParameter(String),
    /// The body is not JSON (90).
    #[error("{0}")]
    Malformed(String),
    /// Every problem found in one request (each one a 400 kind), listed in
    /// the order found.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Several(Vec<ApiError>),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    /// The same `Idempotency-Key` is being answered by another request (409,
    /// category 50).
    #[error("{0}")]
    InProgress(String),
    /// The `Idempotency-Key` was used for another request (422).
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The request (body included) did not arrive in time.
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    UriTooLong(String),
    #[error("{0}")]
    HeadersTooLarge(String),
    /// A per-tenant limit is reached; `retry_after_secs` goes out as
    /// `Retry-After`.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// A dependency (state store, S3, queue) is unreachable for now; the
    /// caller may retry.
    #[error("{0}")]
    Unavailable(String),
    /// This replica is handling as many requests as it may; the caller
    /// retries after `retry_after_secs` (sent as `Retry-After`).
    #[error("{message}")]
    Overloaded {
        message: String,
        retry_after_secs: u64,
    },
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status of each kind.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidParameter(_)
            | ApiError::UnknownField(_)
            | ApiError::MissingField(_)
            | ApiError::MissingParameter(_)
            | ApiError::Malformed(_)
            | ApiError::Several(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) | ApiError::InProgress(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::Overloaded { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Zuora's error category of each kind (`api/error-codes.md`): 10
    /// permission, 11 authentication, 20 invalid value, 21 unknown field,
    /// 22 missing field, 23 missing parameter, 30 rule restriction, 40 not
    /// found, 45 unsupported method, 50 locking contention, 60 internal, 61
    /// temporary, 70 limit exceeded, 90 malformed request.
    pub fn category(&self) -> u32 {
        match self {
            ApiError::Forbidden(_) => 10,
            ApiError::Unauthorized(_) => 11,
            ApiError::InvalidParameter(_)
            | ApiError::UnsupportedMediaType(_)
            | ApiError::Unprocessable(_) => 20,
            ApiError::UnknownField(_) => 21,
            ApiError::MissingField(_) => 22,
            ApiError::MissingParameter(_) => 23,
            ApiError::Conflict(_) => 30,
            ApiError::NotFound(_) => 40,
            ApiError::MethodNotAllowed(_) => 45,
            ApiError::InProgress(_) => 50,
            ApiError::Internal(_) => 60,
            ApiError::Unavailable(_) | ApiError::RequestTimeout(_) => 61,
            ApiError::PayloadTooLarge(_)
            | ApiError::UriTooLong(_)
            | ApiError::HeadersTooLarge(_)
            | ApiError::TooManyRequests { .. }
            | ApiError::Overloaded { .. } => 70,
            ApiError::Malformed(_) => 90,
            // Each of its reasons has its own category; this is the first's.
            ApiError::Several(all) => all.first().map_or(20, ApiError::category),
        }
    }

    /// The reasons of this error: one per problem, each with its 8-digit
    /// code and message.
    pub fn reasons(&self) -> Vec<Reason> {
        match self {
            ApiError::Several(all) => all.iter().flat_map(ApiError::reasons).collect(),
            one => {
                let message = bounded(one.to_string());
                vec![Reason {
                    code: resource_code(&message) * 100 + one.category(),
                    message,
                }]
            }
        }
    }

    /// The 8-digit code of the (first) reason, for the routes that answer
    /// errors as `{code, message}` (Data Query).
    pub fn code(&self) -> u32 {
        self.reasons().first().map_or(50000060, |r| r.code)
    }

    /// Maps one of axum's own extractor rejections (bad path, unreadable
    /// body...) of the request part `what` into the envelope. The caller
    /// gets a fixed text by status; axum's `detail` (which quotes the input
    /// and names Rust types) only goes to the debug log, cut short.
    pub fn from_rejection(status: StatusCode, what: &str, detail: String) -> Self {
        let detail: String = detail.chars().take(200).collect();
        tracing::debug!(part = what, %status, detail, "extractor rejected the request");
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge(format!("{what}: too large"))
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ApiError::UnsupportedMediaType(format!("{what}: unsupported media type"))
            }
            s if s.is_server_error() => ApiError::Internal(format!("{what}: could not be read")),
            _ => ApiError::InvalidParameter(format!(
                "{what}: malformed (not valid percent-encoded UTF-8?)"
            )),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let reasons = self.reasons();
        let retry_after = match &self {
            ApiError::TooManyRequests {
                retry_after_secs, ..
            }
            | ApiError::Overloaded {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        };
        let code = reasons.first().map_or(0, |r| r.code);
        let message = bounded(self.to_string());
        // Shedding load is not a failure of ours; logging each one at error
        // would flood the logs exactly when the replica is busiest.
        if status.is_server_error() && !matches!(self, ApiError::Overloaded { .. }) {
            tracing::error!(code, error = %message, "request failed");
        } else {
            tracing::debug!(code, error = %message, "request rejected");
        }
        let body = ErrorBody {
            success: false,
            process_id: crate::api::edge::request_id::process_id(),
            reasons,
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Collects the problems of one request so all of them are answered, not
/// only the first.
#[derive(Debug, Default)]
pub struct Problems(Vec<ApiError>);

impl Problems {
    /// `result`'s value, or `None` with its error kept.
    pub fn check<T>(&mut self, result: ApiResult<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(ApiError::Several(all)) => {
                self.0.extend(all);
                None
            }
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }

    pub fn push(&mut self, error: ApiError) {
        self.check::<()>(Err(error));
    }

    /// How many problems were found so far.
    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// `Ok` when nothing was found, else the one problem or all of them.
    pub fn finish(mut self) -> ApiResult<()> {
        match self.0.len() {
            0 => Ok(()),
            1 => Err(self.0.remove(0)),
            _ => Err(ApiError::Several(self.0)),
        }
    }
}

/// The resource codes (the first six digits of an error code) of the
/// fields, parameters and headers a message can name, from Zuora's range
/// (500000-679999); `500000` ("unknown object and field", as Zuora answers
/// requests without a payload) when it names none of them. docs/api.md
/// lists them.
pub const RESOURCE_CODES: [(&str, u32); 38] = [
    ("meterId", 581001),
    ("requestId", 581002),
    ("exportType", 581003),
    ("runType", 581004),
    ("sessionIds", 581005),
    ("sessionId", 581006),
    ("runStatuses", 581007),
    ("operatorIds", 581008),
    ("operatorId", 581009),
    ("queryFromTime", 581010),
    ("queryToTime", 581011),
    ("format", 581012),
    ("page", 581013),
    ("pageSize", 581014),
    ("cursor", 581015),
    ("groupBy", 581016),
    ("fileKey", 581017),
    ("query", 581018),
    ("body", 581020),
    ("Content-Type", 581021),
    ("Content-Encoding", 581022),
    ("Idempotency-Key", 581023),
    ("Zuora-Track-Id", 581024),
    ("Zuora-Entity-Ids", 581025),
    ("Zuora-Org-Ids", 581026),
    ("Authorization", 581027),
    ("eventId", 581030),
    ("eventTime", 581031),
    ("recordType", 581032),
    ("operatorType", 581033),
    ("operatorName", 581034),
    ("errorCode", 581035),
    ("errorMessage", 581036),
    ("traceId", 581037),
    ("payload", 581038),
    ("status", 581039),
    ("updatedAt", 581040),
    ("table", 581041),
];

/// The resource code of the field `message` names: its text before the
/// first `: ` (after an ingest message's `row N: `).
pub fn resource_code(message: &str) -> u32 {
    let rest = match message.strip_prefix("row ") {
        Some(rest) => rest.split_once(": ").map_or(rest, |(_, after)| after),
        None => message,
    };
    let field = rest.split_once(": ").map_or("", |(field, _)| field);
    RESOURCE_CODES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(field))
        .map_or(500000, |(_, code)| *code)
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        if e.is_transient() {
            ApiError::Unavailable(e.to_string())
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl From<RecordError> for ApiError {
    fn from(e: RecordError) -> Self {
        if e.is_transient() {
            ApiError::Unavailable(e.to_string())
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        if e.is_transient() {
            ApiError::Unavailable(e.to_string())
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::InvalidRow { ref message, .. } if message == "is required" => {
                ApiError::MissingField(e.to_string())
            }
            IngestError::InvalidRow { ref message, .. } if message.starts_with("unknown field") => {
                ApiError::UnknownField(e.to_string())
            }
            IngestError::InvalidRow { .. } => ApiError::InvalidParameter(e.to_string()),
            IngestError::Malformed(_) => ApiError::Malformed(e.to_string()),
            IngestError::TooLarge { .. } => ApiError::PayloadTooLarge(e.to_string()),
            IngestError::Lake(lake) if lake.is_transient() => {
                ApiError::Unavailable(lake.to_string())
            }
            IngestError::Lake(lake) => ApiError::Internal(lake.to_string()),
        }
    }
}

impl From<LakeError> for ApiError {
    fn from(e: LakeError) -> Self {
        if e.is_transient() {
            ApiError::Unavailable(e.to_string())
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_quoted_short() {
        assert_eq!(quoted("abc"), "\"abc\"");
        let long = "é".repeat(20_000);
        let shown = quoted(&long);
        assert_eq!(shown, format!("{:?}… (20000 characters)", "é".repeat(80)));
        assert_eq!(
            bounded("x".repeat(10_000)).chars().count(),
            MAX_MESSAGE_CHARS + 1
        );
        assert_eq!(bounded("short".into()), "short");
    }

    #[test]
    fn codes_are_the_named_fields_resource_and_the_kinds_category() {
        let code = |e: ApiError| e.reasons()[0].code;
        assert_eq!(
            code(ApiError::InvalidParameter("queryFromTime: bad".into())),
            58101020
        );
        assert_eq!(
            code(ApiError::UnknownField("sessionIdz: unknown".into())),
            50000021
        );
        assert_eq!(code(ApiError::MissingField("body: x".into())), 58102022);
        assert_eq!(
            code(ApiError::MissingParameter("exportType: required".into())),
            58100323
        );
        assert_eq!(
            code(ApiError::NotFound("requestId: \"x\" not found".into())),
            58100240
        );
        assert_eq!(
            code(ApiError::MethodNotAllowed("PUT is not allowed".into())),
            50000045
        );
        assert_eq!(code(ApiError::Malformed("body: not JSON".into())), 58102090);
        assert_eq!(code(ApiError::Internal("boom".into())), 50000060);
        assert_eq!(code(ApiError::Unavailable("redis down".into())), 50000061);
        assert_eq!(
            code(ApiError::TooManyRequests {
                message: "slow down".into(),
                retry_after_secs: 1
            }),
            50000070
        );
        assert_eq!(
            code(ApiError::InvalidParameter("row 3: eventTime: bad".into())),
            58103120
        );
        for (_, resource) in RESOURCE_CODES {
            assert!((500000..=679999).contains(&resource));
        }
    }

    #[test]
    fn every_problem_is_a_reason() {
        let mut problems = Problems::default();
        assert_eq!(problems.check(Ok::<_, ApiError>(1)), Some(1));
        problems.push(ApiError::MissingParameter("exportType: required".into()));
        problems.check::<()>(Err(ApiError::Several(vec![
            ApiError::UnknownField("unknown query parameter: x".into()),
            ApiError::InvalidParameter("runType: \"F\" is not one of NORMAL, DEBUG".into()),
        ])));
        let error = problems.finish().unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        let reasons: Vec<(u32, String)> = error
            .reasons()
            .into_iter()
            .map(|r| (r.code, r.message))
            .collect();
        assert_eq!(
            reasons,
            [
                (58100323, "exportType: required".to_owned()),
                (50000021, "unknown query parameter: x".to_owned()),
                (
                    58100420,
                    "runType: \"F\" is not one of NORMAL, DEBUG".to_owned()
                ),
            ]
        );
        assert!(Problems::default().finish().is_ok());
    }
}

//! The API's errors and the one place that turns them into HTTP statuses and
//! error envelopes, so handlers never pick status codes themselves.

use auditx_common::s3::StorageError;
use auditx_common::state::StateError;
use auditx_lake::ingest::IngestError;
use auditx_lake::LakeError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::envelope::Envelope;
use crate::export::jobs::JobError;
use crate::query::jobs::QueryJobError;

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
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    MissingParameter(String),
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
    /// The HTTP status and the envelope's reason code of each kind.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidParameter(_) => (StatusCode::BAD_REQUEST, "INVALID_PARAMETER"),
            ApiError::MissingParameter(_) => (StatusCode::BAD_REQUEST, "MISSING_PARAMETER"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "FORBIDDEN"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "CONFLICT"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE")
            }
            ApiError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT"),
            ApiError::UriTooLong(_) => (StatusCode::URI_TOO_LONG, "URI_TOO_LONG"),
            ApiError::HeadersTooLarge(_) => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "REQUEST_HEADER_FIELDS_TOO_LARGE",
            ),
            ApiError::TooManyRequests { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS")
            }
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE"),
            ApiError::Overloaded { .. } => (StatusCode::SERVICE_UNAVAILABLE, "OVERLOADED"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR"),
        }
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
        let (status, code) = self.status_and_code();
        let message = bounded(self.to_string());
        let retry_after = match &self {
            ApiError::TooManyRequests {
                retry_after_secs, ..
            }
            | ApiError::Overloaded {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        };
        // Shedding load is not a failure of ours; logging each one at error
        // would flood the logs exactly when the replica is busiest.
        if status.is_server_error() && !matches!(self, ApiError::Overloaded { .. }) {
            tracing::error!(code, error = %message, "request failed");
        } else {
            tracing::debug!(code, error = %message, "request rejected");
        }
        let mut response = (status, Envelope::error(code, message)).into_response();
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

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        if e.is_transient() {
            ApiError::Unavailable(e.to_string())
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        if e.is_transient() {
            ApiError::Unavailable(e.to_string())
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl From<QueryJobError> for ApiError {
    fn from(e: QueryJobError) -> Self {
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
            IngestError::InvalidRow { .. } | IngestError::Malformed(_) => {
                ApiError::InvalidParameter(e.to_string())
            }
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
}

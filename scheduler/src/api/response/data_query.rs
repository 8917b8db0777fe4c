//! The errors of the Data Query routes (`/query/jobs...`) in Data Query's
//! own shape, `{"code": <HTTP status>, "message": "..."}` (the 415 sample of
//! `post_dataqueryjob.md`), which is what Zuora's SDK parses there; every
//! other route answers the envelope of [`super::error`].

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;
use utoipa::ToSchema;

/// Whether `path` is one of the Data Query routes.
pub fn is_data_query_path(path: &str) -> bool {
    path == "/query/jobs" || path.starts_with("/query/jobs/")
}

/// The errors of the data query routes (`/query/jobs...`), in Data Query's
/// own shape: `code` is the HTTP status.
#[derive(serde::Serialize, ToSchema)]
pub struct DataQueryError {
    /// The HTTP status, e.g. 404 or 415.
    #[schema(minimum = 400, maximum = 599)]
    pub code: u16,
    /// What is wrong, naming the field at fault.
    pub message: String,
}

/// Answers the errors of the data query routes in Data Query's own shape,
/// `{"code": <HTTP status>, "message": "..."}` (the 415 sample of
/// `post_dataqueryjob.md`), whatever produced them (the handlers, the token
/// check, unknown methods); `Retry-After` and the other headers stay.
pub async fn data_query_errors(request: Request, next: Next) -> Response {
    let data_query = is_data_query_path(request.uri().path());
    let response = next.run(request).await;
    let status = response.status();
    if !data_query || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let message = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| message_of(&v))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    let body = DataQueryError {
        code: status.as_u16(),
        message,
    };
    let bytes = serde_json::to_vec(&body).expect("an error serializes");
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(bytes))
}

/// The message of an error body: `message` if it has one, else its
/// reasons' messages.
fn message_of(body: &Value) -> Option<String> {
    if let Some(message) = body["message"].as_str() {
        return Some(message.to_owned());
    }
    let messages: Vec<&str> = body["reasons"]
        .as_array()?
        .iter()
        .filter_map(|r| r["message"].as_str())
        .collect();
    (!messages.is_empty()).then(|| messages.join("; "))
}

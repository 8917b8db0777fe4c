//! The outermost layer: every request gets an id, sent back as the
//! `Zuora-Request-Id` header on every answer (errors of the other layers
//! included), and quoted as the `processId` of error bodies so a caller's
//! report can be matched with the logs.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use uuid::Uuid;

pub const REQUEST_ID_HEADER: &str = "zuora-request-id";

tokio::task_local! {
    static REQUEST_ID: Uuid;
}

pub async fn tag(request: Request, next: Next) -> Response {
    let id = Uuid::new_v4();
    tracing::debug!(zuora_request_id = %id, "request received");
    let mut response = REQUEST_ID.scope(id, next.run(request)).await;
    let value = HeaderValue::from_str(&id.hyphenated().to_string())
        .expect("a UUID is a valid header value");
    response.headers_mut().insert(REQUEST_ID_HEADER, value);
    response
}

/// The `processId` of the request being answered: the first 16 hex digits
/// of its `Zuora-Request-Id`, upper case, as Zuora's look
/// (`CBCFED6580B4E076`). Outside a request (unit tests), a fresh one.
pub fn process_id() -> String {
    let id = REQUEST_ID
        .try_with(|id| *id)
        .unwrap_or_else(|_| Uuid::new_v4());
    id.simple().to_string()[..16].to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_process_id_is_the_request_ids_head() {
        let id = Uuid::parse_str("cbcfed65-80b4-e076-9d0e-1234567890ab").unwrap();
        let inside = REQUEST_ID.scope(id, async { process_id() }).await;
        assert_eq!(inside, "CBCFED6580B4E076");
        assert_eq!(process_id().len(), 16);
    }
}

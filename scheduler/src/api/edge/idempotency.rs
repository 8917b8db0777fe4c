//! `Idempotency-Key` on every POST (`api/idempotent-requests.md`): the
//! first answer to a key is stored and a retry with the same key gets it
//! back, so a retried export create or ingest starts nothing new.
//!
//! - A record is keyed by the caller's tenant and the key; it holds a
//!   fingerprint of the request (method, path and query, the scope and
//!   encoding headers, and the body). A retry whose fingerprint differs
//!   (another body, URL or method) is a 422; one arriving while the first
//!   is still being answered is a 409.
//! - Stored answers are those a retry would get again: every status but
//!   429 and 5xx (a retry of a request refused for load or by an outage
//!   runs again). A replayed answer carries `Idempotent-Replayed: true`.
//! - Records live 24 hours (an unanswered claim
//!   [`CLAIM_TTL`]): each record carries its expiry, an index of expiries
//!   in the state store lets every keyed POST delete a few expired ones,
//!   and an expired record counts as absent.
//! - A request without a valid bearer token passes through untouched: the
//!   route answers its 401.

use std::time::Duration;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::auth::Caller;
use crate::api::edge::headers::{ENTITY_IDS_HEADER, ORG_IDS_HEADER};
use crate::api::response::error::{ApiError, ApiResult};
use crate::context::Services;

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// Keys are "less than 255 characters long".
const MAX_KEY_CHARS: usize = 254;
/// How long an answer is kept.
pub const RECORD_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a claim without an answer (its process died) blocks the key.
pub const CLAIM_TTL: Duration = Duration::from_secs(300);
/// Largest answer body stored (answers here are small JSON documents).
const MAX_ANSWER_BYTES: usize = 1 << 20;
/// The index of records by expiry.
const EXPIRY_INDEX: &str = "idempotency:expiry";
/// Expired records deleted per keyed POST.
const SWEEP: usize = 20;

/// One key's record.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    fingerprint: String,
    /// What the fingerprint covers, for the logs.
    method: String,
    target: String,
    expires_ms: i64,
    /// `None` while the first request is being answered.
    answer: Option<Answer>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Answer {
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
}

fn state_key(tenant: &str, key: &str) -> String {
    format!(
        "idempotency:{tenant}:{}",
        hex::encode(Sha256::digest(key.as_bytes()))
    )
}

/// The headers that change what a POST does, besides its body.
const FINGERPRINTED_HEADERS: [&str; 4] = [
    ENTITY_IDS_HEADER,
    ORG_IDS_HEADER,
    "content-type",
    "content-encoding",
];

fn fingerprint(method: &Method, target: &str, headers: &HeaderMap, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(method.as_str().as_bytes());
    hash.update(b"\n");
    hash.update(target.as_bytes());
    for name in FINGERPRINTED_HEADERS {
        hash.update(b"\n");
        for value in headers.get_all(name) {
            hash.update(value.as_bytes());
            hash.update(b",");
        }
    }
    hash.update(b"\n");
    hash.update(body);
    hex::encode(hash.finalize())
}

/// The validated key of a POST, if it has one.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY_HEADER) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| {
            ApiError::InvalidParameter("Idempotency-Key: must be printable US-ASCII".into())
        })?
        .trim();
    if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
        return Err(ApiError::InvalidParameter(format!(
            "Idempotency-Key: must be 1 to {MAX_KEY_CHARS} characters"
        )));
    }
    Ok(Some(key.to_owned()))
}

pub async fn replay(State(services): State<Services>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    match idempotent(&services, request, next).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn idempotent(services: &Services, request: Request, next: Next) -> ApiResult<Response> {
    let Some(key) = idempotency_key(request.headers())? else {
        return Ok(next.run(request).await);
    };
    let (mut parts, body) = request.into_parts();
    let tenant = match Caller::from_request_parts(&mut parts, services).await {
        Ok(caller) => caller.tenant,
        // The route answers it (401/403).
        Err(_) => return Ok(next.run(Request::from_parts(parts, body)).await),
    };
    let limit = services.config.ingest.max_body_bytes;
    let bytes = to_bytes(body, limit).await.map_err(|_| {
        ApiError::PayloadTooLarge(format!(
            "body: larger than {limit} bytes, or not received whole"
        ))
    })?;
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |t| t.as_str().to_owned());
    let print = fingerprint(&parts.method, &target, &parts.headers, &bytes);
    let state = services.state.as_ref();
    let record_key = state_key(tenant.as_str(), &key);
    sweep(services).await;
    let now_ms = Utc::now().timestamp_millis();
    let existing = state.get(&record_key).await?;
    let live = existing
        .as_deref()
        .and_then(|raw| rmp_serde::from_slice::<Record>(raw).ok())
        .filter(|record| record.expires_ms > now_ms);
    if let Some(record) = live {
        if record.fingerprint != print {
            tracing::debug!(
                first = %format_args!("{} {}", record.method, record.target),
                "idempotency key reused for another request"
            );
            return Err(ApiError::Unprocessable(
                "Idempotency-Key: already used for another request (another URL, method, \
                 body or scope); use a new key for a new request"
                    .into(),
            ));
        }
        return match record.answer {
            Some(answer) => Ok(replayed(answer)),
            None => Err(in_progress()),
        };
    }
    let claim = Record {
        fingerprint: print,
        method: parts.method.to_string(),
        target: target.clone(),
        expires_ms: now_ms + CLAIM_TTL.as_millis() as i64,
        answer: None,
    };
    let claim_bytes = encode(&claim)?;
    if !state
        .compare_and_set(&record_key, existing.as_deref(), &claim_bytes)
        .await?
    {
        // Another request with this key got there first.
        return Err(in_progress());
    }
    state
        .index_add(EXPIRY_INDEX, claim.expires_ms, &record_key)
        .await?;
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = response.status();
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        // Not an answer a retry should get again: free the key.
        if let Err(e) = state.delete(std::slice::from_ref(&record_key)).await {
            tracing::warn!(error = %e, "idempotency claim not released");
        }
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let Ok(body) = to_bytes(body, MAX_ANSWER_BYTES).await else {
        return Err(ApiError::Internal(
            "the answer could not be read for Idempotency-Key".into(),
        ));
    };
    let expires_ms = Utc::now().timestamp_millis() + RECORD_TTL.as_millis() as i64;
    let record = Record {
        expires_ms,
        answer: Some(Answer {
            status: status.as_u16(),
            content_type: parts
                .headers
                .get(axum::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: body.to_vec(),
        }),
        ..claim
    };
    let stored = async {
        state
            .compare_and_set(&record_key, Some(&claim_bytes), &encode(&record)?)
            .await?;
        state
            .index_add(EXPIRY_INDEX, expires_ms, &record_key)
            .await?;
        Ok::<_, ApiError>(())
    };
    if let Err(e) = stored.await {
        // The request was done; its answer goes out even if it could not
        // be kept (a retry then waits for the claim to expire).
        tracing::warn!(error = %e, "idempotency answer not stored");
    }
    Ok(Response::from_parts(parts, Body::from(body)))
}

fn encode(record: &Record) -> ApiResult<Vec<u8>> {
    rmp_serde::to_vec_named(record)
        .map_err(|e| ApiError::Internal(format!("encoding an idempotency record: {e}")))
}

fn in_progress() -> ApiError {
    ApiError::InProgress(
        "Idempotency-Key: a request with this key is still being answered; retry later".into(),
    )
}

fn replayed(answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, Bytes::from(answer.body)).into_response();
    let headers = response.headers_mut();
    if let Some(value) = answer
        .content_type
        .and_then(|v| HeaderValue::from_str(&v).ok())
    {
        headers.insert(axum::http::header::CONTENT_TYPE, value);
    }
    headers.insert(
        HeaderName::from_static(REPLAYED_HEADER),
        HeaderValue::from_static("true"),
    );
    response
}

/// Deletes a few expired records; failures only delay the cleanup.
async fn sweep(services: &Services) {
    let state = services.state.as_ref();
    let now_ms = Utc::now().timestamp_millis();
    let expired = match state.index_up_to(EXPIRY_INDEX, now_ms, SWEEP).await {
        Ok(expired) => expired,
        Err(e) => {
            tracing::debug!(error = %e, "idempotency sweep skipped");
            return;
        }
    };
    for key in expired {
        // Re-claimed since it was indexed: its newer expiry is indexed too.
        let still_expired = match state.get(&key).await {
            Ok(Some(raw)) => rmp_serde::from_slice::<Record>(&raw)
                .map_or(true, |record| record.expires_ms <= now_ms),
            Ok(None) => true,
            Err(_) => return,
        };
        if still_expired && state.delete(std::slice::from_ref(&key)).await.is_err() {
            return;
        }
        if state.index_remove(EXPIRY_INDEX, &key).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        let mut headers = HeaderMap::new();
        assert_eq!(idempotency_key(&headers).unwrap(), None);
        headers.insert(IDEMPOTENCY_KEY_HEADER, HeaderValue::from_static("k-1"));
        assert_eq!(idempotency_key(&headers).unwrap().as_deref(), Some("k-1"));
        headers.insert(
            IDEMPOTENCY_KEY_HEADER,
            HeaderValue::from_str(&"k".repeat(255)).unwrap(),
        );
        let err = idempotency_key(&headers).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Idempotency-Key: must be 1 to 254 characters"
        );
        assert_eq!(err.reasons()[0].code, 58102320);
    }

    #[test]
    fn the_fingerprint_covers_target_scope_and_body() {
        let headers = HeaderMap::new();
        let base = fingerprint(&Method::POST, "/a?x=1", &headers, b"{}");
        assert_eq!(base, fingerprint(&Method::POST, "/a?x=1", &headers, b"{}"));
        assert_ne!(base, fingerprint(&Method::POST, "/a?x=2", &headers, b"{}"));
        assert_ne!(base, fingerprint(&Method::POST, "/a?x=1", &headers, b"{ }"));
        let mut scoped = HeaderMap::new();
        scoped.insert(ENTITY_IDS_HEADER, HeaderValue::from_static("e1"));
        assert_ne!(base, fingerprint(&Method::POST, "/a?x=1", &scoped, b"{}"));
    }
}

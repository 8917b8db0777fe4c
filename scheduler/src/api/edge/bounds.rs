//! The outermost layer of every request: sizes of the request target and
//! header fields (414 / 431), requests in flight (503) and the whole-request
//! deadline (408), each answered with the usual error envelope.
//!
//! hyper has limits of its own but answers them with a bare status, so the
//! server raises hyper's buffer well above `api.max_uri_bytes` +
//! `api.max_header_bytes` (see [`crate::api::edge::server`]) and the limits users meet
//! are these.

use std::sync::Arc;
use std::time::Duration;

use auditx_common::config::ApiConfig;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::api::response::error::ApiError;

/// Probes and metrics stay answerable while the replica sheds load.
const UNBOUNDED_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The limits and the in-flight permits of one server.
#[derive(Clone)]
pub struct Bounds {
    max_uri_bytes: usize,
    max_header_bytes: usize,
    request_timeout: Duration,
    retry_after_secs: u64,
    max_in_flight: usize,
    in_flight: Arc<Semaphore>,
}

impl Bounds {
    pub fn new(config: &ApiConfig) -> Self {
        Self {
            max_uri_bytes: config.max_uri_bytes,
            max_header_bytes: config.max_header_bytes,
            request_timeout: Duration::from_secs(config.request_timeout_secs),
            retry_after_secs: config.retry_after_secs,
            max_in_flight: config.max_in_flight,
            in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
        }
    }
}

/// Bytes the header fields took on the wire: `name: value\r\n` each.
fn header_bytes(request: &Request) -> usize {
    request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

pub async fn bound(State(bounds): State<Bounds>, request: Request, next: Next) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target > bounds.max_uri_bytes {
        return ApiError::UriTooLong(format!(
            "request target: {target} bytes, more than the {} accepted",
            bounds.max_uri_bytes
        ))
        .into_response();
    }
    let headers = header_bytes(&request);
    if headers > bounds.max_header_bytes {
        return ApiError::HeadersTooLarge(format!(
            "request headers: {headers} bytes, more than the {} accepted",
            bounds.max_header_bytes
        ))
        .into_response();
    }
    let _permit = if UNBOUNDED_PATHS.contains(&request.uri().path()) {
        None
    } else {
        match bounds.in_flight.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                tracing::debug!(max_in_flight = bounds.max_in_flight, "request shed");
                return ApiError::Overloaded {
                    message: format!(
                        "the server is handling its limit of {} requests; retry later",
                        bounds.max_in_flight
                    ),
                    retry_after_secs: bounds.retry_after_secs,
                }
                .into_response();
            }
        }
    };
    match tokio::time::timeout(bounds.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = ApiError::RequestTimeout(format!(
                "request not completed within {} s (a body must arrive in that time)",
                bounds.request_timeout.as_secs()
            ))
            .into_response();
            // Whatever is left of the body would be read as the next
            // request: end the connection instead.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request as HttpRequest, StatusCode};
    use axum::routing::{get, post};
    use axum::{middleware, Router};
    use tower::ServiceExt;

    use super::*;

    fn app(config: &ApiConfig) -> Router {
        Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route(
                "/slow",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    "late"
                }),
            )
            .layer(middleware::from_fn_with_state(Bounds::new(config), bound))
    }

    async fn reason_of(response: Response) -> (StatusCode, String, serde_json::Value) {
        let status = response.status();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let envelope: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(envelope["success"], false, "{envelope}");
        (status, retry, envelope["reasons"][0].clone())
    }

    #[tokio::test]
    async fn long_targets_and_big_headers_get_the_envelope() {
        let config = ApiConfig {
            max_uri_bytes: 300,
            max_header_bytes: 1024,
            ..ApiConfig::default()
        };
        let long = format!("/ok?q={}", "a".repeat(300));
        let response = app(&config)
            .oneshot(HttpRequest::get(long).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (status, _, reason) = reason_of(response).await;
        assert_eq!(status, StatusCode::URI_TOO_LONG);
        assert_eq!(reason["code"], 50_000_070, "limit exceeded");

        let response = app(&config)
            .oneshot(
                HttpRequest::get("/ok")
                    .header("x-big", "b".repeat(1100))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let (status, _, reason) = reason_of(response).await;
        assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert!(
            reason["message"].as_str().unwrap().contains("1024"),
            "{reason}"
        );

        let response = app(&config)
            .oneshot(HttpRequest::get("/ok").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_requests_time_out_and_excess_ones_are_shed() {
        let config = ApiConfig {
            max_in_flight: 1,
            request_timeout_secs: 5,
            ..ApiConfig::default()
        };
        let app = app(&config);
        let slow = tokio::spawn(
            app.clone()
                .oneshot(HttpRequest::post("/slow").body(Body::empty()).unwrap()),
        );
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        // The one permit is taken: a second request is shed.
        let shed = app
            .clone()
            .oneshot(HttpRequest::post("/slow").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (status, retry, reason) = reason_of(shed).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reason["code"], 50_000_070, "limit exceeded");
        assert_eq!(retry, "1");

        let (status, _, reason) = reason_of(slow.await.unwrap().unwrap()).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert!(
            reason["message"].as_str().unwrap().contains("5 s"),
            "{reason}"
        );
        // The permit is back.
        let response = app
            .oneshot(HttpRequest::get("/ok").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}

//! An API over in-process stores and an embedded S3 endpoint, driven with
//! `tower::ServiceExt::oneshot`, plus helpers to read its envelopes.

#![allow(dead_code)] // each test binary uses its own subset

use std::sync::Arc;

use auditx_common::config::Config;
use auditx_common::embedded_s3::EmbeddedS3;
use auditx_common::queue::MemoryQueue;
use auditx_common::state::MemoryStore;
use auditx_proto::{RequestId, Topology};
use auditx_scheduler::api::router;
use auditx_scheduler::context::Services;
use auditx_scheduler::export::jobs::{JobState, JobStatus};
use axum::body::{to_bytes, Body, Bytes};
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt;

#[path = "../backends/mod.rs"]
mod backends;

#[allow(unused_imports)] // each test binary uses its own subset
pub use backends::{in_an_hour, token_for, SECRET};

pub const TENANT: &str = "acme";

/// A valid create query (append `&...` to vary it).
pub const CREATE_QUERY: &str = "exportType=SAMPLE&runType=NORMAL\
    &queryFromTime=2025-07-01T00:00:00Z&queryToTime=2025-07-02T00:00:00Z";

/// The Zuora error category (the code's last two digits) of an error kind.
pub fn category(kind: &str) -> u64 {
    match kind {
        "FORBIDDEN" => 10,
        "UNAUTHORIZED" => 11,
        "INVALID_PARAMETER" | "UNSUPPORTED_MEDIA_TYPE" | "UNPROCESSABLE" => 20,
        "UNKNOWN_FIELD" => 21,
        "MISSING_FIELD" => 22,
        "MISSING_PARAMETER" => 23,
        "CONFLICT" => 30,
        "NOT_FOUND" => 40,
        "METHOD_NOT_ALLOWED" => 45,
        "IN_PROGRESS" => 50,
        "INTERNAL_ERROR" => 60,
        "SERVICE_UNAVAILABLE" | "REQUEST_TIMEOUT" => 61,
        "TOO_MANY_REQUESTS"
        | "PAYLOAD_TOO_LARGE"
        | "OVERLOADED"
        | "URI_TOO_LONG"
        | "REQUEST_HEADER_FIELDS_TOO_LARGE" => 70,
        "MALFORMED" => 90,
        other => panic!("unknown error kind {other}"),
    }
}

pub struct TestApi {
    pub router: Router,
    pub services: Services,
    pub s3: EmbeddedS3,
    _dir: TempDir,
}

impl TestApi {
    pub async fn start() -> Self {
        Self::with_config(|_| {}).await
    }

    pub async fn with_config(adjust: impl FnOnce(&mut Config)) -> Self {
        let backends::Backends {
            config,
            store,
            s3,
            dir,
        } = backends::start_backends(adjust)
            .await
            .expect("embedded S3 endpoint");
        let topology = Topology::new(config.rabbitmq.prefix.clone());
        let services = Services::new(
            Arc::new(config),
            Arc::new(MemoryStore::new()),
            Arc::new(MemoryQueue::new(topology, 5)),
            store,
        );
        Self {
            router: router(services.clone()),
            services,
            s3,
            _dir: dir,
        }
    }

    /// Sends `request` through the router.
    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        TestResponse {
            status,
            headers,
            body,
        }
    }

    /// A request of `TENANT` with no extra headers.
    pub async fn call(&self, method: Method, uri: &str) -> TestResponse {
        self.send(authed(method, uri).body(Body::empty()).unwrap())
            .await
    }

    /// Creates an export with `CREATE_QUERY` plus `extra`; its request id.
    pub async fn create(&self, meter: i64, extra: &str) -> RequestId {
        let uri = format!("/meters/{meter}/auditTrail/export?{CREATE_QUERY}{extra}");
        let response = self.call(Method::POST, &uri).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        RequestId(
            response.data()["requestId"]
                .as_str()
                .expect("requestId")
                .to_owned(),
        )
    }

    /// Moves a job to `status` the way the scheduler would.
    pub async fn set_status(
        &self,
        id: &RequestId,
        status: JobStatus,
        adjust: impl FnOnce(&mut JobState),
    ) {
        let jobs = &self.services.jobs;
        let (state, raw) = jobs.state_raw(id).await.unwrap().expect("job state");
        let mut next = JobState { status, ..state };
        adjust(&mut next);
        assert!(jobs.transition(id, &raw, &next).await.unwrap());
    }
}

/// A request builder carrying a valid token of `tenant`.
pub fn authed_as(tenant: &str, method: Method, uri: &str) -> axum::http::request::Builder {
    Request::builder().method(method).uri(uri).header(
        header::AUTHORIZATION,
        format!("Bearer {}", token_for(tenant, &[], &[], in_an_hour())),
    )
}

pub fn authed(method: Method, uri: &str) -> axum::http::request::Builder {
    authed_as(TENANT, method, uri)
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// `data` of a successful envelope.
    pub fn data(&self) -> Value {
        let body = self.json();
        assert_eq!(body["success"], true, "{body}");
        body["data"].clone()
    }

    /// An error of the data query routes: `{code: <status>, message}`.
    #[track_caller]
    pub fn assert_query_error(&self, status: StatusCode, message: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(
            self.json(),
            serde_json::json!({ "code": status.as_u16(), "message": message })
        );
    }

    /// Asserts the exact error body: one reason whose 8-digit code ends
    /// in the category of `kind` (see [`category`]) and the message.
    #[track_caller]
    pub fn assert_error(&self, status: StatusCode, kind: &str, message: &str) {
        self.assert_errors(status, &[(kind, message)]);
    }

    /// Asserts the exact error body with one reason per `(kind, message)`.
    #[track_caller]
    pub fn assert_errors(&self, status: StatusCode, reasons: &[(&str, &str)]) {
        assert_eq!(self.status, status, "{}", self.text());
        let body = self.json();
        let process_id = body["processId"].as_str().unwrap_or_default();
        assert!(
            process_id.len() == 16 && process_id.chars().all(|c| c.is_ascii_hexdigit()),
            "{body}"
        );
        let request_id = self.headers["zuora-request-id"].to_str().unwrap();
        assert_eq!(
            request_id.replace('-', "")[..16].to_ascii_uppercase(),
            process_id
        );
        let got: Vec<(u64, &str)> = body["reasons"]
            .as_array()
            .unwrap_or_else(|| panic!("no reasons: {body}"))
            .iter()
            .map(|r| {
                let code = r["code"].as_u64().unwrap_or_else(|| panic!("{body}"));
                assert!((50_000_000..68_000_000).contains(&code), "{body}");
                (code % 100, r["message"].as_str().unwrap())
            })
            .collect();
        let expected: Vec<(u64, &str)> = reasons
            .iter()
            .map(|(kind, message)| (category(kind), *message))
            .collect();
        assert_eq!(got, expected, "{body}");
        let mut keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["processId", "reasons", "success"], "{body}");
        assert_eq!(body["success"], false);
    }
}

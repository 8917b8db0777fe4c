//! The API's edge, over real sockets: per-tenant create limits (429 with
//! `Retry-After`, fleet-wide through the state store), slow and excess
//! clients (header timeout, connection and in-flight bounds, request
//! deadline) and oversized request heads (414 / 431), every refusal in the
//! error envelope.

use std::time::{Duration, Instant};

use auditx::client::ExportRequest;
use auditx_common::config::ApiConfig;
use auditx_lake::audit_trail::generate::GenerateSpec;
use auditx_proto::{MeterId, TenantId};
use auditx_scheduler::context::Services;
use auditx_tests::{Adapters, Sandbox, SandboxOptions};
use chrono::DateTime;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const START: &str = "2025-07-01T00:00:00Z";
const END: &str = "2025-07-02T00:00:00Z";

fn spec(tenant: &str, meter: i64, rows: u64) -> GenerateSpec {
    GenerateSpec {
        tenant: TenantId::from(tenant),
        meter: MeterId(meter),
        rows,
        from_ms: DateTime::parse_from_rfc3339(START)
            .unwrap()
            .timestamp_millis(),
        to_ms: DateTime::parse_from_rfc3339(END)
            .unwrap()
            .timestamp_millis(),
        error_rate: 0.05,
        seed: 7,
    }
}

fn export_request(meter: i64) -> ExportRequest {
    ExportRequest {
        meter_id: meter,
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        query_from_time: START.into(),
        query_to_time: END.into(),
        ..ExportRequest::default()
    }
}

/// A create call as a client sends it: (status, Retry-After, envelope).
async fn create(api: &str, token: &str, meter: i64) -> (u16, Option<u64>, Value) {
    let response = reqwest::Client::new()
        .post(format!("{api}/meters/{meter}/auditTrail/export"))
        .query(&[
            ("exportType", "SAMPLE"),
            ("runType", "NORMAL"),
            ("queryFromTime", START),
            ("queryToTime", END),
        ])
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    answer(response).await
}

async fn answer(response: reqwest::Response) -> (u16, Option<u64>, Value) {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    let body: Value = response.json().await.expect("a JSON envelope");
    (status, retry_after, body)
}

/// The Zuora error code of the first reason (no field named: resource
/// 500000, then the category).
fn reason_code(envelope: &Value) -> u64 {
    assert_eq!(envelope["success"], false, "{envelope}");
    envelope["reasons"][0]["code"].as_u64().unwrap_or_default()
}

/// A second API replica over the sandbox's backends (same state store), as
/// another scheduler pod would be.
async fn second_replica(sandbox: &Sandbox, shutdown: CancellationToken) -> String {
    let services = Services::new(
        sandbox.config.clone(),
        sandbox.backends.state.clone(),
        sandbox.backends.queue.clone(),
        sandbox.backends.store.clone(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(auditx_scheduler::api::serve_on(
        listener, services, shutdown,
    ));
    api
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flooding_tenant_is_rate_limited_fleet_wide_and_others_are_not() {
    let sandbox = Sandbox::start(SandboxOptions {
        api: ApiConfig {
            create_burst: 6,
            create_rate_per_sec: 0.5,
            ..ApiConfig::default()
        },
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    sandbox
        .generate(&spec("calm", 2, 3_000), 3_000)
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let replicas = [
        sandbox.api.clone(),
        second_replica(&sandbox, shutdown.clone()).await,
    ];
    let flood = sandbox.token("flood");

    // The burst is shared by both replicas: 6 creates pass, then 429s.
    let mut accepted = 0;
    let mut retry_after = None;
    for i in 0..40 {
        let (status, retry, body) = create(&replicas[i % 2], &flood, 1).await;
        match status {
            200 => accepted += 1,
            429 => {
                assert_eq!(reason_code(&body), 50_000_070);
                let message = body["reasons"][0]["message"].as_str().unwrap();
                assert!(message.contains("create rate"), "{message}");
                retry_after = Some(retry.expect("Retry-After on a 429"));
            }
            other => panic!("create answered {other}: {body}"),
        }
    }
    // At 0.5 per second, at most one more token can have come in meanwhile.
    assert!((6..=7).contains(&accepted), "{accepted} creates accepted");
    let retry_after = retry_after.expect("the flood was refused");
    assert!((1..=2).contains(&retry_after), "Retry-After: {retry_after}");

    // After waiting as told, the flooding tenant may create again (once).
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let (status, _, body) = create(&replicas[1], &flood, 1).await;
    assert_eq!(status, 200, "{body}");
    // The query submit draws on the same bucket.
    let query = reqwest::Client::new()
        .post(format!("{}/query/jobs", sandbox.api))
        .bearer_auth(&flood)
        .json(&serde_json::json!({"query": "SELECT 1 AS one FROM auditloginevent"}))
        .send()
        .await
        .unwrap();
    let (status, retry, body) = answer(query).await;
    assert_eq!(status, 429, "{body}");
    assert!(retry.is_some());

    // Another tenant creates at once, and its export runs to the end.
    let calm = sandbox.client("calm");
    let (status, _, body) = create(&sandbox.api, &sandbox.token("calm"), 2).await;
    assert_eq!(status, 200, "{body}");
    let id = body["data"]["requestId"].as_str().unwrap();
    let job = calm
        .wait(2, id, Duration::from_secs(180), |_| {})
        .await
        .unwrap();
    assert_eq!(job["status"], "FINISHED", "{job}");
    assert!(job["count"].as_u64().unwrap() > 0, "{job}");
    shutdown.cancel();
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pending_exports_per_tenant_are_capped() {
    // No workers: a tenant's first export stays RUNNING, the rest PENDING.
    let sandbox = Sandbox::start(SandboxOptions {
        adapters: Adapters::InProcess,
        workers: 0,
        max_pending_per_tenant: 3,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    sandbox
        .generate(&spec("busy", 1, 2_000), 2_000)
        .await
        .unwrap();
    let busy = sandbox.client("busy");
    let token = sandbox.token("busy");

    let first = busy.create_export(&export_request(1)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while busy.job(1, &first).await.unwrap()["status"] != "RUNNING" {
        assert!(Instant::now() < deadline, "the first export never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut pending = Vec::new();
    for _ in 0..3 {
        let (status, _, body) = create(&sandbox.api, &token, 1).await;
        assert_eq!(status, 200, "{body}");
        pending.push(body["data"]["requestId"].as_str().unwrap().to_owned());
    }
    let (status, retry_after, body) = create(&sandbox.api, &token, 1).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(retry_after, Some(30));
    let message = body["reasons"][0]["message"].as_str().unwrap();
    assert!(message.contains("3 PENDING exports (limit 3)"), "{message}");

    // Another tenant is not affected.
    let (status, _, body) = create(&sandbox.api, &sandbox.token("other"), 5).await;
    assert_eq!(status, 200, "{body}");

    // Once one of its PENDING exports is gone, the tenant may create again.
    let canceled = reqwest::Client::new()
        .delete(format!(
            "{}/meters/1/auditTrail/export/{}",
            sandbox.api, pending[0]
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(canceled.status().is_success());
    let (status, _, body) = create(&sandbox.api, &token, 1).await;
    assert_eq!(status, 200, "{body}");
    sandbox.stop().await.unwrap();
}

/// An API-only sandbox (in-process backends, no workers) with `api` limits.
async fn edge_sandbox(api: ApiConfig) -> Sandbox {
    Sandbox::start(SandboxOptions {
        adapters: Adapters::InProcess,
        workers: 0,
        api,
        ..SandboxOptions::default()
    })
    .await
    .unwrap()
}

fn addr(sandbox: &Sandbox) -> String {
    sandbox.api.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection; the bytes it sent.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_headers_are_cut_while_normal_requests_go_through() {
    let sandbox = edge_sandbox(ApiConfig {
        header_read_timeout_secs: 1,
        ..ApiConfig::default()
    })
    .await;
    let started = Instant::now();
    let mut slow = Vec::new();
    for i in 0..200 {
        let mut stream = TcpStream::connect(addr(&sandbox)).await.unwrap();
        let partial = if i % 2 == 0 {
            "GET /heal".to_owned()
        } else {
            "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ".to_owned()
        };
        stream.write_all(partial.as_bytes()).await.unwrap();
        slow.push(stream);
    }
    // Meanwhile a normal request is answered.
    let ok = reqwest::get(format!("{}/healthz", sandbox.api))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    for (i, stream) in slow.iter_mut().enumerate() {
        let left = Duration::from_secs(6).saturating_sub(started.elapsed());
        assert!(
            read_to_close(stream, left).await.is_some(),
            "slow connection {i} still open after {:?}",
            started.elapsed()
        );
    }
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn open_connections_are_bounded() {
    let sandbox = edge_sandbox(ApiConfig {
        max_connections: 4,
        header_read_timeout_secs: 60,
        ..ApiConfig::default()
    })
    .await;
    // Four connections that have not finished their headers hold all slots.
    let mut holders = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(addr(&sandbox)).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        holders.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A fifth waits in the backlog: its complete request is not answered.
    let mut fifth = TcpStream::connect(addr(&sandbox)).await.unwrap();
    fifth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert!(
        read_to_close(&mut fifth, Duration::from_millis(1500))
            .await
            .is_none(),
        "a fifth connection was served while four were open"
    );
    // One slot frees up: the fifth is served.
    drop(holders.pop());
    let answer = read_to_close(&mut fifth, Duration::from_secs(5))
        .await
        .expect("served once a slot was free");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(holders);
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_past_the_in_flight_bound_get_503_and_slow_bodies_408() {
    let sandbox = edge_sandbox(ApiConfig {
        max_in_flight: 1,
        request_timeout_secs: 2,
        ..ApiConfig::default()
    })
    .await;
    let token = sandbox.token("acme");
    // A submit whose body trickles in holds the one in-flight slot.
    let mut slow = TcpStream::connect(addr(&sandbox)).await.unwrap();
    let head = format!(
        "POST /query/jobs HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"query\""
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let busy = reqwest::Client::new()
        .get(format!("{}/query/jobs", sandbox.api))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, retry_after, body) = answer(busy).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(reason_code(&body), 50_000_070);
    assert_eq!(retry_after, Some(1));
    // Probes are not shed.
    let probe = reqwest::get(format!("{}/healthz", sandbox.api))
        .await
        .unwrap();
    assert_eq!(probe.status(), 200);

    // The slow body is cut at the deadline with a 408 envelope.
    let cut = read_to_close(&mut slow, Duration::from_secs(5))
        .await
        .expect("the connection is closed after the 408");
    let cut = String::from_utf8_lossy(&cut);
    assert!(cut.starts_with("HTTP/1.1 408"), "{cut}");
    let body: Value = serde_json::from_str(&cut[cut.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(reason_code(&body), 50_000_061);

    // The slot is free again.
    let again = reqwest::Client::new()
        .get(format!("{}/query/jobs", sandbox.api))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_targets_and_headers_get_the_envelope() {
    let sandbox = edge_sandbox(ApiConfig::default()).await;
    let http = reqwest::Client::new();
    let defaults = ApiConfig::default();

    let long = format!("{}/healthz?pad={}", sandbox.api, "a".repeat(20_000));
    let (status, _, body) = answer(http.get(long).send().await.unwrap()).await;
    assert_eq!(status, 414, "{body}");
    assert_eq!(reason_code(&body), 50_000_070);
    let message = body["reasons"][0]["message"].as_str().unwrap();
    assert!(
        message.contains(&defaults.max_uri_bytes.to_string()),
        "{message}"
    );

    let mut request = http.get(format!("{}/healthz", sandbox.api));
    for i in 0..40 {
        request = request.header(format!("x-pad-{i}"), "h".repeat(1000));
    }
    let (status, _, body) = answer(request.send().await.unwrap()).await;
    assert_eq!(status, 431, "{body}");
    assert_eq!(reason_code(&body), 50_000_070);

    // Many small fields, past hyper's default of 100, are counted too.
    let mut request = http.get(format!("{}/healthz", sandbox.api));
    for i in 0..1500 {
        request = request.header(format!("x-{i}"), "v".repeat(20));
    }
    let (status, _, body) = answer(request.send().await.unwrap()).await;
    assert_eq!(status, 431, "{body}");
    assert_eq!(reason_code(&body), 50_000_070);

    // Within the limits, the same server answers.
    let ok = http
        .get(format!("{}/healthz?pad={}", sandbox.api, "a".repeat(4000)))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    sandbox.stop().await.unwrap();
}

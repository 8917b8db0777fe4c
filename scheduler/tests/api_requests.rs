//! What every route shares: parameter validation, bearer auth, the
//! Zuora headers, the envelope for axum's own rejections, gzip, probes, the
//! OpenAPI document and serving on a real socket.

mod api_support;

use std::io::Read;
use std::time::Duration;

use api_support::{authed, in_an_hour, token_for, TestApi, CREATE_QUERY, SECRET};
use auditx_scheduler::api::serve_on;
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const FROM: &str = "queryFromTime=2025-07-01T00:00:00Z";
const TO: &str = "queryToTime=2025-07-02T00:00:00Z";

#[tokio::test]
async fn create_parameters_are_validated_with_named_fields() {
    let api = TestApi::start().await;
    let statuses = "NEVER_RUN, TESTING, TESTING_FAILED, TESTING_PASSED, RUNNING, PAUSED, \
        COMPLETED, FAILED, CANCELED, INITIALIZING, USAGE_PUSHING, PUSH_COMPLETED, \
        CONSUME_COMPLETED";
    let cases: Vec<(String, &str, String)> = vec![
        (
            format!("runType=NORMAL&{FROM}&{TO}"),
            "MISSING_PARAMETER",
            "exportType: required".into(),
        ),
        (
            format!("exportType=&runType=NORMAL&{FROM}&{TO}"),
            "INVALID_PARAMETER",
            "exportType: must not be empty".into(),
        ),
        (
            format!("exportType=SAMPLE&runType=NORMAL&{FROM}&{TO}&format="),
            "INVALID_PARAMETER",
            "format: must not be empty".into(),
        ),
        (
            format!("exportType=SAMPLE&{FROM}&{TO}"),
            "MISSING_PARAMETER",
            "runType: required".into(),
        ),
        (
            "exportType=SAMPLE&runType=NORMAL&".to_owned() + TO,
            "MISSING_PARAMETER",
            "queryFromTime: required".into(),
        ),
        (
            "exportType=SAMPLE&runType=NORMAL&".to_owned() + FROM,
            "MISSING_PARAMETER",
            "queryToTime: required".into(),
        ),
        (
            format!("exportType=FOO&runType=NORMAL&{FROM}&{TO}"),
            "INVALID_PARAMETER",
            "exportType: \"FOO\" is not one of SAMPLE, ERROR".into(),
        ),
        (
            format!("exportType=SAMPLE&runType=FAST&{FROM}&{TO}"),
            "INVALID_PARAMETER",
            "runType: \"FAST\" is not one of NORMAL, DEBUG".into(),
        ),
        (
            format!("{CREATE_QUERY}&runStatuses=COMPLETED,DONE"),
            "INVALID_PARAMETER",
            format!("runStatuses: \"DONE\" is not one of {statuses}"),
        ),
        (
            format!("{CREATE_QUERY}&format=json"),
            "INVALID_PARAMETER",
            "format: \"json\" is not one of csv, jsonl, parquet".into(),
        ),
        (
            format!("exportType=SAMPLE&runType=NORMAL&queryFromTime=yesterday&{TO}"),
            "INVALID_PARAMETER",
            "queryFromTime: \"yesterday\" is not an ISO-8601 time with zone".into(),
        ),
        (
            format!("exportType=SAMPLE&runType=NORMAL&{FROM}&queryToTime=2025-07-02T00:00:00"),
            "INVALID_PARAMETER",
            "queryToTime: \"2025-07-02T00:00:00\" has no time zone (add Z or an offset such as +00:00)".into(),
        ),
        (
            format!("exportType=SAMPLE&runType=NORMAL&{FROM}&queryToTime=2025-07-01T00:00:00Z"),
            "INVALID_PARAMETER",
            "queryFromTime: must be before queryToTime".into(),
        ),
        (
            format!(
                "exportType=SAMPLE&runType=NORMAL&{FROM}&queryToTime=2025-07-01T01:00:00%2B02:00"
            ),
            "INVALID_PARAMETER",
            "queryFromTime: must be before queryToTime".into(),
        ),
        (
            format!("{CREATE_QUERY}&exportType=ERROR"),
            "INVALID_PARAMETER",
            "exportType: given more than once".into(),
        ),
        (
            format!("{CREATE_QUERY}&foo=1"),
            "UNKNOWN_FIELD",
            "unknown query parameter: foo".into(),
        ),
    ];
    for (query, code, message) in cases {
        let response = api
            .call(
                Method::POST,
                &format!("/meters/1/auditTrail/export?{query}"),
            )
            .await;
        response.assert_error(StatusCode::BAD_REQUEST, code, &message);
    }
    // Every problem of a request is listed, each with its own code.
    let response = api
        .call(
            Method::POST,
            &format!(
                "/meters/1/auditTrail/export?{CREATE_QUERY}&foo=1&bar[]=2&format=xml&runType=FAST"
            ),
        )
        .await;
    response.assert_errors(
        StatusCode::BAD_REQUEST,
        &[
            ("UNKNOWN_FIELD", "unknown query parameter: foo"),
            ("UNKNOWN_FIELD", "unknown query parameter: bar"),
            ("INVALID_PARAMETER", "runType: given more than once"),
            (
                "INVALID_PARAMETER",
                "format: \"xml\" is not one of csv, jsonl, parquet",
            ),
        ],
    );
    let list = api
        .call(Method::GET, "/meters/1/auditTrail/export")
        .await
        .data();
    assert_eq!(
        list["jobs"],
        json!([]),
        "no job was created by a bad request"
    );
}

#[tokio::test]
async fn meter_ids_must_be_positive_integers() {
    let api = TestApi::start().await;
    for (meter, message) in [
        ("abc", "meterId: \"abc\" is not an integer"),
        ("1.5", "meterId: \"1.5\" is not an integer"),
        (
            "99999999999999999999",
            "meterId: \"99999999999999999999\" is not an integer",
        ),
        ("0", "meterId: must be positive"),
        ("-4", "meterId: must be positive"),
    ] {
        for (method, uri) in [
            (
                Method::POST,
                format!("/meters/{meter}/auditTrail/export?{CREATE_QUERY}"),
            ),
            (Method::GET, format!("/meters/{meter}/auditTrail/export")),
            (
                Method::GET,
                format!("/meters/{meter}/auditTrail/export/some-id"),
            ),
        ] {
            api.call(method, &uri).await.assert_error(
                StatusCode::BAD_REQUEST,
                "INVALID_PARAMETER",
                message,
            );
        }
    }
}

#[tokio::test]
async fn list_parameters_are_validated() {
    let api = TestApi::start().await;
    for (query, message) in [
        ("page=0", "page: must be between 1 and 4294967295"),
        ("page=-1", "page: must be between 1 and 4294967295"),
        ("page=two", "page: \"two\" is not an integer"),
        ("pageSize=0", "pageSize: must be between 1 and 100"),
        ("pageSize=101", "pageSize: must be between 1 and 100"),
        ("pageSize=x", "pageSize: \"x\" is not an integer"),
        (
            "exportType=BOTH",
            "exportType: \"BOTH\" is not one of SAMPLE, ERROR",
        ),
    ] {
        api.call(Method::GET, &format!("/meters/1/auditTrail/export?{query}"))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "INVALID_PARAMETER", message);
    }
    api.call(Method::GET, "/meters/1/auditTrail/export?runType=NORMAL")
        .await
        .assert_error(
            StatusCode::BAD_REQUEST,
            "UNKNOWN_FIELD",
            "unknown query parameter: runType",
        );
    for query in [
        "exportType=%FF",
        "%C3%28=SAMPLE",
        "sessionIds=ok&operatorIds=a%E9b",
    ] {
        let response = api
            .call(Method::GET, &format!("/meters/1/auditTrail/export?{query}"))
            .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(
            response.text().contains("is not valid UTF-8"),
            "{query}: {}",
            response.text()
        );
    }
    let uri = "/meters/1/auditTrail/export/some-id?verbose=true";
    api.call(Method::GET, uri).await.assert_error(
        StatusCode::BAD_REQUEST,
        "UNKNOWN_FIELD",
        "unknown query parameter: verbose",
    );
}

#[tokio::test]
async fn bearer_tokens_are_required_and_checked() {
    let api = TestApi::start().await;
    let uri = "/meters/1/auditTrail/export";
    let with_auth = |value: Option<String>| {
        let mut request = Request::builder().uri(uri);
        if let Some(value) = value {
            request = request.header(header::AUTHORIZATION, value);
        }
        request.body(Body::empty()).unwrap()
    };
    let response = api.send(with_auth(None)).await;
    response.assert_error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "missing bearer token",
    );
    assert_eq!(response.headers[header::WWW_AUTHENTICATE], "Bearer");

    api.send(with_auth(Some("Basic YTpi".into())))
        .await
        .assert_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "Authorization: expected \"Bearer <token>\"",
        );
    let expired = token_for("acme", &[], &[], chrono::Utc::now().timestamp() - 3600);
    api.send(with_auth(Some(format!("Bearer {expired}"))))
        .await
        .assert_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "bearer token expired",
        );
    let claims =
        json!({ "sub": "x", "tenant": "acme", "entities": [], "orgs": [], "exp": in_an_hour() });
    let foreign = jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(b"other"),
    )
    .unwrap();
    let bad_tenant = json!({ "sub": "x", "tenant": "../etc", "exp": in_an_hour() });
    let bad_tenant = jsonwebtoken::encode(
        &Header::default(),
        &bad_tenant,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    for (token, message) in [
        ("not.a.jwt".to_owned(), "invalid bearer token: malformed"),
        (foreign, "invalid bearer token: bad signature"),
        (
            bad_tenant,
            "tenant: must be 1 to 64 characters of A-Z a-z 0-9 . _ -",
        ),
    ] {
        let response = api.send(with_auth(Some(format!("Bearer {token}")))).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED);
        let body = response.json();
        assert_eq!(body["reasons"][0]["code"], 50000011);
        let got = body["reasons"][0]["message"].as_str().unwrap();
        assert!(got.starts_with(message), "{got}");
    }
    assert_eq!(api.call(Method::GET, uri).await.status, StatusCode::OK);
    let lowercase = format!("bearer {}", token_for("acme", &[], &[], in_an_hour()));
    assert_eq!(
        api.send(with_auth(Some(lowercase))).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_server_without_token_keys_says_so() {
    let api = TestApi::with_config(|config| config.jwt_secret = None).await;
    api.call(Method::GET, "/meters/1/auditTrail/export")
        .await
        .assert_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "server has no token keys configured (jwt_secret, auth.jwks_file or auth.jwks_url)",
        );
}

#[tokio::test]
async fn entity_and_org_headers_must_stay_within_the_token() {
    let api = TestApi::start().await;
    let token = token_for("acme", &["e1", "e2"], &["o1"], in_an_hour());
    let request = |name: &str, value: &str| {
        Request::builder()
            .uri("/meters/1/auditTrail/export")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(name, value)
            .body(Body::empty())
            .unwrap()
    };
    api.send(request("Zuora-Entity-Ids", "e1,e9"))
        .await
        .assert_error(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "Zuora-Entity-Ids: \"e9\" is not allowed for this token",
        );
    api.send(request("Zuora-Org-Ids", "o2")).await.assert_error(
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
        "Zuora-Org-Ids: \"o2\" is not allowed for this token",
    );
    assert_eq!(
        api.send(request("Zuora-Entity-Ids", "e2, e1")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        api.send(request("Zuora-Org-Ids", "o1")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn track_ids_are_checked_and_echoed() {
    let api = TestApi::start().await;
    let with_track_id = |uri: &str, value: &str| {
        authed(Method::GET, uri)
            .header("Zuora-Track-Id", value)
            .body(Body::empty())
            .unwrap()
    };
    let ok = api
        .send(with_track_id(
            "/meters/1/auditTrail/export",
            "batch-7/run 3",
        ))
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.headers["zuora-track-id"], "batch-7/run 3");
    let failed = api
        .send(with_track_id("/meters/x/auditTrail/export", "batch-8"))
        .await;
    assert_eq!(failed.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        failed.headers["zuora-track-id"], "batch-8",
        "echoed on errors too"
    );

    for (value, message) in [
        (
            "x".repeat(65),
            "Zuora-Track-Id: must be at most 64 characters",
        ),
        (
            "a:b".into(),
            "Zuora-Track-Id: must be printable US-ASCII without : ; \" or '",
        ),
        (
            "a;b".into(),
            "Zuora-Track-Id: must be printable US-ASCII without : ; \" or '",
        ),
        (
            "a\"b".into(),
            "Zuora-Track-Id: must be printable US-ASCII without : ; \" or '",
        ),
        (
            "it's".into(),
            "Zuora-Track-Id: must be printable US-ASCII without : ; \" or '",
        ),
    ] {
        let response = api
            .send(with_track_id("/meters/1/auditTrail/export", &value))
            .await;
        response.assert_error(StatusCode::BAD_REQUEST, "INVALID_PARAMETER", message);
        assert!(!response.headers.contains_key("zuora-track-id"));
    }
}

#[tokio::test]
async fn routing_failures_come_in_the_envelope() {
    let api = TestApi::start().await;
    api.call(Method::GET, "/nope").await.assert_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "no route for /nope",
    );
    api.call(Method::PUT, "/meters/1/auditTrail/export")
        .await
        .assert_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "PUT is not allowed on /meters/1/auditTrail/export",
        );
    let response = api.call(Method::GET, "/meters/%FF/auditTrail/export").await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.json()["reasons"][0]["code"], 50000020);
    assert!(response.json()["reasons"][0]["message"]
        .as_str()
        .unwrap()
        .starts_with("path: "));
}

#[tokio::test]
async fn large_responses_are_gzipped_for_callers_that_accept_it() {
    let api = TestApi::start().await;
    for _ in 0..5 {
        api.create(3, "").await;
    }
    let list = |encoding: Option<&str>| {
        let mut request = authed(Method::GET, "/meters/3/auditTrail/export");
        if let Some(encoding) = encoding {
            request = request.header(header::ACCEPT_ENCODING, encoding);
        }
        api.send(request.body(Body::empty()).unwrap())
    };
    let plain = list(None).await;
    assert!(
        plain.body.len() > 1000,
        "the list is {} bytes",
        plain.body.len()
    );
    assert!(!plain.headers.contains_key(header::CONTENT_ENCODING));

    let gzipped = list(Some("gzip")).await;
    assert_eq!(gzipped.headers[header::CONTENT_ENCODING], "gzip");
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(&gzipped.body[..])
        .read_to_end(&mut inflated)
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&inflated).unwrap(),
        plain.json()
    );

    let small = api
        .send(
            Request::builder()
                .uri("/healthz")
                .header(header::ACCEPT_ENCODING, "gzip")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert!(!small.headers.contains_key(header::CONTENT_ENCODING));
    assert_eq!(small.text(), "ok");
}

#[tokio::test]
async fn probes_metrics_and_the_openapi_document_need_no_token() {
    let api = TestApi::start().await;
    let get = |uri: &str| api.send(Request::builder().uri(uri).body(Body::empty()).unwrap());
    let health = get("/healthz").await;
    assert_eq!(
        (health.status, health.text()),
        (StatusCode::OK, "ok".to_owned())
    );
    let ready = get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
    let body: serde_json::Value = serde_json::from_str(&ready.text()).unwrap();
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["ready"], true);
    for dependency in ["broker", "stateStore", "s3"] {
        assert_eq!(
            body["data"]["dependencies"][dependency]["up"], true,
            "{body}"
        );
    }

    let counter =
        prometheus::register_int_counter!("api_test_probe_total", "a test counter").unwrap();
    counter.inc();
    let metrics = get("/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert!(
        metrics.text().contains("api_test_probe_total 1"),
        "{}",
        metrics.text()
    );

    let document = get("/openapi.json").await.json();
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        document["openapi"]
    );
    let paths = document["paths"].as_object().unwrap();
    let described: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (path.clone(), m.clone()))
        })
        .collect();
    let routes = [
        ("/meters/{meterId}/auditTrail/export", "post"),
        ("/meters/{meterId}/auditTrail/export", "get"),
        ("/meters/{meterId}/auditTrail/export/{requestId}", "get"),
        ("/meters/{meterId}/auditTrail/export/{requestId}", "delete"),
        ("/meters/auditTrail/presignedUrl", "get"),
        ("/meters/{meterId}/auditTrail/entries", "get"),
        ("/meters/{meterId}/auditTrail/entries", "post"),
        ("/meters/{meterId}/runs", "post"),
        ("/meters/{meterId}/summary", "post"),
        ("/query/jobs", "post"),
        ("/query/jobs", "get"),
        ("/query/jobs/{id}", "get"),
        ("/query/jobs/{id}", "delete"),
        ("/query/saved", "get"),
        ("/query/saved", "post"),
        ("/query/saved/{id}", "patch"),
        ("/query/saved/{id}", "delete"),
        ("/query/schema", "get"),
        ("/fleet/workers", "get"),
        ("/fleet/throughput", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
    ];
    // Table ingest is described as one path per table (each with its own
    // row schema); the router serves them from one template.
    let table_paths: Vec<String> = auditx_lake::tables::TABLES
        .iter()
        .map(|t| format!("/audit/tables/{}/rows", t.name))
        .collect();
    let expected: Vec<(String, String)> = routes
        .iter()
        .map(|(p, m)| (p.to_string(), m.to_string()))
        .chain(table_paths.iter().map(|p| (p.clone(), "post".to_owned())))
        .collect();
    let mut sorted = described.clone();
    sorted.sort();
    let mut expected_sorted = expected;
    expected_sorted.sort();
    assert_eq!(sorted, expected_sorted);
    // Every reference resolves.
    let text = document.to_string();
    for reference in text.split("\"$ref\":\"#/").skip(1) {
        let pointer = format!("/{}", &reference[..reference.find('"').unwrap()]);
        assert!(document.pointer(&pointer).is_some(), "dangling {pointer}");
    }
    for (path, method) in routes {
        let operation = &paths[path][method];
        let open = ["/healthz", "/readyz", "/metrics", "/openapi.json"].contains(&path);
        assert_eq!(operation["security"] == json!([]), open, "{method} {path}");
    }
}

#[tokio::test]
async fn serve_on_answers_on_a_socket_and_stops_on_shutdown() {
    let api = TestApi::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve_on(listener, api.services.clone(), shutdown.clone()));

    let client = reqwest::Client::new();
    let health = client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");
    let token = token_for("acme", &[], &[], in_an_hour());
    let created = client
        .post(format!(
            "http://{addr}/meters/5/auditTrail/export?{CREATE_QUERY}"
        ))
        .bearer_auth(&token)
        .header("Zuora-Track-Id", "socket-1")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    assert_eq!(created.headers()["zuora-track-id"], "socket-1");
    let id = created.json::<Value>().await.unwrap()["data"]["requestId"]
        .as_str()
        .unwrap()
        .to_owned();
    let spec = api
        .services
        .jobs
        .spec(&id.as_str().into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(spec.track_id.as_deref(), Some("socket-1"));

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("stops in time")
        .unwrap()
        .unwrap();
}

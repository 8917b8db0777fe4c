//! `POST /audit/tables/{table}/rows` over HTTP: counts, each rejection a
//! client can get, and idempotent retries.

mod api_support;

use std::io::Write;

use api_support::{authed, TestApi};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};

const LOGINS: &str = "/audit/tables/auditloginevent/rows";
const SETTINGS: &str = "/audit/tables/auditsettingchangeevent/rows";

fn login(id: &str) -> Value {
    json!({
        "id": id,
        "username": "audit-trail@example.com",
        "logintype": "PASSWORD",
        "status": "Success",
        "timestamp": "2019-06-30T04:29:06.571Z",
        "browsertype": "Chrome",
        "browserversion": "77.0",
        "ipaddress": "67.180.238.89",
        "createddate": "2019-06-30T06:29:06.571+02:00",
    })
}

fn with(mut row: Value, extra: Value) -> Value {
    row.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    row
}

fn ndjson(rows: &[Value]) -> String {
    rows.iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn post(uri: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    authed(Method::POST, uri)
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .unwrap()
}

/// Keys of the lake under `prefix`.
async fn lake_keys(api: &TestApi, prefix: &str) -> Vec<String> {
    let bucket = &api.services.config.s3.lake_bucket;
    api.services
        .store
        .list(bucket, prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect()
}

#[tokio::test]
async fn batches_are_counted_and_retries_keep_one_row_per_id() {
    let api = TestApi::start().await;
    let batch = ndjson(&[login("l1"), login("l2"), login("l1")]);
    let send = || {
        let request = authed(Method::POST, LOGINS)
            .header(header::CONTENT_TYPE, "application/x-ndjson")
            .header(header::CONTENT_ENCODING, "gzip")
            .body(Body::from(gzip(batch.as_bytes())))
            .unwrap();
        api.send(request)
    };
    assert_eq!(
        send().await.data(),
        json!({ "received": 3, "accepted": 2, "duplicates": 1 })
    );
    let prefix = "auditloginevent/tenant=acme/";
    let keys = lake_keys(&api, prefix).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].ends_with(".parquet"), "{keys:?}");

    // A retry is answered with duplicates and writes nothing.
    assert_eq!(
        send().await.data(),
        json!({ "received": 3, "accepted": 0, "duplicates": 3 })
    );
    assert_eq!(lake_keys(&api, prefix).await, keys);

    let array = json!([login("l3"), login("l2")]).to_string();
    let response = api
        .send(post(LOGINS, "application/json; charset=utf-8", array))
        .await;
    assert_eq!(
        response.data(),
        json!({ "received": 2, "accepted": 1, "duplicates": 1 })
    );
    assert_eq!(lake_keys(&api, prefix).await.len(), 2);
}

#[tokio::test]
async fn a_bad_row_rejects_the_batch_naming_row_and_column() {
    let api = TestApi::start().await;
    let setting = |extra: Value| {
        with(
            json!({ "id": "s1", "action": "UPDATED", "settingtype": "Role",
                    "timestamp": "2019-11-18T07:00:10.286Z", "sequencenumber": 1 }),
            extra,
        )
    };
    let cases = [
        (
            LOGINS,
            with(login("l2"), json!({ "browser": "Chrome" })),
            "row 1: browser: unknown column of auditloginevent; expected one of id, eventid, \
             username, userid, logintype, status, timestamp, browsertype, browserversion, \
             ipaddress, hostname, createddate, createdbyid, tokenid, sequencenumber, year, month, \
             day, deleted",
        ),
        (
            LOGINS,
            with(login("l2"), json!({ "browserversion": 77.0 })),
            "row 1: browserversion: expected a string, found 77.0",
        ),
        (
            SETTINGS,
            setting(json!({ "id": "s2", "sequencenumber": 1.5 })),
            "row 1: sequencenumber: expected an integer, found 1.5",
        ),
        (
            SETTINGS,
            setting(json!({ "id": "s2", "sequencenumber": "2" })),
            "row 1: sequencenumber: expected an integer, found \"2\"",
        ),
        (
            LOGINS,
            with(login("l2"), json!({ "timestamp": "2019-06-30 04:29:06" })),
            "row 1: timestamp: \"2019-06-30 04:29:06\" has no zone; add Z or an offset such as \
             +02:00",
        ),
        (
            LOGINS,
            with(login("l2"), json!({ "createddate": "30/06/2019" })),
            "row 1: createddate: \"30/06/2019\" is not an ISO-8601 time with zone",
        ),
        (
            LOGINS,
            with(login("l2"), json!({ "id": null })),
            "row 1: id: is required",
        ),
    ];
    for (uri, bad, message) in cases {
        let first = if uri == LOGINS {
            login("l1")
        } else {
            setting(json!({}))
        };
        let response = api
            .send(post(uri, "application/x-ndjson", ndjson(&[first, bad])))
            .await;
        let kind = if message.ends_with("is required") {
            "MISSING_FIELD"
        } else {
            "INVALID_PARAMETER"
        };
        response.assert_error(StatusCode::BAD_REQUEST, kind, message);
    }
    let response = api
        .send(post(LOGINS, "application/json", "[{\"id\": \"l1\"},"))
        .await;
    assert_eq!(
        response.status,
        StatusCode::BAD_REQUEST,
        "{}",
        response.text()
    );
    let message = response.json()["reasons"][0]["message"].clone();
    assert!(
        message
            .as_str()
            .unwrap()
            .starts_with("body is not a valid JSON array"),
        "{message}"
    );

    // Nothing of the rejected batches was written: their good rows are new.
    assert!(lake_keys(&api, "").await.is_empty());
    let response = api
        .send(post(LOGINS, "application/x-ndjson", ndjson(&[login("l1")])))
        .await;
    assert_eq!(response.data()["accepted"], 1);
}

#[tokio::test]
async fn unknown_tables_are_not_found() {
    let api = TestApi::start().await;
    for name in ["meter_audit_trail", "AuditLoginEvent"] {
        let uri = format!("/audit/tables/{name}/rows");
        let response = api
            .send(post(
                &uri,
                "application/json",
                json!([login("l1")]).to_string(),
            ))
            .await;
        response.assert_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!(
                "table: no table named {name:?}; known tables: auditloginevent, \
                 auditsettingchangeevent, auditobjectchangeevent, contact, product, \
                 productrateplan, productrateplancharge, productrateplanchargetier"
            ),
        );
    }
}

#[tokio::test]
async fn content_type_and_token_are_checked() {
    let api = TestApi::start().await;
    let body = || json!([login("l1")]).to_string();
    api.send(post(LOGINS, "text/csv", body()))
        .await
        .assert_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "Content-Type: \"text/csv\" is not one of application/json, application/x-ndjson",
        );
    let anonymous = Request::builder()
        .method(Method::POST)
        .uri(LOGINS)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body()))
        .unwrap();
    api.send(anonymous).await.assert_error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "missing bearer token",
    );
    let with_query = format!("{LOGINS}?table=contact");
    api.send(post(&with_query, "application/json", body()))
        .await
        .assert_error(
            StatusCode::BAD_REQUEST,
            "UNKNOWN_FIELD",
            "unknown query parameter: table",
        );
    assert!(lake_keys(&api, "").await.is_empty());
}

#[tokio::test]
async fn the_openapi_document_describes_the_route() {
    let api = TestApi::start().await;
    let document = api.call(Method::GET, "/openapi.json").await.json();
    // Follows `$ref`s to the schema they name.
    let resolve = |value: &serde_json::Value| -> serde_json::Value {
        let mut value = value.clone();
        while let Some(reference) = value["$ref"].as_str() {
            value = document
                .pointer(reference.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling {reference}"))
                .clone();
        }
        value
    };
    // One path per table, each body naming that table's own row schema.
    assert!(document["paths"]["/audit/tables/{table}/rows"].is_null());
    let operation = &document["paths"]["/audit/tables/auditsettingchangeevent/rows"]["post"];
    assert_eq!(
        operation["operationId"],
        "ingest_auditsettingchangeevent_rows"
    );
    assert!(
        operation["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["name"] != "table"),
        "{operation}"
    );
    let batch = resolve(&operation["requestBody"]["content"]["application/json"]["schema"]);
    let setting = resolve(&batch["items"]);
    assert_eq!(setting["title"], "auditsettingchangeevent");
    assert_eq!(setting["additionalProperties"], false);
    assert_eq!(
        setting["properties"]["sequencenumber"]["type"],
        serde_json::json!(["integer", "null"])
    );
    assert!(setting["properties"]["browsertype"].is_null());
    let login = resolve(
        &document["paths"]["/audit/tables/auditloginevent/rows"]["post"]["requestBody"]["content"]
            ["application/json"]["schema"]["items"],
    );
    assert_eq!(login["title"], "auditloginevent");
    assert!(login["properties"]["browsertype"].is_object());
    for status in ["200", "400", "415"] {
        assert!(
            operation["responses"][status].is_object(),
            "{status}: {operation}"
        );
    }
}

//! Data Query as Zuora's reference publishes it (`api/post_dataqueryjob.md`,
//! `get_dataqueryjob.md`, `get_dataqueryjobs.md`, `delete_dataqueryjob.md`
//! and the encryption doc): the reference's sample body is accepted and
//! answered with the sample's fields and types; DSV, ZIP and encrypted
//! results read back with independent readers (Python's `zipfile`, the
//! private key); a body not declared JSON is a 415 with the reference's
//! body; errors are `{code, message}`.

use std::io::Read;
use std::time::Duration;

use auditx_common::config::QueryConfig;
use auditx_tests::{Adapters, Sandbox, SandboxOptions};
use base64::Engine;
use rsa::pkcs8::EncodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Encrypt, RsaPrivateKey};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(120);
const TENANT: &str = "zuora";
const SQL: &str = "SELECT username, status, sequencenumber AS seq FROM auditloginevent ORDER BY id";

async fn sandbox() -> Sandbox {
    let sandbox = Sandbox::start(SandboxOptions {
        adapters: Adapters::InProcess,
        workers: 1,
        query: QueryConfig::default(),
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let rows = [
        json!({"id": "l1", "username": "amy", "status": "Success", "sequencenumber": 1,
               "timestamp": "2025-07-01T00:00:00Z", "createddate": "2025-07-01T00:00:00Z"}),
        json!({"id": "l2", "username": "bo|b, \"jr\"", "status": "Failed", "sequencenumber": 2,
               "timestamp": "2025-07-02T00:00:00Z", "createddate": "2025-07-02T00:00:00Z"}),
        json!({"id": "l3", "username": "cy", "sequencenumber": 3,
               "timestamp": "2025-07-03T00:00:00Z", "createddate": "2025-07-03T00:00:00Z"}),
    ];
    let response = reqwest::Client::new()
        .post(format!("{}/audit/tables/auditloginevent/rows", sandbox.api))
        .bearer_auth(sandbox.token(TENANT))
        .json(&rows)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    sandbox
}

const CSV: &str = "username,status,seq\namy,Success,1\n\"bo|b, \"\"jr\"\"\",Failed,2\ncy,,3\n";

/// Sends `body` to `method path`; returns the status and the JSON answer.
async fn call(
    sandbox: &Sandbox,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", sandbox.api))
        .bearer_auth(sandbox.token(TENANT));
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Submits `body`, waits for the query to end and returns the job.
async fn run(sandbox: &Sandbox, body: Value) -> Value {
    let (status, answer) = call(sandbox, reqwest::Method::POST, "/query/jobs", Some(&body)).await;
    assert_eq!(status, 200, "{body}: {answer}");
    let id = answer["data"]["id"].as_str().unwrap().to_owned();
    sandbox.client(TENANT).wait_query(&id, WAIT).await.unwrap()
}

async fn result_of(sandbox: &Sandbox, body: Value) -> (Value, Vec<u8>) {
    let job = run(sandbox, body).await;
    assert_eq!(job["queryStatus"], "completed", "{job}");
    let bytes = sandbox
        .download(job["dataFile"].as_str().unwrap())
        .await
        .unwrap();
    (job, bytes)
}

/// Every field of `sample` is in `got`, with the same JSON type.
fn assert_same_fields(sample: &Value, got: &Value) {
    for (name, value) in sample.as_object().unwrap() {
        let kind = |v: &Value| match v {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        assert_eq!(
            kind(&got[name]),
            kind(value),
            "{name}: {} in {got}",
            got[name]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reference_samples_are_answered_with_the_reference_fields() {
    let sandbox = sandbox().await;
    // The request sample of post_dataqueryjob.md, on our table.
    let body = json!({
        "query": "SELECT username FROM auditloginevent WHERE sequencenumber > 1",
        "compression": "NONE",
        "output": {"target": "S3"},
        "outputFormat": "CSV"
    });
    let (status, submitted) =
        call(&sandbox, reqwest::Method::POST, "/query/jobs", Some(&body)).await;
    assert_eq!(status, 200, "{submitted}");
    let sample = json!({
        "id": "5948abde-b875-4d06-ad07-c2138853d8bc",
        "query": "SELECT accountnumber, balance FROM Account WHERE Account.balance > 100",
        "useIndexJoin": false, "sourceData": "LIVE", "queryStatus": "accepted",
        "remainingRetries": 3, "retries": 3,
        "updatedOn": "2024-07-09T09:47:49.675Z", "createdOn": "2024-07-09T09:47:49.675Z",
        "createdBy": "514f3ea1-6716-4f44-b6e0-9a8f0cf44bd2",
        "createdByUserEmail": "amy@mycompany.com"
    });
    let job = &submitted["data"];
    assert_same_fields(&sample, job);
    assert_eq!(job["sourceData"], "LIVE");
    assert_eq!(job["useIndexJoin"], false);
    assert_eq!(job["queryStatus"], "accepted");
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");

    // The get sample of get_dataqueryjob.md, once completed.
    let done = sandbox.client(TENANT).wait_query(&id, WAIT).await.unwrap();
    let (status, got) = call(
        &sandbox,
        reqwest::Method::GET,
        &format!("/query/jobs/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["data"]["queryStatus"], "completed", "{done}");
    let sample = json!({
        "createdBy": "514f3ea1-6716-4f44-b6e0-9a8f0cf44bd2",
        "dataFile": "https://example.s3.us-west-2.amazonaws.com/x.json",
        "id": "3a3e85c4-96e7-486b-ae02-827120104301",
        "outputRows": 24516, "processingTime": 9212,
        "query": "SELECT accountnumber, balance FROM Account WHERE Account.balance > 100",
        "queryStatus": "completed", "remainingRetries": 3, "sourceData": "LIVE",
        "updatedOn": "2018-08-17T13:14:19.17Z", "useIndexJoin": false
    });
    assert_same_fields(&sample, &got["data"]);
    assert_eq!(got["data"]["outputRows"], 2);
    let csv = sandbox
        .download(got["data"]["dataFile"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(csv).unwrap(),
        "username\n\"bo|b, \"\"jr\"\"\"\ncy\n"
    );

    // The list sample of get_dataqueryjobs.md, with its query parameters.
    let (status, listed) = call(
        &sandbox,
        reqwest::Method::GET,
        "/query/jobs?queryStatus=completed&pageSize=20",
        None,
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    let jobs = listed["data"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{listed}");
    assert_same_fields(&sample, &jobs[0]);
    let (status, none) = call(
        &sandbox,
        reqwest::Method::GET,
        "/query/jobs?queryStatus=accepted&pageSize=1000",
        None,
    )
    .await;
    assert_eq!((status, none["data"].clone()), (200, json!([])));
    let (status, refused) = call(
        &sandbox,
        reqwest::Method::GET,
        "/query/jobs?pageSize=1001",
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        refused,
        json!({"code": 400, "message": "pageSize: must be between 1 and 1000"})
    );

    // Every other field of the body is accepted, and shown back.
    let body = json!({
        "query": SQL, "outputFormat": "CSV", "compression": "NONE",
        "output": {"target": "S3"}, "readDeleted": false, "sourceData": "WAREHOUSE",
        "useIndexJoin": true, "warehouseSize": "xsmall"
    });
    let job = run(&sandbox, body).await;
    assert_eq!(job["queryStatus"], "completed", "{job}");
    assert_eq!(job["sourceData"], "WAREHOUSE");
    assert_eq!(job["useIndexJoin"], true);
    assert_eq!(job["warehouseSize"], "xsmall");
    assert_eq!(job["readDeleted"], false);
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn errors_are_code_and_message_and_a_non_json_body_is_a_415() {
    let sandbox = sandbox().await;
    let http = reqwest::Client::new();
    let url = format!("{}/query/jobs", sandbox.api);
    let body = json!({"query": SQL, "outputFormat": "CSV", "compression": "NONE"}).to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = http
            .post(&url)
            .bearer_auth(sandbox.token(TENANT))
            .body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 415, "{content_type:?}");
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({"code": 415, "message": "HTTP 415 Unsupported Media Type"}),
            "{content_type:?}"
        );
    }
    // JSON with a charset is JSON.
    let response = http
        .post(&url)
        .bearer_auth(sandbox.token(TENANT))
        .header("content-type", "application/json; charset=utf-8")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let missing = "00000000-0000-0000-0000-000000000000";
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let (status, answer) = call(
            &sandbox,
            method.clone(),
            &format!("/query/jobs/{missing}"),
            None,
        )
        .await;
        assert_eq!(status, 404, "{method}");
        assert_eq!(
            answer,
            json!({"code": 404, "message": format!("query job \"{missing}\" not found")}),
            "{method}"
        );
    }
    // No token: a 401 in the same shape.
    let response = http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"code": 401, "message": "missing bearer token"})
    );

    let post = |body: Value| {
        let sandbox = &sandbox;
        async move { call(sandbox, reqwest::Method::POST, "/query/jobs", Some(&body)).await }
    };
    for (body, message) in [
        (
            json!({"query": SQL, "output": {"target": "SFTP"}}),
            "output.target: \"SFTP\" is not supported; results are written to S3 (\"S3\")",
        ),
        (
            json!({"query": SQL, "output": {}}),
            "output.target: required (S3)",
        ),
        (
            json!({"query": SQL, "outputFormat": "DSV"}),
            "columnSeparator: required when outputFormat is DSV",
        ),
        (
            json!({"query": SQL, "outputFormat": "DSV", "columnSeparator": "||"}),
            "columnSeparator: must be one character, not \"||\"",
        ),
        (
            json!({"query": SQL, "outputFormat": "DSV", "columnSeparator": "\""}),
            "columnSeparator: \"\\\"\" cannot separate columns (a quote, CR or LF)",
        ),
        (
            json!({"query": SQL, "readDeleted": "no"}),
            "readDeleted: must be true or false",
        ),
        (
            json!({"query": SQL, "sourceData": "LAKE"}),
            "sourceData: \"LAKE\" is not one of LIVE, WAREHOUSE",
        ),
        (
            json!({"query": SQL, "encryptionKey": "c2VjcmV0"}),
            "encryptionKey: not an RSA public key (base64 of its DER: SubjectPublicKeyInfo or PKCS#1)",
        ),
        (
            json!({"query": SQL, "compression": "RAR"}),
            "compression: \"RAR\" is not one of NONE, GZIP, ZIP",
        ),
    ] {
        let (status, answer) = post(body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer, json!({"code": 400, "message": message}), "{body}");
    }
    sandbox.stop().await.unwrap();
}

/// Reads a ZIP archive with Python's `zipfile` (CRCs checked): its entries'
/// names and texts.
fn unzip_with_python(zip: &[u8]) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.zip");
    std::fs::write(&path, zip).unwrap();
    let script = "import json, sys, zipfile\n\
        z = zipfile.ZipFile(sys.argv[1])\n\
        assert z.testzip() is None, 'bad CRC'\n\
        print(json.dumps([[i.filename, z.read(i).decode()] for i in z.infolist()]))\n";
    let output = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output()
        .expect("python3");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dsv_zip_and_encrypted_results_read_back() {
    let sandbox = sandbox().await;
    // DSV with a separator found in a value: that value is quoted.
    let (job, dsv) = result_of(
        &sandbox,
        json!({"query": SQL, "outputFormat": "DSV", "columnSeparator": "|", "compression": "NONE",
               "output": {"target": "S3"}}),
    )
    .await;
    assert_eq!(job["outputFormat"], "DSV");
    assert_eq!(job["columnSeparator"], "|");
    assert_eq!(
        String::from_utf8(dsv).unwrap(),
        "username|status|seq\namy|Success|1\n\"bo|b, \"\"jr\"\"\"|Failed|2\ncy||3\n"
    );
    let (_, dsv) = result_of(
        &sandbox,
        json!({"query": SQL, "outputFormat": "dsv", "columnSeparator": ";", "compression": "GZIP"}),
    )
    .await;
    assert_eq!(
        gunzip(&dsv),
        // A value holding a quote is quoted whatever the separator.
        "username;status;seq\namy;Success;1\n\"bo|b, \"\"jr\"\"\";Failed;2\ncy;;3\n"
    );

    // ZIP: one entry, the CSV.
    let (job, zip) = result_of(
        &sandbox,
        json!({"query": SQL, "outputFormat": "CSV", "compression": "ZIP"}),
    )
    .await;
    assert_eq!(job["compression"], "ZIP");
    assert!(
        job["dataFile"].as_str().unwrap().contains(".csv.zip"),
        "{job}"
    );
    let entries = unzip_with_python(&zip);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(
        entries[0].0.starts_with("result-") && entries[0].0.ends_with(".csv"),
        "{entries:?}"
    );
    assert_eq!(entries[0].1, CSV);
    let (_, zip) = result_of(
        &sandbox,
        json!({"query": SQL, "outputFormat": "JSON", "compression": "ZIP"}),
    )
    .await;
    let entries = unzip_with_python(&zip);
    assert!(entries[0].0.ends_with(".jsonl"), "{entries:?}");
    assert_eq!(entries[0].1.lines().count(), 3, "{entries:?}");

    // Encrypted with a 1024-bit key, as the encryption doc's sample (which
    // asks for GZIP too); then with ZIP, and with no compression.
    let private = RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
    let public = private.to_public_key().to_public_key_der().unwrap();
    let key = base64::engine::general_purpose::STANDARD.encode(public.as_bytes());
    let decrypt = |sealed: &[u8]| -> Vec<u8> {
        let k = private.size();
        assert_eq!(sealed.len() % k, 0, "whole {k}-byte blocks");
        sealed
            .chunks(k)
            .flat_map(|block| private.decrypt(Pkcs1v15Encrypt, block).unwrap())
            .collect()
    };
    let (job, sealed) = result_of(
        &sandbox,
        json!({"query": SQL, "outputFormat": "CSV", "compression": "GZIP",
               "encryptionKey": key, "output": {"target": "S3"}}),
    )
    .await;
    assert_eq!(job["encrypted"], true);
    assert_ne!(&sealed[..2], &[0x1f, 0x8b], "not a plain gzip stream");
    assert_eq!(gunzip(&decrypt(&sealed)), CSV);
    let (_, sealed) = result_of(
        &sandbox,
        json!({"query": SQL, "outputFormat": "CSV", "compression": "ZIP", "encryptionKey": key}),
    )
    .await;
    assert_eq!(unzip_with_python(&decrypt(&sealed))[0].1, CSV);
    let (_, sealed) = result_of(
        &sandbox,
        json!({"query": SQL, "outputFormat": "CSV", "compression": "NONE", "encryptionKey": key}),
    )
    .await;
    assert!(!String::from_utf8_lossy(&sealed).contains("amy"));
    assert_eq!(String::from_utf8(decrypt(&sealed)).unwrap(), CSV);
    sandbox.stop().await.unwrap();
}

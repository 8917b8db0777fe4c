//! Entity and org scope end to end on Redis + RabbitMQ + S3 over HTTP: rows
//! ingested as different entities and orgs of one tenant; exports and data
//! queries hold only the caller's rows, and jobs of other entities answer
//! 404 on every route, presigned URLs included.

use std::collections::BTreeSet;
use std::time::Duration;

use auditx_tests::sandbox::JWT_SECRET;
use auditx_tests::{Sandbox, SandboxOptions};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const TENANT: &str = "scoped";
const METER: i64 = 5;
const DAY_START_MS: i64 = 1_753_228_800_000; // 2025-07-23T00:00:00Z
const FROM: &str = "2025-07-23T00:00:00Z";
const TO: &str = "2025-07-24T00:00:00Z";
const WAIT: Duration = Duration::from_secs(120);

/// A caller: a token of some entities and orgs, plus optional scope headers.
struct Caller<'a> {
    sandbox: &'a Sandbox,
    token: String,
    headers: Vec<(&'static str, &'static str)>,
    http: reqwest::Client,
}

impl<'a> Caller<'a> {
    fn new(sandbox: &'a Sandbox, entities: &[&str], orgs: &[&str]) -> Self {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let token =
            auditx::commands::tools::mint(JWT_SECRET, TENANT, &owned(entities), &owned(orgs), 1)
                .unwrap();
        Self {
            sandbox,
            token,
            headers: Vec::new(),
            http: reqwest::Client::new(),
        }
    }

    fn with_header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Sends a request; returns the status and the JSON envelope.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.sandbox.api))
            .bearer_auth(&self.token)
            .query(query);
        for (name, value) in &self.headers {
            request = request.header(*name, *value);
        }
        if let Some((content_type, bytes)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        (status, body)
    }

    async fn ok(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Value {
        let (status, body) = self.call(method.clone(), path, query, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {body}");
        body
    }

    /// Ingests meter rows `<prefix>-<n>` (SAMPLE, NORMAL) as this caller.
    async fn ingest_entries(&self, prefix: &str, count: i64) {
        let entries: Vec<Value> = (0..count)
            .map(|n| {
                json!({
                    "eventId": format!("{prefix}-{n}"),
                    "eventTime": DAY_START_MS + n * 60_000,
                    "sessionId": "R-00000001",
                    "runType": "NORMAL",
                    "recordType": "SAMPLE",
                    "operatorId": "op-1",
                    "payload": {"n": n},
                })
            })
            .collect();
        let body = serde_json::to_vec(&entries).unwrap();
        let path = format!("/meters/{METER}/auditTrail/entries");
        let data = self
            .ok(Method::POST, &path, &[], Some(("application/json", body)))
            .await;
        assert_eq!(data["data"]["accepted"], count, "{data}");
    }

    /// Ingests contact rows of these ids as this caller.
    async fn ingest_contacts(&self, ids: &[&str]) {
        let rows: Vec<u8> = ids
            .iter()
            .map(|id| format!("{}\n", json!({"id": id, "firstname": "F"})))
            .collect::<String>()
            .into_bytes();
        self.ok(
            Method::POST,
            "/audit/tables/contact/rows",
            &[],
            Some(("application/x-ndjson", rows)),
        )
        .await;
    }

    async fn create_export(&self) -> String {
        let query = [
            ("exportType", "SAMPLE"),
            ("runType", "NORMAL"),
            ("queryFromTime", FROM),
            ("queryToTime", TO),
        ];
        let body = self.ok(Method::POST, &export_path(), &query, None).await;
        body["data"]["requestId"].as_str().unwrap().to_owned()
    }

    async fn wait_export(&self, id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let job = self
                .ok(Method::GET, &format!("{}/{id}", export_path()), &[], None)
                .await["data"]
                .clone();
            if matches!(
                job["status"].as_str(),
                Some("FINISHED" | "FAILED" | "CANCELED")
            ) {
                assert_eq!(job["status"], "FINISHED", "{job}");
                return job;
            }
            assert!(tokio::time::Instant::now() < deadline, "{job}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The eventIds of every file of a finished export, downloaded through
    /// presigned URLs this caller asks for.
    async fn exported_ids(&self, job: &Value) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        for key in job["fileList"].as_array().unwrap() {
            let url = self.presigned_url(key.as_str().unwrap()).await;
            let bytes = self.sandbox.download(&url).await.unwrap();
            let text = String::from_utf8(bytes).unwrap();
            let mut lines = text.lines();
            assert!(lines.next().unwrap().starts_with("eventId,"), "{text}");
            ids.extend(lines.map(|l| l.split(',').next().unwrap().to_owned()));
        }
        ids
    }

    async fn presigned_url(&self, key: &str) -> String {
        let body = self
            .ok(
                Method::GET,
                "/meters/auditTrail/presignedUrl",
                &[("fileKey", key)],
                None,
            )
            .await;
        body["data"].as_str().unwrap().to_owned()
    }

    async fn listed_exports(&self) -> BTreeSet<String> {
        let body = self.ok(Method::GET, &export_path(), &[], None).await;
        body["data"]["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|job| job["requestId"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn run_query(&self, sql: &str) -> Value {
        let body = serde_json::to_vec(&json!({"query": sql})).unwrap();
        let job = self
            .ok(
                Method::POST,
                "/query/jobs",
                &[],
                Some(("application/json", body)),
            )
            .await["data"]
            .clone();
        let id = job["id"].as_str().unwrap().to_owned();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let job = self
                .ok(Method::GET, &format!("/query/jobs/{id}"), &[], None)
                .await["data"]
                .clone();
            if matches!(
                job["queryStatus"].as_str(),
                Some("completed" | "failed" | "cancelled")
            ) {
                assert_eq!(job["queryStatus"], "completed", "{job}");
                return job;
            }
            assert!(tokio::time::Instant::now() < deadline, "{job}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn query_result(&self, sql: &str) -> (String, String) {
        let job = self.run_query(sql).await;
        let url = job["dataFile"].as_str().expect("dataFile");
        let bytes = self.sandbox.download(url).await.unwrap();
        (
            job["id"].as_str().unwrap().to_owned(),
            String::from_utf8(bytes).unwrap(),
        )
    }

    async fn listed_queries(&self) -> BTreeSet<String> {
        let body = self.ok(Method::GET, "/query/jobs", &[], None).await;
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|job| job["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn export_path() -> String {
    format!("/meters/{METER}/auditTrail/export")
}

fn ids(prefixes: &[(&str, i64)]) -> BTreeSet<String> {
    prefixes
        .iter()
        .flat_map(|(prefix, count)| (0..*count).map(move |n| format!("{prefix}-{n}")))
        .collect()
}

fn assert_not_found(what: &str, (status, body): (StatusCode, Value)) {
    assert_eq!(status, StatusCode::NOT_FOUND, "{what}: {body}");
    // The data query routes answer `{code, message}`, the others the envelope.
    assert!(
        body["success"] == false || body["code"] == 404,
        "{what}: {body}"
    );
}

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxOptions {
        chunk_rows: 5,
        ..SandboxOptions::default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exports_hold_only_the_callers_entities_and_orgs_and_other_entities_jobs_are_missing() {
    let sandbox = sandbox().await;
    let wide = Caller::new(&sandbox, &[], &[]);
    Caller::new(&sandbox, &["e1"], &["o1"])
        .ingest_entries("e1o1", 5)
        .await;
    Caller::new(&sandbox, &["e2"], &["o1"])
        .ingest_entries("e2o1", 4)
        .await;
    Caller::new(&sandbox, &["e1"], &["o2"])
        .ingest_entries("e1o2", 3)
        .await;
    wide.ingest_entries("none", 2).await;
    let e1_rows = ids(&[("e1o1", 5), ("e1o2", 3)]);

    // A token for e1 alone.
    let e1 = Caller::new(&sandbox, &["e1"], &[]);
    let e1_export = e1.create_export().await;
    let e1_job = e1.wait_export(&e1_export).await;
    assert_eq!(e1.exported_ids(&e1_job).await, e1_rows);
    assert_eq!(e1_job["count"], 8, "{e1_job}");

    // A token for e1 and e2 narrowed to e1 by the header.
    let e12 = Caller::new(&sandbox, &["e1", "e2"], &[]);
    let narrowed = Caller::new(&sandbox, &["e1", "e2"], &[]).with_header("Zuora-Entity-Ids", "e1");
    let narrowed_export = narrowed.create_export().await;
    let narrowed_job = narrowed.wait_export(&narrowed_export).await;
    assert_eq!(narrowed.exported_ids(&narrowed_job).await, e1_rows);

    // The same token without the header: both entities' rows.
    let e12_export = e12.create_export().await;
    let e12_job = e12.wait_export(&e12_export).await;
    assert_eq!(
        e12.exported_ids(&e12_job).await,
        ids(&[("e1o1", 5), ("e1o2", 3), ("e2o1", 4)])
    );

    // An org-scoped token: every entity's rows of org o1.
    let o1 = Caller::new(&sandbox, &[], &["o1"]);
    let o1_export = o1.create_export().await;
    let o1_job = o1.wait_export(&o1_export).await;
    assert_eq!(
        o1.exported_ids(&o1_job).await,
        ids(&[("e1o1", 5), ("e2o1", 4)])
    );

    // A tenant-wide token: every row, those without entity included.
    let wide_export = wide.create_export().await;
    let wide_job = wide.wait_export(&wide_export).await;
    assert_eq!(
        wide.exported_ids(&wide_job).await,
        ids(&[("e1o1", 5), ("e1o2", 3), ("e2o1", 4), ("none", 2)])
    );

    // Who sees which job: the tenant-wide caller all; e1 its own two; the
    // e1+e2 token those three; e2 none of them.
    let all: BTreeSet<String> = [
        &e1_export,
        &narrowed_export,
        &e12_export,
        &o1_export,
        &wide_export,
    ]
    .into_iter()
    .cloned()
    .collect();
    assert_eq!(wide.listed_exports().await, all);
    assert_eq!(
        e1.listed_exports().await,
        BTreeSet::from([e1_export.clone(), narrowed_export.clone()])
    );
    assert_eq!(
        e12.listed_exports().await,
        BTreeSet::from([
            e1_export.clone(),
            narrowed_export.clone(),
            e12_export.clone(),
        ])
    );
    let e2 = Caller::new(&sandbox, &["e2"], &[]);
    assert!(e2.listed_exports().await.is_empty());

    // e2 cannot read, cancel or download e1's export: 404 as for a job of
    // another tenant.
    let e1_path = format!("{}/{e1_export}", export_path());
    assert_not_found("GET", e2.call(Method::GET, &e1_path, &[], None).await);
    assert_not_found("DELETE", e2.call(Method::DELETE, &e1_path, &[], None).await);
    let e1_file = e1_job["fileList"][0].as_str().unwrap();
    assert_not_found(
        "e2 presign",
        e2.call(
            Method::GET,
            "/meters/auditTrail/presignedUrl",
            &[("fileKey", e1_file)],
            None,
        )
        .await,
    );
    // A scoped caller does not see a tenant-wide job or its files either.
    let wide_path = format!("{}/{wide_export}", export_path());
    assert_not_found(
        "e1 GET wide",
        e1.call(Method::GET, &wide_path, &[], None).await,
    );
    let wide_file = wide_job["fileList"][0].as_str().unwrap();
    assert_not_found(
        "e1 presign wide",
        e1.call(
            Method::GET,
            "/meters/auditTrail/presignedUrl",
            &[("fileKey", wide_file)],
            None,
        )
        .await,
    );
    // The owner still can; a finished job is a conflict to cancel, not missing.
    assert!(!e1.presigned_url(e1_file).await.is_empty());
    let (status, body) = e1.call(Method::DELETE, &e1_path, &[], None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn data_queries_see_only_the_callers_rows_and_other_entities_queries_are_missing() {
    let sandbox = sandbox().await;
    let e1 = Caller::new(&sandbox, &["e1"], &[]);
    let e2 = Caller::new(&sandbox, &["e2"], &[]);
    let wide = Caller::new(&sandbox, &[], &[]);
    e1.ingest_contacts(&["c-e1-a", "c-e1-b"]).await;
    e2.ingest_contacts(&["c-e2-a"]).await;
    wide.ingest_contacts(&["c-none"]).await;
    Caller::new(&sandbox, &["e1"], &["o7"])
        .ingest_contacts(&["c-e1-o7"])
        .await;

    let sql = "SELECT id FROM contact ORDER BY id";
    let (e1_query, e1_result) = e1.query_result(sql).await;
    assert_eq!(e1_result, "id\nc-e1-a\nc-e1-b\nc-e1-o7\n");
    let (_, e2_result) = e2.query_result(sql).await;
    assert_eq!(e2_result, "id\nc-e2-a\n");
    let o7 = Caller::new(&sandbox, &[], &["o7"]);
    let (_, o7_result) = o7.query_result(sql).await;
    assert_eq!(o7_result, "id\nc-e1-o7\n");
    let (wide_query, wide_result) = wide.query_result(sql).await;
    assert_eq!(wide_result, "id\nc-e1-a\nc-e1-b\nc-e1-o7\nc-e2-a\nc-none\n");
    // Aggregates see the same rows, and the scope columns are not there.
    let (_, counted) = e1.query_result("SELECT count(*) AS n FROM contact").await;
    assert_eq!(counted, "n\n3\n");
    let (_, all_columns) = e1
        .query_result("SELECT * FROM contact WHERE id = 'c-e1-a'")
        .await;
    assert_eq!(
        all_columns.lines().next(),
        Some("id,firstname,lastname,workemail,accountid")
    );

    // e2 cannot read, list or cancel e1's query; e1 cannot see the
    // tenant-wide one.
    let e1_path = format!("/query/jobs/{e1_query}");
    assert_not_found("GET", e2.call(Method::GET, &e1_path, &[], None).await);
    assert_not_found("DELETE", e2.call(Method::DELETE, &e1_path, &[], None).await);
    assert!(!e2.listed_queries().await.contains(&e1_query));
    assert!(e1.listed_queries().await.contains(&e1_query));
    assert!(!e1.listed_queries().await.contains(&wide_query));
    assert_not_found(
        "e1 GET wide",
        e1.call(Method::GET, &format!("/query/jobs/{wide_query}"), &[], None)
            .await,
    );
    assert!(wide.listed_queries().await.contains(&e1_query));
    // The owner's cancel of its completed query is a 400 (only accepted and
    // in_progress queries can be cancelled), not a 404.
    let (status, body) = e1.call(Method::DELETE, &e1_path, &[], None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], 400, "{body}");
    sandbox.stop().await.unwrap();
}

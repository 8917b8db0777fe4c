//! Data queries that must not run or must stop: other tenants' data in
//! every way we could think of reaching it, refused statement kinds, the
//! per-tenant running/queued limits (429 with Retry-After), the time and
//! memory limits, and cancelling a running query.

use std::time::Duration;

use auditx::client::ApiClient;
use auditx_common::config::QueryConfig;
use auditx_tests::{Adapters, Sandbox, SandboxOptions};
use futures::StreamExt;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(120);

async fn sandbox(workers: usize, query: QueryConfig) -> Sandbox {
    Sandbox::start(SandboxOptions {
        adapters: Adapters::Real,
        workers,
        query,
        ..SandboxOptions::default()
    })
    .await
    .unwrap()
}

/// Ingests `rows` (JSON objects) into `table` for `tenant`.
async fn ingest(sandbox: &Sandbox, tenant: &str, table: &str, rows: &[Value]) {
    let response = reqwest::Client::new()
        .post(format!("{}/audit/tables/{table}/rows", sandbox.api))
        .bearer_auth(sandbox.token(tenant))
        .json(rows)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
}

fn login(id: &str, user: &str) -> Value {
    json!({"id": id, "username": user, "logintype": "PASSWORD", "status": "Success",
           "timestamp": "2019-06-30T04:29:06.571Z", "createddate": "2019-06-30T04:29:06.571Z"})
}

/// POST /query/jobs with a raw body; returns status, headers and body.
async fn submit_raw(
    sandbox: &Sandbox,
    tenant: &str,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/query/jobs", sandbox.api))
        .bearer_auth(sandbox.token(tenant))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap())
}

/// The message of a data query error, `{code, message}`.
fn message(body: &Value) -> String {
    assert!(body["code"].is_u64(), "{body}");
    body["message"].as_str().unwrap_or_default().to_owned()
}

async fn completed_csv(sandbox: &Sandbox, client: &ApiClient, sql: &str) -> String {
    let job = client.submit_query(sql, "CSV", "NONE").await.unwrap();
    let job = client
        .wait_query(job["id"].as_str().unwrap(), WAIT)
        .await
        .unwrap();
    assert_eq!(job["queryStatus"], "completed", "{sql}: {job}");
    String::from_utf8(
        sandbox
            .download(job["dataFile"].as_str().unwrap())
            .await
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_query_reaches_another_tenants_rows() {
    let sandbox = sandbox(2, QueryConfig::default()).await;
    ingest(
        &sandbox,
        "alpha",
        "auditloginevent",
        &[
            login("a1", "alice@alpha.example"),
            login("a2", "alan@alpha.example"),
        ],
    )
    .await;
    ingest(
        &sandbox,
        "beta",
        "auditloginevent",
        &[login("b1", "bob@beta.example")],
    )
    .await;
    ingest(
        &sandbox,
        "beta",
        "contact",
        &[json!({"id": "c1", "firstname": "Bea", "lastname": "Beta"})],
    )
    .await;
    let beta = sandbox.client("beta");
    let alpha = sandbox.client("alpha");

    // 1. A plain read sees the caller's rows only.
    let all = completed_csv(
        &sandbox,
        &beta,
        "SELECT username FROM auditloginevent ORDER BY username",
    )
    .await;
    assert_eq!(all, "username\nbob@beta.example\n");
    // 2. Aggregates count the caller's rows only.
    assert_eq!(
        completed_csv(&sandbox, &beta, "SELECT count(*) AS n FROM auditloginevent").await,
        "n\n1\n"
    );
    // 3. A self-join, a UNION and a subquery stay inside the tenant.
    let joined = completed_csv(
        &sandbox,
        &beta,
        "SELECT a.username FROM auditloginevent a JOIN auditloginevent b ON a.id <> b.id",
    )
    .await;
    assert_eq!(joined, "username\n");
    let union = completed_csv(&sandbox, &beta,
        "SELECT username AS u FROM auditloginevent UNION ALL SELECT firstname FROM contact ORDER BY u").await;
    assert_eq!(union, "u\nBea\nbob@beta.example\n");
    let sub = completed_csv(
        &sandbox,
        &beta,
        "SELECT count(*) AS n FROM auditloginevent WHERE id IN (SELECT 'a1' UNION SELECT 'a2')",
    )
    .await;
    assert_eq!(sub, "n\n0\n");
    // 4. Tables another tenant has and the caller lacks are empty, not shared.
    assert_eq!(
        completed_csv(&sandbox, &alpha, "SELECT count(*) AS n FROM contact").await,
        "n\n0\n"
    );

    // 5-10. Every way out of the catalog is refused before anything runs.
    for sql in [
        "SELECT * FROM datafusion.public.auditloginevent",
        "SELECT * FROM public.auditloginevent",
        "SELECT * FROM alpha.auditloginevent",
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM read_parquet('s3://auditx-lake/auditloginevent/tenant=alpha/')",
        "SELECT * FROM 's3://auditx-lake/auditloginevent/tenant=alpha/'",
        "SELECT * FROM meter_audit_trail",
        "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION 's3://auditx-lake/auditloginevent/tenant=alpha/'",
    ] {
        let (status, _, body) = submit_raw(&sandbox, "beta", json!({"query": sql})).await;
        assert_eq!(status, 400, "{sql}: {body}");
        assert!(message(&body).starts_with("query: "), "{sql}: {body}");
    }

    // 11. Another tenant's job: not found for get, cancel and listing.
    let job = alpha
        .submit_query("SELECT id FROM auditloginevent", "CSV", "NONE")
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap();
    let done = alpha.wait_query(id, WAIT).await.unwrap();
    let get = beta.query_job(id).await.unwrap_err().to_string();
    assert!(get.starts_with("404"), "{get}");
    let cancel = beta.cancel_query(id).await.unwrap_err().to_string();
    assert!(cancel.starts_with("404"), "{cancel}");
    let listed: Value = reqwest::Client::new()
        .get(format!("{}/query/jobs", sandbox.api))
        .bearer_auth(sandbox.token("beta"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["id"] != id),
        "{listed}"
    );
    // 12. Another tenant's result file cannot be presigned.
    let key = done["dataFile"]
        .as_str()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .split("/auditx-exports/")
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(key.starts_with("alpha/queries/"), "{key}");
    let presign = beta.presigned_url(&key).await.unwrap_err().to_string();
    assert!(
        presign.starts_with("403") || presign.starts_with("404"),
        "{presign}"
    );
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_single_read_only_selects_are_accepted() {
    let sandbox = sandbox(1, QueryConfig::default()).await;
    for (sql, why) in [
        ("CREATE TABLE x (a INT)", "CREATE TABLE"),
        ("DROP TABLE auditloginevent", "DROP"),
        ("INSERT INTO auditloginevent (id) VALUES ('x')", "INSERT"),
        ("UPDATE auditloginevent SET username = 'x'", "UPDATE"),
        ("DELETE FROM auditloginevent", "DELETE"),
        ("COPY auditloginevent TO '/tmp/out.csv'", "COPY"),
        ("SET datafusion.execution.batch_size = 1", "SET"),
        (
            "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
            "CREATE EXTERNAL TABLE",
        ),
        (
            "CREATE VIEW v AS SELECT * FROM auditloginevent",
            "CREATE VIEW",
        ),
        ("SELECT 1; SELECT 2", "more than one statement"),
        ("SELECT * FROM generate_series(1, 10)", "table function"),
        ("SELECT * FROM other.auditloginevent", "qualified"),
        ("SELEC username FROM auditloginevent", "syntax"),
    ] {
        let (status, _, body) = submit_raw(&sandbox, "t1", json!({"query": sql})).await;
        assert_eq!(status, 400, "{sql}: {body}");
        let text = message(&body);
        assert!(text.starts_with("query: "), "{sql}: {text}");
        assert!(text.len() < 600, "{sql}: a short message: {text}");
        let _ = why;
    }
    for (body, field) in [
        (json!({}), "query: required"),
        (json!({"query": 5}), "query: must be a string"),
        (
            json!({"query": "SELECT 1", "outputFormat": "XML"}),
            "outputFormat",
        ),
        (
            json!({"query": "SELECT 1", "compression": "RAR"}),
            "compression",
        ),
        (
            json!({"query": "SELECT 1", "limit": 1}),
            "limit: unknown field",
        ),
    ] {
        let (status, _, answer) = submit_raw(&sandbox, "t1", body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(message(&answer).contains(field), "{body}: {answer}");
    }
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_past_its_running_and_queued_limits_gets_429() {
    // No worker: started queries stay in progress.
    let limits = QueryConfig {
        max_running_per_tenant: 2,
        max_queued_per_tenant: 3,
        retry_after_secs: 7,
        ..QueryConfig::default()
    };
    let sandbox = sandbox(0, limits).await;
    let client = sandbox.client("busy");
    let mut ids = Vec::new();
    for _ in 0..5 {
        let job = client
            .submit_query("SELECT 1 AS one", "CSV", "NONE")
            .await
            .unwrap();
        ids.push(job["id"].as_str().unwrap().to_owned());
    }
    let (status, headers, body) = submit_raw(&sandbox, "busy", json!({"query": "SELECT 1"})).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(headers["retry-after"], "7");
    assert!(
        message(&body).contains("limit 2 running + 3 queued"),
        "{body}"
    );
    // Another tenant is not affected.
    let (status, _, body) = submit_raw(&sandbox, "quiet", json!({"query": "SELECT 1"})).await;
    assert_eq!(status, 200, "{body}");

    // Exactly two run at once; the rest wait.
    let mut statuses = Vec::new();
    for _ in 0..50 {
        statuses.clear();
        for id in &ids {
            statuses.push(
                client.query_job(id).await.unwrap()["queryStatus"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        if statuses.iter().filter(|s| *s == "in_progress").count() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        statuses.iter().filter(|s| *s == "in_progress").count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| *s == "accepted").count(),
        3,
        "{statuses:?}"
    );

    // Cancelling frees a place.
    let cancelled = client.cancel_query(&ids[4]).await.unwrap();
    assert_eq!(cancelled["queryStatus"], "cancelled");
    let mut accepted = false;
    for _ in 0..50 {
        let (status, _, _) = submit_raw(&sandbox, "busy", json!({"query": "SELECT 1"})).await;
        if status == 200 {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(accepted, "a cancelled query still counts against the limit");
    sandbox.stop().await.unwrap();
}

/// A query that keeps a worker busy for a long while: a three-way cross
/// join (8e9 rows for 2,000 logins) that statistics cannot answer.
const SLOW: &str = "SELECT max(a.id || b.id || c.id) AS m \
                    FROM auditloginevent a, auditloginevent b, auditloginevent c";

async fn many_logins(sandbox: &Sandbox, tenant: &str, n: usize) {
    let rows: Vec<Value> = (0..n)
        .map(|i| login(&format!("id-{i}"), &format!("user{i}@example.com")))
        .collect();
    ingest(sandbox, tenant, "auditloginevent", &rows).await;
}

/// Runs `sql` for a fresh tenant with 2,000 logins under `limits`; returns
/// the ended job.
async fn run_limited(limits: QueryConfig, sql: &str) -> Value {
    let sandbox = sandbox(1, limits).await;
    many_logins(&sandbox, "lim", 2_000).await;
    let client = sandbox.client("lim");
    let job = client.submit_query(sql, "CSV", "NONE").await.unwrap();
    let job = client
        .wait_query(job["id"].as_str().unwrap(), WAIT)
        .await
        .unwrap();
    sandbox.stop().await.unwrap();
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_query_past_its_time_limit_fails_with_the_limit_named() {
    let limits = QueryConfig {
        time_limit_secs: 1,
        ..QueryConfig::default()
    };
    let job = run_limited(limits, SLOW).await;
    assert_eq!(job["queryStatus"], "failed", "{job}");
    assert_eq!(
        job["errorMessage"],
        "query exceeded its time limit of 1 s (query.time_limit_secs)"
    );
    assert!(job.get("dataFile").is_none(), "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_query_past_its_memory_limit_fails_with_the_limit_named() {
    let limits = QueryConfig {
        memory_limit_mb: 1,
        ..QueryConfig::default()
    };
    // Sorting four million rows needs more than 1 MiB even when spilling
    // (the merge's own reservation is larger).
    let sort = "SELECT a.id FROM auditloginevent a, auditloginevent b ORDER BY a.id || b.id";
    let job = run_limited(limits, sort).await;
    assert_eq!(job["queryStatus"], "failed", "{job}");
    let message = job["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("memory limit of 1 MiB (query.memory_limit_mb)"),
        "{job}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_query_is_cancelled_and_its_worker_freed() {
    let sandbox = sandbox(1, QueryConfig::default()).await;
    many_logins(&sandbox, "cx", 2_000).await;
    let client = sandbox.client("cx");
    let mut events = sandbox
        .backends
        .queue
        .subscribe_events("query.cancelled.cx")
        .await
        .unwrap();
    let job = client.submit_query(SLOW, "CSV", "NONE").await.unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    for _ in 0..100 {
        if client.query_job(&id).await.unwrap()["queryStatus"] == "in_progress" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the worker get into the query.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cancelled = client.cancel_query(&id).await.unwrap();
    assert_eq!(cancelled["queryStatus"], "cancelled");
    assert_eq!(
        client.query_job(&id).await.unwrap()["queryStatus"],
        "cancelled"
    );
    let again = client.cancel_query(&id).await.unwrap_err().to_string();
    assert!(again.starts_with("400"), "{again}");
    let delivery = tokio::time::timeout(WAIT, events.next())
        .await
        .expect("a cancel event")
        .unwrap()
        .unwrap();
    let event: Value = serde_json::from_slice(&delivery.message.payload).unwrap();
    delivery.ack().await.unwrap();
    assert_eq!(event["subject"], id.as_str());
    assert_eq!(event["data"]["queryStatus"], "cancelled");

    // The only worker stops the cancelled query: a small one gets through fast.
    let started = std::time::Instant::now();
    let csv = completed_csv(
        &sandbox,
        &client,
        "SELECT count(*) AS n FROM auditloginevent",
    )
    .await;
    assert_eq!(csv, "n\n2000\n");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the worker was still busy: {:?}",
        started.elapsed()
    );
    let leftovers = sandbox
        .export_objects(&format!("cx/queries/{id}/"))
        .await
        .unwrap();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    sandbox.stop().await.unwrap();
}

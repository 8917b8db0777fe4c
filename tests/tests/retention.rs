//! Retention: an ended export's record and files go once it is older than
//! `export.retention_secs` (here 2 s) — also the keys a late worker report
//! recreated after the job was settled. On real Redis and RabbitMQ, with S3
//! over HTTP.

use std::time::{Duration, Instant};

use auditx::client::ExportRequest;
use auditx_lake::audit_trail::generate::GenerateSpec;
use auditx_proto::{ChunkId, MeterId, RequestId, TaskFailure, TaskRef, TenantId, WorkerReport};
use auditx_scheduler::export::jobs::JobStore;
use auditx_tests::{export_and_download, Sandbox, SandboxOptions};
use chrono::DateTime;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ended_exports_are_removed_after_their_retention() {
    let sandbox = Sandbox::start(SandboxOptions {
        retention_secs: 2,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let from = "2025-07-01T00:00:00Z";
    let to = "2025-07-02T00:00:00Z";
    let spec = GenerateSpec {
        tenant: TenantId::from("keeper"),
        meter: MeterId(9),
        rows: 20_000,
        from_ms: DateTime::parse_from_rfc3339(from)
            .unwrap()
            .timestamp_millis(),
        to_ms: DateTime::parse_from_rfc3339(to).unwrap().timestamp_millis(),
        error_rate: 0.0,
        seed: 2,
    };
    sandbox.generate(&spec, 10_000).await.unwrap();
    let request = ExportRequest {
        meter_id: 9,
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        query_from_time: from.into(),
        query_to_time: to.into(),
        ..ExportRequest::default()
    };
    let exported = export_and_download(&sandbox, "keeper", &request)
        .await
        .unwrap();
    let ended = Instant::now();
    let id = exported.job["requestId"].as_str().unwrap().to_owned();
    assert!(!exported.data_lines().is_empty());
    let client = sandbox.client("keeper");
    let file_key = exported.job["fileList"][0].as_str().unwrap().to_owned();
    let url = client.presigned_url(&file_key).await.unwrap();

    // A worker's report arriving after the job was settled recreates its
    // report log; retention removes it with the rest.
    let jobs = JobStore::new(sandbox.backends.state.clone());
    let request_id = RequestId(id.clone());
    let late = WorkerReport::Failed(TaskFailure {
        request_id: request_id.clone(),
        task: TaskRef::Render { chunk: ChunkId(0) },
        error: "a late report".into(),
    });
    assert!(jobs
        .append_report(&request_id, "late", &late)
        .await
        .unwrap());

    // Gone within retention + a sweep period (+ slack for a loaded machine).
    loop {
        assert!(
            ended.elapsed() < Duration::from_secs(30),
            "the export outlived its retention"
        );
        if client.job(9, &id).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        ended.elapsed() >= Duration::from_secs(2),
        "removed before its retention was over"
    );
    let listed: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/meters/9/auditTrail/export", sandbox.api))
        .bearer_auth(sandbox.token("keeper"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !listed.to_string().contains(&id),
        "the meter's list still shows it: {listed}"
    );
    let left = sandbox
        .export_objects(&format!("keeper/{id}/"))
        .await
        .unwrap();
    assert!(left.is_empty(), "files left: {left:?}");
    let download = reqwest::get(&url).await.unwrap();
    assert_eq!(
        download.status(),
        404,
        "the presigned URL no longer downloads"
    );
    assert!(jobs.reports(&request_id, 0, 10).await.unwrap().is_empty());
    sandbox.stop().await.unwrap();
}

/// Data queries too: an ended query's record, its place in the tenant's
/// list and its result object go once it is older than the retention.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ended_queries_are_removed_after_their_retention() {
    let sandbox = Sandbox::start(SandboxOptions {
        retention_secs: 2,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let rows = r#"{"id":"L1","eventid":"e-L1","username":"u@example.com","status":"Success","timestamp":"2024-06-30T04:29:06.571Z","createddate":"2024-06-30T04:29:06.571Z"}"#;
    let ingested = http
        .post(format!("{}/audit/tables/auditloginevent/rows", sandbox.api))
        .bearer_auth(sandbox.token("keeper"))
        .header("content-type", "application/x-ndjson")
        .body(rows)
        .send()
        .await
        .unwrap();
    assert!(ingested.status().is_success(), "{}", ingested.status());
    let client = sandbox.client("keeper");
    let job = client
        .submit_query("SELECT username FROM auditloginevent", "CSV", "NONE")
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    let job = client
        .wait_query(&id, Duration::from_secs(60))
        .await
        .unwrap();
    let ended = Instant::now();
    assert_eq!(job["queryStatus"], "completed", "{job}");
    let url = job["dataFile"].as_str().unwrap().to_owned();
    let body = sandbox.download(&url).await.unwrap();
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "username\nu@example.com\n"
    );

    loop {
        assert!(
            ended.elapsed() < Duration::from_secs(30),
            "the query outlived its retention"
        );
        if client.query_job(&id).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        ended.elapsed() >= Duration::from_secs(1),
        "removed before its retention was over"
    );
    let listed: serde_json::Value = http
        .get(format!("{}/query/jobs", sandbox.api))
        .bearer_auth(sandbox.token("keeper"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !listed.to_string().contains(&id),
        "the tenant's list still shows it: {listed}"
    );
    let left = sandbox
        .export_objects(&format!("keeper/queries/{id}/"))
        .await
        .unwrap();
    assert!(left.is_empty(), "result objects left: {left:?}");
    let download = reqwest::get(&url).await.unwrap();
    assert_eq!(
        download.status(),
        404,
        "the presigned URL no longer downloads"
    );
    sandbox.stop().await.unwrap();
}

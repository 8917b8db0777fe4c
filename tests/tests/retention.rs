//! Retention: an ended export's record and files go once it is older than
//! `export.retention_secs` (here 2 s) — also the keys a late worker report
//! recreated after the job was settled. On real Redis and RabbitMQ, with S3
//! over HTTP.

use std::time::{Duration, Instant};

use auditx::client::ExportRequest;
use auditx_lake::audit_trail::generate::GenerateSpec;
use auditx_proto::{MeterId, TenantId};
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
    let reports = format!("job/{id}/reports");
    sandbox
        .backends
        .state
        .log_append_once(&reports, "late", b"a late report")
        .await
        .unwrap();

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
    assert!(sandbox
        .backends
        .state
        .log_read(&reports, 0, 10)
        .await
        .unwrap()
        .is_empty());
    sandbox.stop().await.unwrap();
}

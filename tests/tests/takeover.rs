//! A scheduler process killed in the middle of an export: a second replica
//! (already serving the API) takes the tenant's lease over after its TTL and
//! finishes the export with every row exactly once — on real Redis and
//! RabbitMQ, with S3 over HTTP.

use std::time::Duration;

use auditx::client::{ApiClient, ExportRequest};
use auditx_lake::generate::{audit_rows, run_rows, GenerateSpec};
use auditx_proto::{MeterId, TenantId};
use auditx_tests::expect::{self, Query};
use auditx_tests::processes::{config_file, free_port, spawn, wait_healthy};
use auditx_tests::{Sandbox, SandboxOptions};
use chrono::DateTime;

const FROM: &str = "2025-07-01T00:00:00Z";
const TO: &str = "2025-07-03T00:00:00Z";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_scheduler_is_taken_over_by_another_replica() {
    let sandbox = Sandbox::start(SandboxOptions {
        start_roles: false,
        row_group_rows: 10_000,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let spec = GenerateSpec {
        tenant: TenantId::from("handover"),
        meter: MeterId(3),
        rows: 400_000,
        from_ms: DateTime::parse_from_rfc3339(FROM)
            .unwrap()
            .timestamp_millis(),
        to_ms: DateTime::parse_from_rfc3339(TO).unwrap().timestamp_millis(),
        error_rate: 0.05,
        seed: 4,
    };
    sandbox.generate(&spec, 100_000).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let config_a = config_file(&sandbox, dir.path(), port_a, 120_000, 10_000);
    let config_b = config_file(&sandbox, dir.path(), port_b, 120_000, 10_000);
    let mut scheduler_a = spawn("scheduler", &config_a);
    let _worker = spawn("worker", &config_a);
    wait_healthy(port_a).await;

    let token = sandbox.token("handover");
    let via_a = ApiClient::new(&format!("http://127.0.0.1:{port_a}"), &token);
    let request = ExportRequest {
        meter_id: 3,
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        query_from_time: FROM.into(),
        query_to_time: TO.into(),
        ..ExportRequest::default()
    };
    let request_id = via_a.create_export(&request).await.unwrap();
    // Let replica A start driving the export, then bring B up and kill A.
    let mut started = false;
    for _ in 0..200 {
        let job = via_a.job(3, &request_id).await.unwrap();
        if job["status"] == "RUNNING" && job["progress"]["chunksDone"].as_u64().unwrap_or(0) >= 1 {
            started = true;
            break;
        }
        assert_ne!(
            job["status"], "FINISHED",
            "the export finished before the scheduler could be killed"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(started, "replica A never started the export");
    let _scheduler_b = spawn("scheduler", &config_b);
    wait_healthy(port_b).await;
    scheduler_a.start_kill().unwrap();
    scheduler_a.wait().await.unwrap();

    let via_b = ApiClient::new(&format!("http://127.0.0.1:{port_b}"), &token);
    let job = via_b
        .wait(3, &request_id, Duration::from_secs(300), |_| {})
        .await
        .unwrap();
    assert_eq!(job["status"], "FINISHED", "{job}");

    let query = Query {
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        from_ms: spec.from_ms,
        to_ms: spec.to_ms,
        ..Query::default()
    };
    let expected = expect::expected_lines(audit_rows(&spec), &run_rows(&spec), &query);
    assert_eq!(job["count"], expected.len() as u64);
    let mut lines = Vec::new();
    for key in job["fileList"].as_array().unwrap() {
        let url = via_b.presigned_url(key.as_str().unwrap()).await.unwrap();
        let file = String::from_utf8(sandbox.download(&url).await.unwrap()).unwrap();
        let mut file_lines = expect::split_lines(&file);
        assert_eq!(file_lines.remove(0), expect::HEADER);
        lines.extend(file_lines);
    }
    assert!(
        lines == expected,
        "rows lost, duplicated or reordered across the takeover"
    );
    sandbox.stop().await.unwrap();
}

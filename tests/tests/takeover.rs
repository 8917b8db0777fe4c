//! A scheduler process killed in the middle of an export: a second replica
//! (already serving the API) takes the tenant's lease over after its TTL and
//! finishes the export with every row exactly once — on real Redis and
//! RabbitMQ, with S3 over HTTP — and the tenant's next export runs.

use std::time::Duration;

use auditx::client::{ApiClient, ExportRequest};
use auditx_lake::audit_trail::generate::{audit_rows, run_rows, GenerateSpec};
use auditx_proto::{MeterId, TenantId};
use auditx_tests::expect::{self, Query};
use auditx_tests::verify::{assert_export_exact, assert_next_export_runs};
use auditx_tests::{Fleet, Sandbox, SandboxOptions};
use chrono::DateTime;

const FROM: &str = "2025-07-01T00:00:00Z";
const TO: &str = "2025-07-03T00:00:00Z";
const NEXT_TO: &str = "2025-07-01T06:00:00Z";
const FILE_ROWS: u64 = 120_000;

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

    // Chunks of 5,000 rows: enough of them that the export is still
    // running when replica A is seen driving it.
    let mut fleet = Fleet::distributed(&sandbox)
        .rows(FILE_ROWS, 5_000)
        .workers(1)
        .start()
        .await;

    let token = sandbox.token("handover");
    let via_a = fleet.client(&token);
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
    let (_scheduler_b, api_b) = fleet.start_scheduler_replica().await;
    fleet.kill_scheduler().await;
    let killed = std::time::Instant::now();

    let via_b = ApiClient::new(&api_b, &token);
    let job = via_b
        .wait(3, &request_id, Duration::from_secs(300), |_| {})
        .await
        .unwrap();
    eprintln!(
        "FAULT scheduler kill: the export finished {:.1} s after the kill (lease TTL 3 s)",
        killed.elapsed().as_secs_f64()
    );

    let query = Query {
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        from_ms: spec.from_ms,
        to_ms: spec.to_ms,
        ..Query::default()
    };
    let expected = expect::expected_lines(audit_rows(&spec), &run_rows(&spec), &query);
    assert_export_exact(&via_b, &sandbox, &job, &expected, FILE_ROWS).await;

    // The tenant's next export runs on the surviving replica.
    assert_next_export_runs(
        &via_b, &sandbox, &spec, &request, &query, NEXT_TO, FILE_ROWS,
    )
    .await;
    sandbox.stop().await.unwrap();
}

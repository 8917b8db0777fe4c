//! One export per tenant at a time (FIFO), different tenants concurrently —
//! checked from the jobs' own timestamps, on real Redis and RabbitMQ.

use std::time::Duration;

use auditx::client::ExportRequest;
use auditx_lake::audit_trail::generate::GenerateSpec;
use auditx_proto::{MeterId, TenantId};
use auditx_tests::{Sandbox, SandboxOptions};
use chrono::DateTime;
use serde_json::Value;

const START: &str = "2025-07-01T00:00:00Z";
const END: &str = "2025-07-03T00:00:00Z";

fn spec(tenant: &str, meter: i64, seed: u64) -> GenerateSpec {
    GenerateSpec {
        tenant: TenantId::from(tenant),
        meter: MeterId(meter),
        rows: 30_000,
        from_ms: DateTime::parse_from_rfc3339(START)
            .unwrap()
            .timestamp_millis(),
        to_ms: DateTime::parse_from_rfc3339(END)
            .unwrap()
            .timestamp_millis(),
        error_rate: 0.05,
        seed,
    }
}

fn request(meter: i64) -> ExportRequest {
    ExportRequest {
        meter_id: meter,
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        query_from_time: START.into(),
        query_to_time: END.into(),
        ..ExportRequest::default()
    }
}

fn millis(job: &Value, field: &str) -> i64 {
    let text = job[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing in {job}"));
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_export_per_tenant_at_a_time_while_tenants_run_concurrently() {
    let sandbox = Sandbox::start(SandboxOptions {
        chunk_rows: 2_000,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    sandbox
        .generate(&spec("alpha", 1, 1), 10_000)
        .await
        .unwrap();
    sandbox.generate(&spec("beta", 2, 2), 10_000).await.unwrap();
    let alpha = sandbox.client("alpha");
    let beta = sandbox.client("beta");

    let first = alpha.create_export(&request(1)).await.unwrap();
    let second = alpha.create_export(&request(1)).await.unwrap();
    let other = beta.create_export(&request(2)).await.unwrap();

    // The second export of a tenant waits for the first.
    let waiting = alpha.job(1, &second).await.unwrap();
    assert_eq!(waiting["status"], "PENDING", "{waiting}");

    let timeout = Duration::from_secs(300);
    let first = alpha.wait(1, &first, timeout, |_| {}).await.unwrap();
    let second = alpha.wait(1, &second, timeout, |_| {}).await.unwrap();
    let other = beta.wait(2, &other, timeout, |_| {}).await.unwrap();
    for job in [&first, &second, &other] {
        assert_eq!(job["status"], "FINISHED", "{job}");
    }

    assert!(
        millis(&second, "startTime") >= millis(&first, "completionTime"),
        "alpha's exports overlapped: first {first}, second {second}"
    );
    // Whole seconds (the jobs' times as Zuora shows them): intervals that
    // share a second overlap.
    let overlaps = |a: &Value, b: &Value| {
        millis(a, "startTime") <= millis(b, "completionTime")
            && millis(b, "startTime") <= millis(a, "completionTime")
    };
    assert!(
        overlaps(&other, &first) || overlaps(&other, &second),
        "beta's export did not run while alpha's did: {other} vs {first} / {second}"
    );
    sandbox.stop().await.unwrap();
}

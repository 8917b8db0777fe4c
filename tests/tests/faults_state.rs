//! The state store failing under a running export, with real processes: a
//! scheduler and two workers on RabbitMQ, S3 over HTTP and a Redis of the
//! test's own that it restarts in the middle of a 300,000-row export.
//!
//! * With AOF (how `deploy/` runs Redis) the restart loses nothing: the
//!   export finishes with exactly the expected rows (SHA-256 of the bytes
//!   checked against the manifest too).
//! * Without, Redis comes back empty: the scheduler notices (no epoch, but
//!   the fleet had one), fails the export it was running with a reason and
//!   publishes its FAILED event, and the tenant's next export runs.

use std::time::{Duration, Instant};

use auditx::client::{ApiClient, ExportRequest};
use auditx_lake::audit_trail::generate::{audit_rows, run_rows, GenerateSpec};
use auditx_proto::{MeterId, TenantId};
use auditx_tests::expect::{self, Query};
use auditx_tests::private_redis::PrivateRedis;
use auditx_tests::verify::assert_export_exact;
use auditx_tests::{Fleet, Sandbox, SandboxOptions};
use chrono::DateTime;
use futures::StreamExt;
use serde_json::Value;

const FROM: &str = "2025-07-01T00:00:00Z";
const TO: &str = "2025-07-03T00:00:00Z";
const METER: i64 = 5;
const FILE_ROWS: u64 = 120_000;

struct Setup {
    sandbox: Sandbox,
    spec: GenerateSpec,
    client: ApiClient,
    _fleet: Fleet,
}

/// A lake of 300,000 rows, a scheduler and two worker processes whose
/// state store is `redis`.
async fn fleet(tenant: &str, redis: &PrivateRedis) -> Setup {
    let sandbox = Sandbox::start(SandboxOptions {
        start_roles: false,
        row_group_rows: 10_000,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let spec = GenerateSpec {
        tenant: TenantId::from(tenant),
        meter: MeterId(METER),
        rows: 300_000,
        from_ms: DateTime::parse_from_rfc3339(FROM)
            .unwrap()
            .timestamp_millis(),
        to_ms: DateTime::parse_from_rfc3339(TO).unwrap().timestamp_millis(),
        error_rate: 0.05,
        seed: 11,
    };
    sandbox.generate(&spec, 100_000).await.unwrap();
    // 2,000-row chunks: the export must still be running when Redis is
    // restarted, however fast a chunk renders. The roles' state store is
    // the test's own Redis.
    let fleet = Fleet::distributed(&sandbox)
        .rows(FILE_ROWS, 2_000)
        .workers(2)
        .replace_in_config(&sandbox.config.redis.url, &redis.url())
        .start()
        .await;
    let client = fleet.client(&sandbox.token(tenant));
    Setup {
        sandbox,
        spec,
        client,
        _fleet: fleet,
    }
}

fn request() -> ExportRequest {
    ExportRequest {
        meter_id: METER,
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        query_from_time: FROM.into(),
        query_to_time: TO.into(),
        ..ExportRequest::default()
    }
}

/// Waits until the export is RUNNING with at least one chunk rendered.
async fn wait_until_running(client: &ApiClient, id: &str) {
    for _ in 0..1_200 {
        let job = client.job(METER, id).await.unwrap();
        assert_ne!(
            job["status"], "FINISHED",
            "finished before the fault: {job}"
        );
        if job["status"] == "RUNNING" && job["progress"]["chunksDone"].as_u64().unwrap_or(0) >= 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the export never started");
}

/// Downloads a finished export and checks it holds exactly the expected
/// rows, and that the manifest's SHA-256 of each file matches its bytes.
async fn assert_exact(fleet: &Setup, job: &Value) {
    let query = Query {
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        from_ms: fleet.spec.from_ms,
        to_ms: fleet.spec.to_ms,
        ..Query::default()
    };
    let expected = expect::expected_lines(audit_rows(&fleet.spec), &run_rows(&fleet.spec), &query);
    assert!(expected.len() > 200_000, "a big enough export");
    assert_export_exact(&fleet.client, &fleet.sandbox, job, &expected, FILE_ROWS).await;
}

/// The tenant's next export runs to the end, exactly.
async fn assert_next_export_runs(fleet: &Setup) {
    let next = fleet.client.create_export(&request()).await.unwrap();
    let job = fleet
        .client
        .wait(METER, &next, Duration::from_secs(300), |_| {})
        .await
        .unwrap();
    assert_exact(fleet, &job).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_restart_with_aof_loses_nothing() {
    let mut redis = PrivateRedis::start(true).await;
    let fleet = fleet("aof-restart", &redis).await;
    let id = fleet.client.create_export(&request()).await.unwrap();
    wait_until_running(&fleet.client, &id).await;

    let restarted = Instant::now();
    redis.restart().await;
    let job = fleet
        .client
        .wait(METER, &id, Duration::from_secs(300), |_| {})
        .await
        .unwrap();
    println!(
        "redis restart with AOF: export finished {:.1} s after the restart",
        restarted.elapsed().as_secs_f64()
    );
    assert_exact(&fleet, &job).await;
    assert_next_export_runs(&fleet).await;
    fleet.sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_that_comes_back_empty_fails_the_running_export_and_the_next_one_runs() {
    let mut redis = PrivateRedis::start(false).await;
    let fleet = fleet("empty-restart", &redis).await;
    let mut events = fleet
        .sandbox
        .backends
        .queue
        .subscribe_events("export.*.empty-restart")
        .await
        .unwrap();
    let id = fleet.client.create_export(&request()).await.unwrap();
    wait_until_running(&fleet.client, &id).await;

    let restarted = Instant::now();
    redis.restart().await;
    // The store forgot the job; the scheduler notices and fails it.
    let failed = loop {
        assert!(
            restarted.elapsed() < Duration::from_secs(120),
            "the lost export was never failed"
        );
        match fleet.client.job(METER, &id).await {
            Ok(job) if job["status"] == "FAILED" => break job,
            Ok(job) => assert_ne!(job["status"], "FINISHED", "{job}"),
            Err(_) => {} // 404 until the recovery recorded it
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "redis restart without AOF: lost export failed and announced {:.1} s after the restart",
        restarted.elapsed().as_secs_f64()
    );
    let reason = failed["error"].as_str().unwrap_or_default().to_owned()
        + failed["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("state store lost"),
        "the reason says what happened: {failed}"
    );
    let event = loop {
        let delivery = tokio::time::timeout(Duration::from_secs(60), events.next())
            .await
            .expect("the FAILED event within 60 s")
            .unwrap()
            .unwrap();
        let event: Value = serde_json::from_slice(&delivery.message.payload).unwrap();
        delivery.ack().await.unwrap();
        if event["subject"] == id.as_str() {
            break event;
        }
    };
    assert_eq!(event["type"], "com.auditx.export.failed");
    assert_eq!(event["data"]["status"], "FAILED");
    assert_eq!(event["data"]["tenant"], "empty-restart");

    // Nothing of the lost export is left in the bucket.
    let left = fleet
        .sandbox
        .export_objects(&format!("empty-restart/{id}/"))
        .await
        .unwrap();
    assert!(left.is_empty(), "partial objects left: {left:?}");

    assert_next_export_runs(&fleet).await;
    fleet.sandbox.stop().await.unwrap();
}

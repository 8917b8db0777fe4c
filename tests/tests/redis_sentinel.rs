//! The state store behind Redis Sentinel, with real processes: a scheduler
//! and two workers on RabbitMQ, S3 over HTTP, and a primary, a replica and
//! a sentinel of the test's own. The sentinel fails the primary over in the
//! middle of a 300,000-row export: the roles find the new primary through
//! the sentinel and the export ends exact (or failed with a reason: never
//! silently short, never hanging); the tenant's next export runs on the
//! new primary.

use std::time::{Duration, Instant};

use auditx::client::{ApiClient, ExportRequest};
use auditx_lake::audit_trail::generate::{audit_rows, run_rows, GenerateSpec};
use auditx_proto::{MeterId, TenantId};
use auditx_tests::expect::{self, Query};
use auditx_tests::private_redis::{redis_cli, SentinelSet};
use auditx_tests::processes::free_port;
use auditx_tests::verify::assert_export_exact;
use auditx_tests::{Fleet, Sandbox, SandboxOptions};
use chrono::DateTime;
use serde_json::Value;

const FROM: &str = "2025-07-01T00:00:00Z";
const TO: &str = "2025-07-03T00:00:00Z";
const METER: i64 = 6;
const FILE_ROWS: u64 = 120_000;
const TENANT: &str = "sentinel-failover";

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_export_survives_a_sentinel_failover_of_the_state_store() {
    let redis = SentinelSet::start().await;
    let sandbox = Sandbox::start(SandboxOptions {
        start_roles: false,
        row_group_rows: 10_000,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let spec = GenerateSpec {
        tenant: TenantId::from(TENANT),
        meter: MeterId(METER),
        rows: 300_000,
        from_ms: DateTime::parse_from_rfc3339(FROM)
            .unwrap()
            .timestamp_millis(),
        to_ms: DateTime::parse_from_rfc3339(TO).unwrap().timestamp_millis(),
        error_rate: 0.05,
        seed: 12,
    };
    sandbox.generate(&spec, 100_000).await.unwrap();

    // 2,000-row chunks keep the export running through the failover; a lost
    // task is sent again after 20 s rather than the default 15 minutes.
    // The roles know only the sentinels: the first listed is down, and
    // `redis.url` points nowhere (only its user, password and db count).
    let fleet = Fleet::distributed(&sandbox)
        .rows(FILE_ROWS, 2_000)
        .workers(2)
        .replace_in_config(
            "lease_ttl_secs = 3",
            "lease_ttl_secs = 3\ntask_timeout_secs = 20",
        )
        .env(
            "AUDITX_REDIS__URL",
            format!("redis://127.0.0.1:{}/", free_port()),
        )
        .env("AUDITX_REDIS__SENTINEL__MASTER_NAME", SentinelSet::MASTER)
        .env(
            "AUDITX_REDIS__SENTINEL__ADDRESSES",
            format!(
                "[\"127.0.0.1:{}\", \"127.0.0.1:{}\"]",
                free_port(),
                redis.sentinel_port
            ),
        )
        .start()
        .await;
    let client = fleet.client(&sandbox.token(TENANT));

    let id = client.create_export(&request()).await.unwrap();
    // The job lives on the primary the sentinel named.
    assert_ne!(
        redis_cli(redis.primary.port, &["DBSIZE"]),
        "0",
        "the roles write to the primary"
    );
    wait_until_running(&client, &id).await;

    let failed_over = Instant::now();
    redis.fail_over().await;
    assert_eq!(redis.primary_port(), Some(redis.replica.port));
    let job = wait_end(&client, &id, Duration::from_secs(300)).await;
    println!(
        "sentinel failover: export {} {:.1} s after the failover",
        job["status"],
        failed_over.elapsed().as_secs_f64()
    );
    let query = Query {
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        from_ms: spec.from_ms,
        to_ms: spec.to_ms,
        ..Query::default()
    };
    let expected = expect::expected_lines(audit_rows(&spec), &run_rows(&spec), &query);
    assert!(expected.len() > 200_000, "a big enough export");
    assert_ne!(job["status"], "CANCELED", "{job}");
    if job["status"] == "FAILED" {
        let reason = job["error"].as_str().unwrap_or_default().to_owned()
            + job["reason"].as_str().unwrap_or_default();
        assert!(!reason.trim().is_empty(), "a failed export says why: {job}");
    } else {
        assert_export_exact(&client, &sandbox, &job, &expected, FILE_ROWS).await;
    }

    // The next export runs, exactly, its state on the new primary.
    let next = client.create_export(&request()).await.unwrap();
    let job = client
        .wait(METER, &next, Duration::from_secs(300), |_| {})
        .await
        .unwrap();
    assert_export_exact(&client, &sandbox, &job, &expected, FILE_ROWS).await;
    let pattern = format!("*{next}*");
    let keys = redis_cli(redis.replica.port, &["--scan", "--pattern", &pattern]);
    assert!(
        keys.contains(next.as_str()),
        "the next export's state is on the new primary (port {:?}): {keys:?}; old primary: {:?}; sentinel names {:?}",
        redis.replica.port,
        redis_cli(redis.primary.port, &["--scan", "--pattern", &pattern]),
        redis.primary_port()
    );
    sandbox.stop().await.unwrap();
}

/// Polls the export until it ends; the API may answer errors (503) while
/// the state store switches, which a user would retry as this does.
async fn wait_end(client: &ApiClient, id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        match client.job(METER, id).await {
            Ok(job)
                if matches!(
                    job["status"].as_str(),
                    Some("FINISHED" | "FAILED" | "CANCELED")
                ) =>
            {
                return job
            }
            Ok(_) => {}
            Err(error) => println!("polling the export during the failover: {error:#}"),
        }
        assert!(
            Instant::now() < deadline,
            "the export did not end within {within:?} of the failover"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the export is RUNNING with at least one chunk rendered.
async fn wait_until_running(client: &ApiClient, id: &str) {
    for _ in 0..1_200 {
        let job: Value = client.job(METER, id).await.unwrap();
        assert_ne!(
            job["status"], "FINISHED",
            "finished before the failover: {job}"
        );
        if job["status"] == "RUNNING" && job["progress"]["chunksDone"].as_u64().unwrap_or(0) >= 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the export never started");
}

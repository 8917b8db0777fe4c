//! Data query jobs outlive the scheduler and the state store's data (issue
//! 18 item 5), with real processes: a scheduler and a worker on RabbitMQ,
//! S3 over HTTP and Redis.
//!
//! * The scheduler killed (SIGKILL) right after a submit and started
//!   again: the query completes with its result, as if nothing happened.
//! * Redis coming back empty (no AOF) while one query of the tenant runs
//!   and another waits for its slot: neither vanishes — both answer
//!   `failed` with a reason saying what happened, the running one's worker
//!   stops it, and the tenant's next query completes.

use std::time::{Duration, Instant};

use auditx::client::ApiClient;
use auditx_tests::private_redis::PrivateRedis;
use auditx_tests::{Fleet, Sandbox, SandboxOptions};
use serde_json::Value;

/// A query that runs until stopped: 400⁴ row combinations.
const RUNAWAY: &str = "SELECT sum(length(a.username) + length(d.ipaddress)) FROM \
    auditloginevent a, auditloginevent b, auditloginevent c, auditloginevent d \
    WHERE a.status <> d.status";

const COUNT: &str =
    "SELECT status, count(*) AS n FROM auditloginevent GROUP BY status ORDER BY status";

struct Setup {
    sandbox: Sandbox,
    fleet: Fleet,
}

/// A scheduler and one worker; their state store is `redis` when given.
/// One query running per tenant, so that a second one waits `accepted`.
async fn fleet(redis: Option<&PrivateRedis>) -> Setup {
    let sandbox = Sandbox::start(SandboxOptions {
        start_roles: false,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let mut fleet = Fleet::distributed(&sandbox)
        .rows(100_000, 10_000)
        .workers(1)
        .scheduler_env("AUDITX_QUERY__MAX_RUNNING_PER_TENANT", "1");
    if let Some(redis) = redis {
        fleet = fleet.replace_in_config(&sandbox.config.redis.url, &redis.url());
    }
    let fleet = fleet.start().await;
    Setup { sandbox, fleet }
}

impl Setup {
    fn base(&self) -> String {
        self.fleet.api.clone()
    }

    fn client(&self, tenant: &str) -> ApiClient {
        ApiClient::new(&self.base(), &self.sandbox.token(tenant))
    }

    /// 400 login rows for `tenant`, statuses alternating.
    async fn ingest_logins(&self, tenant: &str) {
        let mut body = String::new();
        for i in 0..400 {
            let status = if i % 2 == 0 { "Success" } else { "Failed" };
            body.push_str(&format!(
                r#"{{"id":"L{i:05}","username":"user{i}@example.com","logintype":"PASSWORD","status":"{status}","ipaddress":"10.0.0.{}","timestamp":"2024-06-30T04:29:06.571Z","createddate":"2024-06-30T04:29:06.571Z"}}"#,
                i % 250
            ));
            body.push('\n');
        }
        let answer = reqwest::Client::new()
            .post(format!("{}/audit/tables/auditloginevent/rows", self.base()))
            .bearer_auth(self.sandbox.token(tenant))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = answer.status();
        assert!(status.is_success(), "{}", answer.text().await.unwrap());
    }

    /// The worker tasks running in the worker process.
    async fn tasks_in_flight(&self) -> i64 {
        let text = reqwest::get(format!("{}/metrics", self.fleet.workers[0].url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix("auditx_worker_tasks_in_flight "))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0)
    }
}

async fn submit(client: &ApiClient, sql: &str) -> String {
    let job = client.submit_query(sql, "CSV", "NONE").await.unwrap();
    job["id"].as_str().unwrap().to_owned()
}

/// Downloads a completed query's result.
async fn result_csv(fleet: &Setup, job: &Value) -> String {
    let url = job["dataFile"].as_str().expect("dataFile");
    String::from_utf8(fleet.sandbox.download(url).await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_completes_across_a_scheduler_kill() {
    let mut fleet = fleet(None).await;
    fleet.ingest_logins("dur-kill").await;
    let client = fleet.client("dur-kill");

    let id = submit(&client, COUNT).await;
    fleet.fleet.kill_scheduler().await;
    let killed = Instant::now();
    fleet.fleet.restart_scheduler().await;

    let job = client
        .wait_query(&id, Duration::from_secs(60))
        .await
        .unwrap();
    eprintln!(
        "the query ended {:?} after the scheduler was killed",
        killed.elapsed()
    );
    assert_eq!(job["queryStatus"], "completed", "{job}");
    assert_eq!(
        result_csv(&fleet, &job).await,
        "status,n\nFailed,200\nSuccess,200\n"
    );
    fleet.sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_lost_with_the_state_store_fail_with_a_reason() {
    let mut redis = PrivateRedis::start(false).await;
    let fleet = fleet(Some(&redis)).await;
    fleet.ingest_logins("dur-loss").await;
    let client = fleet.client("dur-loss");

    // One query running (the runaway), one waiting for the tenant's slot.
    let running = submit(&client, RUNAWAY).await;
    let waiting = submit(&client, COUNT).await;
    let started = Instant::now();
    while fleet.tasks_in_flight().await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the runaway never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let job = client.query_job(&waiting).await.unwrap();
    assert_eq!(job["queryStatus"], "accepted", "{job}");

    let restarted = Instant::now();
    redis.restart().await;
    for id in [&running, &waiting] {
        let failed = loop {
            assert!(
                restarted.elapsed() < Duration::from_secs(60),
                "query {id} was never failed"
            );
            match client.query_job(id).await {
                Ok(job) if job["queryStatus"] == "failed" => break job,
                Ok(job) => assert_ne!(job["queryStatus"], "completed", "{job}"),
                Err(_) => {} // 404 until the recovery stored it again
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let reason = failed["errorMessage"].as_str().unwrap_or_default();
        assert!(
            reason.contains("state store lost this query"),
            "the reason says what happened: {failed}"
        );
        assert!(failed["dataFile"].is_null(), "{failed}");
    }
    eprintln!(
        "redis restart without AOF: both queries failed {:?} after the restart",
        restarted.elapsed()
    );
    // The worker stops the lost runaway (its cancel key).
    while fleet.tasks_in_flight().await > 0 {
        assert!(
            restarted.elapsed() < Duration::from_secs(30),
            "the lost runaway still runs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Both are listed, and the tenant's next query completes.
    let listed = reqwest::Client::new()
        .get(format!("{}/query/jobs", fleet.base()))
        .bearer_auth(fleet.sandbox.token("dur-loss"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        listed.contains(&running) && listed.contains(&waiting),
        "{listed}"
    );
    let next = submit(&client, COUNT).await;
    let job = client
        .wait_query(&next, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(job["queryStatus"], "completed", "{job}");
    assert_eq!(
        result_csv(&fleet, &job).await,
        "status,n\nFailed,200\nSuccess,200\n"
    );
    fleet.sandbox.stop().await.unwrap();
}

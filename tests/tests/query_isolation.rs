//! One tenant's runaway data query cannot stall auditx (issue 18 item 1):
//! queries run on their own pool of threads and every operator of a plan
//! stops at its next batch once its query is cancelled or over its time
//! limit. While a 4-way self-join of 400 login rows (a plan that never waits
//! on anything) runs for tenant "a", `/healthz` and tenant "b"'s API calls
//! answer fast and "b"'s small query completes; the runaway's cancel stops
//! it within a second — its task ends and the query pool's threads stop
//! computing — and the next query completes; its time limit ends it within
//! a second of the limit; SIGTERM while it runs makes the process exit
//! promptly. On `auditx standalone` and on an `auditx worker` process of a
//! distributed run (scheduler and worker processes).
//!
//! Also prints the submit → completed latency of small queries (issue 18
//! item 2; the bench measures it, this is only the figure).

use std::path::Path;
use std::time::{Duration, Instant};

use auditx::client::ApiClient;
use auditx_tests::processes::{run_auditx, terminate};
use auditx_tests::{Fleet, Sandbox, SandboxOptions};

/// The issue's noisy neighbour: 400⁴ row combinations.
const RUNAWAY: &str = "SELECT sum(length(a.username) + length(d.ipaddress)) FROM \
    auditloginevent a, auditloginevent b, auditloginevent c, auditloginevent d \
    WHERE a.status <> d.status";

/// A small query of tenant b (1,000 rows).
const SMALL: &str =
    "SELECT status, count(*) AS n FROM auditloginevent GROUP BY status ORDER BY status";

/// Bound asserted on the p99 of `/healthz` and of another tenant's calls
/// while the runaway runs. The issue's target is 50 ms (release build);
/// this debug build shares two cores with other builds and tests, so the
/// test asserts a looser bound and prints what it measured.
const P99_BOUND: Duration = Duration::from_millis(250);

/// Name of the query pool's threads (`worker::query::executor::THREAD_NAME`).
const POOL_THREAD: &str = "auditx-query";

async fn token(data: &Path, tenant: &str) -> String {
    let data = data.to_str().unwrap();
    run_auditx(&["token", "--data-dir", data, "--tenant", tenant])
        .await
        .trim()
        .to_owned()
}

/// `n` login rows, statuses alternating, ingested for the token's tenant.
async fn ingest_logins(base: &str, token: &str, n: usize) {
    let mut body = String::new();
    for i in 0..n {
        let status = if i % 2 == 0 { "Success" } else { "Failed" };
        body.push_str(&format!(
            r#"{{"id":"L{i:05}","eventid":"e-L{i:05}","username":"user{i}@example.com","userid":"u-{i}","logintype":"PASSWORD","status":"{status}","timestamp":"2024-06-30T04:29:06.571Z","browsertype":"Chrome","browserversion":"77.0","ipaddress":"10.0.{}.{}","hostname":"apisandbox.zuora.com","createddate":"2024-06-30T04:29:06.571Z"}}"#,
            i / 250,
            i % 250
        ));
        body.push('\n');
    }
    let answer = reqwest::Client::new()
        .post(format!("{base}/audit/tables/auditloginevent/rows"))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = answer.status();
    assert!(
        status.is_success(),
        "ingest: {status} {}",
        answer.text().await.unwrap()
    );
}

/// The process running the queries: its pid and where its metrics are.
struct QueryProcess {
    pid: u32,
    /// `http://host:port` serving `/healthz` and `/metrics` of the process
    /// that runs the worker (the API of `standalone`, the worker's own
    /// endpoint in a distributed run).
    health: String,
}

impl QueryProcess {
    /// The worker tasks running in the process (`/metrics`).
    async fn tasks_in_flight(&self, http: &reqwest::Client) -> i64 {
        let text = http
            .get(format!("{}/metrics", self.health))
            .send()
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

    /// CPU time (user + system, in clock ticks) the process's query pool
    /// threads have used (`/proc/<pid>/task/*/stat`).
    fn pool_cpu_ticks(&self) -> u64 {
        let mut ticks = 0;
        for task in std::fs::read_dir(format!("/proc/{}/task", self.pid)).unwrap() {
            let Ok(stat) = std::fs::read_to_string(task.unwrap().path().join("stat")) else {
                continue;
            };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            if &stat[open + 1..close] != POOL_THREAD {
                continue;
            }
            // After the name: state is field 3; utime and stime are 14 and 15.
            let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
            ticks += fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        }
        ticks
    }

    /// Whether the query pool computes: its threads' CPU time over 300 ms.
    async fn pool_busy_ticks(&self) -> u64 {
        let before = self.pool_cpu_ticks();
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.pool_cpu_ticks() - before
    }

    /// Waits (from `since`, at most `within`) until the worker runs no task
    /// and its query pool stops computing; the time it took.
    async fn wait_idle(
        &self,
        http: &reqwest::Client,
        since: Instant,
        within: Duration,
    ) -> Duration {
        while self.tasks_in_flight(http).await > 0 {
            assert!(
                since.elapsed() < within,
                "the query's task still runs after {:?}",
                since.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let task_ended = since.elapsed();
        // The pool's threads stopped with it: a query that kept computing
        // on them (the gap of a dropped but non-yielding plan) would use a
        // whole core or two. Ticks are 10 ms; allow a little bookkeeping.
        loop {
            let ticks = self.pool_busy_ticks().await;
            if ticks <= 2 {
                break;
            }
            assert!(
                since.elapsed() < within + Duration::from_millis(300),
                "the query pool still computes {:?} after the end ({ticks} ticks in 300 ms)",
                since.elapsed()
            );
        }
        task_ended
    }
}

/// Submits the runaway and waits until the worker runs it and the pool
/// computes it.
async fn start_runaway(
    client: &ApiClient,
    http: &reqwest::Client,
    process: &QueryProcess,
) -> String {
    let job = client.submit_query(RUNAWAY, "CSV", "NONE").await.unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    loop {
        let job = client.query_job(&id).await.unwrap();
        assert!(
            matches!(
                job["queryStatus"].as_str(),
                Some("accepted" | "in_progress")
            ),
            "the runaway ended: {job}"
        );
        if job["queryStatus"] == "in_progress" && process.tasks_in_flight(http).await > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the runaway never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // It computes on the pool (on a loaded machine, not every 300 ms).
    let mut ticks = 0;
    for _ in 0..10 {
        ticks = process.pool_busy_ticks().await;
        if ticks >= 5 {
            return id;
        }
    }
    panic!("the runaway does not compute on the query pool: {ticks} ticks in 300 ms");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// Times `calls` GETs of `url`, each answered 200; sorted durations.
async fn time_calls(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    calls: usize,
) -> Vec<Duration> {
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let mut request = http.get(url).timeout(Duration::from_secs(10));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let started = Instant::now();
        let answer = request.send().await.unwrap();
        let status = answer.status();
        answer.bytes().await.unwrap();
        times.push(started.elapsed());
        assert!(status.is_success(), "{url}: {status}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    times.sort();
    times
}

/// Submits `sql` and polls (every 2 ms) until it completes, at most
/// `within`; the time from submit to the first `completed` seen.
async fn submit_to_completed(client: &ApiClient, sql: &str, within: Duration) -> Duration {
    let started = Instant::now();
    let job = client.submit_query(sql, "CSV", "NONE").await.unwrap();
    let id = job["id"].as_str().unwrap();
    loop {
        let job = client.query_job(id).await.unwrap();
        match job["queryStatus"].as_str() {
            Some("completed") => return started.elapsed(),
            Some("accepted" | "in_progress") => {}
            _ => panic!("query did not complete: {job}"),
        }
        assert!(
            started.elapsed() < within,
            "not completed after {within:?}: {job}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The median submit → completed of `SMALL` over `runs` runs, printed.
async fn small_query_latency(b: &ApiClient, runs: usize, mode: &str) -> Duration {
    let mut latencies = Vec::new();
    for _ in 0..runs {
        latencies.push(submit_to_completed(b, SMALL, Duration::from_secs(60)).await);
    }
    latencies.sort();
    let median = percentile(&latencies, 0.5);
    eprintln!(
        "{mode}: small query (1,000 rows) submit -> completed: median {median:?}, min {:?}, max {:?}",
        latencies[0],
        latencies[latencies.len() - 1]
    );
    median
}

/// The runaway of tenant a beside tenant b: the API and `health` answer
/// fast while it runs, b's small query completes, a's cancel stops it
/// within a second (task and pool), and b's next query completes.
async fn runaway_beside_another_tenant(
    api: &str,
    process: &QueryProcess,
    a: &ApiClient,
    b: &ApiClient,
    token_b: &str,
    mode: &str,
) {
    let http = reqwest::Client::new();
    let id = start_runaway(a, &http, process).await;

    let health = time_calls(&http, &format!("{api}/healthz"), None, 100).await;
    let listing = time_calls(&http, &format!("{api}/query/jobs"), Some(token_b), 100).await;
    let (health_p99, listing_p99) = (percentile(&health, 0.99), percentile(&listing, 0.99));
    eprintln!(
        "{mode}, while the runaway runs: /healthz p50 {:?} p99 {health_p99:?}; tenant b GET /query/jobs p50 {:?} p99 {listing_p99:?}",
        percentile(&health, 0.5),
        percentile(&listing, 0.5),
    );
    assert!(health_p99 < P99_BOUND, "/healthz p99 {health_p99:?}");
    assert!(
        listing_p99 < P99_BOUND,
        "GET /query/jobs p99 {listing_p99:?}"
    );
    if process.health != api {
        let worker = time_calls(&http, &format!("{}/healthz", process.health), None, 50).await;
        let worker_p99 = percentile(&worker, 0.99);
        eprintln!("{mode}, while the runaway runs: worker /healthz p99 {worker_p99:?}");
        assert!(worker_p99 < P99_BOUND, "worker /healthz p99 {worker_p99:?}");
    }

    // Tenant b's small query beside the runaway: the two take turns on the
    // pool's threads.
    let beside = submit_to_completed(b, SMALL, Duration::from_secs(20)).await;
    eprintln!("{mode}: tenant b's small query beside the runaway took {beside:?}");
    let job = a.query_job(&id).await.unwrap();
    assert_eq!(job["queryStatus"], "in_progress", "{job}");

    // Cancel: the API says cancelled at once; the worker's task ends and
    // the pool stops computing within a second.
    let cancelled_at = Instant::now();
    let job = a.cancel_query(&id).await.unwrap();
    assert_eq!(job["queryStatus"], "cancelled", "{job}");
    let ended = process
        .wait_idle(&http, cancelled_at, Duration::from_secs(1))
        .await;
    eprintln!(
        "{mode}: cancel took effect in {ended:?} (the pool idle after {:?})",
        cancelled_at.elapsed()
    );
    let job = a.query_job(&id).await.unwrap();
    assert_eq!(job["queryStatus"], "cancelled", "{job}");
    assert!(job["dataFile"].is_null(), "{job}");

    // The process's queries run on: b's next query completes.
    let after = submit_to_completed(b, SMALL, Duration::from_secs(20)).await;
    eprintln!("{mode}: tenant b's small query after the cancel took {after:?}");
}

/// a's runaway with a time limit of `limit`: it fails naming the limit
/// within a second of it, and the worker's task and pool end with it.
async fn runaway_meets_its_time_limit(
    a: &ApiClient,
    process: &QueryProcess,
    limit: Duration,
    mode: &str,
) {
    let http = reqwest::Client::new();
    let submitted = Instant::now();
    let id = start_runaway(a, &http, process).await;
    let job = a.wait_query(&id, limit * 3).await.unwrap();
    let ended = submitted.elapsed();
    eprintln!("{mode}: the time-limited runaway ended after {ended:?} (limit {limit:?})");
    assert_eq!(job["queryStatus"], "failed", "{job}");
    let message = job["errorMessage"].to_string();
    assert!(message.contains("time limit"), "{job}");
    assert!(ended >= limit, "{ended:?}");
    // The poll of the job adds up to 100 ms, the step from submit to
    // running a few more.
    assert!(ended < limit + Duration::from_millis(1500), "{ended:?}");
    let reported = Instant::now();
    process
        .wait_idle(&http, reported, Duration::from_secs(1))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_query_does_not_stall_the_service_and_stops_on_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Fleet::standalone(&data).start().await;
    let (token_a, token_b) = (token(&data, "a").await, token(&data, "b").await);
    let base = server.api.clone();
    let (a, b) = (
        ApiClient::new(&base, &token_a),
        ApiClient::new(&base, &token_b),
    );
    ingest_logins(&base, &token_a, 400).await;
    ingest_logins(&base, &token_b, 1000).await;
    let process = QueryProcess {
        pid: server.scheduler.id().unwrap(),
        health: base.clone(),
    };

    let median = small_query_latency(&b, 21, "standalone").await;
    assert!(median < Duration::from_secs(2), "median {median:?}");

    runaway_beside_another_tenant(&base, &process, &a, &b, &token_b, "standalone").await;

    let status = terminate(&mut server.scheduler, Duration::from_secs(10)).await;
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_query_meets_its_time_limit_and_sigterm_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let limit = Duration::from_secs(3);
    let mut server = Fleet::standalone(&data)
        .env("AUDITX_QUERY__TIME_LIMIT_SECS", "3")
        .start()
        .await;
    let token_a = token(&data, "a").await;
    let base = server.api.clone();
    let a = ApiClient::new(&base, &token_a);
    ingest_logins(&base, &token_a, 400).await;
    let process = QueryProcess {
        pid: server.scheduler.id().unwrap(),
        health: base.clone(),
    };

    runaway_meets_its_time_limit(&a, &process, limit, "standalone").await;

    // SIGTERM while another runaway runs: the process stops the query and
    // exits well within a pod's grace period.
    let http = reqwest::Client::new();
    start_runaway(&a, &http, &process).await;
    let sent = Instant::now();
    let status = terminate(&mut server.scheduler, Duration::from_secs(10)).await;
    eprintln!("standalone: exited {:?} after SIGTERM", sent.elapsed());
    assert!(status.success(), "{status}");
}

/// The same on a distributed run: `auditx scheduler` and one `auditx
/// worker` process (two task slots) against real RabbitMQ, Redis and S3
/// over HTTP. The worker's own `/healthz` answers fast too, its consumer
/// keeps taking b's tasks, and SIGTERM of the worker ends it within the
/// grace period, the runaway's task going back to the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_query_on_a_worker_process_does_not_stall_it() {
    let sandbox = Sandbox::start(SandboxOptions {
        start_roles: false,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    // Long enough for the cancel scenario to run within it.
    let limit = Duration::from_secs(10);
    let mut fleet = Fleet::distributed(&sandbox)
        .rows(100_000, 10_000)
        .workers(1)
        .scheduler_env("AUDITX_QUERY__TIME_LIMIT_SECS", limit.as_secs().to_string())
        .start()
        .await;
    let mut worker = fleet.workers.remove(0);
    let base = fleet.api.clone();
    let (token_a, token_b) = (sandbox.token("iso-a"), sandbox.token("iso-b"));
    let (a, b) = (
        ApiClient::new(&base, &token_a),
        ApiClient::new(&base, &token_b),
    );
    ingest_logins(&base, &token_a, 400).await;
    ingest_logins(&base, &token_b, 1000).await;
    let process = QueryProcess {
        pid: worker.process.id().unwrap(),
        health: worker.url(),
    };

    let median = small_query_latency(&b, 11, "distributed").await;
    assert!(median < Duration::from_secs(2), "median {median:?}");

    runaway_beside_another_tenant(&base, &process, &a, &b, &token_b, "distributed").await;
    runaway_meets_its_time_limit(&a, &process, limit, "distributed").await;

    // SIGTERM of the worker while a runaway runs.
    let http = reqwest::Client::new();
    start_runaway(&a, &http, &process).await;
    let sent = Instant::now();
    let status = terminate(&mut worker.process, Duration::from_secs(10)).await;
    eprintln!(
        "distributed: the worker exited {:?} after SIGTERM",
        sent.elapsed()
    );
    assert!(status.success(), "{status}");
    sandbox.stop().await.unwrap();
}

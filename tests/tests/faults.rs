//! Fault injection against real processes: `auditx scheduler` and two
//! `auditx worker` processes export 300,000 generated rows (≥ 200,000 in
//! the export) while a dependency fails under them — a RabbitMQ restart
//! (`rabbitmqctl stop_app`/`start_app` of a private node), the S3 endpoint
//! unreachable for 10 s, a worker stopped with SIGTERM. After each, the
//! downloaded files hold exactly the expected rows (and match the
//! manifest's SHA-256), the processes are still up, and the tenant's next
//! export runs. Each test prints how long the system took to recover
//! (docs/reliability.md quotes those figures).
//!
//! The tests run one at a time: each runs three processes, and a loaded
//! machine would blur the recovery times.

use std::process::Stdio;
use std::time::{Duration, Instant};

use auditx::client::{ApiClient, ExportRequest};
use auditx_lake::audit_trail::generate::{audit_rows, run_rows, GenerateSpec};
use auditx_proto::{MeterId, TenantId};
use auditx_tests::expect::{self, Query};
use auditx_tests::faults::{PrivateRabbit, TcpProxy};
use auditx_tests::verify::assert_export_exact;
use auditx_tests::{Fleet, Sandbox, SandboxOptions};
use chrono::DateTime;
use serde_json::Value;
use tokio::process::Child;

const FROM: &str = "2025-07-01T00:00:00Z";
const TO: &str = "2025-07-03T00:00:00Z";
/// The tenant's next export: the first six hours.
const NEXT_TO: &str = "2025-07-01T06:00:00Z";
const ROWS: u64 = 300_000;
/// Small chunks (about 280 of them): each costs its own task, upload and
/// report, so the export runs for seconds however fast a chunk renders —
/// long enough to be caught with two chunks done (the job's progress is
/// saved at most every 0.5 s) and to still be running when the fault hits.
const CHUNK_ROWS: u64 = 1_000;
const FILE_ROWS: u64 = 100_000;

/// One fault test at a time (see the module doc).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn ms(time: &str) -> i64 {
    DateTime::parse_from_rfc3339(time)
        .unwrap()
        .timestamp_millis()
}

/// The sandbox's backends with generated rows, and the port of the API
/// once [`Setup::start`] started the processes.
struct Setup {
    sandbox: Sandbox,
    spec: GenerateSpec,
    port: u16,
    meter: i64,
}

impl Setup {
    async fn new(tenant: &str, meter: i64) -> Setup {
        let sandbox = Sandbox::start(SandboxOptions {
            start_roles: false,
            row_group_rows: 20_000,
            // The broker's own limit is a safety net, not what fails tasks.
            delivery_limit: 100,
            ..SandboxOptions::default()
        })
        .await
        .unwrap();
        let spec = GenerateSpec {
            tenant: TenantId::from(tenant),
            meter: MeterId(meter),
            rows: ROWS,
            from_ms: ms(FROM),
            to_ms: ms(TO),
            error_rate: 0.01,
            seed: 17,
        };
        sandbox.generate(&spec, 100_000).await.unwrap();
        Setup {
            sandbox,
            spec,
            port: 0,
            meter,
        }
    }

    /// `auditx scheduler` and two `auditx worker` processes, their
    /// configuration file edited by `edits` (`from`, `to`).
    async fn start(&mut self, edits: &[(&str, &str)]) -> Fleet {
        let mut fleet = Fleet::distributed(&self.sandbox)
            .rows(FILE_ROWS, CHUNK_ROWS)
            .workers(2);
        for (from, to) in edits {
            fleet = fleet.replace_in_config(from, to);
        }
        let fleet = fleet.start().await;
        self.port = fleet.port;
        fleet
    }

    fn client(&self) -> ApiClient {
        ApiClient::new(
            &format!("http://127.0.0.1:{}", self.port),
            &self.sandbox.token(self.spec.tenant.as_str()),
        )
    }

    fn request(&self, to: &str) -> ExportRequest {
        ExportRequest {
            meter_id: self.meter,
            export_type: "SAMPLE".into(),
            run_type: "NORMAL".into(),
            query_from_time: FROM.into(),
            query_to_time: to.into(),
            ..ExportRequest::default()
        }
    }

    fn expected(&self, to: &str) -> Vec<String> {
        let query = Query {
            export_type: "SAMPLE".into(),
            run_type: "NORMAL".into(),
            from_ms: ms(FROM),
            to_ms: ms(to),
            ..Query::default()
        };
        expect::expected_lines(audit_rows(&self.spec), &run_rows(&self.spec), &query)
    }

    /// The ended export holds exactly the rows up to `to`, checked against
    /// its manifest; the whole range holds the ≥ 200,000 rows every fault
    /// test must export.
    async fn assert_exact(&self, job: &Value, to: &str) {
        let expected = self.expected(to);
        if to == TO {
            assert!(expected.len() >= 200_000, "{} rows", expected.len());
        }
        assert_export_exact(&self.client(), &self.sandbox, job, &expected, FILE_ROWS).await;
    }
}

fn chunks_done(job: &Value) -> u64 {
    job["progress"]["chunksDone"].as_u64().unwrap_or(0)
}

/// Polls the job until its rendering has started (`chunksDone` ≥ 2),
/// failing if it ended first.
async fn wait_until_rendering(client: &ApiClient, meter: i64, id: &str) -> Value {
    for _ in 0..3000 {
        let job = client.job(meter, id).await.unwrap();
        assert!(
            !matches!(job["status"].as_str(), Some("FINISHED" | "FAILED")),
            "the export ended before the fault: {job}"
        );
        if chunks_done(&job) >= 2 {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the export never started rendering");
}

/// Seconds from `since` until the job renders another chunk or ends.
async fn seconds_until_progress(client: &ApiClient, meter: i64, id: &str, since: Instant) -> f64 {
    let before = chunks_done(&client.job(meter, id).await.unwrap());
    loop {
        // The API (Redis) answers throughout; only the export is stalled.
        let job = client.job(meter, id).await.unwrap();
        if chunks_done(&job) > before || job["status"] != "RUNNING" {
            return since.elapsed().as_secs_f64();
        }
        assert!(
            since.elapsed() < Duration::from_secs(600),
            "no progress 10 minutes after the fault ended: {job}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `/readyz` of a process: its status and body.
async fn readyz(port: u16) -> Option<(u16, Value)> {
    let response = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.ok()?))
}

/// Waits until `/readyz` answers `status`; returns the body and the wait.
async fn wait_readyz(port: u16, status: u16) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        if let Some((got, body)) = readyz(port).await {
            if got == status {
                return (body, started.elapsed());
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "/readyz on {port} never answered {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The tenant's next export runs and is exact too.
async fn assert_next_export_runs(setup: &Setup) {
    let client = setup.client();
    let id = client.create_export(&setup.request(NEXT_TO)).await.unwrap();
    let job = client
        .wait(setup.meter, &id, Duration::from_secs(300), |_| {})
        .await
        .unwrap();
    setup.assert_exact(&job, NEXT_TO).await;
}

fn assert_running(process: &mut Child, what: &str) {
    assert!(
        process.try_wait().unwrap().is_none(),
        "the {what} exited during the fault"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rabbitmq_restart_mid_export_loses_nothing_and_stops_no_process() {
    let _serial = SERIAL.lock().await;
    assert!(
        PrivateRabbit::installed().is_some(),
        "this test starts a private RabbitMQ node: install rabbitmq-server"
    );
    let rabbit = PrivateRabbit::start().await.unwrap();
    let mut setup = Setup::new("fault-broker", 11).await;
    let broker = setup.sandbox.config.rabbitmq.url.clone();
    let mut fleet = setup.start(&[(&broker, &rabbit.url)]).await;
    let worker_port = fleet.workers[0].port;
    let mut worker_b = fleet.workers.pop().unwrap().process;
    let mut worker_a = fleet.workers.pop().unwrap().process;
    let (ready, _) = wait_readyz(setup.port, 200).await;
    assert_eq!(
        ready["data"]["dependencies"]["broker"]["up"], true,
        "{ready}"
    );

    let client = setup.client();
    let id = client.create_export(&setup.request(TO)).await.unwrap();
    wait_until_rendering(&client, setup.meter, &id).await;

    // `rabbitmqctl stop_app` takes a second or two, long enough for the
    // export to finish meanwhile: the workers are paused (SIGSTOP) while it
    // runs, so the broker goes away under an export that still has tasks
    // to run, and they resume (SIGCONT) to a broker that is gone.
    signal(&worker_a, "-STOP").await;
    signal(&worker_b, "-STOP").await;
    let outage = Instant::now();
    rabbit.stop_app().await.unwrap();
    let job = client.job(setup.meter, &id).await.unwrap();
    assert_eq!(job["status"], "RUNNING", "{job}");
    // Chunks to render or files to assemble: tasks that go through the
    // broker either way (a 300,000-row export renders in well under a
    // second now, so it may be past its chunks already).
    let progress = &job["progress"];
    let left = progress["chunksTotal"].as_u64().unwrap() - chunks_done(&job)
        + progress["filesTotal"].as_u64().unwrap()
        - progress["filesDone"].as_u64().unwrap();
    assert!(left > 0, "tasks left when the broker went: {job}");
    signal(&worker_a, "-CONT").await;
    signal(&worker_b, "-CONT").await;
    // Both roles say the broker is down, and only the broker.
    let (down, _) = wait_readyz(setup.port, 503).await;
    assert_eq!(down["success"], false, "{down}");
    assert_eq!(
        down["data"]["dependencies"]["broker"]["up"], false,
        "{down}"
    );
    assert_eq!(
        down["data"]["dependencies"]["stateStore"]["up"], true,
        "{down}"
    );
    assert_eq!(down["data"]["dependencies"]["s3"]["up"], true, "{down}");
    let message = down["reasons"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("broker"), "{message}");
    let (worker_down, _) = wait_readyz(worker_port, 503).await;
    assert_eq!(
        worker_down["dependencies"]["broker"]["up"], false,
        "{worker_down}"
    );
    // Down well past the ~3 s after which a worker used to give up.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_running(&mut worker_a, "first worker");
    assert_running(&mut worker_b, "second worker");
    assert_running(&mut fleet.scheduler, "scheduler");
    rabbit.start_app().await.unwrap();
    let back = Instant::now();
    let outage_secs = outage.elapsed().as_secs_f64();

    let (_, scheduler_ready) = wait_readyz(setup.port, 200).await;
    let (_, worker_ready) = wait_readyz(worker_port, 200).await;
    let progress = seconds_until_progress(&client, setup.meter, &id, back).await;
    eprintln!(
        "FAULT rabbitmq restart: broker down {outage_secs:.1} s; after start_app the scheduler was ready in {:.1} s, \
         the worker in {:.1} s, and the export rendered its next chunk in {progress:.1} s",
        scheduler_ready.as_secs_f64(),
        worker_ready.as_secs_f64(),
    );

    let job = client
        .wait(setup.meter, &id, Duration::from_secs(900), |_| {})
        .await
        .unwrap();
    eprintln!(
        "FAULT rabbitmq restart: export finished {:.1} s after the broker came back",
        back.elapsed().as_secs_f64()
    );
    setup.assert_exact(&job, TO).await;
    assert_next_export_runs(&setup).await;
    assert_running(&mut worker_a, "first worker");
    assert_running(&mut worker_b, "second worker");
    assert_running(&mut fleet.scheduler, "scheduler");
    drop((fleet, worker_a, worker_b));
    setup.sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_s3_endpoint_down_for_10_s_mid_export_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let mut setup = Setup::new("fault-s3", 12).await;
    let endpoint = setup.sandbox.config.s3.endpoint.clone().unwrap();
    let target = endpoint.trim_start_matches("http://").parse().unwrap();
    let mut proxy = TcpProxy::start(target).await.unwrap();
    let mut fleet = setup
        .start(&[(
            &format!("endpoint = \"{endpoint}\""),
            &format!("endpoint = \"{}\"", proxy.url()),
        )])
        .await;
    let worker_port = fleet.workers[0].port;
    let mut worker_b = fleet.workers.pop().unwrap().process;
    let mut worker_a = fleet.workers.pop().unwrap().process;

    let client = setup.client();
    let id = client.create_export(&setup.request(TO)).await.unwrap();
    wait_until_rendering(&client, setup.meter, &id).await;

    proxy.cut();
    let outage = Instant::now();
    let (down, _) = wait_readyz(setup.port, 503).await;
    assert_eq!(down["data"]["dependencies"]["s3"]["up"], false, "{down}");
    assert_eq!(down["data"]["dependencies"]["broker"]["up"], true, "{down}");
    let (worker_down, _) = wait_readyz(worker_port, 503).await;
    assert_eq!(
        worker_down["dependencies"]["s3"]["up"], false,
        "{worker_down}"
    );
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(outage.elapsed())).await;
    proxy.restore().await.unwrap();
    let back = Instant::now();
    let outage_secs = outage.elapsed().as_secs_f64();
    let (_, ready) = wait_readyz(setup.port, 200).await;
    let progress = seconds_until_progress(&client, setup.meter, &id, back).await;
    eprintln!(
        "FAULT s3 down: endpoint unreachable {outage_secs:.1} s; after it came back the scheduler was ready in {:.1} s \
         and the export rendered its next chunk in {progress:.1} s",
        ready.as_secs_f64()
    );

    let job = client
        .wait(setup.meter, &id, Duration::from_secs(900), |_| {})
        .await
        .unwrap();
    eprintln!(
        "FAULT s3 down: export finished {:.1} s after the endpoint came back",
        back.elapsed().as_secs_f64()
    );
    setup.assert_exact(&job, TO).await;
    assert_next_export_runs(&setup).await;
    assert_running(&mut worker_a, "first worker");
    assert_running(&mut worker_b, "second worker");
    assert_running(&mut fleet.scheduler, "scheduler");
    drop((fleet, worker_a, worker_b, proxy));
    setup.sandbox.stop().await.unwrap();
}

/// Sends SIGTERM, as Kubernetes does to a pod it stops.
async fn terminate(process: &Child) {
    signal(process, "-TERM").await;
}

async fn signal(process: &Child, signal: &str) {
    let pid = process.id().expect("a running process").to_string();
    let status = tokio::process::Command::new("kill")
        .args([signal, &pid])
        .stdin(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_stopped_with_sigterm_mid_export_finishes_its_tasks_and_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let mut setup = Setup::new("fault-sigterm", 13).await;
    let mut fleet = setup.start(&[]).await;
    let mut worker_a = fleet.workers.remove(0).process;

    let client = setup.client();
    let id = client.create_export(&setup.request(TO)).await.unwrap();
    wait_until_rendering(&client, setup.meter, &id).await;
    let signalled = Instant::now();
    terminate(&worker_a).await;
    let status = tokio::time::timeout(Duration::from_secs(120), worker_a.wait())
        .await
        .expect("the worker did not stop within 2 minutes of SIGTERM")
        .unwrap();
    let stopped = signalled.elapsed().as_secs_f64();
    assert!(
        status.success(),
        "the worker exited with {status} on SIGTERM"
    );
    // A replacement pod starts, as a Deployment would.
    let _replacement = fleet.spawn_worker();
    let job = client
        .wait(setup.meter, &id, Duration::from_secs(900), |_| {})
        .await
        .unwrap();
    eprintln!(
        "FAULT worker SIGTERM: the worker finished its running tasks and exited 0 in {stopped:.1} s; \
         export finished {:.1} s after the signal",
        signalled.elapsed().as_secs_f64()
    );
    setup.assert_exact(&job, TO).await;
    assert_next_export_runs(&setup).await;
    setup.sandbox.stop().await.unwrap();
}

//! The metrics ops alert on, scraped from real `auditx scheduler` and
//! `auditx worker` processes (real RabbitMQ and Redis, S3 over HTTP with
//! SigV4) after an export: job gauges counted from the state store while
//! the export waits PENDING and after it finished, HTTP requests by route
//! template, rows and bytes rendered and uploaded equal to what the export
//! holds. The roles run without S3 keys in their configuration: AWS's
//! default credential chain finds them in the environment. Every metric
//! the Prometheus rules (`deploy/prometheus/auditx-rules.yaml`) and
//! `docs/metrics.md` name must be one the processes export.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use auditx::client::{ApiClient, ExportRequest};
use auditx_lake::audit_trail::generate::GenerateSpec;
use auditx_proto::{MeterId, TenantId};
use auditx_scheduler::export::jobs::tenant_lease_key;
use auditx_tests::processes::terminate;
use auditx_tests::{Fleet, Sandbox, SandboxOptions};
use chrono::DateTime;

const FROM: &str = "2025-07-01T00:00:00Z";
const TO: &str = "2025-07-04T00:00:00Z";
const TENANT: &str = "metered";
const METER: i64 = 4;

/// One scrape: `name{labels}` → value, plus the metric names of the
/// `# TYPE` lines with their types.
struct Scrape {
    samples: BTreeMap<String, f64>,
    types: BTreeMap<String, String>,
    text: String,
}

impl Scrape {
    async fn of(url: &str) -> Self {
        let text = reqwest::get(url).await.unwrap().text().await.unwrap();
        let mut samples = BTreeMap::new();
        let mut types = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
                types.insert(name.to_owned(), kind.to_owned());
            } else if !line.starts_with('#') && !line.is_empty() {
                let (series, value) = line.rsplit_once(' ').unwrap();
                samples.insert(series.to_owned(), value.parse().unwrap());
            }
        }
        Self {
            samples,
            types,
            text,
        }
    }

    /// The value of a series, written as the exposition format does
    /// (labels in the order the metric declares them).
    fn value(&self, series: &str) -> Option<f64> {
        self.samples.get(series).copied()
    }

    fn expect(&self, series: &str) -> f64 {
        self.value(series)
            .unwrap_or_else(|| panic!("no series {series} in:\n{}", self.text))
    }
}

async fn scrape_until(url: &str, what: &str, ok: impl Fn(&Scrape) -> bool) -> Scrape {
    for _ in 0..150 {
        let scrape = Scrape::of(url).await;
        if ok(&scrape) {
            return scrape;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "{what}: not seen in {url} within 30 s:\n{}",
        Scrape::of(url).await.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processes_export_the_metrics_ops_alert_on_with_plausible_values() {
    let sandbox = Sandbox::start(SandboxOptions {
        start_roles: false,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let spec = GenerateSpec {
        tenant: TenantId::from(TENANT),
        meter: MeterId(METER),
        rows: 8_000,
        from_ms: DateTime::parse_from_rfc3339(FROM)
            .unwrap()
            .timestamp_millis(),
        to_ms: DateTime::parse_from_rfc3339(TO).unwrap().timestamp_millis(),
        error_rate: 0.01,
        seed: 11,
    };
    sandbox.generate(&spec, 400_000).await.unwrap();

    // No S3 keys in the file: the roles sign with AWS's default chain,
    // which finds the keys in the environment.
    let s3 = &sandbox.config.s3;
    let mut fleet = Fleet::distributed(&sandbox)
        .rows(3_000, 1_500)
        .workers(1)
        .without_s3_keys()
        .env("AWS_ACCESS_KEY_ID", &s3.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &s3.secret_access_key)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .start()
        .await;
    let mut worker = fleet.workers.remove(0);
    let api = fleet.api.clone();
    let scheduler_metrics = format!("{api}/metrics");
    let worker_metrics = format!("{}/metrics", worker.url());

    // Another holder of the tenant's lease keeps the export PENDING.
    let state = &sandbox.backends.state;
    let held = state
        .try_acquire_lease(
            &tenant_lease_key(&TenantId::from(TENANT)),
            "metrics-test",
            Duration::from_secs(120),
        )
        .await
        .unwrap()
        .expect("the tenant's lease is free");
    let client = ApiClient::new(&api, &sandbox.token(TENANT));
    let request = ExportRequest {
        meter_id: METER,
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        query_from_time: FROM.into(),
        query_to_time: TO.into(),
        ..ExportRequest::default()
    };
    let request_id = client.create_export(&request).await.unwrap();
    let pending = scrape_until(
        &scheduler_metrics,
        "a PENDING export waiting over 1 s",
        |s| {
            s.value(r#"auditx_scheduler_jobs{kind="export",status="PENDING"}"#) == Some(1.0)
                && s.value(r#"auditx_scheduler_oldest_pending_seconds{kind="export"}"#)
                    .is_some_and(|age| age >= 1.0)
        },
    )
    .await;
    assert_eq!(
        pending.expect(r#"auditx_scheduler_jobs{kind="export",status="RUNNING"}"#),
        0.0
    );
    assert_eq!(
        pending.expect(&format!(
            r#"auditx_scheduler_tenant_queue_length{{kind="export",tenant="{TENANT}"}}"#
        )),
        1.0
    );
    state.release_lease(&held).await.unwrap();

    let job = client
        .wait(METER, &request_id, Duration::from_secs(300), |_| {})
        .await
        .unwrap();
    assert_eq!(job["status"], "FINISHED", "{job}");
    let count = job["count"].as_u64().unwrap();
    let files = job["fileList"].as_array().unwrap();
    assert!(files.len() >= 2, "{job}");
    // Presigned URLs signed with the credentials of the default chain work.
    let mut file_bytes = 0;
    for key in files {
        let url = client.presigned_url(key.as_str().unwrap()).await.unwrap();
        file_bytes += sandbox.download(&url).await.unwrap().len() as u64;
    }

    let scheduler_scrape = scrape_until(&scheduler_metrics, "no unsettled export", |s| {
        s.value(r#"auditx_scheduler_jobs{kind="export",status="PENDING"}"#) == Some(0.0)
            && s.value(r#"auditx_scheduler_jobs{kind="export",status="RUNNING"}"#) == Some(0.0)
    })
    .await;
    assert!(
        !scheduler_scrape
            .text
            .contains(&format!("tenant=\"{TENANT}\"")),
        "an empty tenant queue has no series"
    );
    assert_eq!(
        scheduler_scrape.expect(r#"auditx_scheduler_job_transitions_total{status="FINISHED"}"#),
        1.0
    );
    assert!(
        scheduler_scrape.expect(r#"auditx_scheduler_lease_acquisitions_total{kind="export"}"#)
            >= 1.0
    );
    assert!(scheduler_scrape.expect(r#"auditx_scheduler_lock_wait_seconds_count"#) >= 1.0);
    assert!(scheduler_scrape.expect(r#"auditx_scheduler_lock_wait_seconds_sum"#) >= 1.0);
    // HTTP requests by route template, never by raw path.
    assert_eq!(
        scheduler_scrape.expect(
            r#"auditx_http_requests_total{method="POST",route="/meters/{meterId}/auditTrail/export",status="200"}"#
        ),
        1.0
    );
    assert!(
        scheduler_scrape.expect(
            r#"auditx_http_requests_total{method="GET",route="/meters/{meterId}/auditTrail/export/{requestId}",status="200"}"#
        ) >= 1.0
    );
    assert!(
        scheduler_scrape.expect(
            r#"auditx_http_request_duration_seconds_count{method="GET",route="/meters/{meterId}/auditTrail/export/{requestId}"}"#
        ) >= 1.0
    );
    assert!(
        !scheduler_scrape.text.contains(&request_id),
        "a request id became a label value"
    );
    assert_eq!(
        scheduler_scrape.expect(r#"auditx_scheduler_dead_lettered_tasks_total{kind="render"}"#),
        0.0
    );

    let worker_scrape = Scrape::of(&worker_metrics).await;
    assert_eq!(
        worker_scrape.expect("auditx_worker_rows_rendered_total"),
        count as f64
    );
    assert_eq!(
        worker_scrape.expect("auditx_worker_rows_assembled_total"),
        count as f64
    );
    assert_eq!(
        worker_scrape.expect("auditx_worker_bytes_assembled_total"),
        file_bytes as f64
    );
    assert!(worker_scrape.expect("auditx_worker_bytes_rendered_total") > 0.0);
    assert_eq!(worker_scrape.expect("auditx_worker_tasks_in_flight"), 0.0);
    let chunks = job["progress"]["chunksTotal"].as_f64().unwrap();
    assert_eq!(
        worker_scrape.expect(r#"auditx_worker_tasks_total{kind="render",outcome="succeeded"}"#),
        chunks
    );
    assert_eq!(
        worker_scrape.expect(r#"auditx_worker_task_duration_seconds_count{kind="render"}"#),
        chunks
    );
    assert_eq!(
        worker_scrape.expect(r#"auditx_s3_errors_total{kind="permanent"}"#),
        0.0
    );
    assert!(worker_scrape.value("auditx_s3_retries_total").is_some());
    assert!(worker_scrape
        .value(r#"auditx_rabbitmq_errors_total{kind="unavailable"}"#)
        .is_some());

    // Every metric the rules and the docs name is exported, and the docs
    // list every metric exported.
    // (Tenant queue series exist only while a queue is not empty: take the
    // names of the scrape made while the export waited too.)
    let mut exported: BTreeMap<String, String> = pending.types.clone();
    exported.extend(scheduler_scrape.types.clone());
    exported.extend(worker_scrape.types.clone());
    let exported: BTreeMap<String, String> = exported
        .into_iter()
        .filter(|(name, _)| name.starts_with("auditx_"))
        .collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let rules = std::fs::read_to_string(root.join("deploy/prometheus/auditx-rules.yaml")).unwrap();
    let in_rules = metric_names(&rules, &exported, &[]);
    assert!(in_rules.len() >= 8, "{in_rules:?}");
    let docs = std::fs::read_to_string(root.join("docs/metrics.md")).unwrap();
    // The embedded endpoint's counter is served by `standalone` and
    // `auditx s3` only.
    let in_docs = metric_names(&docs, &exported, &["auditx_embedded_s3_rejected_total"]);
    for name in exported.keys() {
        assert!(
            in_docs.contains(name),
            "docs/metrics.md does not list {name}"
        );
    }

    assert!(terminate(&mut fleet.scheduler, Duration::from_secs(60))
        .await
        .success());
    assert!(terminate(&mut worker.process, Duration::from_secs(60))
        .await
        .success());
    sandbox.stop().await.unwrap();
}

/// The `auditx_*` metric names in `text`, each checked to be `exported`
/// (a histogram's `_bucket`, `_sum` and `_count` series name it too).
fn metric_names(
    text: &str,
    exported: &BTreeMap<String, String>,
    elsewhere: &[&str],
) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("auditx_") {
        let token: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + token.len()..];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let base = token.strip_suffix(suffix)?;
                (exported.get(base).map(String::as_str) == Some("histogram")).then_some(base)
            })
            .unwrap_or(&token);
        if elsewhere.contains(&base) {
            continue;
        }
        assert!(
            exported.contains_key(base),
            "{token} is named but not exported; exported: {:?}",
            exported.keys()
        );
        names.insert(base.to_owned());
    }
    names
}

//! Traces reach a real OTLP/HTTP collector from every process: an
//! `auditx scheduler` and two `auditx worker` processes (real RabbitMQ and
//! Redis, S3 over HTTP) export spans to a receiver inside the test, which
//! decodes the protobuf the exporter sends. One export and one data query
//! each make one trace whose root is the API request's span; the spans are
//! flushed when the processes get SIGTERM.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use auditx::client::ExportRequest;
use auditx_lake::audit_trail::generate::GenerateSpec;
use auditx_proto::{MeterId, TenantId};
use auditx_tests::otlp::{OtlpReceiver, ReceivedSpan};
use auditx_tests::processes::terminate;
use auditx_tests::{Fleet, Sandbox, SandboxOptions};
use chrono::DateTime;
use serde_json::Value;

const FROM: &str = "2025-07-01T00:00:00Z";
const TO: &str = "2025-07-04T00:00:00Z";
const TENANT: &str = "traced";
const METER: i64 = 3;
const TRACK_ID: &str = "otlp-test-track-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spans_of_a_scheduler_and_two_workers_reach_the_collector_as_one_trace_per_job() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let sandbox = Sandbox::start(SandboxOptions {
        start_roles: false,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let spec = GenerateSpec {
        tenant: TenantId::from(TENANT),
        meter: MeterId(METER),
        rows: 12_000,
        from_ms: DateTime::parse_from_rfc3339(FROM)
            .unwrap()
            .timestamp_millis(),
        to_ms: DateTime::parse_from_rfc3339(TO).unwrap().timestamp_millis(),
        error_rate: 0.01,
        seed: 7,
    };
    sandbox.generate(&spec, 400_000).await.unwrap();

    // Several chunks and several files: render and assemble tasks for both
    // workers. Logs at warn (tracing must not depend on the log level); the
    // batch processor would wait 10 minutes, so only the flush at SIGTERM
    // can deliver the spans in time.
    let mut fleet = Fleet::distributed(&sandbox)
        .rows(4_000, 1_500)
        .workers(2)
        .env("AUDITX_TELEMETRY__OTLP_ENDPOINT", receiver.endpoint())
        .env("AUDITX_TELEMETRY__LOG_LEVEL", "warn")
        .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
        .start()
        .await;
    let api = fleet.api.clone();
    let token = sandbox.token(TENANT);
    let http = reqwest::Client::new();

    // An export with a Track-Id.
    let request = ExportRequest {
        meter_id: METER,
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        query_from_time: FROM.into(),
        query_to_time: TO.into(),
        ..ExportRequest::default()
    };
    let created: Value = http
        .post(format!("{api}/meters/{METER}/auditTrail/export"))
        .bearer_auth(&token)
        .header("Zuora-Track-Id", TRACK_ID)
        .query(&[
            ("exportType", "SAMPLE"),
            ("runType", "NORMAL"),
            ("queryFromTime", FROM),
            ("queryToTime", TO),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let request_id = created["data"]["requestId"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned();
    let client = auditx::client::ApiClient::new(&api, &token);
    let job = client
        .wait(
            request.meter_id,
            &request_id,
            Duration::from_secs(300),
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(job["status"], "FINISHED", "{job}");
    let files = job["fileList"].as_array().unwrap().len();
    assert!(files >= 2, "{job}");

    // A data query over a table ingested through the API.
    let ingested = http
        .post(format!("{api}/audit/tables/contact/rows"))
        .bearer_auth(&token)
        .header("content-type", "application/x-ndjson")
        .body(
            std::fs::read(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../lake/tests/fixtures/seed/contact.ndjson"),
            )
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(ingested.status().is_success(), "{ingested:?}");
    let query = client
        .submit_query("SELECT count(*) AS n FROM contact", "csv", "none")
        .await
        .unwrap();
    let query_id = query["id"].as_str().unwrap().to_owned();
    let query = client
        .wait_query(&query_id, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(query["queryStatus"], "completed", "{query}");

    // SIGTERM: each process flushes its spans on the way out.
    assert!(terminate(&mut fleet.scheduler, Duration::from_secs(60))
        .await
        .success());
    for worker in &mut fleet.workers {
        assert!(terminate(&mut worker.process, Duration::from_secs(60))
            .await
            .success());
    }
    let spans = receiver.spans();

    // Three processes sent spans, each with its own instance id and role.
    let mut roles: BTreeMap<String, String> = BTreeMap::new();
    for span in &spans {
        assert_eq!(
            span.resource.get("service.name").map(String::as_str),
            Some("auditx")
        );
        let instance = span.resource["service.instance.id"].clone();
        roles.insert(instance, span.resource["auditx.role"].clone());
    }
    let mut role_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for role in roles.values() {
        *role_counts.entry(role.as_str()).or_default() += 1;
    }
    assert_eq!(
        role_counts,
        BTreeMap::from([("scheduler", 1), ("worker", 2)]),
        "{roles:?}"
    );

    // The export: one trace under the create call.
    let root = only(&spans, |s| {
        s.name == "http.request" && s.attribute("request_id") == Some(request_id.as_str())
    });
    assert_eq!(
        root.parent_span_id, "",
        "the create call's span is the root"
    );
    assert_eq!(root.attribute("track_id"), Some(TRACK_ID));
    assert_eq!(root.attribute("tenant"), Some(TENANT));
    assert_eq!(root.attribute("meter"), Some("3"));
    let trace = trace_under(&spans, root);
    let names = count_names(&trace);
    for name in [
        "scheduler.job",
        "scheduler.plan",
        "scheduler.dispatch",
        "scheduler.assemble",
        "scheduler.complete_file",
        "scheduler.complete",
        "scheduler.settle",
        "scheduler.record_report",
        "worker.render_chunk",
        "worker.assemble_file",
    ] {
        assert!(
            names.contains_key(name),
            "no {name} span in the export's trace: {names:?}"
        );
    }
    let chunks = job["progress"]["chunksTotal"].as_u64().unwrap_or(0) as usize;
    assert!(chunks >= 2, "{job}");
    assert!(names["worker.render_chunk"] >= chunks, "{names:?}");
    assert!(names["worker.assemble_file"] >= files, "{names:?}");
    let by_id: BTreeMap<&str, &ReceivedSpan> =
        trace.iter().map(|s| (s.span_id.as_str(), *s)).collect();
    for span in &trace {
        let parent = by_id.get(span.parent_span_id.as_str());
        match span.name.as_str() {
            "worker.render_chunk" => {
                assert_eq!(parent.map(|p| p.name.as_str()), Some("scheduler.dispatch"));
                assert_eq!(span.resource["auditx.role"], "worker");
                assert_eq!(span.attribute("request_id"), Some(request_id.as_str()));
                assert_eq!(span.attribute("tenant"), Some(TENANT));
                assert_eq!(span.attribute("meter"), Some("3"));
                assert_eq!(span.attribute("track_id"), Some(TRACK_ID));
            }
            "worker.assemble_file" => {
                assert_eq!(parent.map(|p| p.name.as_str()), Some("scheduler.assemble"));
                assert_eq!(span.attribute("track_id"), Some(TRACK_ID));
            }
            "scheduler.record_report" => {
                let parent = parent.map(|p| p.name.as_str());
                assert!(
                    matches!(parent, Some("worker.render_chunk" | "worker.assemble_file")),
                    "a report continues its task's span, not {parent:?}"
                );
            }
            "scheduler.job" => {
                assert_eq!(span.parent_span_id, root.span_id);
                assert_eq!(span.attribute("request_id"), Some(request_id.as_str()));
                assert_eq!(span.attribute("tenant"), Some(TENANT));
                assert_eq!(span.attribute("meter"), Some("3"));
                assert_eq!(span.attribute("track_id"), Some(TRACK_ID));
            }
            _ => {}
        }
    }
    let workers_seen: BTreeSet<&str> = trace
        .iter()
        .filter(|s| s.name.starts_with("worker."))
        .map(|s| s.resource["service.instance.id"].as_str())
        .collect();
    assert_eq!(
        workers_seen.len(),
        2,
        "both workers ran tasks of the export"
    );

    // The data query: its own trace under the submit call.
    let root = only(&spans, |s| {
        s.name == "http.request" && s.attribute("query_id") == Some(query_id.as_str())
    });
    assert_eq!(root.parent_span_id, "");
    assert_eq!(root.attribute("tenant"), Some(TENANT));
    let trace = trace_under(&spans, root);
    let names = count_names(&trace);
    for name in [
        "scheduler.query",
        "worker.query",
        "scheduler.record_report",
        "scheduler.query_settle",
    ] {
        assert!(
            names.contains_key(name),
            "no {name} span in the query's trace: {names:?}"
        );
    }
    sandbox.stop().await.unwrap();
}

/// The one span matching `pick`.
fn only(spans: &[ReceivedSpan], pick: impl Fn(&ReceivedSpan) -> bool) -> &ReceivedSpan {
    let found: Vec<&ReceivedSpan> = spans.iter().filter(|s| pick(s)).collect();
    assert_eq!(
        found.len(),
        1,
        "{} matching spans among {}: {found:?}",
        found.len(),
        spans.len()
    );
    found[0]
}

/// Every span of `root`'s trace, after checking that each one's parent
/// chain, through spans that all arrived, ends at `root`.
fn trace_under<'a>(spans: &'a [ReceivedSpan], root: &ReceivedSpan) -> Vec<&'a ReceivedSpan> {
    let trace: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.trace_id == root.trace_id)
        .collect();
    let by_id: BTreeMap<&str, &ReceivedSpan> =
        trace.iter().map(|s| (s.span_id.as_str(), *s)).collect();
    for span in &trace {
        let mut current = *span;
        let mut hops = 0;
        while current.span_id != root.span_id {
            current = by_id
                .get(current.parent_span_id.as_str())
                .unwrap_or_else(|| {
                    panic!(
                        "{} ({}) has a parent that never arrived: {current:?}",
                        span.name, span.span_id
                    )
                });
            hops += 1;
            assert!(hops < 100, "parent cycle at {span:?}");
        }
    }
    trace
}

fn count_names<'a>(trace: &[&'a ReceivedSpan]) -> BTreeMap<&'a str, usize> {
    let mut names = BTreeMap::new();
    for span in trace {
        *names.entry(span.name.as_str()).or_default() += 1;
    }
    names
}

//! The health and metrics endpoint as Kubernetes and Prometheus see it:
//! `/readyz` names every dependency and answers 503 while one is down.

mod support;

use std::sync::Arc;
use std::time::Duration;

use auditx_common::queue::MemoryQueue;
use auditx_common::readiness::Dependencies;
use auditx_common::state::MemoryStore;
use auditx_proto::Topology;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn probes_answer_and_metrics_are_exported() -> anyhow::Result<()> {
    let s3 = support::start_s3().await?;
    let topology = Topology::new("worker-health");
    let dependencies = Dependencies {
        queue: Arc::new(MemoryQueue::new(topology.clone(), 5)),
        queue_name: topology.tasks(),
        state: Arc::new(MemoryStore::new()),
        store: s3.store.clone(),
        bucket: s3.config.export_bucket.clone(),
    };
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(auditx_worker::serve_health(
        addr,
        dependencies,
        shutdown.clone(),
    ));
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("http://{addr}{path}")).send();

    let mut healthz = get("/healthz").await;
    for _ in 0..50 {
        if healthz.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        healthz = get("/healthz").await;
    }
    let healthz = healthz?;
    assert_eq!(healthz.status(), 200);
    assert_eq!(healthz.text().await?, "ok");
    let ready = get("/readyz").await?;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await?;
    assert_eq!(body["ready"], true, "{body}");
    for name in ["broker", "stateStore", "s3"] {
        assert_eq!(body["dependencies"][name]["up"], true, "{body}");
    }

    let metrics = get("/metrics").await?;
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await?;
    for name in [
        "auditx_worker_rows_rendered_total",
        "auditx_worker_bytes_rendered_total",
        "auditx_worker_bytes_assembled_total",
        "auditx_worker_tasks_in_flight",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }

    // S3 goes away: the worker is not ready, and says it is S3.
    drop(s3);
    let ready = get("/readyz").await?;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await?;
    assert_eq!(body["ready"], false, "{body}");
    assert_eq!(body["dependencies"]["s3"]["up"], false, "{body}");
    assert!(body["dependencies"]["s3"]["error"].is_string(), "{body}");
    assert_eq!(body["dependencies"]["broker"]["up"], true, "{body}");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server).await???;
    Ok(())
}

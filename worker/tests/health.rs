//! The health and metrics endpoint as Kubernetes and Prometheus see it.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn probes_answer_and_metrics_are_exported() -> anyhow::Result<()> {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(auditx_worker::serve_health(addr, shutdown.clone()));
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
    assert_eq!(get("/readyz").await?.status(), 200);

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

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server).await???;
    Ok(())
}

//! Anonymous requests to the embedded S3 endpoint of a real `auditx
//! standalone` process are refused without flooding its log: no ERROR line
//! for them, and each counted on the API's `/metrics`.

use std::time::Duration;

use auditx_tests::processes::collect_lines;
use auditx_tests::Fleet;

const REJECTED: &str = "auditx_embedded_s3_rejected_total";

fn counter(metrics: &str) -> Option<u64> {
    metrics
        .lines()
        .find(|line| line.starts_with(REJECTED))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_s3_requests_are_counted_not_logged_as_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Fleet::standalone(dir.path())
        .env_remove("RUST_LOG")
        .env("AUDITX_TELEMETRY__LOG_LEVEL", "info")
        .env("AUDITX_TELEMETRY__LOG_FORMAT", "json")
        .stderr_piped()
        .spawn();
    let (log, reader) = collect_lines(server.scheduler.stderr.take().unwrap());
    server.wait_healthy().await;
    let (api, s3) = (server.port, server.s3_port.unwrap());
    let http = reqwest::Client::new();
    let metrics_url = format!("http://127.0.0.1:{api}/metrics");
    let metrics = http.get(&metrics_url).send().await.unwrap();
    let before = counter(&metrics.text().await.unwrap());
    assert_eq!(before, Some(0), "the counter is shown from the start");
    let logged_before = log.lock().unwrap().len();

    for i in 0..50 {
        let url = match i % 3 {
            0 => format!("http://127.0.0.1:{s3}/auditx-exports/some/key-{i}.csv"),
            1 => format!("http://127.0.0.1:{s3}/auditx-lake?list-type=2"),
            _ => format!("http://127.0.0.1:{s3}/"),
        };
        let response = http.get(url).send().await.unwrap();
        assert_eq!(response.status(), 403, "anonymous request {i}");
    }
    let metrics = http.get(&metrics_url).send().await.unwrap();
    assert_eq!(counter(&metrics.text().await.unwrap()), Some(50));

    tokio::time::sleep(Duration::from_millis(500)).await;
    server.scheduler.kill().await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
    let log = log.lock().unwrap();
    // The capture works: start-up lines at info are there.
    assert!(
        log[..logged_before]
            .iter()
            .any(|line| line.contains("\"level\":\"INFO\"")),
        "no info line captured: {log:?}"
    );
    let errors: Vec<&String> = log
        .iter()
        .filter(|line| line.contains("\"level\":\"ERROR\""))
        .collect();
    assert!(errors.is_empty(), "ERROR lines: {errors:?}");
}

//! `RUST_LOG` per target on a real `auditx standalone`: a directive that
//! raises one crate to debug shows that crate's debug events — also those
//! logged right after DataFusion, which logs through `log` at debug while
//! planning and whose records the filter turns down (with the log level as
//! a per-layer filter, such a record left a mark that dropped the lake's
//! `query planned` line after it) — and nothing else below the default
//! level.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use auditx_tests::processes::run_auditx;
use auditx_tests::Fleet;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_target_directive_shows_that_targets_debug_events_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    // Files to plan over and prune: DataFusion logs (through `log`, at
    // debug, turned down here) right up to the end of planning.
    run_auditx(&[
        "generate",
        "--data-dir",
        data,
        "--tenant",
        "acme",
        "--table",
        "auditloginevent",
        "--rows",
        "3000",
    ])
    .await;
    let mut server = Fleet::standalone(dir.path())
        .env("RUST_LOG", "warn,auditx_lake=debug")
        .env("AUDITX_TELEMETRY__LOG_FORMAT", "json")
        .stderr_piped()
        .spawn();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut lines = BufReader::new(server.scheduler.stderr.take().unwrap()).lines();
    let reader = tokio::spawn({
        let log = log.clone();
        async move {
            while let Ok(Some(line)) = lines.next_line().await {
                log.lock().unwrap().push(line);
            }
        }
    });
    server.wait_healthy().await;
    let secret = auditx::secrets::jwt_secret(None, dir.path()).unwrap();
    let token = auditx::commands::tools::mint(&secret, "acme", &[], &[], 1).unwrap();
    let client = server.client(&token);
    for _ in 0..2 {
        let job = client
            .submit_query(
                "SELECT count(*) FROM auditloginevent \
                 WHERE timestamp > TIMESTAMP '2030-01-01 00:00:00'",
                "CSV",
                "NONE",
            )
            .await
            .unwrap();
        let job = client
            .wait_query(job["id"].as_str().unwrap(), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(job["queryStatus"], "completed", "{job}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.scheduler.kill().await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
    let log = log.lock().unwrap();
    let planned = log
        .iter()
        .filter(|line| {
            line.contains("\"message\":\"query planned\"")
                && line.contains("\"target\":\"auditx_lake::sql::session\"")
        })
        .count();
    assert_eq!(planned, 2, "one `query planned` line per query: {log:?}");
    let others: Vec<&String> = log
        .iter()
        .filter(|line| {
            (line.contains("\"level\":\"DEBUG\"") || line.contains("\"level\":\"INFO\""))
                && !line.contains("\"target\":\"auditx_lake")
        })
        .collect();
    assert!(others.is_empty(), "below warn outside the lake: {others:?}");
}

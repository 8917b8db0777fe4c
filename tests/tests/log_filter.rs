//! `RUST_LOG` per target on a real `auditx standalone`: a directive that
//! raises one crate to debug shows that crate's debug events — also those
//! logged right after DataFusion, which logs through `log` at debug while
//! planning and whose records the filter turns down (with the log level as
//! a per-layer filter, such a record left a mark that dropped the lake's
//! `query planned` line after it) — and nothing else below the default
//! level.

use std::time::Duration;

use auditx_tests::fleet::completed_query;
use auditx_tests::processes::{collect_lines, generate_table};
use auditx_tests::Fleet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_target_directive_shows_that_targets_debug_events_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    // Files to plan over and prune: DataFusion logs (through `log`, at
    // debug, turned down here) right up to the end of planning.
    generate_table(data, "acme", "auditloginevent", 3000).await;
    let mut server = Fleet::standalone(dir.path())
        .env("RUST_LOG", "warn,auditx_lake=debug")
        .env("AUDITX_TELEMETRY__LOG_FORMAT", "json")
        .stderr_piped()
        .spawn();
    let (log, reader) = collect_lines(server.scheduler.stderr.take().unwrap());
    server.wait_healthy().await;
    let secret = auditx::secrets::jwt_secret(None, dir.path()).unwrap();
    let token = auditx::commands::tools::mint(&secret, "acme", &[], &[], 1).unwrap();
    let client = server.client(&token);
    for _ in 0..2 {
        let sql = "SELECT count(*) FROM auditloginevent \
                   WHERE timestamp > TIMESTAMP '2030-01-01 00:00:00'";
        completed_query(&client, sql).await;
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

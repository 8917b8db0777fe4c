//! The `auditx` binary as a user runs it: `demo`, and `standalone` driven
//! by `generate`, `token` and `export` — all on the embedded default.

use std::time::Duration;

use auditx_tests::expect::{self, HEADER};
use auditx_tests::processes::{auditx_bin, auditx_output, generate_table, run_auditx as run};
use auditx_tests::Fleet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_exports_sample_data_and_shows_where_the_files_are() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let stdout = run(&["demo", "--rows", "20000", "--data-dir", data]).await;
    let file = dir
        .path()
        .join("downloads")
        .join("audit_trail_sample_0001.csv");
    assert!(
        stdout.contains(file.to_str().unwrap()),
        "the demo names its file: {stdout}"
    );
    assert!(
        stdout.contains("eventId,eventTime,sessionId"),
        "the demo shows the first lines: {stdout}"
    );
    let csv = std::fs::read_to_string(&file).unwrap();
    let lines = expect::split_lines(&csv);
    assert_eq!(lines[0], HEADER);
    assert!(
        lines.len() > 15_000,
        "most sample rows are NORMAL SAMPLE rows: {}",
        lines.len()
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("downloads").join("manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["files"][0]["rows"], (lines.len() - 1) as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_serves_exports_to_the_cli_client() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    run(&[
        "generate",
        "--data-dir",
        data,
        "--tenant",
        "acme",
        "--meter",
        "12",
        "--rows",
        "5000",
        "--seed",
        "3",
    ])
    .await;
    generate_table(data, "acme", "auditloginevent", 3000).await;

    let server = Fleet::standalone(data).start().await;

    // A token minted with the secret standalone keeps in its data folder.
    let token = run(&["token", "--data-dir", data, "--tenant", "acme"]).await;
    let out = dir.path().join("out");
    let stdout = tokio::time::timeout(
        Duration::from_secs(120),
        run(&[
            "export",
            "--url",
            &server.api,
            "--token",
            token.trim(),
            "--meter",
            "12",
            "--export-type",
            "ERROR",
            "--from",
            "2025-07-01T00:00:00Z",
            "--to",
            "2025-07-08T00:00:00Z",
            "--out",
            out.to_str().unwrap(),
        ]),
    )
    .await
    .expect("the export ends within 2 minutes");
    assert!(stdout.contains("finished"), "{stdout}");
    let csv = std::fs::read_to_string(out.join("audit_trail_error_0001.csv")).unwrap();
    let lines = expect::split_lines(&csv);
    assert_eq!(lines[0], HEADER);
    assert!(lines.len() > 1, "the 2% error rate yields some ERROR rows");
    assert!(
        lines[1..].iter().all(|l| l.contains(",NORMAL,")),
        "only NORMAL runs are exported"
    );

    // The generated audit table answers data queries on the same server.
    let client = server.client(token.trim());
    let job = client
        .submit_query(
            "SELECT count(*) AS logins, count(DISTINCT id) AS ids, \
             count(createdbyid) + count(tokenid) + count(sequencenumber) + count(year) \
             + count(month) + count(day) AS filled FROM auditloginevent",
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
    let url = job["dataFile"].as_str().unwrap();
    let result = reqwest::get(url).await.unwrap().text().await.unwrap();
    // `generate --table` fills the docs' columns too.
    assert_eq!(result, "logins,ids,filled\n3000,3000,18000\n");
}

/// A taken port is said as such, with the flag that picks another, and no
/// backtrace even when the user asked Rust for backtraces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_on_a_taken_port_names_the_flag_that_picks_another() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let backtrace = [("RUST_BACKTRACE", "1".to_owned())];

    let api = auditx_output(
        &[
            "standalone",
            "--data-dir",
            data,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--s3-listen",
            "127.0.0.1:0",
        ],
        &backtrace,
    )
    .await;
    let stderr = String::from_utf8_lossy(&api.stderr);
    assert!(!api.status.success());
    assert!(
        stderr.contains(&format!("127.0.0.1:{port} is already in use"))
            && stderr.contains("--listen"),
        "{stderr}"
    );
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");

    let s3 = auditx_output(
        &[
            "standalone",
            "--data-dir",
            data,
            "--listen",
            "127.0.0.1:0",
            "--s3-listen",
            &format!("127.0.0.1:{port}"),
        ],
        &backtrace,
    )
    .await;
    let stderr = String::from_utf8_lossy(&s3.stderr);
    assert!(!s3.status.success());
    assert!(
        stderr.contains("already in use") && stderr.contains("--s3-listen"),
        "{stderr}"
    );
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
}

/// Logs are JSON when standard error is a pipe (as under Kubernetes) and
/// text for a person on a terminal (`script` gives the process one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_through_a_pipe_and_text_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    // The run fails at once on the taken port, after its first log lines.
    let args = format!(
        "{} standalone --data-dir {} --listen 127.0.0.1:{port} --s3-listen 127.0.0.1:0",
        auditx_bin().display(),
        data.display()
    );
    let log_level = [("AUDITX_TELEMETRY__LOG_LEVEL", "debug".to_owned())];

    let piped = auditx_output(
        &[
            "standalone",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--s3-listen",
            "127.0.0.1:0",
        ],
        &log_level,
    )
    .await;
    let stderr = String::from_utf8_lossy(&piped.stderr);
    let logs: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("auditx:"))
        .collect();
    assert!(!logs.is_empty(), "debug logs were written: {stderr}");
    for line in &logs {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("a JSON log line through a pipe ({e}): {line}"));
    }

    let tty = tokio::process::Command::new("script")
        .args(["-qec", &args, "/dev/null"])
        .env("AUDITX_TELEMETRY__LOG_LEVEL", "debug")
        .env_remove("AUDITX_TELEMETRY__LOG_FORMAT")
        .output()
        .await
        .expect("script (util-linux) runs the binary on a terminal");
    let out = String::from_utf8_lossy(&tty.stdout);
    let lines: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("auditx:"))
        .collect();
    assert!(!lines.is_empty(), "debug logs were written: {out}");
    assert!(
        lines.iter().all(|l| !l.starts_with('{')),
        "text logs on a terminal: {out}"
    );
    assert!(out.contains("DEBUG") || out.contains("INFO"), "{out}");
}

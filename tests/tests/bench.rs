//! The bench (`auditx-bench`, the bench/ crate) as a user runs it, at a
//! small size: it generates a lake with `auditx generate`, runs the product
//! as real `auditx` processes (embedded, and distributed on the real
//! RabbitMQ and Redis), runs the pinned DuckDB (from PyPI, in the bench's
//! own virtualenv) on the same Parquet files and finds the same bytes. The
//! figures are printed, not asserted: the bench measures, CI checks that
//! what it measures is right.

use auditx_tests::processes::{auditx_bin, bench_bin};
use tokio::process::Command;

/// The DuckDB the bench pins (bench/src/duckdb.rs).
const PINNED_DUCKDB: &str = "duckdb 1.4.2";

/// Runs the bench to the end with `env`; returns its stdout, panics with
/// both outputs if it fails.
async fn bench(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = Command::new(bench_bin())
        .arg("--auditx")
        .arg(auditx_bin())
        .args(args)
        .env_remove("AUDITX_JWT_SECRET")
        .env("AUDITX_TELEMETRY__LOG_LEVEL", "warn")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "auditx-bench {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The line of the report starting with `prefix`.
fn line<'a>(report: &'a str, prefix: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.trim_start().starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bench_exports_like_duckdb_embedded_and_distributed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bench");
    let data = data.to_str().unwrap();
    // Another DuckDB importable by the machine's Python (here through
    // PYTHONPATH): the bench must still run its pinned one.
    let other = dir.path().join("other-python");
    std::fs::create_dir_all(other.join("duckdb")).unwrap();
    std::fs::write(other.join("duckdb/__init__.py"), "__version__ = '2.0.1'\n").unwrap();
    let other = other.to_str().unwrap();
    let embedded = bench(
        &[
            "--rows",
            "40000",
            "--data-dir",
            data,
            "--latency-runs",
            "3",
            "--load-secs",
            "1",
            "--load-connections",
            "4",
            "--rounds",
            "2",
        ],
        &[("PYTHONPATH", other)],
    )
    .await;
    assert!(
        embedded.contains("generated the lake (40000 + 1000 rows)"),
        "{embedded}"
    );
    let identical = line(&embedded, "bytes: identical");
    // About 91 % of generated rows are NORMAL SAMPLE rows.
    let rows: u64 = identical
        .split_whitespace()
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    assert!((30_000..40_000).contains(&rows), "{identical}");
    assert!(line(&embedded, "auditx embedded, 2 worker loop(s)").contains(&rows.to_string()));
    assert!(line(&embedded, PINNED_DUCKDB).contains(&rows.to_string()));
    assert!(line(&embedded, "auditx embedded, 2 worker loop(s):").contains("standalone"));
    assert!(line(&embedded, "ratio auditx embedded").contains('×'));
    // Two rounds: each with its own times and ratio, then their median.
    assert!(line(&embedded, "round 1: auditx embedded").contains("ratio"));
    assert!(line(&embedded, "round 2: auditx embedded").contains("ratio"));
    assert!(line(
        &embedded,
        "median ratio auditx embedded, 2 worker loop(s) / duckdb over 2 rounds"
    )
    .contains('×'));
    assert!(line(&embedded, "latency, 1000-row export").contains("(3 runs): median"));
    assert!(
        line(&embedded, "latency, 1000-row data query submit → completed")
            .contains("(3 runs): median")
    );
    assert!(line(&embedded, "create-export calls, 4 connections").contains("req/s accepted"));
    assert!(line(&embedded, "entries, first page of 100").contains("pages of 500 walked"));
    // The summary's total is checked against the export by the bench itself.
    assert!(line(&embedded, "summary by operatorId of the week")
        .contains(&format!("total {rows} (= the export's rows)")));

    // The same lake again, distributed: reused, one and two workers.
    let distributed = bench(
        &[
            "--rows",
            "40000",
            "--data-dir",
            data,
            "--distributed",
            "--workers",
            "1,2",
            "--latency-runs",
            "2",
            "--load-secs",
            "0",
        ],
        &[],
    )
    .await;
    assert!(
        distributed.contains("reusing the lake of 40000 rows"),
        "{distributed}"
    );
    assert_eq!(line(&distributed, "bytes: identical"), identical);
    let peaks = line(&distributed, "auditx distributed, 2 worker process(es):");
    for process in ["s3 endpoint", "scheduler", "worker 1", "worker 2"] {
        assert!(peaks.contains(process), "{peaks}");
    }
    assert!(line(
        &distributed,
        "latency, 1000-row data query submit → completed"
    )
    .contains("(2 runs): median"));
    assert!(line(&distributed, "scaling: 2 workers vs 1:").contains("faster"));
    // CPU per render chunk, for the driver's cost to be compared across sizes.
    let cpu = line(&distributed, "auditx distributed, 1 worker process(es), ");
    let chunks: u64 = cpu
        .split(", ")
        .nth(2)
        .and_then(|c| c.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no chunk count in {cpu}"));
    assert!(chunks > 0, "{cpu}");
    assert!(
        cpu.contains("scheduler ") && cpu.contains("ms/chunk)"),
        "{cpu}"
    );
}

/// Every format against DuckDB writing the same format from the same
/// files: CSV byte for byte, JSON Lines line by line parsed, Parquet
/// decoded (bench/src/rows.rs). The bench exits non-zero, failing this
/// test, when the rows differ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bench_finds_duckdbs_rows_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bench");
    let data = data.to_str().unwrap();
    // One round of a 20,000-row export as `format`, with `more` arguments.
    let one_round = |format: &'static str, more: &'static [&'static str]| {
        let mut args = vec!["--rows", "20000", "--data-dir", data, "--format", format];
        args.extend(["--rounds", "1", "--latency-runs", "0", "--load-secs", "0"]);
        args.extend(more);
        async move { bench(&args, &[]).await }
    };
    let mut counts = Vec::new();
    for (format, identical) in [
        ("csv", "bytes: identical"),
        ("jsonl", "rows: identical (JSON lines parsed)"),
        ("parquet", "rows: identical (Parquet decoded)"),
    ] {
        let report = one_round(format, &[]).await;
        assert!(
            line(&report, "== auditx bench").contains(&format!(" as {format},")),
            "{report}"
        );
        let same = line(&report, identical);
        let rows: u64 = same
            .split(" — ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no row count in {same}"));
        assert!((15_000..20_000).contains(&rows), "{same}");
        assert!(line(&report, PINNED_DUCKDB).contains(&rows.to_string()));
        counts.push(rows);
    }
    assert!(counts.windows(2).all(|w| w[0] == w[1]), "{counts:?}");

    // Without DuckDB a Parquet export's rows are counted from its footers
    // (the summary check needs them): the same count as decoded above.
    let report = one_round("parquet", &["--no-duckdb"]).await;
    let ours = line(&report, "auditx embedded");
    assert_eq!(
        ours.split_whitespace().last(),
        Some(counts[0].to_string().as_str()),
        "{report}"
    );
}

//! `--queries`: data queries timed beside DuckDB on the same Parquet files.
//!
//! Generates the audit tables once per size into their own bench folder
//! (`~/.cache/auditx-bench/tables-N`: N login rows, 30 % of N setting and
//! object changes each, and the reference tables the seed's joins read),
//! starts the product as for an export, and runs each query of [`set`]
//! submit → `completed` (polled every 2 ms), then DuckDB's `COPY (query)
//! TO csv` over the same files, in rounds. Prints each query's median
//! times, their ratio, the median ratio over the set, the largest, and the
//! peak RSS of every process and of DuckDB. Fails when a query's row count
//! differs from DuckDB's (the rows themselves are compared with hand-made
//! results by the lake's tests).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use auditx::client::ApiClient;
use auditx_lake::tables::generate::REFERENCED_ROWS;
use serde_json::{json, Value};

use crate::args::{cache_dir, BenchArgs};
use crate::duckdb::DuckDb;
use crate::fleet::Fleet;
use crate::lake::{generate, lake_files, marker_matches, TENANT};
use crate::latency::completed_query;
use crate::stats::median;

/// Bumped when the generated tables change shape, so old ones are rebuilt.
const TABLES_VERSION: u32 = 3;
const DUCKDB_SCRIPT: &str = include_str!("duckdb_queries.py");

/// One query of the set.
pub struct Query {
    pub name: &'static str,
    pub sql: String,
}

/// The seed's six sample queries (verbatim, the lake's test fixtures), a
/// GROUP BY over every login, and two selective filters that match
/// nothing: one on time (row-group statistics can skip every file's row
/// groups) and one on a value (only a scan or a bloom filter can tell).
pub fn set() -> Vec<Query> {
    let seed = [
        include_str!("../../lake/tests/fixtures/seed/q1.sql"),
        include_str!("../../lake/tests/fixtures/seed/q2.sql"),
        include_str!("../../lake/tests/fixtures/seed/q3.sql"),
        include_str!("../../lake/tests/fixtures/seed/q4.sql"),
        include_str!("../../lake/tests/fixtures/seed/q5.sql"),
        include_str!("../../lake/tests/fixtures/seed/q6.sql"),
    ];
    let names = ["seed-1", "seed-2", "seed-3", "seed-4", "seed-5", "seed-6"];
    let mut set: Vec<Query> = names
        .into_iter()
        .zip(seed)
        .map(|(name, sql)| Query {
            name,
            sql: sql.trim().to_owned(),
        })
        .collect();
    set.push(Query {
        name: "group-by",
        sql: "SELECT logintype, status, browsertype, count(*) AS logins, \
              max(timestamp) AS latest \
              FROM auditloginevent GROUP BY logintype, status, browsertype \
              ORDER BY logintype, status, browsertype"
            .into(),
    });
    set.push(Query {
        name: "none-by-time",
        sql: "SELECT * FROM auditloginevent \
              WHERE timestamp > TIMESTAMP '2030-01-01 00:00:00'"
            .into(),
    });
    set.push(Query {
        name: "none-by-value",
        sql: "SELECT * FROM auditloginevent WHERE ipaddress = '203.0.113.250'".into(),
    });
    set
}

/// Rows of each generated table for `logins` login rows.
fn table_rows(logins: u64) -> Vec<(&'static str, u64)> {
    let mut tables = vec![
        ("auditloginevent", logins),
        ("auditsettingchangeevent", logins * 3 / 10),
        ("auditobjectchangeevent", logins * 3 / 10),
    ];
    tables.extend(REFERENCED_ROWS);
    tables
}

/// Generates the tables unless the folder holds them at this size.
async fn ensure_tables(auditx: &Path, dir: &Path, logins: u64) -> anyhow::Result<()> {
    let marker = dir.join("bench-tables.json");
    let wanted = json!({ "logins": logins, "version": TABLES_VERSION });
    if marker_matches(&marker, &wanted) {
        println!("reusing the tables of {logins} logins");
        return Ok(());
    }
    let s3_dir = dir.join("s3");
    if s3_dir.exists() {
        std::fs::remove_dir_all(&s3_dir)?;
    }
    let started = Instant::now();
    for (table, rows) in table_rows(logins) {
        println!("generating {rows} rows of {table} …");
        generate(auditx, dir, &["--table", table], rows).await?;
    }
    let _ = tokio::process::Command::new("sync").status().await;
    std::fs::write(&marker, serde_json::to_vec(&wanted)?)?;
    println!(
        "generated the tables in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One query's run by auditx: seconds from submit to `completed`, rows.
struct Timed {
    seconds: f64,
    rows: u64,
}

/// Runs `query` submit → `completed` (`latency::completed_query`).
async fn timed(client: &ApiClient, query: &Query) -> anyhow::Result<Timed> {
    let (seconds, job) = completed_query(client, &query.sql, Duration::from_secs(1800))
        .await
        .with_context(|| format!("query {}", query.name))?;
    let rows = job["outputRows"]
        .as_u64()
        .context("a completed job without outputRows")?;
    Ok(Timed { seconds, rows })
}

/// Per query, the times of every round.
struct Times {
    auditx: Vec<f64>,
    duckdb: Vec<f64>,
    rows: u64,
}

/// The `--queries` mode.
pub async fn run(args: &BenchArgs, auditx: &Path) -> anyhow::Result<()> {
    let logins = args.query_rows;
    let dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => cache_dir()?.join(format!("tables-{logins}")),
    };
    std::fs::create_dir_all(&dir)?;
    let dir = dir.canonicalize()?;
    println!("auditx bench --queries — folder {}", dir.display());
    ensure_tables(auditx, &dir, logins).await?;
    anyhow::ensure!(args.rounds >= 1, "--rounds must be at least 1");
    let duckdb = DuckDb::ready(&args.python).await?;
    let set = set();
    let workers = args.worker_counts()?[0];
    let mut times: Vec<Times> = set
        .iter()
        .map(|_| Times {
            auditx: Vec::new(),
            duckdb: Vec::new(),
            rows: 0,
        })
        .collect();
    let out = dir.join("downloads");
    std::fs::create_dir_all(&out)?;
    let queries_file = dir.join("queries.json");
    let listed: Vec<Value> = set
        .iter()
        .map(|q| json!({ "name": q.name, "sql": q.sql }))
        .collect();
    std::fs::write(&queries_file, serde_json::to_vec(&listed)?)?;
    let mut peaks = Vec::new();
    let mut duck_peak = 0;
    let mut duck_version = String::new();
    for round in 1..=args.rounds {
        println!("round {round} of {}", args.rounds);
        let mut fleet = Fleet::start(auditx, args, &dir, workers).await?;
        for (query, times) in set.iter().zip(&mut times) {
            let run = timed(&fleet.client, query).await?;
            println!(
                "  auditx {:<14} {:>8.3} s {:>9} rows",
                query.name, run.seconds, run.rows
            );
            times.auditx.push(run.seconds);
            times.rows = run.rows;
        }
        peaks = fleet.peak_rss()?;
        fleet.stop().await?;
        let figures = duckdb
            .script(
                &dir,
                "duckdb_queries.py",
                DUCKDB_SCRIPT,
                &[
                    lake_files(&dir).to_string_lossy().into_owned(),
                    TENANT.to_owned(),
                    queries_file.to_string_lossy().into_owned(),
                    out.to_string_lossy().into_owned(),
                ],
            )
            .await?;
        duck_peak = figures["peak_rss_kib"].as_u64().unwrap_or(0) * 1024;
        duck_version = figures["version"].as_str().unwrap_or("?").to_owned();
        let results = figures["queries"].as_array().context("no queries")?;
        for ((query, times), result) in set.iter().zip(&mut times).zip(results) {
            let seconds = result["seconds"].as_f64().context("no seconds")?;
            let rows = result["rows"].as_u64().context("no rows")?;
            println!(
                "  duckdb {:<14} {:>8.3} s {:>9} rows",
                query.name, seconds, rows
            );
            anyhow::ensure!(
                rows == times.rows,
                "query {}: auditx returned {} rows, DuckDB {rows}",
                query.name,
                times.rows
            );
            times.duckdb.push(seconds);
        }
    }
    report(
        &set,
        &times,
        &peaks,
        duck_peak,
        &duck_version,
        logins,
        args.rounds,
    );
    Ok(())
}

fn report(
    set: &[Query],
    times: &[Times],
    peaks: &[(String, u64)],
    duck_peak: u64,
    duck_version: &str,
    logins: u64,
    rounds: usize,
) {
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!();
    println!(
        "data queries: {logins} logins, {} setting and {} object changes; median of {rounds} round(s)",
        logins * 3 / 10,
        logins * 3 / 10
    );
    println!(
        "{:<14} {:>10} {:>10} {:>7} {:>10}",
        "query", "auditx s", "duckdb s", "ratio", "rows"
    );
    let mut ratios = Vec::new();
    for (query, times) in set.iter().zip(times) {
        let ours = median(times.auditx.clone());
        let theirs = median(times.duckdb.clone());
        let ratio = ours / theirs;
        ratios.push(ratio);
        println!(
            "{:<14} {:>10.3} {:>10.3} {:>6.2}× {:>10}",
            query.name, ours, theirs, ratio, times.rows
        );
    }
    let largest = ratios.iter().copied().fold(f64::NAN, f64::max);
    println!(
        "median ratio {:.2}×, largest {:.2}× (auditx time / DuckDB {duck_version} time)",
        median(ratios),
        largest
    );
    for (name, peak) in peaks {
        println!("peak RSS {name}: {:.0} MiB", mib(*peak));
    }
    println!("peak RSS duckdb: {:.0} MiB", mib(duck_peak));
}

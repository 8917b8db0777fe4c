//! Latency of small jobs: sequential 1,000-row exports timed create →
//! FINISHED, and sequential data queries over a 1,000-row audit table
//! timed submit → `completed`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use auditx::client::ApiClient;

use crate::export::{finished, request};
use crate::lake::{QUERY_TABLE, SMALL_METER, SMALL_ROWS};
use crate::stats::percentile;

/// Sequential runs of one small job: their median and p90.
pub struct Latency {
    pub runs: usize,
    pub median_ms: f64,
    pub p90_ms: f64,
}

impl Latency {
    /// Summarises the times (ms) of `times.len()` runs.
    pub fn of(mut times: Vec<f64>) -> Self {
        times.sort_by(f64::total_cmp);
        Self {
            runs: times.len(),
            median_ms: percentile(&times, 0.5),
            p90_ms: percentile(&times, 0.9),
        }
    }
}

/// `runs` exports of the 1,000-row meter, one after another.
pub async fn small_exports(client: &ApiClient, runs: usize) -> anyhow::Result<Latency> {
    println!("  {runs} exports of {SMALL_ROWS} rows, one after another …");
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let id = client.create_export(&request(SMALL_METER)).await?;
        finished(
            client,
            SMALL_METER,
            &id,
            Duration::from_millis(2),
            Duration::from_secs(120),
        )
        .await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(Latency::of(times))
}

/// The small data query: every row of the 1,000-row table.
fn small_query() -> String {
    format!("SELECT * FROM {QUERY_TABLE}")
}

/// Submits `sql` and polls its job every 2 ms until it completes; the
/// seconds from submit to the first `completed` seen, and the job.
pub async fn completed_query(
    client: &ApiClient,
    sql: &str,
    limit: Duration,
) -> anyhow::Result<(f64, serde_json::Value)> {
    let started = Instant::now();
    let job = client.submit_query(sql, "CSV", "NONE").await?;
    let id = job["id"]
        .as_str()
        .context("a query job without id")?
        .to_owned();
    loop {
        let job = client.query_job(&id).await?;
        match job["queryStatus"].as_str() {
            Some("completed") => return Ok((started.elapsed().as_secs_f64(), job)),
            Some("accepted" | "in_progress") => {}
            _ => bail!("the query did not complete: {job}"),
        }
        if started.elapsed() > limit {
            bail!("the query did not complete within {limit:?}: {job}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// `runs` data queries over the 1,000-row table, one after another, each
/// timed from submit to the first `completed` seen.
pub async fn small_queries(client: &ApiClient, runs: usize) -> anyhow::Result<Latency> {
    println!("  {runs} data queries of {SMALL_ROWS} rows, one after another …");
    let sql = small_query();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (seconds, _) = completed_query(client, &sql, Duration::from_secs(120)).await?;
        times.push(seconds * 1000.0);
    }
    Ok(Latency::of(times))
}

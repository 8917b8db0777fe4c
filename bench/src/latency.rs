//! Latency of small jobs: sequential 1,000-row exports timed create →
//! FINISHED. (A small data query's latency belongs here too.)

use std::time::{Duration, Instant};

use auditx::client::ApiClient;

use crate::export::{finished, request};
use crate::lake::{SMALL_METER, SMALL_ROWS};
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

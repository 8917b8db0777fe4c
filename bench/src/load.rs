//! Create-export calls from many connections for a while, each call timed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::fleet::Fleet;
use crate::lake::{FROM, SMALL_METER, TO};
use crate::stats::percentile;

pub struct Load {
    pub connections: usize,
    pub seconds: f64,
    pub ok: u64,
    pub refused: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Create-export calls of the small meter from `connections` connections
/// for `secs` seconds.
pub async fn create_calls(fleet: &Fleet, connections: usize, secs: u64) -> anyhow::Result<Load> {
    println!("  create-export calls from {connections} connections for {secs} s …");
    let url = Arc::new(format!(
        "http://{}/meters/{SMALL_METER}/auditTrail/export?exportType=SAMPLE&runType=NORMAL&queryFromTime={FROM}&queryToTime={TO}",
        fleet.api
    ));
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let url = url.clone();
        let token = fleet.token.clone();
        tasks.spawn(async move {
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?;
            let mut times = Vec::new();
            let mut refused = 0u64;
            while Instant::now() < until {
                let sent = Instant::now();
                let response = http.post(url.as_str()).bearer_auth(&token).send().await?;
                let ok = response.status().is_success();
                response.bytes().await?;
                if ok {
                    times.push(sent.elapsed().as_secs_f64() * 1000.0);
                } else {
                    refused += 1;
                }
            }
            anyhow::Ok((times, refused))
        });
    }
    let mut times = Vec::new();
    let mut refused = 0;
    while let Some(result) = tasks.join_next().await {
        let (mut t, r) = result??;
        times.append(&mut t);
        refused += r;
    }
    let seconds = started.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    Ok(Load {
        connections,
        seconds,
        ok: times.len() as u64,
        refused,
        p50_ms: percentile(&times, 0.5),
        p99_ms: percentile(&times, 0.99),
    })
}

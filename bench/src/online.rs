//! The online endpoints on the large meter, after its export: entries
//! pages (the week, one hour, a walk with cursors) and a summary whose total
//! must equal the rows the export wrote.

use std::time::Instant;

use anyhow::{bail, Context};
use auditx::client::ApiClient;
use serde_json::Value;

use crate::lake::{BIG_METER, FROM, TO};
use crate::stats::median;

/// Timed calls per online measurement (the median is reported).
pub const ONLINE_RUNS: usize = 5;
/// Pages of 500 entries walked with their cursors.
const WALK_PAGES: usize = 20;
/// The selective hour of the entries measurement.
const HOUR_FROM: &str = "2025-07-04T12:00:00Z";
const HOUR_TO: &str = "2025-07-04T13:00:00Z";

pub struct Online {
    /// Median of [`ONLINE_RUNS`] first pages (100 entries) of the week.
    pub first_page_ms: f64,
    /// Median of first pages of one hour in the middle of the week.
    pub hour_page_ms: f64,
    /// A walk of [`WALK_PAGES`] pages of 500 entries: ms per page.
    pub walk_page_ms: f64,
    pub walked: usize,
    /// Summary by operatorId of the export's rows: time, total, groups.
    pub summary_ms: f64,
    pub summary_total: u64,
    pub summary_groups: usize,
}

fn filters(from: &str, to: &str) -> Vec<(&'static str, String)> {
    vec![
        ("exportType", "SAMPLE".into()),
        ("runType", "NORMAL".into()),
        ("queryFromTime", from.into()),
        ("queryToTime", to.into()),
    ]
}

/// Times one entries page; fails unless it holds `1..=size` entries.
async fn timed_page(
    client: &ApiClient,
    query: &[(&str, String)],
    size: usize,
) -> anyhow::Result<(f64, Value)> {
    let started = Instant::now();
    let page = client.entries(BIG_METER, query).await?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let entries = page["data"].as_array().map_or(0, Vec::len);
    if entries == 0 || entries > size {
        bail!("an entries page of {size} held {entries} entries");
    }
    Ok((ms, page))
}

/// Measures the entries and summary endpoints; `export_rows` is what the
/// export of the same filters wrote.
pub async fn measure(client: &ApiClient, export_rows: u64) -> anyhow::Result<Online> {
    println!("  entries pages and a summary of meter {BIG_METER} …");
    let mut week = filters(FROM, TO);
    week.push(("pageSize", "100".into()));
    let mut hour = filters(HOUR_FROM, HOUR_TO);
    hour.push(("pageSize", "100".into()));
    let (mut first, mut hourly) = (Vec::new(), Vec::new());
    for _ in 0..ONLINE_RUNS {
        first.push(timed_page(client, &week, 100).await?.0);
        hourly.push(timed_page(client, &hour, 100).await?.0);
    }

    let mut walk = filters(FROM, TO);
    walk.push(("pageSize", "500".into()));
    let started = Instant::now();
    let mut walked = 0;
    let mut cursor: Option<String> = None;
    let mut last_key: Option<(String, String)> = None;
    while walked < WALK_PAGES {
        let mut query = walk.clone();
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor.clone()));
        }
        let (_, page) = timed_page(client, &query, 500).await?;
        walked += 1;
        for entry in page["data"].as_array().into_iter().flatten() {
            let key = (
                entry["eventTime"].as_str().unwrap_or_default().to_owned(),
                entry["eventId"].as_str().unwrap_or_default().to_owned(),
            );
            if last_key.as_ref().is_some_and(|last| *last >= key) {
                bail!("entries out of order or repeated at page {walked}: {key:?}");
            }
            last_key = Some(key);
        }
        match page["nextPage"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let walk_page_ms = started.elapsed().as_secs_f64() * 1000.0 / walked as f64;

    let body = serde_json::json!({
        "exportType": "SAMPLE",
        "runType": "NORMAL",
        "queryFromTime": FROM,
        "queryToTime": TO,
        "groupBy": ["operatorId"],
    });
    let started = Instant::now();
    let summary = client.summary(BIG_METER, &body).await?;
    let summary_ms = started.elapsed().as_secs_f64() * 1000.0;
    // One row per group: success entries in `output` (the body asks for
    // SAMPLE only), errors in `totalErrorCount`.
    let rows = summary["output"]
        .as_array()
        .context("a summary without output")?;
    let summary_total: u64 = rows
        .iter()
        .map(|row| {
            row["output"].as_u64().unwrap_or_default()
                + row["totalErrorCount"].as_u64().unwrap_or_default()
        })
        .sum();
    if summary_total != export_rows {
        bail!("the summary counts {summary_total} rows, the export wrote {export_rows}");
    }
    Ok(Online {
        first_page_ms: median(first),
        hour_page_ms: median(hourly),
        walk_page_ms,
        walked,
        summary_ms,
        summary_total,
        summary_groups: rows.len(),
    })
}

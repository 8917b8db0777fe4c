//! What the bench prints: every run's figures, DuckDB's, the ratios of every
//! round and their median; the bytes compared.

use std::collections::BTreeMap;

use anyhow::bail;

use crate::args::Format;
use crate::duckdb::DuckRun;
use crate::export::Timed;
use crate::lake::{BIG_METER, FROM, SMALL_ROWS, TO};
use crate::latency::Latency;
use crate::load::Load;
use crate::online::{Online, ONLINE_RUNS};
use crate::stats::median;

/// What one run of the product measured.
pub struct Run {
    pub label: String,
    pub workers: usize,
    pub export: Timed,
    /// (process, peak RSS in bytes)
    pub peaks: Vec<(String, u64)>,
    /// (process, CPU seconds used during the large export)
    pub cpu: Vec<(String, f64)>,
    /// (process, bytes it had written to the disk during the large export)
    pub disk: Vec<(String, u64)>,
    pub latency: Option<Latency>,
    /// Sequential data queries of the 1,000-row table, submit → completed.
    pub query_latency: Option<Latency>,
    pub online: Option<Online>,
    pub load: Option<Load>,
}

/// One round: a run per worker count, then DuckDB.
pub struct Round {
    pub runs: Vec<Run>,
    pub duckdb: Option<DuckRun>,
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or_else(
            || "?".into(),
            |kib| format!("{:.0} GiB", kib as f64 / 1048576.0),
        );
    format!("{cores} cores ({model}), {memory}")
}

/// The last round's figures; fails if any run's bytes differ from DuckDB's.
pub fn print(
    lake_rows: u64,
    format: Format,
    runs: &[Run],
    duckdb: Option<&DuckRun>,
) -> anyhow::Result<()> {
    println!();
    println!(
        "== auditx bench: lake of {lake_rows} rows, export SAMPLE/NORMAL of meter {BIG_METER} as {}, {FROM} .. {TO}",
        format.as_str()
    );
    println!("machine: {}", machine());
    println!(
        "{:<40} {:>9} {:>11} {:>8} {:>10}",
        "run", "wall", "rows/s", "MB/s", "rows"
    );
    for run in runs {
        let e = &run.export;
        println!(
            "{:<40} {:>7.2} s {:>11.0} {:>8.1} {:>10}",
            format!("auditx {}", run.label),
            e.seconds,
            e.rows as f64 / e.seconds,
            e.bytes as f64 / 1e6 / e.seconds,
            e.rows
        );
    }
    if let Some(d) = duckdb {
        let bytes = runs.first().map_or(0, |r| r.export.bytes);
        println!(
            "{:<40} {:>7.2} s {:>11.0} {:>8.1} {:>10}",
            format!("duckdb {}", d.version),
            d.seconds,
            d.rows as f64 / d.seconds,
            bytes as f64 / 1e6 / d.seconds,
            d.rows
        );
    }
    println!("peak RSS:");
    for run in runs {
        let peaks: Vec<String> = run
            .peaks
            .iter()
            .map(|(name, bytes)| format!("{name} {}", mib(*bytes)))
            .collect();
        println!("  auditx {}: {}", run.label, peaks.join(", "));
    }
    if let Some(d) = duckdb {
        println!("  duckdb: {}", mib(d.peak_rss));
    }
    println!("CPU during the export (per render chunk):");
    for run in runs {
        let chunks = run.export.chunks.max(1) as f64;
        let cpu: Vec<String> = run
            .cpu
            .iter()
            .map(|(name, secs)| format!("{name} {secs:.2} s ({:.1} ms/chunk)", secs * 1e3 / chunks))
            .collect();
        println!(
            "  auditx {}, {} chunks: {}",
            run.label,
            run.export.chunks,
            cpu.join(", ")
        );
    }
    println!("Written to the disk during the export (less what was deleted before write-back):");
    for run in runs {
        let disk: Vec<String> = (run.disk.iter())
            .map(|(name, bytes)| format!("{name} {:.2} GB", *bytes as f64 / 1e9))
            .collect();
        println!("  auditx {}: {}", run.label, disk.join(", "));
    }
    if let Some((first, rest)) = runs.split_first() {
        for run in rest {
            println!(
                "scaling: {} workers vs {}: {:.2}× faster ({:.2} s → {:.2} s)",
                run.workers,
                first.workers,
                first.export.seconds / run.export.seconds,
                first.export.seconds,
                run.export.seconds
            );
        }
    }
    for run in runs {
        print_phases(run);
    }
    let Some(d) = duckdb else {
        return Ok(());
    };
    let mut same = true;
    for run in runs {
        println!(
            "ratio auditx {} / duckdb: {:.2}× (wall time)",
            run.label,
            run.export.seconds / d.seconds
        );
        if run.export.sha256 != d.sha256 || run.export.rows != d.rows {
            same = false;
            println!(
                "  OUTPUT DIFFERS: auditx {} rows sha256 {}, duckdb {} rows sha256 {}",
                run.export.rows, run.export.sha256, d.rows, d.sha256
            );
        }
    }
    if !same {
        bail!("auditx and DuckDB exported different rows");
    }
    println!(
        "{} — {} rows, sha256 {} in every run",
        format.identical(),
        d.rows,
        d.sha256
    );
    Ok(())
}

/// The latency, online and load figures of a run (the last one has them).
fn print_phases(run: &Run) {
    if let Some(l) = &run.latency {
        println!(
            "latency, {SMALL_ROWS}-row export create → FINISHED ({} runs): median {:.0} ms, p90 {:.0} ms",
            l.runs, l.median_ms, l.p90_ms
        );
    }
    if let Some(l) = &run.query_latency {
        println!(
            "latency, {SMALL_ROWS}-row data query submit → completed ({} runs): median {:.0} ms, p90 {:.0} ms",
            l.runs, l.median_ms, l.p90_ms
        );
    }
    if let Some(o) = &run.online {
        println!(
            "entries, first page of 100 ({ONLINE_RUNS} runs, median): the week {:.1} ms, one hour {:.1} ms; \
             {} pages of 500 walked with cursors: {:.1} ms per page",
            o.first_page_ms, o.hour_page_ms, o.walked, o.walk_page_ms
        );
        println!(
            "summary by operatorId of the week: {:.0} ms, total {} (= the export's rows), {} groups",
            o.summary_ms, o.summary_total, o.summary_groups
        );
    }
    if let Some(l) = &run.load {
        println!(
            "create-export calls, {} connections, {:.1} s: {:.0} req/s accepted, p50 {:.1} ms, p99 {:.1} ms, {} refused",
            l.connections,
            l.seconds,
            l.ok as f64 / l.seconds,
            l.p50_ms,
            l.p99_ms,
            l.refused
        );
    }
}

/// With several rounds: every round's wall times and ratio, and the median
/// ratio; the bytes of every round are checked against DuckDB's.
pub fn print_rounds(rounds: &[Round]) -> anyhow::Result<()> {
    if rounds.len() < 2 {
        return Ok(());
    }
    let mut ratios: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (i, round) in rounds.iter().enumerate() {
        let mut line = format!("round {}:", i + 1);
        for run in &round.runs {
            line.push_str(&format!(
                " auditx {} {:.2} s",
                run.label, run.export.seconds
            ));
        }
        if let Some(d) = &round.duckdb {
            line.push_str(&format!(", duckdb {:.2} s", d.seconds));
            for run in &round.runs {
                if run.export.sha256 != d.sha256 || run.export.rows != d.rows {
                    bail!("round {}: auditx and DuckDB exported different rows", i + 1);
                }
                let ratio = run.export.seconds / d.seconds;
                line.push_str(&format!(", ratio {ratio:.2}×"));
                ratios.entry(run.label.clone()).or_default().push(ratio);
            }
        }
        println!("{line}");
    }
    for (label, ratios) in ratios {
        let listed: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "median ratio auditx {label} / duckdb over {} rounds: {:.2}× ({})",
            ratios.len(),
            median(ratios),
            listed.join(", ")
        );
    }
    Ok(())
}

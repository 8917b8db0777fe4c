//! `auditx-bench`: a meter export by the `auditx` binary, measured end to
//! end beside DuckDB doing the same job on the same Parquet files.
//!
//! 1. [`lake`]: generates (or reuses) a lake in the bench folder with
//!    `auditx generate`: one large meter and one of 1,000 rows.
//! 2. [`fleet`]: starts the product as real processes of the `auditx`
//!    binary: `auditx standalone` (embedded default), or with
//!    `--distributed` an `auditx s3` endpoint, a scheduler and N worker
//!    processes on RabbitMQ and Redis; once per worker count given.
//! 3. [`export`]: exports the large meter (create → FINISHED with presigned
//!    URLs) in `--format`, downloads the files and hashes their rows
//!    ([`rows`]: CSV bytes, JSON Lines parsed, Parquet decoded); then, in the last
//!    round, [`latency`] (sequential 1,000-row exports and 1,000-row data
//!    queries), [`online`] (entries
//!    pages and a summary) and [`load`] (create-export calls from many
//!    connections).
//! 4. [`duckdb`]: runs DuckDB's query over the same files (the pinned DuckDB,
//!    in the bench's own virtualenv), writing the same format, and compares
//!    the rows.
//! 5. [`report`]: wall time, rows/s, MB/s, the peak RSS and CPU of every
//!    process, the auditx/DuckDB ratio of every round and their median.
//!    Exits non-zero when the outputs differ.
//!
//! With `--queries` the bench measures data queries instead ([`queries`]):
//! the seed's queries and a few more over generated audit tables, each
//! beside DuckDB's time for the same query on the same files.
//!
//! A new measurement is a module of its own called from [`run_product`]
//! (it gets the running [`fleet::Fleet`]) and a field of [`report::Run`].

mod args;
mod duckdb;
mod export;
mod fleet;
mod lake;
mod latency;
mod load;
mod online;
mod queries;
mod report;
mod rows;
mod stats;

use std::path::Path;

use anyhow::Context;
use clap::Parser;

use crate::args::BenchArgs;
use crate::duckdb::DuckDb;
use crate::fleet::Fleet;
use crate::report::{Round, Run};

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(BenchArgs::parse()))
}

async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let auditx = args.auditx_bin()?;
    if args.queries {
        println!("auditx binary: {}", auditx.display());
        return queries::run(&args, &auditx).await;
    }
    let dir = args.bench_dir()?;
    println!("auditx bench — folder {}", dir.display());
    println!("auditx binary: {}", auditx.display());
    lake::ensure(&auditx, &dir, args.rows).await?;

    let worker_counts = args.worker_counts()?;
    anyhow::ensure!(args.rounds >= 1, "--rounds must be at least 1");
    // The pinned DuckDB is made ready before any timing.
    let duckdb = if args.no_duckdb {
        None
    } else {
        Some(DuckDb::ready(&args.python).await?)
    };
    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        if args.rounds > 1 {
            println!("round {round} of {}", args.rounds);
        }
        let mut runs = Vec::new();
        for (i, &workers) in worker_counts.iter().enumerate() {
            let last = round == args.rounds && i + 1 == worker_counts.len();
            let run = run_product(&args, &auditx, &dir, workers, last, duckdb.as_ref()).await?;
            runs.push(run);
        }
        let duck = match &duckdb {
            Some(duckdb) => Some(duckdb.export(&dir, args.format).await?),
            None => None,
        };
        rounds.push(Round { runs, duckdb: duck });
    }
    let last = rounds.last().context("at least one round")?;
    report::print(args.rows, args.format, &last.runs, last.duckdb.as_ref())?;
    report::print_rounds(&rounds)
}

/// One run of the product: start the processes, export the large meter
/// and, in the last run, the latency, online and load measurements.
async fn run_product(
    args: &BenchArgs,
    auditx: &Path,
    dir: &Path,
    workers: usize,
    last: bool,
    duckdb: Option<&DuckDb>,
) -> anyhow::Result<Run> {
    let mut fleet = Fleet::start(auditx, args, dir, workers).await?;
    println!("{}: exporting meter {} …", fleet.label, lake::BIG_METER);
    let downloads = dir.join("downloads").join(fleet.slug());
    let cpu_before = fleet.cpu_seconds()?;
    let disk_before = fleet.disk_bytes()?;
    let export = export::timed(
        &fleet.client,
        lake::BIG_METER,
        args.format,
        duckdb,
        &downloads,
    )
    .await?;
    let cpu = fleet
        .cpu_seconds()?
        .into_iter()
        .zip(cpu_before)
        .map(|((name, after), (_, before))| (name, after - before))
        .collect();
    let disk = fleet
        .disk_bytes()?
        .into_iter()
        .zip(disk_before)
        .map(|((name, after), (_, before))| (name, after.saturating_sub(before)))
        .collect();
    println!(
        "  {} rows in {} file(s), {:.2} s",
        export.rows, export.files, export.seconds
    );
    // Peaks of the export itself, before the latency and load phases.
    let peaks = fleet.peak_rss()?;
    let latency = if last && args.latency_runs > 0 {
        Some(latency::small_exports(&fleet.client, args.latency_runs).await?)
    } else {
        None
    };
    let query_latency = if last && args.latency_runs > 0 {
        Some(latency::small_queries(&fleet.client, args.latency_runs).await?)
    } else {
        None
    };
    let online = if last {
        Some(online::measure(&fleet.client, export.rows).await?)
    } else {
        None
    };
    let load = if last && args.load_secs > 0 {
        Some(load::create_calls(&fleet, args.load_connections, args.load_secs).await?)
    } else {
        None
    };
    let label = fleet.label.clone();
    fleet.stop().await?;
    Ok(Run {
        label,
        workers,
        export,
        peaks,
        cpu,
        disk,
        latency,
        query_latency,
        online,
        load,
    })
}

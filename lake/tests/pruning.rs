//! A selective data query reads only what it must: the row groups its time
//! range can hold (min/max statistics of the `timestamp` order the writer
//! keeps), the row groups that hold the value it looks up (bloom filters),
//! the `year`/`month` partitions it names, and for the newest rows
//! (`ORDER BY timestamp DESC LIMIT n`) the newest row groups.
//!
//! The files are written the way ingest writes them (`ingest_table_rows`,
//! row groups of 1,000 rows) to an embedded S3 endpoint; the queries run
//! through `start_query`, the worker's session and options; the figures are
//! DataFusion's scan metrics after the last batch ([`ScanMetrics`]). With
//! pruning off, every row group would be read and these tests fail.

use std::sync::Arc;

use auditx_common::embedded_s3::EmbeddedS3;
use auditx_common::state::MemoryStore;
use auditx_lake::sql::{
    check_query, classify, lake_object_store, start_query, QueryLimits, QueryStop, ResultWriter,
    ScanMetrics,
};
use auditx_lake::tables::ingest::{ingest_table_rows, parse_table_rows};
use auditx_lake::tables::{table, RowOwner};
use auditx_proto::{QueryOutputFormat, Scope, TenantId};
use futures::StreamExt;
use object_store::ObjectStore;
use serde_json::{json, Value};

mod support;

use support::{endpoint, Endpoint, BUCKET};
const ROW_GROUP_ROWS: usize = 1_000;
const LIMITS: QueryLimits = QueryLimits {
    memory_limit_bytes: 64 << 20,
};

/// `2024-03-01T00:00:00Z`
const MARCH_MS: i64 = 1_709_251_200_000;
/// `2024-04-01T00:00:00Z`
const APRIL_MS: i64 = 1_711_929_600_000;

/// The one row whose IP address is this: row 2,500 of March, in its third
/// row group. Every row group holds addresses from `10.0.…` to `10.9.…`, so
/// no row group's min/max rules it out: only the bloom filters can.
const TARGET: &str = "10.5.99.99";

struct Lake {
    store: Arc<dyn ObjectStore>,
    _s3: EmbeddedS3,
    _dir: tempfile::TempDir,
}

fn acme() -> TenantId {
    TenantId::from("acme")
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Login `i` of the month starting at `start_ms`: one a minute, the
/// usernames `user-00@…` to `user-99@…` in turn, the IP addresses
/// `10.0.…` to `10.9.…` in turn (every row group spans them).
fn login(prefix: &str, i: i64, start_ms: i64) -> Value {
    let at = time(start_ms + i * 60_000);
    json!({
        "id": format!("{prefix}-{i}"),
        "username": format!("user-{:02}@example.com", i % 100),
        "logintype": "PASSWORD",
        "status": if i % 7 == 0 { "Failure" } else { "Success" },
        "ipaddress": format!("10.{}.{}.{}", i % 10, (i / 10) % 250, i / 2500),
        "timestamp": at,
        "createddate": at,
    })
}

/// The tenant's logins, ingested: 4,000 in March 2024 (one file of four
/// row groups, a minute apart, so 2024-03-01 17:00–18:00 is in the second)
/// and 1,000 in April (one file, one row group).
async fn lake() -> Lake {
    // One partition per query: with two, each file is read by its own
    // partition at once, and whether March's row groups are skipped for
    // `ORDER BY timestamp DESC LIMIT 3` depends on whether April's rows
    // reach the TopK before March's reader gets to them (a race the counts
    // below must not depend on). Every test of this file sets the same
    // value (DataFusion's own variable, read by each query's session).
    std::env::set_var("DATAFUSION_EXECUTION_TARGET_PARTITIONS", "1");
    let Endpoint {
        config,
        writer,
        s3,
        dir,
    } = endpoint().await;
    let def = table("auditloginevent").unwrap();
    let state = MemoryStore::new();
    let march = (0..4_000).map(|i| {
        let mut row = login("m", i, MARCH_MS);
        if i == 2_500 {
            row["ipaddress"] = json!(TARGET);
        }
        row
    });
    let april = (0..1_000).map(|i| login("a", i, APRIL_MS));
    for rows in [march.collect::<Vec<_>>(), april.collect()] {
        let batch = parse_table_rows(def, &serde_json::to_vec(&rows).unwrap()).unwrap();
        let summary = ingest_table_rows(
            &writer,
            &state,
            BUCKET,
            &acme(),
            &RowOwner::default(),
            batch,
            ROW_GROUP_ROWS,
        )
        .await
        .unwrap();
        assert_eq!(summary.accepted, rows.len() as u64);
    }
    Lake {
        store: lake_object_store(&config).unwrap(),
        _s3: s3,
        _dir: dir,
    }
}

/// Runs `sql` as the worker does; the CSV result and what the scans read.
async fn run(lake: &Lake, sql: &str) -> (String, ScanMetrics) {
    let checked = check_query(sql).unwrap();
    let mut query = start_query(
        lake.store.clone(),
        BUCKET,
        &acme(),
        &Scope::default(),
        &checked,
        &LIMITS,
        false,
        &QueryStop::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut writer = ResultWriter::new(&query.batches.schema(), QueryOutputFormat::Csv);
    let mut out = Vec::new();
    writer.header(&mut out);
    while let Some(batch) = query.batches.next().await {
        let batch = batch
            .map_err(|e| classify(e, &LIMITS))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        writer.write_batch(&batch, &mut out).unwrap();
    }
    (String::from_utf8(out).unwrap(), query.scans())
}

#[tokio::test]
async fn a_time_range_reads_only_the_row_groups_it_can_hold() {
    let lake = lake().await;
    let (all, every) = run(
        &lake,
        "SELECT count(*) AS n, max(ipaddress) AS ip FROM auditloginevent \
         WHERE timestamp >= TIMESTAMP '2024-01-01 00:00:00'",
    )
    .await;
    assert_eq!(all, "n,ip\n5000,10.9.99.1\n");
    assert_eq!(every.row_groups_read(), 5, "{every:?}");
    assert_eq!(every.files, 2, "{every:?}");

    // Rows 1,020 to 1,079 of March: its second row group.
    let (csv, scans) = run(
        &lake,
        "SELECT count(*) AS n, min(ipaddress) AS first, max(ipaddress) AS last \
         FROM auditloginevent \
         WHERE timestamp >= TIMESTAMP '2024-03-01 17:00:00' \
         AND timestamp < TIMESTAMP '2024-03-01 18:00:00'",
    )
    .await;
    assert_eq!(csv, "n,first,last\n60,10.0.102.0,10.9.107.0\n");
    assert_eq!(scans.row_groups_read(), 1, "{scans:?}");
    // March's other three row groups, and April's (by its row group's
    // statistics, or its whole file's).
    assert_eq!(
        scans.row_groups_pruned_statistics + scans.file_ranges_pruned_statistics,
        4,
        "{scans:?}"
    );
    assert!(
        scans.bytes_scanned * 3 < every.bytes_scanned,
        "{scans:?} against a full scan {every:?}"
    );

    // Nothing in range: no row group read.
    let (csv, scans) = run(
        &lake,
        "SELECT * FROM auditloginevent WHERE timestamp > TIMESTAMP '2030-01-01 00:00:00'",
    )
    .await;
    assert_eq!(csv.lines().count(), 1, "{csv}");
    assert_eq!(scans.row_groups_read(), 0, "{scans:?}");
}

#[tokio::test]
async fn a_value_lookup_reads_only_the_row_groups_whose_bloom_filter_has_it() {
    let lake = lake().await;
    let (csv, scans) = run(
        &lake,
        &format!("SELECT id, ipaddress FROM auditloginevent WHERE ipaddress = '{TARGET}'"),
    )
    .await;
    assert_eq!(csv, format!("id,ipaddress\nm-2500,{TARGET}\n"));
    assert_eq!(scans.row_groups_read(), 1, "{scans:?}");
    // Statistics keep every row group, the bloom filters all but one.
    assert_eq!(scans.row_groups_pruned_statistics, 0, "{scans:?}");
    assert_eq!(scans.row_groups_pruned_bloom_filter, 4, "{scans:?}");

    let (csv, scans) = run(
        &lake,
        "SELECT id FROM auditloginevent WHERE ipaddress = '10.5.99.98'",
    )
    .await;
    assert_eq!(csv, "id\n");
    assert_eq!(scans.row_groups_read(), 0, "{scans:?}");
    assert_eq!(scans.row_groups_pruned_bloom_filter, 5, "{scans:?}");
}

#[tokio::test]
async fn a_year_and_month_filter_reads_only_that_partition() {
    let lake = lake().await;
    let (csv, scans) = run(
        &lake,
        "SELECT count(*) AS n, min(id) AS first FROM auditloginevent \
         WHERE year = 2024 AND month = 4",
    )
    .await;
    assert_eq!(csv, "n,first\n1000,a-0\n");
    assert_eq!(scans.files, 1, "{scans:?}");
    assert_eq!(scans.row_groups_read(), 1, "{scans:?}");
}

#[tokio::test]
async fn the_newest_rows_are_read_from_the_newest_row_groups() {
    let lake = lake().await;
    let (csv, scans) = run(
        &lake,
        "SELECT id FROM auditloginevent ORDER BY timestamp DESC LIMIT 3",
    )
    .await;
    assert_eq!(csv, "id\na-999\na-998\na-997\n");
    // April's one row group holds the three newest: March's four are
    // skipped once they are in hand.
    assert!(scans.row_groups_read() < 5, "{scans:?}");
}

//! The synthetic data generator: deterministic, ordered, realistic, and
//! written to the lake in files that never span two dates.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Mutex;
use std::time::Instant;

use auditx_lake::audit_trail::generate::{audit_rows, generate_to_lake, run_rows, GenerateSpec};
use auditx_lake::audit_trail::read::{
    latest_statuses, list_audit_files, read_chunk_rows, read_runs,
};
use auditx_lake::{AuditRow, RUN_STATUSES};
use auditx_proto::{MeterId, RecordType, RowFilter, RunType};
use support::{lake, read_all, sources, tenant, DAY_MS, METER};

const HOUR_MS: i64 = 3_600_000;

fn spec(rows: u64, from_ms: i64, to_ms: i64, seed: u64) -> GenerateSpec {
    GenerateSpec {
        tenant: tenant(),
        meter: METER,
        rows,
        from_ms,
        to_ms,
        error_rate: 0.1,
        seed,
    }
}

#[test]
fn the_same_spec_gives_the_same_rows_and_another_seed_other_rows() {
    let a = spec(3_000, DAY_MS, DAY_MS + HOUR_MS, 1);
    let first: Vec<AuditRow> = audit_rows(&a).collect();
    assert_eq!(first.len(), 3_000);
    assert_eq!(audit_rows(&a).collect::<Vec<_>>(), first);
    assert_eq!(run_rows(&a), run_rows(&a));

    let other: Vec<AuditRow> = audit_rows(&GenerateSpec {
        seed: 2,
        ..a.clone()
    })
    .collect();
    let ids: HashSet<&str> = first.iter().map(|r| r.event_id.as_str()).collect();
    assert!(
        other.iter().all(|r| !ids.contains(r.event_id.as_str())),
        "seeds share no event id"
    );
    assert_ne!(
        other.iter().map(|r| &r.payload).collect::<Vec<_>>(),
        first.iter().map(|r| &r.payload).collect::<Vec<_>>()
    );
    let other_meter: Vec<AuditRow> = audit_rows(&GenerateSpec {
        meter: MeterId(8),
        ..a
    })
    .collect();
    assert!(other_meter
        .iter()
        .all(|r| !ids.contains(r.event_id.as_str()) && r.meter_id == 8));
}

#[test]
fn rows_are_ordered_unique_in_range_and_look_like_a_real_meter() {
    // More rows than milliseconds: many rows share a millisecond.
    let s = spec(20_000, DAY_MS, DAY_MS + 5_000, 7);
    let rows: Vec<AuditRow> = audit_rows(&s).collect();
    assert!(rows
        .windows(2)
        .all(|w| (w[0].event_time_ms, &w[0].event_id) < (w[1].event_time_ms, &w[1].event_id)));
    assert!(rows
        .iter()
        .all(|r| (s.from_ms..s.to_ms).contains(&r.event_time_ms)));
    assert_eq!(rows.first().map(|r| r.event_time_ms), Some(s.from_ms));
    assert!(rows.last().unwrap().event_time_ms >= s.to_ms - 2);

    let errors: Vec<&AuditRow> = rows.iter().filter(|r| r.record_type == "ERROR").collect();
    assert!(
        (1_600..2_400).contains(&errors.len()),
        "about 10% errors, got {}",
        errors.len()
    );
    assert!(errors
        .iter()
        .all(|r| r.error_code.is_some() && r.error_message.is_some()));
    assert!(rows
        .iter()
        .filter(|r| r.record_type == "SAMPLE")
        .all(|r| r.error_code.is_none() && r.error_message.is_none()));
    let messages: Vec<&str> = errors
        .iter()
        .filter_map(|r| r.error_message.as_deref())
        .collect();
    assert!(messages.iter().any(|m| m.contains(',') && m.contains('"')));
    assert!(messages.iter().any(|m| m.contains('\n')));

    let count =
        |f: fn(&AuditRow) -> Option<&str>| rows.iter().filter_map(f).collect::<BTreeSet<_>>().len();
    assert!(count(|r| Some(r.session_id.as_str())) >= 4);
    assert!(count(|r| r.operator_id.as_deref()) >= 4);
    assert!(count(|r| r.operator_type.as_deref()) >= 3);
    assert_eq!(
        count(|r| Some(r.run_type.as_str())),
        2,
        "NORMAL and DEBUG runs"
    );
    assert!(rows
        .iter()
        .all(|r| r.session_id.starts_with("R-") && r.session_id.len() == 10));
    assert!(rows.iter().all(|r| r
        .trace_id
        .as_ref()
        .is_some_and(|t| t.len() == 32 && t.chars().all(|c| c.is_ascii_hexdigit()))));
    for r in &rows {
        let payload: serde_json::Value =
            serde_json::from_str(r.payload.as_deref().unwrap()).unwrap();
        assert_eq!(payload["usageDate"], "2025-07-23");
        assert!(payload["accountNumber"].is_string() && payload["quantity"].is_number());
    }
    assert!(rows
        .iter()
        .any(|r| r.payload.as_deref().unwrap().contains(r#""attributes":{"#)));
    assert_eq!(
        rows.iter()
            .map(|r| &r.event_id)
            .collect::<HashSet<_>>()
            .len(),
        rows.len()
    );
}

#[test]
fn runs_have_status_histories_that_split_sessions_by_status() {
    let s = spec(200_000, DAY_MS, DAY_MS + 24 * HOUR_MS, 3);
    let runs = run_rows(&s);
    assert!(runs
        .iter()
        .all(|r| RUN_STATUSES.contains(&r.status.as_str())));
    let statuses = latest_statuses(&runs);
    let sessions: BTreeSet<String> = audit_rows(&s).map(|r| r.session_id).collect();
    assert_eq!(
        statuses.keys().cloned().collect::<BTreeSet<_>>(),
        sessions,
        "every session has a run"
    );
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for status in statuses.values() {
        *by_status.entry(status.as_str()).or_default() += 1;
    }
    assert!(by_status.len() >= 4, "{by_status:?}");
    assert!(
        by_status.contains_key("RUNNING") && by_status.contains_key("COMPLETED"),
        "{by_status:?}"
    );
    for session in &sessions {
        let history: Vec<&str> = runs
            .iter()
            .filter(|r| &r.session_id == session)
            .map(|r| r.status.as_str())
            .collect();
        assert_eq!(history[0], "INITIALIZING", "{session}: {history:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_to_lake_writes_bounded_files_that_never_span_a_date() {
    let lake = lake().await;
    // 60 hours starting at noon: three date partitions.
    let s = spec(25_000, DAY_MS + 12 * HOUR_MS, DAY_MS + 72 * HOUR_MS, 11);
    let reported = Mutex::new(Vec::new());
    let progress = |rows: u64| reported.lock().unwrap().push(rows);
    let summary = generate_to_lake(&lake.store, lake.bucket, &s, 4_000, 1_000, &progress)
        .await
        .unwrap();
    assert_eq!(summary.rows, 25_000);
    let reported = reported.into_inner().unwrap();
    assert!(
        reported.windows(2).all(|w| w[0] < w[1]) && reported.last() == Some(&25_000),
        "{reported:?}"
    );

    let files = list_audit_files(
        &lake.store,
        lake.bucket,
        &tenant(),
        METER,
        s.from_ms,
        s.to_ms,
    )
    .await
    .unwrap();
    let dates: BTreeSet<&str> = files.iter().map(|f| &f.key[38..53]).collect();
    assert_eq!(
        dates.into_iter().collect::<Vec<_>>(),
        ["date=2025-07-23", "date=2025-07-24", "date=2025-07-25"]
    );
    for file in &files {
        let rows: u64 = file.row_groups.iter().map(|g| g.rows).sum();
        assert!(
            rows <= 4_000 && file.row_groups.iter().all(|g| g.rows <= 1_000),
            "{file:?}"
        );
        let first = file.row_groups.first().unwrap().min_time_ms;
        let last = file.row_groups.last().unwrap().max_time_ms;
        assert_eq!(
            first.div_euclid(24 * HOUR_MS),
            last.div_euclid(24 * HOUR_MS),
            "{} spans two dates",
            file.key
        );
    }
    assert_eq!(
        summary.files.len(),
        files.len() + 1,
        "audit files plus the runs file"
    );

    assert_eq!(
        read_all(&lake, s.from_ms, s.to_ms).await,
        audit_rows(&s).collect::<Vec<_>>()
    );
    assert_eq!(
        read_runs(&lake.store, lake.bucket, &tenant(), METER)
            .await
            .unwrap(),
        run_rows(&s)
    );

    let again = generate_to_lake(&lake.store, lake.bucket, &s, 4_000, 1_000, &|_| {})
        .await
        .unwrap();
    assert_eq!(
        again.files, summary.files,
        "the same spec writes the same files"
    );
}

/// `cargo test -p auditx-common --test lake_generate -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "performance measurement"]
async fn perf_generate_and_read_a_million_rows() {
    let lake = lake().await;
    let s = spec(1_000_000, DAY_MS, DAY_MS + 24 * HOUR_MS, 5);
    let started = Instant::now();
    let n = audit_rows(&s).count();
    let took = started.elapsed();
    println!(
        "generate (iterator): {n} rows in {took:?}, {:.0} rows/s",
        n as f64 / took.as_secs_f64()
    );

    let started = Instant::now();
    generate_to_lake(&lake.store, lake.bucket, &s, 250_000, 50_000, &|_| {})
        .await
        .unwrap();
    let took = started.elapsed();
    println!(
        "generate_to_lake: {n} rows in {took:?}, {:.0} rows/s",
        n as f64 / took.as_secs_f64()
    );

    let files = list_audit_files(
        &lake.store,
        lake.bucket,
        &tenant(),
        METER,
        s.from_ms,
        s.to_ms,
    )
    .await
    .unwrap();
    let sources = sources(&files);
    for (record_type, label) in [(RecordType::Sample, "SAMPLE"), (RecordType::Error, "ERROR")] {
        let filter = RowFilter {
            run_type: RunType::Normal,
            record_type,
            session_ids: None,
            operator_ids: None,
            scope: Default::default(),
        };
        let started = Instant::now();
        let rows = read_chunk_rows(
            &lake.store,
            lake.bucket,
            &sources,
            s.from_ms,
            s.to_ms,
            &filter,
        )
        .await
        .unwrap();
        let took = started.elapsed();
        println!(
            "read_chunk_rows NORMAL {label}: {} rows of {n} in {took:?}, {:.0} scanned rows/s, {:.0} returned rows/s",
            rows.len(),
            n as f64 / took.as_secs_f64(),
            rows.len() as f64 / took.as_secs_f64()
        );
    }
}

//! Writing audit rows to the lake, listing them for planning and reading a
//! chunk's rows back, against the embedded S3 endpoint.

mod support;

use auditx_common::s3::StorageError;
use auditx_lake::audit_trail::read::{
    latest_statuses, list_audit_files, read_chunk_rows, read_runs,
};
use auditx_lake::audit_trail::write::{write_audit_rows, write_run_rows};
use auditx_lake::{AuditRow, LakeError, RunRow};
use auditx_proto::{LakeSource, RecordType, RowFilter, RunType};
use bytes::Bytes;
use support::{lake, row, sorted, sources, tenant, Lake, DAY_MS, METER};

const HOUR_MS: i64 = 3_600_000;

fn all_of(run_type: RunType, record_type: RecordType) -> RowFilter {
    RowFilter {
        run_type,
        record_type,
        session_ids: None,
        operator_ids: None,
        scope: Default::default(),
    }
}

/// Lists `[from, to)` and reads every listed row group with `filter`.
async fn export(lake: &Lake, from: i64, to: i64, filter: &RowFilter) -> Vec<AuditRow> {
    let files = list_audit_files(&lake.store, lake.bucket, &tenant(), METER, from, to)
        .await
        .unwrap();
    let rows = read_chunk_rows(&lake.store, lake.bucket, &sources(&files), from, to, filter)
        .await
        .unwrap();
    sorted(rows)
}

/// Rows of every kind: two run types, both record types, three sessions,
/// two operators and rows without operator.
fn mixed_rows() -> Vec<AuditRow> {
    (0..60)
        .map(|i| {
            let mut r = row(&format!("e-{i:03}"), DAY_MS + 10 * HOUR_MS + i * 1000);
            r.run_type = if i % 4 == 0 { "DEBUG" } else { "NORMAL" }.into();
            r.session_id = format!("R-{}", i % 3);
            r.operator_id = match i % 5 {
                0 => None,
                1 | 2 => Some("op-1".into()),
                _ => Some("op-2".into()),
            };
            if i % 2 == 0 {
                r.record_type = "ERROR".into();
                r.error_code = Some("PUSH_FAILED".into());
                r.error_message = Some("HTTP 503, \"Service Unavailable\"\nretry later".into());
            }
            r
        })
        .collect()
}

#[tokio::test]
async fn written_rows_are_listed_per_date_with_row_group_stats_and_read_back_exactly() {
    let lake = lake().await;
    let midnight = DAY_MS + 24 * HOUR_MS;
    // Out of order, across midnight, two rows in the same millisecond.
    let rows = vec![
        row("e-5", midnight + 5),
        row("e-2", midnight - 1),
        row("e-1", DAY_MS + 1),
        row("e-4", midnight),
        row("e-3", midnight),
        row("e-0", DAY_MS),
    ];
    let keys = write_audit_rows(&lake.store, lake.bucket, &tenant(), METER, rows.clone(), 2)
        .await
        .unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        keys[0].starts_with("meter_audit_trail/tenant=acme/meter=7/date=2025-07-23/"),
        "{keys:?}"
    );
    assert!(
        keys[1].starts_with("meter_audit_trail/tenant=acme/meter=7/date=2025-07-24/"),
        "{keys:?}"
    );
    assert!(keys.iter().all(|k| k.ends_with(".parquet")));

    let files = list_audit_files(
        &lake.store,
        lake.bucket,
        &tenant(),
        METER,
        DAY_MS,
        midnight + 24 * HOUR_MS,
    )
    .await
    .unwrap();
    let stats: Vec<Vec<(u32, u64, i64, i64)>> = files
        .iter()
        .map(|f| {
            f.row_groups
                .iter()
                .map(|g| (g.index, g.rows, g.min_time_ms, g.max_time_ms))
                .collect()
        })
        .collect();
    assert_eq!(
        stats,
        vec![
            vec![
                (0, 2, DAY_MS, DAY_MS + 1),
                (1, 1, midnight - 1, midnight - 1)
            ],
            vec![
                (0, 2, midnight, midnight),
                (1, 1, midnight + 5, midnight + 5)
            ],
        ]
    );
    assert_eq!(
        files.iter().map(|f| f.key.clone()).collect::<Vec<_>>(),
        keys
    );

    let back = export(
        &lake,
        DAY_MS,
        midnight + 24 * HOUR_MS,
        &all_of(RunType::Normal, RecordType::Sample),
    )
    .await;
    assert_eq!(back, sorted(rows));
}

#[tokio::test]
async fn every_filter_selects_exactly_the_matching_rows() {
    let lake = lake().await;
    let rows = mixed_rows();
    write_audit_rows(&lake.store, lake.bucket, &tenant(), METER, rows.clone(), 7)
        .await
        .unwrap();
    let (from, to) = (DAY_MS, DAY_MS + 24 * HOUR_MS);
    let cases = [
        all_of(RunType::Normal, RecordType::Sample),
        all_of(RunType::Normal, RecordType::Error),
        all_of(RunType::Debug, RecordType::Error),
        RowFilter {
            session_ids: Some(vec!["R-1".into(), "R-2".into()]),
            ..all_of(RunType::Normal, RecordType::Error)
        },
        RowFilter {
            operator_ids: Some(vec!["op-2".into()]),
            ..all_of(RunType::Normal, RecordType::Sample)
        },
        RowFilter {
            session_ids: Some(vec!["R-0".into()]),
            operator_ids: Some(vec!["op-1".into(), "op-2".into()]),
            ..all_of(RunType::Normal, RecordType::Sample)
        },
        RowFilter {
            session_ids: Some(vec![]),
            ..all_of(RunType::Normal, RecordType::Sample)
        },
    ];
    for filter in cases {
        let expected: Vec<AuditRow> = rows
            .iter()
            .filter(|r| {
                r.run_type == filter.run_type.as_str()
                    && r.record_type == filter.record_type.as_str()
                    && filter
                        .session_ids
                        .as_ref()
                        .is_none_or(|s| s.contains(&r.session_id))
                    && filter
                        .operator_ids
                        .as_ref()
                        .is_none_or(|o| r.operator_id.as_ref().is_some_and(|id| o.contains(id)))
            })
            .cloned()
            .collect();
        let back = export(&lake, from, to, &filter).await;
        assert_eq!(back, expected, "{filter:?}");
        assert!(
            !back.is_empty() || filter.session_ids == Some(vec![]),
            "{filter:?} selects something"
        );
    }
}

#[tokio::test]
async fn from_is_inclusive_to_is_exclusive_and_outside_row_groups_are_not_listed() {
    let lake = lake().await;
    let rows: Vec<AuditRow> = (0..10)
        .map(|i| row(&format!("e-{i}"), DAY_MS + i * 1000))
        .collect();
    write_audit_rows(&lake.store, lake.bucket, &tenant(), METER, rows.clone(), 2)
        .await
        .unwrap();
    let filter = all_of(RunType::Normal, RecordType::Sample);

    let (from, to) = (DAY_MS + 3000, DAY_MS + 7000);
    let files = list_audit_files(&lake.store, lake.bucket, &tenant(), METER, from, to)
        .await
        .unwrap();
    let listed: Vec<u32> = files[0].row_groups.iter().map(|g| g.index).collect();
    assert_eq!(
        listed,
        [1, 2, 3],
        "row groups 0 (0s-1s) and 4 (8s-9s) are outside [3s, 7s)"
    );
    let back = export(&lake, from, to, &filter).await;
    let ids: Vec<&str> = back.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(ids, ["e-3", "e-4", "e-5", "e-6"]);

    assert!(export(&lake, DAY_MS + 9001, DAY_MS + 20_000, &filter)
        .await
        .is_empty());
    assert!(list_audit_files(
        &lake.store,
        lake.bucket,
        &tenant(),
        METER,
        DAY_MS + 9001,
        DAY_MS + 20_000
    )
    .await
    .unwrap()
    .is_empty());
    assert!(
        export(&lake, from, from, &filter).await.is_empty(),
        "an empty range has no rows"
    );
    assert_eq!(
        export(&lake, DAY_MS + 9000, DAY_MS + 9001, &filter).await,
        vec![rows[9].clone()]
    );
}

#[tokio::test]
async fn a_retried_write_lands_on_the_same_key() {
    let lake = lake().await;
    let rows = mixed_rows();
    let first = write_audit_rows(&lake.store, lake.bucket, &tenant(), METER, rows.clone(), 16)
        .await
        .unwrap();
    let reversed = rows.into_iter().rev().collect();
    let again = write_audit_rows(&lake.store, lake.bucket, &tenant(), METER, reversed, 16)
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(lake.keys("meter_audit_trail/").await, first);
}

#[tokio::test]
async fn long_ranges_find_files_of_distant_dates() {
    let lake = lake().await;
    let far = DAY_MS + 60 * 24 * HOUR_MS;
    let rows = vec![row("e-1", DAY_MS + 5), row("e-2", far + 5)];
    write_audit_rows(
        &lake.store,
        lake.bucket,
        &tenant(),
        METER,
        rows.clone(),
        100,
    )
    .await
    .unwrap();
    let filter = all_of(RunType::Normal, RecordType::Sample);
    assert_eq!(
        export(
            &lake,
            DAY_MS - 30 * 24 * HOUR_MS,
            far + 30 * 24 * HOUR_MS,
            &filter
        )
        .await,
        rows
    );
    assert_eq!(
        export(&lake, DAY_MS + 6, far + 30 * 24 * HOUR_MS, &filter).await,
        rows[1..]
    );
    assert_eq!(
        export(&lake, DAY_MS - 30 * 24 * HOUR_MS, far, &filter).await,
        rows[..1]
    );
}

#[tokio::test]
async fn runs_are_read_back_and_a_run_status_is_its_latest_change() {
    let lake = lake().await;
    let change = |session: &str, status: &str, at: i64| RunRow {
        tenant: "acme".into(),
        meter_id: METER.0,
        session_id: session.into(),
        run_type: "NORMAL".into(),
        status: status.into(),
        updated_at_ms: DAY_MS + at,
    };
    let first = vec![
        change("R-1", "RUNNING", 20),
        change("R-1", "INITIALIZING", 10),
        change("R-2", "RUNNING", 5),
    ];
    let later = vec![change("R-1", "COMPLETED", 30)];
    write_run_rows(&lake.store, lake.bucket, &tenant(), METER, first)
        .await
        .unwrap();
    write_run_rows(&lake.store, lake.bucket, &tenant(), METER, later)
        .await
        .unwrap();
    assert_eq!(
        write_run_rows(&lake.store, lake.bucket, &tenant(), METER, vec![])
            .await
            .unwrap(),
        None
    );

    let runs = read_runs(&lake.store, lake.bucket, &tenant(), METER)
        .await
        .unwrap();
    assert_eq!(runs.len(), 4);
    let statuses = latest_statuses(&runs);
    assert_eq!(statuses.get("R-1").map(String::as_str), Some("COMPLETED"));
    assert_eq!(statuses.get("R-2").map(String::as_str), Some("RUNNING"));
    assert!(read_runs(
        &lake.store,
        lake.bucket,
        &tenant(),
        auditx_proto::MeterId(8)
    )
    .await
    .unwrap()
    .is_empty());
}

#[tokio::test]
async fn broken_and_missing_files_fail_with_a_kind_callers_can_act_on() {
    let lake = lake().await;
    let key = "meter_audit_trail/tenant=acme/meter=7/date=2025-07-23/bogus.parquet";
    lake.store
        .put(
            lake.bucket,
            key,
            Bytes::from_static(b"not parquet at all"),
            "x",
        )
        .await
        .unwrap();
    let err = list_audit_files(
        &lake.store,
        lake.bucket,
        &tenant(),
        METER,
        DAY_MS,
        DAY_MS + 1,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, LakeError::Corrupt { key: k, .. } if k == key),
        "{err}"
    );
    assert!(!err.is_transient());

    let missing = LakeSource {
        key: "meter_audit_trail/gone.parquet".into(),
        size: 1000,
        row_groups: vec![0],
    };
    let filter = all_of(RunType::Normal, RecordType::Sample);
    let err = read_chunk_rows(
        &lake.store,
        lake.bucket,
        &[missing],
        DAY_MS,
        DAY_MS + 1,
        &filter,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, LakeError::Storage(StorageError::NotFound { .. })),
        "{err}"
    );
}

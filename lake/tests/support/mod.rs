//! A private lake for each test: an embedded S3 endpoint on a temp folder.
#![allow(dead_code)] // each test crate uses its own subset

use auditx_common::config::S3Config;
use auditx_common::embedded_s3::EmbeddedS3;
use auditx_common::s3::ObjectStore;
use auditx_lake::audit_trail::read::{list_audit_files, read_chunk_rows, LakeFile};
use auditx_lake::AuditRow;
use auditx_proto::{LakeSource, MeterId, RecordType, RowFilter, RunType, TenantId};

pub const BUCKET: &str = "lake";

pub struct Lake {
    pub store: ObjectStore,
    pub bucket: &'static str,
    _s3: EmbeddedS3,
    _dir: tempfile::TempDir,
}

/// An embedded S3 endpoint on a temp folder, holding the `BUCKET` bucket.
pub struct Endpoint {
    /// The client configuration reaching it, `lake_bucket` = `BUCKET`.
    pub config: S3Config,
    /// The SDK client ingest and generate write the lake with.
    pub writer: ObjectStore,
    pub s3: EmbeddedS3,
    pub dir: tempfile::TempDir,
}

pub async fn endpoint() -> Endpoint {
    let dir = tempfile::tempdir().unwrap();
    let s3 = EmbeddedS3::start(
        dir.path(),
        "127.0.0.1:0".parse().unwrap(),
        "test-access",
        "test-secret",
    )
    .await
    .unwrap();
    let config = s3.client_config(&S3Config {
        lake_bucket: BUCKET.into(),
        ..S3Config::default()
    });
    let writer = ObjectStore::new(&config);
    writer.ensure_bucket(BUCKET).await.unwrap();
    Endpoint {
        config,
        writer,
        s3,
        dir,
    }
}

pub async fn lake() -> Lake {
    let endpoint = endpoint().await;
    Lake {
        store: endpoint.writer,
        bucket: BUCKET,
        _s3: endpoint.s3,
        _dir: endpoint.dir,
    }
}

impl Lake {
    /// Every object key under `prefix`.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        self.store
            .list(self.bucket, prefix)
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect()
    }
}

pub fn tenant() -> TenantId {
    TenantId::from("acme")
}

pub const METER: MeterId = MeterId(7);

/// `2025-07-23T00:00:00Z`
pub const DAY_MS: i64 = 1_753_228_800_000;

/// A NORMAL SAMPLE row of session R-1 by op-1.
pub fn row(event_id: &str, event_time_ms: i64) -> AuditRow {
    AuditRow {
        tenant: "acme".into(),
        entity: None,
        org: None,
        meter_id: METER.0,
        session_id: "R-1".into(),
        run_type: "NORMAL".into(),
        record_type: "SAMPLE".into(),
        operator_id: Some("op-1".into()),
        operator_type: Some("Source".into()),
        operator_name: Some("Usage File Import".into()),
        event_id: event_id.into(),
        trace_id: Some("0123456789abcdef0123456789abcdef".into()),
        event_time_ms,
        error_code: None,
        error_message: None,
        payload: Some(r#"{"accountNumber":"A1","quantity":2}"#.into()),
    }
}

/// Sorted the way exports order rows.
pub fn sorted(mut rows: Vec<AuditRow>) -> Vec<AuditRow> {
    rows.sort_by(|a, b| (a.event_time_ms, &a.event_id).cmp(&(b.event_time_ms, &b.event_id)));
    rows
}

/// Every row group of `files`, as the planner would hand them to a worker.
pub fn sources(files: &[LakeFile]) -> Vec<LakeSource> {
    files
        .iter()
        .map(|f| LakeSource {
            key: f.key.clone(),
            size: f.size,
            row_groups: f.row_groups.iter().map(|g| g.index).collect(),
        })
        .collect()
}

/// Every row of the test meter in `[from, to)`, through the planner's
/// listing and the worker's reader, for all run/record type combinations.
pub async fn read_all(lake: &Lake, from: i64, to: i64) -> Vec<AuditRow> {
    let files = list_audit_files(&lake.store, lake.bucket, &tenant(), METER, from, to)
        .await
        .unwrap();
    let sources = sources(&files);
    let mut rows = Vec::new();
    for run_type in RunType::ALL {
        for record_type in RecordType::ALL {
            let filter = RowFilter {
                run_type,
                record_type,
                session_ids: None,
                operator_ids: None,
                scope: Default::default(),
            };
            rows.extend(
                read_chunk_rows(&lake.store, lake.bucket, &sources, from, to, &filter)
                    .await
                    .unwrap(),
            );
        }
    }
    sorted(rows)
}

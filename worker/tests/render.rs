//! Rendering chunks of a real lake (Parquet in the embedded S3 endpoint)
//! into staged CSV bytes, and assembling them into the file a user gets.

mod support;

use std::collections::BTreeMap;

use auditx_lake::audit_trail::read::list_audit_files;
use auditx_lake::audit_trail::write::write_audit_rows;
use auditx_lake::AuditRow;
use auditx_proto::{
    AssembleTask, ChunkId, FileIndex, LakeSource, MeterId, OutputFormat, RecordType, RenderTask,
    RequestId, RowFilter, RunType, Segment, TenantId,
};
use auditx_worker::export::csv;
use auditx_worker::{assemble_file, render_chunk};
use sha2::{Digest, Sha256};

/// 2025-07-23T18:46:48.775Z
const T: i64 = 1_753_296_408_775;
const DAY: i64 = 86_400_000;

fn row(event_id: &str, event_time_ms: i64, session_id: &str) -> AuditRow {
    AuditRow {
        tenant: "acme".into(),
        entity: Some("ent-1".into()),
        org: None,
        meter_id: 7,
        session_id: session_id.into(),
        run_type: "NORMAL".into(),
        record_type: "SAMPLE".into(),
        operator_id: None,
        operator_type: None,
        operator_name: None,
        event_id: event_id.into(),
        trace_id: None,
        event_time_ms,
        error_code: None,
        error_message: None,
        payload: Some("{}".into()),
    }
}

/// Rows in `[T, T + DAY)` and around it; `EXPECTED` is what the chunk
/// renders to.
fn lake_rows() -> Vec<AuditRow> {
    let with_error = AuditRow {
        error_code: Some("E1".into()),
        error_message: Some("bad \"unit\"\nline 2".into()),
        payload: None,
        ..row("e-c", T + 1, "R-1")
    };
    vec![
        row("e-d", T + DAY - 1, "R-1"),
        AuditRow {
            operator_id: Some("op-1".into()),
            operator_type: Some("Transform".into()),
            operator_name: Some("Rate, usage".into()),
            trace_id: Some("tr-1".into()),
            payload: Some(r#"{"a":1,"b":"x"}"#.into()),
            ..row("e-b", T, "R-1")
        },
        with_error.clone(),
        AuditRow {
            operator_id: Some("op-2".into()),
            operator_type: Some("Source".into()),
            operator_name: Some("reader".into()),
            payload: Some(r#"{"n":null}"#.into()),
            ..row("e-a", T, "R-2")
        },
        with_error,
        row("before", T - 1, "R-1"),
        row("after", T + DAY, "R-1"),
        AuditRow {
            record_type: "ERROR".into(),
            ..row("error-record", T + 5, "R-1")
        },
        AuditRow {
            run_type: "DEBUG".into(),
            ..row("debug-run", T + 6, "R-1")
        },
    ]
}

const EXPECTED: &str = "\
e-a,2025-07-23T18:46:48.775Z,R-2,NORMAL,,op-2,Source,reader,,,,\"{\"\"n\"\":null}\"
e-b,2025-07-23T18:46:48.775Z,R-1,NORMAL,COMPLETED,op-1,Transform,\"Rate, usage\",,,tr-1,\"{\"\"a\"\":1,\"\"b\"\":\"\"x\"\"}\"
e-c,2025-07-23T18:46:48.776Z,R-1,NORMAL,COMPLETED,,,,E1,\"bad \"\"unit\"\"
line 2\",,
e-d,2025-07-24T18:46:48.774Z,R-1,NORMAL,COMPLETED,,,,,,,{}
";

const REQUEST: &str = "r-render";

async fn write_lake(s3: &support::TestS3) -> anyhow::Result<()> {
    let (tenant, meter) = (TenantId::from("acme"), MeterId(7));
    write_audit_rows(
        &s3.store,
        &s3.config.lake_bucket,
        &tenant,
        meter,
        lake_rows(),
        2,
    )
    .await?;
    Ok(())
}

async fn render_task(
    s3: &support::TestS3,
    chunk: u32,
    from_ms: i64,
    to_ms: i64,
) -> anyhow::Result<RenderTask> {
    let (tenant, meter) = (TenantId::from("acme"), MeterId(7));
    let files = list_audit_files(
        &s3.store,
        &s3.config.lake_bucket,
        &tenant,
        meter,
        from_ms,
        to_ms,
    )
    .await?;
    let sources = files
        .into_iter()
        .map(|f| LakeSource {
            key: f.key,
            size: f.size,
            row_groups: f.row_groups.iter().map(|g| g.index).collect(),
        })
        .collect();
    Ok(RenderTask {
        request_id: RequestId::from(REQUEST),
        tenant,
        meter_id: meter,
        chunk: ChunkId(chunk),
        from_ms,
        to_ms,
        sources,
        filter: RowFilter {
            run_type: RunType::Normal,
            record_type: RecordType::Sample,
            session_ids: None,
            operator_ids: None,
            scope: Default::default(),
        },
        run_statuses: BTreeMap::from([("R-1".to_string(), "COMPLETED".to_string())]),
        format: OutputFormat::Csv,
        staging_key: format!("_staging/{REQUEST}/{chunk:06}"),
        offset_stride: 2,
        event_id_from: None,
        event_id_to: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_renders_its_rows_in_export_order() -> anyhow::Result<()> {
    let s3 = support::start_s3().await?;
    write_lake(&s3).await?;
    let task = render_task(&s3, 0, T, T + DAY).await?;
    assert!(
        task.sources.len() >= 2,
        "rows of two dates live in two files"
    );

    let outcome = render_chunk(
        &s3.store,
        &s3.config.lake_bucket,
        &s3.config.export_bucket,
        &task,
    )
    .await?;
    let staged = s3
        .store
        .get(&s3.config.export_bucket, &task.staging_key)
        .await?;
    assert_eq!(std::str::from_utf8(&staged)?, EXPECTED);
    assert_eq!(outcome.rows, 4);
    assert_eq!(outcome.bytes, EXPECTED.len() as u64);
    assert_eq!(
        outcome.row_offsets,
        [0, EXPECTED.find("e-c,").unwrap() as u64]
    );
    assert_eq!(outcome.staging_key, task.staging_key);
    assert_eq!(outcome.chunk, ChunkId(0));

    // A redelivered task renders the very same bytes.
    let again = render_chunk(
        &s3.store,
        &s3.config.lake_bucket,
        &s3.config.export_bucket,
        &task,
    )
    .await?;
    assert_eq!(again, outcome);
    Ok(())
}

/// A hot millisecond split by eventId: each piece renders only its own
/// eventIds, and the pieces in order are exactly the unsplit rendering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_millisecond_split_by_event_id_renders_each_row_once_in_order() -> anyhow::Result<()> {
    let s3 = support::start_s3().await?;
    let (tenant, meter) = (TenantId::from("acme"), MeterId(7));
    let rows: Vec<_> = (0..300)
        .map(|i| row(&format!("hot-{:04}", (i * 7919) % 300), T, "R-1"))
        .collect();
    write_audit_rows(&s3.store, &s3.config.lake_bucket, &tenant, meter, rows, 64).await?;
    let whole = render_task(&s3, 0, T, T + 1).await?;
    let outcome = render_chunk(
        &s3.store,
        &s3.config.lake_bucket,
        &s3.config.export_bucket,
        &whole,
    )
    .await?;
    assert_eq!(outcome.rows, 300);
    let expected = s3
        .store
        .get(&s3.config.export_bucket, &whole.staging_key)
        .await?;

    let bounds = [
        None,
        Some("hot-0100"),
        Some("hot-0101"),
        Some("hot-0250"),
        None,
    ];
    let mut pieces = Vec::new();
    let mut rows = Vec::new();
    for (i, pair) in bounds.windows(2).enumerate() {
        let mut task = render_task(&s3, i as u32 + 1, T, T + 1).await?;
        task.event_id_from = pair[0].map(str::to_owned);
        task.event_id_to = pair[1].map(str::to_owned);
        let outcome = render_chunk(
            &s3.store,
            &s3.config.lake_bucket,
            &s3.config.export_bucket,
            &task,
        )
        .await?;
        assert!(outcome.event_ids_bounded);
        rows.push(outcome.rows);
        pieces.extend_from_slice(
            &s3.store
                .get(&s3.config.export_bucket, &task.staging_key)
                .await?,
        );
    }
    assert_eq!(rows, [100, 1, 149, 50]);
    assert_eq!(pieces, expected.to_vec());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_chunk_stages_an_empty_object() -> anyhow::Result<()> {
    let s3 = support::start_s3().await?;
    write_lake(&s3).await?;
    let task = render_task(&s3, 3, T + 2, T + 3).await?;
    let outcome = render_chunk(
        &s3.store,
        &s3.config.lake_bucket,
        &s3.config.export_bucket,
        &task,
    )
    .await?;
    assert_eq!((outcome.rows, outcome.bytes), (0, 0));
    assert!(outcome.row_offsets.is_empty());
    assert!(s3
        .store
        .get(&s3.config.export_bucket, &task.staging_key)
        .await?
        .is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_chunks_assemble_into_the_exported_file() -> anyhow::Result<()> {
    let s3 = support::start_s3().await?;
    let bucket = &s3.config.export_bucket;
    write_lake(&s3).await?;
    let mut segments = Vec::new();
    for (chunk, (from, to)) in [(T, T + 1), (T + 1, T + DAY)].into_iter().enumerate() {
        let task = render_task(&s3, chunk as u32, from, to).await?;
        let outcome = render_chunk(&s3.store, &s3.config.lake_bucket, bucket, &task).await?;
        segments.push(Segment {
            key: outcome.staging_key,
            start: 0,
            end: outcome.bytes,
        });
    }

    let key = format!("acme/{REQUEST}/audit_trail_sample_0001.csv");
    let upload_id = s3
        .store
        .create_multipart(bucket, &key, OutputFormat::Csv.content_type())
        .await?;
    let task = AssembleTask {
        request_id: RequestId::from(REQUEST),
        tenant: TenantId::from("acme"),
        file: FileIndex(0),
        key: key.clone(),
        upload_id: upload_id.clone(),
        format: OutputFormat::Csv,
        segments,
        rows: 4,
        part_size: 5 * 1024 * 1024,
        resume: None,
        stage: 0,
    };
    let outcome = assemble_file(&s3.store, bucket, &task).await?;
    let parts: Vec<_> = outcome
        .parts
        .iter()
        .map(|p| (p.number, p.etag.clone()))
        .collect();
    s3.store
        .complete_multipart(bucket, &key, &upload_id, &parts)
        .await?;

    let downloaded = s3.store.get(bucket, &key).await?;
    let expected = [csv::HEADER, EXPECTED.as_bytes()].concat();
    assert_eq!(
        std::str::from_utf8(&downloaded)?,
        std::str::from_utf8(&expected)?
    );
    assert_eq!(outcome.sha256, hex::encode(Sha256::digest(&expected)));
    assert_eq!((outcome.rows, outcome.bytes), (4, expected.len() as u64));
    Ok(())
}

//! Writing the lake: rows → sorted, content-addressed Parquet files.
//!
//! A file's key is the hash of its bytes, and encoding is deterministic, so
//! a retried write of the same rows lands on the same key instead of adding
//! a duplicate file.

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use auditx_proto::{MeterId, TenantId};
use bytes::Bytes;
use chrono::NaiveDate;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::convert::{audit_batch, runs_batch};
use super::layout;
use super::schema::{audit_columns as ac, audit_schema, runs_schema};
use crate::files::{content_hash, file_key};
use crate::{AuditRow, LakeError, LakeResult, RunRow};
use auditx_common::s3::ObjectStore;

const CONTENT_TYPE: &str = "application/vnd.apache.parquet";

fn parquet_error(e: impl std::fmt::Display) -> LakeError {
    LakeError::Parquet(e.to_string())
}

/// The UTC date partition of an epoch-millisecond time.
pub fn utc_date(ms: i64) -> NaiveDate {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.date_naive())
        .unwrap_or(if ms < 0 {
            NaiveDate::MIN
        } else {
            NaiveDate::MAX
        })
}

fn index_of(name: &str) -> usize {
    audit_schema()
        .index_of(name)
        .expect("column of the audit schema")
}

/// Snappy decodes fastest, and exports read every file many times over.
/// Columns that are unique per row skip dictionaries (they would only fall
/// back to plain after wasting the dictionary page); statistics stay at
/// chunk level, which is what planning reads.
fn audit_properties(row_group_rows: usize) -> WriterProperties {
    let sorting = [ac::EVENT_TIME, ac::EVENT_ID]
        .map(|name| SortingColumn {
            column_idx: index_of(name) as i32,
            descending: false,
            nulls_first: false,
        })
        .to_vec();
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(row_group_rows.max(1)))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_sorting_columns(Some(sorting));
    for name in [ac::EVENT_ID, ac::TRACE_ID, ac::EVENT_TIME, ac::PAYLOAD] {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(name), false);
    }
    builder.build()
}

fn encode(
    batches: impl Iterator<Item = LakeResult<RecordBatch>>,
    properties: WriterProperties,
    schema: arrow::datatypes::SchemaRef,
) -> LakeResult<Bytes> {
    let mut writer =
        ArrowWriter::try_new(Vec::new(), schema, Some(properties)).map_err(parquet_error)?;
    for batch in batches {
        writer.write(&batch?).map_err(parquet_error)?;
        // One batch per row group: row group boundaries follow the sort order.
        writer.flush().map_err(parquet_error)?;
    }
    Ok(Bytes::from(writer.into_inner().map_err(parquet_error)?))
}

/// Encodes audit rows as one Parquet file, sorted by (`eventTime`,
/// `eventId`), with row groups of at most `row_group_rows` rows and
/// statistics on `eventTime`.
pub fn encode_audit_parquet(rows: &mut [AuditRow], row_group_rows: usize) -> LakeResult<Bytes> {
    rows.sort_unstable_by(|a, b| {
        (a.event_time_ms, &a.event_id).cmp(&(b.event_time_ms, &b.event_id))
    });
    let row_group_rows = row_group_rows.max(1);
    encode(
        rows.chunks(row_group_rows).map(audit_batch),
        audit_properties(row_group_rows),
        audit_schema(),
    )
}

/// Encodes run rows as one Parquet file, sorted by `updatedAt`.
pub fn encode_runs_parquet(rows: &mut [RunRow]) -> LakeResult<Bytes> {
    // Stable: rows with the same time keep their order, which decides ties
    // in `latest_statuses`.
    rows.sort_by_key(|r| r.updated_at_ms);
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .build();
    encode(std::iter::once(runs_batch(rows)), properties, runs_schema())
}

/// Encodes and uploads the audit rows of one date partition; returns the key.
pub(crate) async fn put_audit_file(
    store: &ObjectStore,
    bucket: &str,
    prefix: &str,
    mut rows: Vec<AuditRow>,
    row_group_rows: usize,
) -> LakeResult<String> {
    // Encoding is CPU-bound: keep it off the async workers.
    let bytes =
        tokio::task::spawn_blocking(move || encode_audit_parquet(&mut rows, row_group_rows))
            .await
            .map_err(|e| LakeError::Parquet(format!("encoding task failed: {e}")))??;
    let key = file_key(prefix, &content_hash(&bytes));
    let size = bytes.len();
    store.put(bucket, &key, bytes, CONTENT_TYPE).await?;
    tracing::debug!(key = %key, bytes = size, "lake file written");
    Ok(key)
}

/// Writes audit rows of one meter: one file per UTC date partition, named
/// by the hash of its content. Returns the keys written.
pub async fn write_audit_rows(
    store: &ObjectStore,
    bucket: &str,
    tenant: &TenantId,
    meter: MeterId,
    rows: Vec<AuditRow>,
    row_group_rows: usize,
) -> LakeResult<Vec<String>> {
    let mut by_date: BTreeMap<NaiveDate, Vec<AuditRow>> = BTreeMap::new();
    for row in rows {
        by_date
            .entry(utc_date(row.event_time_ms))
            .or_default()
            .push(row);
    }
    let mut keys = Vec::with_capacity(by_date.len());
    for (date, rows) in by_date {
        let prefix = layout::audit_date_prefix(tenant, meter, date);
        keys.push(put_audit_file(store, bucket, &prefix, rows, row_group_rows).await?);
    }
    Ok(keys)
}

/// Writes run rows of one meter as one content-addressed file.
pub async fn write_run_rows(
    store: &ObjectStore,
    bucket: &str,
    tenant: &TenantId,
    meter: MeterId,
    mut rows: Vec<RunRow>,
) -> LakeResult<Option<String>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let bytes = encode_runs_parquet(&mut rows)?;
    let key = file_key(
        &layout::runs_meter_prefix(tenant, meter),
        &content_hash(&bytes),
    );
    store.put(bucket, &key, bytes, CONTENT_TYPE).await?;
    tracing::debug!(key = %key, rows = rows.len(), "lake runs file written");
    Ok(Some(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_and_out_of_range_times_clamp() {
        // 2025-07-23T23:59:59.999Z and the next millisecond.
        assert_eq!(
            utc_date(1_753_315_199_999),
            NaiveDate::from_ymd_opt(2025, 7, 23).unwrap()
        );
        assert_eq!(
            utc_date(1_753_315_200_000),
            NaiveDate::from_ymd_opt(2025, 7, 24).unwrap()
        );
        assert_eq!(utc_date(i64::MAX), NaiveDate::MAX);
        assert_eq!(utc_date(i64::MIN), NaiveDate::MIN);
    }
}

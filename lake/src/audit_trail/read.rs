//! Reading the lake from S3: footers and row-group statistics for planning,
//! exactly a chunk's rows for rendering (filters pushed down), and the
//! API's online pages and counts ([`scan`]).

mod chunk;
mod object_reader;
mod predicate;
mod scan;

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use auditx_proto::{LakeSource, MeterId, RowFilter, TenantId};
use chrono::NaiveDate;
use futures::{stream, StreamExt, TryStreamExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;

pub use self::scan::{
    count_groups, rank_groups, read_page, GroupCounts, Position, MAX_GROUP_COLUMNS,
};

use self::object_reader::ObjectReader;
pub use self::predicate::EventIdRange;
use super::convert::push_run_rows;
use super::layout;
use super::schema::audit_columns as ac;
use super::write::utc_date;
use crate::{AuditRow, LakeError, LakeResult, RunRow};
use auditx_common::s3::{ObjectMeta, ObjectStore, StorageError};

/// S3 requests (listings, footers, run files) in flight at once.
const REQUEST_CONCURRENCY: usize = 8;
/// Up to this many days a listing goes partition by partition; past it one
/// listing of the whole meter (filtered by date) takes fewer requests.
const MAX_DAYS_LISTED_ONE_BY_ONE: i64 = 31;

/// Statistics of one row group, from the file footer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowGroupInfo {
    pub index: u32,
    pub rows: u64,
    /// Smallest and largest `eventTime` in the row group (epoch ms).
    pub min_time_ms: i64,
    pub max_time_ms: i64,
}

/// A lake file with the statistics of its row groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LakeFile {
    pub key: String,
    pub size: u64,
    pub row_groups: Vec<RowGroupInfo>,
}

/// Maps a Parquet failure while reading `key`: an S3 failure keeps its
/// kind (so a transient one is retried), anything else means a bad file.
fn read_error(key: &str, err: ParquetError) -> LakeError {
    match err {
        ParquetError::External(inner) => match inner.downcast::<StorageError>() {
            Ok(storage) => LakeError::Storage(*storage),
            Err(other) => corrupt(key, other.to_string()),
        },
        other => corrupt(key, other.to_string()),
    }
}

fn corrupt(key: &str, message: impl Into<String>) -> LakeError {
    LakeError::Corrupt {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// The objects of the date partitions `first..=last` of a meter.
async fn list_partitions(
    store: &ObjectStore,
    bucket: &str,
    tenant: &TenantId,
    meter: MeterId,
    first: NaiveDate,
    last: NaiveDate,
) -> LakeResult<Vec<ObjectMeta>> {
    if (last - first).num_days() < MAX_DAYS_LISTED_ONE_BY_ONE {
        let prefixes: Vec<String> = first
            .iter_days()
            .take_while(|d| *d <= last)
            .map(|d| layout::audit_date_prefix(tenant, meter, d))
            .collect();
        let listings: Vec<Vec<ObjectMeta>> = stream::iter(prefixes)
            .map(|prefix| async move { store.list(bucket, &prefix).await })
            .buffered(REQUEST_CONCURRENCY)
            .try_collect()
            .await?;
        return Ok(listings.concat());
    }
    let meter_prefix = layout::audit_meter_prefix(tenant, meter);
    let in_range = |key: &str| {
        let date = key
            .strip_prefix(&meter_prefix)?
            .strip_prefix("date=")?
            .get(..10)?;
        let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
        Some(first <= date && date <= last)
    };
    let objects = store.list(bucket, &meter_prefix).await?;
    Ok(objects
        .into_iter()
        .filter(|o| in_range(&o.key) == Some(true))
        .collect())
}

/// Row-group statistics of one file, keeping row groups that overlap
/// `[from_ms, to_ms)`.
fn overlapping_row_groups(
    key: &str,
    metadata: &ParquetMetaData,
    from_ms: i64,
    to_ms: i64,
) -> LakeResult<Vec<RowGroupInfo>> {
    let schema = metadata.file_metadata().schema_descr();
    let column = (0..schema.num_columns())
        .find(|&i| schema.column(i).path().string() == ac::EVENT_TIME)
        .ok_or_else(|| corrupt(key, "no eventTime column"))?;
    let mut groups = Vec::new();
    for (index, group) in metadata.row_groups().iter().enumerate() {
        if group.num_rows() == 0 {
            continue;
        }
        let Some(Statistics::Int64(stats)) = group.column(column).statistics() else {
            return Err(corrupt(
                key,
                format!("row group {index} has no eventTime statistics"),
            ));
        };
        let (Some(&min), Some(&max)) = (stats.min_opt(), stats.max_opt()) else {
            return Err(corrupt(
                key,
                format!("row group {index} has no eventTime min/max"),
            ));
        };
        if max >= from_ms && min < to_ms {
            groups.push(RowGroupInfo {
                index: index as u32,
                rows: group.num_rows() as u64,
                min_time_ms: min,
                max_time_ms: max,
            });
        }
    }
    Ok(groups)
}

/// Lists the `meter_audit_trail` files of a meter whose date partitions can
/// hold rows of `[from_ms, to_ms)`, with the statistics of every row group
/// (row groups entirely outside the range are left out; files left with no
/// row group are left out).
#[tracing::instrument(name = "lake.list_audit_files", skip_all, fields(tenant = %tenant, meter = %meter))]
pub async fn list_audit_files(
    store: &ObjectStore,
    bucket: &str,
    tenant: &TenantId,
    meter: MeterId,
    from_ms: i64,
    to_ms: i64,
) -> LakeResult<Vec<LakeFile>> {
    if from_ms >= to_ms {
        return Ok(Vec::new());
    }
    let (first, last) = (utc_date(from_ms), utc_date(to_ms - 1));
    let objects = list_partitions(store, bucket, tenant, meter, first, last).await?;
    let files: Vec<LakeFile> =
        stream::iter(objects.into_iter().filter(|o| o.key.ends_with(".parquet")))
            .map(|object| async move {
                let mut reader = ObjectReader::new(store, bucket, &object.key, object.size);
                let metadata = reader
                    .get_metadata(None)
                    .await
                    .map_err(|e| read_error(&object.key, e))?;
                let row_groups = overlapping_row_groups(&object.key, &metadata, from_ms, to_ms)?;
                Ok::<_, LakeError>(LakeFile {
                    key: object.key,
                    size: object.size,
                    row_groups,
                })
            })
            .buffered(REQUEST_CONCURRENCY)
            .try_filter(|file| std::future::ready(!file.row_groups.is_empty()))
            .try_collect()
            .await?;
    tracing::debug!(files = files.len(), "lake files listed");
    Ok(files)
}

/// Reads the rows of the given row groups whose `eventTime` is in
/// `[from_ms, to_ms)` and that match `filter`, in no particular order.
pub async fn read_chunk_rows(
    store: &ObjectStore,
    bucket: &str,
    sources: &[LakeSource],
    from_ms: i64,
    to_ms: i64,
    filter: &RowFilter,
) -> LakeResult<Vec<AuditRow>> {
    let all = EventIdRange::default();
    let read = ChunkRead {
        sources,
        from_ms,
        to_ms,
        event_ids: &all,
        filter,
    };
    read.rows(store, bucket).await
}

/// What one export chunk reads: the listed row groups, the rows of them
/// whose `eventTime` is in `[from_ms, to_ms)`, whose eventId is in
/// `event_ids` (a hot millisecond split by eventId; rows outside it are
/// never decoded) and that match `filter`.
#[derive(Clone, Copy, Debug)]
pub struct ChunkRead<'a> {
    pub sources: &'a [LakeSource],
    pub from_ms: i64,
    pub to_ms: i64,
    pub event_ids: &'a EventIdRange,
    pub filter: &'a RowFilter,
}

impl ChunkRead<'_> {
    /// The chunk's rows, every column, in no particular order.
    #[tracing::instrument(name = "lake.read_chunk_rows", skip_all, fields(sources = self.sources.len()))]
    pub async fn rows(&self, store: &ObjectStore, bucket: &str) -> LakeResult<Vec<AuditRow>> {
        let parts = chunk::read_row_groups(store, bucket, self, None, chunk::to_audit_rows).await?;
        let mut rows = Vec::with_capacity(parts.iter().map(Vec::len).sum());
        parts.into_iter().for_each(|part| rows.extend(part));
        tracing::debug!(rows = rows.len(), "chunk rows read");
        Ok(rows)
    }

    /// The chunk's rows as Arrow record batches of the named audit columns
    /// only (in the order named), for callers that work on columns: no row
    /// is built, and columns neither named nor filtered on are never read.
    /// Each batch holds rows of one lake file; at most 8,192 rows each.
    #[tracing::instrument(name = "lake.read_chunk_batches", skip_all, fields(sources = self.sources.len()))]
    pub async fn batches(
        &self,
        store: &ObjectStore,
        bucket: &str,
        columns: &[&'static str],
    ) -> LakeResult<Vec<RecordBatch>> {
        let parts =
            chunk::read_row_groups(store, bucket, self, Some(columns), |batches, _| Ok(batches))
                .await?;
        let batches: Vec<RecordBatch> = parts.into_iter().flatten().collect();
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        tracing::debug!(rows, batches = batches.len(), "chunk batches read");
        Ok(batches)
    }
}

/// Every audit file of a meter, all dates (the object listing only).
pub async fn list_meter_audit_objects(
    store: &ObjectStore,
    bucket: &str,
    tenant: &TenantId,
    meter: MeterId,
) -> LakeResult<Vec<ObjectMeta>> {
    let objects = store
        .list(bucket, &layout::audit_meter_prefix(tenant, meter))
        .await?;
    Ok(objects
        .into_iter()
        .filter(|o| o.key.ends_with(".parquet"))
        .collect())
}

/// The `eventId` of every row of one audit file (only that column is read).
pub async fn read_event_ids(
    store: &ObjectStore,
    bucket: &str,
    object: &ObjectMeta,
) -> LakeResult<Vec<String>> {
    use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
    use parquet::arrow::ProjectionMask;

    let key = object.key.as_str();
    let reader = ObjectReader::new(store, bucket, key, object.size);
    let builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(|e| read_error(key, e))?;
    let schema = builder.parquet_schema();
    let column = (0..schema.num_columns())
        .find(|&i| schema.column(i).path().string() == ac::EVENT_ID)
        .ok_or_else(|| corrupt(key, "no eventId column"))?;
    let mask = ProjectionMask::leaves(schema, [column]);
    let batches: Vec<arrow::array::RecordBatch> = builder
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| read_error(key, e))?
        .try_collect()
        .await
        .map_err(|e| read_error(key, e))?;
    let mut ids = Vec::with_capacity(batches.iter().map(|b| b.num_rows()).sum());
    for batch in &batches {
        use arrow::array::AsArray;
        let column = batch
            .column(0)
            .as_string_opt::<i32>()
            .ok_or_else(|| corrupt(key, "eventId is not a string column"))?;
        ids.extend(column.iter().flatten().map(str::to_owned));
    }
    Ok(ids)
}

/// The eventIds of every row at exactly `at_ms` in the listed row groups
/// that `keep` selects (e.g. a deterministic sample), unsorted: what the
/// planner needs to split a hot millisecond by eventId. Reads only the
/// eventTime and eventId columns.
pub async fn event_ids_at(
    store: &ObjectStore,
    bucket: &str,
    sources: &[LakeSource],
    at_ms: i64,
    keep: &(dyn Fn(&str) -> bool + Sync),
) -> LakeResult<Vec<String>> {
    chunk::read_event_ids(store, bucket, sources, at_ms, keep).await
}

/// Every `meter_runs` row of a meter.
pub async fn read_runs(
    store: &ObjectStore,
    bucket: &str,
    tenant: &TenantId,
    meter: MeterId,
) -> LakeResult<Vec<RunRow>> {
    let objects = store
        .list(bucket, &layout::runs_meter_prefix(tenant, meter))
        .await?;
    // Run files are small (one row per status change): read them whole.
    let files: Vec<Vec<RunRow>> =
        stream::iter(objects.into_iter().filter(|o| o.key.ends_with(".parquet")))
            .map(|object| async move {
                let bytes = store.get(bucket, &object.key).await?;
                let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
                    .and_then(|b| b.build())
                    .map_err(|e| read_error(&object.key, e))?;
                let mut rows = Vec::new();
                for batch in reader {
                    let batch = batch.map_err(|e| corrupt(&object.key, e.to_string()))?;
                    push_run_rows(&batch, &object.key, &mut rows)?;
                }
                Ok::<_, LakeError>(rows)
            })
            .buffered(REQUEST_CONCURRENCY)
            .try_collect()
            .await?;
    Ok(files.concat())
}

/// The status of each run (sessionId → status of its latest row; ties
/// broken by the later status in input order).
pub fn latest_statuses(runs: &[RunRow]) -> BTreeMap<String, String> {
    let mut latest: BTreeMap<&str, &RunRow> = BTreeMap::new();
    for run in runs {
        let entry = latest.entry(run.session_id.as_str()).or_insert(run);
        if run.updated_at_ms >= entry.updated_at_ms {
            *entry = run;
        }
    }
    latest
        .into_iter()
        .map(|(session, run)| (session.to_owned(), run.status.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(session: &str, status: &str, at: i64) -> RunRow {
        RunRow {
            tenant: "acme".into(),
            meter_id: 1,
            session_id: session.into(),
            run_type: "NORMAL".into(),
            status: status.into(),
            updated_at_ms: at,
        }
    }

    #[test]
    fn latest_status_wins_and_ties_go_to_the_later_row() {
        let runs = [
            run("R-1", "RUNNING", 20),
            run("R-1", "INITIALIZING", 10),
            run("R-2", "RUNNING", 5),
            run("R-2", "PAUSED", 5),
        ];
        let statuses = latest_statuses(&runs);
        assert_eq!(statuses["R-1"], "RUNNING");
        assert_eq!(statuses["R-2"], "PAUSED");
        assert_eq!(statuses.len(), 2);
    }

    #[test]
    fn foreign_schemas_are_reported_with_the_column() {
        use arrow::datatypes::{DataType, Field, Schema};
        let schema = Schema::new(vec![Field::new("tenant", DataType::Int64, false)]);
        assert_eq!(
            chunk::check_audit_schema("k", &schema)
                .unwrap_err()
                .to_string(),
            "corrupt lake file k: column tenant is Int64, expected Utf8"
        );
    }
}

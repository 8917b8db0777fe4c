//! Reading a chunk: the listed row groups of some files, decoded in
//! parallel (one task per row group) with the chunk's filter pushed down.

use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::Schema;
use auditx_proto::LakeSource;
use futures::{stream, StreamExt, TryStreamExt};
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, RowFilter as ParquetRowFilter,
};
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use parquet::arrow::ProjectionMask;

use super::object_reader::ObjectReader;
use super::predicate::Predicate;
use super::{corrupt, read_error, ChunkRead, REQUEST_CONCURRENCY};
use crate::audit_trail::convert::{push_audit_rows, Columns};
use crate::audit_trail::schema::{audit_columns as ac, audit_schema};
use crate::{AuditRow, LakeError, LakeResult};
use auditx_common::s3::ObjectStore;

/// Row groups decoded at once for one chunk: at least this many…
const ROW_GROUP_CONCURRENCY: usize = 4;
/// …and more when they are small, as long as the rows in flight stay
/// within four row groups of ingest's default size (65,536 rows): a small
/// export over many days' files then reads them all in one round of
/// requests instead of several.
const ROWS_IN_FLIGHT: u64 = 4 * 65_536;
const MAX_ROW_GROUP_CONCURRENCY: usize = 16;
const BATCH_ROWS: usize = 8192;

/// Checks that a file has every audit column with the expected type.
pub(super) fn check_audit_schema(key: &str, actual: &Schema) -> LakeResult<()> {
    for expected in audit_schema().fields() {
        let (name, wanted) = (expected.name(), expected.data_type());
        match actual.field_with_name(name) {
            Ok(field) if field.data_type() == wanted => {}
            Ok(field) => {
                let found = field.data_type();
                return Err(corrupt(
                    key,
                    format!("column {name} is {found}, expected {wanted}"),
                ));
            }
            Err(_) => return Err(corrupt(key, format!("column {name} is missing"))),
        }
    }
    Ok(())
}

/// One row group to decode, with its file's footer (fetched once per file).
pub(super) struct RowGroupRead {
    pub(super) key: String,
    pub(super) size: u64,
    pub(super) metadata: ArrowReaderMetadata,
    pub(super) row_group: usize,
}

pub(super) async fn row_group_reads(
    store: &ObjectStore,
    bucket: &str,
    source: &LakeSource,
) -> LakeResult<Vec<RowGroupRead>> {
    let mut reader = ObjectReader::new(store, bucket, &source.key, source.size);
    let metadata = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new())
        .await
        .map_err(|e| read_error(&source.key, e))?;
    check_audit_schema(&source.key, metadata.schema())?;
    let available = metadata.metadata().num_row_groups();
    let read = |&group: &u32| {
        let row_group = group as usize;
        if row_group >= available {
            let message = format!("row group {group} requested, file has {available}");
            return Err(corrupt(&source.key, message));
        }
        Ok(RowGroupRead {
            key: source.key.clone(),
            size: source.size,
            metadata: metadata.clone(),
            row_group,
        })
    };
    source.row_groups.iter().map(read).collect()
}

/// What a row group's task makes of its matching record batches (inside
/// the task, so that the work is spread over the cores too), given the
/// file's key for error messages.
pub(super) type Convert<T> = fn(Vec<RecordBatch>, &str) -> LakeResult<T>;

/// The matching rows of one row group as audit rows.
pub(super) fn to_audit_rows(batches: Vec<RecordBatch>, key: &str) -> LakeResult<Vec<AuditRow>> {
    let mut rows = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    for batch in &batches {
        push_audit_rows(batch, key, &mut rows)?;
    }
    Ok(rows)
}

/// Decodes one row group's matching rows, `columns` of them (all when
/// `None`), and converts them in the task.
async fn read_row_group<T>(
    store: ObjectStore,
    bucket: String,
    read: RowGroupRead,
    predicate: Arc<Predicate>,
    columns: Option<Arc<[&'static str]>>,
    convert: Convert<T>,
) -> LakeResult<T> {
    let key = read.key.as_str();
    let reader = ObjectReader::new(&store, &bucket, key, read.size);
    let projection = columns
        .map(|names| {
            let schema = read.metadata.schema();
            names
                .iter()
                .map(|name| {
                    schema
                        .index_of(name)
                        .map_err(|_| corrupt(key, format!("column {name} is missing")))
                })
                .collect::<LakeResult<Vec<usize>>>()
        })
        .transpose()?;
    let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, read.metadata);
    let mask = ProjectionMask::roots(builder.parquet_schema(), predicate.column_indices());
    let filter = ArrowPredicateFn::new(mask, move |batch| predicate.evaluate(&batch));
    let mut builder = builder
        .with_row_groups(vec![read.row_group])
        .with_row_filter(ParquetRowFilter::new(vec![Box::new(filter)]))
        .with_batch_size(BATCH_ROWS);
    if let Some(indices) = projection {
        let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
        builder = builder.with_projection(mask);
    }
    let batches: Vec<RecordBatch> = builder
        .build()
        .map_err(|e| read_error(key, e))?
        .try_collect()
        .await
        .map_err(|e| read_error(key, e))?;
    convert(batches, key)
}

/// Decodes the matching rows of every listed row group, each in its own
/// task (so a chunk uses every core): `columns` of them (all when `None`),
/// made into what `convert` makes of them.
pub(super) async fn read_row_groups<T: Send + 'static>(
    store: &ObjectStore,
    bucket: &str,
    read: &ChunkRead<'_>,
    columns: Option<&[&'static str]>,
    convert: Convert<T>,
) -> LakeResult<Vec<T>> {
    if read.from_ms >= read.to_ms {
        return Ok(Vec::new());
    }
    let predicate = Predicate::new(read.from_ms, read.to_ms, read.filter);
    let predicate = Arc::new(predicate.with_event_ids(read.event_ids));
    let columns: Option<Arc<[&'static str]>> = columns.map(Arc::from);
    // The futures are built before they are streamed: closures over
    // borrowed items inside the stream make rustc unable to prove the
    // whole future `Send` (a higher-ranked lifetime limitation).
    let footers: Vec<_> = read
        .sources
        .iter()
        .filter(|s| !s.row_groups.is_empty())
        .map(|source| row_group_reads(store, bucket, source))
        .collect();
    let reads: Vec<Vec<RowGroupRead>> = stream::iter(footers)
        .buffered(REQUEST_CONCURRENCY)
        .try_collect()
        .await?;
    let reads: Vec<RowGroupRead> = reads.into_iter().flatten().collect();
    let concurrency = row_group_concurrency(&reads);
    let decodes: Vec<_> = reads
        .into_iter()
        .map(|read| {
            let (store, bucket, predicate) = (store.clone(), bucket.to_owned(), predicate.clone());
            let task = read_row_group(store, bucket, read, predicate, columns.clone(), convert);
            async move {
                tokio::spawn(task)
                    .await
                    .map_err(|e| LakeError::Parquet(format!("row group task failed: {e}")))?
            }
        })
        .collect();
    stream::iter(decodes)
        .buffer_unordered(concurrency)
        .try_collect()
        .await
}

/// Row groups to decode at once: [`ROW_GROUP_CONCURRENCY`], or more while
/// the largest of them times the count stays within [`ROWS_IN_FLIGHT`].
fn row_group_concurrency(reads: &[RowGroupRead]) -> usize {
    let largest = reads
        .iter()
        .map(|r| {
            r.metadata
                .metadata()
                .row_group(r.row_group)
                .num_rows()
                .max(1) as u64
        })
        .max()
        .unwrap_or(1);
    usize::try_from(ROWS_IN_FLIGHT / largest)
        .unwrap_or(MAX_ROW_GROUP_CONCURRENCY)
        .clamp(ROW_GROUP_CONCURRENCY, MAX_ROW_GROUP_CONCURRENCY)
}

/// The eventIds of the rows at exactly `at_ms` in the listed row groups
/// that `keep` selects, unsorted. Only the eventTime and eventId columns
/// are read, and rows of other milliseconds are never decoded.
pub(super) async fn read_event_ids(
    store: &ObjectStore,
    bucket: &str,
    sources: &[LakeSource],
    at_ms: i64,
    keep: &(dyn Fn(&str) -> bool + Sync),
) -> LakeResult<Vec<String>> {
    let schema = audit_schema();
    let time_index = schema.index_of(ac::EVENT_TIME).expect("audit column");
    let id_index = schema.index_of(ac::EVENT_ID).expect("audit column");
    let mut ids = Vec::new();
    for source in sources.iter().filter(|s| !s.row_groups.is_empty()) {
        for read in row_group_reads(store, bucket, source).await? {
            let key = read.key.clone();
            let reader = ObjectReader::new(store, bucket, &key, read.size);
            let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, read.metadata);
            let parquet_schema = builder.parquet_schema();
            let time_mask = ProjectionMask::roots(parquet_schema, [time_index]);
            let projection = ProjectionMask::roots(parquet_schema, [time_index, id_index]);
            let at = ArrowPredicateFn::new(time_mask, move |batch: RecordBatch| {
                let columns = Columns::new(&batch, "eventId count");
                let times = columns
                    .millis(ac::EVENT_TIME)
                    .map_err(|e| arrow::error::ArrowError::SchemaError(e.to_string()))?;
                Ok(times.iter().map(|t| Some(t == Some(at_ms))).collect())
            });
            let mut batches = builder
                .with_row_groups(vec![read.row_group])
                .with_projection(projection)
                .with_row_filter(ParquetRowFilter::new(vec![Box::new(at)]))
                .with_batch_size(BATCH_ROWS)
                .build()
                .map_err(|e| read_error(&key, e))?;
            while let Some(batch) = batches.try_next().await.map_err(|e| read_error(&key, e))? {
                let columns = Columns::new(&batch, &key);
                let column = columns.strings(ac::EVENT_ID)?;
                ids.extend(
                    (0..column.len())
                        .map(|i| column.value(i))
                        .filter(|id| keep(id))
                        .map(str::to_owned),
                );
            }
        }
    }
    Ok(ids)
}

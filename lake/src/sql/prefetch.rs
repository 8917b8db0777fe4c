//! Reading a table file's next row group while this one decodes.
//!
//! DataFusion's Parquet scan alternates: it fetches the column chunks of a
//! row group, decodes them, and only then asks for the next row group's,
//! so a scan thread waits out every fetch (over HTTP, from S3 or the
//! embedded endpoint) with nothing to do. Each scan's file reader is
//! wrapped here: when the decoder asks for whole column chunks of row
//! group `r` (a scan that reads every row of its columns, as a GROUP BY or
//! a scan by time does), the same columns of the row group read next (`r +
//! 1`, or `r - 1` in a scan that goes backwards, newest first) are fetched
//! in the background, and the decoder's next request is answered from them.
//!
//! At most one row group's chunks are fetched ahead per reader, and none
//! bigger than [`AHEAD_BYTES`]; a request for another row group (the
//! next one was pruned) drops the fetch ahead. Requests for parts of
//! chunks (pages a filter kept) or for anything else (footers, indexes,
//! bloom filters) go to the reader as before. The bytes read ahead count in
//! the scan's `bytes_scanned` when the decoder takes them, and in its
//! `bytes_read_ahead`.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Result as DFResult;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{
    DefaultParquetFileReaderFactory, ParquetFileReaderFactory,
};
use datafusion::datasource::physical_plan::{FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet, MetricBuilder};
use datafusion::physical_plan::ExecutionPlan;
use futures::future::BoxFuture;
use futures::FutureExt;
use object_store::path::Path;
use object_store::ObjectStore;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaData;

/// The most a reader fetches ahead: one row group's chunks of the columns
/// a scan reads, or nothing.
pub const AHEAD_BYTES: u64 = 32 << 20;

/// `plan` with every Parquet scan's reader fetching ahead (see the
/// module's documentation); the chunks ahead are read from `store`.
pub fn fetching_ahead(
    plan: Arc<dyn ExecutionPlan>,
    store: Arc<dyn ObjectStore>,
) -> DFResult<Arc<dyn ExecutionPlan>> {
    let plan = plan.transform_up(|node| {
        let Some(exec) = node.downcast_ref::<DataSourceExec>() else {
            return Ok(Transformed::no(node));
        };
        let Some((config, source)) = exec.downcast_to_file_source::<ParquetSource>() else {
            return Ok(Transformed::no(node));
        };
        let inner = source
            .parquet_file_reader_factory()
            .cloned()
            .unwrap_or_else(|| Arc::new(DefaultParquetFileReaderFactory::new(Arc::clone(&store))));
        let source = source
            .clone()
            .with_parquet_file_reader_factory(Arc::new(AheadFactory {
                inner,
                store: Arc::clone(&store),
            }));
        let config = FileScanConfigBuilder::from(config.clone())
            .with_source(Arc::new(source))
            .build();
        Ok(Transformed::yes(
            DataSourceExec::from_data_source(config) as Arc<dyn ExecutionPlan>
        ))
    })?;
    Ok(plan.data)
}

/// Makes the scan's readers as before, each wrapped in an [`AheadReader`].
struct AheadFactory {
    inner: Arc<dyn ParquetFileReaderFactory>,
    store: Arc<dyn ObjectStore>,
}

impl fmt::Debug for AheadFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AheadFactory")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl ParquetFileReaderFactory for AheadFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> DFResult<Box<dyn AsyncFileReader + Send>> {
        let path = file.object_meta.location.clone();
        let range = file.range.as_ref().map(|r| r.start..r.end);
        // Counted as the scan's own reader counts its bytes.
        let builder = MetricBuilder::new(metrics).with_new_label("filename", path.to_string());
        let bytes_scanned = builder.clone().counter("bytes_scanned", partition_index);
        let bytes_read_ahead = builder.counter("bytes_read_ahead", partition_index);
        let inner = self
            .inner
            .create_reader(partition_index, file, metadata_size_hint, metrics)?;
        Ok(Box::new(AheadReader {
            inner,
            store: Arc::clone(&self.store),
            path,
            range,
            metadata: None,
            ahead: Vec::new(),
            last_row_group: None,
            backwards: false,
            bytes_scanned,
            bytes_read_ahead,
        }))
    }
}

/// A fetch ahead: the `chunks` (column, bytes) of `row_group`.
struct Ahead {
    row_group: usize,
    chunks: Vec<(usize, Range<u64>)>,
    fetch: AbortOnDrop<object_store::Result<Vec<Bytes>>>,
}

/// A spawned task, stopped when dropped unawaited.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct AheadReader {
    inner: Box<dyn AsyncFileReader + Send>,
    store: Arc<dyn ObjectStore>,
    path: Path,
    /// The part of the file this reader's scan reads (row groups that start
    /// in it), or all of it.
    range: Option<Range<i64>>,
    metadata: Option<Arc<ParquetMetaData>>,
    /// Fetches ahead, all of one row group.
    ahead: Vec<Ahead>,
    /// The row group last asked for whole, and whether the scan goes
    /// backwards (from the end of the file).
    last_row_group: Option<usize>,
    backwards: bool,
    bytes_scanned: Count,
    /// Of those, the bytes answered from a fetch ahead.
    bytes_read_ahead: Count,
}

/// Where `range` lies: the row group and column whose chunk holds it.
fn locate(metadata: &ParquetMetaData, range: &Range<u64>) -> Option<(usize, usize)> {
    metadata
        .row_groups()
        .iter()
        .enumerate()
        .find_map(|(g, group)| {
            group.columns().iter().enumerate().find_map(|(c, chunk)| {
                let (start, len) = chunk.byte_range();
                (start <= range.start && range.end <= start + len).then_some((g, c))
            })
        })
}

fn chunk_range(metadata: &ParquetMetaData, row_group: usize, column: usize) -> Range<u64> {
    let (start, len) = metadata.row_group(row_group).column(column).byte_range();
    start..start + len
}

impl AheadReader {
    /// The row group a scan that just asked for `row_group` reads next,
    /// in the direction it goes, if it is in this reader's part of the file.
    fn next_row_group(&self, metadata: &ParquetMetaData, row_group: usize) -> Option<usize> {
        let next = match self.backwards {
            true => row_group.checked_sub(1)?,
            false => row_group + 1,
        };
        let group = metadata.row_groups().get(next)?;
        let first = group.column(0);
        let offset = first
            .dictionary_page_offset()
            .unwrap_or_else(|| first.data_page_offset());
        match &self.range {
            Some(range) if !range.contains(&offset) => None,
            _ => Some(next),
        }
    }

    /// After a request for whole chunks of `columns` of `row_group`: fetch
    /// the same columns of the next row group in the background.
    fn fetch_ahead(&mut self, metadata: &ParquetMetaData, row_group: usize, columns: &[usize]) {
        let Some(next) = self.next_row_group(metadata, row_group) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.ahead.retain(|a| a.row_group == next);
        let chunks: Vec<(usize, Range<u64>)> = columns
            .iter()
            .filter(|&&c| {
                !self
                    .ahead
                    .iter()
                    .any(|a| a.chunks.iter().any(|(h, _)| *h == c))
            })
            .map(|&c| (c, chunk_range(metadata, next, c)))
            .collect();
        let held: u64 = self
            .ahead
            .iter()
            .flat_map(|a| &a.chunks)
            .map(|(_, r)| r.end - r.start)
            .sum();
        let bytes: u64 = chunks.iter().map(|(_, r)| r.end - r.start).sum();
        if chunks.is_empty() || held + bytes > AHEAD_BYTES {
            return;
        }
        let ranges: Vec<Range<u64>> = chunks.iter().map(|(_, r)| r.clone()).collect();
        let store = Arc::clone(&self.store);
        let path = self.path.clone();
        let fetch = runtime.spawn(async move { store.get_ranges(&path, &ranges).await });
        self.ahead.push(Ahead {
            row_group: next,
            chunks,
            fetch: AbortOnDrop(fetch),
        });
    }

    async fn ranges(&mut self, ranges: Vec<Range<u64>>) -> parquet::errors::Result<Vec<Bytes>> {
        let Some(metadata) = self.metadata.clone() else {
            return self.inner.get_byte_ranges(ranges).await;
        };
        let located: Vec<Option<(usize, usize)>> =
            ranges.iter().map(|r| locate(&metadata, r)).collect();
        let row_group = located.first().copied().flatten().map(|(g, _)| g);
        // What was fetched ahead for this request, if it was the right guess;
        // kept for later while the decoder still reads the row group before
        // (the rest of its columns, after a filter), dropped once it reads
        // another one.
        let (ahead, later): (Vec<Ahead>, Vec<Ahead>) = std::mem::take(&mut self.ahead)
            .into_iter()
            .partition(|a| located.iter().flatten().any(|(g, _)| *g == a.row_group));
        if row_group.is_none() || row_group == self.last_row_group {
            self.ahead = later;
        }
        // Whole chunks of one row group: a scan of every row, which reads
        // the next row group's chunks next.
        let whole = located
            .iter()
            .zip(&ranges)
            .all(|(l, r)| match (l, row_group) {
                (Some((g, c)), Some(row_group)) => {
                    *g == row_group && chunk_range(&metadata, *g, *c) == *r
                }
                _ => false,
            });
        if let (Some(row_group), true) = (row_group, whole) {
            let columns: Vec<usize> = located.iter().flatten().map(|(_, c)| *c).collect();
            if let Some(last) = self.last_row_group.filter(|last| *last != row_group) {
                self.backwards = last > row_group;
            }
            self.fetch_ahead(&metadata, row_group, &columns);
            self.last_row_group = Some(row_group);
        }

        let mut answers: Vec<Option<Bytes>> = vec![None; ranges.len()];
        for mut ahead in ahead {
            let chunks = (&mut ahead.fetch.0)
                .await
                .map_err(|e| ParquetError::General(format!("reading ahead: {e}")))?
                .map_err(|e| ParquetError::External(Box::new(e)))?;
            for (i, range) in ranges.iter().enumerate() {
                let Some((g, c)) = located[i] else { continue };
                let held = ahead
                    .chunks
                    .iter()
                    .zip(&chunks)
                    .find(|((column, _), _)| *column == c);
                if let (true, Some(((_, chunk), bytes))) = (g == ahead.row_group, held) {
                    let start = (range.start - chunk.start) as usize;
                    let end = (range.end - chunk.start) as usize;
                    answers[i] = Some(bytes.slice(start..end));
                    self.bytes_scanned.add((range.end - range.start) as usize);
                    self.bytes_read_ahead
                        .add((range.end - range.start) as usize);
                }
            }
        }
        let missing: Vec<Range<u64>> = ranges
            .iter()
            .zip(&answers)
            .filter(|(_, a)| a.is_none())
            .map(|(r, _)| r.clone())
            .collect();
        if !missing.is_empty() {
            let mut fetched = self.inner.get_byte_ranges(missing).await?.into_iter();
            for answer in answers.iter_mut().filter(|a| a.is_none()) {
                *answer = fetched.next();
            }
        }
        answers
            .into_iter()
            .map(|a| a.ok_or_else(|| ParquetError::General("a range was not read".into())))
            .collect()
    }
}

impl AsyncFileReader for AheadReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.inner.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        self.ranges(ranges).boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let metadata = self.inner.get_metadata(options).await?;
            self.metadata = Some(Arc::clone(&metadata));
            Ok(metadata)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::metrics::MetricValue;
    use futures::TryStreamExt;
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt, PutPayload};
    use parquet::arrow::{ArrowWriter, ParquetRecordBatchStreamBuilder};
    use parquet::file::properties::WriterProperties;

    use super::*;

    const ROWS: i64 = 10_000;
    const GROUP_ROWS: usize = 1_000;

    /// A file of `ROWS` rows (`n` from 0, `s` its text) in row groups of
    /// `GROUP_ROWS`, in a store.
    async fn file() -> (Arc<dyn ObjectStore>, PartitionedFile) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("s", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(0..ROWS)),
                Arc::new(StringArray::from_iter_values(
                    (0..ROWS).map(|n| format!("row {n}")),
                )),
            ],
        )
        .unwrap();
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(GROUP_ROWS))
            .build();
        let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        let bytes = writer.into_inner().unwrap();
        let size = bytes.len() as u64;
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        store
            .put(&Path::from("t.parquet"), PutPayload::from(bytes))
            .await
            .unwrap();
        (store, PartitionedFile::new("t.parquet", size))
    }

    fn count(metrics: &ExecutionPlanMetricsSet, name: &str) -> usize {
        metrics
            .clone_inner()
            .iter()
            .filter_map(|m| match m.value() {
                MetricValue::Count { name: n, count } if n == name => Some(count.value()),
                _ => None,
            })
            .sum()
    }

    /// Reads the row groups of the file in `order`: the `n` values read, and
    /// the reader's metrics.
    async fn read(order: Vec<usize>) -> (Vec<i64>, ExecutionPlanMetricsSet, u64) {
        let (store, file) = file().await;
        let metrics = ExecutionPlanMetricsSet::new();
        let factory = AheadFactory {
            inner: Arc::new(DefaultParquetFileReaderFactory::new(Arc::clone(&store))),
            store,
        };
        let reader: Box<dyn AsyncFileReader> =
            factory.create_reader(0, file, None, &metrics).unwrap();
        let builder = ParquetRecordBatchStreamBuilder::new(reader).await.unwrap();
        let chunks: u64 = builder
            .metadata()
            .row_groups()
            .iter()
            .flat_map(|g| g.columns())
            .map(|c| c.byte_range().1)
            .sum();
        let batches: Vec<RecordBatch> = builder
            .with_row_groups(order)
            .build()
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let mut read = Vec::new();
        for batch in batches {
            let n = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            read.extend(n.values().iter().copied());
        }
        (read, metrics, chunks)
    }

    #[tokio::test]
    async fn a_scan_forwards_reads_every_row_once_with_row_groups_fetched_ahead() {
        let groups = (ROWS as usize).div_ceil(GROUP_ROWS);
        let (read, metrics, chunks) = read((0..groups).collect()).await;
        assert_eq!(read, (0..ROWS).collect::<Vec<_>>());
        // Every row group after the first came from a fetch ahead, and
        // every chunk's bytes count once in what the scan read.
        assert_eq!(count(&metrics, "bytes_scanned") as u64, chunks);
        assert!(count(&metrics, "bytes_read_ahead") as u64 >= chunks * 8 / 10);
    }

    #[tokio::test]
    async fn a_scan_backwards_is_fetched_ahead_backwards() {
        let groups = (ROWS as usize).div_ceil(GROUP_ROWS);
        let (read, metrics, chunks) = read((0..groups).rev().collect()).await;
        let mut expected = Vec::new();
        for g in (0..groups as i64).rev() {
            let start = g * GROUP_ROWS as i64;
            expected.extend(start..(start + GROUP_ROWS as i64).min(ROWS));
        }
        assert_eq!(read, expected);
        assert_eq!(count(&metrics, "bytes_scanned") as u64, chunks);
        // The first two row groups are asked for before the direction shows.
        assert!(count(&metrics, "bytes_read_ahead") as u64 >= chunks * 7 / 10);
    }

    #[tokio::test]
    async fn a_scan_that_skips_row_groups_reads_the_right_ones() {
        let (read, metrics, _) = read(vec![0, 3, 4, 9]).await;
        let expected: Vec<i64> = [0, 3, 4, 9]
            .iter()
            .flat_map(|g| g * GROUP_ROWS as i64..(g + 1) * GROUP_ROWS as i64)
            .collect();
        assert_eq!(read, expected);
        // Only 4 follows the row group before it.
        assert!(count(&metrics, "bytes_read_ahead") > 0);
    }
}

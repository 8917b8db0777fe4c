//! Online reads for the API, straight from the lake: one page of a meter's
//! rows in (`eventTime`, `eventId`) order after a position, and the number
//! of matching rows by group.
//!
//! Both push the export's row filter into the Parquet reader, skip row
//! groups whose `recordType`, `runType`, `sessionId` or `operatorId`
//! statistics exclude the filter, and use the `eventTime` statistics to
//! read only what they need:
//!
//! - A page visits row groups in order of their smallest `eventTime` and
//!   stops as soon as it holds `limit` rows all earlier than the next
//!   unvisited row group's smallest time (no unvisited row could come
//!   before them). Within a row group written sorted (the writer declares
//!   `sorting_columns = eventTime, eventId`) it stops decoding once it has
//!   `limit` rows. So the first page of a large meter costs a few row
//!   groups, not a scan.
//! - Counting streams the projected group columns of one time slice at a
//!   time (see the scheduler's summary), holding only the counts, plus the
//!   slice's `(eventTime, eventId)` keys when the slice spans several files
//!   and a re-sent event could be in two of them.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, StringArray};
use auditx_proto::{LakeSource, RowFilter};
use futures::{stream, StreamExt, TryStreamExt};
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, RowFilter as ParquetRowFilter,
};
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::statistics::Statistics;
use parquet::schema::types::SchemaDescriptor;

use super::chunk::{check_audit_schema, row_group_reads, RowGroupRead};
use super::object_reader::ObjectReader;
use super::predicate::Predicate;
use super::{corrupt, read_error, LakeFile};
use crate::audit_trail::convert::{push_audit_rows, Columns};
use crate::audit_trail::schema::{audit_columns as ac, audit_schema};
use crate::{AuditRow, LakeError, LakeResult};
use auditx_common::s3::ObjectStore;

/// Row groups a page reads at once.
const PAGE_WAVE: usize = 4;
/// Small batches, so that a page stops decoding soon after it has enough.
const PAGE_BATCH_ROWS: usize = 1024;
/// Row groups a count decodes at once.
const COUNT_CONCURRENCY: usize = 4;
const COUNT_BATCH_ROWS: usize = 8192;
/// At most this many columns to group by.
pub const MAX_GROUP_COLUMNS: usize = 3;

/// A place in the (`eventTime`, `eventId`) order: a page holds the rows
/// strictly after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub event_time_ms: i64,
    pub event_id: String,
}

impl Position {
    pub fn of(row: &AuditRow) -> Self {
        Self {
            event_time_ms: row.event_time_ms,
            event_id: row.event_id.clone(),
        }
    }

    fn is_before(&self, row: &AuditRow) -> bool {
        (self.event_time_ms, self.event_id.as_str()) < (row.event_time_ms, row.event_id.as_str())
    }
}

/// Sorts rows in page order and keeps one row per (`eventTime`, `eventId`),
/// the same way whatever order they came in (ties broken on the content,
/// as exports do), then keeps the first `limit`.
fn order_and_cut(rows: &mut Vec<AuditRow>, limit: usize) {
    fn content(r: &AuditRow) -> impl Ord + '_ {
        (
            (&r.session_id, &r.run_type, &r.record_type, &r.payload),
            (&r.operator_id, &r.operator_type, &r.operator_name),
            (&r.error_code, &r.error_message, &r.trace_id),
            (&r.entity, &r.org),
        )
    }
    rows.sort_unstable_by(|a, b| {
        a.event_time_ms
            .cmp(&b.event_time_ms)
            .then_with(|| a.event_id.cmp(&b.event_id))
            .then_with(|| content(a).cmp(&content(b)))
    });
    rows.dedup_by(|a, b| a.event_time_ms == b.event_time_ms && a.event_id == b.event_id);
    rows.truncate(limit);
}

/// Whether a page holding `page` (ordered, cut to `limit`) is complete
/// before a row group whose rows start at `next_min_ms`.
fn page_is_complete(page: &[AuditRow], limit: usize, next_min_ms: i64) -> bool {
    page.len() >= limit && page[limit - 1].event_time_ms < next_min_ms
}

/// Up to `limit` rows of `files` in `[from_ms, to_ms)` matching `filter`
/// and strictly after `after`, in (`eventTime`, `eventId`) order, one row
/// per such pair.
#[tracing::instrument(name = "lake.read_page", skip_all, fields(files = files.len(), limit))]
#[allow(clippy::too_many_arguments)]
pub async fn read_page(
    store: &ObjectStore,
    bucket: &str,
    files: &[LakeFile],
    from_ms: i64,
    to_ms: i64,
    filter: &RowFilter,
    after: Option<&Position>,
    limit: usize,
) -> LakeResult<Vec<AuditRow>> {
    let limit = limit.max(1);
    let start_ms = after.map_or(from_ms, |p| p.event_time_ms.max(from_ms));
    if start_ms >= to_ms {
        return Ok(Vec::new());
    }
    let mut candidates: Vec<(&LakeFile, u32, i64)> = files
        .iter()
        .flat_map(|f| f.row_groups.iter().map(move |g| (f, g)))
        .filter(|(_, g)| g.max_time_ms >= start_ms && g.min_time_ms < to_ms)
        .map(|(f, g)| (f, g.index, g.min_time_ms))
        .collect();
    candidates.sort_by(|a, b| (a.2, &a.0.key, a.1).cmp(&(b.2, &b.0.key, b.1)));
    let predicate = Arc::new(Predicate::new(start_ms, to_ms, filter));
    let mut page: Vec<AuditRow> = Vec::new();
    let mut next = 0;
    let mut visited = 0usize;
    while next < candidates.len() && !page_is_complete(&page, limit, candidates[next].2) {
        let wave = &candidates[next..(next + PAGE_WAVE).min(candidates.len())];
        next += wave.len();
        visited += wave.len();
        let reads = wave.iter().map(|(file, index, _)| {
            read_group_page(
                store,
                bucket,
                file,
                *index,
                filter,
                predicate.clone(),
                after,
                limit,
            )
        });
        for part in futures::future::try_join_all(reads).await? {
            page.extend(part);
        }
        order_and_cut(&mut page, limit);
    }
    tracing::debug!(
        row_groups = candidates.len(),
        visited,
        rows = page.len(),
        "page read"
    );
    Ok(page)
}

/// Whether the writer declared the row group sorted by (`eventTime`,
/// `eventId`), ascending.
fn sorted_by_key(group: &RowGroupMetaData, schema: &SchemaDescriptor) -> bool {
    let index =
        |name: &str| (0..schema.num_columns()).find(|&i| schema.column(i).path().string() == name);
    match (
        group.sorting_columns(),
        index(ac::EVENT_TIME),
        index(ac::EVENT_ID),
    ) {
        (Some(columns), Some(time), Some(id)) => {
            columns.len() >= 2
                && columns[0].column_idx as usize == time
                && !columns[0].descending
                && columns[1].column_idx as usize == id
                && !columns[1].descending
        }
        _ => false,
    }
}

/// Whether the row group's statistics leave room for a row of `filter`: a
/// value outside a column's `[min, max]` is not in it. (Statistics cut
/// short by the writer still bound the values.)
fn may_match(group: &RowGroupMetaData, schema: &SchemaDescriptor, filter: &RowFilter) -> bool {
    let within = |name: &str, values: &[&str]| -> bool {
        let Some(column) =
            (0..schema.num_columns()).find(|&i| schema.column(i).path().string() == name)
        else {
            return true;
        };
        let Some(Statistics::ByteArray(stats)) = group.column(column).statistics() else {
            return true;
        };
        let (Some(min), Some(max)) = (stats.min_opt(), stats.max_opt()) else {
            return true;
        };
        values
            .iter()
            .any(|v| min.data() <= v.as_bytes() && v.as_bytes() <= max.data())
    };
    within(ac::RECORD_TYPE, &[filter.record_type.as_str()])
        && within(ac::RUN_TYPE, &[filter.run_type.as_str()])
        && listed(&filter.session_ids).is_none_or(|ids| within(ac::SESSION_ID, &ids))
        && listed(&filter.operator_ids).is_none_or(|ids| within(ac::OPERATOR_ID, &ids))
}

fn listed(ids: &Option<Vec<String>>) -> Option<Vec<&str>> {
    ids.as_ref()
        .map(|ids| ids.iter().map(String::as_str).collect())
}

/// The matching rows of one row group after `after`: its first `limit` if
/// the row group is sorted, else all of them cut to the first `limit`.
#[allow(clippy::too_many_arguments)]
async fn read_group_page(
    store: &ObjectStore,
    bucket: &str,
    file: &LakeFile,
    index: u32,
    filter: &RowFilter,
    predicate: Arc<Predicate>,
    after: Option<&Position>,
    limit: usize,
) -> LakeResult<Vec<AuditRow>> {
    let key = file.key.as_str();
    let mut reader = ObjectReader::new(store, bucket, key, file.size);
    let metadata = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new())
        .await
        .map_err(|e| read_error(key, e))?;
    check_audit_schema(key, metadata.schema())?;
    let parquet = metadata.metadata();
    if index as usize >= parquet.num_row_groups() {
        let message = format!("row group {index}, file has {}", parquet.num_row_groups());
        return Err(corrupt(key, message));
    }
    let (group, schema) = (
        parquet.row_group(index as usize),
        parquet.file_metadata().schema_descr(),
    );
    if !may_match(group, schema, filter) {
        return Ok(Vec::new());
    }
    let sorted = sorted_by_key(group, schema);
    let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, metadata);
    let mask = ProjectionMask::roots(builder.parquet_schema(), predicate.column_indices());
    let filter = ArrowPredicateFn::new(mask, move |batch| predicate.evaluate(&batch));
    let mut batches = builder
        .with_row_groups(vec![index as usize])
        .with_row_filter(ParquetRowFilter::new(vec![Box::new(filter)]))
        .with_batch_size(PAGE_BATCH_ROWS)
        .build()
        .map_err(|e| read_error(key, e))?;
    let mut rows = Vec::new();
    let mut batch_rows = Vec::new();
    while let Some(batch) = batches.try_next().await.map_err(|e| read_error(key, e))? {
        batch_rows.clear();
        push_audit_rows(&batch, key, &mut batch_rows)?;
        rows.extend(
            batch_rows
                .drain(..)
                .filter(|row| after.is_none_or(|p| p.is_before(row))),
        );
        if sorted && rows.len() >= limit {
            break;
        }
        if rows.len() >= 4 * limit {
            order_and_cut(&mut rows, limit);
        }
    }
    Ok(rows)
}

/// Matching rows of one time slice, by group: the key holds the values of
/// the group columns in the order asked for (`None` for an absent value).
pub type GroupCounts = HashMap<Vec<Option<String>>, u64>;

/// A group key of a batch, borrowed from its columns.
type BorrowedKey<'a> = [Option<&'a str>; MAX_GROUP_COLUMNS];
type OwnedKey = [Option<String>; MAX_GROUP_COLUMNS];

fn owned(key: BorrowedKey<'_>) -> OwnedKey {
    key.map(|v| v.map(str::to_owned))
}

/// What one row group contributes to a slice's counts.
enum Partial {
    Counts(HashMap<OwnedKey, u64>),
    /// Every row with its key, for dropping re-sent events across files.
    Keyed(Vec<(i64, String, OwnedKey)>),
}

/// Counts the rows of the listed row groups in `[from_ms, to_ms)` that
/// match `filter`, by the values of `group_columns` (lake column names, at
/// most [`MAX_GROUP_COLUMNS`]). With `dedupe`, a (`eventTime`, `eventId`)
/// pair is counted once however many files hold it.
#[tracing::instrument(name = "lake.count_groups", skip_all, fields(sources = sources.len()))]
#[allow(clippy::too_many_arguments)]
pub async fn count_groups(
    store: &ObjectStore,
    bucket: &str,
    sources: &[LakeSource],
    from_ms: i64,
    to_ms: i64,
    filter: &RowFilter,
    group_columns: &[&'static str],
    dedupe: bool,
) -> LakeResult<GroupCounts> {
    if group_columns.len() > MAX_GROUP_COLUMNS {
        return Err(LakeError::Parquet(format!(
            "at most {MAX_GROUP_COLUMNS} group columns"
        )));
    }
    if from_ms >= to_ms {
        return Ok(GroupCounts::new());
    }
    let predicate = Arc::new(Predicate::new(from_ms, to_ms, filter));
    let shared_filter = Arc::new(filter.clone());
    let columns: Arc<Vec<&'static str>> = Arc::new(group_columns.to_vec());
    let footers: Vec<_> = sources
        .iter()
        .filter(|s| !s.row_groups.is_empty())
        .map(|source| row_group_reads(store, bucket, source))
        .collect();
    let reads: Vec<Vec<RowGroupRead>> = stream::iter(footers)
        .buffered(super::REQUEST_CONCURRENCY)
        .try_collect()
        .await?;
    let tasks: Vec<_> = reads
        .into_iter()
        .flatten()
        .map(|read| {
            let (store, bucket) = (store.clone(), bucket.to_owned());
            let (predicate, columns) = (predicate.clone(), columns.clone());
            let filter = shared_filter.clone();
            async move {
                tokio::spawn(count_row_group(
                    store, bucket, read, filter, predicate, columns, dedupe,
                ))
                .await
                .map_err(|e| LakeError::Parquet(format!("count task failed: {e}")))?
            }
        })
        .collect();
    let mut counts: HashMap<OwnedKey, u64> = HashMap::new();
    let mut seen: HashSet<(i64, String)> = HashSet::new();
    let mut partials = stream::iter(tasks).buffer_unordered(COUNT_CONCURRENCY);
    while let Some(partial) = partials.try_next().await? {
        match partial {
            Partial::Counts(part) => {
                for (key, n) in part {
                    *counts.entry(key).or_default() += n;
                }
            }
            Partial::Keyed(rows) => {
                for (time, id, key) in rows {
                    if seen.insert((time, id)) {
                        *counts.entry(key).or_default() += 1;
                    }
                }
            }
        }
    }
    let width = group_columns.len();
    Ok(counts
        .into_iter()
        .map(|(key, n)| (key.into_iter().take(width).collect(), n))
        .collect())
}

/// Row `i`'s values of the group columns.
fn group_key<'a>(values: &[&'a StringArray], i: usize) -> BorrowedKey<'a> {
    let mut key: BorrowedKey<'a> = [None; MAX_GROUP_COLUMNS];
    for (slot, column) in key.iter_mut().zip(values) {
        *slot = column.is_valid(i).then(|| column.value(i));
    }
    key
}

#[allow(clippy::too_many_arguments)]
async fn count_row_group(
    store: ObjectStore,
    bucket: String,
    read: RowGroupRead,
    filter: Arc<RowFilter>,
    predicate: Arc<Predicate>,
    group_columns: Arc<Vec<&'static str>>,
    dedupe: bool,
) -> LakeResult<Partial> {
    let key = read.key.as_str();
    let parquet = read.metadata.metadata();
    let (group, schema) = (
        parquet.row_group(read.row_group),
        parquet.file_metadata().schema_descr(),
    );
    if !may_match(group, schema, &filter) {
        return Ok(Partial::Counts(HashMap::new()));
    }
    let reader = ObjectReader::new(&store, &bucket, key, read.size);
    let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, read.metadata);
    let schema = audit_schema();
    let mut names = group_columns.to_vec();
    // eventTime always: a batch needs one column to carry its row count.
    names.push(ac::EVENT_TIME);
    if dedupe {
        names.push(ac::EVENT_ID);
    }
    let roots: Vec<usize> = names
        .iter()
        .map(|n| schema.index_of(n).expect("audit column"))
        .collect();
    let projection = ProjectionMask::roots(builder.parquet_schema(), roots);
    let mask = ProjectionMask::roots(builder.parquet_schema(), predicate.column_indices());
    let filter = ArrowPredicateFn::new(mask, move |batch| predicate.evaluate(&batch));
    let mut batches = builder
        .with_row_groups(vec![read.row_group])
        .with_projection(projection)
        .with_row_filter(ParquetRowFilter::new(vec![Box::new(filter)]))
        .with_batch_size(COUNT_BATCH_ROWS)
        .build()
        .map_err(|e| read_error(key, e))?;
    let mut counts: HashMap<OwnedKey, u64> = HashMap::new();
    let mut keyed = Vec::new();
    while let Some(batch) = batches.try_next().await.map_err(|e| read_error(key, e))? {
        let c = Columns::new(&batch, key);
        let values: Vec<&StringArray> = group_columns
            .iter()
            .map(|name| c.strings(name))
            .collect::<LakeResult<_>>()?;
        let key_at = |i: usize| group_key(&values, i);
        if dedupe {
            let (times, ids) = (c.millis(ac::EVENT_TIME)?, c.strings(ac::EVENT_ID)?);
            keyed.extend(
                (0..batch.num_rows())
                    .map(|i| (times.value(i), ids.value(i).to_owned(), owned(key_at(i)))),
            );
        } else {
            let mut local: HashMap<BorrowedKey<'_>, u64> = HashMap::new();
            for i in 0..batch.num_rows() {
                *local.entry(key_at(i)).or_default() += 1;
            }
            for (k, n) in local {
                *counts.entry(owned(k)).or_default() += n;
            }
        }
    }
    Ok(if dedupe {
        Partial::Keyed(keyed)
    } else {
        Partial::Counts(counts)
    })
}

/// Orders groups by count, largest first, then by key (absent values
/// first), so that equal counts come out the same every time.
pub fn rank_groups(counts: GroupCounts) -> Vec<(Vec<Option<String>>, u64)> {
    let mut groups: Vec<_> = counts.into_iter().collect();
    groups.sort_by(|a, b| match b.1.cmp(&a.1) {
        Ordering::Equal => a.0.cmp(&b.0),
        other => other,
    });
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(time: i64, id: &str, payload: &str) -> AuditRow {
        AuditRow {
            tenant: "t".into(),
            entity: None,
            org: None,
            meter_id: 1,
            session_id: "R-1".into(),
            run_type: "NORMAL".into(),
            record_type: "SAMPLE".into(),
            operator_id: None,
            operator_type: None,
            operator_name: None,
            event_id: id.into(),
            trace_id: None,
            event_time_ms: time,
            error_code: None,
            error_message: None,
            payload: Some(payload.into()),
        }
    }

    fn keys(rows: &[AuditRow]) -> Vec<(i64, &str)> {
        rows.iter()
            .map(|r| (r.event_time_ms, r.event_id.as_str()))
            .collect()
    }

    #[test]
    fn pages_are_ordered_deduplicated_and_cut() {
        let mut rows = vec![
            row(2, "b", "{}"),
            row(1, "z", "{}"),
            row(2, "a", "{\"v\":2}"),
            row(2, "a", "{\"v\":1}"),
            row(3, "a", "{}"),
        ];
        order_and_cut(&mut rows, 3);
        assert_eq!(keys(&rows), [(1, "z"), (2, "a"), (2, "b")]);
        assert_eq!(rows[1].payload.as_deref(), Some("{\"v\":1}"));
    }

    #[test]
    fn a_page_is_complete_only_before_a_later_row_group() {
        let page = [row(1, "a", ""), row(5, "b", "")];
        assert!(page_is_complete(&page, 2, 6));
        // A row group starting at 5 could hold (5, "a"), before (5, "b").
        assert!(!page_is_complete(&page, 2, 5));
        assert!(!page_is_complete(&page[..1], 2, 100));
    }

    #[test]
    fn positions_compare_by_time_then_event_id() {
        let p = Position {
            event_time_ms: 5,
            event_id: "m".into(),
        };
        assert!(p.is_before(&row(5, "n", "")));
        assert!(p.is_before(&row(6, "a", "")));
        assert!(!p.is_before(&row(5, "m", "")));
        assert!(!p.is_before(&row(4, "z", "")));
    }

    #[test]
    fn groups_rank_by_count_then_key() {
        let counts: GroupCounts = [
            (vec![Some("b".to_string())], 2),
            (vec![None], 2),
            (vec![Some("a".to_string())], 5),
            (vec![Some("c".to_string())], 1),
        ]
        .into_iter()
        .collect();
        let ranked: Vec<_> = rank_groups(counts)
            .into_iter()
            .map(|(k, n)| (k[0].clone(), n))
            .collect();
        assert_eq!(
            ranked,
            [
                (Some("a".to_string()), 5),
                (None, 2),
                (Some("b".to_string()), 2),
                (Some("c".to_string()), 1)
            ]
        );
    }
}

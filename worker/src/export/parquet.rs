//! The Parquet format of meter audit trail exports, and how one Parquet file
//! is assembled from chunks that different workers rendered.
//!
//! **Columns.** The twelve CSV columns under the same names: `eventTime` a
//! `TIMESTAMP(MILLIS, isAdjustedToUTC)` (Arrow `Timestamp(ms, "UTC")`),
//! `payload` the JSON text of the payload object, everything else UTF-8
//! strings. Absent values are nulls (the CSV's empty strings), like JSON
//! Lines. Rows are sorted by (`eventTime`, `eventId`) in every row group and
//! across the file, which the footer declares as the sorting columns.
//!
//! **Rendering a chunk.** The rows are written as one row group per
//! `offset_stride` rows, so the row offsets the scheduler cuts files at are
//! exactly the row-group starts and every cut falls between row groups. No
//! page index and no Bloom filter is written, so the row groups are the
//! only bytes between the leading `PAR1` and the footer. The staged object
//! is those row-group bytes (offset 0 is the first row group: the offsets
//! mean what they mean for CSV) followed by a *trailer*: the chunk's footer
//! (Thrift `FileMetaData`, its length, `PAR1`) with every offset rewritten
//! to be relative to the staged object. The staged object is thus a
//! Parquet file without its leading magic; the worker reports only the row
//! bytes as the chunk's size, so the scheduler never puts the trailer into
//! a file.
//!
//! **Assembling a file.** The file is `PAR1`, the segments (whole row
//! groups, copied with UploadPartCopy where long enough, exactly as for CSV)
//! and one footer made here: the schema, and each segment's row groups read
//! from its chunk's trailer with their offsets shifted to where the segment
//! lands in the file. Only the trailers are read to build the footer; the
//! row bytes are read once, for the file's SHA-256.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::compute::interleave;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use auditx_common::s3::{ObjectStore, StorageError};
use auditx_proto::Segment;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::{
    ParquetMetaData, ParquetMetaDataReader, ParquetMetaDataWriter, RowGroupMetaData, SortingColumn,
};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::error::WorkerError;
use crate::export::chunk::RenderedChunk;
use crate::export::{buffers, columnar};

/// The magic at both ends of a Parquet file.
pub const MAGIC: &[u8; 4] = b"PAR1";

/// Footer length (4 bytes, little endian) and magic, at the end of a file.
const FOOTER_TAIL: usize = 8;

/// How much of a staged object's end is read at once: most trailers fit,
/// a longer one takes a second request.
const TRAILER_GUESS: u64 = 64 * 1024;

/// The columns of an export, in the CSV's order.
pub fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
        Arc::new(Schema::new(vec![
            text("eventId", false),
            Field::new(
                "eventTime",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
            text("sessionId", false),
            text("runType", false),
            text("runStatus", true),
            text("operatorId", true),
            text("operatorType", true),
            text("operatorName", true),
            text("errorCode", true),
            text("errorMessage", true),
            text("traceId", true),
            text("payload", true),
        ]))
    });
    SCHEMA.clone()
}

/// Snappy like the lake; chunk-level statistics (readers prune row groups
/// by `eventTime`); no page index and no Bloom filters, which would sit
/// between the row groups and the footer; no dictionaries for the columns
/// that are unique per row.
fn properties() -> WriterProperties {
    // eventTime, then eventId.
    let sorting = [1, 0]
        .map(|column_idx| SortingColumn {
            column_idx,
            descending: false,
            nulls_first: false,
        })
        .to_vec();
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(None)
        .set_max_row_group_bytes(None)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_offset_index_disabled(true)
        .set_bloom_filter_enabled(false)
        .set_sorting_columns(Some(sorting));
    for name in ["eventId", "eventTime", "traceId", "payload"] {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(name), false);
    }
    builder.build()
}

fn parquet_error(error: parquet::errors::ParquetError) -> WorkerError {
    WorkerError::Render(format!("parquet: {error}"))
}

/// Orders the rows of `batches` (the lake's columns, see
/// [`columnar::Ordered`]) and renders them as row groups of `stride` rows
/// plus the trailer (see the module documentation); `row_offsets` are the
/// row-group starts. Each row group's columns are gathered from the lake's
/// arrays by position: no row is built.
pub fn render_parquet(
    batches: &[RecordBatch],
    run_statuses: &BTreeMap<String, String>,
    stride: u32,
) -> Result<RenderedChunk, WorkerError> {
    let rows = columnar::Ordered::new(batches)?;
    let stride = stride.max(1) as usize;
    let schema = schema();
    let mut writer = ArrowWriter::try_new(buffers::take(0), schema.clone(), Some(properties()))
        .map_err(parquet_error)?;
    let mut statuses = columnar::StatusLookup::new(run_statuses);
    for group in rows.order.chunks(stride) {
        let batch = record_batch(&schema, &rows.columns, group, &mut statuses)?;
        writer.write(&batch).map_err(parquet_error)?;
        writer.flush().map_err(parquet_error)?;
    }
    let mut file = writer.into_inner().map_err(parquet_error)?;
    // The footer as written, not as the writer says it wrote it: what a
    // reader of the file will see.
    let (metadata, footer_start) = decode_footer(&file)?;
    let data = MAGIC.len() as u64..footer_start as u64;
    let ranges = row_group_ranges(metadata.row_groups())?;
    check_tiling(&ranges, &data)?;
    let staged = shift(&metadata, -(MAGIC.len() as i64))?;
    file.truncate(footer_start);
    file.drain(..MAGIC.len());
    let data_len = file.len() as u64;
    write_footer(&mut file, staged)?;
    Ok(RenderedChunk {
        bytes: file,
        rows: rows.order.len() as u64,
        row_offsets: ranges.iter().map(|r| r.start - data.start).collect(),
        data_len,
    })
}

/// The export columns of the rows at `positions`, gathered from the
/// lake's arrays.
fn record_batch<'a>(
    schema: &SchemaRef,
    columns: &[columnar::Columns<'a>],
    positions: &[columnar::Position],
    statuses: &mut columnar::StatusLookup<'a>,
) -> Result<RecordBatch, WorkerError> {
    let indices: Vec<(usize, usize)> = positions
        .iter()
        .map(|&(_, batch, row)| (batch as usize, row as usize))
        .collect();
    let gather = |array: fn(&columnar::Columns<'a>) -> &'a StringArray| {
        let arrays: Vec<&dyn Array> = columns.iter().map(|c| array(c) as &dyn Array).collect();
        interleave(&arrays, &indices).map_err(|e| WorkerError::Render(format!("arrow: {e}")))
    };
    let times = TimestampMillisecondArray::from_iter_values(positions.iter().map(|p| p.0))
        .with_timezone("UTC");
    let run_statuses: StringArray = indices
        .iter()
        .map(|&(batch, row)| statuses.get(columns[batch].session_id.value(row)))
        .collect();
    let mut arrays: Vec<ArrayRef> = vec![
        gather(|c| c.event_id)?,
        Arc::new(times),
        gather(|c| c.session_id)?,
        gather(|c| c.run_type)?,
        Arc::new(run_statuses),
    ];
    for column in 0..7 {
        let picked: Vec<&dyn Array> = columns
            .iter()
            .map(|c| c.optional[column] as &dyn Array)
            .collect();
        arrays.push(
            interleave(&picked, &indices)
                .map_err(|e| WorkerError::Render(format!("arrow: {e}")))?,
        );
    }
    RecordBatch::try_new(schema.clone(), arrays)
        .map_err(|e| WorkerError::Render(format!("arrow: {e}")))
}

/// The metadata of a Parquet footer at the end of `bytes`, and where the
/// footer starts.
fn decode_footer(bytes: &[u8]) -> Result<(ParquetMetaData, usize), WorkerError> {
    let bad = |problem: &str| WorkerError::Render(format!("parquet footer: {problem}"));
    let tail_start = bytes
        .len()
        .checked_sub(FOOTER_TAIL)
        .ok_or_else(|| bad("too short"))?;
    let tail = &bytes[tail_start..];
    if &tail[4..] != MAGIC {
        return Err(bad("no PAR1 at the end"));
    }
    let len = u32::from_le_bytes(tail[..4].try_into().expect("4 bytes")) as usize;
    let start = tail_start
        .checked_sub(len)
        .ok_or_else(|| bad("longer than the file"))?;
    let metadata =
        ParquetMetaDataReader::decode_metadata(&bytes[start..tail_start]).map_err(parquet_error)?;
    Ok((metadata, start))
}

/// The bytes `[start, end)` of each row group. Every column chunk must be
/// in this file with nothing but pages of its own (no page index, no Bloom
/// filter offsets to move), and the chunks of a row group back to back.
fn row_group_ranges(row_groups: &[RowGroupMetaData]) -> Result<Vec<Range<u64>>, WorkerError> {
    let bad = |i: usize, problem: &str| WorkerError::Render(format!("row group {i}: {problem}"));
    let mut ranges = Vec::with_capacity(row_groups.len());
    for (i, row_group) in row_groups.iter().enumerate() {
        let mut range: Option<Range<u64>> = None;
        for column in row_group.columns() {
            if column.file_path().is_some()
                || column.index_page_offset().is_some()
                || column.bloom_filter_offset().is_some()
                || column.column_index_offset().is_some()
                || column.offset_index_offset().is_some()
            {
                return Err(bad(i, "has data outside its column chunks"));
            }
            let start = column
                .dictionary_page_offset()
                .unwrap_or(column.data_page_offset());
            let (Ok(start), Ok(len)) = (
                u64::try_from(start),
                u64::try_from(column.compressed_size()),
            ) else {
                return Err(bad(i, "has a negative offset or size"));
            };
            range = match range {
                None => Some(start..start + len),
                Some(r) if r.end == start => Some(r.start..start + len),
                Some(_) => return Err(bad(i, "has column chunks that are not back to back")),
            };
        }
        ranges.push(range.ok_or_else(|| bad(i, "has no columns"))?);
    }
    Ok(ranges)
}

/// Checks that `ranges` cover exactly `within`, in order, with no gap.
fn check_tiling(ranges: &[Range<u64>], within: &Range<u64>) -> Result<(), WorkerError> {
    let mut at = within.start;
    let chained = ranges.iter().all(|range| {
        let next = range.start == at && range.end > range.start;
        at = range.end;
        next
    });
    if chained && at == within.end {
        Ok(())
    } else {
        Err(WorkerError::Render(format!(
            "row groups do not cover bytes {}..{} exactly",
            within.start, within.end
        )))
    }
}

/// `metadata` with every offset moved by `delta`.
fn shift(metadata: &ParquetMetaData, delta: i64) -> Result<ParquetMetaData, WorkerError> {
    let shifted = metadata
        .row_groups()
        .iter()
        .enumerate()
        .map(|(i, row_group)| shift_row_group(row_group, delta, i))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ParquetMetaData::new(
        metadata.file_metadata().clone(),
        shifted,
    ))
}

/// A row group moved by `delta` bytes to be the `ordinal`-th of its file.
/// The Thrift ordinal is an i16: past that the field is left out (it only
/// matters to encryption, which exports do not use).
fn shift_row_group(
    row_group: &RowGroupMetaData,
    delta: i64,
    ordinal: usize,
) -> Result<RowGroupMetaData, WorkerError> {
    let columns = row_group
        .columns()
        .iter()
        .map(|column| {
            let dictionary = column.dictionary_page_offset().map(|o| o + delta);
            column
                .clone()
                .into_builder()
                .set_data_page_offset(column.data_page_offset() + delta)
                .set_dictionary_page_offset(dictionary)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(parquet_error)?;
    let mut builder = RowGroupMetaData::builder(row_group.schema_descr_ptr())
        .set_column_metadata(columns)
        .set_num_rows(row_group.num_rows())
        .set_total_byte_size(row_group.total_byte_size())
        .set_sorting_columns(row_group.sorting_columns().cloned());
    if let Some(offset) = row_group.file_offset() {
        builder = builder.set_file_offset(offset + delta);
    }
    if let Ok(ordinal) = i16::try_from(ordinal) {
        builder = builder.set_ordinal(ordinal);
    }
    builder.build().map_err(parquet_error)
}

/// Appends `metadata` as a footer: Thrift `FileMetaData`, its length, `PAR1`.
fn write_footer(out: &mut Vec<u8>, metadata: ParquetMetaData) -> Result<(), WorkerError> {
    ParquetMetaDataWriter::new(out, &metadata)
        .finish()
        .map_err(parquet_error)
}

/// The file metadata every export file shares (schema, writer, the Arrow
/// schema as key-value metadata), from an empty file of the same writer:
/// an export with no rows is exactly that file.
fn template() -> &'static ParquetMetaData {
    static TEMPLATE: LazyLock<ParquetMetaData> = LazyLock::new(|| {
        let writer = ArrowWriter::try_new(Vec::new(), schema(), Some(properties()))
            .expect("an empty Parquet file can be written");
        let file = writer
            .into_inner()
            .expect("an empty Parquet file can be written");
        decode_footer(&file)
            .expect("an empty Parquet file can be read back")
            .0
    });
    &TEMPLATE
}

/// The footer of one output file, built from its segments in order.
#[derive(Debug)]
pub struct FooterBuilder {
    row_groups: Vec<RowGroupMetaData>,
    rows: u64,
    /// Where the next segment starts in the file.
    position: u64,
}

impl Default for FooterBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl FooterBuilder {
    pub fn new() -> Self {
        Self {
            row_groups: Vec::new(),
            rows: 0,
            position: MAGIC.len() as u64,
        }
    }

    /// Adds the row groups of `segment`, taken from `trailer` (its staged
    /// chunk's metadata): they must cover the segment exactly.
    pub fn push(
        &mut self,
        trailer: &ParquetMetaData,
        segment: &Segment,
    ) -> Result<(), WorkerError> {
        let staging = |problem: String| WorkerError::Staging {
            key: segment.key.clone(),
            problem,
        };
        if trailer.file_metadata().schema() != template().file_metadata().schema() {
            return Err(staging("was rendered with another Parquet schema".into()));
        }
        let ranges = row_group_ranges(trailer.row_groups()).map_err(|e| staging(e.to_string()))?;
        let within = segment.start..segment.end;
        let picked: Vec<usize> = (0..ranges.len())
            .filter(|&i| ranges[i].start >= within.start && ranges[i].end <= within.end)
            .collect();
        let picked_ranges: Vec<Range<u64>> = picked.iter().map(|&i| ranges[i].clone()).collect();
        check_tiling(&picked_ranges, &within).map_err(|_| {
            staging(format!(
                "has no row groups that make up bytes {}..{} exactly",
                within.start, within.end
            ))
        })?;
        let delta = self.position as i64 - within.start as i64;
        for i in picked {
            let row_group = &trailer.row_groups()[i];
            let ordinal = self.row_groups.len();
            self.row_groups
                .push(shift_row_group(row_group, delta, ordinal)?);
            self.rows += row_group.num_rows() as u64;
        }
        self.position += within.end - within.start;
        Ok(())
    }

    /// Rows in the row groups added so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The footer: Thrift `FileMetaData` with every row group, its length
    /// and `PAR1`.
    pub fn finish(self) -> Result<Vec<u8>, WorkerError> {
        let metadata = ParquetMetaData::new(template().file_metadata().clone(), self.row_groups);
        let mut footer = Vec::new();
        write_footer(&mut footer, metadata)?;
        Ok(footer)
    }
}

/// The footer of a file made of `segments`, from their chunks' trailers
/// (each read once: the assigner merges adjacent ranges of a chunk, so a
/// key recurs only in consecutive segments); checks that it holds `rows`
/// rows.
pub async fn footer(
    store: &ObjectStore,
    bucket: &str,
    segments: &[Segment],
    rows: u64,
) -> Result<Vec<u8>, WorkerError> {
    let mut builder = FooterBuilder::new();
    let mut current: Option<(&str, ParquetMetaData)> = None;
    for segment in segments {
        let trailer = match current {
            Some((key, ref trailer)) if key == segment.key => trailer,
            _ => {
                let trailer = read_trailer(store, bucket, &segment.key).await?;
                &current.insert((segment.key.as_str(), trailer)).1
            }
        };
        builder.push(trailer, segment)?;
    }
    if builder.rows() != rows {
        return Err(WorkerError::InvalidTask(format!(
            "the file's row groups hold {} rows, the task says {rows}",
            builder.rows()
        )));
    }
    builder.finish()
}

/// The metadata at the end of a staged Parquet chunk.
async fn read_trailer(
    store: &ObjectStore,
    bucket: &str,
    key: &str,
) -> Result<ParquetMetaData, WorkerError> {
    let staging = |problem: String| WorkerError::Staging {
        key: key.to_owned(),
        problem,
    };
    let missing = |e: StorageError| match e {
        StorageError::NotFound { .. } => staging("is missing".into()),
        other => other.into(),
    };
    let size = store
        .head(bucket, key)
        .await?
        .ok_or_else(|| staging("is missing".into()))?;
    let start = size.saturating_sub(TRAILER_GUESS);
    let tail = store
        .get_range(bucket, key, start..size)
        .await
        .map_err(missing)?;
    if tail.len() < FOOTER_TAIL || &tail[tail.len() - 4..] != MAGIC {
        return Err(staging("does not end with a Parquet footer".into()));
    }
    let len_at = tail.len() - FOOTER_TAIL;
    let len = u64::from(u32::from_le_bytes(
        tail[len_at..len_at + 4].try_into().expect("4 bytes"),
    ));
    let decode = |bytes: &[u8]| {
        ParquetMetaDataReader::decode_metadata(bytes)
            .map_err(|e| staging(format!("has an unreadable Parquet footer: {e}")))
    };
    if len <= len_at as u64 {
        return decode(&tail[len_at - len as usize..len_at]);
    }
    let end = size - FOOTER_TAIL as u64;
    let begin = end
        .checked_sub(len)
        .ok_or_else(|| staging("has a footer longer than itself".into()))?;
    let footer = store
        .get_range(bucket, key, begin..end)
        .await
        .map_err(missing)?;
    decode(&footer)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::TimestampMillisecondType;
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::{LogicalType, TimeUnit as ParquetTimeUnit};
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use auditx_lake::audit_trail::schema::audit_columns as ac;
    use auditx_lake::AuditRow;

    use super::*;

    /// The lake's columns of `rows`, as a chunk read returns them.
    fn lake(rows: &[AuditRow]) -> Vec<RecordBatch> {
        let text = |name: &str| Field::new(name, DataType::Utf8, true);
        let mut fields = vec![
            text(ac::EVENT_ID),
            Field::new(
                ac::EVENT_TIME,
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
        ];
        fields.extend(columnar::COLUMNS[2..].iter().map(|name| text(name)));
        let strings = |value: fn(&AuditRow) -> Option<&str>| -> ArrayRef {
            Arc::new(rows.iter().map(value).collect::<StringArray>())
        };
        let columns: Vec<ArrayRef> = vec![
            strings(|r| Some(r.event_id.as_str())),
            Arc::new(
                TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.event_time_ms))
                    .with_timezone("UTC"),
            ),
            strings(|r| Some(r.session_id.as_str())),
            strings(|r| Some(r.run_type.as_str())),
            strings(|r| r.operator_id.as_deref()),
            strings(|r| r.operator_type.as_deref()),
            strings(|r| r.operator_name.as_deref()),
            strings(|r| r.error_code.as_deref()),
            strings(|r| r.error_message.as_deref()),
            strings(|r| r.trace_id.as_deref()),
            strings(|r| r.payload.as_deref()),
        ];
        vec![RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()]
    }

    fn row(i: i64) -> AuditRow {
        AuditRow {
            tenant: "t1".into(),
            entity: None,
            org: None,
            meter_id: 7,
            session_id: format!("R-{}", i % 3),
            run_type: "NORMAL".into(),
            record_type: "SAMPLE".into(),
            operator_id: (i % 2 == 0).then(|| format!("op-{i}")),
            operator_type: Some("Transform".into()),
            operator_name: None,
            event_id: format!("e{i:05}"),
            trace_id: Some(format!("trace-{i}")),
            event_time_ms: 1_753_296_408_000 + i * 7,
            error_code: None,
            error_message: (i % 5 == 0).then(|| "bad, \"unit\"".to_string()),
            payload: Some(format!(r#"{{"i":{i},"big":12345678901234567890}}"#)),
        }
    }

    fn statuses() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("R-0".to_string(), "COMPLETED".to_string()),
            ("R-1".to_string(), "FAILED".to_string()),
        ])
    }

    fn trailer_of(chunk: &RenderedChunk) -> ParquetMetaData {
        decode_footer(&chunk.bytes).unwrap().0
    }

    /// Assembles a file in memory the way the assembler does, from
    /// `(chunk, byte range)` pieces.
    fn assemble(pieces: &[(&RenderedChunk, Range<u64>)]) -> Vec<u8> {
        let mut builder = FooterBuilder::new();
        let mut file = MAGIC.to_vec();
        for (i, (chunk, range)) in pieces.iter().enumerate() {
            let segment = Segment {
                key: format!("chunk-{i}"),
                start: range.start,
                end: range.end,
            };
            builder.push(&trailer_of(chunk), &segment).unwrap();
            file.extend_from_slice(&chunk.bytes[range.start as usize..range.end as usize]);
        }
        file.extend(builder.finish().unwrap());
        file
    }

    /// The rows of a Parquet file as the JSON-ish text of each column.
    fn read_back(file: Vec<u8>) -> Vec<Vec<Option<String>>> {
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(file))
            .unwrap()
            .build()
            .unwrap();
        let mut rows = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            for r in 0..batch.num_rows() {
                let mut row = Vec::new();
                for (c, column) in batch.columns().iter().enumerate() {
                    if column.is_null(r) {
                        row.push(None);
                    } else if c == 1 {
                        let times = column.as_primitive::<TimestampMillisecondType>();
                        row.push(Some(times.value(r).to_string()));
                    } else {
                        row.push(Some(column.as_string::<i32>().value(r).to_owned()));
                    }
                }
                rows.push(row);
            }
        }
        rows
    }

    fn expected(rows: &[AuditRow]) -> Vec<Vec<Option<String>>> {
        let statuses = statuses();
        rows.iter()
            .map(|r| {
                vec![
                    Some(r.event_id.clone()),
                    Some(r.event_time_ms.to_string()),
                    Some(r.session_id.clone()),
                    Some(r.run_type.clone()),
                    statuses.get(&r.session_id).cloned(),
                    r.operator_id.clone(),
                    r.operator_type.clone(),
                    r.operator_name.clone(),
                    r.error_code.clone(),
                    r.error_message.clone(),
                    r.trace_id.clone(),
                    r.payload.clone(),
                ]
            })
            .collect()
    }

    #[test]
    fn a_chunk_is_row_groups_of_stride_rows_then_its_trailer() {
        let rows: Vec<AuditRow> = (0..23).map(row).collect();
        let chunk = render_parquet(&lake(&rows), &statuses(), 10).unwrap();
        assert_eq!(chunk.rows, 23);
        assert_eq!(chunk.row_offsets.len(), 3);
        assert_eq!(chunk.row_offsets[0], 0);
        assert!(!chunk.bytes.starts_with(MAGIC));
        assert!(chunk.bytes.ends_with(MAGIC));
        let trailer = trailer_of(&chunk);
        let ranges = row_group_ranges(trailer.row_groups()).unwrap();
        assert_eq!(
            ranges.iter().map(|r| r.start).collect::<Vec<_>>(),
            chunk.row_offsets
        );
        assert_eq!(ranges.last().unwrap().end, chunk.data_len);
        assert_eq!(
            trailer
                .row_groups()
                .iter()
                .map(RowGroupMetaData::num_rows)
                .collect::<Vec<_>>(),
            [10, 10, 3]
        );
    }

    #[test]
    fn chunks_cut_at_row_groups_make_one_valid_file_with_every_row_in_order() {
        let rows: Vec<AuditRow> = (0..57).map(row).collect();
        let (first, second) = rows.split_at(25);
        let a = render_parquet(&lake(first), &statuses(), 10).unwrap();
        let b = render_parquet(&lake(second), &statuses(), 10).unwrap();
        // File 1: all of a and b's first row group; file 2: the rest of b.
        let file1 = assemble(&[(&a, 0..a.data_len), (&b, 0..b.row_offsets[1])]);
        let file2 = assemble(&[(&b, b.row_offsets[1]..b.data_len)]);

        let reader = SerializedFileReader::new(Bytes::from(file1.clone())).unwrap();
        let metadata = reader.metadata();
        assert_eq!(metadata.file_metadata().num_rows(), 35);
        assert_eq!(metadata.num_row_groups(), 4);
        for (i, row_group) in metadata.row_groups().iter().enumerate() {
            assert_eq!(row_group.ordinal(), Some(i as i16));
        }
        let ranges = row_group_ranges(metadata.row_groups()).unwrap();
        let footer_start = decode_footer(&file1).unwrap().1 as u64;
        check_tiling(&ranges, &(4..footer_start)).unwrap();

        let mut got = read_back(file1);
        got.extend(read_back(file2));
        assert_eq!(got, expected(&rows));
    }

    #[test]
    fn event_time_is_a_utc_millisecond_timestamp_and_absent_values_are_null() {
        let rows: Vec<AuditRow> = (0..4).map(row).collect();
        let chunk = render_parquet(&lake(&rows), &statuses(), 100).unwrap();
        let file = assemble(&[(&chunk, 0..chunk.data_len)]);
        let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(file)).unwrap();
        assert_eq!(
            builder.schema().field(1).data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
        let names: Vec<&str> = builder
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names.len(), 12);
        assert_eq!(names[11], "payload");
        assert_eq!(
            builder.parquet_schema().column(1).logical_type_ref(),
            Some(&LogicalType::timestamp(true, ParquetTimeUnit::MILLIS))
        );
        let got = read_back(assemble(&[(&chunk, 0..chunk.data_len)]));
        // R-2 has no status, operatorName is absent: nulls, not "".
        assert_eq!(got[2][4], None);
        assert_eq!(got[0][7], None);
        assert_eq!(
            got[1][11].as_deref(),
            Some(r#"{"i":1,"big":12345678901234567890}"#)
        );
    }

    #[test]
    fn an_empty_file_is_the_magic_and_a_footer_without_row_groups() {
        let empty = render_parquet(&lake(&[]), &statuses(), 10).unwrap();
        assert_eq!((empty.rows, empty.data_len), (0, 0));
        assert!(empty.row_offsets.is_empty());
        let file = assemble(&[]);
        let reader = SerializedFileReader::new(Bytes::from(file.clone())).unwrap();
        assert_eq!(reader.metadata().num_row_groups(), 0);
        assert_eq!(reader.metadata().file_metadata().num_rows(), 0);
        assert!(read_back(file).is_empty());
    }

    #[test]
    fn a_segment_that_splits_a_row_group_is_refused() {
        let rows: Vec<AuditRow> = (0..30).map(row).collect();
        let chunk = render_parquet(&lake(&rows), &statuses(), 10).unwrap();
        let trailer = trailer_of(&chunk);
        let mut builder = FooterBuilder::new();
        let segment = Segment {
            key: "c".into(),
            start: 0,
            end: chunk.row_offsets[1] + 1,
        };
        let err = builder.push(&trailer, &segment).unwrap_err();
        assert!(
            err.to_string().contains("no row groups that make up bytes"),
            "{err}"
        );
        let past_the_end = Segment {
            key: "c".into(),
            start: chunk.row_offsets[2],
            end: chunk.data_len + 1,
        };
        assert!(builder.push(&trailer, &past_the_end).is_err());
    }

    #[test]
    fn offsets_shift_by_where_each_segment_lands() {
        let rows: Vec<AuditRow> = (0..30).map(row).collect();
        let chunk = render_parquet(&lake(&rows), &statuses(), 10).unwrap();
        let trailer = trailer_of(&chunk);
        let mut builder = FooterBuilder::new();
        let (start, end) = (chunk.row_offsets[1], chunk.row_offsets[2]);
        builder
            .push(
                &trailer,
                &Segment {
                    key: "c".into(),
                    start,
                    end,
                },
            )
            .unwrap();
        let moved = &builder.row_groups[0];
        let original = &trailer.row_groups()[1];
        for (m, o) in moved.columns().iter().zip(original.columns()) {
            assert_eq!(
                m.data_page_offset(),
                o.data_page_offset() - start as i64 + 4
            );
            assert_eq!(
                m.dictionary_page_offset(),
                o.dictionary_page_offset().map(|d| d - start as i64 + 4)
            );
        }
        assert_eq!(moved.file_offset(), Some(4));
        assert_eq!(moved.ordinal(), Some(0));
        assert_eq!(builder.rows(), 10);
    }
}

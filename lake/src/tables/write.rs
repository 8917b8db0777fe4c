//! Table rows → Parquet: files of exactly the table's schema, row groups of
//! at most `row_group_rows` rows, each file named by the hash of its bytes
//! (as [`crate::audit_trail::write`] names audit files), so a retried write
//! lands on the same key.
//!
//! Files of a table with a `timestamp` column hold their rows in
//! `timestamp` order (ascending, NULLs last; [`sort_for_file`]) and say so in
//! their metadata (Parquet `sorting_columns`), with page statistics of the
//! column. The query engine reads that: for the queries users run (`ORDER BY
//! timestamp DESC LIMIT n`) it reads the newest row groups first and skips
//! the rest once it holds the `n` newest rows; a time filter skips pages.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::SchemaRef;
use auditx_proto::TenantId;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::{ColumnType, RowOwner, TableDef};
use crate::files::content_hash;
use crate::files::file_key;
use crate::{LakeError, LakeResult};
use auditx_common::s3::ObjectStore;

const CONTENT_TYPE: &str = "application/vnd.apache.parquet";

/// Columns unique per row: a dictionary would only fall back to plain.
const UNIQUE_COLUMNS: [&str; 2] = ["id", "eventid"];

/// Columns users find rows by (`WHERE username = …`, `ipaddress = …`,
/// `objectid = …`), whose values are spread over every time range: each
/// row group carries a bloom filter of them, so an equality filter skips
/// the row groups without the value (min/max statistics cannot: these
/// columns are not sorted). About 1 byte per row and column.
const BLOOM_COLUMNS: [&str; 6] = [
    "id",
    "username",
    "userid",
    "ipaddress",
    "objectid",
    "transactionid",
];

/// The bloom filters' false positive rate: a row group without the value
/// is still read once in this many.
const BLOOM_FPP: f64 = 0.01;

/// One value of a table row: NULL or a value of its column's type.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Cell {
    Null,
    Text(String),
    /// Epoch milliseconds (UTC).
    Time(i64),
    /// An integer: of an `Integer` column, or of an `Int32` column when in
    /// its range.
    Int(i64),
    Bool(bool),
}

fn parquet_error(e: impl std::fmt::Display) -> LakeError {
    LakeError::Parquet(e.to_string())
}

/// The Arrow builder of one column.
enum Column {
    Text(StringBuilder),
    Time(TimestampMillisecondBuilder),
    Int(Int64Builder),
    Int32(Int32Builder),
    Bool(BooleanBuilder),
}

impl Column {
    fn new(ty: ColumnType) -> Self {
        match ty {
            ColumnType::Text => Column::Text(StringBuilder::new()),
            ColumnType::Timestamp => {
                Column::Time(TimestampMillisecondBuilder::new().with_timezone("UTC"))
            }
            ColumnType::Integer => Column::Int(Int64Builder::new()),
            ColumnType::Int32 => Column::Int32(Int32Builder::new()),
            ColumnType::Boolean => Column::Bool(BooleanBuilder::new()),
        }
    }

    fn accepts(&self, cell: &Cell) -> bool {
        matches!(
            (self, cell),
            (_, Cell::Null)
                | (Column::Text(_), Cell::Text(_))
                | (Column::Time(_), Cell::Time(_))
                | (Column::Int(_), Cell::Int(_))
                | (Column::Bool(_), Cell::Bool(_))
        ) || matches!((self, cell), (Column::Int32(_), Cell::Int(n)) if i32::try_from(*n).is_ok())
    }

    /// Appends `cell`, which [`Column::accepts`].
    fn push(&mut self, cell: Cell) {
        match (self, cell) {
            (Column::Text(b), Cell::Text(s)) => b.append_value(s),
            (Column::Time(b), Cell::Time(ms)) => b.append_value(ms),
            (Column::Int(b), Cell::Int(n)) => b.append_value(n),
            (Column::Int32(b), Cell::Int(n)) => b.append_option(i32::try_from(n).ok()),
            (Column::Bool(b), Cell::Bool(v)) => b.append_value(v),
            (Column::Text(b), _) => b.append_null(),
            (Column::Time(b), _) => b.append_null(),
            (Column::Int(b), _) => b.append_null(),
            (Column::Int32(b), _) => b.append_null(),
            (Column::Bool(b), _) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Text(b) => Arc::new(b.finish()),
            Column::Time(b) => Arc::new(b.finish()),
            Column::Int(b) => Arc::new(b.finish()),
            Column::Int32(b) => Arc::new(b.finish()),
            Column::Bool(b) => Arc::new(b.finish()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Column::Text(b) => b.len(),
            Column::Time(b) => b.len(),
            Column::Int(b) => b.len(),
            Column::Int32(b) => b.len(),
            Column::Bool(b) => b.len(),
        }
    }
}

/// The column a table's files are sorted by, when the table has it.
pub const SORT_COLUMN: &str = "timestamp";

/// Where a row goes in a file's order: by `timestamp` ascending, rows
/// without one last.
fn sort_key(cell: &Cell) -> (bool, i64) {
    match cell {
        Cell::Time(ms) => (false, *ms),
        _ => (true, 0),
    }
}

/// Puts the rows of one file in the order files of `def` keep (see the
/// module's documentation); a stable sort, so rows of one time keep their
/// order. Nothing to do for a table without [`SORT_COLUMN`].
pub(crate) fn sort_for_file(def: &TableDef, rows: &mut [Vec<Cell>]) {
    if let Some(i) = def.index(SORT_COLUMN) {
        rows.sort_by_key(|row| sort_key(&row[i]));
    }
}

fn properties(def: &TableDef, row_group_rows: usize) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_statistics_enabled(EnabledStatistics::Chunk);
    if let Some(i) = def.index(SORT_COLUMN) {
        builder = builder
            .set_sorting_columns(Some(vec![SortingColumn {
                column_idx: i as i32,
                descending: false,
                nulls_first: false,
            }]))
            .set_column_statistics_enabled(ColumnPath::from(SORT_COLUMN), EnabledStatistics::Page);
    }
    // Times of a file differ little from row to row (files are sorted by
    // `timestamp`, and `createddate` follows it): stored as deltas they
    // take a few bits a value against plain's 8 bytes, which Snappy hardly
    // shrinks, and are read and decoded in a fraction of the time
    // (`max(timestamp)` over every row, filters and scans by time).
    for (name, ty) in def.columns {
        if *ty == ColumnType::Timestamp {
            let path = ColumnPath::from(*name);
            builder = builder
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path.clone(), Encoding::DELTA_BINARY_PACKED)
                .set_column_compression(path, Compression::UNCOMPRESSED);
        }
    }
    for name in UNIQUE_COLUMNS {
        if def.column(name).is_some() {
            builder = builder.set_column_dictionary_enabled(ColumnPath::from(name), false);
        }
    }
    // Sized for a row group of distinct values (the writer's default).
    for name in BLOOM_COLUMNS {
        if def.column(name).is_some() {
            let path = ColumnPath::from(name);
            builder = builder
                .set_column_bloom_filter_enabled(path.clone(), true)
                .set_column_bloom_filter_fpp(path, BLOOM_FPP);
        }
    }
    builder.build()
}

/// Encodes one Parquet file of a table, a row group at a time: memory
/// holds one row group's values plus the encoded file. Every row gets the
/// writer's owner in the trailing entity and org columns.
pub(crate) struct TableFileWriter {
    def: &'static TableDef,
    owner: [Cell; 2],
    schema: SchemaRef,
    columns: Vec<Column>,
    writer: ArrowWriter<Vec<u8>>,
    row_group_rows: usize,
    rows: u64,
    /// The index of [`SORT_COLUMN`] and the sort key of the last row pushed.
    sorted_by: Option<(usize, (bool, i64))>,
}

impl TableFileWriter {
    pub(crate) fn new(
        def: &'static TableDef,
        row_group_rows: usize,
        owner: &RowOwner,
    ) -> LakeResult<Self> {
        let row_group_rows = row_group_rows.max(1);
        let schema = def.stored_schema();
        let text = |v: &Option<String>| v.clone().map_or(Cell::Null, Cell::Text);
        let writer = ArrowWriter::try_new(
            Vec::new(),
            schema.clone(),
            Some(properties(def, row_group_rows)),
        )
        .map_err(parquet_error)?;
        let owner_columns = [ColumnType::Text, ColumnType::Text];
        Ok(Self {
            def,
            owner: [text(&owner.entity), text(&owner.org)],
            schema,
            columns: def
                .columns
                .iter()
                .map(|(_, ty)| *ty)
                .chain(owner_columns)
                .map(Column::new)
                .collect(),
            writer,
            row_group_rows,
            rows: 0,
            sorted_by: def.index(SORT_COLUMN).map(|i| (i, (false, i64::MIN))),
        })
    }

    /// Appends a row: one cell per column, in the table's column order, in
    /// the file's order ([`sort_for_file`]): the file's metadata declares it,
    /// so a row out of order is refused rather than written.
    pub(crate) fn push(&mut self, mut row: Vec<Cell>) -> LakeResult<()> {
        if row.len() != self.def.columns.len() {
            return Err(LakeError::Parquet(format!(
                "{}: a row of {} cells for {} columns",
                self.def.name,
                row.len(),
                self.def.columns.len()
            )));
        }
        if let Some((i, last)) = &mut self.sorted_by {
            let key = sort_key(&row[*i]);
            if key < *last {
                return Err(LakeError::Parquet(format!(
                    "{}: rows of a file must come in {SORT_COLUMN} order (ascending, NULLs last)",
                    self.def.name
                )));
            }
            *last = key;
        }
        row.extend(self.owner.iter().cloned());
        let misfit = self
            .columns
            .iter()
            .zip(&row)
            .position(|(c, cell)| !c.accepts(cell));
        if let Some(i) = misfit {
            let (name, ty) = self.def.columns[i];
            return Err(LakeError::Parquet(format!(
                "{}.{name}: {:?} is not a {ty:?} value",
                self.def.name, row[i]
            )));
        }
        for (column, cell) in self.columns.iter_mut().zip(row) {
            column.push(cell);
        }
        self.rows += 1;
        if self.buffered() >= self.row_group_rows {
            self.flush_row_group()?;
        }
        Ok(())
    }

    /// Rows pushed so far.
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    fn buffered(&self) -> usize {
        self.columns.first().map_or(0, Column::len)
    }

    fn flush_row_group(&mut self) -> LakeResult<()> {
        if self.buffered() == 0 {
            return Ok(());
        }
        let arrays = self.columns.iter_mut().map(Column::finish).collect();
        let batch = RecordBatch::try_new(self.schema.clone(), arrays).map_err(parquet_error)?;
        self.writer.write(&batch).map_err(parquet_error)?;
        self.writer.flush().map_err(parquet_error)
    }

    /// The file's bytes.
    pub(crate) fn finish(mut self) -> LakeResult<Bytes> {
        self.flush_row_group()?;
        Ok(Bytes::from(
            self.writer.into_inner().map_err(parquet_error)?,
        ))
    }
}

/// The `(year, month)` partition of a row of a partitioned table: both
/// cells set (ingest and generate fill them from `createddate`). A row
/// without them has none: its file goes to the top of the tenant's prefix,
/// where data queries read it too (as files from before partitions).
pub(crate) fn partition_of(def: &TableDef, row: &[Cell]) -> Option<Partition> {
    let [year, month] = super::PARTITION_COLUMNS.map(|c| def.index(c));
    match (&row[year?], &row[month?]) {
        (Cell::Int(y), Cell::Int(m)) => Some(Partition {
            year: i32::try_from(*y).ok()?,
            month: i32::try_from(*m).ok()?,
        }),
        _ => None,
    }
}

/// The `year=`/`month=` directory a file of a partitioned table goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Partition {
    pub year: i32,
    pub month: i32,
}

/// Uploads an encoded file of `def` under the tenant's prefix (and the
/// partition's directory, for a partitioned table), named by the hash of
/// its bytes; returns the key.
pub(crate) async fn put_table_file(
    store: &ObjectStore,
    bucket: &str,
    tenant: &TenantId,
    def: &TableDef,
    partition: Option<Partition>,
    bytes: Bytes,
) -> LakeResult<String> {
    let prefix = match partition {
        Some(p) => def.partition_prefix(tenant, p.year, p.month),
        None => def.tenant_prefix(tenant),
    };
    let key = file_key(&prefix, &content_hash(&bytes));
    let size = bytes.len();
    store.put(bucket, &key, bytes, CONTENT_TYPE).await?;
    tracing::debug!(key = %key, bytes = size, "table file written");
    Ok(key)
}

#[cfg(test)]
mod tests {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;
    use crate::tables::{RowOwner, PRODUCT};

    fn product(id: &str, name: Option<&str>) -> Vec<Cell> {
        vec![
            Cell::Text(id.into()),
            name.map_or(Cell::Null, |n| Cell::Text(n.into())),
            Cell::Null,
        ]
    }

    #[test]
    fn files_have_the_stored_schema_the_owner_and_bounded_row_groups() {
        let owner = RowOwner {
            entity: Some("e1".into()),
            org: None,
        };
        let mut writer = TableFileWriter::new(&PRODUCT, 2, &owner).unwrap();
        for i in 0..5 {
            writer
                .push(product(&format!("p{i}"), (i != 3).then_some("Test")))
                .unwrap();
        }
        assert_eq!(writer.rows(), 5);
        let bytes = writer.finish().unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        assert_eq!(reader.schema(), &PRODUCT.stored_schema());
        let groups: Vec<i64> = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert_eq!(groups, [2, 2, 1]);
        for batch in reader.build().unwrap() {
            let batch = batch.unwrap();
            let entity = batch.column_by_name("entity").unwrap();
            let org = batch.column_by_name("org").unwrap();
            let entity = entity.as_any().downcast_ref::<arrow::array::StringArray>();
            assert!(entity.unwrap().iter().all(|e| e == Some("e1")));
            assert_eq!(org.null_count(), org.len());
        }
    }

    #[test]
    fn times_are_stored_as_deltas_and_read_back_exactly() {
        use crate::tables::AUDIT_LOGIN_EVENT;
        let def = &AUDIT_LOGIN_EVENT;
        let mut writer = TableFileWriter::new(def, 4096, &RowOwner::default()).unwrap();
        // Ten thousand logins about a minute apart, unevenly.
        let times: Vec<i64> = (0..10_000i64)
            .map(|i| 1_556_668_800_000 + i * 60_000 + (i * 7919) % 997)
            .collect();
        for (i, ms) in times.iter().enumerate() {
            let mut row = vec![Cell::Null; def.columns.len()];
            row[def.index("id").unwrap()] = Cell::Text(format!("id{i}"));
            row[def.index("timestamp").unwrap()] = Cell::Time(*ms);
            row[def.index("createddate").unwrap()] = Cell::Time(*ms - 5);
            writer.push(row).unwrap();
        }
        let bytes = writer.finish().unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        for name in ["timestamp", "createddate"] {
            let index = def.index(name).unwrap();
            let stored: i64 = reader
                .metadata()
                .row_groups()
                .iter()
                .map(|g| g.column(index).compressed_size())
                .sum();
            // Plain, they take 8 bytes a value.
            assert!(
                stored < 3 * times.len() as i64,
                "{name}: {stored} bytes for {} values",
                times.len()
            );
        }
        let mut read = Vec::new();
        for batch in reader.build().unwrap() {
            let batch = batch.unwrap();
            let column = batch.column_by_name("timestamp").unwrap();
            let column = column
                .as_any()
                .downcast_ref::<arrow::array::TimestampMillisecondArray>()
                .unwrap();
            read.extend(column.values().iter().copied());
        }
        assert_eq!(read, times);
    }

    #[test]
    fn a_cell_of_the_wrong_type_is_an_error_not_a_panic() {
        let mut writer = TableFileWriter::new(&PRODUCT, 10, &RowOwner::default()).unwrap();
        let err = writer
            .push(vec![Cell::Int(1), Cell::Null, Cell::Null])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "parquet: product.id: Int(1) is not a Text value"
        );
        let err = writer.push(vec![Cell::Null]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "parquet: product: a row of 1 cells for 3 columns"
        );
    }
}

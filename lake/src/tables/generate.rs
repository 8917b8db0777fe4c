//! Realistic, deterministic synthetic rows for the tenant tables, for
//! demos and benchmarks of data queries (`auditx generate --table`).
//!
//! The audit event tables get the seed's value sets (login types and
//! statuses, browsers, setting types, object types, namespaces such as
//! `UserManagement` and `Workflow`, actions), times spread over 2019–2020
//! in order, and multi-row transactions numbered by `sequencenumber`.
//! Object changes point at accounts, contacts and catalog objects by id;
//! the reference tables hold those ids when generated with the same seed
//! and at least [`REFERENCED_ROWS`] rows, so the seed's join queries
//! resolve.
//!
//! Ids are `gen-` and 32 hex digits, unique per table and seed (event
//! tables: per row count too). Generated ids are not recorded in the
//! ingest id set (that would cost a set entry per row); the prefix keeps
//! them apart from ingested ids. Files are content-addressed, so running
//! the same generation twice writes the same files again, not more rows.

mod catalog;
mod events;
mod ids;
mod row;
mod rows;

use auditx_proto::TenantId;
use bytes::Bytes;

use super::write::{partition_of, put_table_file, Partition, TableFileWriter};
use super::RowOwner;
use super::{Cell, TableDef};
use crate::{LakeError, LakeResult};
use auditx_common::s3::ObjectStore;

pub use catalog::REFERENCED_ROWS;

/// Rows per generated file: memory holds about one encoded file while the
/// next is generated and one is uploaded.
pub const FILE_ROWS: u64 = 1_000_000;

/// The generated rows of `def`, one cell per column in column order; the
/// same seed and count always give the same rows. Streams: never holds
/// all rows.
pub fn table_rows(
    def: &'static TableDef,
    rows: u64,
    seed: u64,
) -> impl Iterator<Item = Vec<Cell>> + use<> {
    rows::TableRows::new(def, rows, seed)
}

/// One encoded file: its bytes, rows and partition.
type EncodedFile = (Bytes, u64, Option<Partition>);

/// Encodes the generated rows as files of at most `file_rows` rows (and
/// of one `year` and `month` for a partitioned table: rows come in time
/// order, so a new month starts a new file), handing each to `file`; stops
/// after an error or when `file` returns false. CPU-bound: runs on a
/// blocking thread.
fn encode_files(
    def: &'static TableDef,
    rows: u64,
    seed: u64,
    row_group_rows: usize,
    file_rows: u64,
    mut file: impl FnMut(LakeResult<EncodedFile>) -> bool,
) {
    let mut writer: Option<(TableFileWriter, Option<Partition>)> = None;
    for row in table_rows(def, rows, seed) {
        let partition = partition_of(def, &row);
        if writer.as_ref().is_some_and(|(_, p)| *p != partition) {
            let full = writer.take().expect("a file writer");
            if !hand_over(full, &mut file) {
                return;
            }
        }
        if writer.is_none() {
            // Generated rows belong to no entity or org.
            match TableFileWriter::new(def, row_group_rows, &RowOwner::default()) {
                Ok(w) => writer = Some((w, partition)),
                Err(e) => {
                    file(Err(e));
                    return;
                }
            }
        }
        let (current, _) = writer.as_mut().expect("a file writer");
        if let Err(e) = current.push(row) {
            file(Err(e));
            return;
        }
        if current.rows() >= file_rows.max(1) {
            let full = writer.take().expect("a file writer");
            if !hand_over(full, &mut file) {
                return;
            }
        }
    }
    if let Some(last) = writer {
        hand_over(last, &mut file);
    }
}

/// Finishes a file and hands it over; false if encoding failed or the
/// receiver wants no more.
fn hand_over(
    (writer, partition): (TableFileWriter, Option<Partition>),
    file: &mut impl FnMut(LakeResult<EncodedFile>) -> bool,
) -> bool {
    let rows = writer.rows();
    let encoded = writer.finish().map(|bytes| (bytes, rows, partition));
    let ok = encoded.is_ok();
    file(encoded) && ok
}

/// Writes `rows` generated rows of `def` for `tenant` in files of at most
/// [`FILE_ROWS`] rows, with row groups of `row_group_rows`; returns the
/// rows written. Generation and encoding overlap the uploads; memory holds
/// a few files, whatever `rows` is.
#[tracing::instrument(name = "lake.generate_table", skip_all, fields(tenant = %tenant, table = def.name, rows, seed))]
pub async fn generate_table(
    store: &ObjectStore,
    lake_bucket: &str,
    tenant: &TenantId,
    def: &'static TableDef,
    rows: u64,
    seed: u64,
    row_group_rows: usize,
) -> LakeResult<u64> {
    let (sender, mut files) = tokio::sync::mpsc::channel(1);
    let producer = tokio::task::spawn_blocking(move || {
        encode_files(def, rows, seed, row_group_rows, FILE_ROWS, |file| {
            sender.blocking_send(file).is_ok()
        })
    });
    let (mut written, mut keys) = (0u64, 0usize);
    let uploaded: LakeResult<()> = async {
        while let Some(file) = files.recv().await {
            let (bytes, count, partition) = file?;
            put_table_file(store, lake_bucket, tenant, def, partition, bytes).await?;
            written += count;
            keys += 1;
        }
        Ok(())
    }
    .await;
    // After a failed upload, a closed channel stops the producer.
    drop(files);
    producer
        .await
        .map_err(|e| LakeError::Parquet(format!("generator task failed: {e}")))?;
    uploaded?;
    tracing::info!(
        rows = written,
        files = keys,
        "synthetic table rows generated"
    );
    Ok(written)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::tables::TABLES;

    #[test]
    fn files_are_cut_at_file_rows_and_months_and_every_table_encodes() {
        for def in TABLES {
            let mut files = Vec::new();
            encode_files(def, 25, 1, 10, 10, |file| {
                let (_, rows, partition) = file.unwrap();
                files.push((rows, partition));
                true
            });
            if !def.partitioned() {
                assert_eq!(files, [(10, None), (10, None), (5, None)], "{}", def.name);
                continue;
            }
            // 25 rows over 24 months: a file per month that has rows.
            assert!(files.len() > 1, "{}", def.name);
            assert_eq!(files.iter().map(|f| f.0).sum::<u64>(), 25);
            let mut files = Vec::new();
            encode_files(def, 1_000, 1, 100, 10_000, |file| {
                let (_, rows, partition) = file.unwrap();
                files.push((rows, partition));
                true
            });
            assert!(files.len() > 20, "{}: {files:?}", def.name);
            assert_eq!(files.iter().map(|f| f.0).sum::<u64>(), 1_000);
            let months: Vec<Partition> = files.iter().map(|f| f.1.unwrap()).collect();
            assert!(months.is_sorted() && months.windows(2).all(|w| w[0] != w[1]));
            assert_eq!(
                months[0],
                Partition {
                    year: 2019,
                    month: 1
                }
            );
            assert_eq!(
                months.last(),
                Some(&Partition {
                    year: 2020,
                    month: 12
                })
            );
        }
        let mut files = Vec::new();
        encode_files(TABLES[0], 2_000, 1, 100, 50, |file| {
            files.push(file.unwrap().1);
            true
        });
        assert!(files.iter().all(|&rows| rows <= 50) && files.len() > 40);
        assert_eq!(files.iter().sum::<u64>(), 2_000);
    }

    #[test]
    fn a_receiver_that_gives_up_stops_generation() {
        let mut files = 0;
        encode_files(TABLES[0], 100, 1, 10, 10, |_| {
            files += 1;
            false
        });
        assert_eq!(files, 1);
    }

    #[test]
    fn rows_are_deterministic_with_unique_ids_and_ordered_times() {
        for def in TABLES {
            let rows: Vec<Vec<Cell>> = table_rows(def, 2_000, 42).collect();
            assert_eq!(rows.len(), 2_000);
            assert!(
                table_rows(def, 2_000, 42).eq(rows.iter().cloned()),
                "{}",
                def.name
            );
            assert!(
                !table_rows(def, 2_000, 43).eq(rows.iter().cloned()),
                "{}",
                def.name
            );
            let ids: HashSet<&Cell> = rows.iter().map(|r| &r[0]).collect();
            assert_eq!(ids.len(), rows.len(), "{}", def.name);
            if let Some(time) = def.columns.iter().position(|(n, _)| *n == "timestamp") {
                let times: Vec<i64> = rows
                    .iter()
                    .map(|r| match r[time] {
                        Cell::Time(ms) => ms,
                        ref other => panic!("{}: timestamp {other:?}", def.name),
                    })
                    .collect();
                assert!(times.is_sorted(), "{}", def.name);
                // 2019-01-01 .. 2021-01-01
                assert!(times[0] >= 1_546_300_800_000 && times[1_999] < 1_609_459_200_000);
            }
        }
    }
}

//! Ingest of the tenant audit tables (`POST /audit/tables/{table}/rows`):
//! parse and validate a batch of JSON / NDJSON rows keyed by lowercase
//! column name, then write it as one content-addressed Parquet file under
//! `<table>/tenant=<t>/` (one per `year=<y>/month=<m>/` directory for the
//! audit tables), idempotently on `id`.
//!
//! Idempotence follows the meter ingest (`crate::audit_trail::ingest`): ingests of one
//! tenant's table take turns under a state-store lease; each drops ids
//! repeated in the batch or already recorded in the table's id set, writes
//! the rest, and only then records their ids. A crash between the two
//! steps is healed by the client's retry: the same rows yield the same
//! file, on the same key.

mod parse;

use auditx_proto::TenantId;

use super::write::{partition_of, put_table_file, sort_for_file, Partition, TableFileWriter};
use super::{Cell, RowOwner, TableDef};
use crate::batch::{IngestError, IngestSummary};
use crate::ledger::Ledger;
use crate::LakeError;
use auditx_common::s3::ObjectStore;
use auditx_common::state::StateStore;

/// The column ingest is idempotent on; every table has it.
pub const ID_COLUMN: &str = "id";

/// A validated batch of one table's rows, in batch order: one cell per
/// column, in the table's column order, with a non-empty text `id`.
#[derive(Clone, Debug)]
pub struct TableBatch {
    def: &'static TableDef,
    rows: Vec<Vec<Cell>>,
}

impl TableBatch {
    pub fn def(&self) -> &'static TableDef {
        self.def
    }

    pub fn rows(&self) -> &[Vec<Cell>] {
        &self.rows
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

fn id_index(def: &TableDef) -> usize {
    def.columns
        .iter()
        .position(|(name, _)| *name == ID_COLUMN)
        .expect("every table has an id column")
}

fn id_of(row: &[Cell], id_index: usize) -> &str {
    match &row[id_index] {
        Cell::Text(id) => id,
        // A TableBatch is only made by `parse_table_rows`, which requires it.
        _ => unreachable!("a parsed row has a text id"),
    }
}

/// Parses a JSON array or NDJSON of `def`'s rows (already gunzipped: see
/// [`crate::batch::decode_body`]). A missing column or JSON null is NULL;
/// an unknown column, a value of the wrong JSON type, a time without zone
/// or a missing `id` rejects the batch, naming the row and the column.
pub fn parse_table_rows(def: &'static TableDef, body: &[u8]) -> Result<TableBatch, IngestError> {
    let rows = parse::table_rows(def, id_index(def), body)?;
    Ok(TableBatch { def, rows })
}

/// The rows of a batch by the file they go to: one group for a table
/// without partitions, one per `(year, month)` for a partitioned one (in
/// partition order; batch order inside a group).
fn by_partition(def: &TableDef, rows: Vec<Vec<Cell>>) -> Vec<(Option<Partition>, Vec<Vec<Cell>>)> {
    if !def.partitioned() {
        return vec![(None, rows)];
    }
    let mut groups: std::collections::BTreeMap<Option<Partition>, Vec<Vec<Cell>>> =
        std::collections::BTreeMap::new();
    for row in rows {
        groups.entry(partition_of(def, &row)).or_default().push(row);
    }
    groups.into_iter().collect()
}

/// Under the lease: drops known ids, writes one file (one per `year` and
/// `month` of a partitioned table), records the ids. Returns the rows
/// written and the last file's key.
async fn ingest_locked(
    store: &ObjectStore,
    ledger: &Ledger<'_>,
    bucket: &str,
    tenant: &TenantId,
    owner: &RowOwner,
    batch: TableBatch,
    row_group_rows: usize,
) -> Result<(u64, Option<String>), LakeError> {
    let def = batch.def;
    let id_index = id_index(def);
    let fresh = ledger
        .new_rows(batch.rows, |row| id_of(row, id_index))
        .await?;
    if fresh.is_empty() {
        return Ok((0, None));
    }
    let ids: Vec<String> = fresh
        .iter()
        .map(|r| id_of(r, id_index).to_owned())
        .collect();
    let mut key = None;
    for (partition, mut rows) in by_partition(def, fresh) {
        // Encoding is CPU-bound: keep it off the async workers.
        let owner = owner.clone();
        let bytes = tokio::task::spawn_blocking(move || {
            sort_for_file(def, &mut rows);
            let mut writer = TableFileWriter::new(def, row_group_rows, &owner)?;
            for row in rows {
                writer.push(row)?;
            }
            writer.finish()
        })
        .await
        .map_err(|e| LakeError::Parquet(format!("encoding task failed: {e}")))??;
        key = Some(put_table_file(store, bucket, tenant, def, partition, bytes).await?);
    }
    ledger.record_ids(&ids).await?;
    Ok((ids.len() as u64, key))
}

/// Writes a validated batch to the tenant's table, its rows stamped with
/// `owner`, dropping ids the table already has (and repeats inside the
/// batch): they count as duplicates.
#[tracing::instrument(name = "lake.ingest_table", skip_all, fields(tenant = %tenant, table = batch.def.name, rows = batch.len()))]
pub async fn ingest_table_rows(
    store: &ObjectStore,
    state: &dyn StateStore,
    lake_bucket: &str,
    tenant: &TenantId,
    owner: &RowOwner,
    batch: TableBatch,
    row_group_rows: usize,
) -> Result<IngestSummary, IngestError> {
    let received = batch.len() as u64;
    if batch.is_empty() {
        return Ok(IngestSummary::default());
    }
    let ledger = Ledger::table(state, tenant, batch.def.name);
    let lease = ledger.lock().await?;
    let outcome = ingest_locked(
        store,
        &ledger,
        lake_bucket,
        tenant,
        owner,
        batch,
        row_group_rows,
    )
    .await;
    ledger.unlock(&lease).await;
    let (accepted, key) = outcome?;
    let summary = IngestSummary {
        received,
        accepted,
        duplicates: received - accepted,
    };
    tracing::info!(
        accepted,
        duplicates = summary.duplicates,
        key = key.as_deref().unwrap_or_default(),
        "table rows ingested"
    );
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::TABLES;

    #[test]
    fn every_table_has_a_text_id_column() {
        for def in TABLES {
            let index = id_index(def);
            assert_eq!(
                def.columns[index].1,
                crate::tables::ColumnType::Text,
                "{}",
                def.name
            );
        }
    }
}

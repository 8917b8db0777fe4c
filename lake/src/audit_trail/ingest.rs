//! Ingest: parse and validate batches of JSON / NDJSON (gzip allowed), then
//! write them to the lake idempotently (one row per eventId per meter).
//!
//! Idempotence: ingests of one meter take turns under a state-store lease;
//! each drops eventIds already recorded in the meter's eventId set, writes
//! the rest as content-addressed files, and only then records their ids.
//!
//! The set is an index of the lake, and the lake is the truth: the state
//! store also records which lake files the set covers, and every ingest
//! first lists the meter's files and adds the eventIds of any file the set
//! does not cover yet (reading only that column). So dedupe holds for rows
//! that entered the lake any other way (`auditx generate`, a copy), after
//! the state store lost its data (a Redis without persistence restarted,
//! a new embedded data folder on an old lake), and after a crash between
//! writing files and recording their ids.

pub mod fields;
mod parse;

use auditx_proto::{MeterId, TenantId};

use super::read::{list_meter_audit_objects, read_event_ids};
use super::write::{write_audit_rows, write_run_rows};
use crate::batch::{IngestError, IngestSummary};
use crate::ledger::Ledger;
use crate::LakeError;
use crate::{AuditRow, RunRow};
use auditx_common::s3::ObjectStore;
use auditx_common::state::StateStore;

/// Who is ingesting: the tenant (and entity/org) come from the caller's token.
#[derive(Clone, Debug)]
pub struct IngestContext {
    pub tenant: TenantId,
    pub entity: Option<String>,
    pub org: Option<String>,
    pub meter: MeterId,
}

/// Parses a JSON array or NDJSON of audit entries (SPEC §6).
pub fn parse_audit_entries(body: &[u8], ctx: &IngestContext) -> Result<Vec<AuditRow>, IngestError> {
    parse::audit_entries(body, ctx)
}

/// Parses a JSON array or NDJSON of run status changes.
pub fn parse_run_entries(body: &[u8], ctx: &IngestContext) -> Result<Vec<RunRow>, IngestError> {
    parse::run_entries(body, ctx)
}

/// Adds to the meter's eventId set the ids of every file of the meter it
/// does not cover yet; returns how many files that took.
async fn index_new_files(
    store: &ObjectStore,
    ledger: &Ledger<'_>,
    bucket: &str,
    ctx: &IngestContext,
) -> Result<usize, LakeError> {
    let objects = list_meter_audit_objects(store, bucket, &ctx.tenant, ctx.meter).await?;
    let keys: Vec<String> = objects.iter().map(|o| o.key.clone()).collect();
    let known = ledger.files_indexed(&keys).await?;
    let mut indexed = 0;
    for (object, known) in objects.iter().zip(known) {
        if known {
            continue;
        }
        let ids = read_event_ids(store, bucket, object).await?;
        ledger.record_ids(&ids).await?;
        ledger
            .record_files(std::slice::from_ref(&object.key))
            .await?;
        indexed += 1;
        tracing::info!(file = %object.key, ids = ids.len(), "lake file added to the eventId index");
    }
    Ok(indexed)
}

async fn ingest_locked(
    store: &ObjectStore,
    ledger: &Ledger<'_>,
    bucket: &str,
    ctx: &IngestContext,
    rows: Vec<AuditRow>,
    row_group_rows: usize,
) -> Result<(u64, usize), LakeError> {
    index_new_files(store, ledger, bucket, ctx).await?;
    let fresh = ledger.new_rows(rows, |r| r.event_id.as_str()).await?;
    if fresh.is_empty() {
        return Ok((0, 0));
    }
    let ids: Vec<String> = fresh.iter().map(|r| r.event_id.clone()).collect();
    let files =
        write_audit_rows(store, bucket, &ctx.tenant, ctx.meter, fresh, row_group_rows).await?;
    ledger.record_ids(&ids).await?;
    ledger.record_files(&files).await?;
    Ok((ids.len() as u64, files.len()))
}

/// Writes validated audit rows, dropping eventIds the meter already has.
#[tracing::instrument(name = "lake.ingest_audit", skip_all, fields(tenant = %ctx.tenant, meter = %ctx.meter, rows = rows.len()))]
pub async fn ingest_audit(
    store: &ObjectStore,
    state: &dyn StateStore,
    bucket: &str,
    ctx: &IngestContext,
    rows: Vec<AuditRow>,
    row_group_rows: usize,
) -> Result<IngestSummary, IngestError> {
    let received = rows.len() as u64;
    if rows.is_empty() {
        return Ok(IngestSummary::default());
    }
    let ledger = Ledger::meter(state, &ctx.tenant, ctx.meter);
    let lease = ledger.lock().await?;
    let outcome = ingest_locked(store, &ledger, bucket, ctx, rows, row_group_rows).await;
    ledger.unlock(&lease).await;
    let (accepted, files) = outcome?;
    let summary = IngestSummary {
        received,
        accepted,
        duplicates: received - accepted,
    };
    tracing::info!(
        accepted,
        duplicates = summary.duplicates,
        files,
        "audit rows ingested"
    );
    Ok(summary)
}

/// Writes validated run rows.
#[tracing::instrument(name = "lake.ingest_runs", skip_all, fields(tenant = %ctx.tenant, meter = %ctx.meter, rows = rows.len()))]
pub async fn ingest_runs(
    store: &ObjectStore,
    bucket: &str,
    ctx: &IngestContext,
    rows: Vec<RunRow>,
) -> Result<IngestSummary, IngestError> {
    let received = rows.len() as u64;
    write_run_rows(store, bucket, &ctx.tenant, ctx.meter, rows).await?;
    Ok(IngestSummary {
        received,
        accepted: received,
        duplicates: 0,
    })
}

//! A job's plan: the lake snapshot it reads, the row filter and the chunks,
//! decided once when the job starts and stored (fenced) so that a replica
//! taking the job over renders exactly the same chunks into the same files.

use std::collections::{BTreeMap, BTreeSet};

use auditx_lake::audit_trail::read::{event_ids_at, latest_statuses, list_audit_files, read_runs};
use auditx_proto::RowFilter;
use serde::{Deserialize, Serialize};
use tracing::instrument;

use crate::context::Services;
use crate::error::DriveError;
use crate::export::jobs::{ExportQuery, JobSpec};
use crate::export::planner::{plan, sampled, sampling_rate, split_by_event_id, PlannedChunk};

/// Everything about a job that must not change if another replica takes
/// it over, including the settings that shape its files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPlan {
    /// When the lake was listed: rows ingested before this are exported.
    pub consistent_as_of_ms: i64,
    pub filter: RowFilter,
    /// sessionId → status when planned, for the `runStatus` column.
    pub run_statuses: BTreeMap<String, String>,
    pub chunks: Vec<PlannedChunk>,
    pub max_rows_per_file: u64,
    pub offset_stride: u32,
    pub part_size: u64,
}

/// Lists the lake and plans the job's chunks.
#[instrument(name = "scheduler.plan", skip_all, fields(request_id = %spec.request_id))]
pub async fn prepare(services: &Services, spec: &JobSpec) -> Result<JobPlan, DriveError> {
    let config = &services.config;
    let bucket = &config.s3.lake_bucket;
    let consistent_as_of_ms = chrono::Utc::now().timestamp_millis();
    // The runs and the lake's files are read at once (a small export's
    // planning is mostly these round trips).
    let (runs, files) = tokio::try_join!(
        read_runs(&services.store, bucket, &spec.tenant, spec.meter_id),
        list_audit_files(
            &services.store,
            bucket,
            &spec.tenant,
            spec.meter_id,
            spec.from_ms,
            spec.to_ms,
        ),
    )?;
    let statuses = latest_statuses(&runs);
    let sessions = allowed_sessions(&spec.query, &statuses);
    let files = if sessions.as_ref().is_some_and(Vec::is_empty) {
        // A filter no session passes: nothing to read, one header-only file.
        Vec::new()
    } else {
        files
    };
    let run_statuses = match &sessions {
        Some(allowed) => statuses
            .into_iter()
            .filter(|(s, _)| allowed.contains(s))
            .collect(),
        None => statuses,
    };
    let chunk_rows = config.export.chunk_rows;
    let chunks = plan(spec.from_ms, spec.to_ms, &files, chunk_rows);
    let chunks = split_hot_milliseconds(services, chunks, chunk_rows).await?;
    tracing::info!(
        request_id = %spec.request_id,
        lake_files = files.len(),
        chunks = chunks.len(),
        estimated_rows = chunks.iter().map(|c| c.estimated_rows).sum::<u64>(),
        "export planned"
    );
    Ok(JobPlan {
        consistent_as_of_ms,
        filter: RowFilter {
            run_type: spec.query.run_type,
            record_type: spec.query.export_type,
            session_ids: sessions,
            operator_ids: (!spec.query.operator_ids.is_empty())
                .then(|| spec.query.operator_ids.clone()),
            scope: spec.scope.clone(),
        },
        run_statuses,
        chunks,
        max_rows_per_file: config.export.max_rows_per_file,
        offset_stride: config.effective_offset_stride(),
        part_size: config.export.part_size,
    })
}

/// Splits every hot millisecond (more than `chunk_rows` rows at one
/// eventTime) into eventId ranges of about `chunk_rows` rows, reading the
/// eventIds of that millisecond (a bounded sample of them past
/// [`crate::export::planner::MAX_SAMPLED_IDS`]).
async fn split_hot_milliseconds(
    services: &Services,
    chunks: Vec<PlannedChunk>,
    chunk_rows: u64,
) -> Result<Vec<PlannedChunk>, DriveError> {
    let bucket = &services.config.s3.lake_bucket;
    let mut planned = Vec::with_capacity(chunks.len());
    for chunk in chunks {
        if !chunk.is_hot(chunk_rows) {
            planned.push(chunk);
            continue;
        }
        let rate = sampling_rate(&chunk);
        let keep = move |id: &str| sampled(id, rate);
        let ids = event_ids_at(
            &services.store,
            bucket,
            &chunk.sources,
            chunk.from_ms,
            &keep,
        )
        .await?;
        let pieces = split_by_event_id(&chunk, ids, rate, chunk_rows);
        tracing::info!(
            at_ms = chunk.from_ms,
            estimated_rows = chunk.estimated_rows,
            pieces = pieces.len(),
            "hot millisecond split by eventId"
        );
        planned.extend(pieces);
    }
    Ok(planned)
}

/// The sessions an export may read: `sessionIds` if given, narrowed to the
/// sessions whose latest status is one of `runStatuses` if given. `None`
/// means every session; an empty list means none.
pub fn allowed_sessions(
    query: &ExportQuery,
    statuses: &BTreeMap<String, String>,
) -> Option<Vec<String>> {
    let mut allowed: Option<BTreeSet<&str>> = (!query.session_ids.is_empty())
        .then(|| query.session_ids.iter().map(String::as_str).collect());
    if !query.run_statuses.is_empty() {
        let by_status: BTreeSet<&str> = statuses
            .iter()
            .filter(|(_, status)| query.run_statuses.contains(status))
            .map(|(session, _)| session.as_str())
            .collect();
        allowed = Some(match allowed {
            Some(ids) => ids.intersection(&by_status).copied().collect(),
            None => by_status,
        });
    }
    allowed.map(|set| set.into_iter().map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use auditx_proto::{OutputFormat, RecordType, RunType};

    use super::*;

    fn query(session_ids: &[&str], run_statuses: &[&str]) -> ExportQuery {
        ExportQuery {
            export_type: RecordType::Error,
            run_type: RunType::Normal,
            session_ids: session_ids.iter().map(|s| s.to_string()).collect(),
            run_statuses: run_statuses.iter().map(|s| s.to_string()).collect(),
            operator_ids: vec![],
            query_from_time: "2025-01-01T00:00:00Z".into(),
            query_to_time: "2025-01-02T00:00:00Z".into(),
            format: OutputFormat::Csv,
        }
    }

    fn statuses() -> BTreeMap<String, String> {
        [
            ("R-1", "COMPLETED"),
            ("R-2", "FAILED"),
            ("R-3", "COMPLETED"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
    }

    #[test]
    fn no_filters_allow_every_session() {
        assert_eq!(allowed_sessions(&query(&[], &[]), &statuses()), None);
    }

    #[test]
    fn session_ids_alone_are_kept_as_given() {
        let allowed = allowed_sessions(&query(&["R-9", "R-1"], &[]), &statuses());
        assert_eq!(allowed, Some(vec!["R-1".into(), "R-9".into()]));
    }

    #[test]
    fn run_statuses_select_sessions_by_latest_status() {
        let allowed = allowed_sessions(&query(&[], &["COMPLETED"]), &statuses());
        assert_eq!(allowed, Some(vec!["R-1".into(), "R-3".into()]));
        let both = allowed_sessions(&query(&["R-2", "R-3"], &["COMPLETED"]), &statuses());
        assert_eq!(both, Some(vec!["R-3".into()]));
    }

    #[test]
    fn a_status_no_session_has_allows_nothing() {
        assert_eq!(
            allowed_sessions(&query(&[], &["PAUSED"]), &statuses()),
            Some(vec![])
        );
    }
}

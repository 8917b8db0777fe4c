//! What the online entries and the summary share with exports: the same
//! filters turned into the same row filter, read by the API process
//! straight from the lake.

use std::collections::BTreeMap;

use auditx_lake::audit_trail::read::{latest_statuses, read_runs};
use auditx_proto::{MeterId, RowFilter, Scope, TenantId};

use crate::api::request::filters::CreateRequest;
use crate::api::response::error::ApiResult;
use crate::context::Services;
use crate::export::job_plan::allowed_sessions;

/// The rows a call is about.
pub struct Selection {
    /// The export's row filter: types, runs, operators and the caller's
    /// entity/org scope.
    pub filter: RowFilter,
    /// sessionId → the run's latest status, for the `runStatus` column.
    pub run_statuses: BTreeMap<String, String>,
    /// The runs `sessionIds` / `runStatuses` let through (`None`: all).
    pub sessions: Option<Vec<String>>,
}

impl Selection {
    /// No run passes the filters: nothing to read.
    pub fn is_empty(&self) -> bool {
        self.sessions.as_ref().is_some_and(Vec::is_empty)
    }
}

/// Reads the meter's runs and builds the row filter as an export plans
/// it: `runStatuses` selects runs by their latest status.
pub async fn select(
    services: &Services,
    tenant: &TenantId,
    meter: MeterId,
    request: &CreateRequest,
    scope: Scope,
) -> ApiResult<Selection> {
    let bucket = &services.config.s3.lake_bucket;
    let runs = read_runs(&services.store, bucket, tenant, meter).await?;
    let run_statuses = latest_statuses(&runs);
    let sessions = allowed_sessions(&request.query, &run_statuses);
    let query = &request.query;
    Ok(Selection {
        filter: RowFilter {
            run_type: query.run_type,
            record_type: query.export_type,
            session_ids: sessions.clone(),
            operator_ids: (!query.operator_ids.is_empty()).then(|| query.operator_ids.clone()),
            scope,
        },
        run_statuses,
        sessions,
    })
}

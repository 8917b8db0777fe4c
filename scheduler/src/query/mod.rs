//! Data queries: SQL over the tenant's audit tables, run by the workers.
//!
//! The API checks and stores a query as `accepted`. The replica holding the
//! tenant's query lease starts up to `query.max_running_per_tenant` of them
//! at once (oldest first), sends each to the workers as one task, and ends
//! it from the worker's report: `completed` with the result object,
//! `failed` with a message, or — if the API cancelled it meanwhile —
//! deletes what the worker wrote.

pub(crate) mod driver;
pub mod jobs;
pub mod record;
pub mod retention;
pub mod saved;

/// `<tenant>/queries/<queryId>/`: the result objects of one query (a
/// worker adds one attempt id per run, so a redelivered task never writes
/// into another attempt's object).
pub fn result_prefix(tenant: &auditx_proto::TenantId, id: &auditx_proto::QueryId) -> String {
    format!("{tenant}/queries/{id}/")
}

//! `GET /fleet/workers`: the workers alive (they announce themselves every
//! two seconds; one silent for six is gone — `auditx_common::fleet`);
//! `GET /fleet/throughput`: the fleet's counts of the last hour per minute
//! (`auditx_common::fleet::throughput`). Both need the `ops:read` scope.

use auditx_common::fleet::alive_workers;
use auditx_common::fleet::throughput::last_hour;
use auditx_common::time::iso_millis;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::auth::Caller;
use crate::api::request::query::{NoParams, Query};
use crate::api::response::envelope::Envelope;
use crate::api::response::error::ApiResult;
use crate::context::Services;

/// One worker process (or worker loop of a standalone process).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerView {
    pub id: String,
    pub host: String,
    pub pid: u32,
    /// Tasks it runs at once at most.
    pub concurrency: u16,
    /// Tasks it runs now.
    pub in_flight: u64,
    #[schema(format = DateTime)]
    pub started_at: String,
    /// When it last announced itself.
    #[schema(format = DateTime)]
    pub seen_at: String,
}

/// `GET /fleet/workers`.
#[utoipa::path(
    get,
    path = "/fleet/workers",
    operation_id = "listWorkers",
    summary = "The workers alive, with their concurrency and tasks in flight",
    description = "Workers announce themselves every 2 s; one not heard of for 6 s is not listed. Needs the ops:read scope.",
    responses(
        (status = 200, description = "The workers alive, by id.", body = Envelope<Vec<WorkerView>>),
    )
)]
pub async fn workers(
    State(services): State<Services>,
    _caller: Caller,
    _: Query<NoParams>,
) -> ApiResult<Response> {
    let now = chrono::Utc::now().timestamp_millis();
    let workers: Vec<WorkerView> = alive_workers(services.state.as_ref(), now)
        .await?
        .into_iter()
        .map(|w| WorkerView {
            id: w.id,
            host: w.host,
            pid: w.pid,
            concurrency: w.concurrency,
            in_flight: w.in_flight,
            started_at: iso_millis(w.started_at_ms),
            seen_at: iso_millis(w.seen_at_ms),
        })
        .collect();
    Ok(Envelope::ok(workers).into_response())
}

/// One minute of the fleet's throughput (every worker's counts summed).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThroughputMinute {
    /// The minute's start.
    #[schema(format = DateTime)]
    pub minute: String,
    /// Data rows rendered into export chunks.
    pub rows: u64,
    /// Tasks finished (render, assemble, query; succeeded or failed).
    pub tasks: u64,
    /// Data queries completed with a result.
    pub queries: u64,
}

/// `GET /fleet/throughput`.
#[utoipa::path(
    get,
    path = "/fleet/throughput",
    operation_id = "fleetThroughput",
    summary = "The fleet's throughput over the last hour, per minute",
    description = "60 minutes, oldest first, the current one last: rows rendered, tasks finished and data queries completed by every worker (each adds its counts every 5 s). Needs the ops:read scope.",
    responses(
        (status = 200, description = "The last 60 minutes.", body = Envelope<Vec<ThroughputMinute>>),
    )
)]
pub async fn throughput(
    State(services): State<Services>,
    _caller: Caller,
    _: Query<NoParams>,
) -> ApiResult<Response> {
    let now = chrono::Utc::now().timestamp_millis();
    let minutes: Vec<ThroughputMinute> = last_hour(services.state.as_ref(), now)
        .await?
        .into_iter()
        .map(|m| ThroughputMinute {
            minute: iso_millis(m.start_ms),
            rows: m.counts.rows,
            tasks: m.counts.tasks,
            queries: m.counts.queries,
        })
        .collect();
    Ok(Envelope::ok(minutes).into_response())
}

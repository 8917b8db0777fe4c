//! Workers announce themselves in the state store: each worker process
//! writes its record under `fleet/worker/<id>` every [`ANNOUNCE_EVERY`] and
//! adds its id to the set `fleet/workers`; a record not refreshed for
//! [`GONE_AFTER`] is a worker that stopped (killed, crashed, partitioned).
//! A worker that stops cleanly removes its record at once. The scheduler's
//! `GET /fleet/workers` (and the console's Fleet page) read them.
//!
//! Workers also count what they finish, per minute ([`throughput`]).

pub mod throughput;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::state::{Guard, StateStore, Write};

/// The set of announced worker ids.
pub const WORKERS_KEY: &str = "fleet/workers";
/// How often a worker refreshes its record.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(2);
/// A record older than this is a worker that is gone.
pub const GONE_AFTER: Duration = Duration::from_secs(6);
/// Records older than this are removed by the readers.
pub const FORGET_AFTER: Duration = Duration::from_secs(600);

/// The key of a worker's record.
pub fn worker_key(id: &str) -> String {
    format!("fleet/worker/{id}")
}

/// What a worker says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerAnnouncement {
    pub id: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub pid: u32,
    /// Tasks it runs at once at most (`worker.concurrency`).
    pub concurrency: u16,
    /// Tasks it runs now.
    #[serde(default)]
    pub in_flight: u64,
    pub started_at_ms: i64,
    /// When it last wrote this record (its clock).
    pub seen_at_ms: i64,
}

/// Writes `current()` every [`ANNOUNCE_EVERY`] until `shutdown`, then
/// removes the record. Failures are logged and retried at the next tick:
/// an announcement is best effort and never stops the worker.
pub async fn announce(
    state: Arc<dyn StateStore>,
    current: impl Fn() -> WorkerAnnouncement,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(ANNOUNCE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut id = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let record = current();
        let Ok(bytes) = serde_json::to_vec(&record) else {
            continue;
        };
        let writes = vec![
            Write::Set(worker_key(&record.id), bytes),
            Write::SetAdd(WORKERS_KEY.to_owned(), record.id.clone()),
        ];
        if let Err(error) = state.apply_atomically(Guard::Always, writes).await {
            tracing::debug!(%error, "worker announcement not written");
        }
        id = Some(record.id);
    }
    if let Some(id) = id {
        let writes = vec![
            Write::Delete(worker_key(&id)),
            Write::SetRemove(WORKERS_KEY.to_owned(), id),
        ];
        if let Err(error) = state.apply_atomically(Guard::Always, writes).await {
            tracing::debug!(%error, "worker announcement not removed");
        }
    }
}

/// The workers whose records are fresh at `now_ms`, by id; records past
/// [`FORGET_AFTER`] (and unreadable ones) are removed.
pub async fn alive_workers(
    state: &dyn StateStore,
    now_ms: i64,
) -> crate::state::StateResult<Vec<WorkerAnnouncement>> {
    let gone_ms = GONE_AFTER.as_millis() as i64;
    let forget_ms = FORGET_AFTER.as_millis() as i64;
    let mut alive = Vec::new();
    for id in state.set_members(WORKERS_KEY).await? {
        let record = state
            .get(&worker_key(&id))
            .await?
            .and_then(|bytes| serde_json::from_slice::<WorkerAnnouncement>(&bytes).ok());
        match record {
            Some(r) if now_ms - r.seen_at_ms <= gone_ms => alive.push(r),
            Some(r) if now_ms - r.seen_at_ms <= forget_ms => {}
            _ => {
                let writes = vec![
                    Write::Delete(worker_key(&id)),
                    Write::SetRemove(WORKERS_KEY.to_owned(), id),
                ];
                state.apply_atomically(Guard::Always, writes).await?;
            }
        }
    }
    alive.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(alive)
}

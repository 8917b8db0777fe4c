//! This worker's announcement (see `auditx_common::fleet`): its id, host,
//! pid, concurrency and tasks in flight, refreshed every two seconds.

use std::sync::Arc;

use auditx_common::fleet::{announce, WorkerAnnouncement};
use auditx_common::state::StateStore;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Announces the worker until `shutdown`; `slots` are its task slots.
pub fn spawn(
    state: Arc<dyn StateStore>,
    concurrency: u16,
    slots: Arc<Semaphore>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let id = format!("worker-{}", uuid::Uuid::new_v4().simple());
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let started_at_ms = now_ms();
    let current = move || WorkerAnnouncement {
        id: id.clone(),
        host: host.clone(),
        pid: std::process::id(),
        concurrency,
        in_flight: usize::from(concurrency).saturating_sub(slots.available_permits()) as u64,
        started_at_ms,
        seen_at_ms: now_ms(),
    };
    tokio::spawn(announce(state, current, shutdown))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

//! This worker's announcement (see `auditx_common::fleet`): its id, host,
//! pid, concurrency and tasks in flight, refreshed every two seconds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use auditx_common::fleet::{announce, WorkerAnnouncement};
use auditx_common::state::StateStore;
use tokio_util::sync::CancellationToken;

/// The tasks a worker loop runs now. Not its free slots: the loop holds a
/// slot while it waits for the next delivery, so an idle worker would look
/// busy.
#[derive(Clone, Debug, Default)]
pub struct Running(Arc<AtomicU64>);

impl Running {
    /// Counts one task until the guard is dropped (a panicking task too).
    pub fn start(&self) -> RunningTask {
        self.0.fetch_add(1, Ordering::Relaxed);
        RunningTask(self.0.clone())
    }

    fn now(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One running task of [`Running`].
pub struct RunningTask(Arc<AtomicU64>);

impl Drop for RunningTask {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Announces the worker until `shutdown`, with the tasks `running` counts.
pub fn spawn(
    state: Arc<dyn StateStore>,
    concurrency: u16,
    running: Running,
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
        in_flight: running.now(),
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

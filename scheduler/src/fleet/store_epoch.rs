//! The state store's epoch as stored (its key and the recovery lease are
//! built here only), and what one replica remembers of it (see
//! [`super::epoch`]).

use std::sync::Mutex;
use std::time::Duration;

use auditx_common::state::{Lease, StateResult, StateStore};

/// The state store's epoch key.
const EPOCH_KEY: &str = "epoch";
/// The lease of the replica recovering a store that lost its data.
const RECOVERY_LEASE: &str = "lease/state-recovery";

/// The store's epoch, if it has one (a store that never had one, or lost it).
pub(crate) async fn read(state: &dyn StateStore) -> StateResult<Option<String>> {
    Ok(state
        .get(EPOCH_KEY)
        .await?
        .map(|epoch| String::from_utf8_lossy(&epoch).into_owned()))
}

/// Starts a new fleet's epoch unless one is there already.
pub(crate) async fn start(state: &dyn StateStore, epoch: &str) -> StateResult<bool> {
    state.set_if_absent(EPOCH_KEY, epoch.as_bytes()).await
}

/// Writes the epoch a recovery ends with.
pub(crate) async fn write(state: &dyn StateStore, epoch: &str) -> StateResult<()> {
    state.set(EPOCH_KEY, epoch.as_bytes()).await
}

/// Takes the recovery lease for `ttl`, unless another replica recovers.
pub(crate) async fn take_recovery_lease(
    state: &dyn StateStore,
    replica: &str,
    ttl: Duration,
) -> StateResult<Option<Lease>> {
    state.try_acquire_lease(RECOVERY_LEASE, replica, ttl).await
}

/// Releases the recovery lease (one that cannot be released expires).
pub(crate) async fn release(state: &dyn StateStore, lease: &Lease) -> StateResult<()> {
    state.release_lease(lease).await
}

/// This replica's view of the store's epoch.
#[derive(Default)]
pub struct StoreEpoch {
    known: Mutex<Option<String>>,
    /// One slow path (start or recovery) at a time in this process.
    pub(crate) slow_path: tokio::sync::Mutex<()>,
}

impl StoreEpoch {
    /// Notes the epoch seen; `recovered_here` when this replica wrote it.
    pub(crate) fn remember(&self, epoch: &str, recovered_here: bool) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known.as_deref() != Some(epoch) {
            if known.is_some() && !recovered_here {
                tracing::warn!(
                    epoch,
                    "state store epoch changed (recovered by another replica)"
                );
            }
            *known = Some(epoch.to_owned());
        }
    }
}

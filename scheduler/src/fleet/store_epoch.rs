//! What one replica remembers of the state store's epoch (see
//! [`super::epoch`]).

use std::sync::Mutex;

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

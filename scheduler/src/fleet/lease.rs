//! A held tenant lease, renewed in the background every third of its TTL.
//! Whoever holds it drives the tenant's exports; when a renewal fails (or the
//! process shuts down) [`TenantLease::stopped`] fires and the drivers stop
//! without further side effects, leaving the job to the next holder.

use std::sync::Arc;
use std::time::Duration;

use auditx_common::state::{Lease, StateStore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub struct TenantLease {
    lease: Lease,
    ttl: Duration,
    state: Arc<dyn StateStore>,
    stopped: CancellationToken,
    renewer: JoinHandle<()>,
}

impl TenantLease {
    /// Starts renewing `lease`; `shutdown` also stops its holder.
    pub fn hold(
        state: Arc<dyn StateStore>,
        lease: Lease,
        ttl: Duration,
        shutdown: &CancellationToken,
    ) -> Self {
        let stopped = shutdown.child_token();
        let renewer = tokio::spawn(renew(state.clone(), lease.clone(), ttl, stopped.clone()));
        Self {
            lease,
            ttl,
            state,
            stopped,
            renewer,
        }
    }

    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Fires when the lease is lost or the process shuts down.
    pub fn stopped(&self) -> &CancellationToken {
        &self.stopped
    }

    /// Makes sure the lease is still ours right now, before something
    /// destructive; false (and stopped) if it is not.
    pub async fn confirm(&self) -> Result<bool, auditx_common::state::StateError> {
        let held = self.state.renew_lease(&self.lease, self.ttl).await?;
        if !held {
            self.stopped.cancel();
        }
        Ok(held)
    }

    /// Frees the lease so the next replica need not wait for it to expire.
    pub async fn release(self) {
        self.renewer.abort();
        if let Err(error) = self.state.release_lease(&self.lease).await {
            tracing::warn!(lease = %self.lease.key, %error, "tenant lease not released, it will expire");
        }
    }
}

impl Drop for TenantLease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

async fn renew(
    state: Arc<dyn StateStore>,
    lease: Lease,
    ttl: Duration,
    stopped: CancellationToken,
) {
    let mut last_renewed = Instant::now();
    let period = ttl / 3;
    loop {
        tokio::select! {
            _ = stopped.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        match state.renew_lease(&lease, ttl).await {
            Ok(true) => last_renewed = Instant::now(),
            Ok(false) => {
                tracing::warn!(lease = %lease.key, "tenant lease lost");
                stopped.cancel();
                return;
            }
            Err(error) if last_renewed.elapsed() + period < ttl => {
                tracing::warn!(lease = %lease.key, %error, "tenant lease renewal failed, retrying");
            }
            Err(error) => {
                tracing::warn!(lease = %lease.key, %error, "tenant lease could not be renewed in time");
                stopped.cancel();
                return;
            }
        }
    }
}

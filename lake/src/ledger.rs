//! The ingest ledger: what the state store remembers of the lake's ingest,
//! so that a row sent twice is written once. Its keys are built here only:
//!
//! | key | kind | holds |
//! |---|---|---|
//! | `lake/<tenant>/<meter>/event-ids` | set | the eventIds of the meter's audit files |
//! | `lake/<tenant>/<meter>/indexed-files` | set | the audit files whose eventIds the set holds |
//! | `tables/<tenant>/<table>/ids` | set | the ids of the tenant's table rows |
//! | `lease/ingest/<tenant>/<meter>`, `lease/ingest/tables/<tenant>/<table>` | lease | one ingest of a meter or table at a time |

use std::collections::HashSet;
use std::time::Duration;

use auditx_common::state::{Lease, StateError, StateStore};
use auditx_proto::{MeterId, TenantId};

use crate::LakeError;

/// Ids sent to the store per call.
const IDS_PER_CALL: usize = 10_000;
/// Longer than any ingest takes, so a crashed ingest frees the meter soon.
const LEASE_TTL: Duration = Duration::from_secs(120);
/// How long an ingest waits for another one of the same meter or table.
const LEASE_WAIT: Duration = Duration::from_secs(30);
const LEASE_RETRY: Duration = Duration::from_millis(50);

/// The ledger of one meter's audit trail or one tenant's table.
pub(crate) struct Ledger<'a> {
    state: &'a dyn StateStore,
    ids: String,
    /// The files whose ids are in `ids` (a meter's audit trail only).
    files: Option<String>,
    lease: String,
    /// "meter" or "table", for the busy message.
    what: &'static str,
}

impl<'a> Ledger<'a> {
    /// The ledger of `meter`'s audit trail: eventIds and indexed files.
    pub(crate) fn meter(state: &'a dyn StateStore, tenant: &TenantId, meter: MeterId) -> Self {
        Self {
            state,
            ids: format!("lake/{tenant}/{meter}/event-ids"),
            files: Some(format!("lake/{tenant}/{meter}/indexed-files")),
            lease: format!("lease/ingest/{tenant}/{meter}"),
            what: "meter",
        }
    }

    /// The ledger of `tenant`'s table `table`: row ids.
    pub(crate) fn table(state: &'a dyn StateStore, tenant: &TenantId, table: &str) -> Self {
        Self {
            state,
            ids: format!("tables/{tenant}/{table}/ids"),
            files: None,
            lease: format!("lease/ingest/tables/{tenant}/{table}"),
            what: "table",
        }
    }

    /// Waits (boundedly) for the ingest lease of the meter or table.
    pub(crate) async fn lock(&self) -> Result<Lease, LakeError> {
        let owner = format!("ingest-{}", uuid::Uuid::new_v4());
        let deadline = tokio::time::Instant::now() + LEASE_WAIT;
        loop {
            if let Some(lease) = self
                .state
                .try_acquire_lease(&self.lease, &owner, LEASE_TTL)
                .await?
            {
                return Ok(lease);
            }
            if tokio::time::Instant::now() >= deadline {
                let busy = format!(
                    "{} is busy: another ingest of this {} is still running",
                    self.lease, self.what
                );
                return Err(StateError::Unavailable(busy).into());
            }
            tokio::time::sleep(LEASE_RETRY).await;
        }
    }

    /// Releases the lease; one that cannot be released expires on its own
    /// (the next ingest just waits longer).
    pub(crate) async fn unlock(&self, lease: &Lease) {
        if let Err(error) = self.state.release_lease(lease).await {
            tracing::warn!(error = %error, lease = %lease.key, "ingest lease not released");
        }
    }

    /// The first row of each id (`id_of`) that the ledger does not hold
    /// yet, in their order.
    pub(crate) async fn new_rows<R>(
        &self,
        rows: Vec<R>,
        id_of: impl Fn(&R) -> &str,
    ) -> Result<Vec<R>, LakeError> {
        let mut seen = HashSet::with_capacity(rows.len());
        let mut unique: Vec<R> = rows
            .into_iter()
            .filter(|row| seen.insert(id_of(row).to_owned()))
            .collect();
        let mut known = Vec::with_capacity(unique.len());
        for chunk in unique.chunks(IDS_PER_CALL) {
            let ids: Vec<String> = chunk.iter().map(|row| id_of(row).to_owned()).collect();
            known.extend(self.state.set_contains(&self.ids, &ids).await?);
        }
        let mut known = known.into_iter();
        unique.retain(|_| !known.next().unwrap_or(false));
        Ok(unique)
    }

    /// Records `ids` as held.
    pub(crate) async fn record_ids(&self, ids: &[String]) -> Result<(), LakeError> {
        for chunk in ids.chunks(IDS_PER_CALL) {
            self.state.set_add(&self.ids, chunk).await?;
        }
        Ok(())
    }

    /// For each of `files`, whether its ids are recorded (always false for
    /// a table's ledger, which keeps no files).
    pub(crate) async fn files_indexed(&self, files: &[String]) -> Result<Vec<bool>, LakeError> {
        let Some(key) = &self.files else {
            return Ok(vec![false; files.len()]);
        };
        let mut known = Vec::with_capacity(files.len());
        for chunk in files.chunks(IDS_PER_CALL) {
            known.extend(self.state.set_contains(key, chunk).await?);
        }
        Ok(known)
    }

    /// Records `files` as having their ids recorded (after the ids).
    pub(crate) async fn record_files(&self, files: &[String]) -> Result<(), LakeError> {
        if let Some(key) = &self.files {
            for chunk in files.chunks(IDS_PER_CALL) {
                self.state.set_add(key, chunk).await?;
            }
        }
        Ok(())
    }
}

//! The state/lock store: job state, per-tenant FIFO queues, leases and
//! per-tenant rate limits.
//!
//! Two implementations — [`RedisStore`] for the distributed mode and
//! [`MemoryStore`] for the embedded default — pass one conformance suite
//! (`tests/state_conformance.rs`). Keys are plain strings; each
//! implementation may put its own prefix in front (tests use one per test).

mod journal;
mod memory;
mod redis;
mod redis_error;
mod redis_primary;

use std::time::Duration;

use async_trait::async_trait;

pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;

/// Failures of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The store could not be reached or timed out; retry with backoff.
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    /// A fenced write found the lease held by someone else (or expired).
    #[error("lease {0} is no longer held")]
    LeaseLost(String),
    /// The store answered with something we did not expect.
    #[error("state store error: {0}")]
    Other(String),
}

impl StateError {
    pub fn is_transient(&self) -> bool {
        matches!(self, StateError::Unavailable(_))
    }
}

pub type StateResult<T> = Result<T, StateError>;

/// Time between two tokens of a bucket refilled at `per_sec` (at least a
/// microsecond, at most a day).
fn token_interval(per_sec: f64) -> Duration {
    let secs = if per_sec > 0.0 {
        1.0 / per_sec
    } else {
        86_400.0
    };
    Duration::from_secs_f64(secs.clamp(1e-6, 86_400.0))
}

/// A held lease. `token` is a fencing token: it grows every time the lease
/// changes hands, so a stale holder's writes can be told apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub key: String,
    pub owner: String,
    pub token: u64,
}

/// The condition an atomic batch of writes ([`StateStore::apply_atomically`])
/// is applied under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Guard {
    /// Unconditionally.
    Always,
    /// Only if the key does not exist (a create that may be retried).
    Absent(String),
    /// Only if the key holds exactly this value (a transition).
    Equals(String, Vec<u8>),
    /// Only while the lease is still held; otherwise the batch fails with
    /// [`StateError::LeaseLost`].
    Held(Lease),
}

/// One write of an atomic batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    Set(String, Vec<u8>),
    Delete(String),
    IndexAdd {
        key: String,
        score: i64,
        member: String,
    },
    ListPush(String, String),
    /// Removes every occurrence of the value.
    ListRemove(String, String),
    SetAdd(String, String),
    SetRemove(String, String),
    IndexRemove(String, String),
}

impl Write {
    fn key(&self) -> &str {
        match self {
            Write::Set(key, _)
            | Write::Delete(key)
            | Write::IndexAdd { key, .. }
            | Write::ListPush(key, _)
            | Write::ListRemove(key, _)
            | Write::SetAdd(key, _)
            | Write::SetRemove(key, _)
            | Write::IndexRemove(key, _) => key,
        }
    }
}

#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    // --- atomic batches: the building block of the domain operations ---
    /// Applies every write or none, under `guard`: true if applied, false
    /// if an [`Guard::Absent`] / [`Guard::Equals`] condition did not hold.
    /// A write to a key holding another kind of value fails the whole
    /// batch before anything is written. On Redis it is one Lua script.
    async fn apply_atomically(&self, guard: Guard, writes: Vec<Write>) -> StateResult<bool>;

    // --- plain values ---
    async fn get(&self, key: &str) -> StateResult<Option<Vec<u8>>>;
    async fn set(&self, key: &str, value: &[u8]) -> StateResult<()>;
    /// Sets `key` only if it does not exist; true if it was set.
    async fn set_if_absent(&self, key: &str, value: &[u8]) -> StateResult<bool>;
    /// Sets `key` to `value` only if its current value is `expected`
    /// (`None`: only if absent); true if it was set.
    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> StateResult<bool>;
    /// Sets `key` only while `lease` is still held with the same token;
    /// otherwise fails with [`StateError::LeaseLost`].
    async fn set_fenced(&self, lease: &Lease, key: &str, value: &[u8]) -> StateResult<()>;
    /// Deletes keys of any kind; missing keys are fine.
    async fn delete(&self, keys: &[String]) -> StateResult<()>;

    // --- hashes: write-once fields (idempotent result application) ---
    /// Sets `field` of hash `key` only if absent; true if it was set.
    async fn hash_set_if_absent(&self, key: &str, field: &str, value: &[u8]) -> StateResult<bool>;
    async fn hash_get_all(&self, key: &str) -> StateResult<Vec<(String, Vec<u8>)>>;

    // --- logs: append-only, each id at most once (a job's reports) ---
    /// Appends `value` to the log `key` unless an entry with `id` was
    /// appended before (then the first one stays); true if appended. A
    /// reader that remembers how many entries it has seen reads only the
    /// new ones ([`StateStore::log_read`]), so its cost per entry does not
    /// grow with the log.
    async fn log_append_once(&self, key: &str, id: &str, value: &[u8]) -> StateResult<bool>;
    /// Up to `max` entries of log `key`, in append order, from position
    /// `from` (0-based) on. Deleting `key` deletes the log.
    async fn log_read(&self, key: &str, from: u64, max: usize) -> StateResult<Vec<Vec<u8>>>;

    // --- lists: FIFO queues of ids ---
    async fn list_push(&self, key: &str, value: &str) -> StateResult<()>;
    async fn list_all(&self, key: &str) -> StateResult<Vec<String>>;
    /// The list's length, without reading it (0 when absent).
    async fn list_len(&self, key: &str) -> StateResult<u64>;
    /// The list's oldest entry, without reading the rest.
    async fn list_first(&self, key: &str) -> StateResult<Option<String>>;
    /// Removes every occurrence of `value`.
    async fn list_remove(&self, key: &str, value: &str) -> StateResult<()>;

    // --- sets ---
    /// Adds members; returns how many were new.
    async fn set_add(&self, key: &str, members: &[String]) -> StateResult<u64>;
    async fn set_remove(&self, key: &str, members: &[String]) -> StateResult<()>;
    async fn set_members(&self, key: &str) -> StateResult<Vec<String>>;
    /// For each member, whether it is in the set.
    async fn set_contains(&self, key: &str, members: &[String]) -> StateResult<Vec<bool>>;

    // --- ordered index (e.g. a meter's jobs by creation time) ---
    async fn index_add(&self, key: &str, score: i64, member: &str) -> StateResult<()>;
    /// Members in ascending score order (ties by member).
    async fn index_all(&self, key: &str) -> StateResult<Vec<String>>;
    /// Up to `max` members with a score of at most `max_score`, lowest
    /// first (ties by member).
    async fn index_up_to(&self, key: &str, max_score: i64, max: usize) -> StateResult<Vec<String>>;
    async fn index_remove(&self, key: &str, member: &str) -> StateResult<()>;

    // --- rate limits ---
    /// Takes one call from the token bucket `key`, refilled at `per_sec`
    /// and holding at most `burst` (GCRA: one timestamp per key, expiring
    /// once full again). `None` if the call may go ahead, otherwise how long
    /// until it could. Redis reads its own clock, so every replica of a
    /// fleet shares one bucket per key.
    async fn take_token(
        &self,
        key: &str,
        per_sec: f64,
        burst: u32,
    ) -> StateResult<Option<Duration>>;

    // --- leases ---
    /// Takes the lease if it is free (or already ours); `None` if someone
    /// else holds it. Re-acquiring our own lease keeps its token.
    async fn try_acquire_lease(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> StateResult<Option<Lease>>;
    /// Extends a held lease; false if it was lost meanwhile.
    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> StateResult<bool>;
    /// Frees a lease if still held by `lease`; a lost lease is left alone.
    async fn release_lease(&self, lease: &Lease) -> StateResult<()>;
}

//! Memory of data queries: each query within its own limit
//! (`query.memory_limit_mb`), and all queries of a process within the
//! process's (`worker.query_memory_mb`), so that several queries running at
//! once on one worker cannot add up past what the process may use.
//!
//! The process's pool is DataFusion's [`FairSpillPool`]: operators that can
//! spill (sorts, aggregations, sort-merge joins) share what the
//! unspillable ones (hash-join build sides) leave, each spilling to disk
//! once past its share. A query's [`QueryMemory`] counts what its own
//! operators hold and refuses past its own limit before asking the
//! process's pool. Either refusal ends the query with a message naming
//! the setting ([`super::SqlError`]).

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use datafusion::common::{resources_datafusion_err, Result as DFResult};
use datafusion::execution::memory_pool::{
    FairSpillPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, TrackConsumersPool,
};

/// The start of the message of a query's own limit: [`super::classify`]
/// tells the two refusals apart by it.
pub(super) const QUERY_LIMIT_REFUSAL: &str = "auditx query memory limit";

/// The process's pool and its size, once [`limit_process_memory`] ran.
static PROCESS: OnceLock<(Arc<dyn MemoryPool>, usize)> = OnceLock::new();

/// Sets the memory all data queries of this process may hold together
/// (the worker does at start, from `worker.query_memory_mb`). The first
/// call wins; without one, each query is bounded by its own limit only.
pub fn limit_process_memory(bytes: usize) {
    PROCESS.get_or_init(|| {
        let pool = TrackConsumersPool::new(
            FairSpillPool::new(bytes),
            NonZeroUsize::new(5).expect("5 is not zero"),
        );
        (Arc::new(pool), bytes)
    });
}

/// The size of the process's pool, if it has one.
pub(super) fn process_limit() -> Option<usize> {
    PROCESS.get().map(|(_, bytes)| *bytes)
}

/// The pool of one query: at most `limit` bytes, drawn from the process's
/// pool when there is one (else from a pool of its own of that size). A
/// process pool smaller than `limit` must still leave the query spilling
/// within it: the fair shares are the process's.
pub(super) fn query_pool(limit: usize) -> Arc<dyn MemoryPool> {
    let process = match PROCESS.get() {
        Some((pool, _)) => Arc::clone(pool),
        None => Arc::new(FairSpillPool::new(limit)),
    };
    Arc::new(QueryMemory {
        process,
        limit,
        used: AtomicUsize::new(0),
    })
}

/// One query's share of the process's pool.
#[derive(Debug)]
struct QueryMemory {
    process: Arc<dyn MemoryPool>,
    limit: usize,
    used: AtomicUsize,
}

impl std::fmt::Display for QueryMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "query memory ({} of {} bytes) in {}",
            self.used.load(Ordering::Relaxed),
            self.limit,
            self.process
        )
    }
}

impl MemoryPool for QueryMemory {
    fn name(&self) -> &str {
        "auditx_query_memory"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.process.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.process.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::Relaxed);
        self.process.grow(reservation, additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::Relaxed);
        self.process.shrink(reservation, shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> DFResult<()> {
        let before = self.used.fetch_add(additional, Ordering::Relaxed);
        if before + additional > self.limit {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(resources_datafusion_err!(
                "{QUERY_LIMIT_REFUSAL}: {} wanted {additional} bytes more, {before} of {} in use",
                reservation.consumer().name(),
                self.limit
            ));
        }
        if let Err(e) = self.process.try_grow(reservation, additional) {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(e);
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_refused_past_its_own_limit_and_frees_what_it_held() {
        let pool = query_pool(1000);
        let a = MemoryConsumer::new("a").register(&pool);
        a.try_grow(600).unwrap();
        let error = a.try_grow(600).unwrap_err().to_string();
        assert!(error.contains(QUERY_LIMIT_REFUSAL), "{error}");
        assert_eq!(pool.reserved(), 600);
        a.try_grow(400).unwrap();
        drop(a);
        assert_eq!(pool.reserved(), 0);
    }

    #[test]
    fn queries_share_the_process_pool() {
        let process: Arc<dyn MemoryPool> = Arc::new(FairSpillPool::new(1000));
        let query = |limit| -> Arc<dyn MemoryPool> {
            Arc::new(QueryMemory {
                process: Arc::clone(&process),
                limit,
                used: AtomicUsize::new(0),
            })
        };
        let (one, two) = (query(800), query(800));
        let a = MemoryConsumer::new("a").register(&one);
        let b = MemoryConsumer::new("b").register(&two);
        a.try_grow(700).unwrap();
        // Within its own limit, but the process has 300 left.
        let error = b.try_grow(700).unwrap_err().to_string();
        assert!(!error.contains(QUERY_LIMIT_REFUSAL), "{error}");
        assert_eq!(two.reserved(), 0);
        b.try_grow(300).unwrap();
        assert_eq!(process.reserved(), 1000);
    }
}

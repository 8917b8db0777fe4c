//! The query executor: a dedicated, bounded pool of threads (its own Tokio
//! runtime) on which DataFusion plans and runs data queries — the pattern
//! of InfluxDB's `DedicatedExecutor` and of DataFusion's `thread_pools`
//! example.
//!
//! DataFusion's operators are CPU-bound and yield rarely. Run on the
//! process's main runtime, one heavy query would hold every worker thread
//! of it: the HTTP API, lease renewals, the RabbitMQ consumer, the time
//! limit and the cancel poll would all wait behind it. Here they never
//! share threads with a query.
//!
//! The pool's runtime has a timer but no I/O driver: the lake's object
//! store sends its requests through
//! [`object_store::client::SpawnedReqwestConnector`], which runs them on
//! the main runtime (whose threads are free to answer sockets) and hands
//! the bodies back over a channel. A query's result bytes likewise go back
//! to the main runtime over a channel and are uploaded there. Any other I/O
//! attempted on the pool fails loudly ("IO is disabled") instead of
//! silently sharing the pool's busy threads.
//!
//! Dropping a [`PoolTask`] aborts its task once it next yields, and its
//! own spawned partitions (aborted when their handles drop) with it. A
//! plan fed from memory may never yield: the query is therefore stopped
//! first ([`auditx_lake::sql::QueryStop`]), which ends every operator of
//! its plan at its next batch. Cancel and the time limit are enforced on
//! the main runtime, by stopping the query and dropping its task.
//!
//! One pool per process: the worker loops of a process share it
//! ([`QueryExecutor::shared`]); it stops when the last of them drops it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Name of the pool's threads (as `top -H` and `/proc/<pid>/task` show them).
pub const THREAD_NAME: &str = "auditx-query";

/// A handle on the pool; clones share it.
#[derive(Clone)]
pub struct QueryExecutor {
    inner: Arc<Inner>,
}

struct Inner {
    handle: Handle,
    threads: usize,
    /// Dropped (the runtime's thread then shuts it down) with the last handle.
    _stop: oneshot::Sender<()>,
}

impl std::fmt::Debug for QueryExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryExecutor")
            .field("threads", &self.inner.threads)
            .finish()
    }
}

/// The process's pool, while any worker loop holds it.
static SHARED: Mutex<Weak<Inner>> = Mutex::new(Weak::new());

/// `configured`, or one thread per core when 0; at least 1.
pub fn pool_size(configured: usize) -> usize {
    match configured {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    }
    .max(1)
}

impl QueryExecutor {
    /// A new pool of `pool_size(threads)` threads.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let threads = pool_size(threads);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(THREAD_NAME)
            // Timers (object store retries, DataFusion's own); no I/O driver.
            .enable_time()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        // The runtime lives on a thread of its own: it is shut down there
        // (never from async code, where dropping a runtime panics), without
        // waiting for queries still running, which are cut like a cancel.
        std::thread::Builder::new()
            .name(format!("{THREAD_NAME}-owner"))
            .spawn(move || {
                runtime.block_on(async move {
                    let _ = stopped.await;
                });
                runtime.shutdown_background();
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                handle,
                threads,
                _stop: stop,
            }),
        })
    }

    /// The process's pool: the one another worker loop already holds, or a
    /// new one of `threads` threads.
    pub fn shared(threads: usize) -> std::io::Result<Self> {
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(inner) = shared.upgrade() {
            return Ok(Self { inner });
        }
        let executor = Self::new(threads)?;
        *shared = Arc::downgrade(&executor.inner);
        Ok(executor)
    }

    /// Threads of the pool.
    pub fn threads(&self) -> usize {
        self.inner.threads
    }

    /// Runs `work` on the pool. Awaiting the returned task yields its
    /// output; dropping it aborts the work.
    pub fn spawn<F>(&self, work: F) -> PoolTask<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        PoolTask(self.inner.handle.spawn(work))
    }
}

/// Work running on the pool; aborted when dropped.
pub struct PoolTask<T>(JoinHandle<T>);

/// Work on the pool that ended without an output.
#[derive(Debug, thiserror::Error)]
#[error("query execution {0}")]
pub struct PoolTaskError(String);

impl<T> Future for PoolTask<T> {
    type Output = Result<T, PoolTaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map_err(|e| {
            PoolTaskError(if e.is_panic() {
                "panicked".to_owned()
            } else {
                "was stopped (the query pool shut down)".to_owned()
            })
        })
    }
}

impl<T> Drop for PoolTask<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn the_pool_size_defaults_to_the_cores_and_is_at_least_one() {
        assert!(pool_size(0) >= 1);
        assert_eq!(pool_size(3), 3);
        assert_eq!(pool_size(1), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn work_runs_on_the_pool_threads_not_the_callers() {
        let executor = QueryExecutor::new(2).unwrap();
        assert_eq!(executor.threads(), 2);
        let name = executor
            .spawn(async { std::thread::current().name().map(str::to_owned) })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some(THREAD_NAME));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_busy_pool_leaves_the_callers_runtime_free() {
        let executor = QueryExecutor::new(1).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        // A query that never yields for a while: it holds its pool thread.
        let spinning = stop.clone();
        let busy = executor.spawn(async move {
            let until = Instant::now() + Duration::from_secs(5);
            while !spinning.load(Ordering::Relaxed) && Instant::now() < until {
                std::hint::spin_loop();
            }
        });
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
        tokio::task::yield_now().await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the caller's runtime waited {:?}",
            started.elapsed()
        );
        stop.store(true, Ordering::Relaxed);
        busy.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn dropping_the_task_aborts_the_work() {
        let executor = QueryExecutor::new(1).unwrap();
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = Flag(dropped.clone());
        let task = executor.spawn(async move {
            let _flag = flag;
            loop {
                // A yielding query (DataFusion's streams yield every batch).
                tokio::task::yield_now().await;
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(task);
        let started = Instant::now();
        while !dropped.load(Ordering::SeqCst) {
            assert!(started.elapsed() < Duration::from_secs(1), "not aborted");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn the_pool_has_no_io_driver() {
        let executor = QueryExecutor::new(1).unwrap();
        // Binding a socket needs an I/O driver: on the pool it panics, so
        // no query I/O can silently run on (and wait for) busy pool threads.
        let io = executor
            .spawn(async { tokio::net::TcpListener::bind("127.0.0.1:0").await.is_ok() })
            .await;
        assert!(io.is_err(), "the pool has an I/O driver");
    }

    #[test]
    fn worker_loops_of_a_process_share_one_pool() {
        let a = QueryExecutor::shared(1).unwrap();
        let b = QueryExecutor::shared(4).unwrap();
        assert!(Arc::ptr_eq(&a.inner, &b.inner));
        assert_eq!(b.threads(), 1);
    }
}

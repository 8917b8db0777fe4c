//! The fleet's throughput over the last hour, per minute: every worker
//! counts what it finishes (rows rendered into export chunks, tasks, data
//! queries) and adds its counts to the state store every [`FLUSH_EVERY`];
//! `GET /fleet/throughput` (the console's Fleet chart) sums them, so the
//! processes of a fleet add up whichever API process is asked.
//!
//! The counts live in one ordered index, [`THROUGHPUT_KEY`]: each flush adds
//! one member `<minute ms>/<recorder id>/<seq>/<rows>/<tasks>/<queries>`
//! scored by its minute. Members never collide (one recorder id per worker
//! loop, a sequence number per flush), so a flush is one idempotent write
//! that can be retried as is after a lost reply, and no process reads
//! before it writes. Each flush removes the members older than
//! [`WINDOW`], so the index holds at most an hour of flushes: one member
//! per busy worker per [`FLUSH_EVERY`], none for an idle one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::state::{Guard, StateResult, StateStore, Write};

/// The ordered index of flushed counts.
pub const THROUGHPUT_KEY: &str = "fleet/throughput";
/// How often a worker adds its counts to the store (while it has any).
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// Minutes reported, the current one included.
pub const MINUTES: usize = 60;
/// Counts older than this are removed.
pub const WINDOW: Duration = Duration::from_secs(60 * MINUTES as u64);
/// Members one flush removes at most (the rest go at the next one).
const TRIM_BATCH: usize = 500;
/// Unsent flushes a worker keeps while the store is unreachable (an hour's
/// worth; older ones would be trimmed anyway).
const MAX_UNSENT: usize = (3600 / 5) as usize;

const MINUTE_MS: i64 = 60_000;

/// What was finished in some span of time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Data rows rendered into export chunks.
    pub rows: u64,
    /// Tasks finished and reported (succeeded or failed for good).
    pub tasks: u64,
    /// Data query tasks that completed with a result.
    pub queries: u64,
}

impl Counts {
    fn is_zero(&self) -> bool {
        *self == Counts::default()
    }

    fn add(&mut self, other: Counts) {
        self.rows += other.rows;
        self.tasks += other.tasks;
        self.queries += other.queries;
    }
}

/// One minute of the fleet's counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Minute {
    /// The minute's first millisecond (Unix time).
    pub start_ms: i64,
    pub counts: Counts,
}

/// A worker's counts not yet flushed; the task loop adds to it, [`record`]
/// takes from it.
#[derive(Debug, Default)]
pub struct ThroughputCounter {
    rows: AtomicU64,
    tasks: AtomicU64,
    queries: AtomicU64,
}

impl ThroughputCounter {
    /// A task was finished and reported: `rows` rendered (0 for other
    /// kinds), `query` if it was a data query that completed.
    pub fn task_finished(&self, rows: u64, query: bool) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.tasks.fetch_add(1, Ordering::Relaxed);
        if query {
            self.queries.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn take(&self) -> Counts {
        Counts {
            rows: self.rows.swap(0, Ordering::Relaxed),
            tasks: self.tasks.swap(0, Ordering::Relaxed),
            queries: self.queries.swap(0, Ordering::Relaxed),
        }
    }
}

fn minute_of(ms: i64) -> i64 {
    ms.div_euclid(MINUTE_MS) * MINUTE_MS
}

fn member(minute_ms: i64, recorder: &str, seq: u64, c: Counts) -> String {
    format!(
        "{minute_ms}/{recorder}/{seq}/{}/{}/{}",
        c.rows, c.tasks, c.queries
    )
}

/// The minute and counts of a member; `None` for anything else.
fn parse_member(member: &str) -> Option<(i64, Counts)> {
    let parts: Vec<&str> = member.split('/').collect();
    let [minute, _recorder, _seq, rows, tasks, queries] = parts.as_slice() else {
        return None;
    };
    Some((
        minute.parse().ok()?,
        Counts {
            rows: rows.parse().ok()?,
            tasks: tasks.parse().ok()?,
            queries: queries.parse().ok()?,
        },
    ))
}

/// The [`MINUTES`] minutes up to the one holding `now_ms`, oldest first,
/// with the sums of the `members` flushed in each (zero when none).
pub fn per_minute<'a>(members: impl IntoIterator<Item = &'a str>, now_ms: i64) -> Vec<Minute> {
    let last = minute_of(now_ms);
    let first = last - (MINUTES as i64 - 1) * MINUTE_MS;
    let mut minutes: Vec<Minute> = (0..MINUTES as i64)
        .map(|i| Minute {
            start_ms: first + i * MINUTE_MS,
            counts: Counts::default(),
        })
        .collect();
    for (minute, counts) in members.into_iter().filter_map(parse_member) {
        if (first..=last).contains(&minute) {
            minutes[((minute - first) / MINUTE_MS) as usize]
                .counts
                .add(counts);
        }
    }
    minutes
}

/// The fleet's counts of the last hour at `now_ms`, per minute (see
/// [`per_minute`]).
pub async fn last_hour(state: &dyn StateStore, now_ms: i64) -> StateResult<Vec<Minute>> {
    let members = state.index_all(THROUGHPUT_KEY).await?;
    Ok(per_minute(members.iter().map(String::as_str), now_ms))
}

/// One worker loop's flushes.
pub struct Recorder {
    id: String,
    seq: u64,
    /// Flushes not yet written (the store was unreachable), oldest first.
    unsent: Vec<(i64, String)>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Self {
            id: uuid::Uuid::new_v4().simple().to_string(),
            seq: 0,
            unsent: Vec::new(),
        }
    }

    /// Adds `counts` (if any) as of `now_ms`, writes every unsent flush and
    /// removes members older than [`WINDOW`]. A flush that could not be
    /// written is kept and written as is next time.
    pub async fn flush(
        &mut self,
        state: &dyn StateStore,
        counts: Counts,
        now_ms: i64,
    ) -> StateResult<()> {
        let cutoff = now_ms - WINDOW.as_millis() as i64;
        if !counts.is_zero() {
            let minute = minute_of(now_ms);
            self.seq += 1;
            self.unsent
                .push((minute, member(minute, &self.id, self.seq, counts)));
        }
        self.unsent.retain(|(minute, _)| *minute >= cutoff);
        if self.unsent.len() > MAX_UNSENT {
            self.unsent.drain(..self.unsent.len() - MAX_UNSENT);
        }
        while let Some((minute, member)) = self.unsent.first() {
            state.index_add(THROUGHPUT_KEY, *minute, member).await?;
            self.unsent.remove(0);
        }
        let old = state
            .index_up_to(THROUGHPUT_KEY, cutoff - 1, TRIM_BATCH)
            .await?;
        if !old.is_empty() {
            let writes = old
                .into_iter()
                .map(|m| Write::IndexRemove(THROUGHPUT_KEY.to_owned(), m))
                .collect();
            state.apply_atomically(Guard::Always, writes).await?;
        }
        Ok(())
    }
}

/// Flushes `counter` every [`FLUSH_EVERY`] until `shutdown`, then once
/// more. Failures are logged and retried at the next tick: the counts are
/// best effort and never stop the worker.
pub async fn record(
    state: Arc<dyn StateStore>,
    counter: Arc<ThroughputCounter>,
    shutdown: CancellationToken,
) {
    let mut recorder = Recorder::new();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let stopping = tokio::select! {
            () = shutdown.cancelled() => true,
            _ = tick.tick() => false,
        };
        let counts = counter.take();
        if let Err(error) = recorder.flush(state.as_ref(), counts, now_ms()).await {
            tracing::debug!(%error, "throughput counts not written");
        }
        if stopping {
            break;
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemoryStore;

    const NOW: i64 = 1_764_950_000_000;

    fn counts(rows: u64, tasks: u64, queries: u64) -> Counts {
        Counts {
            rows,
            tasks,
            queries,
        }
    }

    #[test]
    fn members_read_back_and_sum_per_minute() {
        let m = minute_of(NOW);
        let members = [
            member(m, "a", 1, counts(100, 2, 0)),
            member(m, "b", 1, counts(50, 1, 1)),
            member(m - MINUTE_MS, "a", 7, counts(10, 1, 0)),
            // Outside the hour, and not a member of ours: ignored.
            member(m - 60 * MINUTE_MS, "a", 3, counts(999, 9, 9)),
            "nonsense".to_owned(),
        ];
        let minutes = per_minute(members.iter().map(String::as_str), NOW);
        assert_eq!(minutes.len(), MINUTES);
        assert_eq!(minutes[59].start_ms, m);
        assert_eq!(minutes[0].start_ms, m - 59 * MINUTE_MS);
        assert_eq!(minutes[59].counts, counts(150, 3, 1));
        assert_eq!(minutes[58].counts, counts(10, 1, 0));
        let total: u64 = minutes.iter().map(|m| m.counts.rows).sum();
        assert_eq!(total, 160);
    }

    #[tokio::test]
    async fn two_recorders_add_up_and_old_minutes_are_trimmed() {
        let state = MemoryStore::new();
        let (mut a, mut b) = (Recorder::new(), Recorder::new());
        let hour_ago = NOW - WINDOW.as_millis() as i64 - MINUTE_MS;
        a.flush(&state, counts(7, 7, 7), hour_ago).await.unwrap();
        a.flush(&state, counts(100, 2, 0), NOW).await.unwrap();
        b.flush(&state, counts(40, 1, 1), NOW).await.unwrap();
        // Nothing to add: nothing written.
        b.flush(&state, Counts::default(), NOW).await.unwrap();
        let members = state.index_all(THROUGHPUT_KEY).await.unwrap();
        assert_eq!(members.len(), 2, "{members:?}");
        let minutes = last_hour(&state, NOW).await.unwrap();
        assert_eq!(minutes[59].counts, counts(140, 3, 1));
        let sum: u64 = minutes.iter().map(|m| m.counts.tasks).sum();
        assert_eq!(sum, 3);
    }

    #[tokio::test]
    async fn a_counter_hands_its_counts_over_once() {
        let counter = ThroughputCounter::default();
        counter.task_finished(500, false);
        counter.task_finished(0, true);
        assert_eq!(counter.take(), counts(500, 2, 1));
        assert_eq!(counter.take(), Counts::default());
    }
}

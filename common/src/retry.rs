//! Retries with exponential backoff and "equal" jitter (each delay drawn
//! between half and all of its capped step), for transient failures
//! only: a permanent failure is returned at once.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

/// How often and how patiently to retry.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub attempts: u32,
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            attempts: 6,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// For an outage of a dependency the process cannot work without (the
    /// broker): retry forever, from 200 ms up to 5 s apart (so a broker
    /// that is back is found within 5 s).
    pub const FOREVER: Backoff = Backoff {
        attempts: u32::MAX,
        initial: Duration::from_millis(200),
        max: Duration::from_secs(5),
    };

    /// For a loop that owns long work (a job's driver, a tenant's loop):
    /// wait out any outage, from 200 ms up to 10 s between passes.
    pub const PATIENT: Backoff = Backoff {
        attempts: u32::MAX,
        initial: Duration::from_millis(200),
        max: Duration::from_secs(10),
    };

    /// For one step that has a fallback when it gives up (a worker's
    /// attempt, an event publish, recording a report that is then
    /// requeued): about 10–20 s of a failing dependency.
    pub const BOUNDED: Backoff = Backoff {
        attempts: 8,
        initial: Duration::from_millis(200),
        max: Duration::from_secs(5),
    };

    /// The delay before retry number `attempt` (1-based): a random duration
    /// between half and all of `initial * 2^(attempt-1)` capped at `max`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let cap = exp.min(self.max);
        let millis = cap.as_millis().max(1) as u64;
        Duration::from_millis(rand::thread_rng().gen_range(millis / 2..=millis))
    }
}

/// Runs `op` until it succeeds, fails permanently (`is_transient` false) or
/// runs out of attempts; the last error is returned.
pub async fn retry<T, E, F, Fut>(
    backoff: Backoff,
    is_transient: impl Fn(&E) -> bool,
    mut op: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(err) if is_transient(&err) && attempt < backoff.attempts => {
                let delay = backoff.delay(attempt);
                tracing::warn!(attempt, delay_ms = delay.as_millis() as u64, error = %err, "transient failure, retrying");
                crate::metrics::retried::<E>();
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let result: Result<u32, String> = retry(
            Backoff::default(),
            |_| true,
            || async {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                if n < 3 {
                    Err(format!("try {n}"))
                } else {
                    Ok(n)
                }
            },
        )
        .await;
        assert_eq!(result, Ok(3));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_and_exhaustion_return_the_last_error() {
        let calls = AtomicU32::new(0);
        let result: Result<(), String> = retry(
            Backoff::default(),
            |e: &String| e != "fatal",
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err("fatal".to_string())
            },
        )
        .await;
        assert_eq!(result, Err("fatal".into()));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let backoff = Backoff {
            attempts: 3,
            ..Backoff::default()
        };
        let result: Result<(), String> =
            retry(backoff, |_| true, || async { Err("busy".to_string()) }).await;
        assert_eq!(result, Err("busy".into()));
    }

    #[test]
    fn delays_grow_and_stay_capped() {
        let b = Backoff {
            attempts: 10,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        assert!(b.delay(1) <= Duration::from_millis(100));
        assert!(b.delay(9) <= Duration::from_secs(1));
        assert!(b.delay(9) >= Duration::from_millis(500));
    }
}

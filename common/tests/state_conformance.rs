//! One conformance suite for every [`StateStore`]: each check below runs
//! against the in-process store and against a real Redis
//! (`AUDITX_TEST_REDIS_URL`, default `redis://127.0.0.1:6379/`), each test
//! under its own key prefix so that tests run in parallel.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use auditx_common::state::{Guard, MemoryStore, RedisStore, StateError, StateStore, Write};
use futures::future::join_all;
use tokio::time::sleep;

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

async fn values(store: Arc<dyn StateStore>) {
    assert_eq!(store.get("v/a").await.unwrap(), None);
    store.set("v/a", b"one").await.unwrap();
    assert_eq!(
        store.get("v/a").await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
    store.set("v/a", b"two").await.unwrap();
    assert_eq!(
        store.get("v/a").await.unwrap().as_deref(),
        Some(&b"two"[..])
    );

    assert!(store.set_if_absent("v/b", b"first").await.unwrap());
    assert!(!store.set_if_absent("v/b", b"second").await.unwrap());
    assert_eq!(
        store.get("v/b").await.unwrap().as_deref(),
        Some(&b"first"[..])
    );

    let binary = [0u8, 255, 10, 0];
    store.set("v/bin", &binary).await.unwrap();
    assert_eq!(
        store.get("v/bin").await.unwrap().as_deref(),
        Some(&binary[..])
    );

    store
        .delete(&keys(&["v/a", "v/b", "v/missing"]))
        .await
        .unwrap();
    store.delete(&[]).await.unwrap();
    assert_eq!(store.get("v/a").await.unwrap(), None);
    assert_eq!(store.get("v/b").await.unwrap(), None);
    assert!(store.get("v/bin").await.unwrap().is_some());
}

async fn compare_and_set(store: Arc<dyn StateStore>) {
    // Expecting absence.
    assert!(store.compare_and_set("c", None, b"PENDING").await.unwrap());
    assert!(!store.compare_and_set("c", None, b"OTHER").await.unwrap());
    assert_eq!(
        store.get("c").await.unwrap().as_deref(),
        Some(&b"PENDING"[..])
    );

    // Expecting a value.
    assert!(!store
        .compare_and_set("c", Some(b"RUNNING"), b"FINISHED")
        .await
        .unwrap());
    assert!(store
        .compare_and_set("c", Some(b"PENDING"), b"RUNNING")
        .await
        .unwrap());
    assert_eq!(
        store.get("c").await.unwrap().as_deref(),
        Some(&b"RUNNING"[..])
    );
    assert!(!store
        .compare_and_set("c/missing", Some(b"RUNNING"), b"x")
        .await
        .unwrap());
    assert_eq!(store.get("c/missing").await.unwrap(), None);

    // Concurrent transitions from one state: exactly one wins.
    let attempts = (0..8).map(|i| {
        let store = store.clone();
        async move {
            store
                .compare_and_set("c", Some(b"RUNNING"), format!("by-{i}").as_bytes())
                .await
                .unwrap()
        }
    });
    let won = join_all(attempts).await.into_iter().filter(|w| *w).count();
    assert_eq!(won, 1);
}

async fn fenced_writes(store: Arc<dyn StateStore>) {
    let ttl = Duration::from_millis(300);
    let first = store
        .try_acquire_lease("lease/f", "a", ttl)
        .await
        .unwrap()
        .expect("free lease");
    store.set_fenced(&first, "f/state", b"by-a").await.unwrap();
    assert_eq!(
        store.get("f/state").await.unwrap().as_deref(),
        Some(&b"by-a"[..])
    );

    sleep(Duration::from_millis(450)).await;
    let second = store
        .try_acquire_lease("lease/f", "b", ttl * 10)
        .await
        .unwrap()
        .expect("expired lease");
    assert!(
        second.token > first.token,
        "fencing token must grow: {} then {}",
        first.token,
        second.token
    );

    let stale = store.set_fenced(&first, "f/state", b"stale").await;
    assert!(
        matches!(stale, Err(StateError::LeaseLost(ref key)) if key == "lease/f"),
        "{stale:?}"
    );
    store.set_fenced(&second, "f/state", b"by-b").await.unwrap();
    assert_eq!(
        store.get("f/state").await.unwrap().as_deref(),
        Some(&b"by-b"[..])
    );

    // A released lease fences too, and the next holder's token still grows.
    store.release_lease(&second).await.unwrap();
    assert!(matches!(
        store.set_fenced(&second, "f/state", b"late").await,
        Err(StateError::LeaseLost(_))
    ));
    let third = store
        .try_acquire_lease("lease/f", "a", ttl)
        .await
        .unwrap()
        .expect("released lease");
    assert!(third.token > second.token);
    assert_eq!(
        store.get("f/state").await.unwrap().as_deref(),
        Some(&b"by-b"[..])
    );
}

async fn lease_has_one_holder(store: Arc<dyn StateStore>) {
    let ttl = Duration::from_secs(30);
    let contenders = (0..10).map(|i| {
        let store = store.clone();
        async move {
            store
                .try_acquire_lease("lease/one", &format!("owner-{i}"), ttl)
                .await
                .unwrap()
        }
    });
    let winners: Vec<_> = join_all(contenders).await.into_iter().flatten().collect();
    assert_eq!(winners.len(), 1, "{winners:?}");
    let held = &winners[0];
    assert_eq!(held.key, "lease/one");

    // Re-acquiring our own lease keeps its token; others still cannot take it.
    let again = store
        .try_acquire_lease("lease/one", &held.owner, ttl)
        .await
        .unwrap();
    assert_eq!(again.as_ref(), Some(held));
    assert_eq!(
        store
            .try_acquire_lease("lease/one", "intruder", ttl)
            .await
            .unwrap(),
        None
    );

    // Release frees it at once.
    store.release_lease(held).await.unwrap();
    let next = store
        .try_acquire_lease("lease/one", "intruder", ttl)
        .await
        .unwrap()
        .expect("released lease");
    assert!(next.token > held.token);
}

async fn lease_expiry_and_renewal(store: Arc<dyn StateStore>) {
    // Margins wide enough for a loaded 2-core CI on Redis' real clock (the
    // in-process stores run this on tokio's paused clock).
    let ttl = Duration::from_millis(1_500);
    let lease = store
        .try_acquire_lease("lease/r", "a", ttl)
        .await
        .unwrap()
        .expect("free lease");

    // Renewed every 500 ms, the lease outlives its first TTL.
    for _ in 0..4 {
        sleep(Duration::from_millis(500)).await;
        assert!(store.renew_lease(&lease, ttl).await.unwrap());
    }
    assert_eq!(
        store.try_acquire_lease("lease/r", "b", ttl).await.unwrap(),
        None
    );

    // Left alone, it expires and someone else takes it.
    sleep(Duration::from_millis(1_700)).await;
    let taken = store
        .try_acquire_lease("lease/r", "b", Duration::from_secs(30))
        .await
        .unwrap()
        .expect("expired");
    assert!(!store.renew_lease(&lease, ttl).await.unwrap());

    // Releasing the lost lease leaves the new holder alone.
    store.release_lease(&lease).await.unwrap();
    assert_eq!(
        store.try_acquire_lease("lease/r", "c", ttl).await.unwrap(),
        None
    );
    assert!(store.renew_lease(&taken, ttl).await.unwrap());
}

async fn hashes_are_write_once(store: Arc<dyn StateStore>) {
    assert!(store.hash_get_all("h").await.unwrap().is_empty());
    assert!(store
        .hash_set_if_absent("h", "chunk-2", b"report-2")
        .await
        .unwrap());
    assert!(store
        .hash_set_if_absent("h", "chunk-1", b"report-1")
        .await
        .unwrap());
    assert!(!store
        .hash_set_if_absent("h", "chunk-1", b"duplicate")
        .await
        .unwrap());
    assert_eq!(
        store.hash_get_all("h").await.unwrap(),
        vec![
            ("chunk-1".to_string(), b"report-1".to_vec()),
            ("chunk-2".to_string(), b"report-2".to_vec())
        ]
    );
    store.delete(&keys(&["h"])).await.unwrap();
    assert!(store.hash_get_all("h").await.unwrap().is_empty());
}

async fn logs_append_each_id_once_and_read_from_a_position(store: Arc<dyn StateStore>) {
    assert!(store.log_read("log", 0, 10).await.unwrap().is_empty());
    assert!(store
        .log_append_once("log", "chunk-2", b"r2")
        .await
        .unwrap());
    assert!(store
        .log_append_once("log", "chunk-1", b"r1")
        .await
        .unwrap());
    assert!(!store
        .log_append_once("log", "chunk-2", b"duplicate")
        .await
        .unwrap());
    assert_eq!(
        store.log_read("log", 0, 10).await.unwrap(),
        vec![b"r2".to_vec(), b"r1".to_vec()]
    );
    assert_eq!(
        store.log_read("log", 1, 10).await.unwrap(),
        vec![b"r1".to_vec()]
    );
    assert!(store.log_read("log", 2, 10).await.unwrap().is_empty());
    assert!(store.log_read("log", 99, 10).await.unwrap().is_empty());

    // More entries than one Redis round trip reads, read in slices.
    for i in 0..2_500 {
        let value = format!("e{i}");
        assert!(store
            .log_append_once("big", &i.to_string(), value.as_bytes())
            .await
            .unwrap());
    }
    let all = store.log_read("big", 0, usize::MAX).await.unwrap();
    assert_eq!(all.len(), 2_500);
    assert_eq!(all[2_499], b"e2499".to_vec());
    let slice = store.log_read("big", 1_990, 20).await.unwrap();
    let expected: Vec<Vec<u8>> = (1_990..2_010)
        .map(|i| format!("e{i}").into_bytes())
        .collect();
    assert_eq!(slice, expected);

    store.delete(&keys(&["log", "big"])).await.unwrap();
    assert!(store.log_read("log", 0, 10).await.unwrap().is_empty());
    assert!(store
        .log_append_once("log", "chunk-2", b"again")
        .await
        .unwrap());
    assert_eq!(
        store.log_read("log", 0, 10).await.unwrap(),
        vec![b"again".to_vec()]
    );
}

async fn lists_are_fifo(store: Arc<dyn StateStore>) {
    assert!(store.list_all("l").await.unwrap().is_empty());
    assert_eq!(store.list_len("l").await.unwrap(), 0);
    assert_eq!(store.list_first("l").await.unwrap(), None);
    for id in ["r1", "r2", "r3", "r2"] {
        store.list_push("l", id).await.unwrap();
    }
    assert_eq!(
        store.list_all("l").await.unwrap(),
        keys(&["r1", "r2", "r3", "r2"])
    );
    assert_eq!(store.list_len("l").await.unwrap(), 4);
    assert_eq!(store.list_first("l").await.unwrap().as_deref(), Some("r1"));
    store.list_remove("l", "r2").await.unwrap();
    store.list_remove("l", "absent").await.unwrap();
    store.list_remove("l/missing", "r1").await.unwrap();
    assert_eq!(store.list_all("l").await.unwrap(), keys(&["r1", "r3"]));
    assert_eq!(store.list_len("l").await.unwrap(), 2);
    store.list_remove("l", "r1").await.unwrap();
    assert_eq!(store.list_first("l").await.unwrap().as_deref(), Some("r3"));
    store.list_remove("l", "r3").await.unwrap();
    assert!(store.list_all("l").await.unwrap().is_empty());
    assert_eq!(store.list_len("l").await.unwrap(), 0);
    assert_eq!(store.list_first("l").await.unwrap(), None);
    // An emptied list is gone, so the key is free for another kind of value.
    assert!(store.set_if_absent("l", b"value").await.unwrap());
}

async fn sets(store: Arc<dyn StateStore>) {
    assert!(store.set_members("s").await.unwrap().is_empty());
    assert_eq!(store.set_add("s", &keys(&["t2", "t1"])).await.unwrap(), 2);
    assert_eq!(store.set_add("s", &keys(&["t1", "t3"])).await.unwrap(), 1);
    assert_eq!(store.set_add("s", &[]).await.unwrap(), 0);
    assert_eq!(
        store.set_members("s").await.unwrap(),
        keys(&["t1", "t2", "t3"])
    );
    assert_eq!(
        store
            .set_contains("s", &keys(&["t3", "t9", "t1"]))
            .await
            .unwrap(),
        vec![true, false, true]
    );
    assert_eq!(
        store
            .set_contains("s/missing", &keys(&["t1"]))
            .await
            .unwrap(),
        vec![false]
    );
    store.set_remove("s", &keys(&["t1", "t9"])).await.unwrap();
    store.set_remove("s", &[]).await.unwrap();
    assert_eq!(store.set_members("s").await.unwrap(), keys(&["t2", "t3"]));
    store.delete(&keys(&["s"])).await.unwrap();
    assert!(store.set_members("s").await.unwrap().is_empty());
}

async fn ordered_index(store: Arc<dyn StateStore>) {
    assert!(store.index_all("i").await.unwrap().is_empty());
    store.index_add("i", 30, "job-c").await.unwrap();
    store.index_add("i", -5, "job-a").await.unwrap();
    store.index_add("i", 20, "job-b2").await.unwrap();
    store.index_add("i", 20, "job-b1").await.unwrap();
    assert_eq!(
        store.index_all("i").await.unwrap(),
        keys(&["job-a", "job-b1", "job-b2", "job-c"])
    );
    // Adding a member again moves it to its new score.
    store.index_add("i", 0, "job-c").await.unwrap();
    assert_eq!(
        store.index_all("i").await.unwrap(),
        keys(&["job-a", "job-c", "job-b1", "job-b2"])
    );

    // Ranges by score, and removal.
    store.index_add("ix/t", 30, "c").await.unwrap();
    store.index_add("ix/t", 10, "a").await.unwrap();
    store.index_add("ix/t", 20, "b").await.unwrap();
    assert_eq!(store.index_up_to("ix/t", 20, 10).await.unwrap(), ["a", "b"]);
    assert_eq!(store.index_up_to("ix/t", 30, 1).await.unwrap(), ["a"]);
    assert!(store.index_up_to("ix/t", 5, 10).await.unwrap().is_empty());
    store.index_remove("ix/t", "a").await.unwrap();
    store.index_remove("ix/t", "missing").await.unwrap();
    assert_eq!(store.index_all("ix/t").await.unwrap(), ["b", "c"]);
    store
        .apply_atomically(
            Guard::Always,
            vec![Write::IndexRemove("ix/t".into(), "b".into())],
        )
        .await
        .unwrap();
    assert_eq!(store.index_all("ix/t").await.unwrap(), ["c"]);
}

/// A key holds one kind of value; using it as another is an error, not a
/// silent overwrite.
async fn kinds_do_not_mix(store: Arc<dyn StateStore>) {
    store.list_push("k", "x").await.unwrap();
    assert!(matches!(store.get("k").await, Err(StateError::Other(_))));
    assert!(matches!(
        store.set_add("k", &keys(&["x"])).await,
        Err(StateError::Other(_))
    ));
    store.delete(&keys(&["k"])).await.unwrap();
    assert_eq!(store.set_add("k", &keys(&["x"])).await.unwrap(), 1);
}

async fn rate_limits(store: Arc<dyn StateStore>) {
    // A burst of 3, then one call per 500 ms.
    for _ in 0..3 {
        assert_eq!(store.take_token("rate/a", 2.0, 3).await.unwrap(), None);
    }
    let wait = store
        .take_token("rate/a", 2.0, 3)
        .await
        .unwrap()
        .expect("burst used up");
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_millis(500),
        "{wait:?}"
    );
    // A refused call takes nothing: asking again gives the same answer.
    assert!(store.take_token("rate/a", 2.0, 3).await.unwrap().is_some());
    // Another key has its own bucket.
    assert_eq!(store.take_token("rate/b", 2.0, 3).await.unwrap(), None);

    // After the wait one call goes through, and only one.
    sleep(wait + Duration::from_millis(20)).await;
    assert_eq!(store.take_token("rate/a", 2.0, 3).await.unwrap(), None);
    assert!(store.take_token("rate/a", 2.0, 3).await.unwrap().is_some());
}

async fn atomic_batches(store: Arc<dyn StateStore>) {
    // A create: applied once, a retry changes nothing (no second queue entry).
    let create = || {
        vec![
            Write::Set("job/1/spec".into(), b"spec".to_vec()),
            Write::Set("job/1/state".into(), b"PENDING".to_vec()),
            Write::IndexAdd {
                key: "meter/jobs".into(),
                score: 7,
                member: "1".into(),
            },
            Write::ListPush("queue".into(), "1".into()),
            Write::SetAdd("pending".into(), "acme".into()),
        ]
    };
    let absent = Guard::Absent("job/1/state".into());
    assert!(store
        .apply_atomically(absent.clone(), create())
        .await
        .unwrap());
    assert!(!store.apply_atomically(absent, create()).await.unwrap());
    assert_eq!(store.list_all("queue").await.unwrap(), ["1"]);
    assert_eq!(store.index_all("meter/jobs").await.unwrap(), ["1"]);
    assert_eq!(store.set_members("pending").await.unwrap(), ["acme"]);
    assert_eq!(
        store.get("job/1/spec").await.unwrap().as_deref(),
        Some(&b"spec"[..])
    );

    // A transition: only from the expected value.
    let cancel = || {
        vec![
            Write::Set("job/1/state".into(), b"CANCELED".to_vec()),
            Write::ListRemove("queue".into(), "1".into()),
        ]
    };
    let stale = Guard::Equals("job/1/state".into(), b"RUNNING".to_vec());
    assert!(!store.apply_atomically(stale, cancel()).await.unwrap());
    assert_eq!(store.list_all("queue").await.unwrap(), ["1"]);
    let current = Guard::Equals("job/1/state".into(), b"PENDING".to_vec());
    assert!(store.apply_atomically(current, cancel()).await.unwrap());
    assert!(store.list_all("queue").await.unwrap().is_empty());
    assert_eq!(
        store.get("job/1/state").await.unwrap().as_deref(),
        Some(&b"CANCELED"[..])
    );

    // Under a lease: applied while held, refused (nothing written) after.
    let ttl = Duration::from_secs(30);
    let lease = store
        .try_acquire_lease("lease/t", "me", ttl)
        .await
        .unwrap()
        .unwrap();
    let settle = || {
        vec![
            Write::Delete("job/1/spec".into()),
            Write::SetRemove("pending".into(), "acme".into()),
        ]
    };
    store.release_lease(&lease).await.unwrap();
    let lost = store
        .apply_atomically(Guard::Held(lease.clone()), settle())
        .await
        .unwrap_err();
    assert!(matches!(lost, StateError::LeaseLost(_)), "{lost}");
    assert!(store.get("job/1/spec").await.unwrap().is_some());
    let lease = store
        .try_acquire_lease("lease/t", "me", ttl)
        .await
        .unwrap()
        .unwrap();
    assert!(store
        .apply_atomically(Guard::Held(lease), settle())
        .await
        .unwrap());
    assert!(store.get("job/1/spec").await.unwrap().is_none());
    assert!(store.set_members("pending").await.unwrap().is_empty());

    // A write to a key of another kind fails the batch before any write.
    store.set("plain", b"v").await.unwrap();
    let mixed = vec![
        Write::Set("first".into(), b"x".to_vec()),
        Write::ListPush("plain".into(), "y".into()),
    ];
    assert!(store.apply_atomically(Guard::Always, mixed).await.is_err());
    assert!(
        store.get("first").await.unwrap().is_none(),
        "nothing written"
    );
}

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        /// The in-process store, on tokio's paused clock: lease expiry and
        /// token buckets follow the test's sleeps exactly, however loaded
        /// the machine is.
        mod memory {
            use super::*;
            $(
                #[tokio::test(start_paused = true)]
                async fn $check() {
                    super::$check(Arc::new(MemoryStore::new())).await;
                }
            )*
        }

        /// The embedded default's store kept on disk: each check, then the
        /// store reopened from its folder must hold exactly what it held.
        mod on_disk {
            use super::*;
            $(
                #[tokio::test(start_paused = true)]
                async fn $check() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = Arc::new(MemoryStore::open(dir.path()).unwrap());
                    super::$check(store.clone()).await;
                    let view = store.durable_view();
                    drop(store);
                    let reopened = MemoryStore::open(dir.path()).unwrap();
                    assert_eq!(reopened.durable_view(), view);
                }
            )*
        }

        mod redis {
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    on_redis(super::$check).await;
                }
            )*
        }
    };
}

conformance!(
    atomic_batches,
    values,
    compare_and_set,
    fenced_writes,
    lease_has_one_holder,
    lease_expiry_and_renewal,
    hashes_are_write_once,
    logs_append_each_id_once_and_read_from_a_position,
    lists_are_fifo,
    sets,
    ordered_index,
    kinds_do_not_mix,
    rate_limits,
);

/// Runs `check` on a store under a fresh key prefix and deletes the keys
/// afterwards, also when the check fails.
async fn on_redis<Check>(check: impl FnOnce(Arc<dyn StateStore>) -> Check)
where
    Check: Future<Output = ()> + Send + 'static,
{
    let redis = TestRedis::connect().await;
    let outcome = tokio::spawn(check(redis.store.clone())).await;
    redis.clean_up().await;
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

/// A store under a fresh key prefix on the test Redis.
struct TestRedis {
    url: String,
    prefix: String,
    store: Arc<dyn StateStore>,
}

impl TestRedis {
    async fn connect() -> Self {
        let url = std::env::var("AUDITX_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
        let prefix = format!("auditx-test:{}:", uuid::Uuid::new_v4());
        let store = RedisStore::connect(&url, &prefix)
            .await
            .expect("test redis reachable");
        Self {
            url,
            prefix,
            store: Arc::new(store),
        }
    }

    /// Deletes every key the test left behind, fencing counters included.
    async fn clean_up(self) {
        let client = ::redis::Client::open(self.url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let left: Vec<String> = ::redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !left.is_empty() {
            let _: () = ::redis::cmd("DEL")
                .arg(left)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
}

//! One conformance suite for every [`TaskQueue`]: each check below runs
//! against the in-process queue and against a real RabbitMQ
//! (`AUDITX_TEST_AMQP_URL`, default `amqp://guest:guest@127.0.0.1:5672/%2f`),
//! each test on its own topology prefix so that tests run in parallel.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use auditx_common::config::RabbitConfig;
use auditx_common::queue::{
    Consumer, Delivery, Headers, MemoryQueue, Message, QueueError, RabbitQueue, TaskQueue,
};
use auditx_proto::Topology;
use futures::StreamExt;
use tokio::time::{sleep, timeout, Instant};

/// Small, so that the delivery-limit check is quick.
const DELIVERY_LIMIT: u32 = 2;
/// How long we wait to be sure that nothing (more) arrives.
const QUIET: Duration = Duration::from_millis(500);
/// How long something that should arrive may take.
const PATIENCE: Duration = Duration::from_secs(10);

fn rabbit_config(url: String, delivery_limit: u32) -> RabbitConfig {
    RabbitConfig {
        url,
        delivery_limit,
        ..RabbitConfig::default()
    }
}

struct Fixture {
    queue: Arc<dyn TaskQueue>,
    topology: Topology,
    rabbit: Option<Arc<RabbitQueue>>,
}

impl Fixture {
    fn memory() -> Self {
        let topology = unique_topology();
        Self {
            queue: Arc::new(MemoryQueue::new(topology.clone(), DELIVERY_LIMIT)),
            topology,
            rabbit: None,
        }
    }

    async fn rabbit() -> Self {
        let url = std::env::var("AUDITX_TEST_AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
        let topology = unique_topology();
        let rabbit = Arc::new(
            RabbitQueue::connect(&rabbit_config(url, DELIVERY_LIMIT), topology.clone())
                .await
                .expect("test broker"),
        );
        Self {
            queue: rabbit.clone(),
            topology,
            rabbit: Some(rabbit),
        }
    }

    async fn clean_up(&self) {
        if let Some(rabbit) = &self.rabbit {
            rabbit
                .delete_topology()
                .await
                .expect("delete test topology");
        }
    }
}

/// Runs `check` on a fresh RabbitMQ topology and deletes the topology
/// afterwards, also when the check fails.
async fn on_rabbit<Check>(check: impl FnOnce(Arc<Fixture>) -> Check)
where
    Check: Future<Output = ()> + Send + 'static,
{
    let fixture = Arc::new(Fixture::rabbit().await);
    let outcome = tokio::spawn(check(fixture.clone())).await;
    fixture.clean_up().await;
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

fn unique_topology() -> Topology {
    Topology::new(format!("auditx-test-{}", uuid::Uuid::new_v4()))
}

fn message(text: &str) -> Message {
    Message::new(text.as_bytes().to_vec())
}

fn text(delivery: &Delivery) -> String {
    String::from_utf8(delivery.message.payload.clone()).unwrap()
}

async fn next(consumer: &mut Consumer) -> Delivery {
    let item = timeout(PATIENCE, consumer.next())
        .await
        .expect("a delivery in time");
    item.expect("consumer still open")
        .expect("delivery without error")
}

async fn nothing_arrives(consumer: &mut Consumer) {
    if let Ok(Some(item)) = timeout(QUIET, consumer.next()).await {
        let payload = item.map(|d| text(&d));
        panic!("nothing should arrive, got {payload:?}");
    }
}

/// Waits until `queue` holds `expected` ready messages (a broker's count may
/// lag a moment behind a settle).
async fn assert_depth(f: &Fixture, queue: &str, expected: u64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let depth = f.queue.depth(queue).await.unwrap();
        if depth == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "depth of {queue} stays {depth}, expected {expected}"
        );
        sleep(Duration::from_millis(50)).await;
    }
}

async fn fifo_with_headers(f: &Fixture) {
    let tasks = f.topology.tasks();
    let headers = |i: usize| {
        Headers::from([
            (
                "traceparent".to_string(),
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_string(),
            ),
            ("n".to_string(), i.to_string()),
        ])
    };
    for i in 0..5 {
        let mut m = message(&format!("task-{i}"));
        m.headers = headers(i);
        f.queue.publish(&tasks, m).await.unwrap();
    }
    let mut consumer = f.queue.consume(&tasks, 10).await.unwrap();
    for i in 0..5 {
        let delivery = next(&mut consumer).await;
        assert_eq!(text(&delivery), format!("task-{i}"));
        assert_eq!(delivery.message.headers, headers(i));
        assert!(!delivery.redelivered);
        delivery.ack().await.unwrap();
    }
    nothing_arrives(&mut consumer).await;
    assert_depth(f, &tasks, 0).await;
}

async fn prefetch_bounds_unacked_deliveries(f: &Fixture) {
    let results = f.topology.results();
    for i in 0..5 {
        f.queue
            .publish(&results, message(&format!("r{i}")))
            .await
            .unwrap();
    }
    let mut consumer = f.queue.consume(&results, 2).await.unwrap();
    let first = next(&mut consumer).await;
    let second = next(&mut consumer).await;
    assert_eq!((text(&first), text(&second)), ("r0".into(), "r1".into()));
    nothing_arrives(&mut consumer).await;

    first.ack().await.unwrap();
    let third = next(&mut consumer).await;
    assert_eq!(text(&third), "r2");
    nothing_arrives(&mut consumer).await;

    for delivery in [second, third] {
        delivery.ack().await.unwrap();
    }
    for i in 3..5 {
        let delivery = next(&mut consumer).await;
        assert_eq!(text(&delivery), format!("r{i}"));
        delivery.ack().await.unwrap();
    }
}

async fn nack_with_requeue_redelivers(f: &Fixture) {
    let results = f.topology.results();
    f.queue.publish(&results, message("again")).await.unwrap();
    let mut consumer = f.queue.consume(&results, 1).await.unwrap();
    let delivery = next(&mut consumer).await;
    assert!(!delivery.redelivered);
    delivery.nack(true).await.unwrap();

    let delivery = next(&mut consumer).await;
    assert_eq!(text(&delivery), "again");
    assert!(delivery.redelivered);
    delivery.ack().await.unwrap();
    nothing_arrives(&mut consumer).await;
}

async fn unsettled_deliveries_come_back(f: &Fixture) {
    let tasks = f.topology.tasks();

    // A delivery dropped without ack or nack (a crashed handler).
    f.queue.publish(&tasks, message("dropped")).await.unwrap();
    let mut consumer = f.queue.consume(&tasks, 1).await.unwrap();
    drop(next(&mut consumer).await);
    let delivery = next(&mut consumer).await;
    assert_eq!(text(&delivery), "dropped");
    assert!(delivery.redelivered);
    delivery.ack().await.unwrap();

    // A consumer that goes away with a delivery in hand (a crashed worker).
    f.queue.publish(&tasks, message("abandoned")).await.unwrap();
    let held = next(&mut consumer).await;
    drop(consumer);
    drop(held);
    let mut successor = f.queue.consume(&tasks, 1).await.unwrap();
    let delivery = next(&mut successor).await;
    assert_eq!(text(&delivery), "abandoned");
    assert!(delivery.redelivered);
    delivery.ack().await.unwrap();
    nothing_arrives(&mut successor).await;
}

async fn rejected_tasks_are_dead_lettered(f: &Fixture) {
    let tasks = f.topology.tasks();
    let mut poison = message("poison");
    poison.headers.insert(
        "traceparent".into(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
    );
    f.queue.publish(&tasks, poison.clone()).await.unwrap();
    let mut consumer = f.queue.consume(&tasks, 1).await.unwrap();
    next(&mut consumer).await.nack(false).await.unwrap();
    nothing_arrives(&mut consumer).await;

    let mut dead = f.queue.consume(&f.topology.dead_tasks(), 1).await.unwrap();
    let delivery = next(&mut dead).await;
    assert_eq!(delivery.message.payload, poison.payload);
    assert_eq!(
        delivery.message.headers.get("traceparent"),
        poison.headers.get("traceparent")
    );
    delivery.ack().await.unwrap();

    // Other queues have no dead-letter queue: a rejected result is gone.
    let results = f.topology.results();
    f.queue
        .publish(&results, message("unwanted"))
        .await
        .unwrap();
    let mut consumer = f.queue.consume(&results, 1).await.unwrap();
    next(&mut consumer).await.nack(false).await.unwrap();
    nothing_arrives(&mut consumer).await;
    nothing_arrives(&mut dead).await;
    assert_depth(f, &results, 0).await;
}

async fn tasks_past_the_delivery_limit_are_dead_lettered(f: &Fixture) {
    let tasks = f.topology.tasks();
    f.queue
        .publish(&tasks, message("crashes every worker"))
        .await
        .unwrap();
    let mut consumer = f.queue.consume(&tasks, 1).await.unwrap();
    let mut dead = f.queue.consume(&f.topology.dead_tasks(), 1).await.unwrap();

    // Workers fail on it, by nack or by crashing, until the queue gives up.
    let mut deliveries = 0;
    let dead_letter = loop {
        tokio::select! {
            delivery = next(&mut consumer) => {
                deliveries += 1;
                assert_eq!(delivery.redelivered, deliveries > 1);
                if deliveries % 2 == 0 {
                    delivery.nack(true).await.unwrap();
                } else {
                    drop(delivery);
                }
            }
            delivery = next(&mut dead) => break delivery,
        }
    };
    assert_eq!(text(&dead_letter), "crashes every worker");
    assert_eq!(
        deliveries,
        DELIVERY_LIMIT + 1,
        "a first delivery plus {DELIVERY_LIMIT} redeliveries"
    );
    dead_letter.ack().await.unwrap();
    nothing_arrives(&mut consumer).await;
    assert_depth(f, &tasks, 0).await;
}

async fn events_follow_topic_bindings(f: &Fixture) {
    // Published before anyone subscribed: no error, and nobody sees it later.
    f.queue
        .publish_event("export.finished.early", message("early"))
        .await
        .unwrap();

    let mut finished = f.queue.subscribe_events("export.finished.*").await.unwrap();
    let mut everything = f.queue.subscribe_events("export.#").await.unwrap();
    let events = [
        ("export.finished.t1", "finished"),
        ("export.failed.t1", "failed"),
        ("export", "bare"),
        ("audit.finished.t1", "unrelated"),
        ("export.finished.t1.extra", "deeper"),
    ];
    for (routing_key, payload) in events {
        f.queue
            .publish_event(routing_key, message(payload))
            .await
            .unwrap();
    }

    let finished_event = next(&mut finished).await;
    assert_eq!(text(&finished_event), "finished");
    finished_event.ack().await.unwrap();
    nothing_arrives(&mut finished).await;

    for expected in ["finished", "failed", "bare", "deeper"] {
        let delivery = next(&mut everything).await;
        assert_eq!(text(&delivery), expected);
        delivery.ack().await.unwrap();
    }
    nothing_arrives(&mut everything).await;
}

async fn depth_counts_ready_messages(f: &Fixture) {
    let tasks = f.topology.tasks();
    assert_depth(f, &tasks, 0).await;
    for i in 0..3 {
        f.queue
            .publish(&tasks, message(&format!("t{i}")))
            .await
            .unwrap();
    }
    assert_depth(f, &tasks, 3).await;

    // Messages a consumer holds, read or still buffered, are not ready: a
    // consumer takes up to its prefetch at once, and a freed slot refills.
    let mut consumer = f.queue.consume(&tasks, 2).await.unwrap();
    assert_depth(f, &tasks, 1).await;
    next(&mut consumer).await.ack().await.unwrap();
    assert_depth(f, &tasks, 0).await;

    // A consumer that goes away hands back what it held.
    drop(consumer);
    assert_depth(f, &tasks, 2).await;
    assert_depth(f, &f.topology.dead_tasks(), 0).await;
}

async fn unknown_queues_are_refused(f: &Fixture) {
    let nowhere = format!("{}.nowhere", f.topology.prefix);
    let published = f.queue.publish(&nowhere, message("lost")).await;
    assert!(
        matches!(published, Err(QueueError::Rejected(_))),
        "{published:?}"
    );
    assert!(matches!(
        f.queue.depth(&nowhere).await,
        Err(QueueError::Other(_))
    ));
    assert!(matches!(
        f.queue.consume(&nowhere, 1).await,
        Err(QueueError::Other(_))
    ));
}

async fn competing_consumers_share_the_load(f: &Fixture) {
    let results = f.topology.results();
    let consumers = [
        f.queue.consume(&results, 1).await.unwrap(),
        f.queue.consume(&results, 1).await.unwrap(),
    ];
    let workers: Vec<_> = consumers
        .into_iter()
        .map(|mut consumer| {
            tokio::spawn(async move {
                let mut handled = Vec::new();
                while let Ok(Some(delivery)) = timeout(QUIET * 2, consumer.next()).await {
                    let delivery = delivery.unwrap();
                    sleep(Duration::from_millis(50)).await; // the work
                    handled.push(text(&delivery));
                    delivery.ack().await.unwrap();
                }
                handled
            })
        })
        .collect();
    let published: BTreeSet<String> = (0..8).map(|i| format!("result-{i}")).collect();
    for payload in &published {
        f.queue.publish(&results, message(payload)).await.unwrap();
    }

    let mut handled = Vec::new();
    for worker in workers {
        let mine = worker.await.unwrap();
        assert!(!mine.is_empty(), "each consumer gets a share");
        handled.extend(mine);
    }
    assert_eq!(
        handled.len(),
        published.len(),
        "each message handled once: {handled:?}"
    );
    assert_eq!(handled.into_iter().collect::<BTreeSet<_>>(), published);
}

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(&Fixture::memory()).await;
                }
            )*
        }

        mod rabbitmq {
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    on_rabbit(|f| async move { super::$check(&f).await }).await;
                }
            )*
        }
    };
}

conformance!(
    fifo_with_headers,
    prefetch_bounds_unacked_deliveries,
    nack_with_requeue_redelivers,
    unsettled_deliveries_come_back,
    rejected_tasks_are_dead_lettered,
    tasks_past_the_delivery_limit_are_dead_lettered,
    events_follow_topic_bindings,
    depth_counts_ready_messages,
    unknown_queues_are_refused,
    competing_consumers_share_the_load,
);

/// A task queue declared before with another `x-delivery-limit` (an older
/// default) is used as it is: the broker refuses to change a queue's
/// arguments, and that must not keep a process from connecting.
#[tokio::test]
async fn rabbitmq_a_task_queue_with_another_delivery_limit_is_used_as_it_is() {
    on_rabbit(|f| async move {
        let url = std::env::var("AUDITX_TEST_AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
        let other =
            RabbitQueue::connect(&rabbit_config(url, DELIVERY_LIMIT + 40), f.topology.clone())
                .await
                .expect("connects despite the other limit");
        other
            .publish(
                &f.topology.tasks(),
                message("through the second connection"),
            )
            .await
            .unwrap();
        let mut consumer = f.queue.consume(&f.topology.tasks(), 1).await.unwrap();
        let delivery = next(&mut consumer).await;
        assert_eq!(text(&delivery), "through the second connection");
        delivery.ack().await.unwrap();
    })
    .await;
}

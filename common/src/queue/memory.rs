//! The in-process task queue of the embedded default.
//!
//! It behaves like the RabbitMQ topology that [`super::RabbitQueue`]
//! declares, so that the embedded mode exercises the same recovery paths:
//! FIFO queues, a prefetch bound per consumer, requeue with `redelivered`
//! on nack or when a delivery is dropped unsettled, a delivery limit and a
//! dead-letter queue for tasks, and a topic exchange for events. Messages
//! live only as long as the process.

use std::collections::{HashMap, VecDeque};
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use auditx_proto::Topology;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};

use super::rabbitmq::EVENT_PREFETCH;
use super::{Acker, Consumer, Delivery, Message, QueueError, QueueResult, TaskQueue};

/// Queues and event subscriptions of one process.
pub struct MemoryQueue {
    broker: Arc<Broker>,
    topology: Topology,
}

impl MemoryQueue {
    /// `delivery_limit` bounds redeliveries of a task, as `x-delivery-limit`
    /// does on the RabbitMQ task queue.
    pub fn new(topology: Topology, delivery_limit: u32) -> MemoryQueue {
        let mut queues = HashMap::new();
        let tasks = Queue {
            dead_letter: Some(topology.dead_tasks()),
            delivery_limit: Some(delivery_limit),
            ..Queue::default()
        };
        queues.insert(topology.tasks(), tasks);
        queues.insert(topology.results(), Queue::default());
        queues.insert(topology.dead_tasks(), Queue::default());
        let broker = Broker {
            queues: Mutex::new(queues),
            changed: Notify::new(),
        };
        MemoryQueue {
            broker: Arc::new(broker),
            topology,
        }
    }
}

struct Broker {
    queues: Mutex<HashMap<String, Queue>>,
    /// Wakes waiting consumers whenever any queue gains a message.
    changed: Notify,
}

#[derive(Default)]
struct Queue {
    ready: VecDeque<Pending>,
    /// Where rejected and over-delivered messages go (the task queue's DLX).
    dead_letter: Option<String>,
    /// Returns allowed before a message is dead-lettered (or dropped).
    delivery_limit: Option<u32>,
    /// The topic binding of an event subscription's queue.
    binding: Option<String>,
    /// Per-tenant fairness ([`super::TENANT_HEADER`]): when each tenant
    /// was last served (a turn number), and the last turn given.
    served: HashMap<String, u64>,
    turn: u64,
}

impl Queue {
    /// The next message: the oldest of the tenant ([`super::TENANT_HEADER`])
    /// served least recently, so tenants take turns whatever their backlog.
    /// Messages without the header are one more "tenant" among them, FIFO
    /// among themselves, so a queue without tenants stays FIFO.
    fn pop_next(&mut self) -> Option<Pending> {
        let tenant_of = |p: &Pending| {
            p.message
                .headers
                .get(super::TENANT_HEADER)
                .cloned()
                .unwrap_or_default()
        };
        let mut best: Option<(u64, usize)> = None;
        let mut seen = std::collections::HashSet::new();
        for (index, pending) in self.ready.iter().enumerate() {
            let tenant = tenant_of(pending);
            if !seen.insert(tenant.clone()) {
                continue; // only a tenant's oldest message competes
            }
            let last = self.served.get(&tenant).copied().unwrap_or(0);
            if best.is_none_or(|(b, _)| last < b) {
                best = Some((last, index));
            }
            if last == 0 {
                break; // never served (or no tenants at all): it goes first
            }
        }
        let (_, index) = best?;
        let pending = self.ready.remove(index)?;
        let tenant = tenant_of(&pending);
        if !tenant.is_empty() || !self.served.is_empty() {
            self.turn += 1;
            self.served.insert(tenant, self.turn);
        }
        // A tenant that has nothing waiting any more is forgotten once the
        // queue drains, so the map stays small.
        if self.ready.is_empty() {
            self.served.clear();
        }
        Some(pending)
    }
}

struct Pending {
    message: Message,
    redelivered: bool,
    /// How often the message came back unacknowledged.
    returns: u32,
}

impl Pending {
    fn new(message: Message) -> Self {
        Self {
            message,
            redelivered: false,
            returns: 0,
        }
    }
}

/// What a consumer decided about a delivery.
enum Settlement {
    Ack,
    Requeue,
    Reject,
}

impl Broker {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Queue>> {
        // Every change is a single push or pop, so a poisoned map is still consistent.
        self.queues
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, queue: &str, message: Message) -> QueueResult<()> {
        let mut queues = self.lock();
        let target = queues
            .get_mut(queue)
            .ok_or_else(|| QueueError::Rejected(format!("no queue named {queue}")))?;
        target.ready.push_back(Pending::new(message));
        self.changed.notify_waiters();
        Ok(())
    }

    /// Waits for the next message of `queue`; `None` once the queue is gone.
    async fn take(&self, queue: &str) -> Option<Pending> {
        loop {
            // Register interest before looking, so a push in between is not missed.
            let mut changed = pin!(self.changed.notified());
            changed.as_mut().enable();
            if let Some(pending) = self.lock().get_mut(queue)?.pop_next() {
                return Some(pending);
            }
            changed.await;
        }
    }

    fn settle(&self, queue: &str, mut pending: Pending, settlement: Settlement) {
        let mut queues = self.lock();
        let Some(source) = queues.get_mut(queue) else {
            return; // an event subscription that ended meanwhile
        };
        let dead = match settlement {
            Settlement::Ack => return,
            Settlement::Reject => true,
            Settlement::Requeue => {
                pending.returns += 1;
                source
                    .delivery_limit
                    .is_some_and(|limit| pending.returns > limit)
            }
        };
        if !dead {
            pending.redelivered = true;
            source.ready.push_front(pending);
        } else if let Some(target) = source
            .dead_letter
            .clone()
            .and_then(|name| queues.get_mut(&name))
        {
            target.ready.push_back(Pending::new(pending.message));
        }
        self.changed.notify_waiters();
    }
}

/// Settles one delivery; dropping it unsettled requeues the message.
struct MemoryAcker {
    broker: Arc<Broker>,
    queue: String,
    /// The message and the consumer's prefetch slot, until settled.
    held: Mutex<Option<(Pending, OwnedSemaphorePermit)>>,
}

impl MemoryAcker {
    fn settle(&self, settlement: Settlement) -> QueueResult<()> {
        let held = self
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let (pending, _slot) =
            held.ok_or_else(|| QueueError::Other("delivery already settled".into()))?;
        self.broker.settle(&self.queue, pending, settlement);
        Ok(())
    }
}

#[async_trait]
impl Acker for MemoryAcker {
    async fn ack(&self) -> QueueResult<()> {
        self.settle(Settlement::Ack)
    }

    async fn nack(&self, requeue: bool) -> QueueResult<()> {
        self.settle(if requeue {
            Settlement::Requeue
        } else {
            Settlement::Reject
        })
    }
}

impl Drop for MemoryAcker {
    fn drop(&mut self) {
        // Already settled is the normal case; only an unsettled one requeues.
        let _ = self.settle(Settlement::Requeue);
    }
}

/// Removes an event subscription's queue when its consumer goes away, as
/// RabbitMQ deletes an auto-delete queue.
struct Subscription {
    broker: Arc<Broker>,
    queue: String,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.broker.lock().remove(&self.queue);
    }
}

/// Like a broker, a consumer takes messages as soon as it has a free
/// prefetch slot, whether or not its stream is being read: they stop being
/// ready (`depth`) and wait in the consumer's buffer. Dropping the stream
/// drops the buffered deliveries, which requeues them.
fn consumer(
    broker: Arc<Broker>,
    queue: String,
    prefetch: u16,
    subscription: Option<Subscription>,
) -> Consumer {
    // As in AMQP, a prefetch of 0 means no bound.
    let slots = if prefetch == 0 {
        Semaphore::MAX_PERMITS
    } else {
        usize::from(prefetch)
    };
    let slots = Arc::new(Semaphore::new(slots));
    let (buffer, deliveries) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        // An event subscription's queue lives as long as its consumer.
        let _subscription = subscription;
        loop {
            let next = async {
                let slot = slots.clone().acquire_owned().await.ok()?;
                let pending = broker.take(&queue).await?;
                Some(Delivery {
                    message: pending.message.clone(),
                    redelivered: pending.redelivered,
                    acker: Box::new(MemoryAcker {
                        broker: broker.clone(),
                        queue: queue.clone(),
                        held: Mutex::new(Some((pending, slot))),
                    }),
                })
            };
            // `None`: the queue is gone (an ended subscription).
            let delivery = tokio::select! {
                _ = buffer.closed() => return,
                delivery = next => delivery,
            };
            let Some(delivery) = delivery else {
                return;
            };
            // A send fails only once the stream is gone; the delivery it
            // hands back is dropped, which requeues it.
            if buffer.send(delivery).is_err() {
                return;
            }
        }
    });
    Box::pin(futures::stream::unfold(
        deliveries,
        |mut deliveries| async move {
            let delivery = deliveries.recv().await?;
            Some((Ok(delivery), deliveries))
        },
    ))
}

/// AMQP topic matching: words split on `.`, `*` matches one word and `#`
/// zero or more.
fn topic_matches(binding: &str, routing_key: &str) -> bool {
    fn matches(pattern: &[&str], words: &[&str]) -> bool {
        match pattern.split_first() {
            None => words.is_empty(),
            Some((&"#", rest)) => (0..=words.len()).any(|skip| matches(rest, &words[skip..])),
            Some((&"*", rest)) => !words.is_empty() && matches(rest, &words[1..]),
            Some((word, rest)) => words.first() == Some(word) && matches(rest, &words[1..]),
        }
    }
    let pattern: Vec<&str> = binding.split('.').collect();
    let words: Vec<&str> = routing_key.split('.').collect();
    matches(&pattern, &words)
}

#[async_trait]
impl TaskQueue for MemoryQueue {
    fn outlives_process(&self) -> bool {
        false
    }

    async fn publish(&self, queue: &str, message: Message) -> QueueResult<()> {
        self.broker.push(queue, message)
    }

    async fn publish_event(&self, routing_key: &str, message: Message) -> QueueResult<()> {
        let mut queues = self.broker.lock();
        let subscribers = queues.values_mut().filter(|q| {
            q.binding
                .as_deref()
                .is_some_and(|b| topic_matches(b, routing_key))
        });
        for subscriber in subscribers {
            subscriber.ready.push_back(Pending::new(message.clone()));
        }
        self.broker.changed.notify_waiters();
        Ok(())
    }

    async fn consume(&self, queue: &str, prefetch: u16) -> QueueResult<Consumer> {
        if !self.broker.lock().contains_key(queue) {
            return Err(QueueError::Other(format!("no queue named {queue}")));
        }
        Ok(consumer(
            self.broker.clone(),
            queue.to_string(),
            prefetch,
            None,
        ))
    }

    async fn subscribe_events(&self, binding: &str) -> QueueResult<Consumer> {
        let queue = format!(
            "{}.subscription.{}",
            self.topology.events_exchange(),
            uuid::Uuid::new_v4()
        );
        let subscription = Queue {
            binding: Some(binding.to_string()),
            ..Queue::default()
        };
        self.broker.lock().insert(queue.clone(), subscription);
        let guard = Subscription {
            broker: self.broker.clone(),
            queue: queue.clone(),
        };
        Ok(consumer(
            self.broker.clone(),
            queue,
            EVENT_PREFETCH,
            Some(guard),
        ))
    }

    async fn depth(&self, queue: &str) -> QueueResult<u64> {
        let queues = self.broker.lock();
        let queue = queues
            .get(queue)
            .ok_or_else(|| QueueError::Other(format!("no queue named {queue}")))?;
        Ok(queue.ready.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::{topic_matches, Message, Pending, Queue};

    fn message(tenant: Option<&str>, n: u8) -> Pending {
        let mut message = Message::new(vec![n]);
        if let Some(tenant) = tenant {
            message
                .headers
                .insert(super::super::TENANT_HEADER.into(), tenant.into());
        }
        Pending::new(message)
    }

    fn drain(queue: &mut Queue) -> Vec<u8> {
        std::iter::from_fn(|| queue.pop_next())
            .map(|p| p.message.payload[0])
            .collect()
    }

    #[test]
    fn tenants_take_turns_each_in_its_own_order() {
        let mut queue = Queue::default();
        for n in 1..=4 {
            queue.ready.push_back(message(Some("a"), n));
        }
        queue.ready.push_back(message(Some("b"), 11));
        queue.ready.push_back(message(Some("c"), 21));
        queue.ready.push_back(message(Some("b"), 12));
        assert_eq!(drain(&mut queue), [1, 11, 21, 2, 12, 3, 4]);
    }

    #[test]
    fn a_tenant_arriving_behind_a_backlog_is_served_next() {
        let mut queue = Queue::default();
        for n in 1..=3 {
            queue.ready.push_back(message(Some("a"), n));
        }
        assert_eq!(queue.pop_next().unwrap().message.payload, [1]);
        queue.ready.push_back(message(Some("b"), 11));
        assert_eq!(drain(&mut queue), [11, 2, 3]);
    }

    #[test]
    fn untagged_messages_stay_fifo() {
        let mut queue = Queue::default();
        for n in 1..=5 {
            queue.ready.push_back(message(None, n));
        }
        assert_eq!(drain(&mut queue), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn topic_bindings_match_like_amqp() {
        assert!(topic_matches("export.finished.*", "export.finished.t1"));
        assert!(!topic_matches("export.finished.*", "export.finished"));
        assert!(!topic_matches("export.finished.*", "export.finished.t1.x"));
        assert!(topic_matches("export.#", "export"));
        assert!(topic_matches("export.#", "export.failed.t1.x"));
        assert!(!topic_matches("export.#", "exports.failed"));
        assert!(topic_matches("#", "anything.at.all"));
        assert!(topic_matches("*.finished.#", "export.finished"));
        assert!(topic_matches("a.#.z", "a.z"));
        assert!(topic_matches("a.#.z", "a.b.c.z"));
        assert!(!topic_matches("a.#.z", "a.b.c"));
    }
}

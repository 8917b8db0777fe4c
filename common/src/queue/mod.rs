//! The task queue: durable work queues with manual acks, plus the topic
//! exchange for completion events.
//!
//! [`RabbitQueue`] (lapin, publisher confirms, quorum task queue with a
//! delivery limit and a dead-letter queue) and [`MemoryQueue`] (in-process,
//! same semantics) pass one conformance suite (`tests/queue_conformance.rs`).

mod memory;
mod rabbitmq;

use std::collections::BTreeMap;
use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;

pub use self::memory::MemoryQueue;
pub use self::rabbitmq::RabbitQueue;

/// Failures of the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The broker could not be reached, the channel closed, or a publish was
    /// not confirmed in time; retry with backoff.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// The broker refused a publish (nack or unroutable return).
    #[error("queue rejected the message: {0}")]
    Rejected(String),
    #[error("queue error: {0}")]
    Other(String),
}

impl QueueError {
    pub fn is_transient(&self) -> bool {
        matches!(self, QueueError::Unavailable(_))
    }
}

pub type QueueResult<T> = Result<T, QueueError>;

/// Header naming the tenant a task is for. [`MemoryQueue`] (the embedded
/// default) hands tasks out by tenant in turns, so one tenant's backlog of
/// queries cannot hold the workers' slots against another's; RabbitMQ
/// ignores it (FIFO).
pub const TENANT_HEADER: &str = "auditx-tenant";

/// Message headers (AMQP headers as strings; carries `traceparent`).
pub type Headers = BTreeMap<String, String>;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub payload: Vec<u8>,
    pub headers: Headers,
}

impl Message {
    pub fn new(payload: Vec<u8>) -> Self {
        Self {
            payload,
            headers: Headers::new(),
        }
    }
}

/// Acknowledges one delivery. Dropping it without a call requeues the
/// message (as a broker does when a consumer's channel closes).
#[async_trait]
pub trait Acker: Send + Sync {
    async fn ack(&self) -> QueueResult<()>;
    /// `requeue = false` dead-letters the message where the queue has a
    /// dead-letter queue, and drops it otherwise.
    async fn nack(&self, requeue: bool) -> QueueResult<()>;
}

/// One delivered message.
pub struct Delivery {
    pub message: Message,
    /// True if the message was delivered before and not acked.
    pub redelivered: bool,
    pub acker: Box<dyn Acker>,
}

impl Delivery {
    pub async fn ack(self) -> QueueResult<()> {
        self.acker.ack().await
    }

    pub async fn nack(self, requeue: bool) -> QueueResult<()> {
        self.acker.nack(requeue).await
    }
}

/// An endless stream of deliveries of one queue.
pub type Consumer = Pin<Box<dyn Stream<Item = QueueResult<Delivery>> + Send>>;

#[async_trait]
pub trait TaskQueue: Send + Sync + 'static {
    /// Whether queued messages outlive this process (a broker's durable
    /// queues do; the in-process queue's die with it, so a restarted
    /// scheduler sends the tasks of its running jobs again).
    fn outlives_process(&self) -> bool {
        true
    }
    /// Publishes to a durable queue of the topology and returns once the
    /// broker has confirmed it.
    async fn publish(&self, queue: &str, message: Message) -> QueueResult<()>;
    /// Publishes to the events topic exchange (confirmed).
    async fn publish_event(&self, routing_key: &str, message: Message) -> QueueResult<()>;
    /// Consumes a queue with at most `prefetch` unacked deliveries.
    async fn consume(&self, queue: &str, prefetch: u16) -> QueueResult<Consumer>;
    /// Subscribes to events whose routing key matches `binding` (AMQP topic
    /// syntax: `*` one word, `#` any words) through a fresh exclusive queue;
    /// only events published after the call are seen.
    async fn subscribe_events(&self, binding: &str) -> QueueResult<Consumer>;
    /// Messages ready in a queue (not counting unacked ones).
    async fn depth(&self, queue: &str) -> QueueResult<u64>;
}

//! Queue and exchange names. Every name hangs off one prefix so that tests
//! (and several installations on one broker) never see each other's messages.

/// The AMQP header that carries the W3C trace context from scheduler to worker.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// The AMQP header that carries an export's `Zuora-Track-Id` to the worker,
/// which records it on its task span.
pub const TRACK_ID_HEADER: &str = "zuora-track-id";

/// The RabbitMQ topology of one auditx installation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    pub prefix: String,
}

impl Topology {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// Work for workers: render and assemble tasks (a quorum queue).
    pub fn tasks(&self) -> String {
        format!("{}.tasks", self.prefix)
    }

    /// Worker reports back to the schedulers.
    pub fn results(&self) -> String {
        format!("{}.results", self.prefix)
    }

    /// Tasks that were rejected or redelivered too often end up here; the
    /// scheduler fails their job with a message instead of retrying forever.
    pub fn dead_tasks(&self) -> String {
        format!("{}.tasks.dead", self.prefix)
    }

    /// The exchange dead-lettered tasks are routed through.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.prefix)
    }

    /// The topic exchange completion events are published to.
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }
}

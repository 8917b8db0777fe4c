//! The RabbitMQ task queue of the distributed mode (lapin).
//!
//! Topology, declared on every (re)connect: the task queue is a durable
//! quorum queue with `x-delivery-limit` and a dead-letter exchange (a
//! durable fanout) that routes to the dead-task queue, so a task that
//! crashes its workers ends there instead of cycling forever; results and
//! dead tasks are durable quorum queues; events go to a durable topic
//! exchange. Task *failures* are counted by the worker itself (see
//! `worker.max_task_attempts`); `x-delivery-limit` is only the broker's
//! safety net, set high because every broker or connection failure
//! returns the unacknowledged messages and counts as a delivery.
//!
//! Every publish is persistent and waits for the publisher confirm; a nack
//! or an unroutable return is [`QueueError::Rejected`].
//!
//! Reconnection is ours, not lapin's: the queue holds one [`Link`] (a
//! connection and its confirm-mode publisher channel). When it breaks
//! (broker restart, network failure, missed heartbeats) every consumer
//! stream ends with an error and every publish fails with
//! [`QueueError::Unavailable`]; the next call opens a fresh link, so callers
//! that retry with backoff (the worker's and the scheduler's consume loops,
//! publishers) reconnect by themselves, however long the broker is away.
//! A delivery taken before the break can no longer be acknowledged, which
//! surfaces as an error while the broker redelivers the message (callers
//! are idempotent).
//!
//! Publishing has its own channel, and so does every consumer, so that a
//! consumer's prefetch and failures stay its own.
//!
//! TLS: an `amqps://` URL connects over TLS, trusting `rabbitmq.ca_file`
//! besides the system's CAs and presenting `rabbitmq.client_cert_file`
//! (mutual TLS) when set; the files are read once, at [`RabbitQueue::connect`],
//! and every reconnect uses them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use auditx_proto::Topology;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use tokio::sync::Mutex;
use tokio::time::timeout;

use super::{Acker, Consumer, Delivery, Headers, Message, QueueError, QueueResult, TaskQueue};
use crate::config::RabbitConfig;
use crate::metrics;
use crate::retry::{retry, Backoff};
use crate::tls::ClientTls;

/// Unacknowledged events one subscriber may hold (`subscribe_events` takes
/// no prefetch); the in-process queue uses the same bound.
pub(super) const EVENT_PREFETCH: u16 = 64;

/// How long a publish waits for its confirm before it counts as failed.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// How long opening a link (TCP, handshake, topology) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// AMQP `delivery-mode` 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

/// AMQP reply code of a declaration whose arguments differ from the
/// existing queue's.
const PRECONDITION_FAILED: u16 = 406;

/// A connection to RabbitMQ with the topology of one installation declared,
/// reopened whenever it breaks.
pub struct RabbitQueue {
    url: String,
    tls: OwnedTLSConfig,
    topology: Topology,
    delivery_limit: u32,
    /// The current link; `None` after it broke and a reconnect failed. The
    /// lock is held while a new link opens, so one caller reconnects and
    /// the others wait for its result.
    link: Mutex<Option<Arc<Link>>>,
}

/// One connection and its publisher channel (in confirm mode).
struct Link {
    connection: Connection,
    publisher: Channel,
}

impl Link {
    async fn open(
        url: &str,
        tls: &OwnedTLSConfig,
        topology: &Topology,
        delivery_limit: u32,
    ) -> QueueResult<Link> {
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("auditx {}", topology.prefix).into());
        let runtime = lapin::runtime::default_runtime().map_err(classify)?;
        let connection = Connection::connect_with_config(url, properties, tls.clone(), runtime)
            .await
            .map_err(classify)?;
        // Declared on a channel of their own: a refused declaration closes
        // its channel.
        declare(&connection, topology, delivery_limit).await?;
        let publisher = open_channel(&connection).await?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(classify)?;
        Ok(Link {
            connection,
            publisher,
        })
    }

    fn usable(&self) -> bool {
        self.connection.status().connected() && self.publisher.status().connected()
    }
}

impl RabbitQueue {
    /// Connects to `config.url` (`amqp://user:pass@host:5672/%2f`, or
    /// `amqps://` for TLS with the `rabbitmq.*` TLS files) and declares the
    /// topology. `config.delivery_limit` is the task queue's
    /// `x-delivery-limit`: the times a task may come back unacknowledged
    /// (task failures and broker or connection failures alike) before the
    /// broker dead-letters it.
    pub async fn connect(config: &RabbitConfig, topology: Topology) -> QueueResult<RabbitQueue> {
        let tls = tls_config(&config.tls().map_err(|e| QueueError::Other(e.to_string()))?);
        let url = &config.url;
        let delivery_limit = config.delivery_limit;
        let link = timeout(
            CONNECT_TIMEOUT,
            Link::open(url, &tls, &topology, delivery_limit),
        )
        .await
        .map_err(|_| {
            QueueError::Unavailable(format!("no connection within {CONNECT_TIMEOUT:?}"))
        })??;
        Ok(RabbitQueue {
            url: url.to_owned(),
            tls,
            topology,
            delivery_limit,
            link: Mutex::new(Some(Arc::new(link))),
        })
    }

    /// The current link, or a new one if it broke.
    async fn link(&self) -> QueueResult<Arc<Link>> {
        let mut current = self.link.lock().await;
        if let Some(link) = current.as_ref() {
            if link.usable() {
                return Ok(link.clone());
            }
        }
        if let Some(broken) = current.take() {
            tracing::warn!("rabbitmq connection lost, reconnecting");
            // A publisher channel closed by the broker can leave the
            // connection up: close it, so its consumers end and resubscribe.
            if broken.connection.status().connected() {
                tokio::spawn(async move {
                    let _ = broken.connection.close(200, "reconnecting".into()).await;
                });
            }
        }
        let opened = timeout(
            CONNECT_TIMEOUT,
            Link::open(&self.url, &self.tls, &self.topology, self.delivery_limit),
        )
        .await;
        let link = match opened {
            Ok(Ok(link)) => Arc::new(link),
            // Whatever failed while the broker comes back (refused
            // connections, queues not yet available) is worth retrying.
            Ok(Err(e)) => return Err(QueueError::Unavailable(e.to_string())),
            Err(_) => {
                return Err(QueueError::Unavailable(format!(
                    "no connection within {CONNECT_TIMEOUT:?}"
                )))
            }
        };
        tracing::info!("rabbitmq connection reopened");
        *current = Some(link.clone());
        Ok(link)
    }

    /// Deletes the queues and exchanges of this topology with their
    /// messages (tests use one topology each and clean up with this).
    pub async fn delete_topology(&self) -> QueueResult<()> {
        let link = self.link().await?;
        let channel = open_channel(&link.connection).await?;
        let t = &self.topology;
        for queue in [t.tasks(), t.results(), t.dead_tasks()] {
            channel
                .queue_delete(queue.into(), QueueDeleteOptions::default())
                .await
                .map_err(classify)?;
        }
        for exchange in [t.dead_letter_exchange(), t.events_exchange()] {
            channel
                .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
                .await
                .map_err(classify)?;
        }
        close(channel).await;
        Ok(())
    }

    /// Publishes once and waits for the broker's confirm.
    async fn publish_once(
        &self,
        exchange: &str,
        routing_key: &str,
        mandatory: bool,
        message: &Message,
    ) -> QueueResult<()> {
        let link = self.link().await?;
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_headers(write_headers(&message.headers));
        let options = BasicPublishOptions {
            mandatory,
            ..BasicPublishOptions::default()
        };
        let confirm = link
            .publisher
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                options,
                &message.payload,
                properties,
            )
            .await
            .map_err(classify)?;
        let confirmation = match timeout(CONFIRM_TIMEOUT, confirm).await {
            Err(_) => {
                return Err(QueueError::Unavailable(format!(
                    "no publisher confirm within {CONFIRM_TIMEOUT:?}"
                )))
            }
            Ok(result) => result.map_err(classify)?,
        };
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
                Err(QueueError::Rejected(format!(
                    "returned by the broker: {} {}",
                    returned.reply_code, returned.reply_text
                )))
            }
            Confirmation::Nack(None) => Err(QueueError::Rejected("nacked by the broker".into())),
            Confirmation::NotRequested => Err(QueueError::Other(
                "publisher confirms are not enabled".into(),
            )),
        }
    }

    /// Publishes, retrying while the broker is unreachable; a retry after a
    /// lost confirm may duplicate the message, which consumers tolerate.
    async fn publish_to(
        &self,
        exchange: &str,
        routing_key: &str,
        mandatory: bool,
        message: Message,
    ) -> QueueResult<()> {
        retry(Backoff::default(), QueueError::is_transient, || {
            self.publish_once(exchange, routing_key, mandatory, &message)
        })
        .await
    }
}

async fn open_channel(connection: &Connection) -> QueueResult<Channel> {
    connection.create_channel().await.map_err(classify)
}

/// Consumes `queue` on `channel`, which becomes the consumer's own.
async fn consume_on(channel: Channel, queue: ShortString, prefetch: u16) -> QueueResult<Consumer> {
    let consumer = async {
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        channel
            .basic_consume(
                queue,
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
    };
    let consumer = consumer.await.map_err(classify)?;
    Ok(deliveries(channel, consumer))
}

/// Closes a short-lived channel; failing to close it only costs the broker
/// a channel until the connection ends.
async fn close(channel: Channel) {
    if let Err(e) = channel.close(200, "OK".into()).await {
        tracing::debug!(error = %e, "closing a channel failed");
    }
}

async fn declare(
    connection: &Connection,
    topology: &Topology,
    delivery_limit: u32,
) -> QueueResult<()> {
    let channel = open_channel(connection).await?;
    let durable_exchange = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    let dlx = topology.dead_letter_exchange();
    for (exchange, kind) in [
        (dlx.clone(), ExchangeKind::Fanout),
        (topology.events_exchange(), ExchangeKind::Topic),
    ] {
        channel
            .exchange_declare(
                exchange.into(),
                kind,
                durable_exchange,
                FieldTable::default(),
            )
            .await
            .map_err(classify)?;
    }

    let mut tasks = quorum();
    tasks.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(delivery_limit.into()),
    );
    tasks.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(dlx.clone().into()),
    );
    let declared = channel
        .queue_declare(
            topology.tasks().into(),
            QueueDeclareOptions::durable(),
            tasks,
        )
        .await;
    let channel = match declared {
        Ok(_) => channel,
        // Declared before with another `x-delivery-limit` (an older
        // default): the broker refuses to change arguments, so keep the
        // queue as it is rather than fail to start.
        Err(error) if reply_code(&error) == Some(PRECONDITION_FAILED) => {
            tracing::warn!(
                queue = %topology.tasks(),
                %error,
                "the task queue exists with other arguments; using it as it is (change x-delivery-limit with a policy)"
            );
            let channel = open_channel(connection).await?;
            let passive = QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            };
            channel
                .queue_declare(topology.tasks().into(), passive, FieldTable::default())
                .await
                .map_err(classify)?;
            channel
        }
        Err(error) => return Err(classify(error)),
    };
    for queue in [topology.results(), topology.dead_tasks()] {
        channel
            .queue_declare(queue.into(), QueueDeclareOptions::durable(), quorum())
            .await
            .map_err(classify)?;
    }
    channel
        .queue_bind(
            topology.dead_tasks().into(),
            dlx.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(classify)?;
    close(channel).await;
    Ok(())
}

/// The AMQP reply code of a refusal by the broker.
fn reply_code(error: &lapin::Error) -> Option<u16> {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(e) => Some(e.get_id()),
        _ => None,
    }
}

/// Arguments of a replicated, durable quorum queue.
fn quorum() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    arguments
}

/// The TLS files as lapin takes them. lapin's PKCS#8 identity is a PEM
/// certificate and a PEM key, which may be PKCS#8, RSA or EC (rustls reads
/// all three).
fn tls_config(tls: &ClientTls) -> OwnedTLSConfig {
    // Built with the process default; set it before lapin does.
    crate::tls::crypto_provider();
    OwnedTLSConfig {
        identity: tls.identity.as_ref().map(|identity| OwnedIdentity::PKCS8 {
            pem: identity.cert_pem.clone(),
            key: identity.key_pem.clone(),
        }),
        cert_chain: tls.ca.as_ref().map(|ca| ca.pem.clone()),
    }
}

/// A refusal by the broker (missing queue, mismatched arguments) or a local
/// protocol failure is permanent; connection trouble is transient.
fn classify(error: lapin::Error) -> QueueError {
    if error.is_amqp_soft_error() || !error.can_be_recovered() {
        QueueError::Other(error.to_string())
    } else {
        QueueError::Unavailable(error.to_string())
    }
}

fn write_headers(headers: &Headers) -> FieldTable {
    let mut table = FieldTable::default();
    for (name, value) in headers {
        table.insert(
            name.clone().into(),
            AMQPValue::LongString(LongString::from(value.clone())),
        );
    }
    table
}

/// Text headers as they were published; numbers the broker adds (such as
/// `x-delivery-count`) become decimal text, nested values (`x-death`) are
/// left out.
fn read_headers(table: &FieldTable) -> Headers {
    let text = |value: &AMQPValue| match value {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        AMQPValue::ShortShortInt(n) => Some(n.to_string()),
        AMQPValue::ShortShortUInt(n) => Some(n.to_string()),
        AMQPValue::ShortInt(n) => Some(n.to_string()),
        AMQPValue::ShortUInt(n) => Some(n.to_string()),
        AMQPValue::LongInt(n) => Some(n.to_string()),
        AMQPValue::LongUInt(n) => Some(n.to_string()),
        AMQPValue::LongLongInt(n) => Some(n.to_string()),
        _ => None,
    };
    table
        .inner()
        .iter()
        .filter_map(|(name, value)| Some((name.to_string(), text(value)?)))
        .collect()
}

/// The consumer's deliveries. A failure of its channel or connection is
/// reported once and ends the stream: the caller subscribes again, which
/// reconnects (the broker has requeued whatever was unacknowledged).
fn deliveries(channel: Channel, consumer: lapin::Consumer) -> Consumer {
    Box::pin(futures::stream::unfold(
        Some((channel, consumer)),
        |state| async move {
            let (channel, mut consumer) = state?;
            match consumer.next().await? {
                Ok(delivery) => {
                    let delivery = delivery_of(delivery, &channel);
                    Some((Ok(delivery), Some((channel, consumer))))
                }
                Err(error) => {
                    tracing::warn!(%error, "consumer interrupted");
                    Some((Err(QueueError::Unavailable(error.to_string())), None))
                }
            }
        },
    ))
}

fn delivery_of(delivery: lapin::message::Delivery, channel: &Channel) -> Delivery {
    let headers = delivery
        .properties
        .headers()
        .as_ref()
        .map(read_headers)
        .unwrap_or_default();
    Delivery {
        message: Message {
            payload: delivery.data,
            headers,
        },
        redelivered: delivery.redelivered,
        acker: Box::new(RabbitAcker {
            acker: delivery.acker,
            channel: channel.clone(),
            settled: AtomicBool::new(false),
        }),
    }
}

/// Settles one delivery. It keeps its channel open (acks must travel on the
/// channel that delivered), and dropping it unsettled nacks with requeue.
struct RabbitAcker {
    acker: lapin::Acker,
    channel: Channel,
    settled: AtomicBool,
}

impl RabbitAcker {
    /// Marks the delivery settled: it can be settled once.
    fn claim(&self) -> QueueResult<()> {
        if self.settled.swap(true, Ordering::SeqCst) {
            return Err(QueueError::Other("delivery already settled".into()));
        }
        Ok(())
    }

    /// lapin answers `false` for an acker whose channel closed or was
    /// recovered since the delivery; the broker redelivers that message.
    fn check(outcome: lapin::Result<bool>) -> QueueResult<()> {
        match outcome {
            Ok(true) => Ok(()),
            Ok(false) => Err(QueueError::Unavailable(
                "the delivery's channel closed or was recovered; the broker redelivers the message"
                    .into(),
            )),
            Err(e) => Err(classify(e)),
        }
    }
}

#[async_trait]
impl Acker for RabbitAcker {
    async fn ack(&self) -> QueueResult<()> {
        self.claim()?;
        Self::check(self.acker.ack(BasicAckOptions::default()).await)
    }

    async fn nack(&self, requeue: bool) -> QueueResult<()> {
        self.claim()?;
        Self::check(
            self.acker
                .nack(BasicNackOptions {
                    requeue,
                    multiple: false,
                })
                .await,
        )
    }
}

impl Drop for RabbitAcker {
    fn drop(&mut self) {
        // A poisoned acker's channel is gone, and with it the delivery: the
        // broker requeues it by itself.
        if self.settled.swap(true, Ordering::SeqCst) || !self.acker.usable() {
            return;
        }
        let (acker, channel) = (self.acker.clone(), self.channel.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let requeue = BasicNackOptions { requeue: true, multiple: false };
                    if let Err(e) = acker.nack(requeue).await {
                        tracing::warn!(error = %e, "requeueing a dropped delivery failed; the broker redelivers it later");
                    }
                    drop(channel);
                });
            }
            // Without a runtime the message comes back when its channel closes.
            Err(_) => tracing::warn!("delivery dropped unsettled outside a runtime"),
        }
    }
}

#[async_trait]
impl TaskQueue for RabbitQueue {
    async fn publish(&self, queue: &str, message: Message) -> QueueResult<()> {
        // Through the default exchange; mandatory, so a missing queue is a return.
        self.publish_to("", queue, true, message)
            .await
            .inspect_err(count_error)
    }

    async fn publish_event(&self, routing_key: &str, message: Message) -> QueueResult<()> {
        // Not mandatory: an event nobody subscribed to is not an error.
        self.publish_to(
            &self.topology.events_exchange(),
            routing_key,
            false,
            message,
        )
        .await
        .inspect_err(count_error)
    }

    async fn consume(&self, queue: &str, prefetch: u16) -> QueueResult<Consumer> {
        let consumer = async {
            consume_on(
                open_channel(&self.link().await?.connection).await?,
                queue.into(),
                prefetch,
            )
            .await
        };
        consumer.await.inspect_err(count_error)
    }

    async fn subscribe_events(&self, binding: &str) -> QueueResult<Consumer> {
        let channel = open_channel(&self.link().await?.connection).await?;
        let exclusive = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        };
        let bound = async {
            let queue = channel
                .queue_declare("".into(), exclusive, FieldTable::default())
                .await?;
            let events = self.topology.events_exchange().into();
            let options = QueueBindOptions::default();
            channel
                .queue_bind(
                    queue.name().clone(),
                    events,
                    binding.into(),
                    options,
                    FieldTable::default(),
                )
                .await?;
            lapin::Result::Ok(queue.name().clone())
        };
        let queue = bound.await.map_err(classify)?;
        consume_on(channel, queue, EVENT_PREFETCH).await
    }

    async fn depth(&self, queue: &str) -> QueueResult<u64> {
        // A passive declare of a missing queue closes its channel: use a fresh one.
        let channel = open_channel(&self.link().await?.connection).await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let declared = channel
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
            .map_err(classify)?;
        close(channel).await;
        Ok(declared.message_count().into())
    }
}

fn count_error(error: &QueueError) {
    metrics::queue_error(match error {
        QueueError::Unavailable(_) => "unavailable",
        QueueError::Rejected(_) => "rejected",
        QueueError::Other(_) => "other",
    });
}

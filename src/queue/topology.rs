//! RabbitMQ topology (docs/ARCHITECTURE.md, "RabbitMQ topology"), every option spelled out with its reason.
//!
//! | name | kind | why |
//! |---|---|---|
//! | `<p>` | direct exchange | all work is routed here |
//! | `<p>.retry` | direct exchange | parks retries; never routes to a work queue directly |
//! | `<p>.deliveries.email` / `.sms` | quorum queues, keys `delivery.email` / `delivery.sms` | an SMS outage never blocks e-mail |
//! | `<p>.bulk.email` / `.bulk.sms` | quorum queues, keys `bulk.email` / `bulk.sms` | deliveries of bulk re-invites: transactional ones never wait behind them |
//! | `<p>.resend-requests` | quorum queue, key `resend.request` | bulk re-invites, apart from transactional work |
//! | `<p>.retry.<delay>` | quorum queue with `x-message-ttl`, bound to `<p>.retry` by key `<delay>` | waits, then dead-letters to `<p>` |
//! | `<p>.dead` | quorum queue, key `dead`, at most [`DEAD_MAX_LENGTH`] messages (oldest dropped) | parked deliveries for inspection |
//!
//! A retried message is published to `<p>.retry` with routing key `<delay>` and its
//! original routing key as `CC`. The retry exchange has no binding for the CC key,
//! so the message waits in the retry queue only; when its TTL ends RabbitMQ
//! dead-letters it to `<p>` with its original routing keys (CC included), and the
//! CC key routes it back to its work queue.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, ExchangeKind};

/// A poison message redelivered more often than this (consumer crashes, nacks)
/// is dead-lettered instead of looping. Quorum queues of RabbitMQ 3.10 have no
/// default limit.
const DELIVERY_LIMIT: i64 = 20;

/// The bound of `<p>.dead`. The database holds the truth (each dead delivery's row
/// says `dead` with its last error, and replay works from the rows); the queue is
/// the operators' view, so past the bound its oldest messages are dropped
/// (`drop-head`) rather than letting a flood of failures fill the broker's disk.
pub const DEAD_MAX_LENGTH: i64 = 100_000;

pub const KEY_EMAIL: &str = "delivery.email";
pub const KEY_SMS: &str = "delivery.sms";
pub const KEY_BULK_EMAIL: &str = "bulk.email";
pub const KEY_BULK_SMS: &str = "bulk.sms";
pub const KEY_RESEND: &str = "resend.request";
pub const KEY_DEAD: &str = "dead";

/// The work queues, each reached from `<p>` by one routing key. Every key a
/// publisher uses comes from here ([`WorkQueue::key`], [`Topology::retry_key`],
/// [`KEY_DEAD`]), so a key is never spelled at a call site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkQueue {
    Email,
    Sms,
    BulkEmail,
    BulkSms,
    ResendRequests,
}

impl WorkQueue {
    pub const ALL: [WorkQueue; 5] =
        [WorkQueue::Email, WorkQueue::Sms, WorkQueue::BulkEmail, WorkQueue::BulkSms, WorkQueue::ResendRequests];

    /// The routing key that leads to this queue.
    pub fn key(self) -> &'static str {
        match self {
            WorkQueue::Email => KEY_EMAIL,
            WorkQueue::Sms => KEY_SMS,
            WorkQueue::BulkEmail => KEY_BULK_EMAIL,
            WorkQueue::BulkSms => KEY_BULK_SMS,
            WorkQueue::ResendRequests => KEY_RESEND,
        }
    }

    /// The queue's name after the prefix.
    fn suffix(self) -> &'static str {
        match self {
            WorkQueue::Email => "deliveries.email",
            WorkQueue::Sms => "deliveries.sms",
            WorkQueue::BulkEmail => "bulk.email",
            WorkQueue::BulkSms => "bulk.sms",
            WorkQueue::ResendRequests => "resend-requests",
        }
    }
}

/// Every name under one prefix.
#[derive(Debug, Clone)]
pub struct Topology {
    pub prefix: String,
    pub retry_delays: Vec<Duration>,
    /// Replicas of each quorum queue (`amqp.quorum_replicas`); 0 leaves the count and
    /// the leader's node to the broker.
    pub replicas: u16,
}

impl Topology {
    pub fn new(prefix: &str, retry_delays: &[Duration]) -> Self {
        let mut delays = retry_delays.to_vec();
        delays.sort();
        delays.dedup();
        Topology { prefix: prefix.to_string(), retry_delays: delays, replicas: 0 }
    }

    /// Quorum queues declared with `replicas` members, their leaders spread over the
    /// nodes (docs/ARCHITECTURE.md, "Scaling out"). Arguments are added only when
    /// set: a queue declared earlier without them would refuse the declaration.
    pub fn with_replicas(mut self, replicas: u16) -> Self {
        self.replicas = replicas;
        self
    }

    fn quorum(&self) -> FieldTable {
        let mut t = quorum();
        if self.replicas > 0 {
            t.insert("x-quorum-initial-group-size".into(), AMQPValue::LongLongInt(i64::from(self.replicas)));
            t.insert("x-queue-leader-locator".into(), string("balanced"));
        }
        t
    }

    pub fn exchange(&self) -> String {
        self.prefix.clone()
    }

    pub fn retry_exchange(&self) -> String {
        format!("{}.retry", self.prefix)
    }

    /// `<p>.<queue>`, e.g. `<p>.deliveries.email`.
    pub fn work_queue(&self, q: WorkQueue) -> String {
        format!("{}.{}", self.prefix, q.suffix())
    }

    pub fn email_queue(&self) -> String {
        self.work_queue(WorkQueue::Email)
    }

    pub fn sms_queue(&self) -> String {
        self.work_queue(WorkQueue::Sms)
    }

    pub fn bulk_email_queue(&self) -> String {
        self.work_queue(WorkQueue::BulkEmail)
    }

    pub fn bulk_sms_queue(&self) -> String {
        self.work_queue(WorkQueue::BulkSms)
    }

    pub fn resend_queue(&self) -> String {
        self.work_queue(WorkQueue::ResendRequests)
    }

    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    /// `5s`, `2m`, `1h30m`: the retry queue's suffix and routing key.
    pub fn delay_label(d: Duration) -> String {
        humantime::format_duration(d).to_string().replace(' ', "")
    }

    /// The routing key of a retry after `d` on `<p>.retry` (docs/ARCHITECTURE.md,
    /// "RabbitMQ topology"); the retry queue's suffix is the same label.
    pub fn retry_key(d: Duration) -> String {
        Self::delay_label(d)
    }

    pub fn retry_queue(&self, d: Duration) -> String {
        format!("{}.retry.{}", self.prefix, Self::delay_label(d))
    }

    /// Declares everything; safe to repeat (after every reconnect).
    pub async fn declare_all(&self, conn: &Connection) -> Result<(), lapin::Error> {
        let ch = conn.create_channel().await?;
        self.declare(&ch).await?;
        // The declaring channel has done its work; a failure to close it is harmless.
        let _ = ch.close(200, "topology declared".into()).await;
        self.declare_dead(conn).await
    }

    /// `<p>.dead` with its bound. A deployment whose dead queue an older herald
    /// declared without one answers PRECONDITION_FAILED (a queue's arguments never
    /// change): that queue is used as it is, with a warning; bound it by deleting
    /// it once empty (herald declares it again) or with a policy
    /// (docs/ARCHITECTURE.md, "RabbitMQ topology").
    async fn declare_dead(&self, conn: &Connection) -> Result<(), lapin::Error> {
        let ch = conn.create_channel().await?;
        let mut args = self.quorum();
        args.insert("x-max-length".into(), AMQPValue::LongLongInt(DEAD_MAX_LENGTH));
        args.insert("x-overflow".into(), string("drop-head"));
        let name = self.dead_queue();
        match self.queue(&ch, &name, args, &self.exchange(), KEY_DEAD).await {
            Ok(()) => {
                let _ = ch.close(200, "dead queue declared".into()).await;
                Ok(())
            }
            Err(e) => {
                tracing::warn!(queue = %name, error = %e, "dead queue declared earlier without a bound; using it as it is");
                let ch = conn.create_channel().await?;
                let passive = QueueDeclareOptions { passive: true, durable: true, ..Default::default() };
                ch.queue_declare(name.as_str().into(), passive, FieldTable::default()).await?;
                let bind = QueueBindOptions::default();
                ch.queue_bind(
                    name.as_str().into(),
                    self.exchange().as_str().into(),
                    KEY_DEAD.into(),
                    bind,
                    FieldTable::default(),
                )
                .await?;
                let _ = ch.close(200, "dead queue found".into()).await;
                Ok(())
            }
        }
    }

    /// Declares the exchanges, work queues and retry queues on `ch`.
    pub async fn declare(&self, ch: &Channel) -> Result<(), lapin::Error> {
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        ch.exchange_declare(self.exchange().into(), ExchangeKind::Direct, durable, FieldTable::default()).await?;
        ch.exchange_declare(self.retry_exchange().into(), ExchangeKind::Direct, durable, FieldTable::default()).await?;

        // Work queues: quorum (replicated, durable), a delivery limit against poison
        // messages, and the dead queue as where such messages end.
        for q in WorkQueue::ALL {
            let mut args = self.quorum();
            args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(DELIVERY_LIMIT));
            args.insert("x-dead-letter-exchange".into(), string(&self.exchange()));
            args.insert("x-dead-letter-routing-key".into(), string(KEY_DEAD));
            self.queue(ch, &self.work_queue(q), args, &self.exchange(), q.key()).await?;
        }

        // Retry queues: a per-queue TTL (a quorum queue expires messages only at its
        // head, so one TTL per queue keeps them in order), then back to the work
        // exchange with the original routing keys. At-least-once dead-lettering so a
        // retry is not lost in transit; it requires reject-publish on overflow.
        for d in &self.retry_delays {
            let mut args = self.quorum();
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(d.as_millis() as i64));
            args.insert("x-dead-letter-exchange".into(), string(&self.exchange()));
            args.insert("x-dead-letter-strategy".into(), string("at-least-once"));
            args.insert("x-overflow".into(), string("reject-publish"));
            self.queue(ch, &self.retry_queue(*d), args, &self.retry_exchange(), &Self::retry_key(*d)).await?;
        }
        Ok(())
    }

    async fn queue(
        &self,
        ch: &Channel,
        name: &str,
        args: FieldTable,
        exchange: &str,
        key: &str,
    ) -> Result<(), lapin::Error> {
        let opts = QueueDeclareOptions { durable: true, ..Default::default() };
        ch.queue_declare(name.into(), opts, args).await?;
        ch.queue_bind(name.into(), exchange.into(), key.into(), QueueBindOptions::default(), FieldTable::default())
            .await
    }
}

fn quorum() -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-queue-type".into(), string("quorum"));
    t
}

fn string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_live_under_the_prefix() {
        let t = Topology::new("hx", &[Duration::from_secs(30), Duration::from_secs(5), Duration::from_secs(120)]);
        assert_eq!(t.email_queue(), "hx.deliveries.email");
        assert_eq!(t.retry_queue(Duration::from_secs(5)), "hx.retry.5s");
        assert_eq!(t.retry_queue(Duration::from_secs(120)), "hx.retry.2m");
        assert_eq!(t.retry_delays[0], Duration::from_secs(5));
        assert_eq!(t.work_queue(WorkQueue::BulkSms), "hx.bulk.sms");
        assert_eq!(t.resend_queue(), "hx.resend-requests");
    }

    #[test]
    fn replicas_are_declared_only_when_configured() {
        let plain = Topology::new("hx", &[]);
        assert_eq!(plain.quorum().inner().len(), 1);
        let three = Topology::new("hx", &[]).with_replicas(3);
        let args = three.quorum();
        assert_eq!(args.inner().get("x-quorum-initial-group-size"), Some(&AMQPValue::LongLongInt(3)));
        assert_eq!(args.inner().get("x-queue-leader-locator"), Some(&string("balanced")));
    }

    #[test]
    fn each_work_queue_has_its_own_key_and_retries_are_keyed_by_delay() {
        let keys: Vec<_> = WorkQueue::ALL.iter().map(|q| q.key()).collect();
        assert_eq!(keys, ["delivery.email", "delivery.sms", "bulk.email", "bulk.sms", "resend.request"]);
        assert_eq!(Topology::retry_key(Duration::from_secs(90)), "1m30s");
    }
}

//! The broker, behind one facade. The only module that uses lapin.
//!
//! - [`topology`]: names under `amqp.prefix` and their idempotent declaration;
//! - [`link`]: the `AmqpLink` actor: one connection, reconnect with backoff,
//!   redeclare, tell subscribers when the link is up or down;
//! - [`publisher`]: confirmed, mandatory publishes (`Publisher` actor);
//! - [`consumer`]: a generic consumer actor that hands each message to an actix
//!   `Recipient<Incoming>` and carries out its [`Disposition`];
//! - [`worker`]: the generic actor that recipient usually is, `Worker<H>`, a shell
//!   over a [`Handle`] (the delivery pipeline, the bulk request handler).
//!
//! It knows nothing of deliveries or bulk jobs: messages are bytes with a type.

pub mod consumer;
pub mod link;
pub mod publisher;
pub mod topology;
pub mod worker;

use std::collections::BTreeMap;
use std::time::Duration;

pub use consumer::{Disposition, Incoming, QueueConsumer};
pub use link::{AmqpLink, BrokerState, LinkStatus};
pub use publisher::{Publish, PublishError, Publisher};
pub use topology::{Topology, WorkQueue};
pub use worker::{Handle, Worker};

/// A message to publish: routing, type and JSON body. Headers carry tracing ids.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Exchange to publish to (the work exchange, or the retry exchange).
    pub exchange: String,
    pub routing_key: String,
    /// Extra routing keys (AMQP `CC`): a retried message keeps its destination here,
    /// so that when its TTL ends it dead-letters back to where it came from.
    pub cc: Vec<String>,
    /// The `type` property, e.g. `delivery.v1`.
    pub kind: String,
    pub body: Vec<u8>,
    pub headers: BTreeMap<String, String>,
    /// Message id, for the broker's and the reader's benefit.
    pub message_id: Option<String>,
}

/// Options the consumer takes from configuration.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    pub queue: String,
    /// The routing key that leads to `queue`; a retried message is sent home with it
    /// (a message back from a retry queue reports the retry key, not this one).
    pub routing_key: String,
    pub prefetch: u16,
    /// How long in-flight messages may take to finish on shutdown.
    pub grace: Duration,
}

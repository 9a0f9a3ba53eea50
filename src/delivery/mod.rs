//! Deliveries: claim → render → send → record, the retry policy, the outbox relay
//! (docs/ARCHITECTURE.md, "The way a resend travels").
//!
//! - [`message`]: `delivery.v1` on the wire, and the messages the relay publishes;
//! - [`pipeline`]: [`Pipeline::handle`], the whole life of one broker message as a
//!   plain async function;
//! - [`retry`]: what an attempt's result means ([`retry::decide`]), as pure functions;
//! - [`worker`]: [`DeliveryWorker`], the generic `queue::Worker` shell over the pipeline;
//! - [`relay`]: [`OutboxRelay`], which publishes committed deliveries;
//! - [`zitadel`]: the attempt of a ZITADEL notification (its own render, same sends).
//! - [`sweeper`]: [`Sweeper`], which hands back to the outbox the deliveries whose
//!   message was lost or whose worker died.
//!
//! Every decision is recorded in PostgreSQL before the message is acknowledged.

pub mod message;
pub mod pipeline;
pub mod relay;
pub mod retry;
mod send;
pub mod sweeper;
pub mod worker;
pub mod zitadel;

pub use message::{outgoing, outgoing_many, traceparent, DeliveryMessage, IDS_PER_MESSAGE, MESSAGE_TYPE};
pub use pipeline::{Batches, Pipeline};
pub use relay::OutboxRelay;
pub use retry::RetryPolicy;
pub use sweeper::{SweepTerms, Sweeper};
pub use worker::DeliveryWorker;

//! `QueueConsumer`: consumes one queue and hands each message to a `Recipient`.
//!
//! The recipient answers with a [`Disposition`]; the consumer carries it out and
//! acks only afterwards (the outcome is recorded before the ack). The broker's
//! prefetch bounds the work in flight. When the link drops, the consumer forgets
//! its channel; when it comes back, it consumes again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection};

use super::link::{Ask, LinkHandle, LinkStatus, Subscribe};
use super::publisher::{Publish, Publisher};
use super::topology::KEY_DEAD;
use super::{ConsumerOptions, Outgoing, Topology};

/// One message, as the handler sees it: no lapin types.
#[derive(Debug, Message)]
#[rtype(result = "Disposition")]
pub struct Incoming {
    /// The `type` property.
    pub kind: Option<String>,
    pub body: Vec<u8>,
    pub headers: BTreeMap<String, String>,
    /// Where it was routed (`delivery.email` …); a retry goes back there.
    pub routing_key: String,
    pub redelivered: bool,
}

/// What to do with a message once handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Done (or nothing to do): acknowledge.
    Ack,
    /// Try again after `delay` (one of the declared retry delays) with `body`.
    Retry { delay: Duration, body: Vec<u8> },
    /// Park it in the dead queue with the reason, then acknowledge.
    Dead { reason: String },
    /// Could not even be looked at now (shutting down): back to the queue.
    Requeue,
    /// A message that carried several items: each item's own disposition, with the
    /// body of a message for that item alone (what a `Dead` item parks). Acked once
    /// every item's retry or dead letter is published; any `Requeue` requeues all.
    Each(Vec<(Vec<u8>, Disposition)>),
}

/// Request: stop taking messages and wait (up to the grace period) for the ones
/// in flight. Answers with how many were still unfinished.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Drain;

pub struct QueueConsumer {
    link: LinkHandle,
    topology: Topology,
    options: ConsumerOptions,
    handler: Recipient<Incoming>,
    publisher: Addr<Publisher>,
    /// The channel and consumer tag while consuming.
    consuming: Option<(Channel, String)>,
    stream: Option<SpawnHandle>,
    in_flight: Arc<AtomicUsize>,
    draining: bool,
}

impl QueueConsumer {
    /// Starts the consumer on an Arbiter of its own, and its handler with it:
    /// `handler` is called with that Arbiter and starts the actor that will handle
    /// the messages there, so every queue's work runs on its own thread.
    pub fn start(
        link: LinkHandle,
        topology: Topology,
        options: ConsumerOptions,
        handler: impl FnOnce(&ArbiterHandle) -> Recipient<Incoming>,
        publisher: Addr<Publisher>,
    ) -> Addr<QueueConsumer> {
        // A current-thread runtime per consumer (docs/ARCHITECTURE.md, "Actors"): a
        // consumer loop there acks faster than on a shared multi-thread runtime, and
        // the work of one queue never queues behind another's on a single thread.
        let arbiter = Arbiter::new();
        let handler = handler(&arbiter.handle());
        Supervisor::start_in_arbiter(&arbiter.handle(), move |_| QueueConsumer {
            link,
            topology,
            options,
            handler,
            publisher,
            consuming: None,
            stream: None,
            in_flight: Arc::new(AtomicUsize::new(0)),
            draining: false,
        })
    }

    fn arm(&mut self, conn: Arc<Connection>, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        let queue = self.options.queue.clone();
        let prefetch = self.options.prefetch;
        let fut = async move {
            let ch = conn.create_channel().await?;
            ch.basic_qos(prefetch, BasicQosOptions::default()).await?;
            let tag = format!("herald-{}-{}", queue, std::process::id());
            let consumer = ch
                .basic_consume(
                    queue.as_str().into(),
                    tag.as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            Ok::<_, lapin::Error>((ch, tag, consumer))
        };
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok((ch, tag, consumer)) => {
                tracing::info!(queue = %act.options.queue, prefetch = act.options.prefetch, "consuming");
                act.consuming = Some((ch, tag));
                act.stream = Some(ctx.add_stream(consumer));
            }
            Err(e) => {
                tracing::warn!(queue = %act.options.queue, error = %e, "cannot consume; the link will retry");
            }
        }));
    }

    fn disarm(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.stream.take() {
            ctx.cancel_future(h);
        }
        // Close the old channel: messages it holds unacked go back to the queue
        // at once instead of waiting for the connection to end.
        if let Some((ch, _)) = self.consuming.take() {
            actix::spawn(async move {
                let _ = ch.close(200, "consumer re-armed".into()).await;
            });
        }
    }
}

impl Actor for QueueConsumer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.link.addr.do_send(Subscribe(ctx.address().recipient()));
    }
}

impl Supervised for QueueConsumer {
    fn restarting(&mut self, ctx: &mut Self::Context) {
        self.disarm(ctx);
    }
}

impl Handler<LinkStatus> for QueueConsumer {
    type Result = ();

    fn handle(&mut self, status: LinkStatus, ctx: &mut Self::Context) {
        self.disarm(ctx);
        if let LinkStatus::Up(conn) = status {
            self.arm(conn, ctx);
        }
    }
}

fn header_map(table: &Option<FieldTable>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(t) = table {
        for (k, v) in t {
            let s = match v {
                AMQPValue::LongString(s) => s.to_string(),
                AMQPValue::ShortString(s) => s.as_str().to_string(),
                AMQPValue::LongLongInt(n) => n.to_string(),
                AMQPValue::LongInt(n) => n.to_string(),
                _ => continue,
            };
            out.insert(k.as_str().to_string(), s);
        }
    }
    out
}

impl StreamHandler<Result<Delivery, lapin::Error>> for QueueConsumer {
    fn handle(&mut self, item: Result<Delivery, lapin::Error>, _ctx: &mut Self::Context) {
        let delivery = match item {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(queue = %self.options.queue, error = %e, "consumer error");
                return;
            }
        };
        let incoming = Incoming {
            kind: delivery.properties.kind().as_ref().map(|k| k.as_str().to_string()),
            body: delivery.data.clone(),
            headers: header_map(delivery.properties.headers()),
            routing_key: delivery.routing_key.as_str().to_string(),
            redelivered: delivery.redelivered,
        };
        let home_key = self.options.routing_key.clone();
        let handler = self.handler.clone();
        let publisher = self.publisher.clone();
        let topology = self.topology.clone();
        let in_flight = self.in_flight.clone();
        in_flight.fetch_add(1, Ordering::SeqCst);
        // Spawned, not awaited: up to `prefetch` messages are handled at once.
        actix::spawn(async move {
            let kind = incoming.kind.clone().unwrap_or_default();
            let headers = incoming.headers.clone();
            let disposition = handler.send(incoming).await.unwrap_or(Disposition::Requeue);
            let acker = &delivery.acker;
            let mut out = Vec::new();
            let parking = Parking { kind: &kind, headers: &headers, home_key: &home_key, topology: &topology };
            let settled = if !parking.collect(disposition, &delivery.data, &mut out) {
                acker.nack(BasicNackOptions { requeue: true, ..Default::default() }).await.map(|_| ())
            } else if out.is_empty() {
                acker.ack(BasicAckOptions::default()).await.map(|_| ())
            } else {
                forward(&publisher, acker, out).await
            };
            if let Err(e) = settled {
                // The channel is gone; the broker redelivers what was not acked.
                tracing::warn!(error = %e, "could not settle a message; it will be redelivered");
            }
            in_flight.fetch_sub(1, Ordering::SeqCst);
        });
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        // The broker cancelled the consumer (queue deleted, channel closed). If the
        // link is still up, consume again shortly; if not, the link will tell us.
        self.stream = None;
        self.consuming = None;
        if !self.draining {
            tracing::warn!(queue = %self.options.queue, "consumer stream ended");
            ctx.run_later(Duration::from_secs(1), |act, ctx| {
                if act.consuming.is_none() && act.link.is_up() {
                    act.link.addr.do_send(Ask(ctx.address().recipient()));
                }
            });
        }
    }
}

/// Where a handled message's retries and dead letters go.
struct Parking<'a> {
    kind: &'a str,
    headers: &'a BTreeMap<String, String>,
    home_key: &'a str,
    topology: &'a Topology,
}

impl Parking<'_> {
    /// Adds what `disposition` publishes to `out`; `false` when the original must
    /// go back to the queue instead.
    fn collect(&self, disposition: Disposition, original: &[u8], out: &mut Vec<Outgoing>) -> bool {
        match disposition {
            Disposition::Ack => true,
            Disposition::Requeue => false,
            Disposition::Retry { delay, body } => {
                out.push(Outgoing {
                    exchange: self.topology.retry_exchange(),
                    routing_key: Topology::retry_key(delay),
                    cc: vec![self.home_key.to_string()],
                    kind: self.kind.to_string(),
                    body,
                    headers: self.headers.clone(),
                    message_id: None,
                });
                true
            }
            Disposition::Dead { reason } => {
                let mut headers = self.headers.clone();
                headers.insert("x-herald-reason".into(), reason);
                headers.insert("x-herald-from".into(), self.home_key.to_string());
                out.push(Outgoing {
                    exchange: self.topology.exchange(),
                    routing_key: KEY_DEAD.into(),
                    cc: vec![],
                    kind: self.kind.to_string(),
                    body: original.to_vec(),
                    headers,
                    message_id: None,
                });
                true
            }
            Disposition::Each(items) => items.into_iter().all(|(body, d)| self.collect(d, &body, out)),
        }
    }
}

/// Publishes `messages` (retries and dead letters), then acks the original; if a
/// publish fails the original goes back to the queue, so nothing is lost.
async fn forward(
    publisher: &Addr<Publisher>,
    acker: &lapin::Acker,
    messages: Vec<Outgoing>,
) -> Result<(), lapin::Error> {
    let published = publisher.send(Publish(messages)).await;
    match published {
        Ok(results) if results.iter().all(Result::is_ok) => acker.ack(BasicAckOptions::default()).await.map(|_| ()),
        other => {
            let error = match other {
                Ok(results) => results.into_iter().find_map(Result::err).map(|e| e.to_string()),
                Err(e) => Some(e.to_string()),
            };
            tracing::warn!(?error, "could not park a message; requeueing it");
            acker.nack(BasicNackOptions { requeue: true, ..Default::default() }).await.map(|_| ())
        }
    }
}

impl Handler<Drain> for QueueConsumer {
    type Result = ResponseFuture<usize>;

    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) -> Self::Result {
        self.draining = true;
        let consuming = self.consuming.take();
        if let Some(h) = self.stream.take() {
            ctx.cancel_future(h);
        }
        let in_flight = self.in_flight.clone();
        let grace = self.options.grace;
        Box::pin(async move {
            if let Some((ch, tag)) = consuming {
                let _ = ch.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await;
            }
            let deadline = Instant::now() + grace;
            while in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            in_flight.load(Ordering::SeqCst)
        })
    }
}

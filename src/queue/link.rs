//! `AmqpLink`: owns the one RabbitMQ connection of the process.
//!
//! Connects in `started()`; on failure, or when the connection reports an error,
//! it stops itself and its `Supervisor` restarts it, which waits an exponential
//! backoff and connects again, declaring the topology each time. Subscribers
//! (publisher, consumers) get `LinkStatus::Up` with the new connection and
//! `LinkStatus::Down` when it is lost, and re-arm themselves.
//!
//! With several nodes (`amqp.urls`, a RabbitMQ cluster) each attempt tries them in
//! turn, starting after the node last used (the one just lost is the likeliest to
//! be down), so herald moves to a node that is left (docs/ARCHITECTURE.md,
//! "Scaling out").

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use lapin::{Connection, ConnectionProperties, Event};

use super::Topology;

/// Tells subscribers whether the broker can be used.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub enum LinkStatus {
    Up(Arc<Connection>),
    Down,
}

/// Request: tell this recipient about every change of the link, starting now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<LinkStatus>);

/// Request: tell this recipient the link's status now, once (no subscription).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ask(pub Recipient<LinkStatus>);

/// Request: close the connection and stop reconnecting (shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close;

pub struct AmqpLink {
    urls: Vec<String>,
    /// The node of the last connection (index in `urls`).
    last: usize,
    topology: Topology,
    subscribers: Vec<Recipient<LinkStatus>>,
    conn: Option<Arc<Connection>>,
    /// Consecutive failed attempts; sets the backoff before the next one.
    failures: u32,
    /// Read by `/readyz` and the outbox relay without a round trip to the actor.
    state: Arc<AtomicU8>,
    closing: bool,
}

/// What the broker lets herald do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerState {
    /// Connected and accepting publishes.
    Up,
    /// Connected, but the broker blocks publishing (a memory or disk alarm): a
    /// publish would wait until the alarm clears, so the outbox relay waits instead.
    Blocked,
    Down,
}

impl BrokerState {
    /// The word `/readyz` answers (docs/API.md §7).
    pub fn as_str(self) -> &'static str {
        match self {
            BrokerState::Up => "ok",
            BrokerState::Blocked => "blocked",
            BrokerState::Down => "down",
        }
    }

    fn from_u8(n: u8) -> Self {
        match n {
            1 => BrokerState::Up,
            2 => BrokerState::Blocked,
            _ => BrokerState::Down,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            BrokerState::Down => 0,
            BrokerState::Up => 1,
            BrokerState::Blocked => 2,
        }
    }
}

/// A handle on the link: its address and whether it is up.
#[derive(Clone)]
pub struct LinkHandle {
    pub addr: Addr<AmqpLink>,
    state: Arc<AtomicU8>,
}

impl std::fmt::Debug for LinkHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkHandle").field("state", &self.state()).finish()
    }
}

impl LinkHandle {
    /// Connected (publishing may still be blocked: see [`LinkHandle::state`]).
    pub fn is_up(&self) -> bool {
        self.state() != BrokerState::Down
    }

    pub fn state(&self) -> BrokerState {
        BrokerState::from_u8(self.state.load(Ordering::Relaxed))
    }
}

impl AmqpLink {
    /// Starts the link under a supervisor; it connects in the background, so this
    /// returns at once even when the broker is unreachable.
    pub fn start(urls: Vec<String>, topology: Topology) -> LinkHandle {
        assert!(!urls.is_empty(), "at least one broker URL");
        let state = Arc::new(AtomicU8::new(BrokerState::Down.to_u8()));
        let flag = state.clone();
        let last = urls.len() - 1;
        let addr = Supervisor::start(move |_| AmqpLink {
            urls,
            last,
            topology,
            subscribers: Vec::new(),
            conn: None,
            failures: 0,
            state: flag,
            closing: false,
        });
        LinkHandle { addr, state }
    }

    /// 0 for the first try, then 0.5s, 1s, 2s … capped at 30s.
    fn backoff(&self) -> Duration {
        if self.failures == 0 {
            return Duration::ZERO;
        }
        let ms = 500u64.saturating_mul(1 << self.failures.min(6).saturating_sub(1));
        Duration::from_millis(ms.min(30_000))
    }

    fn set(&self, state: BrokerState) {
        self.state.store(state.to_u8(), Ordering::Relaxed);
    }

    fn broadcast(&mut self, status: LinkStatus) {
        self.subscribers.retain(|s| s.connected());
        for s in &self.subscribers {
            s.do_send(status.clone());
        }
    }
}

/// The order in which to try `n` nodes when `last` was used last: each once,
/// starting with the next one (with one node, that node).
pub fn try_order(n: usize, last: usize) -> impl Iterator<Item = usize> {
    (1..=n).map(move |k| (last + k) % n)
}

/// A node that neither accepts nor refuses (half gone, partitioned) is given up on
/// after this, for the next one.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to the first node of `urls` (in [`try_order`] after `last`) that
/// accepts and declares the topology there; the node's index and the connection,
/// or the last node's error.
async fn connect(urls: Vec<String>, last: usize, topology: Topology) -> Result<(usize, Connection), String> {
    let mut error = None;
    for i in try_order(urls.len(), last) {
        match tokio::time::timeout(CONNECT_TIMEOUT, connect_one(&urls[i], &topology)).await {
            Ok(Ok(conn)) => return Ok((i, conn)),
            Ok(Err(e)) => {
                tracing::warn!(node = i, error = %e, "broker node unreachable; trying the next");
                error = Some(e.to_string());
            }
            Err(_) => {
                tracing::warn!(node = i, "broker node did not answer in {CONNECT_TIMEOUT:?}; trying the next");
                error = Some(format!("no answer in {CONNECT_TIMEOUT:?}"));
            }
        }
    }
    Err(error.expect("at least one node"))
}

async fn connect_one(url: &str, topology: &Topology) -> Result<Connection, lapin::Error> {
    // Named after the prefix, so an operator (or a test) can tell the processes apart.
    let props = ConnectionProperties::default().with_connection_name(format!("herald {}", topology.prefix).into());
    let conn = Connection::connect(url, props).await?;
    if let Err(e) = topology.declare_all(&conn).await {
        let _ = conn.close(200, "topology not declared".into()).await;
        return Err(e);
    }
    Ok(conn)
}

impl Actor for AmqpLink {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let delay = self.backoff();
        ctx.run_later(delay, |act, ctx| {
            let fut = connect(act.urls.clone(), act.last, act.topology.clone());
            ctx.wait(fut.into_actor(act).map(|res, act, ctx| match res {
                Ok((node, conn)) => {
                    tracing::info!(attempts = act.failures + 1, node, "broker connected, topology declared");
                    act.last = node;
                    act.failures = 0;
                    ctx.add_stream(conn.events_listener());
                    let conn = Arc::new(conn);
                    act.conn = Some(conn.clone());
                    act.set(BrokerState::Up);
                    act.broadcast(LinkStatus::Up(conn));
                }
                Err(e) => {
                    act.failures += 1;
                    tracing::warn!(error = %e, retry_in = ?act.backoff(), "broker unreachable");
                    ctx.stop();
                }
            }));
        });
    }
}

impl Supervised for AmqpLink {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.set(BrokerState::Down);
        if self.conn.take().is_some() {
            self.broadcast(LinkStatus::Down);
        }
    }
}

impl StreamHandler<Event> for AmqpLink {
    fn handle(&mut self, event: Event, ctx: &mut Self::Context) {
        match event {
            // A channel's error (a consumer on a missing queue, say) is reported here
            // too; only a connection that is really gone needs a new one.
            Event::Error(e) if !self.closing && !self.conn.as_ref().is_some_and(|c| c.status().connected()) => {
                tracing::warn!(error = %e, "broker connection lost; reconnecting");
                self.failures = 1;
                ctx.stop();
            }
            Event::Error(e) => tracing::warn!(error = %e, "broker reported a channel error"),
            // A memory or disk alarm: publishes would hang until it clears. Tracked
            // so the relay leaves the outbox alone and `/readyz` says so.
            Event::ConnectionBlocked(reason) => {
                tracing::warn!(%reason, "broker blocked the connection");
                if self.conn.is_some() {
                    self.set(BrokerState::Blocked);
                }
            }
            Event::ConnectionUnblocked => {
                tracing::info!("broker unblocked the connection");
                if self.conn.is_some() {
                    self.set(BrokerState::Up);
                }
            }
            _ => {}
        }
    }

    // The listener ends when the connection is gone; the error event (if any) has
    // already been handled. Do not stop the actor for a finished stream.
    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

impl Handler<Subscribe> for AmqpLink {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, _ctx: &mut Self::Context) {
        if let Some(conn) = &self.conn {
            msg.0.do_send(LinkStatus::Up(conn.clone()));
        }
        self.subscribers.push(msg.0);
    }
}

impl Handler<Ask> for AmqpLink {
    type Result = ();

    fn handle(&mut self, msg: Ask, _ctx: &mut Self::Context) {
        if let Some(conn) = &self.conn {
            msg.0.do_send(LinkStatus::Up(conn.clone()));
        }
    }
}

impl Handler<Close> for AmqpLink {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Close, _ctx: &mut Self::Context) -> Self::Result {
        self.closing = true;
        self.set(BrokerState::Down);
        let conn = self.conn.take();
        self.broadcast(LinkStatus::Down);
        Box::pin(
            async move {
                if let Some(conn) = conn {
                    let _ = conn.close(200, "herald shutting down".into()).await;
                }
            }
            .into_actor(self)
            .map(|_, _, ctx| ctx.terminate()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::try_order;

    #[test]
    fn nodes_are_tried_in_turn_starting_after_the_last_used() {
        assert_eq!(try_order(3, 2).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(try_order(3, 0).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(try_order(1, 0).collect::<Vec<_>>(), [0]);
    }
}

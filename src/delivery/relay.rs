//! `OutboxRelay`: publishes deliveries that are committed but not yet on the
//! broker. A resend's deliveries are handed over right after their commit, written
//! held by this process (`Handoff`: no read of the outbox, and no write when the
//! broker confirms them: the worker's claim marks them published, and the sweeper
//! hands them back if this process dies or their hold runs out). Other writers kick
//! the relay, and a one-second tick sweeps the outbox (after a broker outage or a
//! crash). `FOR UPDATE SKIP LOCKED` and a committed claim (`publishing_until`) let
//! one relay per process share the outbox; a swept row is marked published only
//! after the broker confirmed its message, or when a worker claimed it.
//!
//! No transaction stays open while the broker is waited for (docs/ARCHITECTURE.md,
//! "Guarantees": a blocked broker): the claim commits first, the publish waits at
//! most `CONFIRM_TIMEOUT`, and what was not confirmed is handed back (or its claim
//! runs out if this process dies). A resend that supersedes a row being published
//! never waits on it. While the broker is blocked or down the relay does not sweep.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use sqlx::PgPool;

use super::message::{outgoing, outgoing_many, IDS_PER_MESSAGE};
use crate::domain::{Channel, Lane};
use crate::queue::link::LinkHandle;
use crate::queue::publisher::CONFIRM_TIMEOUT;
use crate::queue::{BrokerState, Publish, Publisher};
use crate::store;
use crate::store::outbox::Unpublished;

/// Rows per claim: big enough to amortise the confirm round trip.
const BATCH: i64 = 500;
/// How long a relay's claim of outbox rows holds: past the confirm timeout, so a
/// live relay always marks or hands back its rows first.
const PUBLISH_LEASE: Duration = Duration::from_secs(CONFIRM_TIMEOUT.as_secs() * 3);
const TICK: Duration = Duration::from_secs(1);

/// Request: there may be something to publish now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Kick;

/// Request: publish these rows, committed held by this process
/// (`invite::Handoff`): no read of the outbox needed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Handoff(pub Vec<Unpublished>);

/// What the running publish loop is to do next.
#[derive(Default)]
struct Pending {
    handed: Vec<Unpublished>,
    /// Read the outbox too (a kick or the tick).
    sweep: bool,
}

pub struct OutboxRelay {
    pool: PgPool,
    /// No sweep while the broker is down or blocked: the rows wait, and the
    /// link's own log says why.
    link: LinkHandle,
    publisher: Addr<Publisher>,
    exchange: String,
    pending: Arc<Mutex<Pending>>,
    /// The publish loop runs; it takes what is pending before it ends.
    running: bool,
}

impl OutboxRelay {
    pub fn start(pool: PgPool, link: LinkHandle, publisher: Addr<Publisher>, exchange: String) -> Addr<OutboxRelay> {
        Supervisor::start(move |_| OutboxRelay {
            pool,
            link,
            publisher,
            exchange,
            pending: Arc::default(),
            running: false,
        })
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the publish loop unless it runs: it publishes what was handed over,
    /// then sweeps the outbox if asked, until nothing is pending.
    fn wake(&mut self, ctx: &mut Context<Self>) {
        if self.running || self.link.state() != BrokerState::Up {
            return;
        }
        self.running = true;
        let (pool, publisher, exchange) = (self.pool.clone(), self.publisher.clone(), self.exchange.clone());
        let pending = self.pending.clone();
        let work = async move {
            loop {
                let (handed, sweep) = {
                    let mut p = pending.lock().unwrap_or_else(|p| p.into_inner());
                    (std::mem::take(&mut p.handed), std::mem::take(&mut p.sweep))
                };
                if handed.is_empty() && !sweep {
                    break;
                }
                for rows in handed.chunks(BATCH as usize) {
                    if let Err(e) = publish(&pool, &publisher, &exchange, rows, Confirmed::Leave).await {
                        tracing::warn!(error = %e, "outbox relay: publish failed; rows stay queued for the next sweep");
                    }
                }
                // One batch of the outbox per turn: rows handed over meanwhile (new
                // resends) go next, not after a whole backlog (an outbox refilled by
                // a broker outage).
                if sweep {
                    match sweep_once(&pool, &publisher, &exchange).await {
                        Ok(n) if n as i64 == BATCH => pending.lock().unwrap_or_else(|p| p.into_inner()).sweep = true,
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "outbox relay: publish failed; rows stay queued for the next sweep")
                        }
                    }
                }
            }
        };
        // Handlers run on this actor's thread, so none adds to `pending` between
        // the loop's last look and `running` going false.
        ctx.spawn(work.into_actor(self).map(|_, act, _| act.running = false));
    }
}

/// One batch from the outbox: claim (committed), then [`publish`].
async fn sweep_once(pool: &PgPool, publisher: &Addr<Publisher>, exchange: &str) -> anyhow::Result<usize> {
    let rows = store::outbox::take_unpublished(pool, BATCH, PUBLISH_LEASE).await?;
    let n = rows.len();
    if n > 0 {
        publish(pool, publisher, exchange, &rows, Confirmed::Mark).await?;
    }
    Ok(n)
}

/// What a confirmed row needs written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Confirmed {
    /// Taken from the outbox: marked published, or a sweep would take it again.
    Mark,
    /// Handed over: nothing; its hold (`invite::Handoff`) keeps the sweeps away
    /// until a worker claims it.
    Leave,
}

/// Publishes rows claimed for this relay with confirms, outside any transaction;
/// marks what was confirmed if asked and hands back the rest.
async fn publish(
    pool: &PgPool,
    publisher: &Addr<Publisher>,
    exchange: &str,
    rows: &[Unpublished],
    confirmed_rows: Confirmed,
) -> anyhow::Result<()> {
    // Transactional deliveries one per message (each on its own, at once); bulk
    // ones up to IDS_PER_MESSAGE per message of their channel.
    let mut messages = Vec::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    let mut bulk: BTreeMap<Channel, Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        match r.lane {
            Lane::Bulk => bulk.entry(r.channel).or_default().push(i),
            Lane::Transactional => {
                let attempt = r.attempts as u32 + 1;
                messages.push(outgoing(exchange, r.id, r.channel, r.lane, attempt, r.request_id.as_deref()));
                members.push(vec![i]);
            }
        }
    }
    for (channel, indexes) in bulk {
        for chunk in indexes.chunks(IDS_PER_MESSAGE) {
            let ids: Vec<i64> = chunk.iter().map(|&i| rows[i].id).collect();
            messages.push(outgoing_many(exchange, &ids, channel, rows[chunk[0]].request_id.as_deref()));
            members.push(chunk.to_vec());
        }
    }
    let results = match publisher.send(Publish(messages)).await {
        Ok(results) => results,
        Err(e) => {
            let all: Vec<i64> = rows.iter().map(|r| r.id).collect();
            store::outbox::release(pool, &all).await?;
            anyhow::bail!("publisher unavailable: {e}");
        }
    };
    let failed_rows: std::collections::HashSet<usize> = unconfirmed(&members, &results).into_iter().collect();
    let (mut confirmed, mut unconfirmed) = (Vec::new(), Vec::new());
    for (i, r) in rows.iter().enumerate() {
        if failed_rows.contains(&i) {
            unconfirmed.push(r.id)
        } else {
            confirmed.push(r.id)
        }
    }
    if !confirmed.is_empty() && confirmed_rows == Confirmed::Mark {
        store::outbox::mark_published(pool, &confirmed).await?;
    }
    if !unconfirmed.is_empty() {
        store::outbox::release(pool, &unconfirmed).await?;
    }
    let failed = unconfirmed.len();
    tracing::debug!(published = rows.len() - failed, failed, "outbox relay swept");
    if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
        anyhow::bail!("{failed} of {} deliveries not confirmed: {e}", rows.len());
    }
    Ok(())
}

/// The rows whose message the broker did not confirm: `members[m]` lists the
/// rows message `m` carried, `results[m]` is its confirm.
fn unconfirmed<T, E>(members: &[Vec<usize>], results: &[Result<T, E>]) -> Vec<usize> {
    members.iter().zip(results).filter(|(_, r)| r.is_err()).flat_map(|(m, _)| m.iter().copied()).collect()
}

impl Actor for OutboxRelay {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(TICK, |act, ctx| act.handle(Kick, ctx));
        self.handle(Kick, ctx);
    }
}

impl Supervised for OutboxRelay {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.running = false;
    }
}

impl Handler<Kick> for OutboxRelay {
    type Result = ();

    fn handle(&mut self, _: Kick, ctx: &mut Self::Context) {
        if self.link.state() != BrokerState::Up {
            return;
        }
        self.pending().sweep = true;
        self.wake(ctx);
    }
}

impl Handler<Handoff> for OutboxRelay {
    type Result = ();

    fn handle(&mut self, Handoff(rows): Handoff, ctx: &mut Self::Context) {
        if rows.is_empty() {
            return;
        }
        if self.link.state() != BrokerState::Up {
            // Claimed for this relay, which cannot publish them now: hand them back
            // to the outbox, so the first sweep after the broker is back takes them.
            let pool = self.pool.clone();
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            ctx.spawn(
                async move {
                    if let Err(e) = store::outbox::release(&pool, &ids).await {
                        tracing::warn!(error = %e, "outbox relay: cannot hand rows back; they wait for their claim to end");
                    }
                }
                .into_actor(self),
            );
            return;
        }
        self.pending().handed.extend(rows);
        self.wake(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_of_an_unconfirmed_message_is_handed_back_and_only_those() {
        // Three messages: a transactional one (row 4), then bulk ones of rows 0–1 and 2–3.
        let members = vec![vec![4], vec![0, 1], vec![2, 3]];
        let results: Vec<Result<(), ()>> = vec![Ok(()), Ok(()), Err(())];
        assert_eq!(unconfirmed(&members, &results), vec![2, 3]);
        let results: Vec<Result<(), ()>> = vec![Err(()), Ok(()), Ok(())];
        assert_eq!(unconfirmed(&members, &results), vec![4]);
    }
}

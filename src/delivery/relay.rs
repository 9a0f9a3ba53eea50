//! `OutboxRelay`: publishes deliveries that are committed but not yet on the
//! broker. Kicked right after each commit (fast path) and on a one-second tick
//! (sweep after a broker outage or a crash). `FOR UPDATE SKIP LOCKED` and a
//! committed claim (`publishing_until`) let one relay per process share the
//! outbox; a row is marked published only after the broker confirmed its message.
//!
//! No transaction stays open while the broker is waited for (docs/ARCHITECTURE.md,
//! "Guarantees": a blocked broker): the claim commits first, the publish waits at
//! most `CONFIRM_TIMEOUT`, and what was not confirmed is handed back (or its claim
//! runs out if this process dies). A resend that supersedes a row being published
//! never waits on it. While the broker is blocked or down the relay does not sweep.

use std::collections::BTreeMap;
use std::time::Duration;

use actix::prelude::*;
use sqlx::PgPool;

use super::message::{outgoing, outgoing_many, IDS_PER_MESSAGE};
use crate::domain::{Channel, Lane};
use crate::queue::link::LinkHandle;
use crate::queue::publisher::CONFIRM_TIMEOUT;
use crate::queue::{BrokerState, Publish, Publisher};
use crate::store;

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

pub struct OutboxRelay {
    pool: PgPool,
    /// No sweep while the broker is down or blocked: the rows wait, and the
    /// link's own log says why.
    link: LinkHandle,
    publisher: Addr<Publisher>,
    exchange: String,
    running: bool,
    /// A kick arrived while a sweep ran: sweep again when it ends.
    again: bool,
}

impl OutboxRelay {
    pub fn start(pool: PgPool, link: LinkHandle, publisher: Addr<Publisher>, exchange: String) -> Addr<OutboxRelay> {
        Supervisor::start(move |_| OutboxRelay { pool, link, publisher, exchange, running: false, again: false })
    }

    fn sweep(&mut self, ctx: &mut Context<Self>) {
        if self.link.state() != BrokerState::Up {
            return;
        }
        if self.running {
            self.again = true;
            return;
        }
        self.running = true;
        let (pool, publisher, exchange) = (self.pool.clone(), self.publisher.clone(), self.exchange.clone());
        let work = async move {
            loop {
                match sweep_once(&pool, &publisher, &exchange).await {
                    Ok(n) if n as i64 == BATCH => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox relay: publish failed; rows stay queued for the next sweep");
                        break;
                    }
                }
            }
        };
        ctx.spawn(work.into_actor(self).map(|_, act, ctx| {
            act.running = false;
            if std::mem::take(&mut act.again) {
                act.sweep(ctx);
            }
        }));
    }
}

/// One batch: claim (committed), publish with confirms outside any transaction,
/// mark what was confirmed, hand back the rest.
async fn sweep_once(pool: &PgPool, publisher: &Addr<Publisher>, exchange: &str) -> anyhow::Result<usize> {
    let rows = store::outbox::take_unpublished(pool, BATCH, PUBLISH_LEASE).await?;
    if rows.is_empty() {
        return Ok(0);
    }
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
    if !confirmed.is_empty() {
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
    Ok(rows.len())
}

/// The rows whose message the broker did not confirm: `members[m]` lists the
/// rows message `m` carried, `results[m]` is its confirm.
fn unconfirmed<T, E>(members: &[Vec<usize>], results: &[Result<T, E>]) -> Vec<usize> {
    members.iter().zip(results).filter(|(_, r)| r.is_err()).flat_map(|(m, _)| m.iter().copied()).collect()
}

impl Actor for OutboxRelay {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(TICK, |act, ctx| act.sweep(ctx));
        self.sweep(ctx);
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
        self.sweep(ctx);
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

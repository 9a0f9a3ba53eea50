//! `OutboxRelay`: publishes deliveries that are committed but not yet on the
//! broker. Kicked right after each commit (fast path) and on a one-second tick
//! (sweep after a broker outage or a crash). `FOR UPDATE SKIP LOCKED` lets one
//! relay per process share the outbox; a row is marked published only after the
//! broker confirmed its message.

use std::collections::BTreeMap;
use std::time::Duration;

use actix::prelude::*;
use sqlx::PgPool;

use super::message::{outgoing, outgoing_many, IDS_PER_MESSAGE};
use crate::domain::{Channel, Lane};
use crate::queue::link::LinkHandle;
use crate::queue::{Publish, Publisher};
use crate::store;

/// Rows per transaction: big enough to amortise the confirm round trip, small
/// enough to keep row locks short.
const BATCH: i64 = 500;
const TICK: Duration = Duration::from_secs(1);

/// Request: there may be something to publish now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Kick;

pub struct OutboxRelay {
    pool: PgPool,
    /// No sweep while the broker is down: the rows wait, and the link's own log
    /// says why.
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
        if !self.link.is_up() {
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

/// One batch: take (marked published), publish with confirms, hand back what
/// was not confirmed, commit.
async fn sweep_once(pool: &PgPool, publisher: &Addr<Publisher>, exchange: &str) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let rows = store::outbox::take_unpublished(&mut tx, BATCH).await?;
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
    let results = publisher.send(Publish(messages)).await?;
    let unconfirmed: Vec<i64> = unconfirmed(&members, &results).into_iter().map(|i| rows[i].id).collect();
    if !unconfirmed.is_empty() {
        store::outbox::unmark_published(&mut tx, &unconfirmed).await?;
    }
    tx.commit().await?;
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

//! `Sweeper`: makes "every delivery ends in a final status" hold when a message is
//! lost (docs/ARCHITECTURE.md, "Guarantees and how they are kept"). Every second
//! (less often when a sweep is slow: [`REST_FACTOR`]) it hands back to the outbox
//! the deliveries that would otherwise wait forever
//! (`store::outbox::hand_back_stranded`): `sending` under a dead process or a lease
//! that ran out, `retrying` or published `queued` rows whose message the broker no
//! longer holds (purged, or dead-lettered by a queue's `x-delivery-limit`), then
//! kicks the relay, which publishes them again. `SKIP LOCKED`: every herald
//! process runs one, and they never take the same row.

use std::time::{Duration, Instant};

use actix::prelude::*;
use sqlx::PgPool;

use super::relay::{Kick, OutboxRelay};
use crate::store;

const TICK: Duration = Duration::from_secs(1);
/// A sweep reads every open delivery; with a large open set (a bulk job's backlog)
/// on a long history it can take a good part of a second. The next one starts no
/// sooner than this many times its duration after it started, so sweeping takes at
/// most a tenth of a database backend's time (docs/ARCHITECTURE.md, "The sweeper").
const REST_FACTOR: u32 = 10;
/// Rows handed back per statement; the sweeper goes on while it finds this many.
const BATCH: i64 = 500;

/// How the sweeper tells a lost delivery from one still on its way.
#[derive(Debug, Clone, Copy)]
pub struct SweepTerms {
    /// `delivery.process_dead_after`: past this silence a claim's process is dead.
    pub dead_after: Duration,
    /// `delivery.republish_after`: a message not consumed this long is lost.
    pub republish_after: Duration,
    /// `delivery.max_attempts`: a delivery claimed this often without a record ends `dead`.
    pub max_attempts: u32,
}

pub struct Sweeper {
    pool: PgPool,
    relay: Addr<OutboxRelay>,
    terms: SweepTerms,
    running: bool,
    /// No sweep starts before this ([`next_sweep`]).
    rest_until: Option<Instant>,
}

/// When the sweep after one that started at `started` and took `took` may start.
fn next_sweep(started: Instant, took: Duration) -> Instant {
    started + took * REST_FACTOR
}

impl Sweeper {
    pub fn start(pool: PgPool, relay: Addr<OutboxRelay>, terms: SweepTerms) -> Addr<Sweeper> {
        Supervisor::start(move |_| Sweeper { pool, relay, terms, running: false, rest_until: None })
    }

    fn sweep(&mut self, ctx: &mut Context<Self>) {
        let started = Instant::now();
        if self.running || self.rest_until.is_some_and(|t| started < t) {
            return;
        }
        self.running = true;
        let (pool, relay, terms) = (self.pool.clone(), self.relay.clone(), self.terms);
        let work = async move {
            loop {
                let max = i32::try_from(terms.max_attempts).unwrap_or(i32::MAX);
                match store::outbox::hand_back_stranded(&pool, terms.dead_after, terms.republish_after, max, BATCH)
                    .await
                {
                    Ok(ids) if ids.is_empty() => break,
                    Ok(ids) => {
                        tracing::warn!(n = ids.len(), first = ids[0], "deliveries stranded; publishing them again");
                        relay.do_send(Kick);
                        if (ids.len() as i64) < BATCH {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "sweeper: cannot look for stranded deliveries");
                        break;
                    }
                }
            }
        };
        ctx.spawn(work.into_actor(self).map(move |_, act, _| {
            act.running = false;
            act.rest_until = Some(next_sweep(started, started.elapsed()));
        }));
    }
}

impl Actor for Sweeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(TICK, |act, ctx| act.sweep(ctx));
    }
}

impl Supervised for Sweeper {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.running = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_rests_ten_times_its_duration_so_a_quick_one_runs_every_tick() {
        let t = Instant::now();
        assert!(next_sweep(t, Duration::from_millis(5)) <= t + TICK, "a quick sweep: the next tick sweeps");
        assert_eq!(next_sweep(t, Duration::from_millis(190)), t + Duration::from_millis(1_900));
        assert_eq!(next_sweep(t, Duration::from_secs(2)), t + Duration::from_secs(20));
    }
}

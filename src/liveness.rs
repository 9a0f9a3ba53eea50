//! This process's liveness in PostgreSQL (docs/ARCHITECTURE.md, "Guarantees and
//! how they are kept"): a row in `herald_processes` with a heartbeat, which
//!
//! - leases the snowflake node number of the process's [`IdGenerator`] (two live
//!   processes never share one; a lost lease is replaced before the next beat ends);
//! - names the holder of every delivery this process claimed, so another process
//!   takes a claim over as soon as this one is known dead (`kill -9`), not when its
//!   90 s lease runs out;
//! - extends the leases of the deliveries still in work here ([`Liveness::hold`]):
//!   an e-mail waiting for an SMTP connection, or an attempt whose record is being
//!   retried, never loses its lease to another worker while this process lives.
//!
//! The heartbeat runs on a thread of its own with its own connection: a busy
//! runtime or an exhausted pool must not make a live process look dead.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgConnection, PgPool};

use crate::domain::IdGenerator;
use crate::store::processes::{self, Beat};

/// Heartbeats per `dead_after`: a process is declared dead only after missing
/// this many in a row.
const BEATS_PER_DEAD_AFTER: u32 = 6;

/// What every part of the process shares: its id, and the deliveries in work here.
#[derive(Debug)]
struct Shared {
    process: AtomicI64,
    /// Set by a clean end before the row is marked ended, so a heartbeat that
    /// finds the row ended stops instead of registering the process again.
    ended: AtomicBool,
    dead_after: Duration,
    /// How far each beat pushes the lease of a delivery in work.
    lease: Duration,
    /// Delivery id → how many attempts of this process hold it (a duplicate
    /// message may hold it twice for a moment).
    in_flight: Mutex<HashMap<i64, usize>>,
}

/// A view of this process's liveness: cheap to clone, handed to the delivery
/// pipeline. It does not keep the heartbeat running; [`ProcessLease`] does.
#[derive(Debug, Clone)]
pub struct Liveness {
    shared: Arc<Shared>,
}

impl Liveness {
    /// The process's row id (what claims record as their holder); 0 for a view
    /// with no row (tests of single parts).
    pub fn process(&self) -> i64 {
        self.shared.process.load(Ordering::SeqCst)
    }

    /// Past this silence a process is dead.
    pub fn dead_after(&self) -> Duration {
        self.shared.dead_after
    }

    /// A view with no row behind it: its claims look dead to everybody else at
    /// once, so it suits only a process alone on its database.
    pub fn detached(lease: Duration) -> Self {
        Liveness { shared: Arc::new(Shared::new(0, Duration::from_secs(6), lease)) }
    }

    /// Marks `delivery` as in work here until the guard drops: every heartbeat
    /// extends its lease.
    pub fn hold(&self, delivery: i64) -> Held {
        *self.shared.lock().entry(delivery).or_insert(0) += 1;
        Held { shared: self.shared.clone(), delivery }
    }

    #[cfg(test)]
    fn held(&self) -> Vec<i64> {
        self.shared.held()
    }
}

impl Shared {
    fn new(process: i64, dead_after: Duration, lease: Duration) -> Self {
        Shared {
            process: AtomicI64::new(process),
            ended: AtomicBool::new(false),
            dead_after,
            lease,
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    fn held(&self) -> Vec<i64> {
        self.lock().keys().copied().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, usize>> {
        // A poisoned map only means a thread panicked between two plain map
        // operations; the counts are still usable.
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A delivery in work; see [`Liveness::hold`].
#[derive(Debug)]
pub struct Held {
    shared: Arc<Shared>,
    delivery: i64,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut map = self.shared.lock();
        if let Some(n) = map.get_mut(&self.delivery) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.delivery);
            }
        }
    }
}

/// The lease itself: while it lives, the heartbeat runs; when it drops, the
/// heartbeat thread marks the row ended (dead at once for everybody else) and stops.
#[derive(Debug)]
pub struct ProcessLease {
    pub liveness: Liveness,
    pub ids: Arc<IdGenerator>,
    /// The heartbeat thread holds a `Weak` of this: dropping the lease stops it.
    _alive: Arc<()>,
}

impl ProcessLease {
    /// A clean end: the row is marked ended now (what this process held is taken
    /// over at once), then the heartbeat stops.
    pub async fn end(self, pool: &PgPool) {
        self.liveness.shared.ended.store(true, Ordering::SeqCst);
        if let Ok(mut conn) = pool.acquire().await {
            if let Err(e) = processes::end(&mut conn, self.liveness.process()).await {
                tracing::warn!(error = %e, "cannot mark this process ended; the others will see it silent");
            }
            // Closed here rather than handed back: the process is about to exit, and
            // a connection returned to the pool by a task the runtime drops on its
            // way out would be dropped with no runtime left.
            let _ = conn.close().await;
        }
    }
}

/// Registers this process, leases it a node number and starts the heartbeat.
///
/// # Errors
/// The database fails, or every node number is held by a live process.
pub async fn lease(pool: &PgPool, url: &str, dead_after: Duration, lease: Duration) -> anyhow::Result<ProcessLease> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string();
    let registered = processes::register_on(&mut *pool.acquire().await?, dead_after, &host, std::process::id()).await?;
    let ids = Arc::new(IdGenerator::new(registered.node));
    let shared = Arc::new(Shared::new(registered.id, dead_after, lease));
    let alive = Arc::new(());
    let options = PgConnectOptions::from_str(url)?.application_name("herald heartbeat");
    let heart = Heart {
        options,
        shared: Arc::downgrade(&shared),
        ids: Arc::downgrade(&ids),
        alive: Arc::downgrade(&alive),
        host,
    };
    std::thread::Builder::new().name("herald-heartbeat".into()).spawn(move || heart.run())?;
    tracing::info!(process = registered.id, node = registered.node, "process registered, ID node leased");
    Ok(ProcessLease { liveness: Liveness { shared }, ids, _alive: alive })
}

/// The heartbeat thread's state.
struct Heart {
    options: PgConnectOptions,
    shared: Weak<Shared>,
    ids: Weak<IdGenerator>,
    alive: Weak<()>,
    host: String,
}

impl Heart {
    fn run(self) {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "heartbeat: no runtime; this process will look dead to the others");
                return;
            }
        };
        rt.block_on(self.beat_until_dropped());
    }

    async fn beat_until_dropped(self) {
        let mut conn: Option<PgConnection> = None;
        loop {
            let Some(shared) = self.shared.upgrade() else { return };
            let every = (shared.dead_after / BEATS_PER_DEAD_AFTER).max(Duration::from_millis(100));
            if self.alive.upgrade().is_none() {
                if let Some(c) = conn.as_mut() {
                    let process = shared.process.load(Ordering::SeqCst);
                    let _ = tokio::time::timeout(every, processes::end(c, process)).await;
                }
                return;
            }
            match tokio::time::timeout(every * 2, self.once(&shared, &mut conn, every)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "heartbeat failed; trying again");
                    conn = None;
                }
                Err(_) => {
                    tracing::warn!("heartbeat timed out; trying again");
                    conn = None;
                }
            }
            drop(shared);
            tokio::time::sleep(every).await;
        }
    }

    async fn once(&self, shared: &Shared, conn: &mut Option<PgConnection>, every: Duration) -> anyhow::Result<()> {
        if conn.is_none() {
            *conn = Some(self.options.connect().await?);
        }
        let Some(c) = conn.as_mut() else { return Ok(()) };
        let process = shared.process.load(Ordering::SeqCst);
        // A silence of two beats restarts the evidence that the database was
        // reachable (store::processes, "alive_since").
        match processes::beat(c, process, every * 2, shared.dead_after).await? {
            Beat::Kept => {}
            Beat::Lost => {
                // The flag is set before the row is ended, so a beat that found
                // the row ended by a clean end always sees it here.
                if shared.ended.load(Ordering::SeqCst) {
                    return Ok(());
                }
                let Some(ids) = self.ids.upgrade() else { return Ok(()) };
                let r = processes::register_on(c, shared.dead_after, &self.host, std::process::id()).await?;
                ids.set_node(r.node);
                shared.process.store(r.id, Ordering::SeqCst);
                tracing::warn!(process = r.id, node = r.node, "process lease lost while silent; registered again");
            }
        }
        let ids = shared.held();
        if !ids.is_empty() {
            processes::extend_leases(c, shared.process.load(Ordering::SeqCst), &ids, shared.lease).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_is_held_until_its_last_guard_drops() {
        let l = Liveness::detached(Duration::from_secs(90));
        let a = l.hold(7);
        let b = l.hold(7);
        let c = l.hold(8);
        let mut held = l.held();
        held.sort();
        assert_eq!(held, vec![7, 8]);
        drop(a);
        drop(c);
        assert_eq!(l.held(), vec![7]);
        drop(b);
        assert!(l.held().is_empty());
    }
}

//! `herald_processes`: one row per running herald process, kept alive by its
//! heartbeat (docs/ARCHITECTURE.md, "Guarantees and how they are kept": a claim
//! of a dead process is taken over at once). The row leases the process's
//! snowflake node number, so two live processes never mint ids with one.
//!
//! A process is dead when its row is gone, ended, or silent for `dead_after`
//! while the database was reachable: [`DEAD`] is that rule in SQL. The
//! reachability evidence is the oldest `alive_since` among the processes beating
//! now; after an outage of the database every process's `alive_since` restarts,
//! so none is declared dead for the outage itself.

use std::time::Duration;

use sqlx::PgConnection;

/// Node numbers handed out by the lease; 1023 is kept for commands that mint no
/// ids (`domain::id::READ_ONLY_NODE`).
const LEASED_NODES: i32 = 1023;
/// Serialises node leases (register and heartbeat): a random, fixed key.
const NODE_LOCK: i64 = 0x6865_7261_6c64_6e64;
/// Rows of processes dead this long are removed when a process registers.
const FORGET_AFTER_SECS: f64 = 86_400.0;

/// The rule "the process `p` is dead", for a statement that joins
/// `herald_processes p` (possibly NULL) and binds `dead_after` in seconds as
/// `{dead}`. Written once here so claims and the sweeper agree.
///
/// When no process has beaten within `dead_after` (the first moments after an
/// outage of the database, before any heartbeat got through), there is no evidence
/// that the database was reachable at all, so nobody is dead: without the
/// `COALESCE`, the sweeper of a process back from an outage took its own claims for
/// a dead process's and sent them again (found by the PostgreSQL-stop fault test).
pub fn dead_rule(dead: &str) -> String {
    format!(
        "(p.id IS NULL OR p.ended_at IS NOT NULL OR
          now() - GREATEST(p.heartbeat_at,
                           COALESCE((SELECT min(alive_since) FROM herald_processes
                                     WHERE ended_at IS NULL AND heartbeat_at > now() - make_interval(secs => {dead})),
                                    now()))
          > make_interval(secs => {dead}))"
    )
}

/// This process's row: its id (claims point to it) and its node number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    pub id: i64,
    pub node: u16,
}

/// Registers a process and leases it the lowest node number no live process
/// holds.
///
/// # Errors
/// The database fails, or all 1,023 node numbers are held by live processes.
pub async fn register_on(
    conn: &mut PgConnection,
    dead_after: Duration,
    host: &str,
    pid: u32,
) -> Result<Registered, sqlx::Error> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(NODE_LOCK).execute(&mut *tx).await?;
    sqlx::query("DELETE FROM herald_processes WHERE heartbeat_at < now() - make_interval(secs => $1)")
        .bind(FORGET_AFTER_SECS)
        .execute(&mut *tx)
        .await?;
    let node: Option<i32> = sqlx::query_scalar(
        "SELECT n FROM generate_series(0, $1 - 1) n
         WHERE n NOT IN (SELECT node FROM herald_processes
                         WHERE ended_at IS NULL AND heartbeat_at > now() - make_interval(secs => $2))
         ORDER BY n LIMIT 1",
    )
    .bind(LEASED_NODES)
    .bind(dead_after.as_secs_f64())
    .fetch_optional(&mut *tx)
    .await?;
    let node =
        node.ok_or_else(|| sqlx::Error::Protocol("every snowflake node number is held by a live process".into()))?;
    let id: i64 = sqlx::query_scalar("INSERT INTO herald_processes (node, host, pid) VALUES ($1, $2, $3) RETURNING id")
        .bind(node)
        .bind(host)
        .bind(pid as i32)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Registered { id, node: node as u16 })
}

/// What a heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// The row is alive and its node is still this process's alone.
    Kept,
    /// The row is gone or ended, or a live process took the node while this one
    /// was silent: register again before minting another id.
    Lost,
}

/// One heartbeat. `gap` is the silence after which the beat restarts
/// `alive_since` (the database was unreachable, or this process stalled).
pub async fn beat(conn: &mut PgConnection, id: i64, gap: Duration, dead_after: Duration) -> Result<Beat, sqlx::Error> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(NODE_LOCK).execute(&mut *tx).await?;
    // A row whose node a live process took is ended here, so it never holds
    // that number against anybody again; the caller registers anew.
    let kept: Option<bool> = sqlx::query_scalar(
        "WITH taken AS (
             SELECT EXISTS (SELECT 1 FROM herald_processes o JOIN herald_processes me ON me.node = o.node
                            WHERE me.id = $1 AND o.id <> me.id AND o.ended_at IS NULL
                              AND o.heartbeat_at > now() - make_interval(secs => $3)) AS yes
         )
         UPDATE herald_processes SET
             alive_since = CASE WHEN heartbeat_at < now() - make_interval(secs => $2) THEN now() ELSE alive_since END,
             heartbeat_at = now(),
             ended_at = CASE WHEN (SELECT yes FROM taken) THEN now() END
         WHERE id = $1 AND ended_at IS NULL
         RETURNING ended_at IS NULL",
    )
    .bind(id)
    .bind(gap.as_secs_f64())
    .bind(dead_after.as_secs_f64())
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(if kept == Some(true) { Beat::Kept } else { Beat::Lost })
}

/// Extends the leases of the deliveries this process is still working on (an
/// attempt waiting for an SMTP connection, or an attempt record being retried):
/// a lease never runs out under a live worker (docs/ARCHITECTURE.md, "Guarantees").
/// A row locked right now (being recorded) is skipped: the next beat comes.
/// Only leases past their half are pushed: under a bulk load thousands of
/// deliveries are in work, and each row is written once per half lease, not per beat.
pub async fn extend_leases(
    conn: &mut PgConnection,
    process: i64,
    ids: &[i64],
    lease: Duration,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE deliveries SET lease_until = now() + make_interval(secs => $3)
         WHERE id IN (SELECT id FROM deliveries
                      WHERE id = ANY($2) AND status = 'sending' AND claimed_by = $1
                        AND lease_until < now() + make_interval(secs => $3 / 2)
                      ORDER BY id FOR UPDATE SKIP LOCKED)",
    )
    .bind(process)
    .bind(ids)
    .bind(lease.as_secs_f64())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// A clean shutdown: the process is dead at once for everybody else.
pub async fn end(conn: &mut PgConnection, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE herald_processes SET ended_at = now() WHERE id = $1").bind(id).execute(conn).await?;
    Ok(())
}

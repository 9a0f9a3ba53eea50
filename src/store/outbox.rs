//! The outbox side of `deliveries`: rows committed but not yet on the broker
//! (docs/ARCHITECTURE.md, "Guarantees": nothing accepted is lost).

use super::deliveries::word;
use crate::domain::{Channel, Lane};

/// A delivery the relay is about to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpublished {
    pub id: i64,
    pub channel: Channel,
    /// Which queues it travels (docs/ARCHITECTURE.md, "Bulk re-invites and replay").
    pub lane: Lane,
    pub attempts: i32,
    pub request_id: Option<String>,
}

#[derive(sqlx::FromRow)]
struct UnpublishedRow {
    id: i64,
    channel: String,
    lane: String,
    attempts: i32,
    request_id: Option<String>,
}

impl TryFrom<UnpublishedRow> for Unpublished {
    type Error = sqlx::Error;

    fn try_from(r: UnpublishedRow) -> Result<Self, Self::Error> {
        Ok(Unpublished {
            id: r.id,
            channel: word(&r.channel)?,
            lane: word(&r.lane)?,
            attempts: r.attempts,
            request_id: r.request_id,
        })
    }
}

/// Claims up to `limit` queued deliveries that were never published, for `lease`:
/// the claim commits before the caller publishes (no row lock is held while the
/// broker is waited for, so a resend superseding one of these rows never waits on
/// the broker: docs/ARCHITECTURE.md, "Guarantees"). The caller then marks what the
/// broker confirmed ([`mark_published`]) and hands back the rest ([`release`]); a
/// claim whose relay died runs out and the rows are taken again. `SKIP LOCKED`
/// and the lease let any number of relays (one per process) share the outbox.
///
/// Rows handed to a relay (`claimed_by` set: `invite::Handoff`) are not taken here:
/// the sweeper hands them back when their holder is dead or their hold ran out.
///
/// Read from the outbox set (`delivery_outbox`, migration 0012), which holds the
/// rows waiting for a sweep and few others: no index of `deliveries` names a
/// column its updates change, so those updates stay HOT. Rows of the set a worker
/// claimed, that ended, or were published meanwhile leave it here.
pub async fn take_unpublished(
    pool: &sqlx::PgPool,
    limit: i64,
    lease: std::time::Duration,
) -> Result<Vec<Unpublished>, sqlx::Error> {
    let rows: Vec<UnpublishedRow> = sqlx::query_as(
        "WITH gone AS (
             -- Claimed by a worker, ended or published since it joined the set.
             -- Locked, so the check holds against a hand-back of the same row
             -- (which puts it in the set again) running meanwhile.
             DELETE FROM delivery_outbox WHERE id IN (
                 SELECT d.id FROM delivery_outbox o JOIN deliveries d ON d.id = o.id
                 WHERE d.status <> 'queued' OR d.published_at IS NOT NULL OR d.claimed_by IS NOT NULL
                 FOR UPDATE OF d SKIP LOCKED)
         )
         UPDATE deliveries SET publishing_until = now() + make_interval(secs => $2)
         WHERE id IN (SELECT d.id FROM delivery_outbox o JOIN deliveries d ON d.id = o.id
                      WHERE d.published_at IS NULL AND d.status = 'queued' AND d.claimed_by IS NULL
                        AND (d.publishing_until IS NULL OR d.publishing_until < now())
                      ORDER BY d.created_at
                      LIMIT $1
                      FOR UPDATE OF d SKIP LOCKED)
         RETURNING id, channel, lane, attempts, request_id",
    )
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(Unpublished::try_from).collect()
}

/// The broker confirmed these rows' messages: those still waiting for a worker are
/// marked published. A row a worker claimed meanwhile is not written again (the
/// claim marked it), and a row a claim holds locked right now is skipped rather
/// than waited for: that claim marks it. Under load a worker often claims a row
/// before its confirm comes back, and this write then serialised behind the claim.
/// The rows marked leave the outbox set; the ones skipped leave it at the next sweep.
pub async fn mark_published(pool: &sqlx::PgPool, ids: &[i64]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH marked AS (
             UPDATE deliveries SET published_at = now(), publishing_until = NULL
             WHERE id IN (SELECT id FROM deliveries WHERE id = ANY($1) AND published_at IS NULL AND status = 'queued'
                          ORDER BY id FOR UPDATE SKIP LOCKED)
             RETURNING id
         )
         DELETE FROM delivery_outbox WHERE id IN (SELECT id FROM marked)",
    )
    .bind(ids)
    .execute(pool)
    .await?;
    Ok(())
}

/// The broker did not confirm these rows' messages (or the relay they were handed
/// to cannot publish now): back in the outbox set, for the next sweep.
pub async fn release(pool: &sqlx::PgPool, ids: &[i64]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH released AS (
             UPDATE deliveries SET publishing_until = NULL, claimed_by = NULL
             WHERE id = ANY($1) AND published_at IS NULL AND status = 'queued'
             RETURNING id
         )
         INSERT INTO delivery_outbox (id) SELECT id FROM released ON CONFLICT DO NOTHING",
    )
    .bind(ids)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deliveries that would never end on their own, handed back to the outbox
/// (`queued`, unpublished) so the relay publishes them again: a `sending` row whose
/// lease ran out or whose worker's process is dead, a `retrying` row
/// `republish_after` past its retry time, a published `queued` row `republish_after`
/// after its publish (the broker lost or dead-lettered its message), a `queued` row
/// handed to a relay (`claimed_by` its process) whose process is dead or whose hold
/// ran out (`republish_after` after its commit: published and lost, or never
/// published). A duplicate
/// message is harmless (the claim finds the row leased or finished); a lost one
/// would leave the row waiting forever. `SKIP LOCKED`: any number of sweepers.
/// Returns the ids handed back.
///
/// A `sending` row already claimed `max_attempts` times ends `dead` instead: its
/// worker died (or its message was dead-lettered) on every attempt, and handing it
/// back again would loop forever on a delivery that kills its worker.
pub async fn hand_back_stranded(
    pool: &sqlx::PgPool,
    dead_after: std::time::Duration,
    republish_after: std::time::Duration,
    max_attempts: i32,
    limit: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    let dead = super::processes::dead_rule("$1");
    let stranded = format!(
        "((d.status = 'sending' AND (d.lease_until IS NULL OR d.lease_until < now() OR {dead}))
           OR (d.status = 'retrying' AND d.next_attempt_at < now() - make_interval(secs => $2))
           OR (d.status = 'queued' AND d.published_at < now() - make_interval(secs => $2))
           OR (d.status = 'queued' AND d.published_at IS NULL AND d.claimed_by IS NOT NULL
               AND (COALESCE(d.publishing_until, '-infinity') < now() OR {dead})))"
    );
    sqlx::query_scalar(&format!(
        "WITH candidates AS (
             SELECT d.id FROM delivery_open o JOIN deliveries d ON d.id = o.id
             LEFT JOIN herald_processes p ON p.id = d.claimed_by
             WHERE d.status IN ('queued', 'sending', 'retrying') AND {stranded}
             ORDER BY d.id
             LIMIT $3
         ), locked AS (
             -- Locked with no join, then checked again on what the lock read: a
             -- row claimed meanwhile has a new holder, and a join made before the
             -- lock would still show the old one.
             SELECT id, status, lease_until, claimed_by, next_attempt_at, published_at, publishing_until
             FROM deliveries
             WHERE id IN (SELECT id FROM candidates)
             ORDER BY id
             FOR UPDATE SKIP LOCKED
         ), stranded AS (
             SELECT d.id FROM locked d LEFT JOIN herald_processes p ON p.id = d.claimed_by
             WHERE {stranded}
         ), handed AS (
             UPDATE deliveries x SET
                    status = CASE WHEN x.status = 'sending' AND x.attempts >= $4 THEN 'dead' ELSE 'queued' END,
                    last_error = CASE WHEN x.status = 'sending' AND x.attempts >= $4
                                      THEN 'no attempt recorded in ' || x.attempts || ' claims (the worker died each time)'
                                      ELSE x.last_error END,
                    published_at = NULL, publishing_until = NULL, lease_until = NULL, claimed_by = NULL,
                    updated_at = now()
             FROM stranded s WHERE x.id = s.id
             RETURNING x.id, x.status
         ), dead AS (
             INSERT INTO delivery_dead (id) SELECT id FROM handed WHERE status = 'dead' ON CONFLICT DO NOTHING
         ), closed AS (
             DELETE FROM delivery_open WHERE id IN (SELECT id FROM handed WHERE status = 'dead')
         ), outboxed AS (
             INSERT INTO delivery_outbox (id) SELECT id FROM handed WHERE status = 'queued' ON CONFLICT DO NOTHING
         )
         SELECT id FROM handed"
    ))
    .bind(dead_after.as_secs_f64())
    .bind(republish_after.as_secs_f64())
    .bind(limit)
    .bind(max_attempts)
    .fetch_all(pool)
    .await
}

/// Queued deliveries waiting for a sweep of the outbox (the `/metrics` backlog); rows
/// handed to a relay are on their way already.
pub async fn outbox_backlog(pool: &sqlx::PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM delivery_outbox o JOIN deliveries d ON d.id = o.id
         WHERE d.published_at IS NULL AND d.status = 'queued' AND d.claimed_by IS NULL",
    )
    .fetch_one(pool)
    .await
}

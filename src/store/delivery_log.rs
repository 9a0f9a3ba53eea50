//! `delivery_attempts`: one row per attempt, written with the delivery's new status
//! in one statement (docs/ARCHITECTURE.md, "Guarantees": the result of an attempt
//! is recorded before the message is acked).

use chrono::{DateTime, Utc};

use crate::domain::{AttemptOutcome, DeliveryStatus};

/// How one attempt ended, and the state the delivery moves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub delivery_id: i64,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub outcome: AttemptOutcome,
    pub error: Option<String>,
    pub duration_ms: i32,
    /// `Sent`, `Retrying`, `Dead` or `Expired`.
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub provider_message_id: Option<String>,
}

/// Records attempts and moves their deliveries on: one statement for the whole
/// set (so one transaction and one round trip). Only a record whose delivery is
/// still `sending` under the same attempt is written: the claim of that attempt
/// still holds, so a late attempt (its lease taken over by another worker, which
/// counted a new attempt) never overwrites a later one (docs/ARCHITECTURE.md,
/// "Guarantees"). This also makes a record safe to repeat after an error whose
/// commit is unknown. Returns the delivery ids whose record was written.
pub async fn record_attempts(pool: &sqlx::PgPool, records: &[AttemptRecord]) -> Result<Vec<i64>, sqlx::Error> {
    let col = |f: fn(&AttemptRecord) -> Option<&str>| records.iter().map(f).collect::<Vec<_>>();
    sqlx::query_scalar(
        "WITH r AS (
             SELECT * FROM unnest($1::bigint[], $2::int[], $3::timestamptz[], $4::text[], $5::text[], $6::int[],
                                  $7::text[], $8::timestamptz[], $9::text[])
                 AS r(delivery_id, attempt, started_at, outcome, error, duration_ms, status, next_attempt_at,
                      provider_message_id)
         ), locked AS (
             -- In id order, as claims lock them, so the two never deadlock. Locking
             -- reads the newest version of each row, so the check below sees any
             -- claim committed meanwhile.
             SELECT id, status, attempts FROM deliveries WHERE id IN (SELECT delivery_id FROM r)
             ORDER BY id FOR UPDATE
         ), held AS (
             SELECT r.* FROM r JOIN locked l ON l.id = r.delivery_id
             WHERE l.status = $11 AND l.attempts = r.attempt
         ), attempt AS (
             INSERT INTO delivery_attempts (delivery_id, attempt, started_at, outcome, error, duration_ms)
             SELECT delivery_id, attempt, started_at, outcome, error, duration_ms FROM held
         ), recorded AS (
             UPDATE deliveries d SET status = r.status, last_error = COALESCE(r.error, d.last_error),
                    next_attempt_at = r.next_attempt_at, lease_until = NULL, claimed_by = NULL, updated_at = now(),
                    sent_at = CASE WHEN r.status = $10 THEN now() ELSE d.sent_at END,
                    provider_message_id = COALESCE(r.provider_message_id, d.provider_message_id)
             FROM held r WHERE d.id = r.delivery_id
             RETURNING d.id, d.status
         ), closed AS (
             -- A final record ends the delivery's membership of the open set
             -- (migration 0011); a dead one joins the dead set.
             DELETE FROM delivery_open WHERE id IN (SELECT id FROM recorded WHERE status <> ALL($12))
         ), dead AS (
             INSERT INTO delivery_dead (id) SELECT id FROM recorded WHERE status = $13 ON CONFLICT DO NOTHING
         )
         SELECT id FROM recorded",
    )
    .bind(records.iter().map(|r| r.delivery_id).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.attempt).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.started_at).collect::<Vec<_>>())
    .bind(col(|r| Some(r.outcome.as_str())))
    .bind(col(|r| r.error.as_deref()))
    .bind(records.iter().map(|r| r.duration_ms).collect::<Vec<_>>())
    .bind(col(|r| Some(r.status.as_str())))
    .bind(records.iter().map(|r| r.next_attempt_at).collect::<Vec<_>>())
    .bind(col(|r| r.provider_message_id.as_deref()))
    .bind(DeliveryStatus::Sent.as_str())
    .bind(DeliveryStatus::Sending.as_str())
    .bind(DeliveryStatus::WAITING.map(DeliveryStatus::as_str).to_vec())
    .bind(DeliveryStatus::Dead.as_str())
    .fetch_all(pool)
    .await
}

/// One attempt as operators see it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub outcome: String,
    pub error: Option<String>,
    pub duration_ms: i32,
}

/// A delivery's attempts, oldest first.
pub async fn attempts(pool: &sqlx::PgPool, id: i64) -> Result<Vec<AttemptRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT attempt, started_at, outcome, error, duration_ms FROM delivery_attempts WHERE delivery_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
}

//! What operators do with deliveries (docs/API.md §5): list them, look at one,
//! find the dead ones, and put a dead one back in the outbox.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::domain::DeliverySource;

/// A delivery as operators see it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    /// None for a ZITADEL delivery: its user is ZITADEL's.
    pub user_id: Option<String>,
    /// `invite` or `zitadel` ([`DeliverySource`]).
    pub source: String,
    pub org_id: String,
    pub channel: String,
    pub recipient: String,
    pub template: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

const DELIVERY_COLUMNS: &str =
    "id, user_id, source, org_id, channel, recipient, template, status, attempts, last_error,
                                created_at, updated_at, sent_at";

/// Filters of the operators' listing; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub status: Option<String>,
    pub org_id: Option<String>,
    pub user_id: Option<String>,
    pub channel: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub error_contains: Option<String>,
}

/// Newest first, `limit` rows with an id below `before`.
pub async fn list(
    pool: &sqlx::PgPool,
    f: &DeliveryFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<DeliveryRow>, sqlx::Error> {
    // No index of `deliveries` names the status (its updates stay HOT): a listing
    // by status walks the narrow set that holds it, when there is one.
    let from = match f.status.as_deref() {
        Some("dead") => "deliveries JOIN delivery_dead USING (id)",
        Some("queued" | "sending" | "retrying") => "deliveries JOIN delivery_open USING (id)",
        _ => "deliveries",
    };
    sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM {from}
         WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR org_id = $2)
           AND ($3::text IS NULL OR user_id = $3) AND ($4::text IS NULL OR channel = $4)
           AND ($5::timestamptz IS NULL OR created_at >= $5) AND ($6::timestamptz IS NULL OR created_at < $6)
           AND ($7::text IS NULL OR strpos(last_error, $7) > 0)
           AND ($8::bigint IS NULL OR id < $8)
         ORDER BY id DESC LIMIT $9"
    ))
    .bind(&f.status)
    .bind(&f.org_id)
    .bind(&f.user_id)
    .bind(&f.channel)
    .bind(f.since)
    .bind(f.until)
    .bind(&f.error_contains)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Dead deliveries matching `f`, oldest first, with an id above `after`.
pub async fn dead_ids(
    pool: &sqlx::PgPool,
    f: &DeliveryFilter,
    after: i64,
    limit: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT d.id FROM delivery_dead x JOIN deliveries d ON d.id = x.id
         WHERE d.status = 'dead' AND ($1::text IS NULL OR d.org_id = $1) AND ($2::text IS NULL OR d.channel = $2)
           AND ($3::timestamptz IS NULL OR d.created_at >= $3) AND ($4::timestamptz IS NULL OR d.created_at < $4)
           AND ($5::text IS NULL OR strpos(d.last_error, $5) > 0) AND ($6::text IS NULL OR d.user_id = $6)
           AND x.id > $7
         ORDER BY x.id LIMIT $8",
    )
    .bind(&f.org_id)
    .bind(&f.channel)
    .bind(f.since)
    .bind(f.until)
    .bind(&f.error_contains)
    .bind(&f.user_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub async fn get(pool: &sqlx::PgPool, id: i64) -> Result<Option<DeliveryRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// A dead delivery, locked, with what decides whether its code can still be sent.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReplayCandidate {
    pub id: i64,
    pub user_id: String,
    pub org_id: String,
    pub status: String,
    /// The delivery's code is the user's current one, unexpired and unverified;
    /// always for a ZITADEL delivery, whose code herald cannot replace.
    pub code_current: bool,
}

pub async fn lock_for_replay(conn: &mut PgConnection, id: i64) -> Result<Option<ReplayCandidate>, sqlx::Error> {
    sqlx::query_as(
        "SELECT d.id, COALESCE(d.user_id, '') AS user_id, d.org_id, d.status,
                (d.source = $2 OR (NOT u.initialized AND c.event_sequence = d.code_event_sequence
                 AND c.code_encrypted IS NOT NULL AND c.expires_at > now())) IS TRUE AS code_current
         FROM deliveries d LEFT JOIN users u ON u.id = d.user_id
         LEFT JOIN invite_codes c ON c.user_id = d.user_id
         WHERE d.id = $1
         FOR UPDATE OF d",
    )
    .bind(id)
    .bind(DeliverySource::Zitadel.as_str())
    .fetch_optional(conn)
    .await
}

/// Puts a dead delivery back in the outbox with its attempts reset.
pub async fn requeue(conn: &mut PgConnection, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH requeued AS (
             UPDATE deliveries SET status = 'queued', attempts = 0, published_at = NULL, last_error = NULL,
                    next_attempt_at = NULL, lease_until = NULL, claimed_by = NULL, publishing_until = NULL,
                    updated_at = now()
             WHERE id = $1 AND status = 'dead'
             RETURNING id
         ), opened AS (
             INSERT INTO delivery_open (id) SELECT id FROM requeued ON CONFLICT DO NOTHING
         ), outboxed AS (
             INSERT INTO delivery_outbox (id) SELECT id FROM requeued ON CONFLICT DO NOTHING
         )
         DELETE FROM delivery_dead WHERE id IN (SELECT id FROM requeued)",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A dead delivery whose code was reissued: a newer code replaced its code.
pub async fn supersede_dead(pool: &sqlx::PgPool, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH ended AS (
             UPDATE deliveries SET status = 'superseded', updated_at = now() WHERE id = $1 AND status = 'dead'
             RETURNING id
         )
         DELETE FROM delivery_dead WHERE id IN (SELECT id FROM ended)",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

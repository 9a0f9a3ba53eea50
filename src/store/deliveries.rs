//! `deliveries` (the outbox) and `delivery_attempts`.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// Ends the user's deliveries that have not gone out yet with `status`
/// (`superseded` when a new code replaces theirs, `cancelled` when the invite was
/// verified). Returns how many changed.
pub async fn end_waiting(
    conn: &mut PgConnection,
    user_id: &str,
    status: &str,
    at: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let res = sqlx::query(
        "UPDATE deliveries SET status = $2, updated_at = $3, lease_until = NULL
         WHERE user_id = $1 AND status IN ('queued', 'retrying')",
    )
    .bind(user_id)
    .bind(status)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(res.rows_affected())
}

/// A delivery with everything needed to render and send it, read under the
/// delivery's row lock.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryContext {
    pub id: i64,
    pub status: String,
    pub lease_until: Option<DateTime<Utc>>,
    pub attempts: i32,
    pub channel: String,
    pub recipient: String,
    pub locale: String,
    pub code_event_sequence: i64,
    pub user_id: String,
    pub org_id: String,
    pub display_name: String,
    pub given_name: String,
    pub family_name: String,
    pub username: String,
    pub initialized: bool,
    pub org_name: String,
    pub login_methods: Vec<String>,
    pub code_encrypted: Option<Vec<u8>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub url_template: Option<String>,
    pub application_name: Option<String>,
    pub current_sequence: Option<i64>,
}

/// What claiming a delivery found.
#[derive(Debug)]
pub enum Claim {
    /// No such delivery.
    Missing,
    /// Already in a final state (`sent`, `dead`, …): nothing to do.
    Finished(String),
    /// Its code is no longer the one to send: marked `superseded`, `expired` or
    /// `cancelled` now.
    Stale(&'static str),
    /// Another worker holds an unexpired lease on it.
    Leased,
    /// Ours to send: now `sending`, attempts incremented, leased until the given time.
    Claimed(Box<DeliveryContext>),
}

/// Claims deliveries for sending (`queued|retrying → sending`, with a lease), or
/// says for each why not. A `sending` row whose lease ran out (its worker died) can
/// be claimed again. Stale deliveries are ended by the same statement.
///
/// One statement for the whole set: it locks the rows (in id order, so two
/// claims never deadlock), decides, updates and returns what the senders need. An
/// id that appears twice is claimed once: the answer is given for each distinct id.
/// Ids of no delivery are missing from the answer.
pub async fn claim_many(
    pool: &sqlx::PgPool,
    ids: &[i64],
    lease: chrono::Duration,
) -> Result<Vec<(i64, Claim)>, sqlx::Error> {
    let lease_until = Utc::now() + lease;
    let rows: Vec<ClaimRow> = sqlx::query_as::<_, ClaimRow>(
        "WITH ctx AS (
             SELECT d.id, d.status, d.lease_until, d.attempts, d.channel, d.recipient, d.locale,
                    d.code_event_sequence, d.user_id, d.org_id,
                    u.display_name, u.given_name, u.family_name, u.username, u.initialized,
                    o.name AS org_name, o.login_methods,
                    c.code_encrypted, c.expires_at, c.url_template, c.application_name,
                    c.event_sequence AS current_sequence
             FROM deliveries d
             JOIN users u ON u.id = d.user_id
             JOIN organizations o ON o.id = d.org_id
             LEFT JOIN invite_codes c ON c.user_id = d.user_id
             WHERE d.id = ANY($1)
             ORDER BY d.id
             FOR UPDATE OF d
         ), decided AS (
             SELECT id, CASE
                 WHEN status NOT IN ('queued', 'retrying', 'sending') THEN 'finished'
                 WHEN status = 'sending' AND lease_until > now() THEN 'leased'
                 WHEN initialized THEN 'cancelled'
                 WHEN current_sequence IS DISTINCT FROM code_event_sequence THEN 'superseded'
                 WHEN code_encrypted IS NULL OR expires_at IS NULL OR expires_at <= now() THEN 'expired'
                 ELSE 'claimed' END AS verdict
             FROM ctx
         ), changed AS (
             UPDATE deliveries x SET
                 status = CASE WHEN v.verdict = 'claimed' THEN 'sending' ELSE v.verdict END,
                 attempts = x.attempts + CASE WHEN v.verdict = 'claimed' THEN 1 ELSE 0 END,
                 lease_until = CASE WHEN v.verdict = 'claimed' THEN $2 ELSE NULL END,
                 updated_at = now()
             FROM decided v
             WHERE x.id = v.id AND v.verdict IN ('claimed', 'cancelled', 'superseded', 'expired')
             RETURNING x.id, x.attempts
         )
         SELECT v.verdict, ctx.status AS old_status, ctx.id, ctx.status, ctx.lease_until,
                COALESCE(changed.attempts, ctx.attempts) AS attempts, ctx.channel, ctx.recipient, ctx.locale,
                ctx.code_event_sequence, ctx.user_id, ctx.org_id, ctx.display_name, ctx.given_name,
                ctx.family_name, ctx.username, ctx.initialized, ctx.org_name, ctx.login_methods,
                ctx.code_encrypted, ctx.expires_at, ctx.url_template, ctx.application_name, ctx.current_sequence
         FROM ctx JOIN decided v ON v.id = ctx.id LEFT JOIN changed ON changed.id = ctx.id",
    )
    .bind(ids)
    .bind(lease_until)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|ClaimRow { verdict, old_status, mut ctx }| {
            let claim = match verdict.as_str() {
                "finished" => Claim::Finished(old_status),
                "leased" => Claim::Leased,
                "cancelled" => Claim::Stale("cancelled"),
                "superseded" => Claim::Stale("superseded"),
                "expired" => Claim::Stale("expired"),
                _ => {
                    ctx.status = "sending".into();
                    ctx.lease_until = Some(lease_until);
                    return (ctx.id, Claim::Claimed(Box::new(ctx)));
                }
            };
            (ctx.id, claim)
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    verdict: String,
    old_status: String,
    #[sqlx(flatten)]
    ctx: DeliveryContext,
}

/// How one attempt ended, and the state the delivery moves to.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: i64,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    /// `sent`, `transient` or `permanent`.
    pub outcome: &'static str,
    pub error: Option<String>,
    pub duration_ms: i32,
    /// `sent`, `retrying`, `dead` or `expired`.
    pub status: &'static str,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub provider_message_id: Option<String>,
}

/// Records attempts and moves their deliveries on: one statement for the whole
/// set (so one transaction and one round trip). Each delivery appears at most once
/// (its claim's lease makes the sender the only one recording it).
pub async fn record_attempts(pool: &sqlx::PgPool, records: &[AttemptRecord]) -> Result<(), sqlx::Error> {
    let col = |f: fn(&AttemptRecord) -> Option<&str>| records.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "WITH r AS (
             SELECT * FROM unnest($1::bigint[], $2::int[], $3::timestamptz[], $4::text[], $5::text[], $6::int[],
                                  $7::text[], $8::timestamptz[], $9::text[])
                 AS r(delivery_id, attempt, started_at, outcome, error, duration_ms, status, next_attempt_at,
                      provider_message_id)
         ), locked AS (
             -- In id order, as claims lock them, so the two never deadlock.
             SELECT id FROM deliveries WHERE id IN (SELECT delivery_id FROM r) ORDER BY id FOR UPDATE
         ), attempt AS (
             INSERT INTO delivery_attempts (delivery_id, attempt, started_at, outcome, error, duration_ms)
             SELECT delivery_id, attempt, started_at, outcome, error, duration_ms FROM r
         )
         UPDATE deliveries d SET status = r.status, last_error = COALESCE(r.error, d.last_error),
                next_attempt_at = r.next_attempt_at, lease_until = NULL, updated_at = now(),
                sent_at = CASE WHEN r.status = 'sent' THEN now() ELSE d.sent_at END,
                provider_message_id = COALESCE(r.provider_message_id, d.provider_message_id)
         FROM r JOIN locked l ON l.id = r.delivery_id WHERE d.id = r.delivery_id",
    )
    .bind(records.iter().map(|r| r.delivery_id).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.attempt).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.started_at).collect::<Vec<_>>())
    .bind(col(|r| Some(r.outcome)))
    .bind(col(|r| r.error.as_deref()))
    .bind(records.iter().map(|r| r.duration_ms).collect::<Vec<_>>())
    .bind(col(|r| Some(r.status)))
    .bind(records.iter().map(|r| r.next_attempt_at).collect::<Vec<_>>())
    .bind(col(|r| r.provider_message_id.as_deref()))
    .execute(pool)
    .await?;
    Ok(())
}

/// A delivery the relay is about to publish.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Unpublished {
    pub id: i64,
    pub channel: String,
    pub lane: String,
    pub attempts: i32,
    pub request_id: Option<String>,
}

/// Takes up to `limit` queued deliveries that were never published, marking
/// them published in the caller's transaction: the caller publishes them before
/// it commits, and hands back with [`unmark_published`] those the broker did not
/// confirm. One write per row (a lock, then an update, would be two). `SKIP
/// LOCKED` lets any number of relays (one per process) share the outbox.
pub async fn take_unpublished(conn: &mut PgConnection, limit: i64) -> Result<Vec<Unpublished>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE deliveries SET published_at = now()
         WHERE id IN (SELECT id FROM deliveries
                      WHERE published_at IS NULL AND status = 'queued'
                      ORDER BY created_at
                      LIMIT $1
                      FOR UPDATE SKIP LOCKED)
         RETURNING id, channel, lane, attempts, request_id",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn unmark_published(conn: &mut PgConnection, ids: &[i64]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE deliveries SET published_at = NULL WHERE id = ANY($1)").bind(ids).execute(conn).await?;
    Ok(())
}

/// Queued deliveries not yet handed to the broker (the `/metrics` backlog).
pub async fn outbox_backlog(pool: &sqlx::PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE published_at IS NULL AND status = 'queued'")
        .fetch_one(pool)
        .await
}

/// A delivery as operators see it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub user_id: String,
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

const DELIVERY_COLUMNS: &str = "id, user_id, org_id, channel, recipient, template, status, attempts, last_error,
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
    sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries
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
        "SELECT id FROM deliveries
         WHERE status = 'dead' AND ($1::text IS NULL OR org_id = $1) AND ($2::text IS NULL OR channel = $2)
           AND ($3::timestamptz IS NULL OR created_at >= $3) AND ($4::timestamptz IS NULL OR created_at < $4)
           AND ($5::text IS NULL OR strpos(last_error, $5) > 0) AND ($6::text IS NULL OR user_id = $6)
           AND id > $7
         ORDER BY id LIMIT $8",
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

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub outcome: String,
    pub error: Option<String>,
    pub duration_ms: i32,
}

pub async fn attempts(pool: &sqlx::PgPool, id: i64) -> Result<Vec<AttemptRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT attempt, started_at, outcome, error, duration_ms FROM delivery_attempts WHERE delivery_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
}

/// A dead delivery, locked, with what decides whether its code can still be sent.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReplayCandidate {
    pub id: i64,
    pub user_id: String,
    pub org_id: String,
    pub status: String,
    /// The delivery's code is the user's current one, unexpired and unverified.
    pub code_current: bool,
}

pub async fn lock_for_replay(conn: &mut PgConnection, id: i64) -> Result<Option<ReplayCandidate>, sqlx::Error> {
    sqlx::query_as(
        "SELECT d.id, d.user_id, d.org_id, d.status,
                (NOT u.initialized AND c.event_sequence = d.code_event_sequence
                 AND c.code_encrypted IS NOT NULL AND c.expires_at > now()) IS TRUE AS code_current
         FROM deliveries d JOIN users u ON u.id = d.user_id
         LEFT JOIN invite_codes c ON c.user_id = d.user_id
         WHERE d.id = $1
         FOR UPDATE OF d",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Puts a dead delivery back in the outbox with its attempts reset.
pub async fn requeue(conn: &mut PgConnection, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE deliveries SET status = 'queued', attempts = 0, published_at = NULL, last_error = NULL,
                next_attempt_at = NULL, lease_until = NULL, updated_at = now()
         WHERE id = $1 AND status = 'dead'",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A dead delivery whose code was reissued: a newer code replaced its code.
pub async fn supersede_dead(pool: &sqlx::PgPool, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE deliveries SET status = 'superseded', updated_at = now() WHERE id = $1 AND status = 'dead'")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

//! `invite_codes`: one current code per user.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::domain::{Channel, DeliveryStatus, Lane};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InviteCodeRow {
    pub user_id: String,
    /// NULL once the code was cleared (verified, 3 failed checks, checked expired).
    pub code_encrypted: Option<Vec<u8>>,
    pub expires_at: DateTime<Utc>,
    pub url_template: String,
    pub application_name: String,
    pub channel: String,
    pub returned: bool,
    pub failed_checks: i32,
    pub event_sequence: i64,
    pub created_at: DateTime<Utc>,
}

pub async fn get(conn: &mut PgConnection, user_id: &str) -> Result<Option<InviteCodeRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM invite_codes WHERE user_id = $1").bind(user_id).fetch_optional(conn).await
}

/// Counts a failed check; clears the code when `clear` (limit reached, or expired).
pub async fn record_failed_check(conn: &mut PgConnection, user_id: &str, clear: bool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE invite_codes SET failed_checks = failed_checks + 1,
                code_encrypted = CASE WHEN $2 THEN NULL ELSE code_encrypted END
         WHERE user_id = $1",
    )
    .bind(user_id)
    .bind(clear)
    .execute(conn)
    .await?;
    Ok(())
}

/// The code was used: it never verifies again.
pub async fn clear(conn: &mut PgConnection, user_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE invite_codes SET code_encrypted = NULL WHERE user_id = $1").bind(user_id).execute(conn).await?;
    Ok(())
}

/// Everything Create and Resend decide on besides the user: the current code, how
/// many codes the user got since `since` (the rate limit), and whether the bulk
/// job (if any) already processed this user. One round trip for a whole batch, run
/// after the users' rows are locked (`users::lock_many`): a statement that waited
/// for those locks would read the other tables as they were before the wait, and
/// count too few codes.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IssueState {
    /// The user this state is about.
    pub for_user: String,
    pub recent_codes: i64,
    pub oldest_recent: Option<DateTime<Utc>>,
    pub job_done: bool,
    c_user_id: Option<String>,
    c_code_encrypted: Option<Vec<u8>>,
    c_expires_at: Option<DateTime<Utc>>,
    c_url_template: Option<String>,
    c_application_name: Option<String>,
    c_channel: Option<String>,
    c_returned: Option<bool>,
    c_failed_checks: Option<i32>,
    c_event_sequence: Option<i64>,
    c_created_at: Option<DateTime<Utc>>,
}

impl IssueState {
    /// The user's current code row, if it ever had one.
    pub fn invite(&self) -> Option<InviteCodeRow> {
        Some(InviteCodeRow {
            user_id: self.c_user_id.clone()?,
            code_encrypted: self.c_code_encrypted.clone(),
            expires_at: self.c_expires_at?,
            url_template: self.c_url_template.clone()?,
            application_name: self.c_application_name.clone()?,
            channel: self.c_channel.clone()?,
            returned: self.c_returned?,
            failed_checks: self.c_failed_checks?,
            event_sequence: self.c_event_sequence?,
            created_at: self.c_created_at?,
        })
    }
}

/// The state of each `(user id, bulk job id)`; each user at most once.
pub async fn issue_states(
    conn: &mut PgConnection,
    keys: &[(&str, Option<&str>)],
    since: DateTime<Utc>,
) -> Result<Vec<IssueState>, sqlx::Error> {
    sqlx::query_as(
        "SELECT k.user_id AS for_user, rc.recent_codes, rc.oldest_recent,
                (k.job_id IS NOT NULL
                 AND EXISTS (SELECT 1 FROM bulk_results r WHERE r.job_id = k.job_id AND r.user_id = k.user_id))
                    AS job_done,
                c.user_id AS c_user_id, c.code_encrypted AS c_code_encrypted, c.expires_at AS c_expires_at,
                c.url_template AS c_url_template, c.application_name AS c_application_name,
                c.channel AS c_channel, c.returned AS c_returned, c.failed_checks AS c_failed_checks,
                c.event_sequence AS c_event_sequence, c.created_at AS c_created_at
         FROM unnest($1::text[], $2::text[]) AS k(user_id, job_id)
         CROSS JOIN LATERAL (
             SELECT count(*) AS recent_codes, min(e.created_at) AS oldest_recent FROM events e
             WHERE e.aggregate_id = k.user_id AND e.type = 'invite.code.added' AND e.created_at > $3
         ) rc
         LEFT JOIN invite_codes c ON c.user_id = k.user_id",
    )
    .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
    .bind(since)
    .fetch_all(conn)
    .await
}

/// The writes of one Create or Resend.
#[derive(Debug, Clone)]
pub struct IssueWrite {
    pub user_id: String,
    pub org_id: String,
    pub created_by: String,
    pub at: DateTime<Utc>,
    /// The `invite.code.added` payload.
    pub payload: serde_json::Value,
    pub code_encrypted: Vec<u8>,
    pub expires_at: DateTime<Utc>,
    pub url_template: String,
    pub application_name: String,
    pub channel: Channel,
    pub returned: bool,
    /// The delivery to record (none for a returned code).
    pub delivery: Option<IssueDelivery>,
    /// The bulk job whose request this is: its success is recorded here.
    pub job_id: Option<String>,
}

/// The relay the new deliveries of a write are handed to: its process's row and
/// the end of its hold.
#[derive(Debug, Clone, Copy)]
pub struct Handed {
    pub process: i64,
    pub until: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct IssueDelivery {
    pub id: i64,
    pub recipient: String,
    pub template: &'static str,
    pub locale: String,
    pub request_id: Option<String>,
    pub lane: Lane,
}

/// The deliveries a new code supersedes: those waiting for a worker or for a
/// retry. A `sending` one is in a worker's hands, under its lease.
const WAITING_TO_SEND: [DeliveryStatus; 2] = [DeliveryStatus::Queued, DeliveryStatus::Retrying];

/// For each write: appends the event, replaces the code, supersedes the
/// deliveries still waiting, records the new delivery and the job's result. One
/// statement for the whole set (each user at most once), one round trip. Returns
/// `(user id, event sequence)` per write. The caller holds the users' row locks.
/// `handed`: the new deliveries are written held by the relay of this process
/// (`claimed_by`) until the given time (`invite::Handoff`); without it they are
/// left to the outbox sweep of any relay.
pub async fn write_issues(
    conn: &mut PgConnection,
    writes: &[IssueWrite],
    handed: Option<Handed>,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let d = |f: fn(&IssueDelivery) -> Option<&str>| {
        writes.iter().map(|w| w.delivery.as_ref().and_then(f)).collect::<Vec<_>>()
    };
    sqlx::query_as(
        "WITH w AS (
             SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::jsonb[], $6::bytea[],
                                  $7::timestamptz[], $8::text[], $9::text[], $10::text[], $11::bool[], $12::bigint[],
                                  $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[])
                 AS w(user_id, org_id, at, created_by, payload, code_encrypted, expires_at, url_template,
                      application_name, channel, returned, delivery_id, recipient, template, locale, request_id,
                      lane, job_id)
         ), bumped AS (
             UPDATE users u SET sequence = u.sequence + 1, changed_at = w.at FROM w WHERE u.id = w.user_id
             RETURNING u.id, u.sequence
         ), event AS (
             INSERT INTO events (aggregate_id, aggregate_type, sequence, type, payload, resource_owner, created_at, created_by)
             SELECT w.user_id, 'user', b.sequence, 'invite.code.added', w.payload, w.org_id, w.at, w.created_by
             FROM w JOIN bumped b ON b.id = w.user_id
             RETURNING aggregate_id, sequence
         ), code AS (
             INSERT INTO invite_codes (user_id, code_encrypted, expires_at, url_template, application_name,
                                       channel, returned, failed_checks, event_sequence, created_at)
             SELECT w.user_id, w.code_encrypted, w.expires_at, w.url_template, w.application_name, w.channel,
                    w.returned, 0, e.sequence, w.at
             FROM w JOIN event e ON e.aggregate_id = w.user_id
             ON CONFLICT (user_id) DO UPDATE SET
                 code_encrypted = EXCLUDED.code_encrypted, expires_at = EXCLUDED.expires_at,
                 url_template = EXCLUDED.url_template, application_name = EXCLUDED.application_name,
                 channel = EXCLUDED.channel, returned = EXCLUDED.returned, failed_checks = 0,
                 event_sequence = EXCLUDED.event_sequence, created_at = EXCLUDED.created_at
             RETURNING user_id, event_sequence
         ), superseded AS (
             -- The same snapshot: the deliveries inserted below are not among these.
             -- Locked in id order, as claims lock them, so the two never deadlock.
             UPDATE deliveries x SET status = $19::text, updated_at = w.at, lease_until = NULL
             FROM w
             WHERE x.user_id = w.user_id AND x.id IN (
                 SELECT id FROM deliveries
                 WHERE user_id IN (SELECT user_id FROM w) AND status = ANY($20::text[])
                 ORDER BY id FOR UPDATE)
             RETURNING x.id
         ), closed AS (
             DELETE FROM delivery_open WHERE id IN (SELECT id FROM superseded)
         ), delivery AS (
             INSERT INTO deliveries (id, user_id, org_id, channel, recipient, template, locale, status,
                                     code_event_sequence, created_at, updated_at, request_id, lane, job_id,
                                     publishing_until, claimed_by)
             SELECT w.delivery_id, w.user_id, w.org_id, w.channel, w.recipient, w.template, w.locale, $21::text,
                    c.event_sequence, w.at, w.at, w.request_id, w.lane, w.job_id, $22::timestamptz, $23::bigint
             FROM w JOIN code c ON c.user_id = w.user_id WHERE w.delivery_id IS NOT NULL
             RETURNING id
         ), opened AS (
             INSERT INTO delivery_open (id) SELECT id FROM delivery
         ), outboxed AS (
             -- Held by no process: the relays' sweeps publish it.
             INSERT INTO delivery_outbox (id) SELECT id FROM delivery WHERE $23::bigint IS NULL
         ), result AS (
             INSERT INTO bulk_results (job_id, user_id, error_id, at)
             SELECT w.job_id, w.user_id, NULL, w.at FROM w JOIN code c ON c.user_id = w.user_id
             WHERE w.job_id IS NOT NULL
             ON CONFLICT (job_id, user_id) DO NOTHING
         )
         SELECT aggregate_id, sequence FROM event",
    )
    .bind(writes.iter().map(|w| w.user_id.as_str()).collect::<Vec<_>>())
    .bind(writes.iter().map(|w| w.org_id.as_str()).collect::<Vec<_>>())
    .bind(writes.iter().map(|w| w.at).collect::<Vec<_>>())
    .bind(writes.iter().map(|w| w.created_by.as_str()).collect::<Vec<_>>())
    .bind(writes.iter().map(|w| w.payload.clone()).collect::<Vec<_>>())
    .bind(writes.iter().map(|w| w.code_encrypted.as_slice()).collect::<Vec<_>>())
    .bind(writes.iter().map(|w| w.expires_at).collect::<Vec<_>>())
    .bind(writes.iter().map(|w| w.url_template.as_str()).collect::<Vec<_>>())
    .bind(writes.iter().map(|w| w.application_name.as_str()).collect::<Vec<_>>())
    .bind(writes.iter().map(|w| w.channel.as_str()).collect::<Vec<_>>())
    .bind(writes.iter().map(|w| w.returned).collect::<Vec<_>>())
    .bind(writes.iter().map(|w| w.delivery.as_ref().map(|d| d.id)).collect::<Vec<_>>())
    .bind(d(|d| Some(d.recipient.as_str())))
    .bind(d(|d| Some(d.template)))
    .bind(d(|d| Some(d.locale.as_str())))
    .bind(d(|d| d.request_id.as_deref()))
    .bind(writes.iter().map(|w| w.delivery.as_ref().map_or(Lane::Transactional, |d| d.lane).as_str()).collect::<Vec<_>>())
    .bind(writes.iter().map(|w| w.job_id.as_deref()).collect::<Vec<_>>())
    // The statuses are bound, not spelled in the SQL: `DeliveryStatus` is their
    // one spelling.
    .bind(DeliveryStatus::Superseded.as_str())
    .bind(WAITING_TO_SEND.map(DeliveryStatus::as_str).to_vec())
    .bind(DeliveryStatus::Queued.as_str())
    .bind(handed.map(|h| h.until))
    .bind(handed.map(|h| h.process))
    .fetch_all(conn)
    .await
}

/// For each recipient: the deliveries made to it since `since`, counted up to `cap`
/// (a limit needs to know no more), and when the oldest of them was made. Served
/// by `deliveries_by_recipient` (migration 0007).
pub async fn recent_by_recipient(
    conn: &mut PgConnection,
    recipients: &[&str],
    since: DateTime<Utc>,
    cap: i64,
) -> Result<Vec<(String, i64, Option<DateTime<Utc>>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT k.key, w.n, w.oldest FROM unnest($1::text[]) AS k(key)
         CROSS JOIN LATERAL (
             SELECT count(*) AS n, min(created_at) AS oldest FROM (
                 SELECT d.created_at FROM deliveries d WHERE d.recipient = k.key AND d.created_at > $2
                 ORDER BY d.created_at LIMIT $3) x
         ) w",
    )
    .bind(recipients)
    .bind(since)
    .bind(cap)
    .fetch_all(conn)
    .await
}

/// For each organization: the transactional codes it sent since `since` (by the
/// minute, `org_send_counts`), and the minute of the oldest of them.
pub async fn recent_by_org(
    conn: &mut PgConnection,
    orgs: &[&str],
    since: DateTime<Utc>,
) -> Result<Vec<(String, i64, Option<DateTime<Utc>>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT k.key, coalesce(sum(c.sent), 0)::bigint, min(c.minute) FROM unnest($1::text[]) AS k(key)
         LEFT JOIN org_send_counts c ON c.org_id = k.key AND c.minute >= date_trunc('minute', $2::timestamptz)
         GROUP BY k.key",
    )
    .bind(orgs)
    .bind(since)
    .fetch_all(conn)
    .await
}

/// Adds what each organization sent to its minutes (`(org, minute, codes)`), and
/// drops its minutes older than two hours. Called by the in-memory tally of a
/// process at most once a second (`invite/tally.rs`): inside each resend's
/// transaction, the minute's row would serialise an organization's resends.
pub async fn count_org_sends(
    conn: &mut PgConnection,
    sent: &[(String, DateTime<Utc>, i64)],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH added AS (
             INSERT INTO org_send_counts (org_id, minute, sent)
             SELECT org_id, minute, n FROM unnest($1::text[], $2::timestamptz[], $3::bigint[]) AS k(org_id, minute, n)
             ORDER BY org_id, minute
             ON CONFLICT (org_id, minute) DO UPDATE SET sent = org_send_counts.sent + EXCLUDED.sent
         )
         DELETE FROM org_send_counts
         WHERE org_id = ANY($1) AND minute < now() - interval '2 hours'",
    )
    .bind(sent.iter().map(|s| s.0.as_str()).collect::<Vec<_>>())
    .bind(sent.iter().map(|s| s.1).collect::<Vec<_>>())
    .bind(sent.iter().map(|s| s.2).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

//! `invite_codes`: one current code per user.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

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
/// job (if any) already processed this user. One round trip, run after the user's
/// row is locked (`users::lock`): a statement that waited for that lock would read
/// the other tables as they were before the wait, and count too few codes.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IssueState {
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

pub async fn issue_state(
    conn: &mut PgConnection,
    user_id: &str,
    since: DateTime<Utc>,
    job_id: Option<&str>,
) -> Result<IssueState, sqlx::Error> {
    sqlx::query_as(
        "SELECT rc.recent_codes, rc.oldest_recent,
                ($3::text IS NOT NULL
                 AND EXISTS (SELECT 1 FROM bulk_results r WHERE r.job_id = $3 AND r.user_id = $1)) AS job_done,
                c.user_id AS c_user_id, c.code_encrypted AS c_code_encrypted, c.expires_at AS c_expires_at,
                c.url_template AS c_url_template, c.application_name AS c_application_name,
                c.channel AS c_channel, c.returned AS c_returned, c.failed_checks AS c_failed_checks,
                c.event_sequence AS c_event_sequence, c.created_at AS c_created_at
         FROM (
             SELECT count(*) AS recent_codes, min(e.created_at) AS oldest_recent FROM events e
             WHERE e.aggregate_id = $1 AND e.type = 'invite.code.added' AND e.created_at > $2
         ) rc
         LEFT JOIN invite_codes c ON c.user_id = $1",
    )
    .bind(user_id)
    .bind(since)
    .bind(job_id)
    .fetch_one(conn)
    .await
}

/// The writes of one Create or Resend.
#[derive(Debug)]
pub struct IssueWrite<'a> {
    pub user_id: &'a str,
    pub org_id: &'a str,
    pub created_by: &'a str,
    pub at: DateTime<Utc>,
    /// The `invite.code.added` payload.
    pub payload: serde_json::Value,
    pub code_encrypted: Vec<u8>,
    pub expires_at: DateTime<Utc>,
    pub url_template: &'a str,
    pub application_name: &'a str,
    pub channel: &'a str,
    pub returned: bool,
    /// The delivery to record (none for a returned code).
    pub delivery: Option<IssueDelivery<'a>>,
    /// The bulk job whose request this is: its success is recorded here.
    pub job_id: Option<&'a str>,
}

#[derive(Debug)]
pub struct IssueDelivery<'a> {
    pub id: i64,
    pub recipient: &'a str,
    pub template: &'a str,
    pub locale: &'a str,
    pub request_id: Option<&'a str>,
    pub lane: &'a str,
}

/// Appends the event, replaces the code, supersedes the deliveries still waiting,
/// records the new delivery and the job's result: one statement, one round trip.
/// Returns the event's sequence. The caller holds the user's row lock.
pub async fn write_issue(conn: &mut PgConnection, w: &IssueWrite<'_>) -> Result<i64, sqlx::Error> {
    let d = w.delivery.as_ref();
    sqlx::query_scalar(
        "WITH bumped AS (
             UPDATE users SET sequence = sequence + 1, changed_at = $3 WHERE id = $1 RETURNING sequence
         ), event AS (
             INSERT INTO events (aggregate_id, aggregate_type, sequence, type, payload, resource_owner, created_at, created_by)
             SELECT $1, 'user', bumped.sequence, 'invite.code.added', $5, $2, $3, $4 FROM bumped
             RETURNING sequence
         ), code AS (
             INSERT INTO invite_codes (user_id, code_encrypted, expires_at, url_template, application_name,
                                       channel, returned, failed_checks, event_sequence, created_at)
             SELECT $1, $6, $7, $8, $9, $10, $11, 0, event.sequence, $3 FROM event
             ON CONFLICT (user_id) DO UPDATE SET
                 code_encrypted = EXCLUDED.code_encrypted, expires_at = EXCLUDED.expires_at,
                 url_template = EXCLUDED.url_template, application_name = EXCLUDED.application_name,
                 channel = EXCLUDED.channel, returned = EXCLUDED.returned, failed_checks = 0,
                 event_sequence = EXCLUDED.event_sequence, created_at = EXCLUDED.created_at
             RETURNING event_sequence
         ), superseded AS (
             -- The same snapshot: the delivery inserted below is not among these.
             UPDATE deliveries SET status = 'superseded', updated_at = $3, lease_until = NULL
             WHERE user_id = $1 AND status IN ('queued', 'retrying')
         ), delivery AS (
             INSERT INTO deliveries (id, user_id, org_id, channel, recipient, template, locale, status,
                                     code_event_sequence, created_at, updated_at, request_id, lane, job_id)
             SELECT $12, $1, $2, $10, $13, $14, $15, 'queued', code.event_sequence, $3, $3, $16, $17, $18
             FROM code WHERE $12::bigint IS NOT NULL
         ), result AS (
             INSERT INTO bulk_results (job_id, user_id, error_id, at)
             SELECT $18, $1, NULL, $3 FROM code WHERE $18::text IS NOT NULL
             ON CONFLICT (job_id, user_id) DO NOTHING
         )
         SELECT sequence FROM event",
    )
    .bind(w.user_id)
    .bind(w.org_id)
    .bind(w.at)
    .bind(w.created_by)
    .bind(&w.payload)
    .bind(&w.code_encrypted)
    .bind(w.expires_at)
    .bind(w.url_template)
    .bind(w.application_name)
    .bind(w.channel)
    .bind(w.returned)
    .bind(d.map(|d| d.id))
    .bind(d.map(|d| d.recipient))
    .bind(d.map(|d| d.template))
    .bind(d.map(|d| d.locale))
    .bind(d.and_then(|d| d.request_id))
    .bind(d.map(|d| d.lane).unwrap_or("transactional"))
    .bind(w.job_id)
    .fetch_one(conn)
    .await
}

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

/// Stores a new code, replacing the user's earlier one (which stops verifying).
pub async fn replace(conn: &mut PgConnection, c: &InviteCodeRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO invite_codes (user_id, code_encrypted, expires_at, url_template, application_name,
                                   channel, returned, failed_checks, event_sequence, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (user_id) DO UPDATE SET
             code_encrypted = EXCLUDED.code_encrypted, expires_at = EXCLUDED.expires_at,
             url_template = EXCLUDED.url_template, application_name = EXCLUDED.application_name,
             channel = EXCLUDED.channel, returned = EXCLUDED.returned,
             failed_checks = EXCLUDED.failed_checks, event_sequence = EXCLUDED.event_sequence,
             created_at = EXCLUDED.created_at",
    )
    .bind(&c.user_id)
    .bind(&c.code_encrypted)
    .bind(c.expires_at)
    .bind(&c.url_template)
    .bind(&c.application_name)
    .bind(&c.channel)
    .bind(c.returned)
    .bind(c.failed_checks)
    .bind(c.event_sequence)
    .bind(c.created_at)
    .execute(conn)
    .await?;
    Ok(())
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

//! `deliveries` (the outbox) and `delivery_attempts`.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// A delivery to record in the invite's transaction.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: i64,
    pub user_id: String,
    pub org_id: String,
    pub channel: String,
    pub recipient: String,
    pub template: String,
    pub locale: String,
    pub code_event_sequence: i64,
    pub created_at: DateTime<Utc>,
    pub request_id: Option<String>,
}

pub async fn insert_queued(conn: &mut PgConnection, d: &NewDelivery) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO deliveries (id, user_id, org_id, channel, recipient, template, locale, status,
                                 code_event_sequence, created_at, updated_at, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $9, $9, $10)",
    )
    .bind(d.id)
    .bind(&d.user_id)
    .bind(&d.org_id)
    .bind(&d.channel)
    .bind(&d.recipient)
    .bind(&d.template)
    .bind(&d.locale)
    .bind(d.code_event_sequence)
    .bind(d.created_at)
    .bind(&d.request_id)
    .execute(conn)
    .await?;
    Ok(())
}

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

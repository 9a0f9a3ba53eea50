//! The outbox side of `deliveries`: rows committed but not yet on the broker
//! (docs/ARCHITECTURE.md, "Guarantees": nothing accepted is lost).

use sqlx::PgConnection;

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

/// Takes up to `limit` queued deliveries that were never published, marking
/// them published in the caller's transaction: the caller publishes them before
/// it commits, and hands back with [`unmark_published`] those the broker did not
/// confirm. One write per row (a lock, then an update, would be two). `SKIP
/// LOCKED` lets any number of relays (one per process) share the outbox.
///
/// The status stays a literal in the statement: the partial index
/// `deliveries_unpublished` (`status = 'queued'`) serves it only then.
pub async fn take_unpublished(conn: &mut PgConnection, limit: i64) -> Result<Vec<Unpublished>, sqlx::Error> {
    let rows: Vec<UnpublishedRow> = sqlx::query_as(
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
    .await?;
    rows.into_iter().map(Unpublished::try_from).collect()
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

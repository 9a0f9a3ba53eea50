//! `events`: the append-only history that `details` is read from.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;

/// One event to append.
#[derive(Debug)]
pub struct NewEvent<'a> {
    pub aggregate_id: &'a str,
    pub event_type: &'a str,
    pub payload: Value,
    pub resource_owner: &'a str,
    pub created_by: &'a str,
    pub at: DateTime<Utc>,
}

/// Appends an event to an existing user and returns its sequence. One statement:
/// bump the user's sequence and insert the event with it. The caller holds the
/// user's row lock (`users::lock`), so two writers never draw the same number.
pub async fn append_to_user(conn: &mut PgConnection, e: &NewEvent<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "WITH bumped AS (
             UPDATE users SET sequence = sequence + 1, changed_at = $5
             WHERE id = $1 RETURNING sequence
         )
         INSERT INTO events (aggregate_id, aggregate_type, sequence, type, payload, resource_owner, created_at, created_by)
         SELECT $1, 'user', bumped.sequence, $2, $3, $4, $5, $6 FROM bumped
         RETURNING sequence",
    )
    .bind(e.aggregate_id)
    .bind(e.event_type)
    .bind(&e.payload)
    .bind(e.resource_owner)
    .bind(e.at)
    .bind(e.created_by)
    .fetch_one(conn)
    .await
}

/// Records the first event of a new aggregate (sequence 1); the aggregate's row is
/// inserted by the caller in the same transaction.
pub async fn insert_first(conn: &mut PgConnection, aggregate_type: &str, e: &NewEvent<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO events (aggregate_id, aggregate_type, sequence, type, payload, resource_owner, created_at, created_by)
         VALUES ($1, $2, 1, $3, $4, $5, $6, $7)",
    )
    .bind(e.aggregate_id)
    .bind(aggregate_type)
    .bind(e.event_type)
    .bind(&e.payload)
    .bind(e.resource_owner)
    .bind(e.at)
    .bind(e.created_by)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the first event (sequence 1) of many new aggregates in one statement, all
/// of one type, owner, author and time; `events` pairs each aggregate id with its
/// payload. The aggregates' rows are inserted by the caller in the same transaction.
pub async fn insert_first_many(
    conn: &mut PgConnection,
    aggregate_type: &str,
    events: &[(String, Value)],
    event_type: &str,
    resource_owner: &str,
    created_by: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = events.iter().map(|(id, _)| id.as_str()).collect();
    let payloads: Vec<&Value> = events.iter().map(|(_, payload)| payload).collect();
    sqlx::query(
        "INSERT INTO events (aggregate_id, aggregate_type, sequence, type, payload, resource_owner, created_at, created_by)
         SELECT e.aggregate_id, $3, 1, $4, e.payload, $5, $6, $7
         FROM UNNEST($1::text[], $2::jsonb[]) AS e (aggregate_id, payload)",
    )
    .bind(ids)
    .bind(payloads)
    .bind(aggregate_type)
    .bind(event_type)
    .bind(resource_owner)
    .bind(at)
    .bind(created_by)
    .execute(conn)
    .await?;
    Ok(())
}

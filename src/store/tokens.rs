//! `api_tokens`.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    pub id: String,
    pub token_hash: Vec<u8>,
    pub org_id: Option<String>,
    pub permissions: Vec<String>,
    pub description: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn insert(conn: &mut PgConnection, t: &TokenRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO api_tokens (id, token_hash, org_id, permissions, description, created_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&t.id)
    .bind(&t.token_hash)
    .bind(&t.org_id)
    .bind(&t.permissions)
    .bind(&t.description)
    .bind(&t.created_by)
    .bind(t.created_at)
    .bind(t.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find_by_hash(conn: &mut PgConnection, hash: &[u8]) -> Result<Option<TokenRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM api_tokens WHERE token_hash = $1").bind(hash).fetch_optional(conn).await
}

pub async fn get(conn: &mut PgConnection, id: &str) -> Result<Option<TokenRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM api_tokens WHERE id = $1").bind(id).fetch_optional(conn).await
}

/// Revokes the token `id` and every token made with it, down the line
/// (`created_by` names the maker); tokens revoked before keep their time.
pub async fn revoke(conn: &mut PgConnection, id: &str, at: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH RECURSIVE made AS (
             SELECT id FROM api_tokens WHERE id = $1
             UNION
             SELECT t.id FROM api_tokens t JOIN made ON t.created_by = made.id
         )
         UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id IN (SELECT id FROM made)",
    )
    .bind(id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

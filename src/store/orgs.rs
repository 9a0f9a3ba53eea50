//! `organizations`.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgRow {
    pub id: String,
    pub name: String,
    pub default_language: String,
    pub login_methods: Vec<String>,
    pub sequence: i64,
    pub created_at: DateTime<Utc>,
    pub changed_at: DateTime<Utc>,
}

/// Inserts a new organization whose first event has sequence 1.
pub async fn insert(conn: &mut PgConnection, org: &OrgRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO organizations (id, name, default_language, login_methods, sequence, created_at, changed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&org.id)
    .bind(&org.name)
    .bind(&org.default_language)
    .bind(&org.login_methods)
    .bind(org.sequence)
    .bind(org.created_at)
    .bind(org.changed_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut PgConnection, id: &str) -> Result<Option<OrgRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM organizations WHERE id = $1").bind(id).fetch_optional(conn).await
}

pub fn is_duplicate_id(e: &sqlx::Error) -> bool {
    super::is_unique_violation(e, "organizations_pkey")
}

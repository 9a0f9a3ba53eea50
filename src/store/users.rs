//! `users`.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub org_id: String,
    pub username: String,
    pub given_name: String,
    pub family_name: String,
    pub display_name: String,
    pub preferred_language: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    pub phone: Option<String>,
    pub phone_verified: bool,
    pub initialized: bool,
    pub state: String,
    pub sequence: i64,
    pub created_at: DateTime<Utc>,
    pub changed_at: DateTime<Utc>,
}

/// A user together with what the invite flow needs of its organization.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserWithOrg {
    #[sqlx(flatten)]
    pub user: UserRow,
    pub org_default_language: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    #[error("username taken in this organization")]
    UsernameTaken,
    #[error("user id taken")]
    IdTaken,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub async fn insert(conn: &mut PgConnection, u: &UserRow) -> Result<(), InsertError> {
    let res = sqlx::query(
        "INSERT INTO users (id, org_id, username, given_name, family_name, display_name,
                            preferred_language, email, email_verified, phone, phone_verified,
                            initialized, state, sequence, created_at, changed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(&u.id)
    .bind(&u.org_id)
    .bind(&u.username)
    .bind(&u.given_name)
    .bind(&u.family_name)
    .bind(&u.display_name)
    .bind(&u.preferred_language)
    .bind(&u.email)
    .bind(u.email_verified)
    .bind(&u.phone)
    .bind(u.phone_verified)
    .bind(u.initialized)
    .bind(&u.state)
    .bind(u.sequence)
    .bind(u.created_at)
    .bind(u.changed_at)
    .execute(conn)
    .await;
    match res {
        Ok(_) => Ok(()),
        Err(e) if super::is_unique_violation(&e, "users_org_id_username_key") => Err(InsertError::UsernameTaken),
        Err(e) if super::is_unique_violation(&e, "users_pkey") => Err(InsertError::IdTaken),
        Err(e) => Err(e.into()),
    }
}

pub async fn get(conn: &mut PgConnection, id: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM users WHERE id = $1").bind(id).fetch_optional(conn).await
}

/// Reads the user and locks its row until the transaction ends: every write to one
/// user goes through here first, so its events get consecutive sequences.
pub async fn lock(conn: &mut PgConnection, id: &str) -> Result<Option<UserWithOrg>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.*, o.default_language AS org_default_language
         FROM users u JOIN organizations o ON o.id = u.org_id
         WHERE u.id = $1
         FOR UPDATE OF u",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The invite was verified: the user is initialized and the contact the code went
/// to is verified.
pub async fn mark_initialized(
    conn: &mut PgConnection,
    id: &str,
    email_verified: bool,
    phone_verified: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET initialized = TRUE,
                          email_verified = email_verified OR $2,
                          phone_verified = phone_verified OR $3
         WHERE id = $1",
    )
    .bind(id)
    .bind(email_verified)
    .bind(phone_verified)
    .execute(conn)
    .await?;
    Ok(())
}

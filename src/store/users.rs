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

/// Locks the users of `ids` that exist, in id order (so two batches never
/// deadlock), for the rest of the transaction.
pub async fn lock_many(conn: &mut PgConnection, ids: &[&str]) -> Result<Vec<UserWithOrg>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.*, o.default_language AS org_default_language
         FROM users u JOIN organizations o ON o.id = u.org_id
         WHERE u.id = ANY($1)
         ORDER BY u.id
         FOR UPDATE OF u",
    )
    .bind(ids)
    .fetch_all(conn)
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

/// Inserts many users in one statement (one array per column, unnested) and returns
/// the ids of the rows it inserted, in no particular order. A row whose id exists, or
/// whose username is taken in its organization (also by an earlier row of the same
/// slice), is skipped and missing from the result.
pub async fn insert_many(conn: &mut PgConnection, users: &[UserRow]) -> Result<Vec<String>, sqlx::Error> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let column = |f: fn(&UserRow) -> &str| users.iter().map(f).collect::<Vec<_>>();
    let optional = |f: fn(&UserRow) -> Option<&str>| users.iter().map(f).collect::<Vec<_>>();
    let flag = |f: fn(&UserRow) -> bool| users.iter().map(f).collect::<Vec<_>>();
    let time = |f: fn(&UserRow) -> DateTime<Utc>| users.iter().map(f).collect::<Vec<_>>();
    sqlx::query_scalar(
        "INSERT INTO users (id, org_id, username, given_name, family_name, display_name,
                            preferred_language, email, email_verified, phone, phone_verified,
                            initialized, state, sequence, created_at, changed_at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                              $7::text[], $8::text[], $9::bool[], $10::text[], $11::bool[],
                              $12::bool[], $13::text[], $14::int8[], $15::timestamptz[], $16::timestamptz[])
         ON CONFLICT DO NOTHING
         RETURNING id",
    )
    .bind(column(|u| &u.id))
    .bind(column(|u| &u.org_id))
    .bind(column(|u| &u.username))
    .bind(column(|u| &u.given_name))
    .bind(column(|u| &u.family_name))
    .bind(column(|u| &u.display_name))
    .bind(optional(|u| u.preferred_language.as_deref()))
    .bind(optional(|u| u.email.as_deref()))
    .bind(flag(|u| u.email_verified))
    .bind(optional(|u| u.phone.as_deref()))
    .bind(flag(|u| u.phone_verified))
    .bind(flag(|u| u.initialized))
    .bind(column(|u| &u.state))
    .bind(users.iter().map(|u| u.sequence).collect::<Vec<_>>())
    .bind(time(|u| u.created_at))
    .bind(time(|u| u.changed_at))
    .fetch_all(conn)
    .await
}

/// Which of `ids` are ids of existing users (of any organization).
pub async fn existing_ids(conn: &mut PgConnection, ids: &[&str]) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM users WHERE id = ANY($1)").bind(ids).fetch_all(conn).await
}

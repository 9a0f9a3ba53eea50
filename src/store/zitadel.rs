//! `zitadel_providers` and `zitadel_messages`, and the outbox rows of ZITADEL's
//! messages (docs/ARCHITECTURE.md, "ZITADEL's notifications").

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::domain::{DeliverySource, DeliveryStatus};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProviderRow {
    pub id: String,
    pub org_id: String,
    pub channel: String,
    pub signing_keys_encrypted: Vec<u8>,
    pub require_signature: bool,
    pub description: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const PROVIDER_COLUMNS: &str =
    "id, org_id, channel, signing_keys_encrypted, require_signature, description, created_by, created_at, updated_at";

pub async fn insert_provider(conn: &mut PgConnection, p: &ProviderRow) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO zitadel_providers ({PROVIDER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ))
    .bind(&p.id)
    .bind(&p.org_id)
    .bind(&p.channel)
    .bind(&p.signing_keys_encrypted)
    .bind(p.require_signature)
    .bind(&p.description)
    .bind(&p.created_by)
    .bind(p.created_at)
    .bind(p.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get_provider(pool: &PgPool, id: &str) -> Result<Option<ProviderRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {PROVIDER_COLUMNS} FROM zitadel_providers WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// The providers of one organization, or of all (`None`), oldest first.
pub async fn list_providers(pool: &PgPool, org_id: Option<&str>) -> Result<Vec<ProviderRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {PROVIDER_COLUMNS} FROM zitadel_providers WHERE ($1::text IS NULL OR org_id = $1)
         ORDER BY created_at, id"
    ))
    .bind(org_id)
    .fetch_all(pool)
    .await
}

/// What a PATCH changes; `None` keeps the stored value.
#[derive(Debug, Default)]
pub struct ProviderChange {
    pub signing_keys_encrypted: Option<Vec<u8>>,
    pub require_signature: Option<bool>,
    pub description: Option<String>,
}

pub async fn update_provider(
    pool: &PgPool,
    id: &str,
    change: &ProviderChange,
    at: DateTime<Utc>,
) -> Result<Option<ProviderRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE zitadel_providers SET signing_keys_encrypted = COALESCE($2, signing_keys_encrypted),
                require_signature = COALESCE($3, require_signature), description = COALESCE($4, description),
                updated_at = $5
         WHERE id = $1 RETURNING {PROVIDER_COLUMNS}"
    ))
    .bind(id)
    .bind(&change.signing_keys_encrypted)
    .bind(change.require_signature)
    .bind(&change.description)
    .bind(at)
    .fetch_optional(pool)
    .await
}

pub async fn delete_provider(pool: &PgPool, id: &str) -> Result<bool, sqlx::Error> {
    let res = sqlx::query("DELETE FROM zitadel_providers WHERE id = $1").bind(id).execute(pool).await?;
    Ok(res.rows_affected() > 0)
}

/// A message accepted from a provider, with its delivery.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub delivery_id: i64,
    pub provider_id: String,
    pub org_id: String,
    pub channel: String,
    pub recipient: String,
    pub event_type: String,
    pub dedupe_key: Vec<u8>,
    pub message_encrypted: Vec<u8>,
    pub expires_at: Option<DateTime<Utc>>,
    pub request_id: Option<String>,
    pub at: DateTime<Utc>,
}

/// What storing a message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// New: the message and its delivery row are committed.
    New(i64),
    /// The provider posted this message before: the first post's delivery.
    Duplicate(i64),
}

/// Stores the message and its delivery row (the outbox) in one transaction, or,
/// when the provider posted the same message before, finds that one's delivery.
///
/// The message is inserted first with `ON CONFLICT DO NOTHING`: of two identical
/// posts at once, the second waits on the unique key until the first commits, then
/// inserts nothing and reads the first one's delivery id. The delivery row is
/// inserted by the same statement, and only when the message was; the foreign key
/// from the message to it is checked at the end of that statement.
pub async fn store_message(pool: &PgPool, m: &NewMessage) -> Result<Stored, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let inserted: Option<i64> = sqlx::query_scalar(
        "WITH message AS (
             INSERT INTO zitadel_messages (delivery_id, provider_id, event_type, dedupe_key, message_encrypted,
                                           received_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $13)
             ON CONFLICT (provider_id, dedupe_key) DO NOTHING
             RETURNING delivery_id
         )
         INSERT INTO deliveries (id, user_id, org_id, channel, recipient, template, locale, status,
                                 code_event_sequence, created_at, updated_at, request_id, source)
         SELECT delivery_id, NULL, $7, $8, $9, $3, '', $10, NULL, $6, $6, $11, $12 FROM message
         RETURNING id",
    )
    .bind(m.delivery_id)
    .bind(&m.provider_id)
    .bind(&m.event_type)
    .bind(&m.dedupe_key)
    .bind(&m.message_encrypted)
    .bind(m.at)
    .bind(&m.org_id)
    .bind(&m.channel)
    .bind(&m.recipient)
    .bind(DeliveryStatus::Queued.as_str())
    .bind(&m.request_id)
    .bind(DeliverySource::Zitadel.as_str())
    .bind(m.expires_at)
    .fetch_optional(&mut *tx)
    .await?;
    let stored = match inserted {
        Some(id) => Stored::New(id),
        None => {
            let first: i64 = sqlx::query_scalar(
                "SELECT delivery_id FROM zitadel_messages WHERE provider_id = $1 AND dedupe_key = $2",
            )
            .bind(&m.provider_id)
            .bind(&m.dedupe_key)
            .fetch_one(&mut *tx)
            .await?;
            Stored::Duplicate(first)
        }
    };
    tx.commit().await?;
    Ok(stored)
}

/// A stored message, read with its delivery's claim (`deliveries::claim_many`).
#[derive(Clone)]
pub struct StoredMessage {
    pub provider_id: String,
    pub event_type: String,
    /// The posted JSON, sealed to the delivery id (it holds ZITADEL's code).
    pub message_encrypted: Vec<u8>,
}

/// Redacted like the sealed bytes deserve: ids only.
impl std::fmt::Debug for StoredMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoredMessage({}, {})", self.provider_id, self.event_type)
    }
}

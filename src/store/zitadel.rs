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
    /// herald's invite template in place of ZITADEL's texts for invite codes.
    pub use_herald_invite_template: bool,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const PROVIDER_COLUMNS: &str = "id, org_id, channel, signing_keys_encrypted, require_signature, description, \
     use_herald_invite_template, created_by, created_at, updated_at";

pub async fn insert_provider(conn: &mut PgConnection, p: &ProviderRow) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO zitadel_providers ({PROVIDER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(&p.id)
    .bind(&p.org_id)
    .bind(&p.channel)
    .bind(&p.signing_keys_encrypted)
    .bind(p.require_signature)
    .bind(&p.description)
    .bind(p.use_herald_invite_template)
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
    pub use_herald_invite_template: Option<bool>,
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
                use_herald_invite_template = COALESCE($6, use_herald_invite_template), updated_at = $5
         WHERE id = $1 RETURNING {PROVIDER_COLUMNS}"
    ))
    .bind(id)
    .bind(&change.signing_keys_encrypted)
    .bind(change.require_signature)
    .bind(&change.description)
    .bind(at)
    .bind(change.use_herald_invite_template)
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

/// Stores messages and their delivery rows (the outbox) in one transaction, or,
/// for a message its provider posted before, finds that one's delivery: one
/// answer per message, in order. Several posts share a transaction under load
/// (`zitadel::receive`), so the commits PostgreSQL flushes do not grow with them.
///
/// The messages are inserted first with `ON CONFLICT DO NOTHING`, in key order (two
/// transactions with overlapping keys then wait on each other in one order, never
/// deadlock): a post whose key another transaction is inserting waits until that one
/// commits, then inserts nothing; the same key twice in one set is inserted once.
/// The delivery rows are inserted by the same statement, for the messages that were;
/// the foreign key from a message to its delivery is checked at the end of it.
/// Whatever was not inserted reads the delivery of the message that was.
pub async fn store_messages(pool: &PgPool, messages: &[NewMessage]) -> Result<Vec<Stored>, sqlx::Error> {
    let mut order: Vec<&NewMessage> = messages.iter().collect();
    order.sort_by(|a, b| (&a.provider_id, &a.dedupe_key).cmp(&(&b.provider_id, &b.dedupe_key)));
    let col = |f: fn(&NewMessage) -> String| order.iter().map(|m| f(m)).collect::<Vec<_>>();
    let mut tx = pool.begin().await?;
    let inserted: Vec<i64> = sqlx::query_scalar(
        "WITH input AS (
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                                  $7::bytea[], $8::bytea[], $9::timestamptz[], $10::text[], $11::timestamptz[])
                 WITH ORDINALITY AS i(delivery_id, provider_id, org_id, channel, recipient, event_type, dedupe_key,
                                      message_encrypted, expires_at, request_id, at, n)
         ), message AS (
             INSERT INTO zitadel_messages (delivery_id, provider_id, event_type, dedupe_key, message_encrypted,
                                           received_at, expires_at)
             SELECT delivery_id, provider_id, event_type, dedupe_key, message_encrypted, at, expires_at
             FROM input ORDER BY n
             ON CONFLICT (provider_id, dedupe_key) DO NOTHING
             RETURNING delivery_id
         ), delivery AS (
             INSERT INTO deliveries (id, user_id, org_id, channel, recipient, template, locale, status,
                                     code_event_sequence, created_at, updated_at, request_id, source)
             SELECT i.delivery_id, NULL, i.org_id, i.channel, i.recipient, i.event_type, '', $12, NULL, i.at, i.at,
                    i.request_id, $13
             FROM input i JOIN message m ON m.delivery_id = i.delivery_id
             RETURNING id
         ), opened AS (
             INSERT INTO delivery_open (id) SELECT id FROM delivery
         ), outboxed AS (
             INSERT INTO delivery_outbox (id) SELECT id FROM delivery
         )
         SELECT id FROM delivery",
    )
    .bind(order.iter().map(|m| m.delivery_id).collect::<Vec<_>>())
    .bind(col(|m| m.provider_id.clone()))
    .bind(col(|m| m.org_id.clone()))
    .bind(col(|m| m.channel.clone()))
    .bind(col(|m| m.recipient.clone()))
    .bind(col(|m| m.event_type.clone()))
    .bind(order.iter().map(|m| m.dedupe_key.clone()).collect::<Vec<_>>())
    .bind(order.iter().map(|m| m.message_encrypted.clone()).collect::<Vec<_>>())
    .bind(order.iter().map(|m| m.expires_at).collect::<Vec<_>>())
    .bind(order.iter().map(|m| m.request_id.clone()).collect::<Vec<_>>())
    .bind(order.iter().map(|m| m.at).collect::<Vec<_>>())
    .bind(DeliveryStatus::Queued.as_str())
    .bind(DeliverySource::Zitadel.as_str())
    .fetch_all(&mut *tx)
    .await?;
    let inserted: std::collections::HashSet<i64> = inserted.into_iter().collect();
    let others: Vec<&NewMessage> = messages.iter().filter(|m| !inserted.contains(&m.delivery_id)).collect();
    let firsts: Vec<(String, Vec<u8>, i64)> = if others.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as(
            "SELECT z.provider_id, z.dedupe_key, z.delivery_id
             FROM zitadel_messages z
             JOIN unnest($1::text[], $2::bytea[]) AS k(provider_id, dedupe_key)
               ON z.provider_id = k.provider_id AND z.dedupe_key = k.dedupe_key",
        )
        .bind(others.iter().map(|m| m.provider_id.clone()).collect::<Vec<_>>())
        .bind(others.iter().map(|m| m.dedupe_key.clone()).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?
    };
    tx.commit().await?;
    messages
        .iter()
        .map(|m| {
            if inserted.contains(&m.delivery_id) {
                return Ok(Stored::New(m.delivery_id));
            }
            firsts
                .iter()
                .find(|(p, k, _)| *p == m.provider_id && *k == m.dedupe_key)
                .map(|(_, _, id)| Stored::Duplicate(*id))
                .ok_or_else(|| sqlx::Error::RowNotFound)
        })
        .collect()
}

/// A stored message, read with its delivery's claim (`deliveries::claim_many`).
#[derive(Clone)]
pub struct StoredMessage {
    pub provider_id: String,
    pub event_type: String,
    /// The posted JSON, sealed to the delivery id (it holds ZITADEL's code).
    pub message_encrypted: Vec<u8>,
    pub received_at: DateTime<Utc>,
    /// Its provider asks for herald's invite template (false once the provider
    /// is removed: a replay then shows ZITADEL's texts).
    pub use_herald_invite_template: bool,
    /// The organization's default language (`organizations.default_language`).
    pub org_language: String,
}

/// Redacted like the sealed bytes deserve: ids only.
impl std::fmt::Debug for StoredMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoredMessage({}, {})", self.provider_id, self.event_type)
    }
}

/// The columns of a delivery's claim that carry its ZITADEL message, if any
/// (`deliveries::claim_many`).
#[derive(sqlx::FromRow)]
pub(super) struct ClaimedMessage {
    zitadel_provider: Option<String>,
    zitadel_event: Option<String>,
    message_encrypted: Option<Vec<u8>>,
    zitadel_received_at: Option<DateTime<Utc>>,
    org_language: String,
    use_herald_invite_template: bool,
}

impl ClaimedMessage {
    /// The message, for a ZITADEL delivery; None for an invite's.
    pub(super) fn stored(self) -> Option<StoredMessage> {
        Some(StoredMessage {
            provider_id: self.zitadel_provider?,
            event_type: self.zitadel_event?,
            message_encrypted: self.message_encrypted?,
            received_at: self.zitadel_received_at?,
            use_herald_invite_template: self.use_herald_invite_template,
            org_language: self.org_language,
        })
    }
}

//! `deliveries`: the claim of the write path and ending the deliveries still
//! waiting. The outbox (the relay's rows) is in [`super::outbox`], the attempt log in
//! [`super::delivery_log`], the operators' side in [`super::delivery_views`]; their
//! names are re-exported here for the modules that import them from `deliveries`.
//!
//! Statuses, channels and lanes cross into SQL only as `as_str()` and come back
//! only through `parse()` ([`word`]). No index of `deliveries` names a status (so
//! its updates stay HOT): the open and the dead deliveries are found through their
//! own narrow tables, `delivery_open` and `delivery_dead` (migration 0011).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::domain::{Channel, DeliverySource, DeliveryStatus, Lane};

pub use super::delivery_log::{attempts, record_attempts, AttemptRecord, AttemptRow};
pub use super::outbox::{outbox_backlog, take_unpublished, Unpublished};

/// Reads a word of a text column (a status, channel, lane) as its type; a word
/// the type does not know is a decoding error, never a default.
pub(crate) fn word<T>(text: &str) -> Result<T, sqlx::Error>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    text.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// Ends the user's deliveries that have not gone out yet with `status`
/// (`superseded` when a new code replaces theirs, `cancelled` when the invite was
/// verified), and takes them out of the open set. Returns how many changed.
pub async fn end_waiting(
    conn: &mut PgConnection,
    user_id: &str,
    status: &str,
    at: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let ended: i64 = sqlx::query_scalar(
        "WITH ended AS (
             UPDATE deliveries SET status = $2, updated_at = $3, lease_until = NULL
             WHERE user_id = $1 AND status = ANY($4)
             RETURNING id
         ), closed AS (
             DELETE FROM delivery_open WHERE id IN (SELECT id FROM ended)
         )
         SELECT count(*) FROM ended",
    )
    .bind(user_id)
    .bind(status)
    .bind(at)
    .bind([DeliveryStatus::Queued, DeliveryStatus::Retrying].map(DeliveryStatus::as_str).to_vec())
    .fetch_one(conn)
    .await?;
    Ok(u64::try_from(ended).unwrap_or_default())
}

/// A delivery with everything needed to render and send it, read under the
/// delivery's row lock.
#[derive(Debug, Clone)]
pub struct DeliveryContext {
    pub id: i64,
    pub status: DeliveryStatus,
    pub lease_until: Option<DateTime<Utc>>,
    pub attempts: i32,
    pub channel: Channel,
    pub lane: Lane,
    pub recipient: String,
    pub locale: String,
    pub code_event_sequence: i64,
    pub user_id: String,
    pub org_id: String,
    pub display_name: String,
    pub given_name: String,
    pub family_name: String,
    pub username: String,
    pub initialized: bool,
    pub org_name: String,
    pub login_methods: Vec<String>,
    pub code_encrypted: Option<Vec<u8>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub url_template: Option<String>,
    pub application_name: Option<String>,
    pub current_sequence: Option<i64>,
    /// The stored message of a ZITADEL delivery (whose user fields above are blank).
    pub zitadel: Option<super::zitadel::StoredMessage>,
}

/// What claiming a delivery found.
#[derive(Debug)]
pub enum Claim {
    /// No such delivery.
    Missing,
    /// Already in a final state (`Sent`, `Dead`, …): nothing to do.
    Finished(DeliveryStatus),
    /// Its code is no longer the one to send: marked `Superseded`, `Expired` or
    /// `Cancelled` now.
    Stale(DeliveryStatus),
    /// Another worker holds an unexpired lease on it.
    Leased,
    /// Ours to send: now `Sending`, attempts incremented, leased until the given time.
    Claimed(Box<DeliveryContext>),
}

/// Who claims: the claiming process's row (`herald_processes`), and how long a
/// process may be silent before it counts as dead.
#[derive(Debug, Clone, Copy)]
pub struct Holder {
    pub process: i64,
    pub dead_after: std::time::Duration,
}

/// Claims deliveries for sending (`queued|retrying → sending`, with a lease, held
/// by `holder`'s process), or says for each why not. A `sending` row whose lease
/// ran out, or whose holder's process is dead (docs/ARCHITECTURE.md, "Guarantees":
/// `kill -9`), can be claimed again. Stale deliveries are ended by the same statement
/// (docs/ARCHITECTURE.md, "Guarantees": a stale code is never sent). A ZITADEL
/// delivery has no herald user or code to be stale: it is claimed as it is
/// (docs/ARCHITECTURE.md, "ZITADEL's notifications").
///
/// One statement for the whole set: it locks the rows (in id order, so two
/// claims never deadlock), decides, updates and returns what the senders need. An
/// id that appears twice is claimed once: the answer is given for each distinct id.
/// Ids of no delivery are missing from the answer.
pub async fn claim_many(
    pool: &sqlx::PgPool,
    ids: &[i64],
    lease: chrono::Duration,
    holder: Holder,
) -> Result<Vec<(i64, Claim)>, sqlx::Error> {
    let lease_until = Utc::now() + lease;
    let dead = super::processes::dead_rule("$6");
    let rows: Vec<ClaimRow> = sqlx::query_as::<_, ClaimRow>(&format!(
        "WITH locked AS (
             -- Locked alone, with no join: after waiting for a row another claim
             -- holds, PostgreSQL re-reads the locked row but keeps the joined rows
             -- it found before the wait; the holder's process joined here would be
             -- the old holder's (or none) and a fresh claim would look dead.
             SELECT id, status, lease_until, attempts, claimed_by FROM deliveries
             WHERE id = ANY($1)
             ORDER BY id
             FOR UPDATE
         ), ctx AS (
             SELECT l.id, l.status, l.lease_until, l.attempts, d.channel, d.lane, d.recipient, d.locale, d.source,
                    COALESCE(d.code_event_sequence, 0) AS code_event_sequence, COALESCE(d.user_id, '') AS user_id,
                    d.org_id, COALESCE(u.display_name, '') AS display_name,
                    COALESCE(u.given_name, '') AS given_name, COALESCE(u.family_name, '') AS family_name,
                    COALESCE(u.username, '') AS username, COALESCE(u.initialized, FALSE) AS initialized,
                    o.name AS org_name, o.login_methods,
                    -- A ZITADEL message that named no expiry: only max_attempts bounds its retries.
                    c.code_encrypted, COALESCE(c.expires_at, m.expires_at,
                        CASE WHEN d.source = $7 THEN now() + interval '1 year' END) AS expires_at, c.url_template,
                    c.application_name, c.event_sequence AS current_sequence,
                    m.provider_id AS zitadel_provider, m.event_type AS zitadel_event, m.message_encrypted,
                    m.received_at AS zitadel_received_at, o.default_language AS org_language,
                    COALESCE(zp.use_herald_invite_template, FALSE) AS use_herald_invite_template,
                    {dead} AS holder_dead
             FROM locked l
             JOIN deliveries d ON d.id = l.id
             LEFT JOIN herald_processes p ON p.id = l.claimed_by
             LEFT JOIN users u ON u.id = d.user_id
             JOIN organizations o ON o.id = d.org_id
             LEFT JOIN invite_codes c ON c.user_id = d.user_id
             LEFT JOIN zitadel_messages m ON m.delivery_id = d.id
             LEFT JOIN zitadel_providers zp ON zp.id = m.provider_id
         ), decided AS (
             SELECT id, CASE
                 WHEN NOT (status = ANY($4)) THEN 'finished'
                 WHEN status = $3 AND lease_until > now() AND NOT holder_dead THEN 'leased'
                 WHEN source = $7 THEN 'claimed'
                 WHEN initialized THEN 'cancelled'
                 WHEN current_sequence IS DISTINCT FROM code_event_sequence THEN 'superseded'
                 WHEN code_encrypted IS NULL OR expires_at IS NULL OR expires_at <= now() THEN 'expired'
                 ELSE 'claimed' END AS verdict
             FROM ctx
         ), changed AS (
             UPDATE deliveries x SET
                 status = CASE WHEN v.verdict = 'claimed' THEN $3 ELSE v.verdict END,
                 attempts = x.attempts + CASE WHEN v.verdict = 'claimed' THEN 1 ELSE 0 END,
                 lease_until = CASE WHEN v.verdict = 'claimed' THEN $2 ELSE NULL END,
                 claimed_by = CASE WHEN v.verdict = 'claimed' THEN $5 ELSE NULL END,
                 -- A message of it reached a worker: published, whether or not the
                 -- relay has marked it yet (`outbox::mark_published`).
                 published_at = COALESCE(x.published_at, now()), publishing_until = NULL,
                 updated_at = now()
             FROM decided v
             WHERE x.id = v.id AND v.verdict IN ('claimed', 'cancelled', 'superseded', 'expired')
             RETURNING x.id, x.attempts, x.status
         ), closed AS (
             -- Ended by the claim itself: out of the open set in the same statement.
             DELETE FROM delivery_open WHERE id IN (SELECT id FROM changed WHERE status <> $3)
         )
         SELECT v.verdict, ctx.status, ctx.id,
                COALESCE(changed.attempts, ctx.attempts) AS attempts, ctx.channel, ctx.lane, ctx.recipient,
                ctx.locale, ctx.code_event_sequence, ctx.user_id, ctx.org_id, ctx.display_name, ctx.given_name,
                ctx.family_name, ctx.username, ctx.initialized, ctx.org_name, ctx.login_methods,
                ctx.code_encrypted, ctx.expires_at, ctx.url_template, ctx.application_name, ctx.current_sequence,
                ctx.zitadel_provider, ctx.zitadel_event, ctx.message_encrypted, ctx.zitadel_received_at,
                ctx.org_language, ctx.use_herald_invite_template
         FROM ctx JOIN decided v ON v.id = ctx.id LEFT JOIN changed ON changed.id = ctx.id"
    ))
    .bind(ids)
    .bind(lease_until)
    .bind(DeliveryStatus::Sending.as_str())
    .bind(DeliveryStatus::WAITING.map(DeliveryStatus::as_str).to_vec())
    .bind(holder.process)
    .bind(holder.dead_after.as_secs_f64())
    .bind(DeliverySource::Zitadel.as_str())
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(|row| row.into_claim(lease_until)).collect()
}

/// A row of the claim, as PostgreSQL returns it: `verdict` is the claim's own
/// word (`finished`, `leased`, `claimed`) or the stale status it set; `status` the
/// delivery's status before the claim.
#[derive(sqlx::FromRow)]
struct ClaimRow {
    verdict: String,
    status: String,
    id: i64,
    attempts: i32,
    channel: String,
    lane: String,
    recipient: String,
    locale: String,
    code_event_sequence: i64,
    user_id: String,
    org_id: String,
    display_name: String,
    given_name: String,
    family_name: String,
    username: String,
    initialized: bool,
    org_name: String,
    login_methods: Vec<String>,
    code_encrypted: Option<Vec<u8>>,
    expires_at: Option<DateTime<Utc>>,
    url_template: Option<String>,
    application_name: Option<String>,
    current_sequence: Option<i64>,
    #[sqlx(flatten)]
    zitadel: super::zitadel::ClaimedMessage,
}

impl ClaimRow {
    fn into_claim(self, lease_until: DateTime<Utc>) -> Result<(i64, Claim), sqlx::Error> {
        let claim = match self.verdict.as_str() {
            "finished" => Claim::Finished(word(&self.status)?),
            "leased" => Claim::Leased,
            "claimed" => Claim::Claimed(Box::new(DeliveryContext {
                id: self.id,
                status: DeliveryStatus::Sending,
                lease_until: Some(lease_until),
                attempts: self.attempts,
                channel: word(&self.channel)?,
                lane: word(&self.lane)?,
                recipient: self.recipient,
                locale: self.locale,
                code_event_sequence: self.code_event_sequence,
                user_id: self.user_id,
                org_id: self.org_id,
                display_name: self.display_name,
                given_name: self.given_name,
                family_name: self.family_name,
                username: self.username,
                initialized: self.initialized,
                org_name: self.org_name,
                login_methods: self.login_methods,
                code_encrypted: self.code_encrypted,
                expires_at: self.expires_at,
                url_template: self.url_template,
                application_name: self.application_name,
                current_sequence: self.current_sequence,
                zitadel: self.zitadel.stored(),
            })),
            stale => Claim::Stale(word(stale)?),
        };
        Ok((self.id, claim))
    }
}

pub use super::delivery_views::{
    dead_ids, get, list, lock_for_replay, requeue, supersede_dead, DeliveryFilter, DeliveryRow, ReplayCandidate,
};

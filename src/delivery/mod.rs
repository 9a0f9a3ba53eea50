//! Deliveries: claim → render → send → record, the retry policy, the outbox relay.
//!
//! [`Pipeline::handle`] is the whole life of one broker message, as a plain async
//! function; the actors around it ([`worker::DeliveryWorker`], the generic
//! `queue::QueueConsumer`) are shells. Every decision is recorded in PostgreSQL
//! before the message is acknowledged.

pub mod relay;
pub mod retry;
pub mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tracing::Instrument;

use crate::batch::Batcher;
use crate::channels::{EmailSender, OutgoingEmail, OutgoingSms, SendEmail, SendError, SendSms, SmsSender};
use crate::domain::{CodeCipher, LoginMethod, UrlTemplate};
use crate::metrics::Metrics;
use crate::queue::{Disposition, Incoming, Outgoing};
use crate::render::{InviteData, RenderEmail, RenderSms, Renderer};
use crate::store::{self, deliveries::AttemptRecord, deliveries::Claim, deliveries::DeliveryContext};

pub use relay::OutboxRelay;
pub use worker::DeliveryWorker;

/// The `type` of a delivery message.
pub const MESSAGE_TYPE: &str = "delivery.v1";

/// `delivery.v1`: ids only. Never a code, an address or a name. One delivery
/// (`deliveryId`), or several (`deliveryIds`: the relay sends bulk deliveries 100
/// per message; each is claimed, sent, retried or parked on its own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryMessage {
    pub v: u8,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub delivery_id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivery_ids: Vec<String>,
    pub attempt: u32,
}

impl DeliveryMessage {
    /// The message for one delivery.
    pub fn one(id: i64, attempt: u32) -> Self {
        DeliveryMessage { v: 1, delivery_id: id.to_string(), delivery_ids: vec![], attempt }
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serialising a struct of strings and integers cannot fail.
        serde_json::to_vec(self).expect("serialisable")
    }

    /// The deliveries it names, or why it names none.
    fn ids(&self) -> Result<Vec<i64>, String> {
        if self.v != 1 {
            return Err(format!("unknown version {}", self.v));
        }
        let ids = match (self.delivery_id.is_empty(), self.delivery_ids.is_empty()) {
            (false, true) => std::slice::from_ref(&self.delivery_id),
            (true, false) if self.delivery_ids.len() <= MAX_IDS_PER_MESSAGE => self.delivery_ids.as_slice(),
            (true, false) => return Err(format!("deliveryIds holds more than {MAX_IDS_PER_MESSAGE} ids")),
            _ => return Err("exactly one of deliveryId and deliveryIds is required".into()),
        };
        ids.iter().map(|id| id.parse::<i64>().map_err(|e| format!("deliveryId {id:?}: {e}"))).collect()
    }
}

/// Bulk deliveries per message from the relay: one message per delivery made the
/// broker's work a fifth of the machine's CPU at bulk rates.
pub const IDS_PER_MESSAGE: usize = 100;
/// Most deliveries one message may name.
const MAX_IDS_PER_MESSAGE: usize = 1_000;
/// Deliveries being handled at once per worker (a multi-delivery message counts
/// each): bounds memory, as `amqp.prefetch` counts messages.
const DELIVERIES_IN_FLIGHT: usize = 512;

/// The message for a delivery, with its tracing headers.
pub fn outgoing(
    exchange: &str,
    id: i64,
    channel: &str,
    lane: &str,
    attempt: u32,
    request_id: Option<&str>,
) -> Outgoing {
    let mut headers = BTreeMap::new();
    let request_id = request_id.map(str::to_string).unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()));
    headers.insert("traceparent".to_string(), traceparent(&request_id));
    headers.insert("x-request-id".to_string(), request_id);
    Outgoing {
        exchange: exchange.to_string(),
        // `delivery.email` for transactional work, `bulk.email` for bulk re-invites.
        routing_key: if lane == "bulk" { format!("bulk.{channel}") } else { format!("delivery.{channel}") },
        cc: vec![],
        kind: MESSAGE_TYPE.into(),
        body: DeliveryMessage::one(id, attempt).encode(),
        headers,
        message_id: Some(format!("delivery-{id}-{attempt}")),
    }
}

/// One message for several bulk deliveries of one channel (each on its first
/// attempt as far as the relay knows; the claim counts the real attempts).
pub fn outgoing_many(exchange: &str, ids: &[i64], channel: &str, request_id: Option<&str>) -> Outgoing {
    let first = ids.first().copied().unwrap_or_default();
    let mut message = outgoing(exchange, first, channel, "bulk", 1, request_id);
    message.body = DeliveryMessage {
        v: 1,
        delivery_id: String::new(),
        delivery_ids: ids.iter().map(i64::to_string).collect(),
        attempt: 1,
    }
    .encode();
    message.message_id = Some(format!("deliveries-{first}-{}", ids.len()));
    message
}

/// A W3C `traceparent` whose trace id is the request id when it is 32 hex digits
/// (herald's own ids are), so one trace id follows a resend end to end.
pub fn traceparent(request_id: &str) -> String {
    let trace = if request_id.len() == 32 && request_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        request_id.to_ascii_lowercase()
    } else {
        format!("{:032x}", rand::random::<u128>())
    };
    format!("00-{trace}-{:016x}-01", rand::random::<u64>())
}

/// The `delivery` settings the pipeline needs.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub delays: Vec<Duration>,
    pub max_attempts: u32,
    /// How long a claim holds a delivery; longer than any one send can take.
    pub lease: Duration,
}

/// Everything one delivery needs, shared by all in flight.
#[derive(Clone)]
pub struct Pipeline {
    pub pool: PgPool,
    pub cipher: CodeCipher,
    pub renderer: Addr<Renderer>,
    pub email: Addr<EmailSender>,
    pub sms: Addr<SmsSender>,
    pub policy: Arc<RetryPolicy>,
    pub metrics: Metrics,
    /// Claims and attempt records gathered into set-based statements (see
    /// [`Pipeline::batched`]); without them each delivery runs its own.
    pub batches: Option<Batches>,
}

/// The batchers of one worker thread.
#[derive(Clone)]
pub struct Batches {
    claims: Batcher<i64, Result<Claim, String>>,
    records: Batcher<AttemptRecord, Result<(), String>>,
    in_flight: Arc<tokio::sync::Semaphore>,
}

/// Most deliveries claimed or recorded by one statement.
const BATCH_MAX: usize = 256;
/// Statements of each kind in flight per worker: one runs while the next batch gathers.
const BATCH_CONCURRENCY: usize = 2;

/// One claim per submitted id, in order. A delivery submitted twice in one batch
/// (a duplicate message) is claimed by the first; the second is told it is leased
/// and looks again later, when it will find the delivery finished.
fn answer_claims(ids: &[i64], found: Vec<(i64, Claim)>) -> Vec<Claim> {
    let mut found: std::collections::HashMap<i64, Claim> = found.into_iter().collect();
    let mut answered = std::collections::HashSet::new();
    ids.iter()
        .map(|id| match found.remove(id) {
            Some(claim) => {
                answered.insert(*id);
                claim
            }
            None if answered.contains(id) => Claim::Leased,
            None => Claim::Missing,
        })
        .collect()
}

/// How an attempt ended, before it is recorded.
enum Attempted {
    Sent(Option<String>),
    Failed(SendError),
}

impl Pipeline {
    /// This pipeline with its claims and records batched: under load, a worker
    /// claims and records many deliveries per statement instead of one. Call it on
    /// the thread that will run the deliveries (the batchers live there).
    pub fn batched(mut self) -> Self {
        let (pool, lease) = (self.pool.clone(), self.lease());
        let claims = Batcher::start(BATCH_MAX, BATCH_CONCURRENCY, move |ids: Vec<i64>| {
            let pool = pool.clone();
            async move {
                match store::deliveries::claim_many(&pool, &ids, lease).await {
                    Ok(found) => answer_claims(&ids, found).into_iter().map(Ok).collect(),
                    Err(e) => ids.iter().map(|_| Err(e.to_string())).collect(),
                }
            }
        });
        let pool = self.pool.clone();
        let records = Batcher::start(BATCH_MAX, BATCH_CONCURRENCY, move |records: Vec<AttemptRecord>| {
            let pool = pool.clone();
            async move {
                match store::deliveries::record_attempts(&pool, &records).await {
                    Ok(()) => vec![Ok(()); records.len()],
                    // One failed statement must not leave a whole batch of sent
                    // deliveries to be sent again: record each on its own.
                    Err(e) => {
                        tracing::warn!(error = %e, n = records.len(), "recording a batch failed; recording one by one");
                        let mut results = Vec::with_capacity(records.len());
                        for r in records {
                            let one = store::deliveries::record_attempts(&pool, std::slice::from_ref(&r)).await;
                            results.push(one.map_err(|e| e.to_string()));
                        }
                        results
                    }
                }
            }
        });
        let in_flight = Arc::new(tokio::sync::Semaphore::new(DELIVERIES_IN_FLIGHT));
        self.batches = Some(Batches { claims, records, in_flight });
        self
    }

    fn lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.policy.lease).unwrap_or(chrono::Duration::seconds(60))
    }

    async fn claim(&self, id: i64) -> Result<Claim, String> {
        match &self.batches {
            Some(b) => b.claims.submit(id).await.unwrap_or_else(|| Err("claim batcher stopped".into())),
            None => store::deliveries::claim_many(&self.pool, &[id], self.lease())
                .await
                .map(|mut found| found.pop().map_or(Claim::Missing, |(_, c)| c))
                .map_err(|e| e.to_string()),
        }
    }

    async fn record(&self, record: AttemptRecord) -> Result<(), String> {
        match &self.batches {
            Some(b) => b.records.submit(record).await.unwrap_or_else(|| Err("record batcher stopped".into())),
            None => store::deliveries::record_attempts(&self.pool, &[record]).await.map_err(|e| e.to_string()),
        }
    }

    fn shortest_delay(&self) -> Duration {
        self.policy.delays.iter().copied().min().unwrap_or(Duration::from_secs(5))
    }

    /// Handles one `delivery.v1` message and says what to do with it.
    pub async fn handle(&self, msg: Incoming) -> Disposition {
        let parsed = serde_json::from_slice::<DeliveryMessage>(&msg.body)
            .map_err(|e| e.to_string())
            .and_then(|m| m.ids().map(|ids| (m, ids)));
        let (message, ids) = match parsed {
            Ok(p) => p,
            Err(reason) => {
                tracing::warn!(%reason, kind = ?msg.kind, "unparsable delivery message; parking it in the dead queue");
                return Disposition::Dead { reason: format!("unparsable delivery message: {reason}") };
            }
        };
        let request_id = msg.headers.get("x-request-id").cloned().unwrap_or_default();
        let one = |id: i64| {
            let span =
                tracing::info_span!("delivery", delivery_id = id, request_id = %request_id, attempt = message.attempt);
            let body = DeliveryMessage::one(id, message.attempt).encode();
            async move {
                let _slot = match &self.batches {
                    Some(b) => Some(b.in_flight.acquire().await),
                    None => None,
                };
                (body.clone(), self.deliver(id, body).await)
            }
            .instrument(span)
        };
        if message.delivery_ids.is_empty() {
            return one(ids[0]).await.1;
        }
        let outcomes = futures_util::future::join_all(ids.into_iter().map(one)).await;
        if outcomes.iter().all(|(_, d)| *d == Disposition::Ack) {
            Disposition::Ack
        } else {
            Disposition::Each(outcomes)
        }
    }

    async fn deliver(&self, id: i64, body: Vec<u8>) -> Disposition {
        let ctx = match self.claim(id).await {
            Ok(Claim::Claimed(ctx)) => ctx,
            Ok(Claim::Missing) => {
                tracing::warn!("message for an unknown delivery");
                return Disposition::Dead { reason: format!("unknown delivery {id}") };
            }
            Ok(Claim::Finished(status)) => {
                tracing::debug!(%status, "already finished; skipping");
                return Disposition::Ack;
            }
            Ok(Claim::Stale(status)) => {
                tracing::info!(status, "not sent: the code is stale");
                return Disposition::Ack;
            }
            // Another worker is sending it, or died doing so: look again once the
            // lease may have run out. Acking would lose it if that worker is dead.
            Ok(Claim::Leased) => return Disposition::Retry { delay: self.shortest_delay(), body },
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim (database); retrying later");
                return Disposition::Retry { delay: self.shortest_delay(), body };
            }
        };
        self.metrics.delivery(&ctx.channel, "sending");
        let started_at = Utc::now();
        let clock = Instant::now();
        let result = self.attempt(&ctx).await;
        let elapsed = clock.elapsed();
        let attempt = ctx.attempts;
        let (outcome, error, status, next_attempt_at, provider_id, disposition) = match &result {
            Attempted::Sent(provider) => ("sent", None, "sent", None, provider.clone(), Disposition::Ack),
            Attempted::Failed(SendError::Permanent { message }) => {
                ("permanent", Some(message.clone()), "dead", None, None, Disposition::Dead { reason: message.clone() })
            }
            Attempted::Failed(SendError::Transient { message, retry_after }) => {
                let expires = ctx.expires_at.unwrap_or_else(Utc::now);
                let p = &self.policy;
                match retry::after_transient(
                    attempt as u32,
                    p.max_attempts,
                    &p.delays,
                    *retry_after,
                    retry::jitter(),
                    Utc::now(),
                    expires,
                ) {
                    retry::Next::Retry(delay) => {
                        let next = DeliveryMessage::one(id, attempt as u32 + 1);
                        let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                        (
                            "transient",
                            Some(message.clone()),
                            "retrying",
                            Some(at),
                            None,
                            Disposition::Retry { delay, body: next.encode() },
                        )
                    }
                    retry::Next::Dead => {
                        let reason = format!("attempts exhausted ({attempt}): {message}");
                        ("transient", Some(message.clone()), "dead", None, None, Disposition::Dead { reason })
                    }
                    retry::Next::Expired => {
                        ("transient", Some(message.clone()), "expired", None, None, Disposition::Ack)
                    }
                }
            }
        };
        self.metrics.attempt(&ctx.channel, outcome, elapsed.as_secs_f64());
        let record = AttemptRecord {
            delivery_id: id,
            attempt,
            started_at,
            outcome,
            error: error.clone(),
            duration_ms: elapsed.as_millis().min(i32::MAX as u128) as i32,
            status,
            next_attempt_at,
            provider_message_id: provider_id,
        };
        if let Err(e) = self.record(record).await {
            // The row still says `sending` under a lease; the message comes back
            // and is claimed again once the lease ends (a duplicate is possible
            // only if it was in fact sent: the duplicate window of docs/ARCHITECTURE.md, "Guarantees").
            tracing::error!(error = %e, outcome, "cannot record the attempt; retrying later");
            return Disposition::Retry { delay: self.shortest_delay(), body };
        }
        self.metrics.delivery(&ctx.channel, status);
        match status {
            "sent" => tracing::info!(attempt, ms = elapsed.as_millis() as u64, "delivered"),
            "retrying" => {
                tracing::warn!(attempt, error = error.as_deref().unwrap_or(""), "transient failure; will retry")
            }
            _ => tracing::warn!(attempt, status, error = error.as_deref().unwrap_or(""), "delivery ended unsent"),
        }
        disposition
    }

    async fn attempt(&self, ctx: &DeliveryContext) -> Attempted {
        match self.prepare(ctx) {
            Ok(data) => match ctx.channel.as_str() {
                "sms" => self.send_sms(ctx, data).await,
                _ => self.send_email(ctx, data).await,
            },
            Err(e) => Attempted::Failed(e),
        }
    }

    fn prepare(&self, ctx: &DeliveryContext) -> Result<InviteData, SendError> {
        let sealed = ctx.code_encrypted.as_deref().ok_or_else(|| SendError::permanent("code was cleared"))?;
        let code = self.cipher.open(sealed, &ctx.user_id).map_err(|e| SendError::permanent(e.to_string()))?;
        let template = UrlTemplate::parse(ctx.url_template.as_deref().unwrap_or_default())
            .map_err(|e| SendError::permanent(format!("URL template: {}", e.text)))?;
        Ok(InviteData {
            application_name: ctx.application_name.clone().unwrap_or_default(),
            display_name: ctx.display_name.clone(),
            given_name: ctx.given_name.clone(),
            family_name: ctx.family_name.clone(),
            username: ctx.username.clone(),
            org_name: ctx.org_name.clone(),
            url: template.render(&ctx.user_id, code.expose(), &ctx.org_id),
            code: code.expose().to_string(),
            expires_at: ctx.expires_at.unwrap_or_else(Utc::now),
            login_methods: ctx.login_methods.iter().filter_map(|m| LoginMethod::parse(m)).collect(),
            locale: ctx.locale.clone(),
        })
    }

    async fn send_email(&self, ctx: &DeliveryContext, data: InviteData) -> Attempted {
        let display_name = data.display_name.clone();
        let rendered = match self.renderer.send(RenderEmail(data)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Attempted::Failed(SendError::permanent(e.to_string())),
            Err(e) => return Attempted::Failed(SendError::transient(format!("renderer unavailable: {e}"))),
        };
        let mail = OutgoingEmail {
            delivery_id: ctx.id,
            to_address: ctx.recipient.clone(),
            to_name: display_name,
            subject: rendered.subject,
            html: rendered.html,
            text: rendered.text,
        };
        match self.email.send(SendEmail(mail)).await {
            Ok(Ok(accepted)) => Attempted::Sent(accepted.provider_message_id),
            Ok(Err(e)) => Attempted::Failed(e),
            Err(e) => Attempted::Failed(SendError::transient(format!("e-mail sender unavailable: {e}"))),
        }
    }

    async fn send_sms(&self, ctx: &DeliveryContext, data: InviteData) -> Attempted {
        let body = match self.renderer.send(RenderSms(data)).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return Attempted::Failed(SendError::permanent(e.to_string())),
            Err(e) => return Attempted::Failed(SendError::transient(format!("renderer unavailable: {e}"))),
        };
        match self.sms.send(SendSms(OutgoingSms { delivery_id: ctx.id, to: ctx.recipient.clone(), body })).await {
            Ok(Ok(accepted)) => Attempted::Sent(accepted.provider_message_id),
            Ok(Err(e)) => Attempted::Failed(e),
            Err(e) => Attempted::Failed(SendError::transient(format!("SMS sender unavailable: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_id_gets_its_claim_and_a_duplicate_is_not_sent_twice() {
        let found = vec![(2, Claim::Finished("sent".into())), (1, Claim::Stale("expired"))];
        let answers = answer_claims(&[1, 2, 1, 3], found);
        let shown: Vec<String> = answers.iter().map(|c| format!("{c:?}")).collect();
        assert_eq!(shown, ["Stale(\"expired\")", "Finished(\"sent\")", "Leased", "Missing"]);
    }

    fn ids(body: &str) -> Result<Vec<i64>, String> {
        serde_json::from_str::<DeliveryMessage>(body).unwrap().ids()
    }

    #[test]
    fn a_message_names_one_delivery_or_several_never_both_nor_none() {
        assert_eq!(ids(r#"{"v":1,"deliveryId":"7","attempt":1}"#), Ok(vec![7]));
        assert_eq!(ids(r#"{"v":1,"deliveryIds":["7","8"],"attempt":1}"#), Ok(vec![7, 8]));
        assert!(ids(r#"{"v":1,"deliveryId":"7","deliveryIds":["8"],"attempt":1}"#).is_err());
        assert!(ids(r#"{"v":1,"attempt":1}"#).is_err());
        assert!(ids(r#"{"v":1,"deliveryIds":["7","x"],"attempt":1}"#).is_err());
        assert!(ids(r#"{"v":2,"deliveryId":"7","attempt":1}"#).is_err());
    }

    #[test]
    fn a_single_delivery_message_keeps_its_shape() {
        assert_eq!(
            String::from_utf8(DeliveryMessage::one(7, 2).encode()).unwrap(),
            r#"{"v":1,"deliveryId":"7","attempt":2}"#
        );
        let many = outgoing_many("herald", &[7, 8], "email", Some("bulk-j"));
        assert_eq!(many.routing_key, "bulk.email");
        assert_eq!(String::from_utf8(many.body).unwrap(), r#"{"v":1,"deliveryIds":["7","8"],"attempt":1}"#);
    }
}

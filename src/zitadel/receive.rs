//! The receiving endpoint's rule (API.md §8): find the provider, check the
//! signature over the raw bytes, read the message, store it with its delivery in
//! one transaction, kick the relay after the commit.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use super::provider::{provider_not_found, ProviderService};
use super::signature::{self, SignatureError};
use super::Message;
use crate::batch::Batcher;
use crate::domain::{ids, Channel, CodeCipher, Error, IdGenerator, Kind};
use crate::invite::DeliveryHook;
use crate::metrics::Metrics;
use crate::store::{self, zitadel::NewMessage, zitadel::Stored};

/// What the endpoint answers: the delivery of this message (the first post's,
/// for a message posted again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub delivery_id: i64,
    pub duplicate: bool,
}

#[derive(Clone)]
pub struct Receiver {
    pool: PgPool,
    cipher: CodeCipher,
    ids: Arc<IdGenerator>,
    providers: ProviderService,
    metrics: Metrics,
    tolerance: Duration,
    kick: Option<DeliveryHook>,
}

/// The label of a refused post in the metrics (the event type is unknown then).
const UNREAD: &str = "";

fn refused(e: SignatureError) -> Error {
    match e {
        SignatureError::Malformed => Error::invalid(ids::SIGNATURE_MALFORMED, e.to_string()),
        _ => Error::new(Kind::Unauthenticated, ids::SIGNATURE_INVALID, e.to_string()),
    }
}

impl Receiver {
    pub fn new(
        pool: PgPool,
        cipher: CodeCipher,
        ids: Arc<IdGenerator>,
        metrics: Metrics,
        tolerance: Duration,
        kick: Option<DeliveryHook>,
    ) -> Self {
        let providers = ProviderService::new(pool.clone(), cipher.clone());
        Receiver { pool, cipher, ids, providers, metrics, tolerance, kick }
    }

    /// Accepts one post of provider `provider_id`: `signature` is the
    /// `ZITADEL-Signature` header, `body` the raw bytes as received.
    ///
    /// A provider that requires a signature refuses a post without one; one that
    /// does not still checks a signature that comes, when it has keys.
    ///
    /// # Errors
    /// 404 (no such provider), 401 code 16 (signature missing, wrong or too old),
    /// 400 (malformed signature header, a message without its event type or
    /// recipient), 503 (database down).
    #[tracing::instrument(skip_all, fields(provider_id))]
    pub async fn receive(
        &self,
        provider_id: &str,
        signature: Option<&str>,
        body: &[u8],
        request_id: Option<String>,
    ) -> Result<Accepted, Error> {
        let new = self.check(provider_id, signature, body, request_id).await?;
        let stored = store::zitadel::store_messages(&self.pool, std::slice::from_ref(&new)).await?;
        let stored = stored.into_iter().next().ok_or_else(|| Error::internal(anyhow::anyhow!("no answer")))?;
        Ok(self.accepted(&new, stored))
    }

    /// Everything before the store: provider, signature, message; the message and
    /// its delivery as they will be stored.
    async fn check(
        &self,
        provider_id: &str,
        signature: Option<&str>,
        body: &[u8],
        request_id: Option<String>,
    ) -> Result<NewMessage, Error> {
        let provider = store::zitadel::get_provider(&self.pool, provider_id).await?.ok_or_else(provider_not_found)?;
        let keys = self.providers.open_keys(&provider)?;
        let signed = signature.is_some_and(|s| !s.trim().is_empty());
        if provider.require_signature || (signed && !keys.is_empty()) {
            let now = chrono::Utc::now().timestamp();
            if let Err(e) = signature::verify(signature, body, &keys, now, self.tolerance.as_secs()) {
                self.metrics.zitadel_message(provider_id, UNREAD, "refused_signature");
                tracing::info!(reason = %e, "zitadel post refused");
                return Err(refused(e));
            }
        }
        let channel = Channel::from_db(&provider.channel)
            .ok_or_else(|| Error::internal(anyhow::anyhow!("provider channel {:?}", provider.channel)))?;
        let message = Message::parse(body, channel)?;
        let delivery_id = self.ids.next_i64();
        let now = crate::domain::now_ms();
        let expires_at = message.expiry().and_then(|e| chrono::Duration::from_std(e).ok()).map(|e| now + e);
        Ok(NewMessage {
            delivery_id,
            provider_id: provider.id,
            org_id: provider.org_id,
            channel: provider.channel,
            dedupe_key: message.dedupe_key().to_vec(),
            recipient: message.recipient,
            event_type: message.event_type,
            // Sealed to its delivery: the body holds ZITADEL's code.
            message_encrypted: self.cipher.seal_bytes(body, &delivery_id.to_string()),
            expires_at,
            request_id,
            at: now,
        })
    }

    /// The answer for a stored message, counted; the relay is kicked for a new one.
    fn accepted(&self, new: &NewMessage, stored: Stored) -> Accepted {
        let accepted = match stored {
            Stored::New(id) => {
                self.metrics.zitadel_message(&new.provider_id, &new.event_type, "received");
                // After the commit: the relay publishes now
                // rather than at its next sweep.
                if let Some(kick) = &self.kick {
                    kick();
                }
                Accepted { delivery_id: id, duplicate: false }
            }
            Stored::Duplicate(id) => {
                self.metrics.zitadel_message(&new.provider_id, &new.event_type, "duplicate");
                Accepted { delivery_id: id, duplicate: true }
            }
        };
        tracing::info!(delivery_id = accepted.delivery_id, duplicate = accepted.duplicate, event_type = %new.event_type, "zitadel message accepted");
        accepted
    }

    /// This receiver with its stores grouped: the posts that arrive while one
    /// transaction commits share the next (up to `max`), each answered on its own
    /// (docs/ARCHITECTURE.md, "Actors": work in sets). When a shared transaction
    /// fails, its messages are stored one transaction each, so one the database
    /// refuses cannot fail the others.
    ///
    /// # Panics
    /// Outside a tokio `LocalSet` (an actix Arbiter or an actix-web worker is one).
    pub fn grouped(&self, max: usize, concurrency: usize) -> GroupedReceiver {
        let pool = self.pool.clone();
        let stores = Batcher::start(max, concurrency, move |batch: Vec<NewMessage>| {
            let pool = pool.clone();
            async move {
                match store::zitadel::store_messages(&pool, &batch).await {
                    Ok(stored) => stored.into_iter().map(Ok).collect(),
                    Err(e) if batch.len() == 1 => vec![Err(Error::from(e))],
                    Err(e) => {
                        tracing::warn!(error = %e, n = batch.len(), "a shared store failed; storing one by one");
                        let mut out = Vec::with_capacity(batch.len());
                        for m in &batch {
                            let one = store::zitadel::store_messages(&pool, std::slice::from_ref(m)).await;
                            out.push(one.map_err(Error::from).and_then(|s| {
                                s.into_iter().next().ok_or_else(|| Error::internal(anyhow::anyhow!("no answer")))
                            }));
                        }
                        out
                    }
                }
            }
        });
        GroupedReceiver { receiver: self.clone(), stores }
    }
}

/// A [`Receiver`] whose stores share transactions; one per actix-web worker.
#[derive(Clone)]
pub struct GroupedReceiver {
    receiver: Receiver,
    stores: Batcher<NewMessage, Result<Stored, Error>>,
}

impl GroupedReceiver {
    /// [`Receiver::receive`], its store shared with the posts that arrive meanwhile.
    ///
    /// # Errors
    /// Those of [`Receiver::receive`].
    #[tracing::instrument(skip_all, fields(provider_id))]
    pub async fn receive(
        &self,
        provider_id: &str,
        signature: Option<&str>,
        body: &[u8],
        request_id: Option<String>,
    ) -> Result<Accepted, Error> {
        let new = self.receiver.check(provider_id, signature, body, request_id).await?;
        let stored = match self.stores.submit(new.clone()).await {
            Some(Ok(stored)) => stored,
            Some(Err(e)) => return Err(e),
            None => return Err(Error::unavailable(anyhow::anyhow!("the store batcher stopped"))),
        };
        Ok(self.receiver.accepted(&new, stored))
    }
}

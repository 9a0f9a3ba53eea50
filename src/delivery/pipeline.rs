//! The life of one delivery message: claim → render → send → record, then the
//! [`Disposition`] the consumer carries out (docs/ARCHITECTURE.md, "The way a
//! resend travels"). Every decision is recorded in PostgreSQL before the message is
//! acknowledged; what an attempt's result means is [`retry::decide`]'s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use chrono::Utc;
use sqlx::PgPool;
use tracing::Instrument;

use super::message::DeliveryMessage;
use super::retry::{self, next_record_pause, Attempt, Attempted, RetryPolicy, RECORD_PAUSE_FIRST};
use crate::batch::Batcher;
use crate::channels::{EmailSender, SendError, SmsSender};
use crate::domain::{Channel, CodeCipher, DeliveryStatus, LoginMethod, UrlTemplate};
use crate::liveness::Liveness;
use crate::metrics::Metrics;
use crate::queue::{Disposition, Handle, Incoming};
use crate::render::{zitadel_invite::InviteDefaults, InviteData, Renderer};
use crate::store::deliveries::{AttemptRecord, Claim, DeliveryContext, Holder};
use crate::store::{self};

/// Deliveries being handled at once per worker (a multi-delivery message counts
/// each): bounds memory, as `amqp.prefetch` counts messages.
const DELIVERIES_IN_FLIGHT: usize = 512;
/// Most deliveries claimed or recorded by one statement.
const BATCH_MAX: usize = 256;
/// Statements of each kind in flight per worker: one runs while the next batch gathers.
const BATCH_CONCURRENCY: usize = 2;

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
    /// What herald's invite template of a ZITADEL invite takes from the settings.
    pub invite_defaults: Arc<InviteDefaults>,
    /// This process's row: the holder of its claims, and the heartbeat that
    /// extends the lease of every delivery in work here.
    pub liveness: Liveness,
    /// Claims and attempt records gathered into set-based statements (see
    /// [`Pipeline::batched`]); without them each delivery runs its own.
    pub batches: Option<Batches>,
}

/// The batchers of one worker thread (docs/ARCHITECTURE.md, "Actors").
#[derive(Clone)]
pub struct Batches {
    claims: Batcher<i64, Result<Claim, String>>,
    records: Batcher<AttemptRecord, Result<bool, String>>,
    in_flight: Arc<tokio::sync::Semaphore>,
}

fn holder(liveness: &Liveness) -> Holder {
    Holder { process: liveness.process(), dead_after: liveness.dead_after() }
}

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

impl Handle for Pipeline {
    async fn handle(&self, msg: Incoming) -> Disposition {
        Pipeline::handle(self, msg).await
    }
}

impl Pipeline {
    /// This pipeline with its claims and records batched: under load, a worker
    /// claims and records many deliveries per statement instead of one. Call it on
    /// the thread that will run the deliveries (the batchers live there).
    pub fn batched(mut self) -> Self {
        let (pool, lease, liveness) = (self.pool.clone(), self.lease(), self.liveness.clone());
        let claims = Batcher::start(BATCH_MAX, BATCH_CONCURRENCY, move |ids: Vec<i64>| {
            let (pool, holder) = (pool.clone(), holder(&liveness));
            async move {
                match store::deliveries::claim_many(&pool, &ids, lease, holder).await {
                    Ok(found) => answer_claims(&ids, found).into_iter().map(Ok).collect(),
                    Err(e) => ids.iter().map(|_| Err(e.to_string())).collect(),
                }
            }
        });
        let pool = self.pool.clone();
        let records = Batcher::start(BATCH_MAX, BATCH_CONCURRENCY, move |records: Vec<AttemptRecord>| {
            let pool = pool.clone();
            async move {
                match store::delivery_log::record_attempts(&pool, &records).await {
                    Ok(written) => records.iter().map(|r| Ok(written.contains(&r.delivery_id))).collect(),
                    // One failed statement must not leave a whole batch of sent
                    // deliveries to be sent again: record each on its own.
                    Err(e) => {
                        tracing::warn!(error = %e, n = records.len(), "recording a batch failed; recording one by one");
                        let mut results = Vec::with_capacity(records.len());
                        for r in records {
                            let one = store::delivery_log::record_attempts(&pool, std::slice::from_ref(&r)).await;
                            results.push(one.map(|w| !w.is_empty()).map_err(|e| e.to_string()));
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
            None => store::deliveries::claim_many(&self.pool, &[id], self.lease(), holder(&self.liveness))
                .await
                .map(|mut found| found.pop().map_or(Claim::Missing, |(_, c)| c))
                .map_err(|e| e.to_string()),
        }
    }

    /// Records an attempt: `Ok(true)` written, `Ok(false)` not ours any more (the
    /// claim was taken over: a later attempt owns the row).
    async fn record_once(&self, record: AttemptRecord) -> Result<bool, String> {
        match &self.batches {
            Some(b) => b.records.submit(record).await.unwrap_or_else(|| Err("record batcher stopped".into())),
            None => store::delivery_log::record_attempts(&self.pool, &[record])
                .await
                .map(|w| !w.is_empty())
                .map_err(|e| e.to_string()),
        }
    }

    /// Records an attempt, again and again with a growing pause while the database
    /// fails, for twice the lease: a mail the provider accepted must not be sent a
    /// second time because of a blip (docs/ARCHITECTURE.md, "Guarantees"). The
    /// caller holds the delivery meanwhile, so its lease does not run out under a
    /// live process. A record is safe to repeat (it writes only under its claim).
    async fn record(&self, record: AttemptRecord) -> Result<bool, String> {
        let deadline = Instant::now() + self.policy.lease * 2;
        let mut pause = RECORD_PAUSE_FIRST;
        loop {
            match self.record_once(record.clone()).await {
                Ok(written) => return Ok(written),
                Err(e) if Instant::now() + pause >= deadline => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?pause, "cannot record the attempt; trying again");
                    tokio::time::sleep(pause).await;
                    pause = next_record_pause(pause);
                }
            }
        }
    }

    fn shortest_delay(&self) -> Duration {
        self.policy.delays.iter().copied().min().unwrap_or(Duration::from_secs(5))
    }

    /// Handles one `delivery.v1` message and says what to do with it. A message
    /// naming several deliveries handles each as if it had come alone
    /// (docs/ARCHITECTURE.md, "Guarantees": no secrets in the broker).
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
        if !message.names_many() {
            return one(ids[0]).await.1;
        }
        let outcomes = futures_util::future::join_all(ids.into_iter().map(one)).await;
        if outcomes.iter().all(|(_, d)| *d == Disposition::Ack) {
            Disposition::Ack
        } else {
            Disposition::Each(outcomes)
        }
    }

    /// One delivery: claim, attempt, decide, record. `body` is the message for
    /// this delivery alone (what a retry of the claim sends).
    async fn deliver(&self, id: i64, body: Vec<u8>) -> Disposition {
        // Held from the claim to the record: the heartbeat extends the lease while
        // the send waits for an SMTP connection or the record is retried, so the
        // lease cannot run out under a live worker.
        let _held = self.liveness.hold(id);
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
                tracing::info!(%status, "not sent: the code is stale");
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
        self.metrics.delivery(ctx.channel, DeliveryStatus::Sending);
        let started_at = Utc::now();
        let clock = Instant::now();
        let result = self.attempt(&ctx).await;
        let elapsed = clock.elapsed();
        let attempt = ctx.attempts;
        let decided = retry::decide(
            Attempt {
                delivery_id: id,
                number: attempt as u32,
                code_expires_at: ctx.expires_at.unwrap_or_else(Utc::now),
                result,
            },
            &self.policy,
            retry::jitter(),
            Utc::now(),
        );
        let (r, disposition) = (decided.record, decided.disposition);
        self.metrics.attempt(ctx.channel, r.outcome, elapsed.as_secs_f64());
        let record = AttemptRecord {
            delivery_id: id,
            attempt,
            started_at,
            outcome: r.outcome,
            error: r.error.clone(),
            duration_ms: elapsed.as_millis().min(i32::MAX as u128) as i32,
            status: r.status,
            next_attempt_at: r.next_attempt_at,
            provider_message_id: r.provider_message_id,
        };
        match self.record(record).await {
            Ok(true) => {}
            // The row moved on: an earlier try of this record committed though its
            // answer was lost, or another worker took the claim over (this process
            // was silent past `delivery.process_dead_after`, or the lease ran out)
            // and the row is theirs: a late attempt must not overwrite theirs.
            Ok(false) => {
                tracing::warn!(attempt, outcome = %r.outcome, "attempt not recorded: the row is no longer this claim's");
                return Disposition::Ack;
            }
            Err(e) => {
                // The row still says `sending`; once this process lets go of it, the
                // lease runs out and the message (or the sweeper) brings it back. A
                // duplicate is possible only if it was in fact sent: the duplicate
                // window of docs/ARCHITECTURE.md, "Guarantees".
                tracing::error!(error = %e, outcome = %r.outcome, "cannot record the attempt; retrying later");
                return Disposition::Retry { delay: self.shortest_delay(), body };
            }
        }
        self.metrics.delivery(ctx.channel, r.status);
        self.count_zitadel(&ctx, r.status);
        let error = r.error.as_deref().unwrap_or("");
        match r.status {
            DeliveryStatus::Sent => tracing::info!(attempt, ms = elapsed.as_millis() as u64, "delivered"),
            DeliveryStatus::Retrying => tracing::warn!(attempt, error, "transient failure; will retry"),
            status => tracing::warn!(attempt, %status, error, "delivery ended unsent"),
        }
        disposition
    }

    async fn attempt(&self, ctx: &DeliveryContext) -> Attempted {
        if let Some(stored) = &ctx.zitadel {
            return self.attempt_zitadel(ctx, stored).await;
        }
        match self.prepare(ctx) {
            Ok(data) => match ctx.channel {
                Channel::Sms => self.send_sms(ctx, data).await,
                Channel::Email => self.send_email(ctx, data).await,
            },
            Err(e) => Attempted::Failed(e),
        }
    }

    /// What the templates need; a code or URL template that cannot be used is a
    /// permanent failure (docs/ARCHITECTURE.md, "Retries").
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_id_gets_its_claim_and_a_duplicate_is_not_sent_twice() {
        let found = vec![(2, Claim::Finished(DeliveryStatus::Sent)), (1, Claim::Stale(DeliveryStatus::Expired))];
        let answers = answer_claims(&[1, 2, 1, 3], found);
        let shown: Vec<String> = answers.iter().map(|c| format!("{c:?}")).collect();
        assert_eq!(shown, ["Stale(Expired)", "Finished(Sent)", "Leased", "Missing"]);
    }
}

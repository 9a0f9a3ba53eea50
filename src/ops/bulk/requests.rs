//! What the bulk consumer does with one `resend-request.v1`: find whom it acts for,
//! resend each user it names as its own request, count the refusals, and retry the
//! users that failed transiently, capped like deliveries (docs/ARCHITECTURE.md,
//! "Bulk re-invites and replay" and "Retries").

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tracing::Instrument;

use super::message::{ResendMessage, MAX_USERS_PER_MESSAGE};
use crate::auth::{self, Principal};
use crate::delivery::retry;
use crate::domain::{ids, Error};
use crate::invite::{self, InviteService, IssueContext, Issued};
use crate::metrics::Metrics;
use crate::queue::{Disposition, Incoming};
use crate::store;

/// The error id under which a job counts the users still failing transiently when
/// their request is out of attempts (`delivery.max_attempts`, as for deliveries).
pub use crate::domain::ids::ATTEMPTS_EXHAUSTED;

/// The answer to one resend of a batch.
type Outcome = Result<Issued, Error>;

/// Runs resend requests; shared by every request in flight.
#[derive(Clone)]
pub struct RequestHandler {
    pool: PgPool,
    invites: InviteService,
    metrics: Metrics,
    /// Job creators and organizations, so each request does not read its job again.
    principals: Arc<Mutex<HashMap<String, (Principal, String)>>>,
    /// `delivery.retry_delays`: the declared retry queues.
    retry_delays: Vec<Duration>,
    /// `delivery.max_attempts`: a request that failed transiently this often is
    /// given up, so a database that stays down cannot keep it looping.
    max_attempts: u32,
    /// Resends gathered into one transaction per batch (see [`Self::batched`]).
    grouped: Option<invite::Grouped>,
    /// Users being resent at once, across messages: `amqp.resend_prefetch` counts
    /// messages, and a message may name up to 1,000 users.
    users_in_flight: Arc<tokio::sync::Semaphore>,
}

/// Most users being resent at once per worker: eight batches' worth. (Unbounded,
/// 512 messages of 100 users took herald's memory from 99 to 251 MB.)
const USERS_IN_FLIGHT: usize = 2_048;
const _: () = assert!(MAX_USERS_PER_MESSAGE <= USERS_IN_FLIGHT, "a message must fit in flight");

/// Most resend requests in one transaction: enough to amortise its statements,
/// few enough to hold the users' locks briefly.
const RESEND_BATCH: usize = 256;
/// Resend transactions in flight per worker: one runs while the next gathers.
const RESEND_CONCURRENCY: usize = 2;

/// The delay before the next try of a request that has now failed transiently
/// `failures` times, or `None` once it is out of attempts: the delivery policy
/// (`delivery::retry`), so bulk requests and deliveries are capped alike. A resend
/// request carries no code, so no expiry cuts its retries short.
fn next_try(failures: u32, max_attempts: u32, delays: &[Duration], jitter: f64) -> Option<Duration> {
    match retry::after_transient(failures, max_attempts, delays, None, jitter, Utc::now(), DateTime::<Utc>::MAX_UTC) {
        retry::Next::Retry(delay) => Some(delay),
        retry::Next::Dead | retry::Next::Expired => None,
    }
}

impl RequestHandler {
    /// A handler whose requests retry after `retry_delays` and give up after the
    /// default `delivery.max_attempts` (see [`Self::max_attempts`]).
    pub fn new(pool: PgPool, invites: InviteService, metrics: Metrics, retry_delays: Vec<Duration>) -> Self {
        RequestHandler {
            pool,
            invites,
            metrics,
            principals: Arc::default(),
            retry_delays,
            max_attempts: crate::config::Settings::defaults().delivery.max_attempts,
            grouped: None,
            users_in_flight: Arc::new(tokio::sync::Semaphore::new(USERS_IN_FLIGHT)),
        }
    }

    /// This handler, giving a request up after `max_attempts` transient failures
    /// (`delivery.max_attempts`).
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// This handler with its resends batched: the requests in flight share a
    /// transaction of a few statements instead of five each. Call it on the thread
    /// that will handle the requests (the batcher lives there).
    pub fn batched(mut self) -> Self {
        self.grouped = Some(self.invites.grouped(RESEND_BATCH, RESEND_CONCURRENCY));
        self
    }

    async fn resend(&self, request: invite::ResendRequest) -> Outcome {
        match &self.grouped {
            Some(g) => g.resend(request).await,
            None => self.invites.resend(&request.caller, &request.user_id, &request.ctx).await,
        }
    }

    /// Who a request acts for, and (for a job) the organization it is limited to.
    /// A job acts with its creator's scope and permissions as the job recorded
    /// them; a request from outside names a token, which `auth` checks.
    async fn principal_for(&self, req: &ResendMessage) -> Result<Option<(Principal, Option<String>)>, Error> {
        if let Some(job) = &req.job_id {
            if let Some((p, org)) = self.principals.lock().unwrap_or_else(|p| p.into_inner()).get(job) {
                return Ok(Some((p.clone(), Some(org.clone()))));
            }
            let Some(row) = store::bulk::get_job(&self.pool, job).await? else { return Ok(None) };
            let p = Principal::stored(row.created_by, row.creator_org_id, &row.creator_permissions);
            let mut cache = self.principals.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() > 1_000 {
                cache.clear();
            }
            cache.insert(job.clone(), (p.clone(), row.org_id.clone()));
            return Ok(Some((p, Some(row.org_id))));
        }
        match &req.requested_by {
            None => Ok(Some((Principal::queue(), None))),
            Some(token_id) => Ok(auth::principal_of_token(&self.pool, token_id).await?.map(|p| (p, None))),
        }
    }

    /// Handles one `resend-request.v1` message.
    pub async fn handle(&self, msg: Incoming) -> Disposition {
        let req = match serde_json::from_slice::<ResendMessage>(&msg.body) {
            Ok(r) if r.v == 1 => r,
            Ok(r) => {
                return Disposition::Dead { reason: format!("unparsable resend request: unknown version {}", r.v) }
            }
            Err(e) => {
                tracing::warn!(error = %e, "unparsable resend request; parking it in the dead queue");
                return Disposition::Dead { reason: format!("unparsable resend request: {e}") };
            }
        };
        let users = match req.users() {
            Ok(users) => users,
            Err(reason) => {
                tracing::warn!(%reason, "resend request names no user; parking it in the dead queue");
                return Disposition::Dead { reason: format!("unparsable resend request: {reason}") };
            }
        };
        let span =
            tracing::info_span!("resend_request", users = users.len(), first_user = %users[0], job_id = ?req.job_id);
        let request_id = msg.headers.get("x-request-id").cloned();
        self.run(req, users, request_id).instrument(span).await
    }

    async fn run(&self, req: ResendMessage, users: Vec<String>, request_id: Option<String>) -> Disposition {
        let (principal, org_id) = match self.principal_for(&req).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                tracing::warn!("resend request for an unknown job or token; dropped");
                self.metrics.bulk_request(ids::TOKEN_INVALID);
                return Disposition::Dead { reason: "unknown job or token".into() };
            }
            Err(e) if e.is_transient() => return self.after_transient(req, users, &e).await,
            Err(e) => {
                // The same request would fail the same way (an id the database
                // refuses): parked for an operator, never retried.
                tracing::warn!(cause = %e.cause(), "resend request refused; parking it in the dead queue");
                self.metrics.bulk_request(&e.id);
                return Disposition::Dead { reason: format!("refused: {}", e.message()) };
            }
        };
        // At most MAX_USERS_PER_MESSAGE (< USERS_IN_FLIGHT) users; the semaphore is never closed.
        let _permits = self.users_in_flight.acquire_many(users.len() as u32).await;
        let ctx = IssueContext { request_id, job_id: req.job_id.clone(), bulk: true, org_id };
        // Every user of the message is its own resend; the batcher gathers them
        // (with those of other messages) into shared transactions.
        let outcomes = futures_util::future::join_all(users.iter().map(|user_id| {
            self.resend(invite::ResendRequest { caller: principal.clone(), user_id: user_id.clone(), ctx: ctx.clone() })
        }))
        .await;
        let mut again = Vec::new();
        let mut cause = None;
        for (user_id, outcome) in users.into_iter().zip(outcomes) {
            match outcome {
                Ok(_) => self.metrics.bulk_request("succeeded"),
                Err(e) if e.id == ids::BULK_DONE => {}
                Err(e) if e.is_transient() => {
                    again.push(user_id);
                    cause = Some(e);
                }
                Err(e) => {
                    // A failed check: counted under its id (a job's result was
                    // recorded with the resend's transaction), never retried.
                    tracing::info!(%user_id, id = %e.id, "resend request refused");
                    self.metrics.bulk_request(&e.id);
                }
            }
        }
        match cause {
            // Only the users that failed transiently are tried again.
            Some(e) => self.after_transient(req, again, &e).await,
            None => Disposition::Ack,
        }
    }

    /// `users` of `req` failed transiently: retry them after the policy's delay, or
    /// give them up once the request is out of attempts.
    async fn after_transient(&self, req: ResendMessage, users: Vec<String>, e: &Error) -> Disposition {
        let cause = e.cause();
        let failures = req.attempt.saturating_add(1);
        let Some(delay) = next_try(failures, self.max_attempts, &self.retry_delays, retry::jitter()) else {
            return self.give_up(&req, failures, &users, &cause.to_string()).await;
        };
        tracing::warn!(attempt = failures, %cause, "resend request failed transiently; retrying");
        self.metrics.bulk_request("retried");
        let next = ResendMessage { attempt: failures, ..req.for_users(users) };
        Disposition::Retry { delay, body: next.encode() }
    }

    /// Counts `users` as failed under [`ATTEMPTS_EXHAUSTED`] in the request's job, so
    /// the job finishes; a request without a job (or whose failures cannot be
    /// recorded, the database being still down) is parked in the dead queue, where
    /// an operator sees it, instead of looping.
    async fn give_up(&self, req: &ResendMessage, failures: u32, users: &[String], cause: &str) -> Disposition {
        tracing::error!(attempts = failures, users = users.len(), %cause, "resend request out of attempts");
        for _ in users {
            self.metrics.bulk_request(ATTEMPTS_EXHAUSTED);
        }
        let reason = format!("attempts exhausted ({failures}): {cause}");
        let Some(job) = &req.job_id else { return Disposition::Dead { reason } };
        let rows: Vec<(&str, &str, &str)> =
            users.iter().map(|user| (job.as_str(), user.as_str(), ATTEMPTS_EXHAUSTED)).collect();
        let rows: Vec<(&str, std::borrow::Cow<'_, str>, &str)> =
            rows.into_iter().map(|(j, u, e)| (j, crate::domain::storable(u), e)).collect();
        let rows: Vec<(&str, &str, &str)> = rows.iter().map(|(j, u, e)| (*j, u.as_ref(), *e)).collect();
        let recorded = async {
            let mut conn = self.pool.acquire().await?;
            store::bulk::record_failures(&mut conn, &rows).await
        };
        match recorded.await {
            Ok(()) => Disposition::Ack,
            Err(e) => Disposition::Dead { reason: format!("{reason}; not counted in job {job}: {e}") },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delays() -> Vec<Duration> {
        [1, 5, 30].map(Duration::from_secs).to_vec()
    }

    #[test]
    fn a_request_retries_after_the_delivery_delays_until_the_cap() {
        assert_eq!(next_try(1, 3, &delays(), 1.0), Some(Duration::from_secs(1)));
        assert_eq!(next_try(2, 3, &delays(), 1.2), Some(Duration::from_secs(5)));
        assert_eq!(next_try(3, 3, &delays(), 1.0), None, "out of attempts");
        assert_eq!(next_try(u32::MAX, 3, &delays(), 1.0), None);
    }

    #[test]
    fn the_last_delay_repeats_below_the_cap() {
        assert_eq!(next_try(6, 7, &delays(), 0.8), Some(Duration::from_secs(30)));
    }
}

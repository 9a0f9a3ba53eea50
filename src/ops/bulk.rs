//! Bulk re-invites (API.md §4).
//!
//! A job publishes one `resend-request.v1` message per user on
//! `<prefix>.resend-requests` (with confirms, before the 202); the `BulkWorker`
//! runs the invite service's resend for each, on behalf of the job's creator. Its
//! deliveries travel the bulk queues, so transactional resends never wait behind it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tracing::Instrument;

use crate::auth::Principal;
use crate::domain::{ids, now_ms, Error, IdGenerator, Permission};
use crate::invite::{self, InviteService, IssueContext, Issued};
use crate::metrics::Metrics;
use crate::queue::topology::KEY_RESEND;
use crate::queue::{Disposition, Incoming, Outgoing, Publish, Publisher};
use crate::store::{self, bulk::JobRow};

/// The `type` of a resend request.
pub const MESSAGE_TYPE: &str = "resend-request.v1";
/// At most this many ids in one `userIds` job.
pub const MAX_IDS: usize = 10_000;
/// Users read and published per confirmed batch.
const PUBLISH_BATCH: usize = 1_000;
/// Users per message a job publishes: one message per user made the broker's work
/// (and the publisher's) a third of the machine at bulk rates.
const USERS_PER_MESSAGE: usize = 100;
/// Most users one `resend-request.v1` may name in `userIds`.
pub const MAX_USERS_PER_MESSAGE: usize = 1_000;

/// `resend-request.v1`, the message any producer may publish: one user
/// (`userId`) or several (`userIds`, each resent as its own request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResendRequest {
    pub v: u8,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The id of the token the request acts for (producers outside herald).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Transient failures so far (herald's own bookkeeping; producers leave it out).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ResendRequest {
    /// The users it names, or why it names none (or too many).
    fn users(&self) -> Result<Vec<String>, String> {
        match (self.user_id.is_empty(), self.user_ids.is_empty()) {
            (false, true) => Ok(vec![self.user_id.clone()]),
            (true, false) if self.user_ids.len() <= MAX_USERS_PER_MESSAGE => Ok(self.user_ids.clone()),
            (true, false) => Err(format!("userIds holds more than {MAX_USERS_PER_MESSAGE} ids")),
            _ => Err("exactly one of userId and userIds is required".into()),
        }
    }

    /// The same request for `users` only (what is left to retry).
    fn for_users(&self, mut users: Vec<String>) -> Self {
        let (user_id, user_ids) = if users.len() == 1 && self.user_ids.is_empty() {
            (users.remove(0), vec![])
        } else {
            (String::new(), users)
        };
        ResendRequest { user_id, user_ids, ..self.clone() }
    }
}

/// Which users a job re-invites.
#[derive(Debug, Clone)]
pub enum Selection {
    Ids(Vec<String>),
    /// Every user of the organization whose invite was sent and not yet verified.
    AllPending,
}

/// `GET /admin/v1/bulk/{jobId}`.
#[derive(Debug, Clone)]
pub struct JobStatus {
    pub job_id: String,
    pub org_id: String,
    pub total: i64,
    pub done: i64,
    pub succeeded: i64,
    pub failed: BTreeMap<String, i64>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The job's deliveries by status (sent, queued, dead …).
    pub deliveries: BTreeMap<String, i64>,
}

#[derive(Clone)]
pub struct BulkService {
    pool: PgPool,
    ids: Arc<IdGenerator>,
    publisher: Addr<Publisher>,
    exchange: String,
}

fn job_not_found() -> Error {
    Error::not_found(ids::BULK_NOT_FOUND, "Bulk job not found")
}

impl BulkService {
    pub fn new(pool: PgPool, ids: Arc<IdGenerator>, publisher: Addr<Publisher>, exchange: String) -> Self {
        BulkService { pool, ids, publisher, exchange }
    }

    /// Creates a job and publishes its requests; returns `(job id, total)` once the
    /// broker confirmed every one.
    ///
    /// # Errors
    /// 404 for an organization the caller cannot see, 403 without `bulk.write`, 400
    /// for an empty or oversized selection, 503 when the broker does not confirm.
    #[tracing::instrument(skip_all, fields(caller = %caller.token_id, org_id))]
    pub async fn create_job(
        &self,
        caller: &Principal,
        org_id: &str,
        selection: Selection,
    ) -> Result<(String, i64), Error> {
        let mut conn = self.pool.acquire().await?;
        store::orgs::get(&mut conn, org_id)
            .await?
            .filter(|o| caller.can_see(&o.id))
            .ok_or_else(|| Error::not_found(ids::ORG_NOT_FOUND, "Organization not found"))?;
        drop(conn);
        caller.require(Permission::BulkWrite)?;
        if let Selection::Ids(list) = &selection {
            if list.is_empty() || list.len() > MAX_IDS {
                return Err(Error::invalid(ids::VALIDATION, format!("userIds must hold 1 to {MAX_IDS} ids")));
            }
        }
        let job = JobRow {
            id: self.ids.next_string(),
            org_id: org_id.to_string(),
            total: 0,
            created_by: caller.token_id.clone(),
            creator_org_id: caller.org_id.clone(),
            creator_permissions: caller.permissions.iter().map(|p| p.as_str().to_string()).collect(),
            created_at: now_ms(),
            published_at: None,
        };
        store::bulk::insert_job(&self.pool, &job).await?;
        let mut published = 0usize;
        let outcome = self.publish_selection(&job.id, org_id, selection, &mut published).await;
        // Whatever was published will be processed: the job's total says so, and
        // the job finishes with it even when publishing stopped half way.
        store::bulk::mark_published(&self.pool, &job.id, published as i32).await?;
        if let Err(e) = outcome {
            tracing::error!(job_id = %job.id, published, "bulk job cut short: the broker did not confirm");
            return Err(e);
        }
        tracing::info!(job_id = %job.id, total = published, "bulk job published");
        Ok((job.id, published as i64))
    }

    async fn publish_selection(
        &self,
        job_id: &str,
        org_id: &str,
        selection: Selection,
        published: &mut usize,
    ) -> Result<(), Error> {
        match selection {
            Selection::Ids(list) => {
                // The same user twice would be resent twice: once is what was meant.
                let mut seen = std::collections::HashSet::new();
                let unique: Vec<String> = list.into_iter().filter(|id| seen.insert(id.clone())).collect();
                for chunk in unique.chunks(PUBLISH_BATCH) {
                    *published += self.publish(job_id, chunk).await?;
                }
            }
            Selection::AllPending => {
                let mut after: Option<String> = None;
                loop {
                    let page =
                        store::bulk::pending_users_page(&self.pool, org_id, after.as_deref(), PUBLISH_BATCH as i64)
                            .await?;
                    *published += self.publish(job_id, &page).await?;
                    if page.len() < PUBLISH_BATCH {
                        break;
                    }
                    after = page.last().cloned();
                }
            }
        }
        Ok(())
    }

    async fn publish(&self, job_id: &str, users: &[String]) -> Result<usize, Error> {
        if users.is_empty() {
            return Ok(0);
        }
        let messages = users
            .chunks(USERS_PER_MESSAGE)
            .map(|chunk| Outgoing {
                exchange: self.exchange.clone(),
                routing_key: KEY_RESEND.into(),
                cc: vec![],
                kind: MESSAGE_TYPE.into(),
                body: serde_json::to_vec(&ResendRequest {
                    v: 1,
                    user_id: String::new(),
                    user_ids: chunk.to_vec(),
                    job_id: Some(job_id.to_string()),
                    requested_by: None,
                    attempt: 0,
                })
                .unwrap_or_default(),
                headers: BTreeMap::from([("x-request-id".to_string(), format!("bulk-{job_id}"))]),
                message_id: None,
            })
            .collect();
        let results = self.publisher.send(Publish(messages)).await.map_err(Error::unavailable)?;
        if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
            return Err(Error::unavailable(anyhow::anyhow!("publishing bulk requests: {e}")));
        }
        Ok(users.len())
    }

    /// # Errors
    /// 404 for a job the caller cannot see; 403 without `bulk.write`.
    pub async fn status(&self, caller: &Principal, job_id: &str) -> Result<JobStatus, Error> {
        let job = store::bulk::get_job(&self.pool, job_id)
            .await?
            .filter(|j| caller.can_see(&j.org_id))
            .ok_or_else(job_not_found)?;
        caller.require(Permission::BulkWrite)?;
        job_status(&self.pool, job).await
    }

    /// The status for the command line (machine authority).
    pub async fn status_of(&self, job_id: &str) -> Result<JobStatus, Error> {
        let job = store::bulk::get_job(&self.pool, job_id).await?.ok_or_else(job_not_found)?;
        job_status(&self.pool, job).await
    }
}

async fn job_status(pool: &PgPool, job: JobRow) -> Result<JobStatus, Error> {
    let counts = store::bulk::result_counts(pool, &job.id).await?;
    let (mut done, mut succeeded, mut failed, mut last) = (0, 0, BTreeMap::new(), None);
    for (error_id, n, at) in counts {
        done += n;
        last = last.max(at);
        match error_id {
            None => succeeded += n,
            Some(id) => {
                failed.insert(id, n);
            }
        }
    }
    let total = i64::from(job.total);
    let finished_at = (job.published_at.is_some() && done >= total).then(|| last.unwrap_or(job.created_at));
    let deliveries = store::bulk::delivery_counts(pool, &job.id).await?.into_iter().collect();
    Ok(JobStatus {
        job_id: job.id,
        org_id: job.org_id,
        total,
        done,
        succeeded,
        failed,
        created_at: job.created_at,
        finished_at,
        deliveries,
    })
}

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
    retry_delays: Vec<Duration>,
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

impl RequestHandler {
    pub fn new(pool: PgPool, invites: InviteService, metrics: Metrics, retry_delays: Vec<Duration>) -> Self {
        RequestHandler {
            pool,
            invites,
            metrics,
            principals: Arc::default(),
            retry_delays,
            grouped: None,
            users_in_flight: Arc::new(tokio::sync::Semaphore::new(USERS_IN_FLIGHT)),
        }
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
    async fn principal_for(&self, req: &ResendRequest) -> Result<Option<(Principal, Option<String>)>, Error> {
        if let Some(job) = &req.job_id {
            if let Some((p, org)) = self.principals.lock().unwrap_or_else(|p| p.into_inner()).get(job) {
                return Ok(Some((p.clone(), Some(org.clone()))));
            }
            let Some(row) = store::bulk::get_job(&self.pool, job).await? else { return Ok(None) };
            let p = Principal {
                token_id: row.created_by,
                org_id: row.creator_org_id,
                permissions: row.creator_permissions.iter().filter_map(|p| Permission::parse(p)).collect(),
            };
            let mut cache = self.principals.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() > 1_000 {
                cache.clear();
            }
            cache.insert(job.clone(), (p.clone(), row.org_id.clone()));
            return Ok(Some((p, Some(row.org_id))));
        }
        // Outside producers: the queue is only reachable with broker credentials,
        // so a request without a job acts for the token it names, or for herald.
        match &req.requested_by {
            None => Ok(Some((
                Principal { token_id: "queue".into(), org_id: None, permissions: vec![Permission::UserWrite] },
                None,
            ))),
            Some(token_id) => {
                let mut conn = self.pool.acquire().await?;
                let token = store::tokens::get(&mut conn, token_id).await?;
                let valid = token.filter(|t| t.revoked_at.is_none() && t.expires_at.is_none_or(|e| e > Utc::now()));
                Ok(valid.map(|t| {
                    let p = Principal {
                        token_id: t.id,
                        org_id: t.org_id,
                        permissions: t.permissions.iter().filter_map(|p| Permission::parse(p)).collect(),
                    };
                    (p, None)
                }))
            }
        }
    }

    /// Handles one `resend-request.v1` message.
    pub async fn handle(&self, msg: Incoming) -> Disposition {
        let req = match serde_json::from_slice::<ResendRequest>(&msg.body) {
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

    async fn run(&self, req: ResendRequest, users: Vec<String>, request_id: Option<String>) -> Disposition {
        let (principal, org_id) = match self.principal_for(&req).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                tracing::warn!("resend request for an unknown job or token; dropped");
                self.metrics.bulk_request("AUTH-7fs1e");
                return Disposition::Dead { reason: "unknown job or token".into() };
            }
            Err(e) => return self.retry(req, &e),
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
            Some(e) => self.retry(req.for_users(again), &e),
            None => Disposition::Ack,
        }
    }

    fn retry(&self, mut req: ResendRequest, e: &Error) -> Disposition {
        let cause = e.cause();
        tracing::warn!(attempt = req.attempt + 1, %cause, "resend request failed transiently; retrying");
        self.metrics.bulk_request("retried");
        let delay = self.retry_delays.get(req.attempt as usize).or(self.retry_delays.last()).copied();
        req.attempt += 1;
        Disposition::Retry {
            delay: delay.unwrap_or(Duration::from_secs(5)),
            body: serde_json::to_vec(&req).unwrap_or_default(),
        }
    }
}

/// The actor the resend-request consumer hands its messages to: a shell over
/// [`RequestHandler::handle`].
pub struct BulkWorker {
    handler: RequestHandler,
}

impl BulkWorker {
    /// Starts the worker on `arbiter` (its consumer's thread).
    pub fn start_in(arbiter: &ArbiterHandle, handler: RequestHandler) -> Addr<BulkWorker> {
        Supervisor::start_in_arbiter(arbiter, move |_| BulkWorker { handler: handler.batched() })
    }
}

impl Actor for BulkWorker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
    }
}

impl Supervised for BulkWorker {}

impl Handler<Incoming> for BulkWorker {
    type Result = ResponseFuture<Disposition>;

    fn handle(&mut self, msg: Incoming, _ctx: &mut Self::Context) -> Self::Result {
        let handler = self.handler.clone();
        Box::pin(async move { handler.handle(msg).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> ResendRequest {
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn a_request_names_one_user_or_several_never_both_nor_none() {
        assert_eq!(parse(r#"{"v":1,"userId":"1"}"#).users().unwrap(), ["1"]);
        assert_eq!(parse(r#"{"v":1,"userIds":["1","2"]}"#).users().unwrap(), ["1", "2"]);
        assert!(parse(r#"{"v":1,"userId":"1","userIds":["2"]}"#).users().is_err());
        assert!(parse(r#"{"v":1}"#).users().is_err());
        let too_many: Vec<String> = (0..=MAX_USERS_PER_MESSAGE).map(|i| i.to_string()).collect();
        assert!(parse(&json_of(&too_many)).users().is_err());
    }

    fn json_of(ids: &[String]) -> String {
        serde_json::json!({"v": 1, "userIds": ids}).to_string()
    }

    #[test]
    fn a_retry_names_only_the_users_left_in_the_form_they_came_in() {
        let one = parse(r#"{"v":1,"userId":"1","jobId":"j"}"#);
        assert_eq!(
            serde_json::to_string(&one.for_users(vec!["1".into()])).unwrap(),
            r#"{"v":1,"userId":"1","jobId":"j"}"#
        );
        let several = parse(r#"{"v":1,"userIds":["1","2","3"],"jobId":"j"}"#);
        assert_eq!(
            serde_json::to_string(&several.for_users(vec!["2".into()])).unwrap(),
            r#"{"v":1,"userIds":["2"],"jobId":"j"}"#
        );
    }
}

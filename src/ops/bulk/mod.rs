//! Bulk re-invites (API.md §4; docs/ARCHITECTURE.md, "Bulk re-invites and replay").
//!
//! A job publishes `resend-request.v1` messages ([`ResendMessage`], 100 users each)
//! on `<prefix>.resend-requests`, with confirms, before the 202; the [`BulkWorker`]
//! hands each to the [`RequestHandler`], which runs the invite service's resend for
//! each user on behalf of the job's creator. Its deliveries travel the bulk queues,
//! so transactional resends never wait behind it.
//!
//! - [`message`]: the wire type and its "one user or many" rule;
//! - [`requests`]: what the consumer does with a message (resend, count, retry);
//! - [`worker`]: the actor shell;
//! - this module: jobs (create, publish, status).

pub mod message;
pub mod requests;
pub mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::auth::Principal;
use crate::domain::{has_control, ids, now_ms, Error, IdGenerator, Permission};
use crate::queue::topology::KEY_RESEND;
use crate::queue::{Outgoing, Publish, Publisher};
use crate::store::{self, bulk::JobRow};

pub use message::{ResendMessage, MAX_USERS_PER_MESSAGE, MESSAGE_TYPE};
pub use requests::{RequestHandler, ATTEMPTS_EXHAUSTED};
pub use worker::BulkWorker;

/// At most this many ids in one `userIds` job.
pub const MAX_IDS: usize = 10_000;
/// Users read and published per confirmed batch.
const PUBLISH_BATCH: usize = 1_000;
/// Users per message a job publishes: one message per user made the broker's work
/// (and the publisher's) a third of the machine at bulk rates.
const USERS_PER_MESSAGE: usize = 100;

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
    /// The job's deliveries by status (`DeliveryStatus::as_str`).
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
        // An id with a control character names no organization (docs/API.md §1);
        // PostgreSQL would refuse a NUL rather than find nothing.
        let org = if has_control(org_id) { None } else { store::orgs::get(&mut conn, org_id).await? };
        org.filter(|o| caller.can_see(&o.id))
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
                body: ResendMessage::for_job(job_id, chunk).encode(),
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
        let job = if has_control(job_id) { None } else { store::bulk::get_job(&self.pool, job_id).await? };
        let job = job.filter(|j| caller.can_see(&j.org_id)).ok_or_else(job_not_found)?;
        caller.require(Permission::BulkWrite)?;
        job_status(&self.pool, job).await
    }

    /// The status for the command line (machine authority).
    pub async fn status_of(&self, job_id: &str) -> Result<JobStatus, Error> {
        let job = if has_control(job_id) { None } else { store::bulk::get_job(&self.pool, job_id).await? };
        let job = job.ok_or_else(job_not_found)?;
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

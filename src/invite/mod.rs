//! The invite service: create, resend and verify invite codes (API.md §2).
//!
//! Each operation is one PostgreSQL transaction that starts by locking the user's
//! row, so concurrent writes to one user are serialised and their event sequences
//! never repeat. The checks run in the order API.md §2 lists them. No HTTP or AMQP
//! types here: the API and the bulk consumer call the same functions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use sqlx::PgPool;

use crate::auth::Principal;
use crate::batch::Batcher;
use crate::directory::user_not_found;
use crate::domain::{
    ids, now_ms, parse_display_text, parse_user_id, Channel, CodeCipher, Details, Error, IdGenerator, InviteCode, Kind,
    Permission, UrlTemplate,
};
use crate::store::{self, invites::IssueState, users::UserWithOrg, Tx};

/// The template every invite delivery renders.
pub const INVITE_TEMPLATE: &str = "invite_user";
/// Resends gathered for [`InviteService::resend_many`] (see [`InviteService::grouped`]).
#[derive(Clone)]
pub struct Grouped(Batcher<ResendRequest, Result<Issued, Error>>);

impl Grouped {
    /// One resend, answered on its own.
    pub async fn resend(&self, request: ResendRequest) -> Result<Issued, Error> {
        self.0
            .submit(request)
            .await
            .unwrap_or_else(|| Err(Error::unavailable(anyhow::anyhow!("the resend batcher stopped (shutting down)"))))
    }
}

/// Most HTTP resends grouped into one transaction, and how many such
/// transactions one worker thread runs at once.
const GROUP_MAX: usize = 64;
const GROUP_CONCURRENCY: usize = 2;
/// A code is cleared after this many wrong guesses.
const MAX_FAILED_CHECKS: i32 = 3;

/// The `invite` configuration section, as the service needs it.
#[derive(Debug, Clone)]
pub struct InviteSettings {
    pub code_length: usize,
    pub code_ttl: Duration,
    pub default_url_template: UrlTemplate,
    pub default_application_name: String,
    pub max_codes_per_user_per_hour: u32,
}

/// `sendCode` of a create request; every field optional.
#[derive(Debug, Default, Clone)]
pub struct SendCode {
    pub url_template: Option<String>,
    pub application_name: Option<String>,
    pub channel: Option<Channel>,
}

/// What Create is asked to do.
#[derive(Debug, Default, Clone)]
pub struct CreateRequest {
    pub send_code: Option<SendCode>,
    pub return_code: bool,
}

/// The result of a create or resend.
#[derive(Debug)]
pub struct Issued {
    pub details: Details,
    /// The plain code, only when it was asked to be returned.
    pub code: Option<InviteCode>,
    /// The delivery recorded for the workers, if any.
    pub delivery_id: Option<i64>,
}

/// Where a create or resend comes from, and where its delivery goes.
#[derive(Debug, Clone, Default)]
pub struct IssueContext {
    /// The HTTP request (or message) id, kept with the delivery for the logs.
    pub request_id: Option<String>,
    /// The bulk job the request belongs to: its outcome is recorded in the same
    /// transaction, and a request already recorded is not resent again.
    pub job_id: Option<String>,
    /// Bulk deliveries travel their own queues, so transactional ones never wait.
    pub bulk: bool,
    /// Only a user of this organization may be re-invited (a bulk job's own
    /// organization); any other is "not found".
    pub org_id: Option<String>,
}

/// Called with a delivery id after the transaction that recorded it committed (the
/// delivery pipeline publishes it at once instead of waiting for the relay).
pub type DeliveryHook = Arc<dyn Fn(i64) + Send + Sync>;

#[derive(Clone)]
pub struct InviteService {
    pool: PgPool,
    cipher: CodeCipher,
    ids: Arc<IdGenerator>,
    settings: Arc<InviteSettings>,
    on_delivery: Option<DeliveryHook>,
}

impl std::fmt::Debug for InviteService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InviteService").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// One bulk resend: who asks, for which user, from where.
#[derive(Debug, Clone)]
pub struct ResendRequest {
    pub caller: Principal,
    pub user_id: String,
    pub ctx: IssueContext,
}

/// One create or resend inside a batch.
struct IssueItem<'a> {
    caller: &'a Principal,
    user_id: &'a str,
    op: Issue,
    req: CreateRequest,
    ctx: &'a IssueContext,
}

/// What one create or resend will write, decided under its user's lock.
struct Plan {
    write: store::invites::IssueWrite,
    /// The plain code, when it is to be returned.
    code: Option<InviteCode>,
    org_id: String,
}

/// Which of the two operations that issue a code is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Issue {
    Create,
    Resend,
}

impl InviteService {
    pub fn new(pool: PgPool, cipher: CodeCipher, ids: Arc<IdGenerator>, settings: InviteSettings) -> Self {
        InviteService { pool, cipher, ids, settings: Arc::new(settings), on_delivery: None }
    }

    /// Registers what to do with each newly recorded delivery once it is committed.
    pub fn with_delivery_hook(mut self, hook: DeliveryHook) -> Self {
        self.on_delivery = Some(hook);
        self
    }

    /// `POST /v2/users/{userId}/invite_code` (API.md §2.1).
    #[tracing::instrument(skip_all, fields(user_id = %user_id, caller = %caller.token_id))]
    pub async fn create(
        &self,
        caller: &Principal,
        user_id: &str,
        req: CreateRequest,
        ctx: &IssueContext,
    ) -> Result<Issued, Error> {
        self.issue(caller, user_id, Issue::Create, req, ctx).await
    }

    /// `POST /v2/users/{userId}/invite_code/resend` (API.md §2.2): a new code that
    /// inherits how the previous one was sent.
    #[tracing::instrument(skip_all, fields(user_id = %user_id, caller = %caller.token_id))]
    pub async fn resend(&self, caller: &Principal, user_id: &str, ctx: &IssueContext) -> Result<Issued, Error> {
        self.issue(caller, user_id, Issue::Resend, CreateRequest::default(), ctx).await
    }

    /// [`Self::resend`], sharing a transaction with the resends that arrive on
    /// this thread while the previous one commits (a batcher per thread and
    /// service). Each request is checked and answered on its own exactly as
    /// `resend` would; under load, one commit serves many, so the commits the
    /// database must flush do not grow with the requests. When idle a request runs
    /// alone, at once.
    ///
    /// # Panics
    /// Outside a tokio `LocalSet` (an actix-web worker is one).
    pub async fn resend_grouped(&self, caller: &Principal, user_id: &str, ctx: &IssueContext) -> Result<Issued, Error> {
        thread_local! {
            static GROUPS: std::cell::RefCell<HashMap<usize, Grouped>> = std::cell::RefCell::default();
        }
        // The settings' address identifies this service and its clones.
        let key = Arc::as_ptr(&self.settings) as usize;
        let grouped = GROUPS
            .with(|g| g.borrow_mut().entry(key).or_insert_with(|| self.grouped(GROUP_MAX, GROUP_CONCURRENCY)).clone());
        grouped.resend(ResendRequest { caller: caller.clone(), user_id: user_id.to_string(), ctx: ctx.clone() }).await
    }

    /// Resends submitted one by one and run [`Self::resend_many`] at a time: up to
    /// `max` per transaction, `concurrency` transactions at once. Lives on the
    /// calling thread.
    ///
    /// # Panics
    /// Outside a tokio `LocalSet` (any actix Arbiter is one).
    pub fn grouped(&self, max: usize, concurrency: usize) -> Grouped {
        let service = self.clone();
        Grouped(Batcher::start(max, concurrency, move |batch: Vec<ResendRequest>| {
            let service = service.clone();
            async move { service.resend_many(&batch).await }
        }))
    }

    /// Bulk resends: one transaction for the whole batch (a few statements
    /// however many users), each request checked exactly as [`Self::resend`]
    /// checks it. Answers per request, in order. A refused request of a bulk job is
    /// recorded as the job's result in the same transaction. A user named twice is
    /// resent in a second transaction. When a shared transaction fails, its
    /// requests run again one transaction each, so each gets its own answer.
    #[tracing::instrument(skip_all, fields(requests = requests.len()))]
    pub async fn resend_many(&self, requests: &[ResendRequest]) -> Vec<Result<Issued, Error>> {
        let items: Vec<IssueItem<'_>> = requests
            .iter()
            .map(|r| IssueItem {
                caller: &r.caller,
                user_id: &r.user_id,
                op: Issue::Resend,
                req: CreateRequest::default(),
                ctx: &r.ctx,
            })
            .collect();
        let mut results: Vec<Option<Result<Issued, Error>>> = items.iter().map(|_| None).collect();
        // A user twice in one batch is issued twice, one transaction after the
        // other, as two separate requests would be.
        let mut pending: Vec<usize> = (0..items.len()).collect();
        while !pending.is_empty() {
            let mut seen = std::collections::HashSet::new();
            let (round, later): (Vec<usize>, Vec<usize>) =
                pending.into_iter().partition(|&i| seen.insert(items[i].user_id));
            if let Err(e) = self.issue_round(&items, &round, &mut results).await {
                // The round wrote nothing. Alone, its error is its answer; in a
                // group, one request (or one bad moment) must not decide the
                // others' answers: each runs again on its own, concurrently.
                if let [i] = round[..] {
                    results[i] = Some(Err(e));
                } else {
                    tracing::warn!(requests = round.len(), cause = %e.cause(), "a grouped resend failed; resending one by one");
                    let items = &items;
                    let alone = round.iter().map(|&i| async move { (i, self.issue_alone(items, i).await) });
                    for (i, result) in futures_util::future::join_all(alone).await {
                        results[i] = Some(result);
                    }
                }
            }
            pending = later;
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::internal(anyhow::anyhow!("request left unanswered")))))
            .collect()
    }

    async fn issue(
        &self,
        caller: &Principal,
        user_id: &str,
        op: Issue,
        req: CreateRequest,
        ctx: &IssueContext,
    ) -> Result<Issued, Error> {
        self.issue_alone(&[IssueItem { caller, user_id, op, req, ctx }], 0).await
    }

    /// `items[i]` in a transaction of its own.
    async fn issue_alone(&self, items: &[IssueItem<'_>], i: usize) -> Result<Issued, Error> {
        let mut results: Vec<Option<Result<Issued, Error>>> = items.iter().map(|_| None).collect();
        self.issue_round(items, &[i], &mut results).await?;
        results.swap_remove(i).unwrap_or_else(|| Err(Error::internal(anyhow::anyhow!("request left unanswered"))))
    }

    /// Issues codes for `items[round]` (each user at most once) in one
    /// transaction: lock the users, read their state, decide each, write all.
    async fn issue_round(
        &self,
        items: &[IssueItem<'_>],
        round: &[usize],
        results: &mut [Option<Result<Issued, Error>>],
    ) -> Result<(), Error> {
        // A refusal of a bulk job's request is the job's result for that user;
        // a transient error is not (the request is retried).
        let mut failures: Vec<(&str, &str, String)> = Vec::new();
        let mut refuse = |i: usize, e: Error, results: &mut [Option<Result<Issued, Error>>]| {
            let item = &items[i];
            if let (Some(job), false) = (&item.ctx.job_id, e.id == ids::BULK_DONE || e.is_transient()) {
                failures.push((job.as_str(), item.user_id, e.id.to_string()));
            }
            results[i] = Some(Err(e));
        };
        let mut valid = Vec::with_capacity(round.len());
        for &i in round {
            match parse_user_id(items[i].user_id) {
                Ok(_) => valid.push(i),
                Err(e) => refuse(i, e, results),
            }
        }
        let window = chrono::Duration::hours(1);
        let mut writes = Vec::new();
        let mut planned = Vec::new();
        let mut tx = None;
        if !valid.is_empty() {
            let tx = tx.insert(self.pool.begin().await?);
            let ids: Vec<&str> = valid.iter().map(|&i| items[i].user_id).collect();
            let mut users: HashMap<String, UserWithOrg> =
                store::users::lock_many(tx, &ids).await?.into_iter().map(|u| (u.user.id.clone(), u)).collect();
            let keys: Vec<(&str, Option<&str>)> =
                valid.iter().map(|&i| (items[i].user_id, items[i].ctx.job_id.as_deref())).collect();
            let mut states: HashMap<String, IssueState> = store::invites::issue_states(tx, &keys, Utc::now() - window)
                .await?
                .into_iter()
                .map(|s| (s.for_user.clone(), s))
                .collect();
            for &i in &valid {
                let item = &items[i];
                let user = users.remove(item.user_id);
                let state = states.remove(item.user_id);
                match self.plan(item, user, state, window) {
                    Ok(plan) => {
                        writes.push(plan.write);
                        planned.push((i, plan.code, plan.org_id));
                    }
                    Err(e) => refuse(i, e, results),
                }
            }
        }
        if writes.is_empty() && failures.is_empty() {
            return Ok(());
        }
        let mut tx = match tx {
            Some(tx) => tx,
            None => self.pool.begin().await?,
        };
        let sequences: HashMap<String, i64> = if writes.is_empty() {
            HashMap::new()
        } else {
            store::invites::write_issues(&mut tx, &writes).await?.into_iter().collect()
        };
        if !failures.is_empty() {
            let rows: Vec<(&str, &str, &str)> = failures.iter().map(|(j, u, e)| (*j, *u, e.as_str())).collect();
            store::bulk::record_failures(&mut tx, &rows).await?;
        }
        tx.commit().await?;
        for (write, (i, code, org_id)) in writes.iter().zip(planned) {
            let sequence = sequences.get(&write.user_id).copied().unwrap_or_default();
            let delivery_id = write.delivery.as_ref().map(|d| d.id);
            tracing::info!(
                user_id = %write.user_id,
                request_id = items[i].ctx.request_id.as_deref().unwrap_or(""),
                sequence,
                channel = write.channel,
                delivery_id,
                returned = write.returned,
                "invite code issued"
            );
            if let (Some(id), Some(hook)) = (delivery_id, &self.on_delivery) {
                hook(id);
            }
            results[i] = Some(Ok(Issued {
                details: Details { sequence, change_date: write.at, creation_date: write.at, resource_owner: org_id },
                code,
                delivery_id,
            }));
        }
        Ok(())
    }

    /// Decides one create or resend under its user's lock: every check of API.md
    /// §2 in its order, then what to write.
    fn plan(
        &self,
        item: &IssueItem<'_>,
        locked: Option<UserWithOrg>,
        state: Option<IssueState>,
        window: chrono::Duration,
    ) -> Result<Plan, Error> {
        let IssueItem { caller, user_id, op, req, ctx } = item;
        let UserWithOrg { user, org_default_language } = locked
            .filter(|u| u.user.state != "deleted" && caller.can_see(&u.user.org_id))
            .ok_or_else(user_not_found)?;
        if ctx.org_id.as_ref().is_some_and(|org| *org != user.org_id) {
            return Err(user_not_found());
        }
        let state = state.ok_or_else(|| Error::internal(anyhow::anyhow!("no invite state read for the user")))?;
        if state.job_done {
            // Under the user's lock: a redelivered request of the job is a no-op.
            return Err(Error::new(Kind::AlreadyExists, ids::BULK_DONE, "Request already processed"));
        }
        caller.require(Permission::UserWrite)?;
        let previous = state.invite();

        // Body checks (create only; resend ignores any body).
        if req.send_code.is_some() && req.return_code {
            return Err(Error::invalid(ids::VALIDATION, "sendCode and returnCode cannot be used together"));
        }
        let send = req.send_code.clone().unwrap_or_default();
        let url_template = send.url_template.as_deref().map(UrlTemplate::parse).transpose()?;
        let application_name =
            send.application_name.as_deref().map(|a| parse_display_text("sendCode.applicationName", a)).transpose()?;

        if user.initialized {
            return Err(Error::precondition(ids::ALREADY_INITIALIZED, "User is already initialized"));
        }
        if *op == Issue::Resend && previous.as_ref().is_none_or(|p| p.returned) {
            return Err(Error::precondition(ids::CODE_NOT_FOUND, "Code not found"));
        }

        // What is left out is inherited from the previous code, then defaulted.
        let url_template = match (url_template, &previous) {
            (Some(t), _) => t,
            (None, Some(p)) => UrlTemplate::parse(&p.url_template)?,
            (None, None) => self.settings.default_url_template.clone(),
        };
        let application_name = application_name
            .or_else(|| previous.as_ref().map(|p| p.application_name.clone()))
            .unwrap_or_else(|| self.settings.default_application_name.clone());
        let channel = send.channel.or_else(|| previous.as_ref().and_then(|p| Channel::from_db(&p.channel)));
        let (channel, recipient) = if req.return_code {
            // A returned code goes nowhere; remember which contact it would verify.
            let c = channel.unwrap_or(if user.email.is_some() || user.phone.is_none() {
                Channel::Email
            } else {
                Channel::Sms
            });
            (c, None)
        } else {
            let (c, r) = resolve_contact(channel, user.email.as_deref(), user.phone.as_deref())?;
            (c, Some(r.to_string()))
        };

        if state.recent_codes >= i64::from(self.settings.max_codes_per_user_per_hour) {
            let now = Utc::now();
            let retry_at = state.oldest_recent.unwrap_or(now) + window;
            let secs = (retry_at - now).num_seconds().max(0) as u64 + 1;
            return Err(Error::new(Kind::ResourceExhausted, ids::RATE_LIMITED, "Too many invite codes for this user")
                .with_retry_after(Duration::from_secs(secs)));
        }

        let now = now_ms();
        let code = InviteCode::generate(self.settings.code_length);
        let expires_at = now + chrono::Duration::from_std(self.settings.code_ttl).map_err(Error::internal)?;
        let locale = user.preferred_language.clone().unwrap_or(org_default_language);
        let write = store::invites::IssueWrite {
            user_id: user_id.to_string(),
            org_id: user.org_id.clone(),
            created_by: caller.token_id.clone(),
            at: now,
            // The event says how the code was issued, never the code itself.
            payload: json!({
                "channel": channel.as_str(),
                "returned": req.return_code,
                "expiresAt": expires_at,
                "urlTemplate": url_template.as_str(),
                "applicationName": application_name,
            }),
            code_encrypted: self.cipher.seal(&code, user_id),
            expires_at,
            url_template: url_template.as_str().to_string(),
            application_name,
            channel: channel.as_str(),
            returned: req.return_code,
            delivery: recipient.map(|recipient| store::invites::IssueDelivery {
                id: self.ids.next_i64(),
                recipient,
                template: INVITE_TEMPLATE,
                locale,
                request_id: ctx.request_id.clone(),
                lane: if ctx.bulk { "bulk" } else { "transactional" },
            }),
            job_id: ctx.job_id.clone(),
        };
        Ok(Plan { write, code: req.return_code.then_some(code), org_id: user.org_id })
    }

    /// `POST /v2/users/{userId}/invite_code/verify` (API.md §2.3).
    #[tracing::instrument(skip_all, fields(user_id = %user_id, caller = %caller.token_id))]
    pub async fn verify(&self, caller: &Principal, user_id: &str, typed: &str) -> Result<Details, Error> {
        let user_id = parse_user_id(user_id)?;
        let mut tx = self.pool.begin().await?;
        let UserWithOrg { user, .. } = lock_visible_user(&mut tx, caller, user_id).await?;
        caller.require(Permission::UserWrite)?;
        let n = typed.chars().count();
        if n == 0 || n > 20 {
            return Err(Error::invalid(ids::VALIDATION, "verificationCode must be 1 to 20 characters"));
        }

        let now = now_ms();
        let current = store::invites::get(&mut tx, user_id).await?;
        let check = match &current {
            Some(row) => match &row.code_encrypted {
                None => Check::NoCode,
                Some(_) if row.expires_at <= now => Check::Expired,
                Some(sealed) => {
                    let code = self.cipher.open(sealed, user_id).map_err(Error::internal)?;
                    if code.matches(typed) {
                        Check::Match
                    } else {
                        Check::Wrong { clear: row.failed_checks + 1 >= MAX_FAILED_CHECKS }
                    }
                }
            },
            None => Check::NoCode,
        };
        let event = |event_type, payload| store::events::NewEvent {
            aggregate_id: user_id,
            event_type,
            payload,
            resource_owner: &user.org_id,
            created_by: &caller.token_id,
            at: now,
        };
        let Some(row) = current.filter(|_| check == Check::Match) else {
            // Every failure is recorded and answered alike, whatever its cause.
            let reason = check.reason();
            store::events::append_to_user(&mut tx, &event("invite.check.failed", json!({"reason": reason}))).await?;
            match check {
                Check::Expired => store::invites::record_failed_check(&mut tx, user_id, true).await?,
                Check::Wrong { clear } => store::invites::record_failed_check(&mut tx, user_id, clear).await?,
                _ => {}
            }
            tx.commit().await?;
            tracing::info!(reason, "invite check failed");
            return Err(Error::invalid(ids::CODE_INVALID, "Code is invalid"));
        };

        let mut sequence = store::events::append_to_user(&mut tx, &event("invite.check.succeeded", json!({}))).await?;
        let by_sms = row.channel == Channel::Sms.as_str() && user.phone.is_some();
        let by_email = !by_sms && user.email.is_some();
        if by_email {
            sequence = store::events::append_to_user(&mut tx, &event("user.email.verified", json!({}))).await?;
        } else if by_sms {
            sequence = store::events::append_to_user(&mut tx, &event("user.phone.verified", json!({}))).await?;
        }
        store::invites::clear(&mut tx, user_id).await?;
        store::users::mark_initialized(&mut tx, user_id, by_email, by_sms).await?;
        let cancelled = store::deliveries::end_waiting(&mut tx, user_id, "cancelled", now).await?;
        tx.commit().await?;
        tracing::info!(sequence, cancelled, "invite verified");
        Ok(Details { sequence, change_date: now, creation_date: now, resource_owner: user.org_id })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    NoCode,
    Expired,
    Wrong { clear: bool },
    Match,
}

impl Check {
    /// For the event and the log; never for the caller, who gets one answer.
    fn reason(self) -> &'static str {
        match self {
            Check::NoCode => "no_code",
            Check::Expired => "expired",
            Check::Wrong { .. } => "wrong_code",
            Check::Match => "match",
        }
    }
}

/// Checks 3 of API.md §2: the user exists, is not deleted and is visible to the
/// caller. Locks the row for the rest of the transaction.
async fn lock_visible_user(tx: &mut Tx, caller: &Principal, user_id: &str) -> Result<UserWithOrg, Error> {
    store::users::lock(tx, user_id)
        .await?
        .filter(|u| u.user.state != "deleted" && caller.can_see(&u.user.org_id))
        .ok_or_else(user_not_found)
}

/// Picks the channel and the address: the one asked for, else e-mail, else SMS.
fn resolve_contact<'a>(
    wanted: Option<Channel>,
    email: Option<&'a str>,
    phone: Option<&'a str>,
) -> Result<(Channel, &'a str), Error> {
    let no_contact = || Error::precondition(ids::NO_CONTACT, "User has no contact to notify");
    match wanted {
        Some(Channel::Email) => email.map(|e| (Channel::Email, e)).ok_or_else(no_contact),
        Some(Channel::Sms) => phone.map(|p| (Channel::Sms, p)).ok_or_else(no_contact),
        None => email.map(|e| (Channel::Email, e)).or_else(|| phone.map(|p| (Channel::Sms, p))).ok_or_else(no_contact),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_prefers_email_then_phone() {
        assert_eq!(resolve_contact(None, Some("a@b.c"), Some("+41")).unwrap().0, Channel::Email);
        assert_eq!(resolve_contact(None, None, Some("+41")).unwrap().0, Channel::Sms);
        assert_eq!(resolve_contact(Some(Channel::Sms), Some("a@b.c"), Some("+41")).unwrap().0, Channel::Sms);
    }

    #[test]
    fn a_channel_without_an_address_is_a_failed_precondition() {
        let e = resolve_contact(Some(Channel::Sms), Some("a@b.c"), None).unwrap_err();
        assert_eq!((e.kind, e.id.as_ref()), (Kind::FailedPrecondition, ids::NO_CONTACT));
        assert_eq!(resolve_contact(None, None, None).unwrap_err().id, ids::NO_CONTACT);
    }
}

//! The transaction that issues codes: lock the users, read what the rules need,
//! decide each request with [`rules::plan`], write every decision in one statement,
//! commit. One request alone or many at once (`resend_many`) go the same way, so a
//! grouped resend answers exactly as a lone one would (docs/ARCHITECTURE.md,
//! "Actors": HTTP resends share a transaction under load).

use std::collections::{HashMap, HashSet};

use serde_json::json;

use super::limits::{Counts, Window};
use super::rules::{self, History, Issue, IssueItem, Plan, RATE_WINDOW};
use super::{CreateRequest, InviteService, IssueContext, Issued, ResendRequest, INVITE_TEMPLATE};
use crate::auth::Principal;
use crate::domain::{ids, now_ms, parse_user_id, storable, Details, Error, InviteCode};
use crate::store::{self, invites::IssueState, users::UserWithOrg};

/// An answer per request of a round, filled in as each is decided.
type Answers = [Option<Result<Issued, Error>>];

impl InviteService {
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
        // other, as two separate requests would be: one statement writes each
        // user at most once.
        let mut pending: Vec<usize> = (0..items.len()).collect();
        if self.outage.is_on() {
            pending.clear();
        }
        while !pending.is_empty() {
            let mut seen = HashSet::new();
            let (round, later): (Vec<usize>, Vec<usize>) =
                pending.into_iter().partition(|&i| seen.insert(items[i].user_id));
            match self.issue_round(&items, &round, &mut results).await {
                Ok(()) => pending = later,
                // The database does not answer: rerunning the requests (or the next
                // round) would make each wait for a connection again, past the 5 s a
                // caller may wait (docs/ARCHITECTURE.md, "What each fault does now").
                Err(e) if e.is_transient() => {
                    // The round rolled back: refusals decided in it (a rate limit,
                    // a bulk job's refused user) were never recorded, so they are
                    // no answer either; the whole round answers 503.
                    for &i in &round {
                        results[i] = None;
                    }
                    self.outage.begin();
                    tracing::warn!(cause = %e.cause(), "the database does not answer; resends answer 503 for a moment");
                    break;
                }
                Err(e) => {
                    self.after_failed_round(&items, &round, e, &mut results).await;
                    pending = later;
                }
            }
        }
        for r in results.iter_mut().filter(|r| r.is_none()) {
            *r = Some(Err(Error::unavailable(anyhow::anyhow!("the database does not answer"))));
        }
        results.into_iter().map(|r| r.unwrap_or_else(|| Err(unanswered()))).collect()
    }

    /// A round that failed wrote nothing. Alone, its error is its answer; in a
    /// group, one request the database refuses (or one bad moment) must not decide
    /// the others' answers, so each runs again in a transaction of its own, all at
    /// once (docs/ARCHITECTURE.md, "Actors").
    async fn after_failed_round(&self, items: &[IssueItem<'_>], round: &[usize], e: Error, results: &mut Answers) {
        if let [i] = round[..] {
            results[i] = Some(Err(e));
            return;
        }
        tracing::warn!(requests = round.len(), cause = %e.cause(), "a grouped resend failed; resending one by one");
        let alone = round.iter().map(|&i| async move { (i, self.issue_alone(items, i).await) });
        for (i, result) in futures_util::future::join_all(alone).await {
            results[i] = Some(result);
        }
    }

    /// One create or resend in a transaction of its own.
    pub(super) async fn issue(
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
        results.swap_remove(i).unwrap_or_else(|| Err(unanswered()))
    }

    /// Issues codes for `items[round]` (each user at most once) in one
    /// transaction: lock the users, read their state, decide each, write all.
    /// On `Err` nothing was written and no answer is final.
    async fn issue_round(&self, items: &[IssueItem<'_>], round: &[usize], results: &mut Answers) -> Result<(), Error> {
        // A refusal of a bulk job's request is the job's result for that user;
        // a transient error is not (the request is retried).
        let mut failures: Vec<(&str, std::borrow::Cow<'_, str>, String)> = Vec::new();
        let mut refuse = |i: usize, e: Error, results: &mut Answers| {
            let item = &items[i];
            if let (Some(job), false) = (&item.ctx.job_id, e.id == ids::BULK_DONE || e.is_transient()) {
                // A refused id may hold a NUL that no text column takes.
                failures.push((job.as_str(), storable(item.user_id), e.id.to_string()));
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
            let since = chrono::Utc::now() - RATE_WINDOW;
            let mut states: HashMap<String, IssueState> = store::invites::issue_states(tx, &keys, since)
                .await?
                .into_iter()
                .map(|s| (s.for_user.clone(), s))
                .collect();
            let mut counts = self.recent_deliveries(tx, &valid, items, &users, since).await?;
            // One instant for the whole round: the codes it issues are issued together.
            let now = now_ms();
            for &i in &valid {
                let item = &items[i];
                let history = states.remove(item.user_id).map(history);
                let planned_one = rules::plan(item, users.remove(item.user_id), history, &self.settings, now)
                    .and_then(|plan| counts.admit(&plan, self.settings.limits, now).map(|()| plan));
                match planned_one {
                    Ok(plan) => {
                        let (write, code) = self.write(item, plan, now);
                        planned.push((i, code, write.org_id.clone()));
                        writes.push(write);
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
        let held_by = self.handed();
        let sequences: HashMap<String, i64> = if writes.is_empty() {
            HashMap::new()
        } else {
            store::invites::write_issues(&mut tx, &writes, held_by).await?.into_iter().collect()
        };
        if !failures.is_empty() {
            let rows: Vec<(&str, &str, &str)> = failures.iter().map(|(j, u, e)| (*j, u.as_ref(), e.as_str())).collect();
            store::bulk::record_failures(&mut tx, &rows).await?;
        }
        tx.commit().await?;
        self.count_org_sends(&writes);
        // Handed over only if written held by this process: a row left to the
        // outbox sweep is the sweep's to publish.
        if let (Some(handoff), Some(_)) = (&self.handoff, held_by) {
            let rows: Vec<_> = writes.iter().filter_map(handed).collect();
            if !rows.is_empty() {
                (handoff.hand)(rows);
            }
        }
        for (write, (i, code, org_id)) in writes.iter().zip(planned) {
            let sequence = sequences.get(&write.user_id).copied().unwrap_or_default();
            let delivery_id = write.delivery.as_ref().map(|d| d.id);
            tracing::info!(
                user_id = %write.user_id,
                request_id = items[i].ctx.request_id.as_deref().unwrap_or(""),
                sequence,
                channel = write.channel.as_str(),
                delivery_id,
                returned = write.returned,
                "invite code issued"
            );
            results[i] = Some(Ok(Issued {
                details: Details { sequence, change_date: write.at, creation_date: write.at, resource_owner: org_id },
                code,
                delivery_id,
            }));
        }
        Ok(())
    }

    /// The deliveries of the last hour for every address the round's users carry
    /// and every organization a transactional request of it names: what the limits
    /// of `limits.rs` count (docs/API.md §2.1). Read under the users' locks, and
    /// counted on as the round plans.
    async fn recent_deliveries(
        &self,
        tx: &mut sqlx::PgConnection,
        round: &[usize],
        items: &[IssueItem<'_>],
        users: &HashMap<String, UserWithOrg>,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Counts, Error> {
        let mut recipients: Vec<&str> = Vec::new();
        let mut orgs: Vec<&str> = Vec::new();
        for &i in round {
            let Some(u) = users.get(items[i].user_id) else { continue };
            recipients.extend(u.user.email.as_deref().into_iter().chain(u.user.phone.as_deref()));
            if !items[i].ctx.bulk {
                orgs.push(&u.user.org_id);
            }
        }
        recipients.sort_unstable();
        recipients.dedup();
        orgs.sort_unstable();
        orgs.dedup();
        let limits = self.settings.limits;
        let mut counts = Counts::default();
        let window = |(key, count, oldest)| (key, Window { count, oldest });
        if !recipients.is_empty() {
            let cap = limits.per_recipient.into();
            let rows = store::invites::recent_by_recipient(tx, &recipients, since, cap).await?;
            counts.by_recipient = rows.into_iter().map(window).collect();
        }
        if !orgs.is_empty() {
            // Counted by the minute: a minute's codes leave the window when all of
            // it has, a minute after its start did.
            let rows = store::invites::recent_by_org(tx, &orgs, since).await?;
            let by_minute = |(key, count, oldest): (String, i64, Option<chrono::DateTime<chrono::Utc>>)| {
                (key, count, oldest.map(|m| m + chrono::TimeDelta::minutes(1)))
            };
            // What this process counted and has not written yet (`tally.rs`).
            let with_unwritten = |(key, count, oldest): (String, i64, Option<chrono::DateTime<chrono::Utc>>)| {
                let (n, first) = self.org_tally.unwritten(&key, since);
                let oldest = match (oldest, first) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                (key, count + n, oldest)
            };
            counts.by_org = rows.into_iter().map(with_unwritten).map(by_minute).map(window).collect();
        }
        Ok(counts)
    }

    /// Adds the round's transactional deliveries to their organizations' counts
    /// (`limits.rs`), in memory; [`Self::count_sends_every_second`] writes them.
    fn count_org_sends(&self, writes: &[store::invites::IssueWrite]) {
        for w in writes {
            if w.delivery.as_ref().is_some_and(|d| d.lane == crate::domain::Lane::Transactional) {
                self.org_tally.add(&w.org_id, w.at, 1);
            }
        }
    }

    /// Writes the organization counts this process holds in memory (`tally.rs`).
    /// A count that fails to be written (the database gone just now) stays in
    /// memory for the next write and never fails what was committed.
    pub async fn write_org_counts(&self) {
        let Some(rows) = self.org_tally.take() else { return };
        let counted = async {
            let mut conn = self.pool.acquire().await?;
            store::invites::count_org_sends(&mut conn, &rows).await
        };
        match counted.await {
            Ok(()) => self.org_tally.written(&rows),
            Err(e) => {
                tracing::warn!(error = %e, "codes sent not yet counted for the organization limit; trying again");
                self.org_tally.failed();
            }
        }
    }

    /// Writes the organization counts once a second, for as long as the process
    /// runs: other processes see this one's counts within a second, also after it
    /// went idle.
    pub async fn count_sends_every_second(self) {
        let mut tick = tokio::time::interval(super::tally::FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.write_org_counts().await;
        }
    }

    /// Who holds the round's new deliveries: this process's relay, if there is one,
    /// it can publish now, and the process has a row (one without would look dead
    /// to every sweeper). Otherwise nobody: the outbox sweep publishes them.
    fn handed(&self) -> Option<store::invites::Handed> {
        let h = self.handoff.as_ref().filter(|h| (h.can_publish)())?;
        let process = h.holder.process();
        let until = chrono::Utc::now() + chrono::Duration::from_std(h.hold).ok()?;
        (process != 0).then_some(store::invites::Handed { process, until })
    }

    /// What a plan writes: a fresh code (sealed to its user), the event that says
    /// how it was issued, and the delivery, if it is sent. Returns the plain code
    /// too when it is to be returned.
    fn write(
        &self,
        item: &IssueItem<'_>,
        plan: Plan,
        now: chrono::DateTime<chrono::Utc>,
    ) -> (store::invites::IssueWrite, Option<InviteCode>) {
        let code = InviteCode::generate(self.settings.code_length);
        let write = store::invites::IssueWrite {
            user_id: item.user_id.to_string(),
            org_id: plan.org_id,
            created_by: item.caller.token_id.clone(),
            at: now,
            // The event says how the code was issued, never the code itself.
            payload: json!({
                "channel": plan.channel.as_str(),
                "returned": plan.returned,
                "expiresAt": plan.expires_at,
                "urlTemplate": plan.url_template.as_str(),
                "applicationName": plan.application_name,
            }),
            code_encrypted: self.cipher.seal(&code, item.user_id),
            expires_at: plan.expires_at,
            url_template: plan.url_template.as_str().to_string(),
            application_name: plan.application_name,
            channel: plan.channel,
            returned: plan.returned,
            delivery: plan.recipient.map(|recipient| store::invites::IssueDelivery {
                id: self.ids.next_i64(),
                recipient,
                template: INVITE_TEMPLATE,
                locale: plan.locale,
                request_id: item.ctx.request_id.clone(),
                lane: plan.lane,
            }),
            job_id: item.ctx.job_id.clone(),
        };
        (write, plan.returned.then_some(code))
    }
}

/// What the rules need of the state read under the user's lock.
fn history(state: IssueState) -> History {
    History {
        previous: state.invite(),
        recent_codes: state.recent_codes,
        oldest_recent: state.oldest_recent,
        job_done: state.job_done,
    }
}

/// The delivery a write recorded, as the relay publishes it.
fn handed(w: &store::invites::IssueWrite) -> Option<store::outbox::Unpublished> {
    w.delivery.as_ref().map(|d| store::outbox::Unpublished {
        id: d.id,
        channel: w.channel,
        lane: d.lane,
        attempts: 0,
        request_id: d.request_id.clone(),
    })
}

/// A request no round answered: a bug, never a caller's fault.
fn unanswered() -> Error {
    Error::internal(anyhow::anyhow!("request left unanswered"))
}

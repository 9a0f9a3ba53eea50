//! Recovering dead deliveries (API.md §5): list, inspect, replay one or many.
//!
//! A replay puts a dead delivery back in the outbox when its code can still be
//! sent; when the code was replaced or expired it is "stale": skipped, or, with
//! `reissue`, replaced by a new code exactly as Resend would (the dead delivery is
//! then `superseded`). Safe to repeat: only `dead` deliveries are replayed, and the
//! status is checked again under the row lock.

use std::collections::BTreeMap;

use sqlx::PgPool;

use crate::auth::Principal;
use crate::domain::{ids, DeliveryStatus, Error, Kind, Permission};
use crate::invite::{DeliveryHook, InviteService, IssueContext};
use crate::metrics::Metrics;
use crate::store::{self, deliveries::AttemptRow, deliveries::DeliveryFilter, deliveries::DeliveryRow};

/// Dead deliveries looked at per batch of a filtered replay.
const BATCH: i64 = 500;

/// What happened to one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayOutcome {
    /// Back in the outbox with its attempts reset.
    Requeued,
    /// A new code was issued and sent as a new delivery.
    Reissued { delivery_id: Option<i64> },
}

/// `POST /admin/v1/deliveries/replay`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    pub matched: u64,
    pub replayed: u64,
    /// `stale` (code replaced or expired, no `reissue`), or the error id that
    /// stopped a reissue (e.g. `COMMAND-EF34g`: the user verified meanwhile).
    pub skipped: BTreeMap<String, u64>,
}

#[derive(Clone)]
pub struct ReplayService {
    pool: PgPool,
    invites: InviteService,
    metrics: Metrics,
    /// Tells the outbox relay that requeued rows wait.
    kick: Option<DeliveryHook>,
}

fn not_found() -> Error {
    Error::not_found(ids::DELIVERY_NOT_FOUND, "Delivery not found")
}

impl ReplayService {
    pub fn new(pool: PgPool, invites: InviteService, metrics: Metrics, kick: Option<DeliveryHook>) -> Self {
        ReplayService { pool, invites, metrics, kick }
    }

    /// The invite service reissues go through.
    pub fn invites(&self) -> &InviteService {
        &self.invites
    }

    /// Restricts a filter to what the caller may see.
    ///
    /// # Errors
    /// 404 when the filter names another tenant's organization.
    fn scope(caller: &Principal, mut f: DeliveryFilter) -> Result<DeliveryFilter, Error> {
        match (&caller.org_id, &f.org_id) {
            (Some(own), Some(asked)) if own != asked => {
                return Err(Error::not_found(ids::ORG_NOT_FOUND, "Organization not found"))
            }
            (Some(own), None) => f.org_id = Some(own.clone()),
            _ => {}
        }
        Ok(f)
    }

    /// Newest first; `cursor` is the `nextCursor` of the previous page.
    ///
    /// # Errors
    /// 403 without `delivery.read`; 404 for another tenant's organization.
    pub async fn list(
        &self,
        caller: &Principal,
        filter: DeliveryFilter,
        limit: i64,
        cursor: Option<i64>,
    ) -> Result<(Vec<DeliveryRow>, Option<i64>), Error> {
        let filter = Self::scope(caller, filter)?;
        caller.require(Permission::DeliveryRead)?;
        let limit = limit.clamp(1, 500);
        let mut rows = store::deliveries::list(&self.pool, &filter, cursor, limit + 1).await?;
        let next = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|r| r.id)
        } else {
            None
        };
        Ok((rows, next))
    }

    /// # Errors
    /// 404 for a delivery the caller cannot see; 403 without `delivery.read`.
    pub async fn get(&self, caller: &Principal, id: i64) -> Result<(DeliveryRow, Vec<AttemptRow>), Error> {
        let row = store::deliveries::get(&self.pool, id)
            .await?
            .filter(|d| caller.can_see(&d.org_id))
            .ok_or_else(not_found)?;
        caller.require(Permission::DeliveryRead)?;
        let attempts = store::deliveries::attempts(&self.pool, id).await?;
        Ok((row, attempts))
    }

    /// Replays one dead delivery.
    ///
    /// # Errors
    /// 404 (not visible), 403 (no `delivery.replay`), 400 code 9 `NOTIFY-notdead`
    /// (not dead) or `NOTIFY-stale` (stale without `reissue`), and the errors of
    /// Resend when reissuing.
    #[tracing::instrument(skip_all, fields(caller = %caller.token_id, delivery_id = id, reissue))]
    pub async fn replay_one(&self, caller: &Principal, id: i64, reissue: bool) -> Result<ReplayOutcome, Error> {
        let outcome = self.replay(caller, id, reissue, false).await?;
        tracing::info!(?outcome, "delivery replayed");
        Ok(outcome)
    }

    /// `dry_run`: decide, change nothing.
    async fn replay(&self, caller: &Principal, id: i64, reissue: bool, dry_run: bool) -> Result<ReplayOutcome, Error> {
        let mut tx = self.pool.begin().await?;
        let d = store::deliveries::lock_for_replay(&mut tx, id)
            .await?
            .filter(|d| caller.can_see(&d.org_id))
            .ok_or_else(not_found)?;
        caller.require(Permission::DeliveryReplay)?;
        if d.status != DeliveryStatus::Dead.as_str() {
            return Err(Error::precondition(ids::NOT_DEAD, "Only a dead delivery can be replayed"));
        }
        if d.code_current {
            if !dry_run {
                store::deliveries::requeue(&mut tx, id).await?;
                tx.commit().await?;
                self.metrics.replay("requeued");
                if let Some(kick) = &self.kick {
                    kick();
                }
            }
            return Ok(ReplayOutcome::Requeued);
        }
        if !reissue {
            return Err(Error::precondition(
                ids::STALE,
                "The delivery's code was replaced or expired; replay with reissue",
            ));
        }
        if dry_run {
            return Ok(ReplayOutcome::Reissued { delivery_id: None });
        }
        drop(tx);
        // Reissuing is part of the replay the caller may do: it acts with the
        // caller's scope, and the resend's own checks (initialized, rate limit) apply.
        let mut acting = caller.clone();
        acting.permissions.push(Permission::UserWrite);
        let ctx = IssueContext { request_id: Some(format!("replay-{id}")), ..Default::default() };
        let issued = self.invites.resend(&acting, &d.user_id, &ctx).await?;
        store::deliveries::supersede_dead(&self.pool, id).await?;
        self.metrics.replay("reissued");
        Ok(ReplayOutcome::Reissued { delivery_id: issued.delivery_id })
    }

    /// Replays every dead delivery that matches, in batches.
    ///
    /// # Errors
    /// 403 without `delivery.replay`, 404 for another tenant's organization, 503
    /// when the database does not answer.
    #[tracing::instrument(skip_all, fields(caller = %caller.token_id, dry_run, reissue))]
    pub async fn replay_matching(
        &self,
        caller: &Principal,
        filter: DeliveryFilter,
        dry_run: bool,
        reissue: bool,
    ) -> Result<ReplayReport, Error> {
        let filter = Self::scope(caller, filter)?;
        caller.require(Permission::DeliveryReplay)?;
        let mut report = ReplayReport::default();
        let mut after = 0;
        loop {
            let batch = store::deliveries::dead_ids(&self.pool, &filter, after, BATCH).await?;
            let Some(&last) = batch.last() else { break };
            after = last;
            for id in batch {
                match self.replay(caller, id, reissue, dry_run).await {
                    Ok(_) => {
                        report.matched += 1;
                        if !dry_run {
                            report.replayed += 1;
                        }
                    }
                    // Replayed by someone else since it was listed: not a match any more.
                    Err(e) if e.id == ids::NOT_DEAD || e.kind == Kind::NotFound => {}
                    Err(e) if e.is_transient() => return Err(e),
                    Err(e) => {
                        report.matched += 1;
                        let key = if e.id == ids::STALE { "stale".to_string() } else { e.id.to_string() };
                        *report.skipped.entry(key).or_default() += 1;
                    }
                }
            }
        }
        tracing::info!(matched = report.matched, replayed = report.replayed, skipped = ?report.skipped, "replay by filter");
        Ok(report)
    }
}

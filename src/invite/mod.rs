//! The invite service: create, resend and verify invite codes (docs/API.md §2).
//!
//! Each operation is one PostgreSQL transaction that starts by locking the user's
//! row, so concurrent writes to one user are serialised and their event sequences
//! never repeat (docs/ARCHITECTURE.md, "The way a resend travels"). No HTTP or AMQP
//! types here: the API and the bulk consumer call the same functions.
//!
//! - `mod.rs`: the service, its public types and its entry points;
//! - `issue.rs`: the transaction that issues codes, one request or many, and the
//!   rerun of a failed shared transaction one request at a time;
//! - `rules.rs`: the decision of one create or resend, a pure function;
//! - `verify.rs`: Verify.

mod issue;
mod limits;
mod rules;
mod tally;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use crate::auth::Principal;
use crate::batch::Batcher;
use crate::domain::{Channel, CodeCipher, Details, Error, IdGenerator, InviteCode, UrlTemplate};
pub use limits::Limits;
use rules::Issue;

/// The template every invite delivery renders.
pub const INVITE_TEMPLATE: &str = "invite_user";

/// Resends gathered for [`InviteService::resend_many`] (see [`InviteService::grouped`]):
/// under load one transaction serves many, so the commits PostgreSQL must flush do
/// not grow with the requests (docs/ARCHITECTURE.md, "Actors"). The HTTP API holds
/// one per actix-web worker (built in `startup`), a bulk worker one of its own.
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

/// The `invite` configuration section, as the service needs it.
#[derive(Debug, Clone)]
pub struct InviteSettings {
    pub code_length: usize,
    pub code_ttl: Duration,
    pub default_url_template: UrlTemplate,
    pub default_application_name: String,
    pub max_codes_per_user_per_hour: u32,
    /// Codes per recipient and per organization per hour (`limits.rs`).
    pub limits: Limits,
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

/// Called after a transaction that put a delivery in the outbox committed (the
/// relay sweeps the outbox at once instead of at its next tick). Replays and ZITADEL
/// messages use it; resends hand their rows over instead ([`Handoff`]).
pub type DeliveryHook = Arc<dyn Fn() + Send + Sync>;

/// Where the deliveries a transaction recorded go once it committed: straight to
/// this process's relay, which publishes them without reading them back from the
/// outbox and writes nothing when the broker confirms them (docs/ARCHITECTURE.md,
/// "Performance"). The rows are written held by this process (`claimed_by`, from
/// `holder`) for `hold` (`publishing_until`): the outbox sweep leaves them alone,
/// and the sweeper hands them back at once if this process dies, or when the hold
/// runs out (a message the broker lost, as for any published row). While the relay
/// cannot publish (`can_publish` false: the broker is down or blocked) rows are
/// written unheld instead, for the relay's first sweep once it can.
#[derive(Clone)]
pub struct Handoff {
    pub hold: Duration,
    pub holder: crate::liveness::Liveness,
    pub hand: Arc<dyn Fn(Vec<crate::store::outbox::Unpublished>) + Send + Sync>,
    pub can_publish: Arc<dyn Fn() -> bool + Send + Sync>,
}

#[derive(Clone)]
pub struct InviteService {
    pool: PgPool,
    cipher: CodeCipher,
    ids: Arc<IdGenerator>,
    settings: Arc<InviteSettings>,
    handoff: Option<Handoff>,
    /// Set when a transaction met a database that does not answer: for a moment
    /// after, resends answer 503 at once instead of each waiting for a connection.
    outage: Outage,
    /// Codes sent per organization, counted in memory (`tally.rs`).
    org_tally: tally::OrgTally,
}

/// A moment during which the database is taken to be down (shared by the clones of
/// one service, so by every worker of a process).
#[derive(Debug, Clone, Default)]
pub(crate) struct Outage(Arc<std::sync::atomic::AtomicI64>);

impl Outage {
    /// How long a failed connection is believed: long enough that the requests
    /// queued behind a failed transaction do not each wait for a connection again,
    /// short enough that a database back answers at once.
    const HOLD_MS: i64 = 1_000;

    pub(crate) fn begin(&self) {
        self.0.store(chrono::Utc::now().timestamp_millis() + Self::HOLD_MS, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn is_on(&self) -> bool {
        chrono::Utc::now().timestamp_millis() < self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
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

impl InviteService {
    pub fn new(pool: PgPool, cipher: CodeCipher, ids: Arc<IdGenerator>, settings: InviteSettings) -> Self {
        InviteService {
            pool,
            cipher,
            ids,
            settings: Arc::new(settings),
            handoff: None,
            outage: Outage::default(),
            org_tally: tally::OrgTally::default(),
        }
    }

    /// Hands each newly recorded delivery to `handoff` once it is committed.
    pub fn with_handoff(mut self, handoff: Handoff) -> Self {
        self.handoff = Some(handoff);
        self
    }

    /// `POST /v2/users/{userId}/invite_code` (docs/API.md §2.1).
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

    /// `POST /v2/users/{userId}/invite_code/resend` (docs/API.md §2.2): a new code that
    /// inherits how the previous one was sent.
    #[tracing::instrument(skip_all, fields(user_id = %user_id, caller = %caller.token_id))]
    pub async fn resend(&self, caller: &Principal, user_id: &str, ctx: &IssueContext) -> Result<Issued, Error> {
        self.issue(caller, user_id, Issue::Resend, CreateRequest::default(), ctx).await
    }

    /// Resends submitted one by one and run [`Self::resend_many`] at a time: up to
    /// `max` per transaction, `concurrency` transactions at once. Lives on the
    /// calling thread, whose tasks it shares (no lock between threads).
    ///
    /// # Panics
    /// Outside a tokio `LocalSet` (an actix Arbiter or an actix-web worker is one).
    pub fn grouped(&self, max: usize, concurrency: usize) -> Grouped {
        let service = self.clone();
        Grouped(Batcher::start(max, concurrency, move |batch: Vec<ResendRequest>| {
            let service = service.clone();
            async move { service.resend_many(&batch).await }
        }))
    }
}

//! The decision of one create or resend, taken under its user's row lock: every
//! check of docs/API.md §2 in the order it lists them, then what the new code is.
//!
//! A pure function of what the transaction read and the time it passes in (no
//! database, no clock, no randomness), so that each branch has a unit test below
//! and the transaction around it (`issue.rs`) only reads, decides and writes.

use chrono::{DateTime, TimeDelta, Utc};

use super::{CreateRequest, InviteSettings, IssueContext};
use crate::auth::Principal;
use crate::directory::user_not_found;
use crate::domain::{ids, parse_display_text, Channel, Error, Kind, Lane, Permission, UrlTemplate};
use crate::store::invites::InviteCodeRow;
use crate::store::users::UserWithOrg;

/// How far back the rate limit counts a user's codes.
pub(super) const RATE_WINDOW: TimeDelta = TimeDelta::hours(1);

/// Which of the two operations that issue a code is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Issue {
    Create,
    Resend,
}

/// One create or resend, as it was asked.
pub(super) struct IssueItem<'a> {
    pub caller: &'a Principal,
    pub user_id: &'a str,
    pub op: Issue,
    pub req: CreateRequest,
    pub ctx: &'a IssueContext,
}

/// What the transaction read about the user's codes under the user's lock (the
/// rate limit must count codes committed by whoever held the lock before).
#[derive(Debug, Clone, Default)]
pub(super) struct History {
    /// The current code, or the cleared one whose settings a resend inherits.
    pub previous: Option<InviteCodeRow>,
    /// Codes issued to the user within [`RATE_WINDOW`].
    pub recent_codes: i64,
    pub oldest_recent: Option<DateTime<Utc>>,
    /// The bulk job of the request already holds a result for this user.
    pub job_done: bool,
}

/// What one create or resend issues: everything but the code itself and the ids,
/// which `issue.rs` draws (they are random, and a rule that draws them could not be
/// tested by its answer).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Plan {
    pub org_id: String,
    pub channel: Channel,
    /// Where the delivery goes; `None` for a returned code, which goes nowhere.
    pub recipient: Option<String>,
    pub url_template: UrlTemplate,
    pub application_name: String,
    pub expires_at: DateTime<Utc>,
    /// The language the delivery is rendered in.
    pub locale: String,
    pub lane: Lane,
    pub returned: bool,
}

/// Check 3 of docs/API.md §2: the user exists, is not deleted and is visible to the
/// caller; anything else is "not found", so a caller learns nothing of other tenants.
pub(super) fn visible(locked: Option<UserWithOrg>, caller: &Principal) -> Result<UserWithOrg, Error> {
    locked.filter(|u| u.user.state != "deleted" && caller.can_see(&u.user.org_id)).ok_or_else(user_not_found)
}

/// Decides one create or resend at `now`: every check of docs/API.md §2 in its
/// order, then the new code's settings (what the request leaves out is inherited
/// from the code it supersedes, then defaulted), its contact, lane and expiry.
///
/// # Errors
/// The first check that fails, as the caller is to see it.
pub(super) fn plan(
    item: &IssueItem<'_>,
    locked: Option<UserWithOrg>,
    history: Option<History>,
    settings: &InviteSettings,
    now: DateTime<Utc>,
) -> Result<Plan, Error> {
    let IssueItem { caller, op, req, ctx, .. } = item;
    let UserWithOrg { user, org_default_language } = visible(locked, caller)?;
    if ctx.org_id.as_ref().is_some_and(|org| *org != user.org_id) {
        return Err(user_not_found());
    }
    let history = history.ok_or_else(|| Error::internal(anyhow::anyhow!("no invite state read for the user")))?;
    if history.job_done {
        // Under the user's lock: a redelivered request of the job is a no-op.
        return Err(Error::new(Kind::AlreadyExists, ids::BULK_DONE, "Request already processed"));
    }
    caller.require(Permission::UserWrite)?;
    let previous = history.previous.as_ref();

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
    if *op == Issue::Resend && previous.is_none_or(|p| p.returned) {
        return Err(Error::precondition(ids::CODE_NOT_FOUND, "Code not found"));
    }

    // What is left out is inherited from the previous code, then defaulted.
    let url_template = match (url_template, previous) {
        (Some(t), _) => t,
        (None, Some(p)) => UrlTemplate::parse(&p.url_template)?,
        (None, None) => settings.default_url_template.clone(),
    };
    let application_name = application_name
        .or_else(|| previous.map(|p| p.application_name.clone()))
        .unwrap_or_else(|| settings.default_application_name.clone());
    let channel = send.channel.or_else(|| previous.and_then(|p| Channel::from_db(&p.channel)));
    let (channel, recipient) = if req.return_code {
        // A returned code goes nowhere; remember which contact it would verify.
        let c =
            channel.unwrap_or(if user.email.is_some() || user.phone.is_none() { Channel::Email } else { Channel::Sms });
        (c, None)
    } else {
        let (c, r) = resolve_contact(channel, user.email.as_deref(), user.phone.as_deref())?;
        (c, Some(r.to_string()))
    };

    rate_limit(&history, settings.max_codes_per_user_per_hour, now)?;

    let expires_at = now + TimeDelta::from_std(settings.code_ttl).map_err(Error::internal)?;
    Ok(Plan {
        channel,
        recipient,
        url_template,
        application_name,
        expires_at,
        locale: user.preferred_language.unwrap_or(org_default_language),
        lane: if ctx.bulk { Lane::Bulk } else { Lane::Transactional },
        returned: req.return_code,
        org_id: user.org_id,
    })
}

/// The rate limit of docs/API.md §2.1: at most `max` codes per user within
/// [`RATE_WINDOW`]. A refusal says when the oldest counted code leaves the window.
fn rate_limit(history: &History, max: u32, now: DateTime<Utc>) -> Result<(), Error> {
    if history.recent_codes < i64::from(max) {
        return Ok(());
    }
    let retry_at = history.oldest_recent.unwrap_or(now) + RATE_WINDOW;
    // Rounded up, so a caller that waits as told is not refused again.
    let secs = (retry_at - now).num_seconds().max(0) as u64 + 1;
    Err(Error::new(Kind::ResourceExhausted, ids::RATE_LIMITED, "Too many invite codes for this user")
        .with_retry_after(std::time::Duration::from_secs(secs)))
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
mod tests;

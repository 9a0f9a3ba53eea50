//! Verify (docs/API.md §2.3): one transaction under the user's row lock, so that a
//! code checked concurrently verifies once and wrong guesses are all counted.

use serde_json::json;

use super::rules::visible;
use super::InviteService;
use crate::auth::Principal;
use crate::domain::{ids, now_ms, parse_user_id, Channel, DeliveryStatus, Details, Error, Permission};
use crate::store::{self, users::UserWithOrg};

/// A code is cleared after this many wrong guesses, so guessing a six-character
/// code is hopeless (docs/API.md §2.3).
const MAX_FAILED_CHECKS: i32 = 3;

impl InviteService {
    /// `POST /v2/users/{userId}/invite_code/verify` (docs/API.md §2.3).
    #[tracing::instrument(skip_all, fields(user_id = %user_id, caller = %caller.token_id))]
    pub async fn verify(&self, caller: &Principal, user_id: &str, typed: &str) -> Result<Details, Error> {
        let user_id = parse_user_id(user_id)?;
        let mut tx = self.pool.begin().await?;
        let UserWithOrg { user, .. } = visible(store::users::lock(&mut tx, user_id).await?, caller)?;
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
        // A delivery still waiting would send a code that no longer verifies.
        let cancelled =
            store::deliveries::end_waiting(&mut tx, user_id, DeliveryStatus::Cancelled.as_str(), now).await?;
        tx.commit().await?;
        tracing::info!(sequence, cancelled, "invite verified");
        Ok(Details { sequence, change_date: now, creation_date: now, resource_owner: user.org_id })
    }
}

/// What a verification found; decided before anything is written.
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

//! The limits that keep herald from being used to bomb an inbox or a phone
//! (docs/API.md §2.1): codes sent per recipient (one address or number, whichever
//! users carry it) and per organization per hour, besides the per-user limit of
//! `rules`. Pure: the transaction counts the window (`issue.rs`), this decides.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::rules::{Plan, RATE_WINDOW};
use crate::domain::{ids, Error, Kind, Lane};

/// The limits, from `invite.max_codes_per_recipient_per_hour` and
/// `invite.max_codes_per_org_per_hour`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub per_recipient: u32,
    pub per_org: u32,
}

/// Deliveries made within [`RATE_WINDOW`] for one recipient or one organization:
/// how many, and when the oldest of them was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Window {
    pub count: i64,
    pub oldest: Option<DateTime<Utc>>,
}

impl Window {
    /// This window with one more delivery made at `at` (one planned earlier in the
    /// same transaction, which the count read before it could not see).
    fn add(&mut self, at: DateTime<Utc>) {
        self.count += 1;
        self.oldest = Some(self.oldest.map_or(at, |o| o.min(at)));
    }
}

/// What the transaction counted, and what it planned since.
#[derive(Debug, Default)]
pub(super) struct Counts {
    pub by_recipient: HashMap<String, Window>,
    /// Transactional deliveries only: a bulk job is an operator's act, bounded by
    /// its own size and by the per-recipient limit.
    pub by_org: HashMap<String, Window>,
}

impl Counts {
    /// Checks `plan` against `limits` at `now`, and counts it when it passes.
    /// A returned code goes nowhere and is not counted.
    ///
    /// # Errors
    /// 429, `NOTIFY-rate`, with the seconds until the oldest counted delivery
    /// leaves the window.
    pub(super) fn admit(&mut self, plan: &Plan, limits: Limits, now: DateTime<Utc>) -> Result<(), Error> {
        let Some(recipient) = &plan.recipient else { return Ok(()) };
        let per_org = plan.lane == Lane::Transactional;
        let by_recipient = self.by_recipient.get(recipient).copied().unwrap_or_default();
        refuse_past(by_recipient, limits.per_recipient, now, "Too many invite codes for this recipient")?;
        if per_org {
            let by_org = self.by_org.get(&plan.org_id).copied().unwrap_or_default();
            refuse_past(by_org, limits.per_org, now, "Too many invite codes for this organization")?;
            self.by_org.entry(plan.org_id.clone()).or_default().add(now);
        }
        self.by_recipient.entry(recipient.clone()).or_default().add(now);
        Ok(())
    }
}

fn refuse_past(w: Window, max: u32, now: DateTime<Utc>, text: &'static str) -> Result<(), Error> {
    if w.count < i64::from(max) {
        return Ok(());
    }
    let retry_at = w.oldest.unwrap_or(now) + RATE_WINDOW;
    // Rounded up, as the per-user limit does.
    let secs = (retry_at - now).num_seconds().max(0) as u64 + 1;
    Err(Error::new(Kind::ResourceExhausted, ids::RATE_LIMITED, text)
        .with_retry_after(std::time::Duration::from_secs(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Channel, UrlTemplate};
    use chrono::TimeDelta;

    const LIMITS: Limits = Limits { per_recipient: 2, per_org: 3 };

    fn now() -> DateTime<Utc> {
        "2026-12-01T12:00:00Z".parse().unwrap()
    }

    fn plan(recipient: Option<&str>, org: &str, lane: Lane) -> Plan {
        Plan {
            org_id: org.into(),
            channel: Channel::Email,
            recipient: recipient.map(str::to_string),
            url_template: UrlTemplate::parse("https://x.example/?c={{.Code}}").unwrap(),
            application_name: "A".into(),
            expires_at: now(),
            locale: "en".into(),
            lane,
            returned: recipient.is_none(),
        }
    }

    #[test]
    fn one_address_shared_by_many_users_is_limited_across_them() {
        let mut counts = Counts::default();
        let to_ada = plan(Some("ada@example.com"), "o1", Lane::Transactional);
        counts.admit(&to_ada, LIMITS, now()).unwrap();
        counts.admit(&to_ada, LIMITS, now()).unwrap();
        let e = counts.admit(&to_ada, LIMITS, now()).unwrap_err();
        assert_eq!((e.kind, e.id.as_ref()), (Kind::ResourceExhausted, ids::RATE_LIMITED));
        assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(3601)));
        counts.admit(&plan(Some("bob@example.com"), "o1", Lane::Transactional), LIMITS, now()).unwrap();
    }

    #[test]
    fn retry_after_counts_from_the_oldest_delivery_in_the_window() {
        let mut counts = Counts::default();
        let oldest = now() - TimeDelta::minutes(50);
        counts.by_recipient.insert("ada@example.com".into(), Window { count: 2, oldest: Some(oldest) });
        let e = counts.admit(&plan(Some("ada@example.com"), "o1", Lane::Bulk), LIMITS, now()).unwrap_err();
        assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(601)));
    }

    #[test]
    fn an_organization_is_limited_on_its_transactional_deliveries_only() {
        let mut counts = Counts::default();
        counts.by_org.insert("o1".into(), Window { count: 3, oldest: Some(now()) });
        let e = counts.admit(&plan(Some("a@x.example"), "o1", Lane::Transactional), LIMITS, now()).unwrap_err();
        assert!(e.text.contains("organization"), "{}", e.text);
        counts.admit(&plan(Some("a@x.example"), "o1", Lane::Bulk), LIMITS, now()).unwrap();
        counts.admit(&plan(Some("a@x.example"), "o2", Lane::Transactional), LIMITS, now()).unwrap();
    }

    #[test]
    fn a_returned_code_goes_nowhere_and_is_not_counted() {
        let mut counts = Counts::default();
        for _ in 0..10 {
            counts.admit(&plan(None, "o1", Lane::Transactional), LIMITS, now()).unwrap();
        }
        assert!(counts.by_org.is_empty() && counts.by_recipient.is_empty());
    }
}

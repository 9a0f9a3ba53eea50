//! The retry policy (docs/ARCHITECTURE.md, "Retries"), as plain functions: what
//! an attempt's result means for the delivery ([`decide`]) and when a transient
//! failure is tried again ([`after_transient`]). No I/O and no clock of their own.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::message::DeliveryMessage;
use crate::channels::SendError;
use crate::domain::{AttemptOutcome, DeliveryStatus};
use crate::queue::Disposition;

/// The `delivery` settings the pipeline needs.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub delays: Vec<Duration>,
    pub max_attempts: u32,
    /// How long a claim holds a delivery; longer than any one send can take.
    pub lease: Duration,
}

/// The first pause between two tries of an attempt record that failed (the
/// database blinked after the provider accepted the mail); it doubles up to
/// [`RECORD_PAUSE_MAX`], and the tries go on for twice the lease.
pub const RECORD_PAUSE_FIRST: Duration = Duration::from_millis(100);
pub const RECORD_PAUSE_MAX: Duration = Duration::from_secs(5);

/// The pause after `pause` between two tries of an attempt record.
pub fn next_record_pause(pause: Duration) -> Duration {
    (pause * 2).min(RECORD_PAUSE_MAX)
}

/// How an attempt ended, before it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempted {
    /// Accepted, with the provider's message id when it gave one.
    Sent(Option<String>),
    Failed(SendError),
}

/// One attempt, as the decision needs it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub delivery_id: i64,
    /// The attempt's number (≥ 1: the claim counted it).
    pub number: u32,
    /// When the delivery's code expires: no retry is scheduled past it.
    pub code_expires_at: DateTime<Utc>,
    pub result: Attempted,
}

/// What the attempt log records, and the delivery's new status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub outcome: AttemptOutcome,
    /// `Sent`, `Retrying`, `Dead` or `Expired`.
    pub status: DeliveryStatus,
    pub error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub provider_message_id: Option<String>,
}

/// The decision on one attempt: what to record, then what to do with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub record: Record,
    pub disposition: Disposition,
}

/// Decides what an attempt means (docs/ARCHITECTURE.md, "Retries"): sent → `Sent`
/// and ack; permanent → `Dead` and parked; transient → `Retrying` with a retry
/// message for the next attempt, or `Dead` when attempts are exhausted, or
/// `Expired` (acked) when the next attempt would come after the code's expiry.
/// `jitter` is a factor in 0.8..=1.2 ([`jitter`]), `now` the time of the decision.
pub fn decide(attempt: Attempt, policy: &RetryPolicy, jitter: f64, now: DateTime<Utc>) -> Outcome {
    let record = |outcome, status, error: &str| Record {
        outcome,
        status,
        error: Some(error.to_string()),
        next_attempt_at: None,
        provider_message_id: None,
    };
    match attempt.result {
        Attempted::Sent(provider_message_id) => Outcome {
            record: Record {
                outcome: AttemptOutcome::Sent,
                status: DeliveryStatus::Sent,
                error: None,
                next_attempt_at: None,
                provider_message_id,
            },
            disposition: Disposition::Ack,
        },
        Attempted::Failed(SendError::Permanent { message }) => Outcome {
            record: record(AttemptOutcome::Permanent, DeliveryStatus::Dead, &message),
            disposition: Disposition::Dead { reason: message },
        },
        Attempted::Failed(SendError::Transient { message, retry_after }) => {
            let next = after_transient(
                attempt.number,
                policy.max_attempts,
                &policy.delays,
                retry_after,
                jitter,
                now,
                attempt.code_expires_at,
            );
            match next {
                Next::Retry(delay) => Outcome {
                    record: Record {
                        next_attempt_at: Some(now + chrono::Duration::from_std(delay).unwrap_or_default()),
                        ..record(AttemptOutcome::Transient, DeliveryStatus::Retrying, &message)
                    },
                    disposition: Disposition::Retry {
                        delay,
                        body: DeliveryMessage::one(attempt.delivery_id, attempt.number + 1).encode(),
                    },
                },
                Next::Dead => Outcome {
                    record: record(AttemptOutcome::Transient, DeliveryStatus::Dead, &message),
                    disposition: Disposition::Dead {
                        reason: format!("attempts exhausted ({}): {message}", attempt.number),
                    },
                },
                Next::Expired => Outcome {
                    record: record(AttemptOutcome::Transient, DeliveryStatus::Expired, &message),
                    disposition: Disposition::Ack,
                },
            }
        }
    }
}

/// What happens after a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait this long (one of the declared delays), then try again.
    Retry(Duration),
    /// Attempts exhausted.
    Dead,
    /// The next try would come after the code expired.
    Expired,
}

/// Decides the next step after `attempts` (≥ 1) failed transiently.
///
/// The base delay is `delays[attempts-1]` (the last one repeats), jittered by
/// `jitter` (a factor in 0.8..=1.2) and rounded to the nearest declared delay; a
/// `Retry-After` picks the smallest declared delay that honours it.
pub fn after_transient(
    attempts: u32,
    max_attempts: u32,
    delays: &[Duration],
    retry_after: Option<Duration>,
    jitter: f64,
    now: DateTime<Utc>,
    code_expires_at: DateTime<Utc>,
) -> Next {
    if attempts >= max_attempts || delays.is_empty() {
        return Next::Dead;
    }
    let base = delays[(attempts as usize - 1).min(delays.len() - 1)];
    let wanted = base.mul_f64(jitter.clamp(0.8, 1.2));
    let mut delay = nearest(delays, wanted);
    if let Some(after) = retry_after {
        if after > delay {
            delay = delays.iter().copied().find(|d| *d >= after).unwrap_or(delays[delays.len() - 1]);
        }
    }
    let at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
    if at >= code_expires_at {
        Next::Expired
    } else {
        Next::Retry(delay)
    }
}

fn nearest(delays: &[Duration], wanted: Duration) -> Duration {
    let dist = |d: &Duration| d.as_secs_f64().ln() - wanted.as_secs_f64().ln();
    // Nearest on a log scale: 20s is nearer 30s than 5s, as a person would say.
    delays.iter().copied().min_by(|a, b| dist(a).abs().total_cmp(&dist(b).abs())).unwrap_or(wanted)
}

/// A jitter factor in 0.8..=1.2.
pub fn jitter() -> f64 {
    0.8 + rand::random::<f64>() * 0.4
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delays() -> Vec<Duration> {
        ["5s", "30s", "2m", "10m", "30m", "2h"].iter().map(|s| humantime::parse_duration(s).unwrap()).collect()
    }

    fn far() -> DateTime<Utc> {
        Utc::now() + chrono::Duration::days(3)
    }

    #[test]
    fn schedule_follows_the_attempt_count() {
        let now = Utc::now();
        assert_eq!(after_transient(1, 7, &delays(), None, 1.0, now, far()), Next::Retry(Duration::from_secs(5)));
        assert_eq!(after_transient(2, 7, &delays(), None, 1.2, now, far()), Next::Retry(Duration::from_secs(30)));
        assert_eq!(after_transient(6, 7, &delays(), None, 0.8, now, far()), Next::Retry(Duration::from_secs(7200)));
        assert_eq!(after_transient(7, 7, &delays(), None, 1.0, now, far()), Next::Dead);
    }

    #[test]
    fn retry_after_chooses_a_later_tier() {
        let now = Utc::now();
        assert_eq!(
            after_transient(1, 7, &delays(), Some(Duration::from_secs(45)), 1.0, now, far()),
            Next::Retry(Duration::from_secs(120))
        );
        assert_eq!(
            after_transient(1, 7, &delays(), Some(Duration::from_secs(1)), 1.0, now, far()),
            Next::Retry(Duration::from_secs(5))
        );
    }

    #[test]
    fn a_retry_never_outlives_the_code() {
        let now = Utc::now();
        let soon = now + chrono::Duration::seconds(10);
        assert_eq!(after_transient(2, 7, &delays(), None, 1.0, now, soon), Next::Expired);
    }

    fn policy() -> RetryPolicy {
        RetryPolicy { delays: delays(), max_attempts: 7, lease: Duration::from_secs(90) }
    }

    fn attempt(number: u32, result: Attempted) -> Attempt {
        Attempt { delivery_id: 42, number, code_expires_at: far(), result }
    }

    fn transient(retry_after: Option<Duration>) -> Attempted {
        Attempted::Failed(SendError::Transient { message: "421 try later".into(), retry_after })
    }

    #[test]
    fn a_sent_attempt_is_recorded_sent_and_acked() {
        let now = Utc::now();
        let outcome = decide(attempt(1, Attempted::Sent(Some("p-1".into()))), &policy(), 1.0, now);
        assert_eq!(
            outcome,
            Outcome {
                record: Record {
                    outcome: AttemptOutcome::Sent,
                    status: DeliveryStatus::Sent,
                    error: None,
                    next_attempt_at: None,
                    provider_message_id: Some("p-1".into()),
                },
                disposition: Disposition::Ack,
            }
        );
    }

    #[test]
    fn a_permanent_failure_is_dead_at_once_and_parked_with_its_reason() {
        let failed = Attempted::Failed(SendError::permanent("550 no such user"));
        let outcome = decide(attempt(1, failed), &policy(), 1.0, Utc::now());
        assert_eq!(outcome.record.outcome, AttemptOutcome::Permanent);
        assert_eq!(outcome.record.status, DeliveryStatus::Dead);
        assert_eq!(outcome.record.error.as_deref(), Some("550 no such user"));
        assert_eq!(outcome.disposition, Disposition::Dead { reason: "550 no such user".into() });
    }

    #[test]
    fn a_transient_failure_with_attempts_left_retries_with_the_next_attempt() {
        let now = Utc::now();
        let outcome = decide(attempt(2, transient(None)), &policy(), 1.0, now);
        assert_eq!(outcome.record.outcome, AttemptOutcome::Transient);
        assert_eq!(outcome.record.status, DeliveryStatus::Retrying);
        assert_eq!(outcome.record.error.as_deref(), Some("421 try later"));
        assert_eq!(outcome.record.next_attempt_at, Some(now + chrono::Duration::seconds(30)));
        assert_eq!(
            outcome.disposition,
            Disposition::Retry { delay: Duration::from_secs(30), body: DeliveryMessage::one(42, 3).encode() }
        );
    }

    #[test]
    fn a_transient_failure_out_of_attempts_is_dead() {
        let outcome = decide(attempt(7, transient(None)), &policy(), 1.0, Utc::now());
        assert_eq!(outcome.record.outcome, AttemptOutcome::Transient);
        assert_eq!(outcome.record.status, DeliveryStatus::Dead);
        assert_eq!(outcome.record.next_attempt_at, None);
        assert_eq!(outcome.disposition, Disposition::Dead { reason: "attempts exhausted (7): 421 try later".into() });
    }

    #[test]
    fn a_transient_failure_whose_retry_would_outlive_the_code_expires_and_is_acked() {
        let now = Utc::now();
        let soon = Attempt { code_expires_at: now + chrono::Duration::seconds(10), ..attempt(2, transient(None)) };
        let outcome = decide(soon, &policy(), 1.0, now);
        assert_eq!(outcome.record.outcome, AttemptOutcome::Transient);
        assert_eq!(outcome.record.status, DeliveryStatus::Expired);
        assert_eq!(outcome.record.next_attempt_at, None);
        assert_eq!(outcome.disposition, Disposition::Ack);
    }

    #[test]
    fn a_providers_retry_after_picks_a_later_delay() {
        let now = Utc::now();
        let outcome = decide(attempt(1, transient(Some(Duration::from_secs(45)))), &policy(), 1.0, now);
        assert_eq!(outcome.record.status, DeliveryStatus::Retrying);
        assert_eq!(outcome.record.next_attempt_at, Some(now + chrono::Duration::seconds(120)));
        assert!(matches!(outcome.disposition, Disposition::Retry { delay, .. } if delay == Duration::from_secs(120)));
    }

    #[test]
    fn record_pauses_double_up_to_a_cap() {
        let mut pause = RECORD_PAUSE_FIRST;
        let mut seen = vec![];
        for _ in 0..8 {
            seen.push(pause.as_millis());
            pause = next_record_pause(pause);
        }
        assert_eq!(seen, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }
}

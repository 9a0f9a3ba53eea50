//! The words of a delivery's life, as types: its status, its lane and the outcome of
//! one attempt. The strings they map to are what PostgreSQL stores and what the admin
//! API shows (docs/API.md §5); this file is the one place that spells them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a delivery stands (docs/ARCHITECTURE.md, "Guarantees": every delivery ends
/// in a final status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Committed, waiting for the relay or a worker.
    Queued,
    /// Claimed by a worker holding a lease.
    Sending,
    /// Accepted by the SMTP server or the SMS provider.
    Sent,
    /// A transient failure; a retry message is on its way.
    Retrying,
    /// Failed for good, or out of attempts; parked in the dead queue.
    Dead,
    /// A newer code replaced its code before it was sent.
    Superseded,
    /// Its code expired before it was sent.
    Expired,
    /// The invite was verified before it was sent.
    Cancelled,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 8] = [
        DeliveryStatus::Queued,
        DeliveryStatus::Sending,
        DeliveryStatus::Sent,
        DeliveryStatus::Retrying,
        DeliveryStatus::Dead,
        DeliveryStatus::Superseded,
        DeliveryStatus::Expired,
        DeliveryStatus::Cancelled,
    ];

    /// The statuses of a delivery that is still on its way.
    pub const WAITING: [DeliveryStatus; 3] =
        [DeliveryStatus::Queued, DeliveryStatus::Sending, DeliveryStatus::Retrying];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Retrying => "retrying",
            DeliveryStatus::Dead => "dead",
            DeliveryStatus::Superseded => "superseded",
            DeliveryStatus::Expired => "expired",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }

    /// Whether nothing more will happen to the delivery by itself.
    pub fn is_final(self) -> bool {
        !Self::WAITING.contains(&self)
    }
}

/// Which queues a delivery travels: a transactional mail never waits behind a bulk
/// backlog (docs/ARCHITECTURE.md, "Bulk re-invites and replay").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lane {
    Transactional,
    Bulk,
}

impl Lane {
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Transactional => "transactional",
            Lane::Bulk => "bulk",
        }
    }
}

/// How one attempt ended, as the attempt log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptOutcome {
    Sent,
    /// Worth another try (SMTP 4xx, timeouts, provider 5xx/408/429).
    Transient,
    /// Never worth another try (SMTP 5xx, provider 4xx, a bad recipient).
    Permanent,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Sent => "sent",
            AttemptOutcome::Transient => "transient",
            AttemptOutcome::Permanent => "permanent",
        }
    }
}

/// A word that names none of a type's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownWord {
    pub what: &'static str,
    pub word: String,
}

impl fmt::Display for UnknownWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} {:?}", self.what, self.word)
    }
}

impl std::error::Error for UnknownWord {}

/// `FromStr` and `Display` from `as_str`, so the words are spelled once.
macro_rules! words {
    ($ty:ty, $what:literal, $all:expr) => {
        impl FromStr for $ty {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $all.into_iter()
                    .find(|v: &$ty| v.as_str() == s)
                    .ok_or_else(|| UnknownWord { what: $what, word: s.to_string() })
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

words!(DeliveryStatus, "status", DeliveryStatus::ALL);
words!(Lane, "lane", [Lane::Transactional, Lane::Bulk]);
words!(AttemptOutcome, "outcome", [AttemptOutcome::Sent, AttemptOutcome::Transient, AttemptOutcome::Permanent]);

/// A message that names one item (`one`) or several (`many`), never both and never
/// none: the shape of `delivery.v1` and `resend-request.v1`. `one_name`/`many_name`
/// are the wire names, for the error.
///
/// # Errors
/// Both or neither given, or more than `max` in `many`.
pub fn one_or_many<'a>(
    one: &'a str,
    many: &'a [String],
    max: usize,
    (one_name, many_name): (&str, &str),
) -> Result<Vec<&'a str>, String> {
    match (one.is_empty(), many.is_empty()) {
        (false, true) => Ok(vec![one]),
        (true, false) if many.len() <= max => Ok(many.iter().map(String::as_str).collect()),
        (true, false) => Err(format!("{many_name} holds more than {max} ids")),
        _ => Err(format!("exactly one of {one_name} and {many_name} is required")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_as_itself() {
        for s in DeliveryStatus::ALL {
            assert_eq!(s.as_str().parse::<DeliveryStatus>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
        }
        assert!("Queued".parse::<DeliveryStatus>().is_err());
    }

    #[test]
    fn only_the_waiting_statuses_are_not_final() {
        let waiting: Vec<_> = DeliveryStatus::ALL.into_iter().filter(|s| !s.is_final()).collect();
        assert_eq!(waiting, DeliveryStatus::WAITING);
    }

    #[test]
    fn lanes_and_outcomes_read_back() {
        assert_eq!("bulk".parse::<Lane>(), Ok(Lane::Bulk));
        assert_eq!("transactional".parse::<Lane>(), Ok(Lane::Transactional));
        assert_eq!("permanent".parse::<AttemptOutcome>(), Ok(AttemptOutcome::Permanent));
        assert!("other".parse::<Lane>().is_err());
    }

    #[test]
    fn one_or_many_takes_exactly_one_form() {
        let names = ("userId", "userIds");
        let many = vec!["a".to_string(), "b".to_string()];
        assert_eq!(one_or_many("x", &[], 3, names).unwrap(), ["x"]);
        assert_eq!(one_or_many("", &many, 3, names).unwrap(), ["a", "b"]);
        assert!(one_or_many("", &many, 1, names).unwrap_err().contains("more than 1"));
        assert!(one_or_many("x", &many, 3, names).unwrap_err().contains("exactly one"));
        assert!(one_or_many("", &[], 3, names).unwrap_err().contains("exactly one"));
    }
}

//! The ways a message leaves herald: e-mail (lettre) and SMS (HTTP providers).
//!
//! Each sender answers with [`SendError`] classified for the retry policy
//! (docs/ARCHITECTURE.md, "Retries"): transient failures are retried, permanent ones are not.

pub mod email;
pub mod sms;

use std::time::Duration;

use crate::domain::mask_personal_data;

pub use email::{EmailSender, OutgoingEmail, SendEmail};
pub use sms::{OutgoingSms, SendSms, SmsSender};

/// A failed send, classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// May succeed later: SMTP 4xx, connection errors, timeouts, HTTP 5xx/408/429.
    #[error("{message}")]
    Transient { message: String, retry_after: Option<Duration> },
    /// Will not succeed: SMTP 5xx, HTTP 4xx, an invalid recipient.
    #[error("{message}")]
    Permanent { message: String },
}

/// Every message of a failed send is masked where it is made: it goes to
/// `lastError`, the attempt rows, the log and `x-herald-reason`, and a provider's
/// reply may name the address or the number (docs/ARCHITECTURE.md, "Retries").
impl SendError {
    pub fn transient(message: impl Into<String>) -> Self {
        Self::transient_after(message, None)
    }

    pub fn transient_after(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        SendError::Transient { message: mask_personal_data(&message.into()), retry_after }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        SendError::Permanent { message: mask_personal_data(&message.into()) }
    }
}

/// What a provider said when it accepted the message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    /// The provider's id for the message, when it gives one.
    pub provider_message_id: Option<String>,
}

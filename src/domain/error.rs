//! The one error type every domain operation returns.
//!
//! herald speaks ZITADEL's error language: a gRPC-style kind, a stable error id
//! (`COMMAND-Wr3gq`) and a human text. The API layer maps [`Kind`] to an HTTP status
//! and a body (REST or Connect) in exactly one place (`api::error`); nothing below the
//! API knows about HTTP.

use std::borrow::Cow;
use std::time::Duration;

/// The gRPC status code family of an error (API.md §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    InvalidArgument,
    FailedPrecondition,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    AlreadyExists,
    ResourceExhausted,
    Internal,
    Unavailable,
    Unimplemented,
}

impl Kind {
    /// The numeric gRPC code, as the REST body carries it.
    pub fn grpc_code(self) -> u16 {
        match self {
            Kind::InvalidArgument => 3,
            Kind::NotFound => 5,
            Kind::AlreadyExists => 6,
            Kind::PermissionDenied => 7,
            Kind::ResourceExhausted => 8,
            Kind::FailedPrecondition => 9,
            Kind::Unimplemented => 12,
            Kind::Internal => 13,
            Kind::Unavailable => 14,
            Kind::Unauthenticated => 16,
        }
    }

    /// The lower-case gRPC code name, as the Connect body carries it.
    pub fn connect_name(self) -> &'static str {
        match self {
            Kind::InvalidArgument => "invalid_argument",
            Kind::NotFound => "not_found",
            Kind::AlreadyExists => "already_exists",
            Kind::PermissionDenied => "permission_denied",
            Kind::ResourceExhausted => "resource_exhausted",
            Kind::FailedPrecondition => "failed_precondition",
            Kind::Unimplemented => "unimplemented",
            Kind::Internal => "internal",
            Kind::Unavailable => "unavailable",
            Kind::Unauthenticated => "unauthenticated",
        }
    }
}

/// A failed operation: what kind, which check (`id`), and what to tell the caller.
///
/// `source` holds the underlying cause of internal and unavailable errors. It is
/// logged, never sent: a 5xx body carries no SQL, broker or stack text.
#[derive(Debug, thiserror::Error)]
#[error("{text} ({id})")]
pub struct Error {
    pub kind: Kind,
    pub id: Cow<'static, str>,
    pub text: Cow<'static, str>,
    /// Seconds the caller should wait; set for [`Kind::ResourceExhausted`].
    pub retry_after: Option<Duration>,
    #[source]
    pub source: Option<anyhow::Error>,
}

impl Error {
    pub fn new(kind: Kind, id: impl Into<Cow<'static, str>>, text: impl Into<Cow<'static, str>>) -> Self {
        Error { kind, id: id.into(), text: text.into(), retry_after: None, source: None }
    }

    pub fn invalid(id: &'static str, text: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Kind::InvalidArgument, id, text)
    }

    pub fn precondition(id: &'static str, text: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Kind::FailedPrecondition, id, text)
    }

    pub fn not_found(id: &'static str, text: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Kind::NotFound, id, text)
    }

    /// An unexpected failure; `cause` goes to the log only.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Error { source: Some(cause.into()), ..Self::new(Kind::Internal, "HERALD-internal", "Internal error") }
    }

    /// A dependency (database, broker) that did not answer; `cause` goes to the log only.
    pub fn unavailable(cause: impl Into<anyhow::Error>) -> Self {
        Error {
            source: Some(cause.into()),
            ..Self::new(Kind::Unavailable, "HERALD-unavailable", "Service temporarily unavailable")
        }
    }

    /// The wire message: `"<text> (<id>)"`, or the text alone when there is no id.
    pub fn message(&self) -> String {
        if self.id.is_empty() {
            self.text.to_string()
        } else {
            format!("{} ({})", self.text, self.id)
        }
    }

    /// For the log: the underlying cause (database, broker) when there is one,
    /// else the wire message.
    pub fn cause(&self) -> String {
        self.source.as_ref().map(|s| format!("{s:#}")).unwrap_or_else(|| self.message())
    }

    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// True for failures that may succeed when tried again unchanged (database down).
    /// An internal error is not: the same input fails the same way (a NUL the
    /// database refuses), and retrying it would loop (docs/API.md §4).
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, Kind::Unavailable)
    }
}

/// The error ids herald answers with, in one place so tests and docs can name them.
pub mod ids {
    pub const USER_ID_MISSING: &str = "COMMAND-4jio3";
    pub const USER_NOT_FOUND: &str = "COMMAND-Wgvn4";
    pub const CODE_NOT_FOUND: &str = "COMMAND-Wr3gq";
    pub const CODE_INVALID: &str = "COMMAND-Wgn4q";
    pub const ALREADY_INITIALIZED: &str = "COMMAND-EF34g";
    pub const URL_TEMPLATE_PARSE: &str = "DOMAIN-oGh5e";
    pub const URL_TEMPLATE_INVALID: &str = "DOMAIN-ieYa7";
    pub const NO_CONTACT: &str = "NOTIFY-0contact";
    pub const RATE_LIMITED: &str = "NOTIFY-rate";
    /// ZITADEL answers a missing header with the bare text `auth header missing`.
    pub const AUTH_MISSING: &str = "";
    pub const TOKEN_INVALID: &str = "AUTH-7fs1e";
    pub const PERMISSION_DENIED: &str = "AUTH-AWfge";
    pub const ORG_NOT_FOUND: &str = "ORG-notfound";
    pub const TOKEN_NOT_FOUND: &str = "AUTH-tokennotfound";
    pub const USERNAME_TAKEN: &str = "USER-usernametaken";
    pub const USER_ID_TAKEN: &str = "USER-idtaken";
    pub const NO_CREDENTIALS: &str = "USER-nocreds";
    pub const INVALID_BODY: &str = "API-body";
    pub const BODY_TOO_LARGE: &str = "API-bodysize";
    pub const VALIDATION: &str = "API-invalid";
    /// A bulk request processed before (the broker delivered it twice).
    pub const BULK_DONE: &str = "BULK-done";
    pub const BULK_NOT_FOUND: &str = "BULK-notfound";
    /// A bulk request out of attempts (`delivery.max_attempts`) while its users still
    /// failed transiently: they are counted as failed under this id.
    pub const ATTEMPTS_EXHAUSTED: &str = "BULK-attemptsexhausted";
    pub const DELIVERY_NOT_FOUND: &str = "NOTIFY-nodelivery";
    pub const NOT_DEAD: &str = "NOTIFY-notdead";
    pub const STALE: &str = "NOTIFY-stale";
    pub const ROUTE_NOT_FOUND: &str = "API-noroute";
    /// ZITADEL's notifications (API.md §8).
    pub const PROVIDER_NOT_FOUND: &str = "ZITADEL-noprovider";
    pub const SIGNATURE_INVALID: &str = "ZITADEL-signature";
    pub const SIGNATURE_MALFORMED: &str = "ZITADEL-sigheader";
    pub const ZITADEL_MESSAGE: &str = "ZITADEL-message";
}

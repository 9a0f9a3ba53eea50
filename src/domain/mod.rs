//! Newtypes and rules of herald's domain. No HTTP, SQL or AMQP types here.

pub mod code;
pub mod contact;
pub mod delivery;
pub mod error;
pub mod id;
pub mod redact;
pub mod source;
pub mod url_template;
pub mod zitadel;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use code::{CodeCipher, InviteCode};
pub use contact::{Email, Phone};
pub use delivery::{one_or_many, AttemptOutcome, DeliveryStatus, Lane};
pub use error::{ids, Error, Kind};
pub use id::IdGenerator;
pub use redact::mask_personal_data;
pub use source::DeliverySource;
pub use url_template::{check_link, UrlTemplate};

/// The way a code reaches a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Sms,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }

    pub fn from_db(s: &str) -> Option<Self> {
        [Channel::Email, Channel::Sms].into_iter().find(|c| c.as_str() == s)
    }
}

impl std::str::FromStr for Channel {
    type Err = delivery::UnknownWord;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::from_db(s).ok_or_else(|| delivery::UnknownWord { what: "channel", word: s.to_string() })
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a token may do (API.md §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Permission {
    #[serde(rename = "org.write")]
    OrgWrite,
    #[serde(rename = "user.read")]
    UserRead,
    #[serde(rename = "user.write")]
    UserWrite,
    #[serde(rename = "delivery.read")]
    DeliveryRead,
    #[serde(rename = "delivery.replay")]
    DeliveryReplay,
    #[serde(rename = "bulk.write")]
    BulkWrite,
    #[serde(rename = "token.write")]
    TokenWrite,
    /// Register and manage ZITADEL notification providers.
    #[serde(rename = "provider.write")]
    ProviderWrite,
}

impl Permission {
    pub const ALL: [Permission; 8] = [
        Permission::OrgWrite,
        Permission::UserRead,
        Permission::UserWrite,
        Permission::DeliveryRead,
        Permission::DeliveryReplay,
        Permission::BulkWrite,
        Permission::TokenWrite,
        Permission::ProviderWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::OrgWrite => "org.write",
            Permission::UserRead => "user.read",
            Permission::UserWrite => "user.write",
            Permission::DeliveryRead => "delivery.read",
            Permission::DeliveryReplay => "delivery.replay",
            Permission::BulkWrite => "bulk.write",
            Permission::TokenWrite => "token.write",
            Permission::ProviderWrite => "provider.write",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// The ways an organization lets its users sign in; named in the invite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginMethod {
    Password,
    Passkey,
    Idp,
}

impl LoginMethod {
    pub const ALL: [LoginMethod; 3] = [LoginMethod::Password, LoginMethod::Passkey, LoginMethod::Idp];

    pub fn as_str(self) -> &'static str {
        match self {
            LoginMethod::Password => "password",
            LoginMethod::Passkey => "passkey",
            LoginMethod::Idp => "idp",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// The path's `userId` (check 1 of API.md §2): 1–200 characters, not blank, no
/// control characters (API.md §1: a NUL could not even be looked up, PostgreSQL
/// refuses it in text).
pub fn parse_user_id(raw: &str) -> Result<&str, Error> {
    let n = raw.chars().count();
    if n == 0 || n > 200 || raw.trim().is_empty() {
        return Err(Error::invalid(ids::USER_ID_MISSING, "User ID missing"));
    }
    no_control("userId", raw)?;
    Ok(raw)
}

/// Whether `raw` holds a control character (C0 with NUL, DEL, C1).
pub fn has_control(raw: &str) -> bool {
    raw.chars().any(char::is_control)
}

/// The rule of API.md §1 for every id and text a request carries: no control
/// characters; else 400, code 3, naming the field.
///
/// # Errors
/// `API-invalid` naming `field`.
pub fn no_control(field: &str, raw: &str) -> Result<(), Error> {
    if has_control(raw) {
        return Err(Error::invalid(ids::VALIDATION, format!("{field} must not contain control characters")));
    }
    Ok(())
}

/// An id from a path or a queue message as a table can hold it: PostgreSQL's text
/// refuses NUL, so a refused id is recorded (e.g. as a bulk job's result) with its
/// control characters escaped.
pub fn storable(raw: &str) -> std::borrow::Cow<'_, str> {
    if has_control(raw) {
        raw.chars().flat_map(char::escape_default).collect::<String>().into()
    } else {
        raw.into()
    }
}

/// A free text shown to people (application name, org name): 1–200 characters, no
/// control characters (it may go into an e-mail subject, where CR/LF would inject
/// headers).
pub fn parse_display_text(field: &'static str, raw: &str) -> Result<String, Error> {
    let n = raw.chars().count();
    if n == 0 || n > 200 || raw.trim().is_empty() {
        return Err(Error::invalid(ids::VALIDATION, format!("{field} must be 1 to 200 characters")));
    }
    if raw.chars().any(char::is_control) {
        return Err(Error::invalid(ids::VALIDATION, format!("{field} must not contain control characters")));
    }
    Ok(raw.to_string())
}

/// A BCP 47 language tag (`en`, `de-CH`, `zh-Hans`); kept as given.
pub fn parse_language(field: &'static str, raw: &str) -> Result<String, Error> {
    let mut parts = raw.split(['-', '_']);
    let primary = parts.next().unwrap_or("");
    let ok = (2..=3).contains(&primary.len())
        && primary.chars().all(|c| c.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if ok {
        Ok(raw.to_string())
    } else {
        Err(Error::invalid(ids::VALIDATION, format!("{field} is not a language tag")))
    }
}

/// `details` of API.md §1.1, as the domain knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Details {
    pub sequence: i64,
    pub change_date: DateTime<Utc>,
    pub creation_date: DateTime<Utc>,
    pub resource_owner: String,
}

/// Now, at the millisecond precision herald reports, so what is stored and what is
/// answered are the same instant.
pub fn now_ms() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_must_not_be_blank_or_long() {
        assert!(parse_user_id("123").is_ok());
        for bad in ["", "   ", &"9".repeat(201)] {
            assert_eq!(parse_user_id(bad).unwrap_err().id, ids::USER_ID_MISSING);
        }
    }

    #[test]
    fn ids_and_texts_refuse_control_characters() {
        for bad in ["a\0b", "a\tb", "\u{7f}", "x\u{85}", "a\r\n"] {
            let e = parse_user_id(bad).unwrap_err();
            assert_eq!((e.kind, e.id.as_ref()), (Kind::InvalidArgument, ids::VALIDATION), "{bad:?}");
            assert!(e.text.contains("userId"), "{}", e.text);
        }
        assert!(no_control("orgId", "123").is_ok());
        assert!(no_control("orgId", "ü😀").is_ok());
        assert_eq!(storable("a\0b"), "a\\u{0}b");
        assert_eq!(storable("plain"), "plain");
    }

    #[test]
    fn display_text_refuses_header_injection() {
        assert!(parse_display_text("applicationName", "Acme").is_ok());
        assert!(parse_display_text("applicationName", "Acme\r\nBcc: x@y").is_err());
        assert!(parse_display_text("applicationName", "").is_err());
    }

    #[test]
    fn language_tags() {
        for ok in ["en", "de-CH", "zh-Hans", "pt_BR"] {
            assert!(parse_language("l", ok).is_ok(), "{ok}");
        }
        for bad in ["", "e", "english!", "de-"] {
            assert!(parse_language("l", bad).is_err(), "{bad}");
        }
    }
}

//! Typed settings, loaded in layers (docs/ARCHITECTURE.md, "Configuration").
//!
//! 1. `config/default.toml`, embedded in the binary: every key and its default;
//! 2. `config/<HERALD_ENV>.toml`, when it exists;
//! 3. environment variables `HERALD__<SECTION>__<KEY>`.
//!
//! The defaults file also fixes each key's type: an environment value is read as
//! the type of the default it replaces, so `HERALD__AUTH__BOOTSTRAP_TOKEN=123` stays
//! a string and `HERALD__DELIVERY__RETRY_DELAYS=1s,5s` becomes a list. A key that is
//! not in the defaults is a typo, and an error.

mod key;
mod load;

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Deserializer};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {key}: {message}")]
    Invalid { key: String, message: String },
    #[error("cannot read configuration file {path}: {message}")]
    File { path: PathBuf, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.to_string(), message: message.into() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Api,
    Worker,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `HERALD_ENV`, `development` when unset.
    #[serde(skip, default = "development")]
    pub env: String,
    pub roles: Vec<Role>,
    pub http: Http,
    pub grpc: Grpc,
    pub database: Database,
    pub amqp: Amqp,
    pub delivery: Delivery,
    pub email: Email,
    pub sms: Sms,
    pub invite: Invite,
    pub auth: Auth,
    pub crypto: Crypto,
    pub log: Log,
    pub shutdown: Shutdown,
    pub zitadel: Zitadel,
}

fn development() -> String {
    "development".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    pub addr: String,
}

/// gRPC and gRPC-web (docs/API.md §9), on a listener of their own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grpc {
    pub addr: String,
    /// Browser origins allowed to call gRPC-web (CORS); none when empty.
    pub cors_origins: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    pub url: String,
    pub max_connections: u32,
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Amqp {
    /// The one-node form; `urls`, when not empty, wins (docs/ARCHITECTURE.md, "Scaling out").
    pub url: String,
    /// The nodes of a cluster, tried in turn on connect and on every reconnect.
    pub urls: Vec<String>,
    /// Replicas of each quorum queue declared (`x-quorum-initial-group-size`, leaders
    /// balanced); 0 leaves both to the broker. Only a queue declared anew gets them.
    pub quorum_replicas: u16,
    pub prefix: String,
    pub prefetch: u16,
    pub resend_prefetch: u16,
}

impl Amqp {
    /// The nodes to try, in order: `urls`, or `url` alone when `urls` is empty.
    pub fn nodes(&self) -> Vec<String> {
        if self.urls.is_empty() {
            vec![self.url.clone()]
        } else {
            self.urls.clone()
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    #[serde(deserialize_with = "durations")]
    pub retry_delays: Vec<Duration>,
    pub max_attempts: u32,
    /// A delivery still `queued` this long after it was published, or `retrying`
    /// this long past its retry time, lost its message: the sweeper publishes it again.
    #[serde(deserialize_with = "duration")]
    pub republish_after: Duration,
    /// A herald process silent this long is dead: its claims are taken over and its
    /// ID node may be leased again.
    #[serde(deserialize_with = "duration")]
    pub process_dead_after: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailTransport {
    Smtp,
    File,
    Log,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Email {
    pub transport: EmailTransport,
    pub smtp_url: String,
    pub from: String,
    pub file_dir: PathBuf,
    pub smtp_connections: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsProvider {
    Log,
    Webhook,
    Twilio,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sms {
    pub provider: SmsProvider,
    pub webhook_url: String,
    pub twilio_account_sid: String,
    pub twilio_auth_token: String,
    pub twilio_from: String,
    pub twilio_base_url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    pub code_length: usize,
    #[serde(deserialize_with = "duration")]
    pub code_ttl: Duration,
    pub default_url_template: String,
    pub default_application_name: String,
    pub max_codes_per_user_per_hour: u32,
    pub max_codes_per_recipient_per_hour: u32,
    pub max_codes_per_org_per_hour: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    pub bootstrap_token: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Crypto {
    pub key: String,
    /// Where the key of a development machine is kept when `key` is unset (`key.rs`).
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shutdown {
    #[serde(deserialize_with = "duration")]
    pub grace: Duration,
}

/// herald as ZITADEL's notification provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zitadel {
    /// How far a post's signature time may be from now (either way).
    #[serde(deserialize_with = "duration")]
    pub signature_tolerance: Duration,
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(s.trim()).map_err(|e| serde::de::Error::custom(format!("{s:?} is not a duration ({e})")))
}

fn durations<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
    Vec::<String>::deserialize(d)?
        .into_iter()
        .map(|s| {
            humantime::parse_duration(s.trim())
                .map_err(|e| serde::de::Error::custom(format!("{s:?} is not a duration ({e})")))
        })
        .collect()
}

impl Settings {
    /// The AES-256 key for stored codes: `crypto.key`, or in development the key
    /// of `crypto.key_file`, made on first use (`key.rs`).
    ///
    /// # Errors
    /// `crypto.key` unset outside development or not base64 of 32 bytes; a key file
    /// that cannot be made or read.
    pub fn crypto_key(&self) -> Result<[u8; 32], ConfigError> {
        match self.configured_crypto_key()? {
            Some(key) => Ok(key),
            None => key::load_or_create(&self.crypto.key_file),
        }
    }

    /// `crypto.key` decoded, `None` when unset in development (the key file then
    /// serves); the check of [`Self::validate`], which touches no file.
    fn configured_crypto_key(&self) -> Result<Option<[u8; 32]>, ConfigError> {
        if self.crypto.key.is_empty() {
            if self.env != "development" {
                return Err(invalid("crypto.key", "is required outside development (base64 of 32 random bytes)"));
            }
            if self.crypto.key_file.as_os_str().is_empty() {
                return Err(invalid("crypto.key_file", "is required when crypto.key is unset"));
            }
            return Ok(None);
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.crypto.key.trim())
            .map_err(|_| invalid("crypto.key", "is not base64"))?;
        bytes.try_into().map(Some).map_err(|_| invalid("crypto.key", "must decode to exactly 32 bytes"))
    }

    pub fn bootstrap_token(&self) -> Option<&str> {
        Some(self.auth.bootstrap_token.as_str()).filter(|t| !t.is_empty())
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

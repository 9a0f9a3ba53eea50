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

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Deserializer};
use toml::Value;

const DEFAULTS: &str = include_str!("../config/default.toml");
/// Used only in development, so `herald serve` works with no configuration.
const DEVELOPMENT_KEY: [u8; 32] = *b"herald-development-key-not-safe!";

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
    pub url: String,
    pub prefix: String,
    pub prefetch: u16,
    pub resend_prefetch: u16,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    #[serde(deserialize_with = "durations")]
    pub retry_delays: Vec<Duration>,
    pub max_attempts: u32,
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
    /// The embedded defaults alone (what tests start from).
    pub fn defaults() -> Self {
        // The embedded file is checked by a unit test, so this cannot fail.
        let value: Value = toml::from_str(DEFAULTS).expect("embedded config/default.toml parses");
        from_value(value).expect("embedded config/default.toml is valid")
    }

    /// Defaults, then `config/<HERALD_ENV>.toml` under `dir`, then the environment.
    ///
    /// # Errors
    /// A file that does not parse, an unknown key, or a value of the wrong type.
    pub fn load(dir: &Path, env: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut value: Value = toml::from_str(DEFAULTS).expect("embedded config/default.toml parses");
        let herald_env = env
            .iter()
            .find(|(k, _)| k == "HERALD_ENV")
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(development);
        let overlay_path = dir.join(format!("{herald_env}.toml"));
        if overlay_path.exists() {
            let text = std::fs::read_to_string(&overlay_path)
                .map_err(|e| ConfigError::File { path: overlay_path.clone(), message: e.to_string() })?;
            let overlay: Value = toml::from_str(&text)
                .map_err(|e| ConfigError::File { path: overlay_path.clone(), message: e.to_string() })?;
            merge(&mut value, overlay, "")?;
        }
        for (k, v) in env {
            if let Some(path) = k.strip_prefix("HERALD__") {
                set_from_env(&mut value, path, v)?;
            }
        }
        let mut settings = from_value(value)?;
        settings.env = herald_env;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what types alone cannot.
    ///
    /// # Errors
    /// The first invalid key, named.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.roles.is_empty() {
            return Err(invalid("roles", "name at least one of api, worker"));
        }
        if !(4..=20).contains(&self.invite.code_length) {
            return Err(invalid("invite.code_length", "must be between 4 and 20"));
        }
        if self.invite.code_ttl.is_zero() {
            return Err(invalid("invite.code_ttl", "must be longer than zero"));
        }
        crate::domain::UrlTemplate::parse(&self.invite.default_url_template)
            .map_err(|e| invalid("invite.default_url_template", e.text.to_string()))?;
        crate::domain::parse_display_text("application name", &self.invite.default_application_name)
            .map_err(|e| invalid("invite.default_application_name", e.text.to_string()))?;
        if self.invite.max_codes_per_user_per_hour == 0 {
            return Err(invalid("invite.max_codes_per_user_per_hour", "must be at least 1"));
        }
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        if self.amqp.prefix.is_empty() || self.amqp.prefix.contains(char::is_whitespace) {
            return Err(invalid("amqp.prefix", "must be a non-empty name without spaces"));
        }
        if self.amqp.prefetch == 0 {
            return Err(invalid("amqp.prefetch", "must be at least 1"));
        }
        if self.amqp.resend_prefetch == 0 {
            return Err(invalid("amqp.resend_prefetch", "must be at least 1"));
        }
        if self.delivery.retry_delays.is_empty() || self.delivery.retry_delays.iter().any(|d| d.is_zero()) {
            return Err(invalid("delivery.retry_delays", "must list at least one delay, none of them zero"));
        }
        if self.delivery.max_attempts == 0 {
            return Err(invalid("delivery.max_attempts", "must be at least 1"));
        }
        if self.email.smtp_connections == 0 {
            return Err(invalid("email.smtp_connections", "must be at least 1"));
        }
        if self.sms.provider == SmsProvider::Webhook && url::Url::parse(&self.sms.webhook_url).is_err() {
            return Err(invalid("sms.webhook_url", "must be an absolute URL when sms.provider is webhook"));
        }
        if self.sms.provider == SmsProvider::Twilio {
            for (key, v) in [
                ("sms.twilio_account_sid", &self.sms.twilio_account_sid),
                ("sms.twilio_auth_token", &self.sms.twilio_auth_token),
                ("sms.twilio_from", &self.sms.twilio_from),
            ] {
                if v.is_empty() {
                    return Err(invalid(key, "is required when sms.provider is twilio"));
                }
            }
        }
        self.crypto_key()?;
        Ok(())
    }

    /// The AES-256 key for stored codes.
    ///
    /// # Errors
    /// `crypto.key` unset outside development, or not base64 of 32 bytes.
    pub fn crypto_key(&self) -> Result<[u8; 32], ConfigError> {
        if self.crypto.key.is_empty() {
            if self.env == "development" {
                return Ok(DEVELOPMENT_KEY);
            }
            return Err(invalid("crypto.key", "is required outside development (base64 of 32 random bytes)"));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.crypto.key.trim())
            .map_err(|_| invalid("crypto.key", "is not base64"))?;
        bytes.try_into().map_err(|_| invalid("crypto.key", "must decode to exactly 32 bytes"))
    }

    pub fn bootstrap_token(&self) -> Option<&str> {
        Some(self.auth.bootstrap_token.as_str()).filter(|t| !t.is_empty())
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

fn from_value(value: Value) -> Result<Settings, ConfigError> {
    serde_path_to_error::deserialize::<_, Settings>(value).map_err(|e| {
        let key = e.path().to_string();
        invalid(&key, e.into_inner().to_string())
    })
}

/// Overlays `over` on `base`; keys must exist in the defaults.
fn merge(base: &mut Value, over: Value, prefix: &str) -> Result<(), ConfigError> {
    match (base, over) {
        (Value::Table(b), Value::Table(o)) => {
            for (k, v) in o {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                let slot = b.get_mut(&k).ok_or_else(|| invalid(&key, "unknown key"))?;
                merge(slot, v, &key)?;
            }
            Ok(())
        }
        (b, o) => {
            *b = o;
            Ok(())
        }
    }
}

fn set_from_env(root: &mut Value, path: &str, raw: &str) -> Result<(), ConfigError> {
    let parts: Vec<String> = path.split("__").map(|p| p.to_ascii_lowercase()).collect();
    let key = parts.join(".");
    let mut slot = &mut *root;
    for p in &parts {
        slot = slot.get_mut(p.as_str()).ok_or_else(|| invalid(&key, format!("unknown key (from HERALD__{path})")))?;
    }
    let bad = |what: &str| invalid(&key, format!("{raw:?} is not {what} (from HERALD__{path})"));
    *slot = match slot {
        Value::Integer(_) => Value::Integer(raw.trim().parse().map_err(|_| bad("an integer"))?),
        Value::Boolean(_) => Value::Boolean(raw.trim().parse().map_err(|_| bad("true or false"))?),
        Value::Float(_) => Value::Float(raw.trim().parse().map_err(|_| bad("a number"))?),
        Value::Array(_) => Value::Array(
            raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| Value::String(s.to_string())).collect(),
        ),
        Value::Table(_) => return Err(invalid(&key, "is a section, not a value")),
        _ => Value::String(raw.to_string()),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn embedded_defaults_are_valid() {
        let s = Settings::defaults();
        s.validate().unwrap();
        assert_eq!(s.http.addr, "127.0.0.1:8080");
        assert_eq!(s.delivery.retry_delays.len(), 6);
        assert_eq!(s.invite.code_ttl, Duration::from_secs(72 * 3600));
    }

    #[test]
    fn environment_overrides_keep_the_default_types() {
        let s = Settings::load(
            Path::new("/nonexistent"),
            &env(&[
                ("HERALD__AUTH__BOOTSTRAP_TOKEN", "12345"),
                ("HERALD__DATABASE__MAX_CONNECTIONS", "3"),
                ("HERALD__DELIVERY__RETRY_DELAYS", "1s, 2s"),
                ("HERALD__ROLES", "api"),
                ("HERALD__INVITE__CODE_TTL", "15m"),
            ]),
        )
        .unwrap();
        assert_eq!(s.bootstrap_token(), Some("12345"));
        assert_eq!(s.database.max_connections, 3);
        assert_eq!(s.delivery.retry_delays, vec![Duration::from_secs(1), Duration::from_secs(2)]);
        assert_eq!(s.roles, vec![Role::Api]);
        assert_eq!(s.invite.code_ttl, Duration::from_secs(900));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("HERALD__DATABASE__MAX_CONNECTIONS", "many", "database.max_connections"),
            ("HERALD__INVITE__CODE_TTL", "soon", "invite.code_ttl"),
            ("HERALD__EMAIL__TRANSPORT", "pigeon", "email.transport"),
            ("HERALD__HTTP__PORT", "1", "http.port"),
            ("HERALD__INVITE__CODE_LENGTH", "2", "invite.code_length"),
            ("HERALD__INVITE__DEFAULT_URL_TEMPLATE", "javascript:x", "invite.default_url_template"),
        ];
        for (k, v, key) in cases {
            let err = Settings::load(Path::new("/nonexistent"), &env(&[(k, v)])).unwrap_err().to_string();
            assert!(err.contains(key), "{k}={v}: {err}");
        }
    }

    #[test]
    fn production_requires_a_crypto_key() {
        let err = Settings::load(Path::new("/nonexistent"), &env(&[("HERALD_ENV", "production")])).unwrap_err();
        assert!(err.to_string().contains("crypto.key"));
        let key = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        let ok = Settings::load(
            Path::new("/nonexistent"),
            &env(&[("HERALD_ENV", "production"), ("HERALD__CRYPTO__KEY", &key)]),
        );
        assert_eq!(ok.unwrap().crypto_key().unwrap(), [1u8; 32]);
    }

    #[test]
    fn an_environment_file_overrides_the_defaults() {
        let dir = std::env::temp_dir().join(format!("herald-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("staging.toml"), "[http]\naddr = \"0.0.0.0:9000\"\n").unwrap();
        let s = Settings::load(
            &dir,
            &env(&[
                ("HERALD_ENV", "staging"),
                ("HERALD__CRYPTO__KEY", &base64::engine::general_purpose::STANDARD.encode([2u8; 32])),
            ]),
        )
        .unwrap();
        assert_eq!(s.http.addr, "0.0.0.0:9000");
        std::fs::write(dir.join("broken.toml"), "[http]\nport = 1\n").unwrap();
        let err = Settings::load(&dir, &env(&[("HERALD_ENV", "broken")])).unwrap_err();
        assert!(err.to_string().contains("http.port"), "{err}");
    }
}

//! Loading the settings in layers (the module's doc says which), and the checks
//! that types alone cannot make.

use std::path::Path;

use toml::Value;

use super::{development, invalid, ConfigError, Settings, SmsProvider};

const DEFAULTS: &str = include_str!("../../config/default.toml");

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
        for (key, max) in [
            ("invite.max_codes_per_user_per_hour", self.invite.max_codes_per_user_per_hour),
            ("invite.max_codes_per_recipient_per_hour", self.invite.max_codes_per_recipient_per_hour),
            ("invite.max_codes_per_org_per_hour", self.invite.max_codes_per_org_per_hour),
        ] {
            if max == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        if self.amqp.prefix.is_empty() || self.amqp.prefix.contains(char::is_whitespace) {
            return Err(invalid("amqp.prefix", "must be a non-empty name without spaces"));
        }
        if let Some(bad) = self.amqp.nodes().iter().find(|u| !u.starts_with("amqp://") && !u.starts_with("amqps://")) {
            let key = if self.amqp.urls.is_empty() { "amqp.url" } else { "amqp.urls" };
            return Err(invalid(key, format!("{bad:?} is not an amqp:// or amqps:// URL")));
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
        if self.delivery.republish_after.is_zero() {
            return Err(invalid("delivery.republish_after", "must be longer than zero"));
        }
        if self.delivery.process_dead_after < std::time::Duration::from_secs(1) {
            return Err(invalid("delivery.process_dead_after", "must be at least 1s"));
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
        self.configured_crypto_key()?;
        Ok(())
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
    use std::time::Duration;

    use base64::Engine;

    use super::*;
    use crate::config::Role;

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
    fn amqp_urls_is_a_list_that_wins_over_url() {
        let one = Settings::load(Path::new("/nonexistent"), &env(&[])).unwrap();
        assert_eq!(one.amqp.nodes(), vec![one.amqp.url.clone()]);
        assert_eq!(one.amqp.quorum_replicas, 0);
        let three = Settings::load(
            Path::new("/nonexistent"),
            &env(&[
                ("HERALD__AMQP__URLS", "amqp://a:5674/%2f, amqp://b:5675/%2f,amqp://c:5676/%2f"),
                ("HERALD__AMQP__QUORUM_REPLICAS", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(three.amqp.nodes(), ["amqp://a:5674/%2f", "amqp://b:5675/%2f", "amqp://c:5676/%2f"]);
        assert_eq!(three.amqp.quorum_replicas, 3);
        let err = Settings::load(Path::new("/nonexistent"), &env(&[("HERALD__AMQP__URLS", "a:1,b:2")])).unwrap_err();
        assert!(err.to_string().contains("amqp.urls"), "{err}");
        let err =
            Settings::load(Path::new("/nonexistent"), &env(&[("HERALD__AMQP__URL", "localhost:5672")])).unwrap_err();
        assert!(err.to_string().contains("amqp.url:"), "the key that was set: {err}");
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

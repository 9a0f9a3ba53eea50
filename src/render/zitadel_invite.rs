//! ZITADEL's invite in herald's own invite template (docs/ARCHITECTURE.md,
//! "ZITADEL's notifications"): a provider whose organization chose
//! `useHeraldInviteTemplate` gets herald's invite texts (every language herald
//! ships) around ZITADEL's code and link, instead of ZITADEL's translated texts.
//!
//! The code and the link stay ZITADEL's: herald only words the message. Values
//! come from `args` (HTML-escaped in e-mail messages: un-escaped here, the HTML
//! registry escapes them again once).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::zitadel::{link, unescape};
use super::InviteData;
use crate::domain::zitadel::Message;
use crate::domain::LoginMethod;

/// The only event herald has its own template for.
pub const INVITE_EVENT: &str = "user.human.invite.code.added";

/// herald's settings for what a message does not say.
#[derive(Debug, Clone)]
pub struct InviteDefaults {
    /// `invite.default_application_name`: used when `args.applicationName` is absent.
    pub application_name: String,
    /// `invite.code_ttl`: the code's life when `args.expiry` is absent.
    pub code_ttl: Duration,
}

/// What the message does not say, from herald's organization and settings.
#[derive(Debug, Clone)]
pub struct InviteContext<'a> {
    /// The herald organization that owns the provider.
    pub org_name: &'a str,
    /// Its default language: used when `args.preferredLanguage` is absent.
    pub org_language: &'a str,
    pub login_methods: &'a [LoginMethod],
    pub defaults: &'a InviteDefaults,
    /// When herald accepted the message: `args.expiry` counts from here.
    pub received_at: DateTime<Utc>,
}

/// herald's invite for a ZITADEL invite message, or None when the message is not
/// an invite, has no code, or no http(s) link: it then keeps ZITADEL's texts.
pub fn invite_data(m: &Message, c: &InviteContext<'_>) -> Option<InviteData> {
    let arg = |name: &str| unescape(m.arg(name).trim());
    let code = arg("code");
    let url = link(&m.template.url, false);
    if m.event_type != INVITE_EVENT || code.is_empty() || url.is_empty() {
        return None;
    }
    let (given_name, family_name, username) = (arg("firstName"), arg("lastName"), arg("userName"));
    let display_name = [arg("displayName"), format!("{given_name} {family_name}").trim().to_string(), username.clone()]
        .into_iter()
        .find(|n| !n.is_empty())
        .unwrap_or_default();
    let application_name = Some(arg("applicationName")).filter(|a| !a.is_empty());
    let locale = [arg("preferredLanguage"), c.org_language.trim().to_string()]
        .into_iter()
        .find(|l| !l.is_empty())
        .unwrap_or_else(|| "en".to_string());
    let life = chrono::Duration::from_std(m.expiry().unwrap_or(c.defaults.code_ttl)).ok();
    Some(InviteData {
        application_name: application_name.unwrap_or_else(|| c.defaults.application_name.clone()),
        display_name,
        given_name,
        family_name,
        username,
        org_name: c.org_name.to_string(),
        code,
        url,
        expires_at: life.and_then(|l| c.received_at.checked_add_signed(l)).unwrap_or(DateTime::<Utc>::MAX_UTC),
        login_methods: c.login_methods.to_vec(),
        locale,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::Channel;

    fn message(args: serde_json::Value) -> Message {
        let body = json!({
            "contextInfo": {"eventType": INVITE_EVENT, "recipientEmailAddress": "ada@example.com"},
            "templateData": {"subject": "Invitation to Acme",
                             "url": "https://acme.example/ui/login/user/invite?userID=1&amp;code=K3M9QX&amp;orgID=2"},
            "args": args
        });
        Message::parse(&serde_json::to_vec(&body).unwrap(), Channel::Email).unwrap()
    }

    fn defaults() -> InviteDefaults {
        InviteDefaults { application_name: "herald".into(), code_ttl: Duration::from_secs(72 * 3600) }
    }

    fn context(defaults: &InviteDefaults) -> InviteContext<'_> {
        InviteContext {
            org_name: "Acme",
            org_language: "fr",
            login_methods: &[LoginMethod::Passkey],
            defaults,
            received_at: DateTime::from_timestamp(1_743_000_000, 0).unwrap(),
        }
    }

    #[test]
    fn an_invite_maps_code_link_names_application_language_and_expiry() {
        let m = message(json!({"code": "K3M9QX", "firstName": "Ada", "lastName": "Lovelace",
                               "displayName": "Ada &amp; Co", "userName": "ada", "applicationName": "Portal",
                               "preferredLanguage": "de", "expiry": 3_600_000_000_000u64}));
        let d = invite_data(&m, &context(&defaults())).unwrap();
        assert_eq!(d.code, "K3M9QX");
        assert_eq!(d.url, "https://acme.example/ui/login/user/invite?userID=1&code=K3M9QX&orgID=2");
        assert_eq!((d.given_name.as_str(), d.family_name.as_str()), ("Ada", "Lovelace"));
        assert_eq!((d.display_name.as_str(), d.username.as_str()), ("Ada & Co", "ada"));
        assert_eq!((d.application_name.as_str(), d.org_name.as_str(), d.locale.as_str()), ("Portal", "Acme", "de"));
        assert_eq!(d.expires_at, context(&defaults()).received_at + chrono::Duration::hours(1));
        assert_eq!(d.login_methods, vec![LoginMethod::Passkey]);
    }

    #[test]
    fn what_the_message_omits_comes_from_herald() {
        let d = invite_data(&message(json!({"code": "K3M9QX", "userName": "ada"})), &context(&defaults())).unwrap();
        assert_eq!((d.application_name.as_str(), d.locale.as_str()), ("herald", "fr"));
        assert_eq!(d.display_name, "ada");
        assert_eq!(d.expires_at, context(&defaults()).received_at + chrono::Duration::hours(72));
        let herald = defaults();
        let no_language = InviteContext { org_language: "", ..context(&herald) };
        let d = invite_data(&message(json!({"code": "K3M9QX", "firstName": "Ada"})), &no_language).unwrap();
        assert_eq!((d.locale.as_str(), d.display_name.as_str()), ("en", "Ada"));
    }

    #[test]
    fn other_events_and_invites_without_a_code_or_link_keep_zitadels_texts() {
        assert!(invite_data(&message(json!({"userName": "ada"})), &context(&defaults())).is_none());
        let mut reset = message(json!({"code": "K3M9QX"}));
        reset.event_type = "user.human.password.code.added".into();
        assert!(invite_data(&reset, &context(&defaults())).is_none());
        let mut no_link = message(json!({"code": "K3M9QX"}));
        no_link.template.url = "javascript:alert(1)".into();
        assert!(invite_data(&no_link, &context(&defaults())).is_none());
    }
}

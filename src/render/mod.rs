//! Invite texts: handlebars layouts per channel, texts per language.
//!
//! Templates are embedded in the binary and rendered once with sample data for
//! every language at start-up: a missing variable or key stops the process, never
//! a mail. Strict mode: a variable the data lacks is an error, not a blank.
//!
//! The i18n texts are templates themselves (`Invitation to {{ApplicationName}}`);
//! they are rendered first, then handed to the layout as `Text.<key>`. The HTML
//! registry escapes values (so `Text.*` arrive escaped and the layout inserts them
//! with `{{{…}}}`); the text registry escapes nothing.

pub mod actor;
pub mod zitadel;
pub mod zitadel_invite;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use handlebars::{Context, Handlebars};
use serde::Serialize;

use crate::domain::LoginMethod;

pub use actor::{RenderEmail, RenderSms, RenderZitadelEmail, Renderer};

const HTML: &str = include_str!("../../templates/email/invite_user.html.hbs");
const TEXT: &str = include_str!("../../templates/email/invite_user.txt.hbs");
const SMS: &str = include_str!("../../templates/sms/invite_user.txt.hbs");
/// Every language herald ships texts for; `en` is the fallback.
const LANGUAGES: [(&str, &str); 10] = [
    ("en", include_str!("../../templates/i18n/en.toml")),
    ("de", include_str!("../../templates/i18n/de.toml")),
    ("fr", include_str!("../../templates/i18n/fr.toml")),
    ("es", include_str!("../../templates/i18n/es.toml")),
    ("it", include_str!("../../templates/i18n/it.toml")),
    ("pt", include_str!("../../templates/i18n/pt.toml")),
    ("nl", include_str!("../../templates/i18n/nl.toml")),
    ("pl", include_str!("../../templates/i18n/pl.toml")),
    ("ja", include_str!("../../templates/i18n/ja.toml")),
    ("zh", include_str!("../../templates/i18n/zh.toml")),
];
/// The texts an e-mail renders into `Text.*`. Every language must have these and
/// [`SMS_KEYS`]; the `method_*` keys name login methods instead.
const EMAIL_KEYS: [&str; 11] = [
    "subject",
    "preheader",
    "title",
    "greeting",
    "text",
    "button",
    "code_label",
    "expires",
    "methods_intro",
    "ignore",
    "footer",
];
/// The text an SMS renders into `Text.sms`.
const SMS_KEYS: [&str; 1] = ["sms"];

#[derive(Debug, thiserror::Error)]
#[error("template error: {0}")]
pub struct RenderError(pub String);

/// What an invite is rendered from.
#[derive(Debug, Clone)]
pub struct InviteData {
    pub application_name: String,
    pub display_name: String,
    pub given_name: String,
    pub family_name: String,
    pub username: String,
    pub org_name: String,
    pub code: String,
    pub url: String,
    pub expires_at: DateTime<Utc>,
    pub login_methods: Vec<LoginMethod>,
    /// The language asked for (`de-CH`); resolved to a shipped one.
    pub locale: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    pub subject: String,
    pub html: String,
    pub text: String,
}

#[derive(Serialize)]
#[allow(non_snake_case)]
struct Values<'a> {
    ApplicationName: &'a str,
    DisplayName: &'a str,
    GivenName: &'a str,
    FamilyName: &'a str,
    Username: &'a str,
    OrgName: &'a str,
    Code: &'a str,
    URL: &'a str,
    ExpiresAt: String,
    Lang: &'a str,
    LoginMethods: Vec<String>,
}

/// The compiled templates of every language.
pub struct Templates {
    html: Handlebars<'static>,
    text: Handlebars<'static>,
    /// `method_*` names per language.
    methods: HashMap<&'static str, BTreeMap<String, String>>,
    /// The layout of ZITADEL's notifications.
    pub zitadel: zitadel::ZitadelTemplates,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

fn registry(escape: bool) -> Handlebars<'static> {
    let mut h = Handlebars::new();
    h.set_strict_mode(true);
    if !escape {
        h.register_escape_fn(handlebars::no_escape);
    }
    h
}

impl Templates {
    /// Compiles the embedded templates and renders each language once.
    ///
    /// # Errors
    /// A template that does not compile, a language file that misses a key, or a
    /// render that fails with sample data.
    pub fn load() -> Result<Self, RenderError> {
        let mut html = registry(true);
        let mut text = registry(false);
        let err = |what: &str, e: &dyn std::fmt::Display| RenderError(format!("{what}: {e}"));
        html.register_template_string("email.html", HTML).map_err(|e| err("email/invite_user.html.hbs", &e))?;
        text.register_template_string("email.txt", TEXT).map_err(|e| err("email/invite_user.txt.hbs", &e))?;
        text.register_template_string("sms.txt", SMS).map_err(|e| err("sms/invite_user.txt.hbs", &e))?;
        let mut methods = HashMap::new();
        for (lang, source) in LANGUAGES {
            let texts: BTreeMap<String, String> =
                toml::from_str(source).map_err(|e| err(&format!("i18n/{lang}.toml"), &e))?;
            for &key in EMAIL_KEYS.iter().chain(&SMS_KEYS) {
                let t = texts.get(key).ok_or_else(|| RenderError(format!("i18n/{lang}.toml: missing key {key}")))?;
                let name = format!("{lang}.{key}");
                html.register_template_string(&name, t).map_err(|e| err(&format!("i18n/{lang}.toml {key}"), &e))?;
                text.register_template_string(&name, t).map_err(|e| err(&format!("i18n/{lang}.toml {key}"), &e))?;
            }
            let m: BTreeMap<String, String> = texts.into_iter().filter(|(k, _)| k.starts_with("method_")).collect();
            for method in LoginMethod::ALL {
                if !m.contains_key(&format!("method_{}", method.as_str())) {
                    return Err(RenderError(format!("i18n/{lang}.toml: missing key method_{}", method.as_str())));
                }
            }
            methods.insert(lang, m);
        }
        let templates = Templates { html, text, methods, zitadel: zitadel::ZitadelTemplates::load()? };
        for (lang, _) in LANGUAGES {
            let sample = InviteData::sample(lang);
            templates.email(&sample).map_err(|e| RenderError(format!("{lang}: {}", e.0)))?;
            templates.sms(&sample).map_err(|e| RenderError(format!("{lang}: {}", e.0)))?;
        }
        Ok(templates)
    }

    /// The shipped language for a locale: `de-CH` → `de`; unknown → `en`.
    pub fn language(&self, locale: &str) -> &'static str {
        let primary = locale.split(['-', '_']).next().unwrap_or("").to_ascii_lowercase();
        LANGUAGES.iter().map(|(l, _)| *l).find(|l| *l == primary).unwrap_or("en")
    }

    fn values<'a>(&self, lang: &'static str, d: &'a InviteData) -> Values<'a> {
        let names = &self.methods[lang];
        Values {
            ApplicationName: &d.application_name,
            DisplayName: &d.display_name,
            GivenName: &d.given_name,
            FamilyName: &d.family_name,
            Username: &d.username,
            OrgName: &d.org_name,
            Code: &d.code,
            URL: &d.url,
            ExpiresAt: d.expires_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            Lang: lang,
            LoginMethods: d
                .login_methods
                .iter()
                .filter_map(|m| names.get(&format!("method_{}", m.as_str())).cloned())
                .collect(),
        }
    }

    /// Renders `keys` of the language's texts, and the layout `layout` with them
    /// as `Text.*`. The data is converted to handlebars' JSON once for all of
    /// them (a render per text would convert it again each time).
    fn render(
        &self,
        reg: &Handlebars<'static>,
        layout: &str,
        lang: &str,
        values: &serde_json::Value,
        keys: &[&'static str],
    ) -> Result<(String, BTreeMap<&'static str, String>), RenderError> {
        let err = |e: handlebars::RenderError| RenderError(e.to_string());
        let context = Context::from(values.clone());
        let texts: BTreeMap<&'static str, String> = keys
            .iter()
            .map(|k| reg.render_with_context(&format!("{lang}.{k}"), &context).map(|s| (*k, s)))
            .collect::<Result<_, _>>()
            .map_err(err)?;
        let mut data = values.clone();
        if let Some(fields) = data.as_object_mut() {
            fields.insert("Text".into(), serde_json::to_value(&texts).map_err(|e| RenderError(e.to_string()))?);
        }
        let out = reg.render_with_context(layout, &Context::from(data)).map_err(err)?;
        Ok((out, texts))
    }

    fn data(&self, lang: &'static str, d: &InviteData) -> Result<serde_json::Value, RenderError> {
        serde_json::to_value(self.values(lang, d)).map_err(|e| RenderError(e.to_string()))
    }

    /// The invite e-mail: subject, HTML and plain text.
    ///
    /// # Errors
    /// A template that fails to render (a missing variable in strict mode), or a
    /// link that is not http(s).
    pub fn email(&self, d: &InviteData) -> Result<RenderedEmail, RenderError> {
        checked_link(d)?;
        let lang = self.language(&d.locale);
        let data = self.data(lang, d)?;
        let (html, _) = self.render(&self.html, "email.html", lang, &data, &EMAIL_KEYS)?;
        let (text, plain_texts) = self.render(&self.text, "email.txt", lang, &data, &EMAIL_KEYS)?;
        // The subject is a header, not HTML: the unescaped text, with any line
        // break folded away (application names are already free of them).
        let subject = plain_texts["subject"].replace(['\r', '\n'], " ");
        Ok(RenderedEmail { subject, html, text })
    }

    /// The invite SMS.
    ///
    /// # Errors
    /// A template that fails to render.
    pub fn sms(&self, d: &InviteData) -> Result<String, RenderError> {
        checked_link(d)?;
        let lang = self.language(&d.locale);
        let data = self.data(lang, d)?;
        let (body, _) = self.render(&self.text, "sms.txt", lang, &data, &SMS_KEYS)?;
        Ok(body.trim().to_string())
    }
}

/// The link of this very message, checked as it is sent (docs/API.md §2.1): the
/// template was checked on a sample, but a value (a caller-chosen user id) shapes
/// the link too. A refused link is a template error: the delivery is dead.
fn checked_link(d: &InviteData) -> Result<(), RenderError> {
    crate::domain::check_link(&d.url).map_err(|_| RenderError("the invite link is not an http(s) URL".into()))
}

impl InviteData {
    /// Data of the real shape, for the start-up check.
    pub fn sample(locale: &str) -> Self {
        InviteData {
            application_name: "Acme <Portal>".into(),
            display_name: "Ada Lovelace".into(),
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            username: "ada@example.com".into(),
            org_name: "Acme & Co".into(),
            code: "K3M9QX".into(),
            url: "https://app.example.com/invite?userID=1&code=K3M9QX&orgID=2".into(),
            expires_at: DateTime::from_timestamp(1_743_000_000, 0).unwrap_or_default(),
            login_methods: LoginMethod::ALL.to_vec(),
            locale: locale.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_renders() {
        let t = Templates::load().unwrap();
        for (lang, _) in LANGUAGES {
            let mail = t.email(&InviteData::sample(lang)).unwrap();
            assert!(mail.subject.contains("Acme <Portal>"), "{lang}: {}", mail.subject);
            assert!(mail.text.contains("K3M9QX") && mail.html.contains("K3M9QX"));
            assert!(t.sms(&InviteData::sample(lang)).unwrap().contains("K3M9QX"));
        }
    }

    #[test]
    fn html_escapes_and_text_does_not() {
        let t = Templates::load().unwrap();
        let mut d = InviteData::sample("en");
        d.display_name = "<script>alert(1)</script>".into();
        let mail = t.email(&d).unwrap();
        assert!(!mail.html.contains("<script>"));
        assert!(mail.html.contains("&lt;script&gt;"));
        assert!(mail.text.contains("<script>alert(1)</script>"));
    }

    #[test]
    fn language_falls_back_to_english() {
        let t = Templates::load().unwrap();
        assert_eq!(t.language("de-CH"), "de");
        assert_eq!(t.language("xx"), "en");
        let mail = t.email(&InviteData::sample("de")).unwrap();
        assert!(mail.subject.starts_with("Einladung"), "{}", mail.subject);
    }

    #[test]
    fn login_methods_follow_the_organization() {
        let t = Templates::load().unwrap();
        let mut d = InviteData::sample("en");
        d.login_methods = vec![LoginMethod::Passkey];
        let mail = t.email(&d).unwrap();
        assert!(mail.text.contains("Passkey") && !mail.text.contains("Password"));
    }

    #[test]
    fn a_link_that_is_not_http_is_refused_when_sent() {
        let t = Templates::load().unwrap();
        let mut d = InviteData::sample("en");
        d.url = "javascript:alert(1)".into();
        assert!(t.email(&d).is_err());
        assert!(t.sms(&d).is_err());
        d.url = "https://app.example.com/invite?code=K3M9QX".into();
        assert!(t.email(&d).is_ok());
    }
}

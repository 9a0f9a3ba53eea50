//! A ZITADEL notification in herald's layout (docs/ARCHITECTURE.md, "ZITADEL's
//! notifications"): the texts ZITADEL translated (`templateData`) in herald's HTML
//! and plain-text e-mail, or `templateData.text` as the SMS.
//!
//! ZITADEL HTML-escapes the values it puts into an e-mail's texts (`&lt;`, `&#39;`):
//! herald un-escapes them once, then the HTML registry escapes them again exactly
//! once, and the text part shows them as typed. Values that reach a `style` or `src`
//! attribute (colours, font family, logo) must look like what they claim to be, or
//! herald's default takes their place.

use handlebars::Handlebars;
use serde::Serialize;

use super::{RenderError, RenderedEmail};
use crate::domain::zitadel::TemplateData;

const HTML: &str = include_str!("../../templates/email/zitadel.html.hbs");
const TEXT: &str = include_str!("../../templates/email/zitadel.txt.hbs");

const DEFAULT_PRIMARY: &str = "#5469d4";
const DEFAULT_BACKGROUND: &str = "#fafafa";
const DEFAULT_FONT_COLOR: &str = "#22292f";
const DEFAULT_FONT_FAMILY: &str = "-apple-system, BlinkMacSystemFont, Segoe UI, Lato, Arial, Helvetica, sans-serif";

/// The compiled ZITADEL layouts.
pub struct ZitadelTemplates {
    html: Handlebars<'static>,
    text: Handlebars<'static>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Values {
    title: String,
    pre_header: String,
    greeting: String,
    paragraphs: Vec<String>,
    url: String,
    button_text: String,
    primary_color: String,
    background_color: String,
    font_color: String,
    font_family: String,
    logo_url: String,
    footer: String,
}

/// Undoes Go's `html.EscapeString` (and the named forms of the same characters).
/// `&amp;` goes last, so `&amp;lt;` becomes `&lt;`, as it was typed.
pub fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = s.to_string();
    for (entity, plain) in [
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&#34;", "\""),
        ("&quot;", "\""),
        ("&#39;", "'"),
        ("&#x27;", "'"),
        ("&apos;", "'"),
        ("&amp;", "&"),
    ] {
        out = out.replace(entity, plain);
    }
    out
}

/// `#rgb`, `#rrggbb`, `#rrggbbaa` or a colour name; else `default`.
fn colour(raw: &str, default: &str) -> String {
    let v = raw.trim();
    let hex = v
        .strip_prefix('#')
        .is_some_and(|h| [3, 4, 6, 8].contains(&h.len()) && h.chars().all(|c| c.is_ascii_hexdigit()));
    let name = !v.is_empty() && v.len() <= 20 && v.chars().all(|c| c.is_ascii_alphabetic());
    if hex || name {
        v.to_string()
    } else {
        default.to_string()
    }
}

fn font_family(raw: &str) -> String {
    let v = unescape(raw.trim());
    let safe = !v.is_empty() && v.len() <= 200 && v.chars().all(|c| c.is_alphanumeric() || " ,-_'".contains(c));
    if safe {
        v
    } else {
        DEFAULT_FONT_FAMILY.to_string()
    }
}

/// An absolute http(s) URL, or "" (a button to anything else is left out).
pub(super) fn link(raw: &str, https_only: bool) -> String {
    let v = unescape(raw.trim());
    match url::Url::parse(&v) {
        Ok(u) if u.scheme() == "https" || (!https_only && u.scheme() == "http") => v,
        _ => String::new(),
    }
}

fn values(t: &TemplateData) -> Values {
    let text = unescape(&t.text);
    Values {
        title: unescape(&t.title),
        pre_header: unescape(&t.pre_header),
        greeting: unescape(&t.greeting),
        paragraphs: text.split('\n').map(str::trim).filter(|p| !p.is_empty()).map(String::from).collect(),
        url: link(&t.url, false),
        button_text: if t.button_text.trim().is_empty() { "Open".into() } else { unescape(&t.button_text) },
        primary_color: colour(&t.primary_color, DEFAULT_PRIMARY),
        background_color: colour(&t.background_color, DEFAULT_BACKGROUND),
        font_color: colour(&t.font_color, DEFAULT_FONT_COLOR),
        font_family: font_family(&t.font_family),
        logo_url: link(&t.logo_url, true),
        footer: if t.include_footer { unescape(&t.footer_text) } else { String::new() },
    }
}

impl ZitadelTemplates {
    /// Compiles the layouts and renders them once with a sample.
    ///
    /// # Errors
    /// A template that does not compile or render.
    pub fn load() -> Result<Self, RenderError> {
        let err = |what: &str, e: &dyn std::fmt::Display| RenderError(format!("{what}: {e}"));
        let mut html = super::registry(true);
        let mut text = super::registry(false);
        html.register_template_string("zitadel.html", HTML).map_err(|e| err("email/zitadel.html.hbs", &e))?;
        text.register_template_string("zitadel.txt", TEXT).map_err(|e| err("email/zitadel.txt.hbs", &e))?;
        let t = ZitadelTemplates { html, text };
        t.email(&sample())?;
        Ok(t)
    }

    /// The e-mail: `templateData.subject` (else the title) as the subject, herald's
    /// layout around ZITADEL's texts.
    ///
    /// # Errors
    /// A template that fails to render.
    pub fn email(&self, t: &TemplateData) -> Result<RenderedEmail, RenderError> {
        let v = values(t);
        let html = self.html.render("zitadel.html", &v).map_err(|e| RenderError(e.to_string()))?;
        let text = self.text.render("zitadel.txt", &v).map_err(|e| RenderError(e.to_string()))?;
        let subject = if t.subject.trim().is_empty() { &t.title } else { &t.subject };
        // A header, not HTML: un-escaped, with line breaks folded away.
        let subject = unescape(subject).replace(['\r', '\n'], " ").trim().to_string();
        Ok(RenderedEmail { subject, html, text: text.trim().to_string() + "\n" })
    }
}

/// The SMS: ZITADEL's text, as typed.
pub fn sms(t: &TemplateData) -> String {
    unescape(&t.text).trim().to_string()
}

fn sample() -> TemplateData {
    TemplateData {
        title: "Invitation to Acme".into(),
        pre_header: "Invitation".into(),
        subject: "Invitation to Acme".into(),
        greeting: "Hello Ada &amp; Bob,".into(),
        text: "Your code is K3M9QX.\nIt expires in 72 hours.".into(),
        url: "https://acme.example/ui/login/user/invite?code=K3M9QX&orgID=1".into(),
        button_text: "Accept invitation".into(),
        include_footer: true,
        footer_text: "Acme Inc.".into(),
        ..TemplateData::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_email_carries_zitadels_texts_in_herald_layout() {
        let t = ZitadelTemplates::load().unwrap();
        let mail = t.email(&sample()).unwrap();
        assert_eq!(mail.subject, "Invitation to Acme");
        assert!(mail.html.contains("Accept invitation") && mail.html.contains("Your code is K3M9QX."));
        assert!(
            mail.html.contains("href=\"https://acme.example/ui/login/user/invite?code&#x3D;K3M9QX&amp;orgID&#x3D;1\""),
            "{}",
            mail.html
        );
        assert!(mail.html.contains("#5469d4") && mail.html.contains("Acme Inc."));
        assert!(mail.text.contains("Hello Ada & Bob,"), "{}", mail.text);
        assert!(mail.text.contains("Accept invitation: https://acme.example/ui/login/user/invite?code=K3M9QX&orgID=1"));
        assert!(mail.text.contains("It expires in 72 hours."));
    }

    #[test]
    fn values_are_escaped_once_and_attributes_checked() {
        let t = ZitadelTemplates::load().unwrap();
        let mut d = sample();
        d.greeting = "Hello &lt;script&gt;alert(1)&lt;/script&gt;".into();
        d.primary_color = "red;background:url(x)".into();
        d.url = "javascript:alert(1)".into();
        d.include_footer = false;
        let mail = t.email(&d).unwrap();
        assert!(!mail.html.contains("<script>") && mail.html.contains("&lt;script&gt;"));
        assert!(!mail.html.contains("&amp;lt;"));
        assert!(!mail.html.contains("url(x)") && !mail.html.contains("javascript:"));
        assert!(!mail.html.contains("Acme Inc.") && !mail.text.contains("Acme Inc."));
        assert!(mail.text.contains("Hello <script>alert(1)</script>"));
    }

    #[test]
    fn unescape_undoes_go_html_escaping_once() {
        assert_eq!(unescape("a &lt;b&gt; &amp;lt; &#39;c&#39; &#34;d&#34;"), "a <b> &lt; 'c' \"d\"");
        assert_eq!(
            sms(&TemplateData { text: " Code: K3M9QX &amp; more ".into(), ..Default::default() }),
            "Code: K3M9QX & more"
        );
    }
}

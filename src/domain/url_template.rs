//! The invite link template (`urlTemplate`, API.md §2.1).
//!
//! Written ZITADEL's way (`{{.Code}}`, a Go template) or handlebars' way (`{{Code}}`);
//! herald accepts exactly three placeholders (`UserID`, `Code`, `OrgID`) and nothing else, so a template is parsed
//! here by hand rather than handed to a template engine that would accept far more.

use super::error::{ids, Error};

/// The schemes an invite link may have: a link that runs code (`javascript:`) or
/// reads files has no place in an invite, and neither has an app's own scheme that
/// a value could spell.
const ALLOWED_SCHEMES: [&str; 2] = ["https", "http"];

/// The check of every rendered link, at the API on a sample and at send time on
/// the link itself (docs/API.md §2.1): absolute, `http` or `https`, no control
/// characters. A value can shape the link (`j{{.UserID}}:alert(1)` with the user id
/// `avascript`), so the sample alone cannot vouch for every message.
///
/// # Errors
/// `DOMAIN-ieYa7`.
pub fn check_link(link: &str) -> Result<(), Error> {
    if link.chars().any(char::is_control) {
        return Err(invalid());
    }
    let url = url::Url::parse(link).map_err(|_| invalid())?;
    if !ALLOWED_SCHEMES.contains(&url.scheme()) {
        return Err(invalid());
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    UserId,
    Code,
    OrgId,
}

/// A URL template that parsed and, rendered, gives an absolute URL with a safe scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate {
    raw: String,
    parts: Vec<Part>,
}

impl UrlTemplate {
    /// # Errors
    /// `DOMAIN-oGh5e` when it does not parse; `DOMAIN-ieYa7` for an unknown
    /// placeholder, a relative URL or a forbidden scheme; code 3 for a bad length.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let len = raw.chars().count();
        if len == 0 || len > 200 || raw.trim().is_empty() {
            return Err(Error::invalid(ids::VALIDATION, "sendCode.urlTemplate must be 1 to 200 characters"));
        }
        if raw.chars().any(char::is_control) {
            // The URL parser would drop CR, LF and tab while checking, and the
            // stored template would keep them.
            return Err(Error::invalid(ids::VALIDATION, "sendCode.urlTemplate must not contain control characters"));
        }
        let parts = parse_parts(raw)?;
        let t = UrlTemplate { raw: raw.to_string(), parts };
        // Render with values of the real shape: a template whose scheme a value
        // completes (`j{{.UserID}}:…`) fails here, whatever a user id may be; the
        // link of every message is checked again when it is sent (`check_link`).
        check_link(&t.render("69629023906488334", "K3M9QX", "69629023906488333"))?;
        Ok(t)
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The link for one user; every value is percent-encoded.
    pub fn render(&self, user_id: &str, code: &str, org_id: &str) -> String {
        let mut out = String::with_capacity(self.raw.len() + 32);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::UserId => out.push_str(&encode(user_id)),
                Part::Code => out.push_str(&encode(code)),
                Part::OrgId => out.push_str(&encode(org_id)),
            }
        }
        out
    }
}

fn invalid() -> Error {
    Error::invalid(ids::URL_TEMPLATE_INVALID, "URL Template is invalid")
}

fn unparsable() -> Error {
    Error::invalid(ids::URL_TEMPLATE_PARSE, "URL Template is invalid")
}

fn parse_parts(raw: &str) -> Result<Vec<Part>, Error> {
    let mut parts = Vec::new();
    let mut rest = raw;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            parts.push(Part::Text(rest[..open].to_string()));
        }
        let after = &rest[open + 2..];
        // `{{{Code}}}` is handlebars' unescaped form; the value is encoded either way.
        let (triple, after) = match after.strip_prefix('{') {
            Some(a) => (true, a),
            None => (false, after),
        };
        let close = after.find("}}").ok_or_else(unparsable)?;
        let mut inner = &after[..close];
        let mut tail = &after[close + 2..];
        if triple {
            tail = tail.strip_prefix('}').ok_or_else(unparsable)?;
        }
        // Go's whitespace trimming markers: `{{- .Code -}}`.
        inner = inner.trim();
        inner = inner.strip_prefix("- ").unwrap_or(inner);
        inner = inner.strip_suffix(" -").unwrap_or(inner).trim();
        if inner.is_empty() || inner.contains("{{") || inner.contains('{') {
            return Err(unparsable());
        }
        let name = inner.strip_prefix('.').unwrap_or(inner);
        parts.push(match name {
            "UserID" => Part::UserId,
            "Code" => Part::Code,
            "OrgID" => Part::OrgId,
            _ => return Err(invalid()),
        });
        rest = tail;
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    Ok(parts)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_of(r: Result<UrlTemplate, Error>) -> String {
        r.err().map(|e| e.id.to_string()).unwrap_or_default()
    }

    #[test]
    fn both_syntaxes_render_the_same_link() {
        let go = UrlTemplate::parse("https://a.example/i?u={{.UserID}}&c={{.Code}}&o={{.OrgID}}").unwrap();
        let hb = UrlTemplate::parse("https://a.example/i?u={{UserID}}&c={{ Code }}&o={{{OrgID}}}").unwrap();
        assert_eq!(go.render("1", "AB12", "9"), "https://a.example/i?u=1&c=AB12&o=9");
        assert_eq!(go.render("1", "AB12", "9"), hb.render("1", "AB12", "9"));
    }

    #[test]
    fn values_are_percent_encoded() {
        let t = UrlTemplate::parse("https://a.example/{{UserID}}").unwrap();
        assert_eq!(t.render("a b&c/d", "X", "Y"), "https://a.example/a%20b%26c%2Fd");
    }

    #[test]
    fn unknown_placeholders_and_unsafe_schemes_are_rejected() {
        assert_eq!(id_of(UrlTemplate::parse("https://a.example/{{.Password}}")), ids::URL_TEMPLATE_INVALID);
        assert_eq!(id_of(UrlTemplate::parse("javascript:alert({{.Code}})")), ids::URL_TEMPLATE_INVALID);
        assert_eq!(id_of(UrlTemplate::parse("JavaScript:alert(1)")), ids::URL_TEMPLATE_INVALID);
        assert_eq!(id_of(UrlTemplate::parse("data:text/html,{{Code}}")), ids::URL_TEMPLATE_INVALID);
        assert_eq!(id_of(UrlTemplate::parse("/relative/{{Code}}")), ids::URL_TEMPLATE_INVALID);
    }

    #[test]
    fn a_value_cannot_complete_the_scheme_and_links_are_checked_when_sent() {
        assert_eq!(id_of(UrlTemplate::parse("j{{.UserID}}:alert(1)")), ids::URL_TEMPLATE_INVALID);
        assert_eq!(id_of(UrlTemplate::parse("myapp://invite/{{.Code}}")), ids::URL_TEMPLATE_INVALID);
        assert_eq!(id_of(UrlTemplate::parse("https://a.example/\r\n{{.Code}}")), ids::VALIDATION);
        assert_eq!(id_of(UrlTemplate::parse("https://a.example/\t{{.Code}}")), ids::VALIDATION);
        assert!(check_link("https://a.example/?c=K3M9QX").is_ok());
        assert!(check_link("HTTP://a.example/").is_ok());
        for bad in ["javascript:alert(1)", "https://a.example/\n", "/relative", "ftp://a.example/"] {
            assert_eq!(check_link(bad).unwrap_err().id, ids::URL_TEMPLATE_INVALID, "{bad}");
        }
    }

    #[test]
    fn broken_templates_do_not_parse() {
        assert_eq!(id_of(UrlTemplate::parse("https://a.example/{{.Code")), ids::URL_TEMPLATE_PARSE);
        assert_eq!(id_of(UrlTemplate::parse("https://a.example/{{}}")), ids::URL_TEMPLATE_PARSE);
        assert_eq!(id_of(UrlTemplate::parse("https://a.example/{{{Code}}")), ids::URL_TEMPLATE_PARSE);
    }

    #[test]
    fn length_is_bounded() {
        let long = format!("https://a.example/{}", "x".repeat(190));
        assert_eq!(id_of(UrlTemplate::parse(&long)), ids::VALIDATION);
        assert_eq!(id_of(UrlTemplate::parse("")), ids::VALIDATION);
    }
}

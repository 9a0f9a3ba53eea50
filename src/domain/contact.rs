//! Contact addresses: parsed once, valid forever after (parse, don't validate).

use std::fmt;

use super::error::{ids, Error};

/// An e-mail address: an RFC 5322 addr-spec (dot-atom local part or quoted string,
/// `@`, a domain of dot-separated labels) of at most 254 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let s = raw.trim();
        let bad = || Error::invalid(ids::VALIDATION, "email.email is not a valid e-mail address");
        if s.is_empty() || s.chars().count() > 254 {
            return Err(bad());
        }
        let at = s.rfind('@').ok_or_else(bad)?;
        let (local, domain) = (&s[..at], &s[at + 1..]);
        if !(valid_local_part(local) && valid_domain(domain)) {
            return Err(bad());
        }
        Ok(Email(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `a***@example.com`: enough for an operator to recognise, not to harvest.
    pub fn masked(&self) -> String {
        mask_email(&self.0)
    }
}

/// Masks an e-mail address kept as a plain string (as stored with a delivery).
pub fn mask_email(s: &str) -> String {
    match s.rfind('@') {
        Some(at) => {
            let first: String = s[..at].chars().take(1).collect();
            format!("{first}***{}", &s[at..])
        }
        None => "***".into(),
    }
}

/// Masks a phone number: `+4179*****67`.
pub fn mask_phone(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..5].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

fn valid_local_part(local: &str) -> bool {
    if local.is_empty() || local.len() > 64 {
        return false;
    }
    if local.len() >= 2 && local.starts_with('"') && local.ends_with('"') {
        let inner = &local[1..local.len() - 1];
        return inner.chars().all(|c| (c.is_ascii_graphic() || c == ' ') && c != '"' && c != '\\');
    }
    local.split('.').all(|atom| {
        !atom.is_empty() && atom.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c))
    })
}

fn valid_domain(domain: &str) -> bool {
    if domain.is_empty() || domain.len() > 253 {
        return false;
    }
    domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    })
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A phone number in E.164: `+`, a non-zero digit, at most 15 digits in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    pub fn parse(raw: &str) -> Result<Self, Error> {
        // Spaces, dashes and brackets are how people write numbers; E.164 has none.
        let s: String = raw.chars().filter(|c| !matches!(c, ' ' | '-' | '(' | ')')).collect();
        let digits = s.strip_prefix('+').unwrap_or("");
        let ok =
            (2..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) && !digits.starts_with('0');
        if ok {
            Ok(Phone(s))
        } else {
            Err(Error::invalid(ids::VALIDATION, "phone.phone is not an E.164 phone number"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        for ok in ["ada@example.com", "a.b+tag@sub.example.co", "\"john doe\"@example.org", "x@localhost"] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_broken_addresses() {
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in ["", "ada", "@example.com", "ada@", "a..b@example.com", "ada@exa mple.com", "ada@-x.com", &long] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phones_are_e164() {
        assert_eq!(Phone::parse("+41 79 123 45 67").unwrap().as_str(), "+41791234567");
        for bad in ["41791234567", "+0791234567", "+1", "+1234567890123456", "+41a"] {
            assert!(Phone::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn masks_keep_little() {
        assert_eq!(mask_email("ada@example.com"), "a***@example.com");
        assert_eq!(mask_phone("+41791234567"), "+4179*****67");
    }
}

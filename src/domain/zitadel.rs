//! What ZITADEL's HTTP provider posts (docs/ARCHITECTURE.md, "ZITADEL's
//! notifications"), as plain types: the receiving endpoint reads it, the delivery
//! pipeline and the renderer use it, so it lives below all three. The message: `contextInfo` (the event and the recipient),
//! `templateData` (texts already translated by ZITADEL, colours, the link) and
//! `args` (the user and the code). Unknown fields are ignored: ZITADEL adds to the
//! shape between versions.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{ids, Channel, Email, Error, Phone};

/// The posted JSON as herald reads it. Every field is optional here; [`Message::parse`]
/// says which are required and names the one missing.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    #[serde(default)]
    pub context_info: ContextInfo,
    #[serde(default)]
    pub template_data: TemplateData,
    #[serde(default)]
    pub args: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextInfo {
    pub event_type: Option<String>,
    pub recipient_email_address: Option<String>,
    pub recipient_phone_number: Option<String>,
}

/// ZITADEL's `templates.TemplateData`. Older ZITADEL versions serialise the Go
/// field names (`Subject`), newer ones lowerCamelCase (`subject`): both are read.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TemplateData {
    #[serde(alias = "Title")]
    pub title: String,
    #[serde(alias = "PreHeader")]
    pub pre_header: String,
    #[serde(alias = "Subject")]
    pub subject: String,
    #[serde(alias = "Greeting")]
    pub greeting: String,
    #[serde(alias = "Text")]
    pub text: String,
    #[serde(alias = "URL")]
    pub url: String,
    #[serde(alias = "ButtonText")]
    pub button_text: String,
    #[serde(alias = "PrimaryColor")]
    pub primary_color: String,
    #[serde(alias = "BackgroundColor")]
    pub background_color: String,
    #[serde(alias = "FontColor")]
    pub font_color: String,
    #[serde(alias = "LogoURL")]
    pub logo_url: String,
    #[serde(alias = "FontURL")]
    pub font_url: String,
    #[serde(alias = "FontFaceFamily")]
    pub font_face_family: String,
    #[serde(alias = "FontFamily")]
    pub font_family: String,
    #[serde(alias = "IncludeFooter")]
    pub include_footer: bool,
    #[serde(alias = "FooterText")]
    pub footer_text: String,
}

/// A message ready to be stored and, later, rendered: the event, the recipient of
/// the provider's channel, and the rest as posted.
#[derive(Debug, Clone)]
pub struct Message {
    pub event_type: String,
    pub recipient: String,
    pub template: TemplateData,
    pub args: Map<String, Value>,
}

impl Message {
    /// Reads a posted body for a provider of `channel`.
    ///
    /// # Errors
    /// 400 (`ZITADEL-message`) for JSON that does not parse, and for a missing
    /// `contextInfo.eventType` or recipient of the channel, naming the field.
    pub fn parse(body: &[u8], channel: Channel) -> Result<Message, Error> {
        let n: Notification = serde_json::from_slice(body)
            .map_err(|e| Error::invalid(ids::ZITADEL_MESSAGE, format!("Invalid ZITADEL message: {e}")))?;
        let missing = |field: &str| Error::invalid(ids::ZITADEL_MESSAGE, format!("{field} is required"));
        let event_type = n
            .context_info
            .event_type
            .filter(|e| !e.trim().is_empty())
            .ok_or_else(|| missing("contextInfo.eventType"))?;
        if super::has_control(&event_type) {
            // Stored as text, where PostgreSQL refuses a NUL (docs/API.md §1).
            return Err(Error::invalid(
                ids::ZITADEL_MESSAGE,
                "contextInfo.eventType must not contain control characters",
            ));
        }
        let recipient = match channel {
            Channel::Email => {
                let raw = n.context_info.recipient_email_address.filter(|r| !r.trim().is_empty());
                let raw = raw.ok_or_else(|| missing("contextInfo.recipientEmailAddress"))?;
                Email::parse(&raw)
                    .map_err(|_| {
                        Error::invalid(
                            ids::ZITADEL_MESSAGE,
                            "contextInfo.recipientEmailAddress is not an e-mail address",
                        )
                    })?
                    .as_str()
                    .to_string()
            }
            Channel::Sms => {
                let raw = n.context_info.recipient_phone_number.filter(|r| !r.trim().is_empty());
                let raw = raw.ok_or_else(|| missing("contextInfo.recipientPhoneNumber"))?;
                Phone::parse(&raw)
                    .map_err(|_| {
                        Error::invalid(ids::ZITADEL_MESSAGE, "contextInfo.recipientPhoneNumber is not an E.164 number")
                    })?
                    .as_str()
                    .to_string()
            }
        };
        Ok(Message { event_type, recipient, template: n.template_data, args: n.args })
    }

    /// An argument as text: strings as they are, other values as JSON, absent as "".
    pub fn arg(&self, name: &str) -> String {
        match self.args.get(name) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        }
    }

    /// How long ZITADEL's code stays valid: `args.expiry`, a Go duration in
    /// nanoseconds. None when absent, zero, or beyond a year (not a code's life).
    pub fn expiry(&self) -> Option<std::time::Duration> {
        let ns = match self.args.get("expiry") {
            Some(Value::Number(n)) => n.as_u64()?,
            Some(Value::String(s)) => s.parse().ok()?,
            _ => return None,
        };
        let d = std::time::Duration::from_nanos(ns);
        (ns > 0 && d <= std::time::Duration::from_secs(366 * 24 * 3600)).then_some(d)
    }

    /// What makes two posts the same message. ZITADEL sends no idempotency key and
    /// retries with the same JSON (and a new `t`): `eventType | recipient |
    /// args.userID | args.code`, or `args.changeDate` in place of a code for events
    /// that carry none. Hashed: the plain key holds the code.
    pub fn dedupe_key(&self) -> [u8; 32] {
        let code = self.arg("code");
        let last = if code.is_empty() { self.arg("changeDate") } else { code };
        let mut h = Sha256::new();
        for part in [self.event_type.as_str(), &self.recipient, &self.arg("userID"), &last] {
            // Length-prefixed, so no choice of values can shift a separator.
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The shape of ZITADEL's HTTP provider post (an invite code).
    fn invite() -> Value {
        json!({
            "contextInfo": {
                "eventType": "user.human.invite.code.added",
                "provider": {"id": "285181292935381355", "description": "herald"},
                "recipientEmailAddress": "ada@example.com"
            },
            "templateData": {
                "title": "Invitation to Acme", "preHeader": "Invitation", "subject": "Invitation to Acme",
                "greeting": "Hello Ada Lovelace,", "text": "Your code is K3M9QX.",
                "url": "https://acme.example/ui/login/user/invite?code=K3M9QX", "buttonText": "Accept invitation",
                "primaryColor": "#5469d4", "backgroundColor": "#fafafa", "fontColor": "#000000",
                "logoUrl": "", "fontUrl": "", "fontFaceFamily": "", "fontFamily": "Lato, sans-serif",
                "includeFooter": false, "footerText": "", "somethingNew": 1
            },
            "args": {"userID": "285181292935381356", "orgID": "1", "code": "K3M9QX", "expiry": 259200000000000u64,
                     "loginNames": ["ada@acme.example"], "changeDate": "2025-03-25T16:32:59.198Z"}
        })
    }

    fn parse(v: &Value, channel: Channel) -> Result<Message, Error> {
        Message::parse(v.to_string().as_bytes(), channel)
    }

    #[test]
    fn reads_zitadels_shape_and_ignores_unknown_fields() {
        let m = parse(&invite(), Channel::Email).unwrap();
        assert_eq!(m.event_type, "user.human.invite.code.added");
        assert_eq!(m.recipient, "ada@example.com");
        assert_eq!(m.template.subject, "Invitation to Acme");
        assert_eq!(m.template.button_text, "Accept invitation");
        assert_eq!(m.arg("code"), "K3M9QX");
        assert_eq!(m.arg("expiry"), "259200000000000");
        assert_eq!(m.arg("nothing"), "");
        assert_eq!(m.expiry(), Some(std::time::Duration::from_secs(72 * 3600)));
    }

    #[test]
    fn reads_the_go_field_names_of_older_versions() {
        let mut v = invite();
        v["templateData"] = json!({"Subject": "Old", "URL": "https://x.example", "IncludeFooter": true});
        let m = parse(&v, Channel::Email).unwrap();
        assert_eq!((m.template.subject.as_str(), m.template.url.as_str()), ("Old", "https://x.example"));
        assert!(m.template.include_footer);
    }

    #[test]
    fn a_missing_event_type_or_recipient_is_named() {
        let mut v = invite();
        v["contextInfo"].as_object_mut().unwrap().remove("eventType");
        assert!(parse(&v, Channel::Email).unwrap_err().text.contains("contextInfo.eventType"));
        let e = parse(&invite(), Channel::Sms).unwrap_err();
        assert!(e.text.contains("contextInfo.recipientPhoneNumber"), "{}", e.text);
        assert!(parse(&json!({}), Channel::Email).unwrap_err().text.contains("contextInfo.eventType"));
        assert!(Message::parse(b"{", Channel::Email).is_err());
    }

    #[test]
    fn sms_messages_carry_a_phone_number() {
        let mut v = invite();
        v["contextInfo"] = json!({"eventType": "user.human.phone.code.added", "recipientPhoneNumber": "+41791234567"});
        assert_eq!(parse(&v, Channel::Sms).unwrap().recipient, "+41791234567");
    }

    #[test]
    fn the_dedupe_key_follows_event_recipient_user_and_code() {
        let key = |v: &Value| parse(v, Channel::Email).unwrap().dedupe_key();
        let base = key(&invite());
        // A retry: same JSON (ZITADEL only changes the signature's t).
        assert_eq!(key(&invite()), base);
        // Texts do not matter, a new code does.
        let mut texts = invite();
        texts["templateData"]["subject"] = json!("Other");
        assert_eq!(key(&texts), base);
        let mut code = invite();
        code["args"]["code"] = json!("ZZZZZZ");
        assert_ne!(key(&code), base);
        let mut event = invite();
        event["contextInfo"]["eventType"] = json!("user.human.initialization.code.added");
        assert_ne!(key(&event), base);
        // Without a code, the change date tells messages apart.
        let mut no_code = invite();
        no_code["args"].as_object_mut().unwrap().remove("code");
        let a = key(&no_code);
        no_code["args"]["changeDate"] = json!("2025-03-26T00:00:00Z");
        assert_ne!(key(&no_code), a);
    }
}

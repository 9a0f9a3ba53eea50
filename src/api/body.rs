//! Request bodies: at most 64 KiB, JSON, errors that name the field.

use actix_web::web::{Bytes, Payload};
use serde::de::DeserializeOwned;

use serde_json::Value;

use crate::domain::{has_control, ids, Error, Kind};

pub const BODY_LIMIT: usize = 64 * 1024;

/// Reads the whole body.
///
/// # Errors
/// 413 (code 3) past 64 KiB; 400 when the stream breaks.
pub async fn read(payload: Payload) -> Result<Bytes, Error> {
    read_limited(payload, BODY_LIMIT).await
}

/// [`read`] with another limit, for the one endpoint whose contract needs more
/// (a bulk job of 10,000 user ids is about 210 KiB of JSON).
///
/// # Errors
/// 413 (code 3) past `limit`; 400 when the stream breaks.
pub async fn read_limited(payload: Payload, limit: usize) -> Result<Bytes, Error> {
    match payload.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(Error::invalid(ids::INVALID_BODY, format!("Request body could not be read: {e}"))),
        Err(_) => Err(too_large(limit)),
    }
}

pub fn too_large(limit: usize) -> Error {
    // API.md §1: 413 with code 3; `api::error::status_for` maps this id to 413.
    Error::new(Kind::InvalidArgument, ids::BODY_TOO_LARGE, format!("Request body is larger than {} KiB", limit / 1024))
}

/// Parses JSON into `T`; an empty body is `{}`.
///
/// Every string in the body is checked first: a control character (NUL, CR, …) in
/// any id or text is a 400 that names the field (docs/API.md §1), not a 500 when
/// PostgreSQL refuses it.
///
/// # Errors
/// 400, code 3, with the path of the offending field in the text.
pub fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { bytes };
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::invalid(ids::INVALID_BODY, format!("Invalid request body: {e}")))?;
    if let Some(field) = control_in(&value, &mut String::new()) {
        return Err(Error::invalid(ids::VALIDATION, format!("{field} must not contain control characters")));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let text = if path == "." || path.is_empty() {
            format!("Invalid request body: {inner}")
        } else {
            format!("Invalid request body: {path}: {inner}")
        };
        Error::invalid(ids::INVALID_BODY, text)
    })
}

/// The path (`userIds[3]`, `sendCode.urlTemplate`) of the first string under `v`
/// that holds a control character. serde_json's recursion limit (128) bounds the
/// depth, so this recursion is bounded too.
fn control_in(v: &Value, path: &mut String) -> Option<String> {
    match v {
        Value::String(s) if has_control(s) => Some(if path.is_empty() { "body".into() } else { path.clone() }),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let found = control_in(item, path);
            path.truncate(len);
            found
        }),
        Value::Object(map) => map.iter().find_map(|(k, item)| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            // A key is echoed only when printable: the field is named, not replayed.
            path.push_str(if has_control(k) { "?" } else { k });
            let found = control_in(item, path);
            path.truncate(len);
            found
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Outer {
        #[allow(dead_code)]
        send_code: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Inner {
        #[allow(dead_code)]
        url_template: Option<String>,
    }

    #[test]
    fn wrong_types_name_the_field() {
        let e = json::<Outer>(br#"{"sendCode": {"urlTemplate": 5}}"#).unwrap_err();
        assert!(e.text.contains("sendCode.urlTemplate"), "{}", e.text);
    }

    #[test]
    fn empty_is_an_empty_object_and_garbage_is_rejected() {
        assert!(json::<Outer>(b"").is_ok());
        assert!(json::<Outer>(b"{").is_err());
        assert!(json::<Outer>(b"{} x").is_err());
    }

    #[test]
    fn control_characters_anywhere_name_their_field() {
        let e = json::<Outer>(br#"{"sendCode": {"urlTemplate": "https://x/\u0000"}}"#).unwrap_err();
        assert_eq!(e.id, ids::VALIDATION);
        assert!(e.text.contains("sendCode.urlTemplate"), "{}", e.text);
        let e = json::<serde_json::Value>(br#"{"userIds": ["1", "2\r\n"]}"#).unwrap_err();
        assert!(e.text.contains("userIds[1]"), "{}", e.text);
        assert!(json::<serde_json::Value>("{\"name\": \"Zürich 😀\"}".as_bytes()).is_ok());
    }

    #[test]
    fn deep_nesting_is_a_400() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(json::<serde_json::Value>(deep.as_bytes()).unwrap_err().id, ids::INVALID_BODY);
    }
}

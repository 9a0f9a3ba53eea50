//! What herald's answers must look like: the shapes API.md fixes (§1.2 for REST
//! errors, §6 for Connect errors, the `details` of a write) checked in one place.

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

/// Asserts 200 and returns the JSON body.
pub async fn ok_json(resp: Response) -> Value {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "expected 200, got {status}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `details.sequence` of a write's response, checked to be a JSON string.
pub fn sequence(body: &Value) -> u64 {
    let s = body["details"]["sequence"].as_str().unwrap_or_else(|| panic!("sequence is not a string: {body}"));
    s.parse().unwrap_or_else(|_| panic!("sequence is not a uint64: {s}"))
}

/// Asserts the REST error shape of API.md §1.2 with this status, code and id, and
/// returns the body. `message` is `"<text> (<id>)"` and `details[0]` repeats both.
pub async fn assert_error(resp: Response, status: u16, code: u64, id: &str) -> Value {
    let body = assert_error_code(resp, status, code).await;
    let detail = &body["details"][0];
    assert_eq!(detail["id"], json!(id), "{body}");
    let text = detail["message"].as_str().unwrap_or_else(|| panic!("details[0].message: {body}"));
    assert_eq!(body["message"], json!(format!("{text} ({id})")), "{body}");
    body
}

/// Asserts the REST error shape with this status and code, whatever the id.
pub async fn assert_error_code(resp: Response, status: u16, code: u64) -> Value {
    let got = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "status: {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("error body is not JSON ({e}): {text}"));
    assert_eq!(body["code"], json!(code), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "message: {body}");
    let details = body["details"].as_array().unwrap_or_else(|| panic!("details is not a list: {body}"));
    for d in details {
        assert_eq!(d["@type"], json!("type.googleapis.com/zitadel.v1.ErrorDetail"), "{body}");
        let (id, text) = (d["id"].as_str().unwrap(), d["message"].as_str().unwrap());
        assert_eq!(body["message"], json!(format!("{text} ({id})")), "{body}");
    }
    body
}

/// Asserts the Connect error shape of API.md §6 with this status, code name and id,
/// decoding `details[0].value` as the protobuf `ErrorDetail {1: id, 2: message}`.
pub async fn assert_connect_error(resp: Response, status: u16, code: &str, id: &str) -> Value {
    let got = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "status: {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("error body is not JSON ({e}): {text}"));
    assert_eq!(body["code"], json!(code), "{body}");
    let details = body["details"].as_array().unwrap_or_else(|| panic!("details: {body}"));
    assert_eq!(details.len(), 1, "{body}");
    let d = &details[0];
    assert_eq!(d["type"], json!("zitadel.v1.ErrorDetail"), "{body}");
    assert_eq!(d["debug"]["id"], json!(id), "{body}");
    let message = d["debug"]["message"].as_str().unwrap_or_else(|| panic!("debug.message: {body}"));
    assert_eq!(body["message"], json!(format!("{message} ({id})")), "{body}");
    // Connect writes binary as base64, padded or not.
    let value = d["value"].as_str().unwrap_or_else(|| panic!("value: {body}"));
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(value.trim_end_matches('='))
        .unwrap_or_else(|e| panic!("value is not base64 ({e}): {body}"));
    assert_eq!(bytes, protobuf_error_detail(id, message), "value of {body}");
    body
}

/// The expected encoding of `zitadel.v1.ErrorDetail { string id = 1; string message = 2; }`.
fn protobuf_error_detail(id: &str, message: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for (tag, s) in [(0x0a_u8, id), (0x12, message)] {
        out.push(tag);
        let mut len = s.len();
        while len >= 0x80 {
            out.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(s.as_bytes());
    }
    out
}

/// Asserts an RFC 3339 UTC timestamp with exactly milliseconds (`…:59.198Z`), and
/// returns it.
pub fn timestamp(v: &Value) -> DateTime<Utc> {
    let s = v.as_str().unwrap_or_else(|| panic!("timestamp is not a string: {v}"));
    let t: DateTime<Utc> = DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}")).into();
    assert_eq!(s, t.to_rfc3339_opts(SecondsFormat::Millis, true), "not UTC with 3 fractional digits and Z");
    assert!(s.len() == 24 && s.ends_with('Z') && s.as_bytes()[19] == b'.', "{s}");
    t
}

/// Asserts the `details` of a write: sequence a string, equal dates close to now,
/// owned by `org`. Returns the sequence.
pub fn assert_write_details(body: &Value, org: &str) -> u64 {
    let d = &body["details"];
    let seq = sequence(body);
    assert_eq!(d["changeDate"], d["creationDate"], "{body}");
    let at = timestamp(&d["changeDate"]);
    let age = Utc::now() - at;
    assert!(age >= -chrono::Duration::seconds(5) && age < chrono::Duration::seconds(30), "changeDate {at} is not now");
    assert_eq!(d["resourceOwner"], json!(org), "{body}");
    seq
}

/// The `Retry-After` header as whole seconds, asserted to be a positive integer.
pub fn retry_after(resp: &Response) -> u64 {
    let v = resp.headers().get("retry-after").expect("Retry-After header").to_str().unwrap().to_string();
    let secs: u64 = v.parse().unwrap_or_else(|_| panic!("Retry-After is not whole seconds: {v:?}"));
    assert!(secs > 0, "Retry-After: {secs}");
    secs
}

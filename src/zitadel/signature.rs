//! The `ZITADEL-Signature` header: `t=<unix seconds>,v1=<hex>[,v1=<hex>…]`, where
//! each `v1` is HMAC-SHA256 over `"<t>." + raw body` keyed with the signing key's
//! bytes as ZITADEL showed them (docs/ARCHITECTURE.md, "ZITADEL's notifications").
//!
//! Pure functions: the receiving endpoint hands in the header, the raw bytes, the
//! provider's keys and the time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header's name as ZITADEL documents it; Go sends it as `Zitadel-Signature`,
/// and HTTP header names are case-insensitive anyway.
pub const HEADER: &str = "zitadel-signature";

/// A parsed header: the time it claims and every `v1` signature in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    pub timestamp: i64,
    pub signatures: Vec<Vec<u8>>,
}

/// Why a post's signature was refused. Each maps to one answer of the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("The ZITADEL-Signature header is missing")]
    Missing,
    #[error("The ZITADEL-Signature header is malformed")]
    Malformed,
    #[error("The ZITADEL-Signature time is too far from now")]
    OutOfTolerance,
    #[error("No signature matches a signing key of the provider")]
    NoMatch,
}

/// Parses `t=…,v1=…`. Parts are separated by commas, names are matched without
/// regard to case, unknown parts (a future `v2`) are skipped, and a `v1` that is not
/// hex is skipped as well (it cannot match anything).
///
/// # Errors
/// [`SignatureError::Malformed`] without a numeric `t` or without any usable `v1`.
pub fn parse(header: &str) -> Result<SignatureHeader, SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (name, value) = part.split_once('=').ok_or(SignatureError::Malformed)?;
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("t") {
            timestamp = Some(value.parse::<i64>().map_err(|_| SignatureError::Malformed)?);
        } else if name.eq_ignore_ascii_case("v1") {
            if let Ok(sig) = hex::decode(value) {
                signatures.push(sig);
            }
        }
    }
    match timestamp {
        Some(timestamp) if !signatures.is_empty() => Ok(SignatureHeader { timestamp, signatures }),
        _ => Err(SignatureError::Malformed),
    }
}

fn mac(key: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so `new_from_slice` cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The lowercase hex `v1` that `key` gives for `body` at `timestamp` (what ZITADEL
/// sends; the tests and the bench sign with it).
pub fn sign(key: &str, timestamp: i64, body: &[u8]) -> String {
    hex::encode(mac(key, timestamp, body).finalize().into_bytes())
}

/// Checks a header against the raw body: the time within `tolerance_secs` of `now`
/// (either way: a clock ahead is as suspect as a replay), and some `v1` equal, in
/// constant time, to the HMAC of one of `keys` (several while ZITADEL rotates).
///
/// # Errors
/// The [`SignatureError`] that says why.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    keys: &[String],
    now: i64,
    tolerance_secs: u64,
) -> Result<(), SignatureError> {
    let header = header.map(str::trim).filter(|h| !h.is_empty()).ok_or(SignatureError::Missing)?;
    let parsed = parse(header)?;
    if parsed.timestamp.abs_diff(now) > tolerance_secs {
        return Err(SignatureError::OutOfTolerance);
    }
    let matched = keys
        .iter()
        .any(|key| parsed.signatures.iter().any(|sig| mac(key, parsed.timestamp, body).verify_slice(sig).is_ok()));
    if matched {
        Ok(())
    } else {
        Err(SignatureError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "Zk3pQ9wLm2Xv7Rt4Yb8Nc1Hd6Jf0Gs5Ua2Ee";
    const BODY: &[u8] = br#"{"contextInfo":{"eventType":"user.human.invite.code.added"}}"#;
    const T: i64 = 1_764_540_000;
    /// Computed once outside herald:
    /// `hmac.new(KEY, b"1764540000." + BODY, hashlib.sha256).hexdigest()`.
    const VECTOR: &str = "a42dc67344a049e249432b6f7db120125a96ef6a371e3db86d2946f34b4f71bf";

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn signs_like_the_hand_computed_vector() {
        assert_eq!(sign(KEY, T, BODY), VECTOR);
        assert_eq!(verify(Some(&format!("t={T},v1={VECTOR}")), BODY, &keys(&[KEY]), T + 10, 300), Ok(()));
    }

    #[test]
    fn parses_several_signatures_and_ignores_case_and_unknown_parts() {
        let h = parse(&format!("T=5, V1={VECTOR},v1=00ff,v0=zz,v1=nothex")).unwrap();
        assert_eq!(h.timestamp, 5);
        assert_eq!(h.signatures.len(), 2);
        assert_eq!(h.signatures[1], vec![0x00, 0xff]);
    }

    #[test]
    fn malformed_headers_are_refused() {
        for bad in ["", "t=1", "v1=00", "t=x,v1=00", "t=1;v1=00", "garbage", "t=1,v1=zz"] {
            assert_eq!(parse(bad), Err(SignatureError::Malformed), "{bad}");
        }
    }

    #[test]
    fn any_configured_key_and_any_v1_may_match() {
        let other = sign("old-key", T, BODY);
        let header = format!("t={T},v1={other},v1={VECTOR}");
        assert_eq!(verify(Some(&header), BODY, &keys(&["new-key", KEY]), T, 300), Ok(()));
    }

    #[test]
    fn wrong_key_changed_body_and_missing_header_are_refused() {
        let header = format!("t={T},v1={VECTOR}");
        assert_eq!(verify(Some(&header), BODY, &keys(&["another"]), T, 300), Err(SignatureError::NoMatch));
        assert_eq!(verify(Some(&header), b"{}", &keys(&[KEY]), T, 300), Err(SignatureError::NoMatch));
        assert_eq!(verify(None, BODY, &keys(&[KEY]), T, 300), Err(SignatureError::Missing));
        assert_eq!(verify(Some(" "), BODY, &keys(&[KEY]), T, 300), Err(SignatureError::Missing));
    }

    #[test]
    fn the_time_must_be_within_the_tolerance_either_way() {
        let header = format!("t={T},v1={VECTOR}");
        assert_eq!(verify(Some(&header), BODY, &keys(&[KEY]), T + 300, 300), Ok(()));
        assert_eq!(verify(Some(&header), BODY, &keys(&[KEY]), T + 3600, 300), Err(SignatureError::OutOfTolerance));
        assert_eq!(verify(Some(&header), BODY, &keys(&[KEY]), T - 301, 300), Err(SignatureError::OutOfTolerance));
    }
}

//! The one mapping from domain errors to HTTP (API.md §1.2 and §6).

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use base64::Engine;
use serde_json::json;

use crate::domain::{Error, Kind};

pub fn status_of(kind: Kind) -> StatusCode {
    match kind {
        Kind::InvalidArgument | Kind::FailedPrecondition => StatusCode::BAD_REQUEST,
        Kind::Unauthenticated => StatusCode::UNAUTHORIZED,
        Kind::PermissionDenied => StatusCode::FORBIDDEN,
        Kind::NotFound => StatusCode::NOT_FOUND,
        Kind::AlreadyExists => StatusCode::CONFLICT,
        Kind::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Kind::Unimplemented => StatusCode::NOT_IMPLEMENTED,
    }
}

/// The status of one error: its kind's, except the body limit's 413 (API.md §1
/// gives it code 3, whose usual status is 400).
pub fn status_for(e: &Error) -> StatusCode {
    if e.id == crate::domain::ids::BODY_TOO_LARGE {
        StatusCode::PAYLOAD_TOO_LARGE
    } else {
        status_of(e.kind)
    }
}

/// Logs what the caller is not told: the cause chain of a 5xx, under the request's
/// span (and so its request id).
pub fn log(e: &Error) {
    match e.kind {
        Kind::Internal | Kind::Unavailable => {
            let cause = e.source.as_ref().map(|s| format!("{s:#}")).unwrap_or_default();
            tracing::error!(id = %e.id, cause, "request failed");
        }
        _ => tracing::debug!(id = %e.id, text = %e.text, "request rejected"),
    }
}

fn builder(e: &Error) -> actix_web::HttpResponseBuilder {
    let mut b = HttpResponse::build(status_for(e));
    if let Some(after) = e.retry_after {
        b.insert_header((header::RETRY_AFTER, after.as_secs().max(1).to_string()));
    }
    b
}

/// An error answered in the REST gateway's shape (google.rpc.Status).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct RestError(#[from] pub Error);

impl ResponseError for RestError {
    fn status_code(&self) -> StatusCode {
        status_for(&self.0)
    }

    fn error_response(&self) -> HttpResponse {
        let e = &self.0;
        log(e);
        let details = if e.id.is_empty() {
            json!([])
        } else {
            json!([{"@type": "type.googleapis.com/zitadel.v1.ErrorDetail", "id": e.id, "message": e.text}])
        };
        builder(e).json(json!({"code": e.kind.grpc_code(), "message": e.message(), "details": details}))
    }
}

/// An error answered in the Connect protocol's shape.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ConnectError(#[from] pub Error);

impl ResponseError for ConnectError {
    fn status_code(&self) -> StatusCode {
        status_for(&self.0)
    }

    fn error_response(&self) -> HttpResponse {
        let e = &self.0;
        log(e);
        let mut body = json!({"code": e.kind.connect_name(), "message": e.message()});
        if !e.id.is_empty() {
            // Connect carries details as base64 (standard alphabet, unpadded) of the
            // protobuf message; zitadel.v1.ErrorDetail is {1: id, 2: message}.
            let value = base64::engine::general_purpose::STANDARD_NO_PAD.encode(error_detail_proto(&e.id, &e.text));
            body["details"] = json!([{
                "type": "zitadel.v1.ErrorDetail",
                "value": value,
                "debug": {"id": e.id, "message": e.text},
            }]);
        }
        builder(e).json(body)
    }
}

/// Protobuf encoding of `ErrorDetail { string id = 1; string message = 2; }`.
pub fn error_detail_proto(id: &str, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(id.len() + message.len() + 8);
    for (tag, s) in [(0x0a_u8, id), (0x12, message)] {
        out.push(tag);
        let mut len = s.len();
        // Base-128 varint of the length.
        while len >= 0x80 {
            out.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(s.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_detail_encodes_as_protobuf() {
        assert_eq!(error_detail_proto("A", "bc"), vec![0x0a, 1, b'A', 0x12, 2, b'b', b'c']);
        let long = "x".repeat(200);
        let enc = error_detail_proto("", &long);
        assert_eq!(&enc[..5], &[0x0a, 0, 0x12, 0xc8, 0x01]);
    }
}

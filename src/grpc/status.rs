//! herald's errors as gRPC statuses: the kind's code, the message REST shows, and
//! `zitadel.v1.ErrorDetail {id, message}` in `grpc-status-details-bin` (a
//! `google.rpc.Status`, as ZITADEL sends it).

use prost::Message;
use tonic::codegen::Bytes;
use tonic::{Code, Status};

use super::pb::zitadel::v1::ErrorDetail;
use crate::domain::Error;

/// `google.rpc.Status`: the message `grpc-status-details-bin` carries.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<prost_types::Any>,
}

pub const ERROR_DETAIL_TYPE: &str = "type.googleapis.com/zitadel.v1.ErrorDetail";

/// The gRPC status of a herald error.
pub fn of(e: Error) -> Status {
    crate::api::error::log(&e);
    let code = Code::from_i32(i32::from(e.kind.grpc_code()));
    let message = e.message();
    let details = if e.id.is_empty() {
        Vec::new()
    } else {
        let detail = ErrorDetail { id: e.id.to_string(), message: e.text.to_string() };
        vec![prost_types::Any { type_url: ERROR_DETAIL_TYPE.into(), value: detail.encode_to_vec() }]
    };
    let body = RpcStatus { code: code as i32, message: message.clone(), details }.encode_to_vec();
    let mut status = Status::with_details(code, message, Bytes::from(body));
    if let Some(after) = e.retry_after {
        if let Ok(v) = after.as_secs().max(1).to_string().parse() {
            status.metadata_mut().insert("retry-after", v);
        }
    }
    status
}

/// The `ErrorDetail` of a status, if it has one (what a client reads).
pub fn detail(status: &Status) -> Option<ErrorDetail> {
    let rpc = RpcStatus::decode(status.details()).ok()?;
    let any = rpc.details.into_iter().find(|a| a.type_url == ERROR_DETAIL_TYPE)?;
    ErrorDetail::decode(any.value.as_slice()).ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::Kind;

    #[test]
    fn a_status_carries_the_code_the_id_and_retry_after() {
        let mut e = Error::new(Kind::ResourceExhausted, "QUOTA-1", "slow down");
        e.retry_after = Some(Duration::from_millis(200));
        let s = of(e);
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(s.metadata().get("retry-after").unwrap(), "1");
        let d = detail(&s).expect("an ErrorDetail");
        assert_eq!((d.id.as_str(), d.message.as_str()), ("QUOTA-1", "slow down"));
    }

    #[test]
    fn each_kind_has_its_grpc_code() {
        for (kind, code) in [
            (Kind::NotFound, Code::NotFound),
            (Kind::InvalidArgument, Code::InvalidArgument),
            (Kind::FailedPrecondition, Code::FailedPrecondition),
            (Kind::PermissionDenied, Code::PermissionDenied),
            (Kind::Unauthenticated, Code::Unauthenticated),
            (Kind::Unimplemented, Code::Unimplemented),
        ] {
            assert_eq!(of(Error::new(kind, "X", "x")).code(), code, "{kind:?}");
        }
    }
}

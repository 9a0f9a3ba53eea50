//! The Connect RPC paths of API.md §6: the methods ZITADEL's SDKs call, with the
//! same behaviour as the REST paths and the Connect error body.
//!
//! Both Connect codecs: JSON (`application/json`, the Python SDK) and binary
//! protobuf (`application/proto`, `@connectrpc/connect-node`'s default). A binary
//! request is decoded into the same DTO a JSON one parses to (`grpc::convert`);
//! errors are JSON bodies in both, as the Connect protocol says.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::call::Call;
use super::dto::*;
use super::error::ConnectError;
use super::{body, request_id, AppState};
use crate::domain::{Error, Kind};
use crate::invite::Grouped;

type Reply = Result<HttpResponse, ConnectError>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/{service:zitadel\\.[^/]*}/{method}", web::route().to(dispatch));
}

fn ok<T: Serialize>(value: T) -> Reply {
    Ok(HttpResponse::Ok().json(value))
}

/// A binary Connect answer.
fn proto<T: prost::Message>(value: T) -> Reply {
    Ok(HttpResponse::Ok().content_type(PROTO).body(value.encode_to_vec()))
}

const PROTO: &str = "application/proto";

fn decode<T: prost::Message + Default>(bytes: &[u8]) -> Result<T, Error> {
    T::decode(bytes).map_err(|e| Error::invalid(crate::domain::ids::INVALID_BODY, format!("Invalid request body: {e}")))
}

async fn dispatch(
    state: web::Data<AppState>,
    resends: web::Data<Grouped>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Reply {
    let (service, method) = path.into_inner();
    let known = matches!(
        (service.as_str(), method.as_str()),
        (
            "zitadel.user.v2.UserService",
            "CreateInviteCode" | "ResendInviteCode" | "VerifyInviteCode" | "AddHumanUser" | "GetUserByID"
        ) | ("zitadel.org.v2.OrganizationService", "AddOrganization")
    );
    if !known {
        return Err(
            Error::new(Kind::Unimplemented, "", format!("{service}.{method} is not implemented by herald")).into()
        );
    }
    if req.method() != actix_web::http::Method::POST {
        // As connect-go answers: the method exists, the HTTP method does not.
        return Ok(HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, "POST"))
            .json(serde_json::json!({"code": "unimplemented", "message": "Connect unary calls must use POST"})));
    }
    // Connect's two codecs: JSON and binary protobuf.
    let content_type =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    let media = content_type.split(';').next().unwrap_or("").trim();
    let binary = media.eq_ignore_ascii_case(PROTO);
    if !binary && !media.eq_ignore_ascii_case("application/json") {
        return Ok(HttpResponse::UnsupportedMediaType()
            .insert_header(("accept-post", "application/json, application/proto"))
            .finish());
    }
    let bytes = body::read(payload).await?;
    let call = Call {
        state: &state,
        authorization: req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()),
        request_id: request_id::of(&req),
    };
    if binary {
        return binary_call(&call, &resends, &method, &bytes).await;
    }
    match method.as_str() {
        "CreateInviteCode" => {
            let b: CreateInviteCodeBody = body::json(&bytes)?;
            let user_id = b.user_id.clone().unwrap_or_default();
            ok(call.create_invite_code(&user_id, b).await?)
        }
        "ResendInviteCode" => {
            let b: UserIdBody = body::json(&bytes)?;
            ok(call.resend_invite_code(&resends, &b.user_id.unwrap_or_default()).await?)
        }
        "VerifyInviteCode" => {
            let b: VerifyInviteCodeBody = body::json(&bytes)?;
            ok(call.verify_invite_code(&b.user_id.unwrap_or_default(), b.verification_code).await?)
        }
        "AddHumanUser" => ok(call.add_human_user(body::json(&bytes)?).await?),
        "GetUserByID" => {
            let b: UserIdBody = body::json(&bytes)?;
            ok(call.get_user(&b.user_id.unwrap_or_default()).await?)
        }
        "AddOrganization" => ok(call.add_organization(body::json(&bytes)?).await?),
        _ => unreachable!("checked by `known` above"),
    }
}

/// One binary Connect call: the protobuf request as the DTO JSON would give, the
/// same [`Call`], the answer as protobuf.
async fn binary_call(call: &Call<'_>, resends: &Grouped, method: &str, bytes: &[u8]) -> Reply {
    use crate::grpc::convert;
    use crate::grpc::pb::zitadel::{org::v2 as org, user::v2 as user};
    match method {
        "CreateInviteCode" => {
            let (user_id, b) = convert::create_invite_code(decode::<user::CreateInviteCodeRequest>(bytes)?);
            proto(convert::created(call.create_invite_code(&user_id, b).await?))
        }
        "ResendInviteCode" => {
            let m: user::ResendInviteCodeRequest = decode(bytes)?;
            proto(convert::resent(call.resend_invite_code(resends, &m.user_id).await?))
        }
        "VerifyInviteCode" => {
            let m: user::VerifyInviteCodeRequest = decode(bytes)?;
            proto(convert::verified(call.verify_invite_code(&m.user_id, Some(m.verification_code)).await?))
        }
        "AddHumanUser" => {
            let b = convert::add_human_user(decode::<user::AddHumanUserRequest>(bytes)?);
            proto(convert::human_added(call.add_human_user(b).await?))
        }
        "GetUserByID" => {
            let m: user::GetUserByIdRequest = decode(bytes)?;
            proto(convert::user(call.get_user(&m.user_id).await?))
        }
        "AddOrganization" => {
            let b = convert::add_organization(decode::<org::AddOrganizationRequest>(bytes)?);
            proto(convert::organization_added(call.add_organization(b).await?))
        }
        _ => unreachable!("checked by `known` in dispatch"),
    }
}

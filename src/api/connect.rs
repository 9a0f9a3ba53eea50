//! The Connect RPC paths of API.md §6: the methods ZITADEL's SDKs call, with the
//! same behaviour as the REST paths and the Connect error body.

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
        return Err(Error::new(Kind::Unimplemented, "", "Connect unary calls must use POST").into());
    }
    // Connect's JSON codec only; a protobuf-encoded request would not parse.
    let content_type =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    if !content_type.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json") {
        return Ok(HttpResponse::UnsupportedMediaType().insert_header(("accept-post", "application/json")).finish());
    }
    let bytes = body::read(payload).await?;
    let call = Call {
        state: &state,
        authorization: req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()),
        request_id: request_id::of(&req),
    };
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

//! The REST paths of API.md §2, §3 and §7, in the REST gateway's framing.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::call::Call;
use super::dto::*;
use super::error::RestError;
use super::{body, request_id, AppState};
use crate::domain::{ids, Error};
use crate::invite::Grouped;

type Reply = Result<HttpResponse, RestError>;

fn call<'a>(state: &'a AppState, req: &'a HttpRequest) -> Call<'a> {
    Call {
        state,
        authorization: req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()),
        request_id: request_id::of(req),
    }
}

fn ok<T: Serialize>(value: T) -> Reply {
    Ok(HttpResponse::Ok().json(value))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    // `{userId:[^/]*}` also matches an empty segment, so `/v2/users//invite_code`
    // reaches the handler and gets check 1's 400 instead of a routing 404.
    cfg.route("/v2/users/human", web::post().to(add_human_user))
        .route("/v2/users/{userId:[^/]*}/invite_code", web::post().to(create_invite_code))
        .route("/v2/users/{userId:[^/]*}/invite_code/resend", web::post().to(resend_invite_code))
        .route("/v2/users/{userId:[^/]*}/invite_code/verify", web::post().to(verify_invite_code))
        .route("/v2/users/{userId:[^/]*}", web::get().to(get_user))
        .route("/v2/organizations", web::post().to(add_organization))
        .route("/v2/organizations/{orgId}", web::get().to(get_organization))
        .route("/admin/v1/tokens", web::post().to(create_token))
        .route("/admin/v1/tokens/{tokenId}", web::delete().to(revoke_token));
}

async fn create_invite_code(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Reply {
    let bytes = body::read(payload).await?;
    let parsed: CreateInviteCodeBody = body::json(&bytes)?;
    ok(call(&state, &req).create_invite_code(&path, parsed).await?)
}

/// The seed's endpoint. Its body, if any, is ignored (and not read).
async fn resend_invite_code(
    state: web::Data<AppState>,
    resends: web::Data<Grouped>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Reply {
    ok(call(&state, &req).resend_invite_code(&resends, &path).await?)
}

async fn verify_invite_code(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Reply {
    let bytes = body::read(payload).await?;
    let parsed: VerifyInviteCodeBody = body::json(&bytes)?;
    ok(call(&state, &req).verify_invite_code(&path, parsed.verification_code).await?)
}

async fn get_user(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> Reply {
    ok(call(&state, &req).get_user(&path).await?)
}

async fn add_human_user(state: web::Data<AppState>, req: HttpRequest, payload: web::Payload) -> Reply {
    let bytes = body::read(payload).await?;
    let parsed: AddHumanUserBody = body::json(&bytes)?;
    ok(call(&state, &req).add_human_user(parsed).await?)
}

async fn add_organization(state: web::Data<AppState>, req: HttpRequest, payload: web::Payload) -> Reply {
    let bytes = body::read(payload).await?;
    let parsed: AddOrganizationBody = body::json(&bytes)?;
    ok(call(&state, &req).add_organization(parsed).await?)
}

async fn get_organization(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> Reply {
    ok(call(&state, &req).get_organization(&path).await?)
}

async fn create_token(state: web::Data<AppState>, req: HttpRequest, payload: web::Payload) -> Reply {
    let bytes = body::read(payload).await?;
    let parsed: CreateTokenBody = body::json(&bytes)?;
    ok(call(&state, &req).create_token(parsed).await?)
}

async fn revoke_token(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> Reply {
    call(&state, &req).revoke_token(&path).await?;
    ok(serde_json::json!({}))
}

/// Anything no route matched: the same error body as every other error.
pub async fn not_found() -> Reply {
    Err(Error::not_found(ids::ROUTE_NOT_FOUND, "Not Found").into())
}

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

#[utoipa::path(post, path = "/v2/users/{userId}/invite_code", tag = "invite codes", summary = "Create an invite code (send it, or return it)", params(("userId" = String, Path, description = "The user's id")),
    request_body = CreateInviteCodeBody,
    responses((status = 200, body = CreateInviteCodeResponse, description = "The code: sent, or returned"), crate::api::openapi::RestErrors),
    security(("bearer" = [])))]
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
#[utoipa::path(post, path = "/v2/users/{userId}/invite_code/resend", tag = "invite codes",
    summary = "Resend the invite code", description = "A new code, sent the way the last one was (docs/API.md §2.2). A body is ignored.",
    params(("userId" = String, Path, description = "The user's id")),
    responses((status = 200, body = DetailsOnly, description = "A new code is on its way"), crate::api::openapi::RestErrors),
    security(("bearer" = [])))]
async fn resend_invite_code(
    state: web::Data<AppState>,
    resends: web::Data<Grouped>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Reply {
    ok(call(&state, &req).resend_invite_code(&resends, &path).await?)
}

#[utoipa::path(post, path = "/v2/users/{userId}/invite_code/verify", tag = "invite codes", summary = "Verify an invite code", params(("userId" = String, Path, description = "The user's id")),
    request_body = VerifyInviteCodeBody,
    responses((status = 200, body = DetailsOnly, description = "The code was right"), crate::api::openapi::RestErrors),
    security(("bearer" = [])))]
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

#[utoipa::path(get, path = "/v2/users/{userId}", tag = "organizations, users, tokens", summary = "Get a user and its invite", params(("userId" = String, Path, description = "The user's id")),
    responses((status = 200, body = GetUserResponse, description = "The user and its invite"), crate::api::openapi::RestErrors),
    security(("bearer" = [])))]
async fn get_user(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> Reply {
    ok(call(&state, &req).get_user(&path).await?)
}

#[utoipa::path(post, path = "/v2/users/human", tag = "organizations, users, tokens", summary = "Add a human user",
    request_body = AddHumanUserBody,
    responses((status = 200, body = AddHumanUserResponse, description = "The user was added"), crate::api::openapi::RestErrors),
    security(("bearer" = [])))]
async fn add_human_user(state: web::Data<AppState>, req: HttpRequest, payload: web::Payload) -> Reply {
    let bytes = body::read(payload).await?;
    let parsed: AddHumanUserBody = body::json(&bytes)?;
    ok(call(&state, &req).add_human_user(parsed).await?)
}

#[utoipa::path(post, path = "/v2/organizations", tag = "organizations, users, tokens", summary = "Add an organization",
    request_body = AddOrganizationBody,
    responses((status = 200, body = AddOrganizationResponse, description = "The organization was added"), crate::api::openapi::RestErrors),
    security(("bearer" = [])))]
async fn add_organization(state: web::Data<AppState>, req: HttpRequest, payload: web::Payload) -> Reply {
    let bytes = body::read(payload).await?;
    let parsed: AddOrganizationBody = body::json(&bytes)?;
    ok(call(&state, &req).add_organization(parsed).await?)
}

#[utoipa::path(get, path = "/v2/organizations/{orgId}", tag = "organizations, users, tokens", summary = "Get an organization",
    params(("orgId" = String, Path, description = "The organization's id")),
    responses((status = 200, body = GetOrganizationResponse, description = "The organization"), crate::api::openapi::RestErrors),
    security(("bearer" = [])))]
async fn get_organization(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> Reply {
    ok(call(&state, &req).get_organization(&path).await?)
}

#[utoipa::path(post, path = "/admin/v1/tokens", tag = "organizations, users, tokens", summary = "Create an API token",
    request_body = CreateTokenBody,
    responses((status = 200, body = CreateTokenResponse, description = "The token (shown once)"), crate::api::openapi::RestErrors),
    security(("bearer" = [])))]
async fn create_token(state: web::Data<AppState>, req: HttpRequest, payload: web::Payload) -> Reply {
    let bytes = body::read(payload).await?;
    let parsed: CreateTokenBody = body::json(&bytes)?;
    ok(call(&state, &req).create_token(parsed).await?)
}

#[utoipa::path(delete, path = "/admin/v1/tokens/{tokenId}", tag = "organizations, users, tokens", summary = "Revoke an API token",
    params(("tokenId" = String, Path, description = "The token's id")),
    responses((status = 200, body = crate::api::openapi::Empty, description = "The token is revoked"), crate::api::openapi::RestErrors),
    security(("bearer" = [])))]
async fn revoke_token(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> Reply {
    call(&state, &req).revoke_token(&path).await?;
    ok(serde_json::json!({}))
}

/// Anything no route matched: the same error body as every other error.
pub async fn not_found() -> Reply {
    Err(Error::not_found(ids::ROUTE_NOT_FOUND, "Not Found").into())
}

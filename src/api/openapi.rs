//! The OpenAPI 3.1 document (docs/API.md §7), generated from the handlers'
//! `#[utoipa::path]` attributes and the DTOs' schemas, served at `/openapi.json`
//! (no token), with a Swagger UI at `/docs` built into the binary (nothing is
//! fetched at run time). `herald openapi` writes it to docs/openapi.json; a test
//! compares the two, so a change to the API shows in review.
//!
//! The Connect paths (§6) are one actix route for every method, so they are
//! described here by hand; the answers that are built as JSON in place (admin) have
//! their shapes here too.

#![allow(dead_code)] // The doc-only types and fns exist for their attributes.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};
use utoipa_swagger_ui::{Config, SwaggerUi};

use super::dto::*;
use super::{admin, rest};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "herald",
        description = "Resends invite codes and delivers them by e-mail and SMS: ZITADEL's invite-code \
                       API (REST and Connect), organizations, users, tokens, bulk re-invites and deliveries. \
                       gRPC and gRPC-web serve the same calls on `grpc.addr` (proto/).",
        license(name = "Apache-2.0")
    ),
    paths(
        rest::create_invite_code,
        rest::resend_invite_code,
        rest::verify_invite_code,
        rest::get_user,
        rest::add_human_user,
        rest::add_organization,
        rest::get_organization,
        rest::create_token,
        rest::revoke_token,
        admin::bulk_resend,
        admin::bulk_status,
        admin::list_deliveries,
        admin::get_delivery,
        admin::replay_one,
        admin::replay_matching,
        connect_create_invite_code,
        connect_resend_invite_code,
        connect_verify_invite_code,
        connect_add_human_user,
        connect_get_user_by_id,
        connect_add_organization,
        super::zitadel::create,
        super::zitadel::list,
        super::zitadel::get,
        super::zitadel::patch,
        super::zitadel::delete,
        super::zitadel::notification,
        super::healthz,
        super::readyz,
        super::metrics,
        openapi_json,
    ),
    // The error bodies are named by reference in every path's responses.
    components(schemas(RestErrorDoc, ErrorDetailDoc, ConnectErrorDoc, ConnectDetailDoc)),
    modifiers(&Bearer),
    tags(
        (name = "invite codes", description = "docs/API.md §2"),
        (name = "organizations, users, tokens", description = "docs/API.md §3"),
        (name = "bulk re-invites", description = "docs/API.md §4"),
        (name = "deliveries", description = "docs/API.md §5"),
        (name = "connect", description = "docs/API.md §6: ZITADEL's Connect paths (JSON; application/proto too)"),
        (name = "service", description = "docs/API.md §7"),
        (name = "zitadel notifications", description = "docs/API.md §8: herald as ZITADEL's HTTP notification provider"),
    )
)]
pub struct ApiDoc;

/// The bearer token every API path takes (docs/API.md §1.3).
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The document, as served and as committed.
pub fn document() -> String {
    ApiDoc::openapi().to_pretty_json().expect("the OpenAPI document serialises") + "\n"
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(openapi_json))
        .route(
            "/docs",
            web::get()
                .to(|| async { HttpResponse::PermanentRedirect().insert_header(("location", "/docs/")).finish() }),
        )
        .service(SwaggerUi::new("/docs/{_:.*}").config(Config::from("/openapi.json")));
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "service", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(document())
}

// ---- error bodies ------------------------------------------------------------------

/// `zitadel.v1.ErrorDetail`, as the REST gateway writes it.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetailDoc {
    #[serde(rename = "@type")]
    #[schema(example = "type.googleapis.com/zitadel.v1.ErrorDetail")]
    pub type_url: String,
    #[schema(example = "COMMAND-Wr3gq")]
    pub id: String,
    pub message: String,
}

/// An error (google.rpc.Status, docs/API.md §1.2).
#[derive(Serialize, ToSchema)]
#[schema(as = RestError)]
pub struct RestErrorDoc {
    /// The gRPC code.
    #[schema(example = 9)]
    pub code: i32,
    #[schema(example = "Code not found (COMMAND-Wr3gq)")]
    pub message: String,
    pub details: Vec<ErrorDetailDoc>,
}

/// Connect's error detail (docs/API.md §6).
#[derive(Serialize, ToSchema)]
pub struct ConnectDetailDoc {
    #[serde(rename = "type")]
    pub type_name: String,
    /// base64 of the protobuf `ErrorDetail`.
    pub value: String,
    pub debug: Option<serde_json::Value>,
}

/// A Connect error body.
#[derive(Serialize, ToSchema)]
#[schema(as = ConnectError)]
pub struct ConnectErrorDoc {
    #[schema(example = "failed_precondition")]
    pub code: String,
    pub message: String,
    pub details: Option<Vec<ConnectDetailDoc>>,
}

/// The errors a REST or admin path can answer (docs/API.md §1.2).
#[derive(IntoResponses)]
pub enum RestErrors {
    #[response(status = 400, description = "InvalidArgument (code 3) or FailedPrecondition (code 9)")]
    BadRequest(RestErrorDoc),
    #[response(status = 401, description = "Unauthenticated: no or a bad token")]
    Unauthenticated(RestErrorDoc),
    #[response(status = 403, description = "PermissionDenied")]
    Forbidden(RestErrorDoc),
    #[response(status = 404, description = "NotFound")]
    NotFound(RestErrorDoc),
    #[response(status = 409, description = "AlreadyExists")]
    Conflict(RestErrorDoc),
    #[response(status = 413, description = "The body is over the limit (API-bodysize)")]
    TooLarge(RestErrorDoc),
    #[response(status = 429, description = "ResourceExhausted", headers(("Retry-After" = String, description = "Seconds to wait")))]
    TooMany(RestErrorDoc),
    #[response(status = 500, description = "Internal (no internals in the body)")]
    Internal(RestErrorDoc),
    #[response(status = 503, description = "Unavailable: the database or the broker is down")]
    Unavailable(RestErrorDoc),
}

/// The errors of a Connect path (the same statuses, Connect's body).
#[derive(IntoResponses)]
pub enum ConnectErrors {
    #[response(status = 400, description = "invalid_argument or failed_precondition")]
    BadRequest(ConnectErrorDoc),
    #[response(status = 401, description = "unauthenticated")]
    Unauthenticated(ConnectErrorDoc),
    #[response(status = 403, description = "permission_denied")]
    Forbidden(ConnectErrorDoc),
    #[response(status = 404, description = "not_found")]
    NotFound(ConnectErrorDoc),
    #[response(status = 409, description = "already_exists")]
    Conflict(ConnectErrorDoc),
    #[response(status = 413, description = "The body is over the limit")]
    TooLarge(ConnectErrorDoc),
    #[response(status = 415, description = "Neither application/json nor application/proto")]
    Unsupported,
    #[response(status = 429, description = "resource_exhausted", headers(("Retry-After" = String, description = "Seconds to wait")))]
    TooMany(ConnectErrorDoc),
    #[response(status = 500, description = "internal")]
    Internal(ConnectErrorDoc),
    #[response(status = 503, description = "unavailable")]
    Unavailable(ConnectErrorDoc),
}

// ---- answers built in place ----------------------------------------------------------

/// `{}`: the token is revoked.
#[derive(Serialize, ToSchema)]
pub struct Empty {}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkAccepted {
    pub job_id: String,
    pub total: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryList {
    pub deliveries: Vec<admin::DeliveryDto>,
    /// Present when there are more: pass it as `cursor`.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptDoc {
    pub attempt: i32,
    pub at: String,
    /// sent, transient or permanent.
    pub outcome: String,
    pub error: Option<String>,
    pub duration_ms: i32,
}

/// A delivery with its attempts (in place of the listing's count).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDetail {
    pub id: String,
    pub user_id: String,
    pub org_id: String,
    pub channel: String,
    pub recipient: String,
    pub template: String,
    pub status: String,
    pub attempts: Vec<AttemptDoc>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub sent_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayOutcomeDoc {
    /// requeued or reissued.
    pub outcome: String,
    pub delivery_id: Option<String>,
    pub replaced_delivery_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ReplayReport {
    pub matched: i64,
    pub replayed: i64,
    pub skipped: BTreeMap<String, i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ProviderList {
    pub providers: Vec<super::zitadel::ProviderDto>,
}

/// ZITADEL's message (docs/API.md §8.2); unknown fields are ignored.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZitadelMessage {
    /// `eventType`, `recipientEmailAddress` or `recipientPhoneNumber`, …
    pub context_info: Option<serde_json::Value>,
    /// `subject`, `greeting`, `text`, `url`, `buttonText`, …
    pub template_data: Option<serde_json::Value>,
    /// `userID`, `code`, `changeDate`, …
    pub args: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryAccepted {
    pub delivery_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    /// ok or down.
    pub database: String,
    /// ok or down.
    pub broker: String,
}

#[derive(Serialize, ToSchema)]
pub struct Alive {
    pub status: String,
}

// ---- the Connect paths (docs/API.md §6) -------------------------------------------------

#[utoipa::path(post, path = "/zitadel.user.v2.UserService/CreateInviteCode", tag = "connect",
    request_body = CreateInviteCodeBody,
    responses((status = 200, body = CreateInviteCodeResponse, description = "As §2.1"), ConnectErrors),
    security(("bearer" = [])))]
fn connect_create_invite_code() {}

#[utoipa::path(post, path = "/zitadel.user.v2.UserService/ResendInviteCode", tag = "connect",
    request_body = UserIdBody,
    responses((status = 200, body = DetailsOnly, description = "As §2.2"), ConnectErrors),
    security(("bearer" = [])))]
fn connect_resend_invite_code() {}

#[utoipa::path(post, path = "/zitadel.user.v2.UserService/VerifyInviteCode", tag = "connect",
    request_body = VerifyInviteCodeBody,
    responses((status = 200, body = DetailsOnly, description = "As §2.3"), ConnectErrors),
    security(("bearer" = [])))]
fn connect_verify_invite_code() {}

#[utoipa::path(post, path = "/zitadel.user.v2.UserService/AddHumanUser", tag = "connect",
    request_body = AddHumanUserBody,
    responses((status = 200, body = AddHumanUserResponse, description = "As POST /v2/users/human"), ConnectErrors),
    security(("bearer" = [])))]
fn connect_add_human_user() {}

#[utoipa::path(post, path = "/zitadel.user.v2.UserService/GetUserByID", tag = "connect",
    request_body = UserIdBody,
    responses((status = 200, body = GetUserResponse, description = "As GET /v2/users/{userId}"), ConnectErrors),
    security(("bearer" = [])))]
fn connect_get_user_by_id() {}

#[utoipa::path(post, path = "/zitadel.org.v2.OrganizationService/AddOrganization", tag = "connect",
    request_body = AddOrganizationBody,
    responses((status = 200, body = AddOrganizationResponse, description = "As POST /v2/organizations"), ConnectErrors),
    security(("bearer" = [])))]
fn connect_add_organization() {}

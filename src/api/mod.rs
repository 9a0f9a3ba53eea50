//! actix-web: routes, the auth header, the error mapping, both framings.
//!
//! Handlers are thin: read the body, call an operation in [`ops`], serialise.
//! Everything a rule decides lives in `invite`, `directory` and `auth`.

pub mod body;
pub mod connect;
pub mod dto;
pub mod error;
pub mod ops;
pub mod request_id;
pub mod rest;

use actix_web::{web, HttpResponse};
use sqlx::PgPool;

use crate::auth::Authenticator;
use crate::directory::Directory;
use crate::invite::InviteService;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub auth: Authenticator,
    pub directory: Directory,
    pub invites: InviteService,
    pub pool: PgPool,
}

/// Mounts every route on an actix-web `App`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz));
    rest::routes(cfg);
    connect::routes(cfg);
}

/// 200 while the process serves; says nothing of its dependencies (`/readyz` does).
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

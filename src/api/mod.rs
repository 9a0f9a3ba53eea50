//! actix-web: routes, the auth header, the error mapping, both framings.
//!
//! Handlers are thin: read the body, make a [`call::Call`], serialise.
//! Everything a rule decides lives in `invite`, `directory` and `auth`.

pub mod admin;
pub mod body;
pub mod call;
pub mod connect;
pub mod dto;
pub mod error;
pub mod openapi;
pub mod request_id;
pub mod rest;
pub mod zitadel;

use actix_web::{web, HttpResponse};
use sqlx::PgPool;

use crate::auth::Authenticator;
use crate::directory::Directory;
use crate::invite::InviteService;
use crate::metrics::Metrics;
use crate::ops::{BulkService, ReplayService};
use crate::queue::link::LinkHandle;
use crate::queue::BrokerState;

/// What every handler can reach. The resends' [`crate::invite::Grouped`] is app
/// data of its own, one per actix-web worker (built in `startup`): its batching
/// task lives on that worker's thread.
#[derive(Clone)]
pub struct AppState {
    pub auth: Authenticator,
    pub directory: Directory,
    pub invites: InviteService,
    pub bulk: BulkService,
    pub replay: ReplayService,
    pub pool: PgPool,
    /// The broker link, for `/readyz`.
    pub link: Option<LinkHandle>,
    pub metrics: Metrics,
}

/// Mounts every route on an actix-web `App`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
    rest::routes(cfg);
    admin::routes(cfg);
    connect::routes(cfg);
    openapi::routes(cfg);
    zitadel::routes(cfg);
}

/// The probes alone, for a process without the api role: an orchestrator checks a
/// worker the same way (docs/ARCHITECTURE.md, "Scaling out").
pub fn configure_health(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz)).route("/readyz", web::get().to(readyz));
}

/// 200 while the process serves; says nothing of its dependencies (`/readyz` does).
#[utoipa::path(get, path = "/healthz", tag = "service", security(()),
    responses((status = 200, body = openapi::Alive, description = "The process serves")))]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// 200 when the database and the broker answer; else 503 saying which is not.
///
/// The broker may also be `blocked` (a memory or disk alarm): resends are still
/// accepted then, and published once it clears.
#[utoipa::path(get, path = "/readyz", tag = "service", security(()),
    responses((status = 200, body = openapi::Ready, description = "The database and the broker answer"),
              (status = 503, body = openapi::Ready, description = "Which of them is down, or that the broker blocks publishing")))]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = crate::store::ping(&state.pool).await;
    let broker = state.link.as_ref().map_or(BrokerState::Down, |l| l.state());
    let body = serde_json::json!({
        "database": if database { "ok" } else { "down" },
        "broker": broker.as_str(),
    });
    if database && broker == BrokerState::Up {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus text exposition. The gauges counted in the database are served from
/// the value last read, read again at most every `metrics::GAUGE_REFRESH`: a scrape
/// is not a `count(*)` (a scraper must not be able to load the database).
#[utoipa::path(get, path = "/metrics", tag = "service", security(()),
    summary = "Prometheus metrics", description = "Prometheus text exposition (docs/API.md §7).",
    responses((status = 200, body = String, content_type = "text/plain", description = "Prometheus text exposition")))]
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    if state.metrics.gauges_due() {
        if let Ok(n) = crate::store::deliveries::outbox_backlog(&state.pool).await {
            state.metrics.set_outbox_backlog(n);
        }
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render())
}

//! herald as ZITADEL's notification provider (API.md §8): the providers' admin
//! endpoints and the endpoint ZITADEL posts each message to.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::dto::timestamp;
use super::error::RestError;
use super::{body, request_id, AppState};
use crate::auth::Principal;
use crate::domain::{has_control, ids, Channel, Error};
use crate::zitadel::{
    notification_path, signature, GroupedReceiver, NewProvider, Provider, ProviderPatch, ProviderService,
};

type Reply = Result<HttpResponse, RestError>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/v1/zitadel/providers", web::post().to(create))
        .route("/admin/v1/zitadel/providers", web::get().to(list))
        .route("/admin/v1/zitadel/providers/{id}", web::get().to(get))
        .route("/admin/v1/zitadel/providers/{id}", web::patch().to(patch))
        .route("/admin/v1/zitadel/providers/{id}", web::delete().to(delete))
        .route("/zitadel/v1/notifications/{providerId}", web::post().to(notification));
}

/// A provider id from a path: one with a control character names no provider
/// (docs/API.md §1), and is answered as an unknown one rather than handed to
/// PostgreSQL, which refuses a NUL.
fn provider_id(raw: &str) -> Result<&str, Error> {
    if has_control(raw) {
        return Err(Error::not_found(ids::PROVIDER_NOT_FOUND, "Provider not found"));
    }
    Ok(raw)
}

async fn caller(state: &AppState, req: &HttpRequest) -> Result<Principal, Error> {
    let auth = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    state.auth.authenticate(auth).await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    #[serde(alias = "org_id")]
    org_id: Option<String>,
    channel: Option<Channel>,
    #[serde(default, alias = "signing_keys")]
    signing_keys: Vec<String>,
    #[serde(alias = "require_signature")]
    require_signature: Option<bool>,
    #[serde(default)]
    description: String,
    #[serde(default, alias = "use_herald_invite_template")]
    use_herald_invite_template: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PatchBody {
    #[serde(alias = "signing_keys")]
    signing_keys: Option<Vec<String>>,
    #[serde(alias = "require_signature")]
    require_signature: Option<bool>,
    description: Option<String>,
    #[serde(alias = "use_herald_invite_template")]
    use_herald_invite_template: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProviderDto {
    provider_id: String,
    org_id: String,
    channel: Channel,
    path: String,
    require_signature: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    use_herald_invite_template: bool,
    /// How many signing keys are stored (the keys themselves never leave herald).
    signing_keys: usize,
    created_at: String,
    updated_at: String,
}

impl From<Provider> for ProviderDto {
    fn from(p: Provider) -> Self {
        ProviderDto {
            path: notification_path(&p.id),
            provider_id: p.id,
            org_id: p.org_id,
            channel: p.channel,
            require_signature: p.require_signature,
            description: p.description,
            use_herald_invite_template: p.use_herald_invite_template,
            signing_keys: p.key_count,
            created_at: timestamp(p.created_at),
            updated_at: timestamp(p.updated_at),
        }
    }
}

async fn create(
    state: web::Data<AppState>,
    providers: web::Data<ProviderService>,
    req: HttpRequest,
    payload: web::Payload,
) -> Reply {
    let bytes = body::read(payload).await?;
    let caller = caller(&state, &req).await?;
    let b: CreateBody = body::json(&bytes)?;
    let channel = b.channel.ok_or_else(|| Error::invalid(ids::VALIDATION, "channel is required (email or sms)"))?;
    let new = NewProvider {
        org_id: b.org_id,
        channel,
        signing_keys: b.signing_keys,
        require_signature: b.require_signature.unwrap_or(true),
        description: b.description,
        use_herald_invite_template: b.use_herald_invite_template,
    };
    let p = providers.create(&caller, new).await?;
    Ok(HttpResponse::Created().json(ProviderDto::from(p)))
}

async fn list(
    state: web::Data<AppState>,
    providers: web::Data<ProviderService>,
    req: HttpRequest,
    query: web::Query<std::collections::HashMap<String, String>>,
) -> Reply {
    let caller = caller(&state, &req).await?;
    let org = query.get("orgId").filter(|o| !o.is_empty()).cloned();
    let all = providers.list(&caller, org).await?;
    let dtos: Vec<ProviderDto> = all.into_iter().map(ProviderDto::from).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "providers": dtos })))
}

async fn get(
    state: web::Data<AppState>,
    providers: web::Data<ProviderService>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Reply {
    let caller = caller(&state, &req).await?;
    Ok(HttpResponse::Ok().json(ProviderDto::from(providers.get(&caller, provider_id(&path)?).await?)))
}

async fn patch(
    state: web::Data<AppState>,
    providers: web::Data<ProviderService>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Reply {
    let bytes = body::read(payload).await?;
    let caller = caller(&state, &req).await?;
    let b: PatchBody = body::json(&bytes)?;
    let change = ProviderPatch {
        signing_keys: b.signing_keys,
        require_signature: b.require_signature,
        description: b.description,
        use_herald_invite_template: b.use_herald_invite_template,
    };
    Ok(HttpResponse::Ok().json(ProviderDto::from(providers.patch(&caller, provider_id(&path)?, change).await?)))
}

async fn delete(
    state: web::Data<AppState>,
    providers: web::Data<ProviderService>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Reply {
    let caller = caller(&state, &req).await?;
    providers.delete(&caller, provider_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({})))
}

/// What ZITADEL posts to. The signature is checked over the bytes exactly as they
/// arrived, before any parsing; the answer comes after the commit, so a 202 means
/// the message and its delivery are stored (ZITADEL gives up on a post after 5 s
/// and retries it: a slow answer costs a duplicate post, which the dedupe key
/// absorbs).
async fn notification(
    receiver: web::Data<GroupedReceiver>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Reply {
    let bytes = body::read(payload).await?;
    let sig = req.headers().get(signature::HEADER).map(|v| v.to_str().unwrap_or("\u{0}"));
    let accepted = receiver.receive(provider_id(&path)?, sig, &bytes, request_id::of(&req)).await?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "deliveryId": accepted.delivery_id.to_string() })))
}

//! The operators' endpoints: bulk re-invites (API.md §4) and deliveries (§5).

use std::collections::{BTreeMap, HashMap};

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::dto::timestamp;
use super::error::RestError;
use super::{body, AppState};
use crate::auth::Principal;
use crate::domain::contact::{mask_email, mask_phone};
use crate::domain::{has_control, ids, no_control, Channel, DeliveryStatus, Error};
use crate::ops::{ReplayOutcome, Selection};
use crate::store::deliveries::{AttemptRow, DeliveryFilter, DeliveryRow};

type Reply = Result<HttpResponse, RestError>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/v1/bulk/resend", web::post().to(bulk_resend))
        .route("/admin/v1/bulk/{jobId}", web::get().to(bulk_status))
        .route("/admin/v1/deliveries", web::get().to(list_deliveries))
        .route("/admin/v1/deliveries/replay", web::post().to(replay_matching))
        .route("/admin/v1/deliveries/{id}", web::get().to(get_delivery))
        .route("/admin/v1/deliveries/{id}/replay", web::post().to(replay_one));
}

async fn caller(state: &AppState, req: &HttpRequest) -> Result<Principal, Error> {
    let auth = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    state.auth.authenticate(auth).await
}

// ---- bulk ------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BulkResendBody {
    #[serde(alias = "org_id")]
    org_id: Option<String>,
    #[serde(alias = "user_ids")]
    user_ids: Option<Vec<String>>,
    #[serde(alias = "all_pending")]
    all_pending: Option<bool>,
}

/// Room for 10,000 ids (API.md §4) of up to 40 characters: the general 64 KiB
/// limit of API.md §1 holds about 3,000 of herald's 18-digit ids.
const BULK_BODY_LIMIT: usize = 512 * 1024;

async fn bulk_resend(state: web::Data<AppState>, req: HttpRequest, payload: web::Payload) -> Reply {
    let bytes = body::read_limited(payload, BULK_BODY_LIMIT).await?;
    let caller = caller(&state, &req).await?;
    let b: BulkResendBody = body::json(&bytes)?;
    let org = b.org_id.filter(|o| !o.is_empty()).ok_or_else(|| Error::invalid(ids::VALIDATION, "orgId is required"))?;
    let selection = match (b.user_ids, b.all_pending.unwrap_or(false)) {
        (Some(list), false) => Selection::Ids(list),
        (None, true) => Selection::AllPending,
        _ => return Err(Error::invalid(ids::VALIDATION, "give either userIds or allPending: true").into()),
    };
    let (job_id, total) = state.bulk.create_job(&caller, &org, selection).await?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({"jobId": job_id, "total": total})))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JobDto {
    job_id: String,
    org_id: String,
    total: i64,
    done: i64,
    succeeded: i64,
    failed: BTreeMap<String, i64>,
    /// herald's addition: the job's deliveries by status.
    deliveries: BTreeMap<String, i64>,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
}

async fn bulk_status(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> Reply {
    let caller = caller(&state, &req).await?;
    if has_control(&path) {
        // No job has such an id (docs/API.md §1): the answer for an unknown one.
        return Err(Error::not_found(ids::BULK_NOT_FOUND, "Bulk job not found").into());
    }
    let s = state.bulk.status(&caller, &path).await?;
    Ok(HttpResponse::Ok().json(JobDto {
        job_id: s.job_id,
        org_id: s.org_id,
        total: s.total,
        done: s.done,
        succeeded: s.succeeded,
        failed: s.failed,
        deliveries: s.deliveries,
        created_at: timestamp(s.created_at),
        finished_at: s.finished_at.map(timestamp),
    }))
}

// ---- deliveries ------------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDto {
    id: String,
    /// Absent for a ZITADEL delivery (`source: zitadel`, `template`: the event type).
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    source: String,
    org_id: String,
    channel: String,
    recipient: String,
    template: String,
    status: String,
    attempts: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    created_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sent_at: Option<String>,
}

impl From<DeliveryRow> for DeliveryDto {
    fn from(d: DeliveryRow) -> Self {
        let recipient = match Channel::from_db(&d.channel) {
            Some(Channel::Sms) => mask_phone(&d.recipient),
            _ => mask_email(&d.recipient),
        };
        DeliveryDto {
            id: d.id.to_string(),
            user_id: d.user_id,
            source: d.source,
            org_id: d.org_id,
            channel: d.channel,
            recipient,
            template: d.template,
            status: d.status,
            attempts: d.attempts,
            last_error: d.last_error,
            created_at: timestamp(d.created_at),
            updated_at: timestamp(d.updated_at),
            sent_at: d.sent_at.map(timestamp),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AttemptDto {
    attempt: i32,
    at: String,
    outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    duration_ms: i32,
}

impl From<AttemptRow> for AttemptDto {
    fn from(a: AttemptRow) -> Self {
        AttemptDto {
            attempt: a.attempt,
            at: timestamp(a.started_at),
            outcome: a.outcome,
            error: a.error,
            duration_ms: a.duration_ms,
        }
    }
}

fn time(name: &str, v: Option<&String>) -> Result<Option<DateTime<Utc>>, Error> {
    v.map(|s| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| Error::invalid(ids::VALIDATION, format!("{name} is not an RFC 3339 time: {e}")))
    })
    .transpose()
}

/// The `status` filter, one of the statuses of docs/ARCHITECTURE.md ("The way a
/// resend travels"); an unknown word is a 400 that lists them.
fn status(v: Option<&String>) -> Result<Option<DeliveryStatus>, Error> {
    v.map(|s| {
        s.parse::<DeliveryStatus>().map_err(|_| {
            let known: Vec<&str> = DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect();
            Error::invalid(ids::VALIDATION, format!("status {s:?} is not one of {}", known.join(", ")))
        })
    })
    .transpose()
}

fn channel(v: Option<String>) -> Result<Option<Channel>, Error> {
    v.map(|c| {
        Channel::from_db(&c).ok_or_else(|| {
            let (email, sms) = (Channel::Email.as_str(), Channel::Sms.as_str());
            Error::invalid(ids::VALIDATION, format!("channel {c:?} is not {email} or {sms}"))
        })
    })
    .transpose()
}

/// The query string as names and values. Read by hand rather than by actix's
/// `Query` extractor, whose refusals (bytes that are not UTF-8) answer in another
/// body shape: here they become U+FFFD and the filter simply matches nothing.
fn query_of(req: &HttpRequest) -> HashMap<String, String> {
    url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect()
}

/// A filter value as the store may bind it (docs/API.md §1: no control characters).
fn filter_text(name: &str, v: Option<&String>) -> Result<Option<String>, Error> {
    v.map(|s| no_control(name, s).map(|()| s.clone())).transpose()
}

async fn list_deliveries(state: web::Data<AppState>, req: HttpRequest) -> Reply {
    let caller = caller(&state, &req).await?;
    let q = query_of(&req);
    // The store's filter still holds the words; they are parsed here so that an
    // unknown one is refused, not silently matched by nothing.
    let filter = DeliveryFilter {
        status: status(q.get("status"))?.map(|s| s.as_str().to_string()),
        org_id: filter_text("orgId", q.get("orgId"))?,
        user_id: filter_text("userId", q.get("userId"))?,
        channel: channel(q.get("channel").cloned())?.map(|c| c.as_str().to_string()),
        since: time("since", q.get("since"))?,
        until: time("until", q.get("until"))?,
        error_contains: None,
    };
    let limit = match q.get("limit") {
        None => 50,
        Some(l) => l.parse::<i64>().map_err(|_| Error::invalid(ids::VALIDATION, "limit is not a number"))?,
    };
    let cursor = match q.get("cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => {
            Some(c.parse::<i64>().map_err(|_| Error::invalid(ids::VALIDATION, "cursor is not one herald gave"))?)
        }
    };
    let (rows, next) = state.replay.list(&caller, filter, limit, cursor).await?;
    let mut body = serde_json::json!({"deliveries": rows.into_iter().map(DeliveryDto::from).collect::<Vec<_>>()});
    if let Some(n) = next {
        body["nextCursor"] = serde_json::json!(n.to_string());
    }
    Ok(HttpResponse::Ok().json(body))
}

fn delivery_id(raw: &str) -> Result<i64, Error> {
    raw.parse().map_err(|_| Error::not_found(ids::DELIVERY_NOT_FOUND, "Delivery not found"))
}

async fn get_delivery(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> Reply {
    let caller = caller(&state, &req).await?;
    let (row, attempts) = state.replay.get(&caller, delivery_id(&path)?).await?;
    let mut body = serde_json::to_value(DeliveryDto::from(row)).map_err(Error::internal)?;
    body["attempts"] = serde_json::json!(attempts.into_iter().map(AttemptDto::from).collect::<Vec<_>>());
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Debug, Default, Deserialize)]
struct ReplayOneBody {
    reissue: Option<bool>,
}

async fn replay_one(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Reply {
    let bytes = body::read(payload).await?;
    let caller = caller(&state, &req).await?;
    let b: ReplayOneBody = body::json(&bytes)?;
    let id = delivery_id(&path)?;
    let outcome = state.replay.replay_one(&caller, id, b.reissue.unwrap_or(false)).await?;
    let body = match outcome {
        ReplayOutcome::Requeued => serde_json::json!({"outcome": "requeued", "deliveryId": id.to_string()}),
        ReplayOutcome::Reissued { delivery_id } => serde_json::json!({
            "outcome": "reissued",
            "deliveryId": delivery_id.map(|d| d.to_string()),
            "replacedDeliveryId": id.to_string(),
        }),
    };
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReplayFilterDto {
    #[serde(alias = "org_id")]
    org_id: Option<String>,
    channel: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    #[serde(alias = "error_contains")]
    error_contains: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReplayManyBody {
    filter: Option<ReplayFilterDto>,
    #[serde(alias = "dry_run")]
    dry_run: Option<bool>,
    reissue: Option<bool>,
}

async fn replay_matching(state: web::Data<AppState>, req: HttpRequest, payload: web::Payload) -> Reply {
    let bytes = body::read(payload).await?;
    let caller = caller(&state, &req).await?;
    let b: ReplayManyBody = body::json(&bytes)?;
    let f = b.filter.unwrap_or_default();
    let filter = DeliveryFilter {
        status: Some(DeliveryStatus::Dead.as_str().into()),
        org_id: f.org_id,
        user_id: None,
        channel: channel(f.channel)?.map(|c| c.as_str().to_string()),
        since: f.since,
        until: f.until,
        error_contains: f.error_contains.filter(|e| !e.is_empty()),
    };
    let report =
        state.replay.replay_matching(&caller, filter, b.dry_run.unwrap_or(false), b.reissue.unwrap_or(false)).await?;
    let mut skipped = report.skipped;
    skipped.entry("stale".into()).or_insert(0);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "matched": report.matched,
        "replayed": report.replayed,
        "skipped": skipped,
    })))
}

//! The tonic services: metadata → [`Call`], message → DTO, DTO → message.

use std::sync::Arc;

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status};

use super::pb::zitadel::org::v2 as org;
use super::pb::zitadel::user::v2 as user;
use super::{convert, status};
use crate::api::call::Call;
use crate::api::AppState;
use crate::invite::Grouped;

/// `zitadel.user.v2.UserService`.
#[derive(Clone)]
pub struct Users {
    state: Arc<AppState>,
    /// The gRPC listener's own group of resends (docs/ARCHITECTURE.md, "Actors").
    resends: Arc<Grouped>,
}

/// `zitadel.org.v2.OrganizationService`.
#[derive(Clone)]
pub struct Organizations(pub Users);

impl Users {
    pub fn new(state: AppState, resends: Grouped) -> Self {
        Users { state: Arc::new(state), resends: Arc::new(resends) }
    }
}

/// The caller's id when it is short printable ASCII, as over HTTP.
fn request_id(meta: &MetadataMap) -> String {
    meta.get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()))
}

fn call<'a>(state: &'a AppState, meta: &'a MetadataMap) -> Call<'a> {
    Call {
        state,
        authorization: meta.get("authorization").and_then(|v| v.to_str().ok()),
        request_id: Some(request_id(meta)),
    }
}

type Answer<T> = Result<Response<T>, Status>;

/// Runs one call under a span that carries its request id, as HTTP requests do
/// (so every log line of the call can be found by the id the caller saw).
async fn traced<T>(call: &Call<'_>, method: &'static str, work: impl std::future::Future<Output = T>) -> T {
    use tracing::Instrument;
    let id = call.request_id.as_deref().unwrap_or_default();
    work.instrument(tracing::info_span!("grpc", request_id = %id, method)).await
}

/// The answer, or the error as a status; `x-request-id` in the metadata of both.
fn answer<T, U>(call: &Call<'_>, r: Result<T, crate::domain::Error>, f: impl FnOnce(T) -> U) -> Answer<U> {
    let id = call.request_id.as_deref().and_then(|id| MetadataValue::try_from(id).ok());
    match r {
        Ok(v) => {
            let mut response = Response::new(f(v));
            if let Some(id) = id {
                response.metadata_mut().insert("x-request-id", id);
            }
            Ok(response)
        }
        Err(e) => {
            let mut status = status::of(e);
            if let Some(id) = id {
                status.metadata_mut().insert("x-request-id", id);
            }
            Err(status)
        }
    }
}

#[tonic::async_trait]
impl user::user_service_server::UserService for Users {
    async fn add_human_user(&self, request: Request<user::AddHumanUserRequest>) -> Answer<user::AddHumanUserResponse> {
        let (meta, _, m) = request.into_parts();
        let call = call(&self.state, &meta);
        let r = traced(&call, "AddHumanUser", call.add_human_user(convert::add_human_user(m))).await;
        answer(&call, r, convert::human_added)
    }

    async fn get_user_by_id(&self, request: Request<user::GetUserByIdRequest>) -> Answer<user::GetUserByIdResponse> {
        let (meta, _, m) = request.into_parts();
        let call = call(&self.state, &meta);
        let r = traced(&call, "GetUserByID", call.get_user(&m.user_id)).await;
        answer(&call, r, convert::user)
    }

    async fn create_invite_code(
        &self,
        request: Request<user::CreateInviteCodeRequest>,
    ) -> Answer<user::CreateInviteCodeResponse> {
        let (meta, _, m) = request.into_parts();
        let (user_id, body) = convert::create_invite_code(m);
        let call = call(&self.state, &meta);
        let r = traced(&call, "CreateInviteCode", call.create_invite_code(&user_id, body)).await;
        answer(&call, r, convert::created)
    }

    async fn resend_invite_code(
        &self,
        request: Request<user::ResendInviteCodeRequest>,
    ) -> Answer<user::ResendInviteCodeResponse> {
        let (meta, _, m) = request.into_parts();
        let call = call(&self.state, &meta);
        let r = traced(&call, "ResendInviteCode", call.resend_invite_code(&self.resends, &m.user_id)).await;
        answer(&call, r, convert::resent)
    }

    async fn verify_invite_code(
        &self,
        request: Request<user::VerifyInviteCodeRequest>,
    ) -> Answer<user::VerifyInviteCodeResponse> {
        let (meta, _, m) = request.into_parts();
        let code = Some(m.verification_code);
        let call = call(&self.state, &meta);
        let r = traced(&call, "VerifyInviteCode", call.verify_invite_code(&m.user_id, code)).await;
        answer(&call, r, convert::verified)
    }
}

#[tonic::async_trait]
impl org::organization_service_server::OrganizationService for Organizations {
    async fn add_organization(
        &self,
        request: Request<org::AddOrganizationRequest>,
    ) -> Answer<org::AddOrganizationResponse> {
        let (meta, _, m) = request.into_parts();
        let users = &self.0;
        let call = call(&users.state, &meta);
        let r = traced(&call, "AddOrganization", call.add_organization(convert::add_organization(m))).await;
        answer(&call, r, convert::organization_added)
    }
}

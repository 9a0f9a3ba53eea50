//! The tonic services: metadata → [`Call`], message → DTO, DTO → message.

use std::sync::Arc;

use tonic::metadata::MetadataMap;
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

fn answer<T, U>(r: Result<T, crate::domain::Error>, f: impl FnOnce(T) -> U) -> Answer<U> {
    r.map(|v| Response::new(f(v))).map_err(status::of)
}

#[tonic::async_trait]
impl user::user_service_server::UserService for Users {
    async fn add_human_user(&self, request: Request<user::AddHumanUserRequest>) -> Answer<user::AddHumanUserResponse> {
        let (meta, _, m) = request.into_parts();
        answer(call(&self.state, &meta).add_human_user(convert::add_human_user(m)).await, convert::human_added)
    }

    async fn get_user_by_id(&self, request: Request<user::GetUserByIdRequest>) -> Answer<user::GetUserByIdResponse> {
        let (meta, _, m) = request.into_parts();
        answer(call(&self.state, &meta).get_user(&m.user_id).await, convert::user)
    }

    async fn create_invite_code(
        &self,
        request: Request<user::CreateInviteCodeRequest>,
    ) -> Answer<user::CreateInviteCodeResponse> {
        let (meta, _, m) = request.into_parts();
        let (user_id, body) = convert::create_invite_code(m);
        answer(call(&self.state, &meta).create_invite_code(&user_id, body).await, convert::created)
    }

    async fn resend_invite_code(
        &self,
        request: Request<user::ResendInviteCodeRequest>,
    ) -> Answer<user::ResendInviteCodeResponse> {
        let (meta, _, m) = request.into_parts();
        answer(call(&self.state, &meta).resend_invite_code(&self.resends, &m.user_id).await, convert::resent)
    }

    async fn verify_invite_code(
        &self,
        request: Request<user::VerifyInviteCodeRequest>,
    ) -> Answer<user::VerifyInviteCodeResponse> {
        let (meta, _, m) = request.into_parts();
        let code = Some(m.verification_code);
        answer(call(&self.state, &meta).verify_invite_code(&m.user_id, code).await, convert::verified)
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
        answer(
            call(&users.state, &meta).add_organization(convert::add_organization(m)).await,
            convert::organization_added,
        )
    }
}

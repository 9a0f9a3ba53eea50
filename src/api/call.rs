//! One API call, whatever its framing: the operations REST and Connect both serve,
//! as methods of [`Call`]. Each takes the raw `Authorization` header so that it can
//! authenticate at the step API.md orders: for the invite endpoints the user id is
//! checked before the token.

use crate::auth::TokenRequest;
use crate::directory::{NewHuman, NewOrganization};
use crate::domain::{has_control, ids, parse_user_id, Error};
use crate::invite::{CreateRequest, Grouped, IssueContext, ResendRequest, SendCode};

use super::dto::*;
use super::AppState;

/// A call as both framings see it: the state it may reach, the caller's header and
/// its request id.
pub struct Call<'a> {
    pub state: &'a AppState,
    pub authorization: Option<&'a str>,
    pub request_id: Option<String>,
}

impl Call<'_> {
    fn context(&self) -> IssueContext {
        IssueContext { request_id: self.request_id.clone(), ..Default::default() }
    }

    pub async fn create_invite_code(
        &self,
        user_id: &str,
        body: CreateInviteCodeBody,
    ) -> Result<CreateInviteCodeResponse, Error> {
        parse_user_id(user_id)?;
        let caller = self.state.auth.authenticate(self.authorization).await?;
        let req = CreateRequest {
            send_code: body.send_code.map(|s| SendCode {
                url_template: s.url_template,
                application_name: s.application_name,
                channel: s.channel,
            }),
            return_code: body.return_code.is_some(),
        };
        let issued = self.state.invites.create(&caller, user_id, req, &self.context()).await?;
        Ok(CreateInviteCodeResponse {
            details: (&issued.details).into(),
            invite_code: issued.code.map(|c| c.expose().to_string()),
        })
    }

    /// A resend in either framing: checks 1 and 2 of docs/API.md §2 here, in their
    /// order, the others in the transaction it shares with the resends that arrive on
    /// this actix-web worker meanwhile (`resends`, one per worker; docs/ARCHITECTURE.md,
    /// "Actors"). The answer is this request's own.
    pub async fn resend_invite_code(&self, resends: &Grouped, user_id: &str) -> Result<DetailsOnly, Error> {
        parse_user_id(user_id)?;
        let caller = self.state.auth.authenticate(self.authorization).await?;
        let issued =
            resends.resend(ResendRequest { caller, user_id: user_id.to_string(), ctx: self.context() }).await?;
        Ok(DetailsOnly { details: (&issued.details).into() })
    }

    pub async fn verify_invite_code(&self, user_id: &str, code: Option<String>) -> Result<DetailsOnly, Error> {
        parse_user_id(user_id)?;
        let caller = self.state.auth.authenticate(self.authorization).await?;
        let details = self.state.invites.verify(&caller, user_id, code.as_deref().unwrap_or("")).await?;
        Ok(DetailsOnly { details: (&details).into() })
    }

    pub async fn add_organization(&self, body: AddOrganizationBody) -> Result<AddOrganizationResponse, Error> {
        let caller = self.state.auth.authenticate(self.authorization).await?;
        let req = NewOrganization {
            name: body.name.unwrap_or_default(),
            default_language: body.default_language,
            login_methods: body.login_methods,
        };
        let (id, details) = self.state.directory.create_organization(&caller, req).await?;
        Ok(AddOrganizationResponse { details: (&details).into(), organization_id: id })
    }

    pub async fn get_organization(&self, org_id: &str) -> Result<GetOrganizationResponse, Error> {
        let caller = self.state.auth.authenticate(self.authorization).await?;
        if has_control(org_id) {
            // No organization has such an id (docs/API.md §1): the unknown id's answer.
            return Err(Error::not_found(ids::ORG_NOT_FOUND, "Organization not found"));
        }
        let org = self.state.directory.get_organization(&caller, org_id).await?;
        let details = crate::domain::Details {
            sequence: org.sequence,
            change_date: org.changed_at,
            creation_date: org.created_at,
            resource_owner: org.id.clone(),
        };
        Ok(GetOrganizationResponse {
            details: (&details).into(),
            organization: OrganizationDto {
                organization_id: org.id,
                name: org.name,
                default_language: org.default_language,
                login_methods: org.login_methods,
            },
        })
    }

    pub async fn add_human_user(&self, body: AddHumanUserBody) -> Result<AddHumanUserResponse, Error> {
        let caller = self.state.auth.authenticate(self.authorization).await?;
        if body.has_credentials() {
            return Err(Error::invalid(
                ids::NO_CREDENTIALS,
                "herald stores no credentials: password, hashedPassword, idpLinks and totpSecret are not accepted",
            ));
        }
        let profile = body.profile.unwrap_or_default();
        let email = body.email.unwrap_or_default();
        let phone = body.phone.unwrap_or_default();
        let req = NewHuman {
            user_id: body.user_id,
            org_id: body.organization.and_then(|o| o.org_id).unwrap_or_default(),
            username: body.username,
            given_name: profile.given_name.unwrap_or_default(),
            family_name: profile.family_name.unwrap_or_default(),
            display_name: profile.display_name,
            preferred_language: profile.preferred_language,
            email: email.email,
            email_verified: email.is_verified.unwrap_or(false),
            phone: phone.phone,
            phone_verified: phone.is_verified.unwrap_or(false),
        };
        let (user_id, details) = self.state.directory.create_human(&caller, req).await?;
        Ok(AddHumanUserResponse { user_id, details: (&details).into() })
    }

    pub async fn get_user(&self, user_id: &str) -> Result<GetUserResponse, Error> {
        parse_user_id(user_id)?;
        let caller = self.state.auth.authenticate(self.authorization).await?;
        let view = self.state.directory.get_user(&caller, user_id).await?;
        let u = view.user;
        let invite = match (&view.invite, u.initialized) {
            (_, true) => InviteDto {
                state: "verified",
                expires_at: None,
                channel: view.invite.as_ref().map(|i| i.channel.clone()),
            },
            (None, false) => InviteDto { state: "none", expires_at: None, channel: None },
            (Some(i), false) => InviteDto {
                state: if i.returned { "returned" } else { "sent" },
                expires_at: i.code_encrypted.as_ref().map(|_| timestamp(i.expires_at)),
                channel: Some(i.channel.clone()),
            },
        };
        let details: DetailsDto = (&view.details).into();
        Ok(GetUserResponse {
            details: (&view.details).into(),
            user: UserDto {
                user_id: u.id,
                details,
                state: if u.initialized { "USER_STATE_ACTIVE" } else { "USER_STATE_INITIAL" },
                login_names: vec![u.username.clone()],
                preferred_login_name: u.username.clone(),
                username: u.username,
                human: HumanDto {
                    profile: ProfileDto {
                        given_name: Some(u.given_name),
                        family_name: Some(u.family_name),
                        display_name: Some(u.display_name),
                        preferred_language: u.preferred_language,
                    },
                    email: u.email.map(|e| EmailDto { email: Some(e), is_verified: Some(u.email_verified) }),
                    phone: u.phone.map(|p| PhoneDto { phone: Some(p), is_verified: Some(u.phone_verified) }),
                },
                invite,
            },
        })
    }

    pub async fn create_token(&self, body: CreateTokenBody) -> Result<CreateTokenResponse, Error> {
        let caller = self.state.auth.authenticate(self.authorization).await?;
        let req = TokenRequest {
            org_id: body.org_id.filter(|o| !o.is_empty()),
            permissions: body.permissions.unwrap_or_default(),
            description: body.description.unwrap_or_default(),
            expires_at: body.expires_at,
        };
        let issued = self.state.auth.issue(&caller, req).await?;
        Ok(CreateTokenResponse { token_id: issued.token_id, token: issued.token })
    }

    pub async fn revoke_token(&self, token_id: &str) -> Result<(), Error> {
        let caller = self.state.auth.authenticate(self.authorization).await?;
        if has_control(token_id) {
            return Err(Error::not_found(ids::TOKEN_NOT_FOUND, "Token not found"));
        }
        self.state.auth.revoke(&caller, token_id).await
    }
}

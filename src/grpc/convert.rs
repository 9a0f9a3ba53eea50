//! Protobuf messages ↔ the DTOs of `api::dto`: the one translation gRPC,
//! gRPC-web and binary Connect share, so every framing feeds the same
//! [`crate::api::call::Call`] the same request.
//!
//! protobuf has no "absent" for a plain string: an empty string is what protojson
//! would have left out, so it becomes `None`, as the JSON framings would see it.

use chrono::DateTime;
use prost_types::Timestamp;
use serde_json::{json, Value};

use super::pb::zitadel::object::v2 as object;
use super::pb::zitadel::org::v2 as org;
use super::pb::zitadel::user::v2 as user;
use crate::api::dto::*;

fn some(s: String) -> Option<String> {
    Some(s).filter(|s| !s.is_empty())
}

fn timestamp(rfc3339: &str) -> Option<Timestamp> {
    let t = DateTime::parse_from_rfc3339(rfc3339).ok()?;
    Some(Timestamp { seconds: t.timestamp(), nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0) })
}

/// The details REST shows, as protobuf (the same instants: REST's milliseconds).
pub fn details(d: &DetailsDto) -> Option<object::Details> {
    Some(object::Details {
        sequence: d.sequence.parse().unwrap_or_default(),
        change_date: timestamp(&d.change_date),
        resource_owner: d.resource_owner.clone(),
        creation_date: timestamp(&d.creation_date),
    })
}

// ---- requests --------------------------------------------------------------------

pub fn create_invite_code(m: user::CreateInviteCodeRequest) -> (String, CreateInviteCodeBody) {
    use user::create_invite_code_request::Verification;
    let mut body = CreateInviteCodeBody { user_id: some(m.user_id.clone()), ..Default::default() };
    match m.verification {
        Some(Verification::SendCode(s)) => {
            body.send_code =
                Some(SendCodeDto { url_template: s.url_template, application_name: s.application_name, channel: None });
        }
        Some(Verification::ReturnCode(_)) => body.return_code = Some(ReturnCodeDto {}),
        None => {}
    }
    (m.user_id, body)
}

pub fn add_human_user(m: user::AddHumanUserRequest) -> AddHumanUserBody {
    use object::organization::Org;
    let organization = m.organization.map(|o| OrganizationRef {
        org_id: match o.org {
            Some(Org::OrgId(id)) => some(id),
            // herald knows organisations by id only.
            Some(Org::OrgDomain(_)) | None => None,
        },
    });
    let profile = m.profile.map(|p| ProfileDto {
        given_name: some(p.given_name),
        family_name: some(p.family_name),
        display_name: p.display_name,
        preferred_language: p.preferred_language,
    });
    let email = m.email.map(|e| EmailDto {
        email: some(e.email),
        is_verified: match e.verification {
            Some(user::set_human_email::Verification::IsVerified(v)) => Some(v),
            _ => None,
        },
    });
    let phone = m.phone.map(|p| PhoneDto {
        phone: some(p.phone),
        is_verified: match p.verification {
            Some(user::set_human_phone::Verification::IsVerified(v)) => Some(v),
            _ => None,
        },
    });
    // Credentials only need to be seen: herald refuses them (docs/API.md §6).
    let (password, hashed_password) = match m.password_type {
        Some(user::add_human_user_request::PasswordType::Password(_)) => (Some(json!(true)), None),
        Some(user::add_human_user_request::PasswordType::HashedPassword(_)) => (None, Some(json!(true))),
        None => (None, None),
    };
    AddHumanUserBody {
        user_id: m.user_id.and_then(some),
        username: m.username.and_then(some),
        organization,
        profile,
        email,
        phone,
        password,
        hashed_password,
        idp_links: Some(Value::Array(m.idp_links.iter().map(|_| json!({})).collect())),
        totp_secret: m.totp_secret.map(Value::String),
    }
}

pub fn add_organization(m: org::AddOrganizationRequest) -> AddOrganizationBody {
    AddOrganizationBody { name: some(m.name), ..Default::default() }
}

// ---- responses -------------------------------------------------------------------

pub fn created(r: CreateInviteCodeResponse) -> user::CreateInviteCodeResponse {
    user::CreateInviteCodeResponse { details: details(&r.details), invite_code: r.invite_code }
}

pub fn resent(r: DetailsOnly) -> user::ResendInviteCodeResponse {
    user::ResendInviteCodeResponse { details: details(&r.details) }
}

pub fn verified(r: DetailsOnly) -> user::VerifyInviteCodeResponse {
    user::VerifyInviteCodeResponse { details: details(&r.details) }
}

pub fn human_added(r: AddHumanUserResponse) -> user::AddHumanUserResponse {
    user::AddHumanUserResponse { user_id: r.user_id, details: details(&r.details), email_code: None, phone_code: None }
}

pub fn organization_added(r: AddOrganizationResponse) -> org::AddOrganizationResponse {
    org::AddOrganizationResponse { details: details(&r.details), organization_id: r.organization_id }
}

pub fn user(r: GetUserResponse) -> user::GetUserByIdResponse {
    let u = r.user;
    let state = match u.state {
        "USER_STATE_ACTIVE" => user::UserState::Active,
        "USER_STATE_INITIAL" => user::UserState::Initial,
        _ => user::UserState::Unspecified,
    };
    let p = u.human.profile;
    let human = user::HumanUser {
        profile: Some(user::HumanProfile {
            given_name: p.given_name.unwrap_or_default(),
            family_name: p.family_name.unwrap_or_default(),
            nick_name: None,
            display_name: p.display_name,
            preferred_language: p.preferred_language,
        }),
        email: u.human.email.map(|e| user::HumanEmail {
            email: e.email.unwrap_or_default(),
            is_verified: e.is_verified.unwrap_or(false),
        }),
        phone: u.human.phone.map(|p| user::HumanPhone {
            phone: p.phone.unwrap_or_default(),
            is_verified: p.is_verified.unwrap_or(false),
        }),
    };
    user::GetUserByIdResponse {
        details: details(&r.details),
        user: Some(user::User {
            user_id: u.user_id,
            details: details(&u.details),
            state: state as i32,
            username: u.username,
            login_names: u.login_names,
            preferred_login_name: u.preferred_login_name,
            r#type: Some(user::user::Type::Human(human)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_keep_the_instants_rest_shows() {
        let d = DetailsDto {
            sequence: "42".into(),
            change_date: "2025-03-25T16:32:59.198Z".into(),
            resource_owner: "7".into(),
            creation_date: "2025-03-25T16:32:58.000Z".into(),
        };
        let p = details(&d).unwrap();
        assert_eq!(p.sequence, 42);
        assert_eq!(p.change_date, Some(Timestamp { seconds: 1_742_920_379, nanos: 198_000_000 }));
        assert_eq!(p.creation_date.unwrap().seconds, 1_742_920_378);
    }

    #[test]
    fn a_credential_is_seen_and_an_empty_string_is_absent() {
        let m = user::AddHumanUserRequest {
            totp_secret: Some("JBSW".into()),
            username: Some(String::new()),
            ..Default::default()
        };
        let b = add_human_user(m);
        assert!(b.has_credentials());
        assert_eq!(b.username, None);
        assert!(!add_human_user(user::AddHumanUserRequest::default()).has_credentials());
    }
}

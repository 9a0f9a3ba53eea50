//! The JSON messages of API.md, as they travel. lowerCamelCase on the wire, proto
//! names (`user_id`) accepted as aliases, unknown fields ignored, empty fields
//! omitted from responses.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::{Channel, Details, LoginMethod, Permission};

/// RFC 3339, UTC, milliseconds: `2025-03-25T16:32:59.198Z`.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DetailsDto {
    pub sequence: String,
    pub change_date: String,
    pub resource_owner: String,
    pub creation_date: String,
}

impl From<&Details> for DetailsDto {
    fn from(d: &Details) -> Self {
        DetailsDto {
            sequence: d.sequence.to_string(),
            change_date: timestamp(d.change_date),
            resource_owner: d.resource_owner.clone(),
            creation_date: timestamp(d.creation_date),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DetailsOnly {
    pub details: DetailsDto,
}

// ---- invite codes ------------------------------------------------------------

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateInviteCodeBody {
    #[serde(alias = "user_id")]
    pub user_id: Option<String>,
    #[serde(alias = "send_code")]
    pub send_code: Option<SendCodeDto>,
    #[serde(alias = "return_code")]
    pub return_code: Option<ReturnCodeDto>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendCodeDto {
    #[serde(alias = "url_template")]
    pub url_template: Option<String>,
    #[serde(alias = "application_name")]
    pub application_name: Option<String>,
    #[schema(value_type = Option<String>, example = "email")]
    pub channel: Option<Channel>,
}

/// `returnCode: {}`: its presence is the message.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ReturnCodeDto {}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateInviteCodeResponse {
    pub details: DetailsDto,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invite_code: Option<String>,
}

/// Connect's ResendInviteCode and GetUserByID: `{"userId"}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserIdBody {
    #[serde(alias = "user_id")]
    pub user_id: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyInviteCodeBody {
    #[serde(alias = "user_id")]
    pub user_id: Option<String>,
    #[serde(alias = "verification_code")]
    pub verification_code: Option<String>,
}

// ---- organizations -------------------------------------------------------------

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddOrganizationBody {
    pub name: Option<String>,
    #[serde(alias = "default_language")]
    pub default_language: Option<String>,
    #[serde(alias = "login_methods")]
    #[schema(value_type = Option<Vec<String>>)]
    pub login_methods: Option<Vec<LoginMethod>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddOrganizationResponse {
    pub details: DetailsDto,
    pub organization_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationDto {
    pub organization_id: String,
    pub name: String,
    pub default_language: String,
    pub login_methods: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GetOrganizationResponse {
    pub details: DetailsDto,
    pub organization: OrganizationDto,
}

// ---- users ---------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddHumanUserBody {
    #[serde(alias = "user_id")]
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub organization: Option<OrganizationRef>,
    pub profile: Option<ProfileDto>,
    pub email: Option<EmailDto>,
    pub phone: Option<PhoneDto>,
    // Credentials herald refuses to hold (API.md §6).
    pub password: Option<Value>,
    #[serde(alias = "hashed_password")]
    pub hashed_password: Option<Value>,
    #[serde(alias = "idp_links")]
    pub idp_links: Option<Value>,
    #[serde(alias = "totp_secret")]
    pub totp_secret: Option<Value>,
}

impl AddHumanUserBody {
    /// Whether the request carries a credential (an empty list of links does not).
    pub fn has_credentials(&self) -> bool {
        let present = |v: &Option<Value>| match v {
            None | Some(Value::Null) => false,
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::String(s)) => !s.is_empty(),
            Some(_) => true,
        };
        present(&self.password)
            || present(&self.hashed_password)
            || present(&self.idp_links)
            || present(&self.totp_secret)
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationRef {
    #[serde(alias = "org_id")]
    pub org_id: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileDto {
    #[serde(alias = "given_name", default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(alias = "family_name", default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(alias = "display_name", default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(alias = "preferred_language", default, skip_serializing_if = "Option::is_none")]
    pub preferred_language: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailDto {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(alias = "is_verified", default, skip_serializing_if = "Option::is_none")]
    pub is_verified: Option<bool>,
}

#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhoneDto {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(alias = "is_verified", default, skip_serializing_if = "Option::is_none")]
    pub is_verified: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddHumanUserResponse {
    pub user_id: String,
    pub details: DetailsDto,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GetUserResponse {
    pub details: DetailsDto,
    pub user: UserDto,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDto {
    pub user_id: String,
    pub details: DetailsDto,
    #[schema(value_type = String)]
    pub state: &'static str,
    pub username: String,
    pub login_names: Vec<String>,
    pub preferred_login_name: String,
    pub human: HumanDto,
    pub invite: InviteDto,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HumanDto {
    pub profile: ProfileDto,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailDto>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<PhoneDto>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InviteDto {
    #[schema(value_type = String)]
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

// ---- tokens --------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateTokenBody {
    #[serde(alias = "org_id")]
    pub org_id: Option<String>,
    #[schema(value_type = Option<Vec<String>>)]
    pub permissions: Option<Vec<Permission>>,
    pub description: Option<String>,
    #[serde(alias = "expires_at")]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateTokenResponse {
    pub token_id: String,
    pub token: String,
}

//! Organizations and users: just enough of ZITADEL's directory to run herald alone.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;

use crate::auth::Principal;
use crate::domain::{
    ids, now_ms, parse_display_text, parse_language, parse_user_id, Details, Email, Error, IdGenerator, Kind,
    LoginMethod, Permission, Phone,
};
use crate::store::{self, orgs::OrgRow, users::UserRow};

/// A new organization as asked for.
#[derive(Debug, Default)]
pub struct NewOrganization {
    pub name: String,
    pub default_language: Option<String>,
    pub login_methods: Option<Vec<LoginMethod>>,
}

/// A new human user as asked for (already structurally parsed by the API).
#[derive(Debug, Default)]
pub struct NewHuman {
    pub user_id: Option<String>,
    pub org_id: String,
    pub username: Option<String>,
    pub given_name: String,
    pub family_name: String,
    pub display_name: Option<String>,
    pub preferred_language: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    pub phone: Option<String>,
    pub phone_verified: bool,
}

/// A user with the state of its invite, for `GET /v2/users/{id}`.
#[derive(Debug)]
pub struct UserView {
    pub user: UserRow,
    pub invite: Option<store::invites::InviteCodeRow>,
    pub details: Details,
}

#[derive(Debug, Clone)]
pub struct Directory {
    pool: PgPool,
    ids: Arc<IdGenerator>,
}

fn org_not_found() -> Error {
    Error::not_found(ids::ORG_NOT_FOUND, "Organization not found")
}

pub fn user_not_found() -> Error {
    Error::not_found(ids::USER_NOT_FOUND, "User could not be found")
}

/// Checks a new user as API.md §3 asks and builds its row (the first event has
/// sequence 1). Shared by `POST /v2/users/human` and `herald users import`.
///
/// # Errors
/// 400 for an invalid contact, name, language, username or user id, or no contact.
pub fn build_human(req: &NewHuman, org_id: &str, ids: &IdGenerator, at: DateTime<Utc>) -> Result<UserRow, Error> {
    let present = |v: &Option<String>| v.as_deref().filter(|v| !v.is_empty()).map(str::to_string);
    let email = present(&req.email).map(|e| Email::parse(&e)).transpose()?;
    let phone = present(&req.phone).map(|p| Phone::parse(&p)).transpose()?;
    if email.is_none() && phone.is_none() {
        return Err(Error::invalid(ids::VALIDATION, "a user needs an email or a phone"));
    }
    let required = |field: &'static str, value: &str| {
        if value.is_empty() {
            Err(Error::invalid(ids::VALIDATION, format!("{field} is required")))
        } else {
            parse_display_text(field, value)
        }
    };
    let given_name = required("profile.givenName", &req.given_name)?;
    let family_name = required("profile.familyName", &req.family_name)?;
    let display_name = match present(&req.display_name) {
        Some(d) => parse_display_text("profile.displayName", &d)?,
        None => format!("{given_name} {family_name}"),
    };
    let preferred_language =
        present(&req.preferred_language).map(|l| parse_language("profile.preferredLanguage", &l)).transpose()?;
    let username = match present(&req.username) {
        Some(u) => parse_display_text("username", &u)?,
        None => {
            email.as_ref().map(|e| e.as_str()).or(phone.as_ref().map(|p| p.as_str())).unwrap_or_default().to_string()
        }
    };
    let id = match present(&req.user_id) {
        Some(u) => {
            let u =
                parse_user_id(&u).map_err(|_| Error::invalid(ids::VALIDATION, "userId must be 1 to 200 characters"))?;
            if u.chars().any(|c| c.is_control() || c == '/' || c.is_whitespace()) {
                return Err(Error::invalid(
                    ids::VALIDATION,
                    "userId must not contain spaces, '/' or control characters",
                ));
            }
            u.to_string()
        }
        None => ids.next_string(),
    };
    Ok(UserRow {
        id,
        org_id: org_id.to_string(),
        username,
        given_name,
        family_name,
        display_name,
        preferred_language,
        email: email.map(|e| e.as_str().to_string()),
        email_verified: req.email_verified,
        phone: phone.map(|p| p.as_str().to_string()),
        phone_verified: req.phone_verified,
        initialized: false,
        state: "active".into(),
        sequence: 1,
        created_at: at,
        changed_at: at,
    })
}

/// Whether the holder of a caller-chosen user id may be named to the caller (409):
/// only when the caller could see that user anyway.
fn chosen_id_is_visible(caller: &Principal, holder: &UserRow) -> bool {
    holder.state != "deleted" && caller.can_see(&holder.org_id)
}

impl Directory {
    pub fn new(pool: PgPool, ids: Arc<IdGenerator>) -> Self {
        Directory { pool, ids }
    }

    /// # Errors
    /// 403 unless the caller is instance-scoped with `org.write`; 400 for a bad name,
    /// language or login methods.
    #[tracing::instrument(skip_all, fields(caller = %caller.token_id))]
    pub async fn create_organization(
        &self,
        caller: &Principal,
        req: NewOrganization,
    ) -> Result<(String, Details), Error> {
        caller.require(Permission::OrgWrite)?;
        if !caller.is_instance() {
            return Err(crate::auth::permission_denied());
        }
        let name = parse_display_text("name", &req.name)?;
        let default_language = match req.default_language.as_deref() {
            None | Some("") => "en".to_string(),
            Some(l) => parse_language("defaultLanguage", l)?,
        };
        let mut methods = req.login_methods.unwrap_or_else(|| LoginMethod::ALL.to_vec());
        if methods.is_empty() {
            return Err(Error::invalid(ids::VALIDATION, "loginMethods must name at least one method"));
        }
        methods.sort_by_key(|m| LoginMethod::ALL.iter().position(|x| x == m));
        methods.dedup();
        let now = now_ms();
        let org = OrgRow {
            id: self.ids.next_string(),
            name,
            default_language,
            login_methods: methods.iter().map(|m| m.as_str().to_string()).collect(),
            sequence: 1,
            created_at: now,
            changed_at: now,
        };
        let mut tx = self.pool.begin().await?;
        store::orgs::insert(&mut tx, &org).await?;
        let event = store::events::NewEvent {
            aggregate_id: &org.id,
            event_type: "org.added",
            payload: json!({"name": org.name, "defaultLanguage": org.default_language, "loginMethods": org.login_methods}),
            resource_owner: &org.id,
            created_by: &caller.token_id,
            at: now,
        };
        store::events::insert_first(&mut tx, "org", &event).await?;
        tx.commit().await?;
        tracing::info!(org_id = %org.id, "organization created");
        let details = Details { sequence: 1, change_date: now, creation_date: now, resource_owner: org.id.clone() };
        Ok((org.id, details))
    }

    /// # Errors
    /// 404 for an organization that does not exist or that the caller cannot see;
    /// 403 without `user.read`.
    pub async fn get_organization(&self, caller: &Principal, org_id: &str) -> Result<OrgRow, Error> {
        let mut conn = self.pool.acquire().await?;
        let org =
            store::orgs::get(&mut conn, org_id).await?.filter(|o| caller.can_see(&o.id)).ok_or_else(org_not_found)?;
        caller.require(Permission::UserRead)?;
        Ok(org)
    }

    /// # Errors
    /// 404 for an organization the caller cannot see; 403 without `user.write`; 400
    /// for invalid fields or no contact; 409 for a taken username or user id.
    #[tracing::instrument(skip_all, fields(caller = %caller.token_id, org_id = %req.org_id))]
    pub async fn create_human(&self, caller: &Principal, req: NewHuman) -> Result<(String, Details), Error> {
        let mut tx = self.pool.begin().await?;
        if req.org_id.trim().is_empty() {
            return Err(Error::invalid(ids::VALIDATION, "organization.orgId is required"));
        }
        let org = store::orgs::get(&mut tx, &req.org_id)
            .await?
            .filter(|o| caller.can_see(&o.id))
            .ok_or_else(org_not_found)?;
        caller.require(Permission::UserWrite)?;

        let mut user = build_human(&req, &org.id, &self.ids, now_ms())?;
        if req.user_id.as_deref().is_some_and(|u| !u.is_empty()) {
            // A chosen id held where the caller cannot see must not say so: it is
            // answered as a request without an id (docs/API.md §3).
            if let Some(holder) = store::users::get(&mut tx, &user.id).await? {
                if !chosen_id_is_visible(caller, &holder) {
                    user.id = self.ids.next_string();
                }
            }
        }
        let now = user.created_at;
        match store::users::insert(&mut tx, &user).await {
            Ok(()) => {}
            Err(store::users::InsertError::UsernameTaken) => {
                return Err(Error::new(Kind::AlreadyExists, ids::USERNAME_TAKEN, "Username is already taken"))
            }
            Err(store::users::InsertError::IdTaken) => {
                return Err(Error::new(Kind::AlreadyExists, ids::USER_ID_TAKEN, "User already exists"))
            }
            Err(store::users::InsertError::Db(e)) => return Err(e.into()),
        }
        // The event payload names the fields that changed, not the personal data.
        let event = store::events::NewEvent {
            aggregate_id: &user.id,
            event_type: "user.human.added",
            payload: json!({"username": user.username, "hasEmail": user.email.is_some(), "hasPhone": user.phone.is_some()}),
            resource_owner: &org.id,
            created_by: &caller.token_id,
            at: now,
        };
        store::events::insert_first(&mut tx, "user", &event).await?;
        tx.commit().await?;
        tracing::info!(user_id = %user.id, "user created");
        let details = Details { sequence: 1, change_date: now, creation_date: now, resource_owner: org.id };
        Ok((user.id, details))
    }

    /// # Errors
    /// 400 for a blank id; 404 for a user that does not exist, is deleted or belongs
    /// to another tenant; 403 without `user.read`.
    pub async fn get_user(&self, caller: &Principal, user_id: &str) -> Result<UserView, Error> {
        let mut conn = self.pool.acquire().await?;
        let user = store::users::get(&mut conn, user_id)
            .await?
            .filter(|u| u.state != "deleted" && caller.can_see(&u.org_id))
            .ok_or_else(user_not_found)?;
        caller.require(Permission::UserRead)?;
        let invite = store::invites::get(&mut conn, user_id).await?;
        let details = Details {
            sequence: user.sequence,
            change_date: user.changed_at,
            creation_date: user.created_at,
            resource_owner: user.org_id.clone(),
        };
        Ok(UserView { user, invite, details })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(org: &str, state: &str) -> UserRow {
        let req = NewHuman {
            email: Some("ada@example.com".into()),
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            ..Default::default()
        };
        UserRow { state: state.into(), ..build_human(&req, org, &IdGenerator::new(1), now_ms()).unwrap() }
    }

    #[test]
    fn a_chosen_id_is_named_taken_only_to_a_caller_who_can_see_its_holder() {
        let own = Principal { org_id: Some("o1".into()), ..Principal::cli() };
        assert!(chosen_id_is_visible(&own, &holder("o1", "active")));
        assert!(!chosen_id_is_visible(&own, &holder("o2", "active")), "another tenant's: answered as fresh");
        assert!(!chosen_id_is_visible(&own, &holder("o1", "deleted")));
        assert!(chosen_id_is_visible(&Principal::cli(), &holder("o2", "active")), "instance scope sees all");
    }
}

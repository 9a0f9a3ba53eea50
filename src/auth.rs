//! Bearer tokens and what they allow (API.md §1.3).
//!
//! Tokens are opaque random strings; only their SHA-256 is stored. The configured
//! bootstrap token is instance-scoped with every permission and never stored.

use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::domain::{ids, now_ms, Error, IdGenerator, Kind, Permission};
use crate::store::{self, tokens::TokenRow};

/// Who is calling, as proven by their token.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token's id, recorded as `created_by` on events; `bootstrap` for the
    /// configured token, `cli` for the command line.
    pub token_id: String,
    /// `None`: instance-scoped (every organization).
    pub org_id: Option<String>,
    pub permissions: Vec<Permission>,
    /// When the caller's token expires (`None`: never): a token it makes expires no
    /// later (docs/API.md §3).
    pub expires_at: Option<DateTime<Utc>>,
}

impl Principal {
    /// The command line acts with the machine's own authority.
    pub fn cli() -> Self {
        Principal { token_id: "cli".into(), org_id: None, permissions: Permission::ALL.to_vec(), expires_at: None }
    }

    /// A resend request that names no job and no token: the queue is reachable only
    /// with broker credentials, so whoever holds them may resend, and nothing more
    /// (docs/ARCHITECTURE.md, "Bulk re-invites and replay").
    pub fn queue() -> Self {
        Principal { token_id: "queue".into(), org_id: None, permissions: vec![Permission::UserWrite], expires_at: None }
    }

    /// A principal as it was stored (a bulk job keeps its creator's scope and
    /// permissions). Names that are no longer permissions grant nothing.
    pub fn stored(token_id: String, org_id: Option<String>, permissions: &[String]) -> Self {
        let permissions = permissions.iter().filter_map(|p| Permission::parse(p)).collect();
        Principal { token_id, org_id, permissions, expires_at: None }
    }

    pub fn is_instance(&self) -> bool {
        self.org_id.is_none()
    }

    /// Whether a resource owned by `org_id` exists for this caller at all. Resources
    /// of other tenants answer 404, exactly like resources that do not exist.
    pub fn can_see(&self, org_id: &str) -> bool {
        self.org_id.as_deref().is_none_or(|own| own == org_id)
    }

    pub fn has(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }

    /// # Errors
    /// 403, `AUTH-AWfge`, when the permission is missing.
    pub fn require(&self, p: Permission) -> Result<(), Error> {
        if self.has(p) {
            Ok(())
        } else {
            Err(permission_denied())
        }
    }
}

pub fn permission_denied() -> Error {
    Error::new(Kind::PermissionDenied, ids::PERMISSION_DENIED, "No matching permissions found")
}

fn unauthenticated(id: &'static str, text: &'static str) -> Error {
    Error::new(Kind::Unauthenticated, id, text)
}

/// When a new token expires: when asked, but never after the token that makes it
/// (a token with a day left cannot mint one for a year).
fn child_expiry(asked: Option<DateTime<Utc>>, maker: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (asked, maker) {
        (Some(a), Some(m)) => Some(a.min(m)),
        (a, m) => a.or(m),
    }
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The principal a stored token proves, or `None` when it is revoked or expired at
/// `now`: the one place a token's validity is decided, for a header as for a resend
/// request that names its token.
fn valid_token(row: TokenRow, now: DateTime<Utc>) -> Option<Principal> {
    if row.revoked_at.is_some() || row.expires_at.is_some_and(|e| e <= now) {
        return None;
    }
    Some(Principal { expires_at: row.expires_at, ..Principal::stored(row.id, row.org_id, &row.permissions) })
}

/// Who the token with id `token_id` acts for, if it exists and is still valid: a
/// `resend-request.v1` from outside herald names its token by id (`requestedBy`).
///
/// # Errors
/// 503 when the database does not answer.
pub async fn principal_of_token(pool: &PgPool, token_id: &str) -> Result<Option<Principal>, Error> {
    let mut conn = pool.acquire().await?;
    let row = store::tokens::get(&mut conn, token_id).await?;
    Ok(row.and_then(|row| valid_token(row, Utc::now())))
}

/// Turns `Authorization` headers into principals, and manages tokens.
#[derive(Debug, Clone)]
pub struct Authenticator {
    pool: PgPool,
    ids: Arc<IdGenerator>,
    bootstrap_hash: Option<[u8; 32]>,
}

/// A token as shown once, at creation.
#[derive(Debug)]
pub struct IssuedToken {
    pub token_id: String,
    pub token: String,
}

/// What a caller asks for when creating a token.
#[derive(Debug, Default)]
pub struct TokenRequest {
    pub org_id: Option<String>,
    pub permissions: Vec<Permission>,
    pub description: String,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Authenticator {
    pub fn new(pool: PgPool, ids: Arc<IdGenerator>, bootstrap_token: Option<&str>) -> Self {
        Authenticator { pool, ids, bootstrap_hash: bootstrap_token.map(hash) }
    }

    /// Checks an `Authorization` header value.
    ///
    /// # Errors
    /// 401 for a missing header or an unknown, revoked or expired token; 503 when
    /// the database does not answer.
    #[tracing::instrument(skip_all)]
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Principal, Error> {
        let header = header.map(str::trim).filter(|h| !h.is_empty());
        let Some(header) = header else {
            return Err(unauthenticated(ids::AUTH_MISSING, "auth header missing"));
        };
        let invalid = || unauthenticated(ids::TOKEN_INVALID, "Token is invalid");
        let token = match header.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => return Err(invalid()),
        };
        if token.is_empty() {
            return Err(invalid());
        }
        let h = hash(token);
        // Comparing digests, not tokens: equal-length inputs whose comparison time
        // says nothing about the token.
        if self.bootstrap_hash.as_ref() == Some(&h) {
            return Ok(Principal { token_id: "bootstrap".into(), ..Principal::cli() });
        }
        let mut conn = self.pool.acquire().await?;
        let row = store::tokens::find_by_hash(&mut conn, &h).await?;
        row.and_then(|row| valid_token(row, Utc::now())).ok_or_else(invalid)
    }

    /// Issues a token. An org-scoped caller may only issue tokens for its own
    /// organization with permissions it holds itself.
    ///
    /// # Errors
    /// 403 without `token.write` or when asking for more than the caller holds; 404
    /// for an organization the caller cannot see; 400 for no permissions or a past
    /// expiry.
    #[tracing::instrument(skip_all, fields(caller = %caller.token_id))]
    pub async fn issue(&self, caller: &Principal, req: TokenRequest) -> Result<IssuedToken, Error> {
        caller.require(Permission::TokenWrite)?;
        // An org-scoped caller that names no organization means its own.
        let org_id = req.org_id.or_else(|| caller.org_id.clone());
        let mut conn = self.pool.acquire().await?;
        if let Some(org) = &org_id {
            if !caller.can_see(org) || store::orgs::get(&mut conn, org).await?.is_none() {
                return Err(Error::not_found(ids::ORG_NOT_FOUND, "Organization not found"));
            }
        }
        if req.permissions.is_empty() {
            return Err(Error::invalid(ids::VALIDATION, "permissions must name at least one permission"));
        }
        if req.permissions.iter().any(|p| !caller.has(*p)) {
            return Err(permission_denied());
        }
        if req.expires_at.is_some_and(|e| e <= Utc::now()) {
            return Err(Error::invalid(ids::VALIDATION, "expiresAt must be in the future"));
        }
        if req.description.chars().count() > 200 {
            return Err(Error::invalid(ids::VALIDATION, "description must be at most 200 characters"));
        }
        let token =
            format!("hrld_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()));
        let mut permissions: Vec<String> = req.permissions.iter().map(|p| p.as_str().to_string()).collect();
        permissions.sort();
        permissions.dedup();
        let row = TokenRow {
            id: self.ids.next_string(),
            token_hash: hash(&token).to_vec(),
            org_id,
            permissions,
            description: req.description,
            created_by: caller.token_id.clone(),
            created_at: now_ms(),
            expires_at: child_expiry(req.expires_at, caller.expires_at),
            revoked_at: None,
        };
        store::tokens::insert(&mut conn, &row).await?;
        tracing::info!(token_id = %row.id, org_id = ?row.org_id, permissions = ?row.permissions, "token issued");
        Ok(IssuedToken { token_id: row.id, token })
    }

    /// Revokes a token and every token made with it, and with those, down the line
    /// (docs/API.md §3); revoking twice is not an error.
    ///
    /// # Errors
    /// 404 for a token the caller cannot see; 403 without `token.write`.
    #[tracing::instrument(skip_all, fields(caller = %caller.token_id))]
    pub async fn revoke(&self, caller: &Principal, token_id: &str) -> Result<(), Error> {
        let mut conn = self.pool.acquire().await?;
        let row = store::tokens::get(&mut conn, token_id).await?;
        let visible = row.is_some_and(|t| match (&caller.org_id, &t.org_id) {
            (None, _) => true,
            (Some(own), Some(org)) => own == org,
            (Some(_), None) => false,
        });
        if !visible {
            return Err(Error::not_found(ids::TOKEN_NOT_FOUND, "Token not found"));
        }
        caller.require(Permission::TokenWrite)?;
        store::tokens::revoke(&mut conn, token_id, now_ms()).await?;
        tracing::info!(token_id, "token revoked");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(expires_at: Option<DateTime<Utc>>, revoked_at: Option<DateTime<Utc>>) -> TokenRow {
        TokenRow {
            id: "t1".into(),
            token_hash: vec![],
            org_id: Some("o1".into()),
            permissions: vec!["user.write".into(), "no.such".into()],
            description: String::new(),
            created_by: "bootstrap".into(),
            created_at: Utc::now(),
            expires_at,
            revoked_at,
        }
    }

    #[test]
    fn a_token_is_valid_until_it_expires_or_is_revoked() {
        let now = Utc::now();
        let later = now + chrono::Duration::hours(1);
        let p = valid_token(token(None, None), now).unwrap();
        assert_eq!((p.token_id.as_str(), p.org_id.as_deref()), ("t1", Some("o1")));
        assert_eq!(p.permissions, [Permission::UserWrite], "unknown names grant nothing");
        assert!(valid_token(token(Some(later), None), now).is_some());
        assert!(valid_token(token(Some(now), None), now).is_none(), "expired at the instant it expires");
        assert!(valid_token(token(None, Some(now)), now).is_none());
        assert_eq!(valid_token(token(Some(later), None), now).unwrap().expires_at, Some(later));
    }

    #[test]
    fn a_token_made_by_a_token_expires_no_later_than_its_maker() {
        let now = Utc::now();
        let (soon, later) = (now + chrono::Duration::hours(1), now + chrono::Duration::days(365));
        assert_eq!(child_expiry(Some(later), Some(soon)), Some(soon));
        assert_eq!(child_expiry(Some(soon), Some(later)), Some(soon));
        assert_eq!(child_expiry(None, Some(soon)), Some(soon), "no expiry asked: the maker's");
        assert_eq!(child_expiry(Some(later), None), Some(later));
        assert_eq!(child_expiry(None, None), None);
    }
}

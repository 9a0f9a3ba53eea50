//! ZITADEL notification providers: one per ZITADEL e-mail or SMS provider that
//! points at herald, owned by a herald organization, holding the signing keys
//! ZITADEL showed once. Tenant-scoped like every admin resource (API.md §1.3): a
//! provider of another organization is 404, then `provider.write` is checked.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::auth::Principal;
use crate::domain::{ids, now_ms, Channel, CodeCipher, Error, Permission};
use crate::store::{self, zitadel::ProviderChange, zitadel::ProviderRow};

/// At most this many keys at once: the current one and the next while ZITADEL
/// rotates (it rotates at once, with no grace period), with room to spare.
const MAX_KEYS: usize = 5;

/// A provider as operators see it (keys never leave herald).
#[derive(Debug, Clone)]
pub struct Provider {
    pub id: String,
    pub org_id: String,
    pub channel: Channel,
    pub require_signature: bool,
    pub description: String,
    /// herald's invite template for ZITADEL's invite codes (docs/ARCHITECTURE.md,
    /// "ZITADEL's notifications"); off: ZITADEL's texts.
    pub use_herald_invite_template: bool,
    pub key_count: usize,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `POST /admin/v1/zitadel/providers`, as the API parsed it.
#[derive(Debug, Clone)]
pub struct NewProvider {
    /// `None`: the caller's own organization (an instance token must name one).
    pub org_id: Option<String>,
    pub channel: Channel,
    pub signing_keys: Vec<String>,
    pub require_signature: bool,
    pub description: String,
    pub use_herald_invite_template: bool,
}

/// `PATCH`: `None` keeps what is stored; `signing_keys` replaces the whole list.
#[derive(Debug, Clone, Default)]
pub struct ProviderPatch {
    pub signing_keys: Option<Vec<String>>,
    pub require_signature: Option<bool>,
    pub description: Option<String>,
    pub use_herald_invite_template: Option<bool>,
}

#[derive(Clone)]
pub struct ProviderService {
    pool: PgPool,
    cipher: CodeCipher,
}

pub fn provider_not_found() -> Error {
    Error::not_found(ids::PROVIDER_NOT_FOUND, "Provider not found")
}

/// Checks a list of signing keys: each one printable, without spaces, 1–200
/// characters (ZITADEL's are 36 letters and digits); repeated keys count once.
///
/// # Errors
/// 400 for a bad key, too many keys, or none while a signature is required.
pub fn parse_signing_keys(keys: Vec<String>, require_signature: bool) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = Vec::with_capacity(keys.len());
    for key in keys {
        let key = key.trim().to_string();
        if key.is_empty() || key.chars().count() > 200 || !key.chars().all(|c| c.is_ascii_graphic()) {
            return Err(Error::invalid(
                ids::VALIDATION,
                "signingKeys: each key must be 1 to 200 printable characters without spaces",
            ));
        }
        if !out.contains(&key) {
            out.push(key);
        }
    }
    if out.len() > MAX_KEYS {
        return Err(Error::invalid(ids::VALIDATION, format!("signingKeys: at most {MAX_KEYS} keys")));
    }
    if require_signature && out.is_empty() {
        return Err(Error::invalid(ids::VALIDATION, "signingKeys: give at least one key, or requireSignature: false"));
    }
    Ok(out)
}

fn parse_description(d: &str) -> Result<String, Error> {
    if d.chars().count() > 200 || d.chars().any(char::is_control) {
        return Err(Error::invalid(
            ids::VALIDATION,
            "description must be at most 200 characters, no control characters",
        ));
    }
    Ok(d.to_string())
}

impl ProviderService {
    pub fn new(pool: PgPool, cipher: CodeCipher) -> Self {
        ProviderService { pool, cipher }
    }

    fn seal_keys(&self, provider_id: &str, keys: &[String]) -> Vec<u8> {
        // A list of strings always serialises.
        let json = serde_json::to_vec(keys).expect("a list of strings serialises");
        self.cipher.seal_bytes(&json, provider_id)
    }

    /// The provider's signing keys, in plain text, for checking a post.
    ///
    /// # Errors
    /// 500 when the keys do not decrypt (another `crypto.key`, a damaged row).
    pub fn open_keys(&self, row: &ProviderRow) -> Result<Vec<String>, Error> {
        let plain = self.cipher.open_bytes(&row.signing_keys_encrypted, &row.id).map_err(Error::internal)?;
        serde_json::from_slice(&plain).map_err(Error::internal)
    }

    fn view(&self, row: ProviderRow) -> Result<Provider, Error> {
        let key_count = self.open_keys(&row)?.len();
        let channel = Channel::from_db(&row.channel)
            .ok_or_else(|| Error::internal(anyhow::anyhow!("provider {} has channel {:?}", row.id, row.channel)))?;
        Ok(Provider {
            id: row.id,
            org_id: row.org_id,
            channel,
            require_signature: row.require_signature,
            description: row.description,
            use_herald_invite_template: row.use_herald_invite_template,
            key_count,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }

    /// The stored row of a provider the caller may see, and may manage.
    async fn visible(&self, caller: &Principal, id: &str) -> Result<ProviderRow, Error> {
        let row = store::zitadel::get_provider(&self.pool, id)
            .await?
            .filter(|p| caller.can_see(&p.org_id))
            .ok_or_else(provider_not_found)?;
        caller.require(Permission::ProviderWrite)?;
        Ok(row)
    }

    /// Registers a provider; its id is 128 random bits, since it is the URL.
    ///
    /// # Errors
    /// 400 (no organization named by an instance token, bad keys or description),
    /// 404 (an organization the caller cannot see), 403 (no `provider.write`).
    #[tracing::instrument(skip_all, fields(caller = %caller.token_id))]
    pub async fn create(&self, caller: &Principal, req: NewProvider) -> Result<Provider, Error> {
        let org_id = req
            .org_id
            .filter(|o| !o.is_empty())
            .or_else(|| caller.org_id.clone())
            .ok_or_else(|| Error::invalid(ids::VALIDATION, "orgId is required"))?;
        let mut conn = self.pool.acquire().await?;
        if !caller.can_see(&org_id) || store::orgs::get(&mut conn, &org_id).await?.is_none() {
            return Err(Error::not_found(ids::ORG_NOT_FOUND, "Organization not found"));
        }
        caller.require(Permission::ProviderWrite)?;
        let keys = parse_signing_keys(req.signing_keys, req.require_signature)?;
        let description = parse_description(&req.description)?;
        let id = hex::encode(rand::random::<[u8; 16]>());
        let at = now_ms();
        let row = ProviderRow {
            signing_keys_encrypted: self.seal_keys(&id, &keys),
            id,
            org_id,
            channel: req.channel.as_str().to_string(),
            require_signature: req.require_signature,
            description,
            use_herald_invite_template: req.use_herald_invite_template,
            created_by: caller.token_id.clone(),
            created_at: at,
            updated_at: at,
        };
        store::zitadel::insert_provider(&mut conn, &row).await?;
        tracing::info!(provider_id = %row.id, org_id = %row.org_id, channel = %row.channel, "zitadel provider registered");
        self.view(row)
    }

    /// # Errors
    /// 404 (not visible), 403 (no `provider.write`).
    pub async fn get(&self, caller: &Principal, id: &str) -> Result<Provider, Error> {
        let row = self.visible(caller, id).await?;
        self.view(row)
    }

    /// The providers the caller can see, of `org_id` when given.
    ///
    /// # Errors
    /// 404 for another tenant's organization; 403 without `provider.write`.
    pub async fn list(&self, caller: &Principal, org_id: Option<String>) -> Result<Vec<Provider>, Error> {
        let org = match (&caller.org_id, org_id) {
            (Some(own), Some(asked)) if own != &asked => {
                return Err(Error::not_found(ids::ORG_NOT_FOUND, "Organization not found"))
            }
            (Some(own), _) => Some(own.clone()),
            (None, asked) => asked,
        };
        caller.require(Permission::ProviderWrite)?;
        let rows = store::zitadel::list_providers(&self.pool, org.as_deref()).await?;
        rows.into_iter().map(|r| self.view(r)).collect()
    }

    /// Changes keys (the whole list: keep the old and the new one while ZITADEL
    /// rotates), whether a signature is required, the description, the template.
    ///
    /// # Errors
    /// 404, 403, and 400 for bad keys, or no key left while a signature is required.
    #[tracing::instrument(skip_all, fields(caller = %caller.token_id, provider_id = id))]
    pub async fn patch(&self, caller: &Principal, id: &str, patch: ProviderPatch) -> Result<Provider, Error> {
        let row = self.visible(caller, id).await?;
        let require = patch.require_signature.unwrap_or(row.require_signature);
        let keys = match patch.signing_keys {
            Some(keys) => Some(parse_signing_keys(keys, require)?),
            None => {
                parse_signing_keys(self.open_keys(&row)?, require)?;
                None
            }
        };
        let change = ProviderChange {
            signing_keys_encrypted: keys.map(|k| self.seal_keys(id, &k)),
            require_signature: patch.require_signature,
            description: patch.description.as_deref().map(parse_description).transpose()?,
            use_herald_invite_template: patch.use_herald_invite_template,
        };
        let row =
            store::zitadel::update_provider(&self.pool, id, &change, now_ms()).await?.ok_or_else(provider_not_found)?;
        tracing::info!(keys_replaced = change.signing_keys_encrypted.is_some(), "zitadel provider changed");
        self.view(row)
    }

    /// Removes a provider: its URL answers 404 from then on. Messages it posted
    /// keep their deliveries.
    ///
    /// # Errors
    /// 404, 403.
    #[tracing::instrument(skip_all, fields(caller = %caller.token_id, provider_id = id))]
    pub async fn delete(&self, caller: &Principal, id: &str) -> Result<(), Error> {
        self.visible(caller, id).await?;
        if !store::zitadel::delete_provider(&self.pool, id).await? {
            return Err(provider_not_found());
        }
        tracing::info!("zitadel provider removed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn keys_are_trimmed_and_counted_once() {
        let k = parse_signing_keys(keys(&[" abc ", "abc", "def"]), true).unwrap();
        assert_eq!(k, keys(&["abc", "def"]));
    }

    #[test]
    fn a_required_signature_needs_a_key() {
        assert!(parse_signing_keys(vec![], true).is_err());
        assert!(parse_signing_keys(vec![], false).unwrap().is_empty());
    }

    #[test]
    fn bad_keys_are_refused() {
        for bad in ["", "has space", "tab\there", &"x".repeat(201)] {
            assert!(parse_signing_keys(keys(&[bad]), false).is_err(), "{bad:?}");
        }
        assert!(parse_signing_keys(keys(&["a", "b", "c", "d", "e", "f"]), true).is_err());
    }
}

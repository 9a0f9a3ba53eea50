//! `herald zitadel-provider add|list|remove`: the providers' admin endpoints on the
//! command line, with the machine's own authority (like `herald token create`).

use crate::auth::Principal;
use crate::config::Settings;
use crate::domain::Channel;
use crate::startup::{open_database, services};

use super::{notification_path, NewProvider, ProviderService};

/// `herald zitadel-provider add`.
#[derive(Debug, Clone)]
pub struct AddProvider {
    pub org: String,
    pub channel: Channel,
    pub signing_keys: Vec<String>,
    pub require_signature: bool,
    pub description: String,
    pub use_herald_invite_template: bool,
}

async fn provider_service(settings: &Settings) -> anyhow::Result<ProviderService> {
    let pool = open_database(settings).await?;
    let s = services(settings, pool.clone()).await?;
    Ok(ProviderService::new(pool, s.cipher))
}

/// Registers a provider and prints its id on stdout (for scripts), and the path to
/// configure in ZITADEL on stderr.
pub async fn add(settings: &Settings, a: AddProvider) -> anyhow::Result<()> {
    let providers = provider_service(settings).await?;
    let new = NewProvider {
        org_id: Some(a.org),
        channel: a.channel,
        signing_keys: a.signing_keys,
        require_signature: a.require_signature,
        description: a.description,
        use_herald_invite_template: a.use_herald_invite_template,
    };
    let p = providers.create(&Principal::cli(), new).await.map_err(|e| anyhow::anyhow!(e.message()))?;
    eprintln!(
        "provider {} ({} of organization {}, {} signing key(s)): point ZITADEL at https://<herald>{}",
        p.id,
        p.channel.as_str(),
        p.org_id,
        p.key_count,
        notification_path(&p.id)
    );
    println!("{}", p.id);
    Ok(())
}

/// Lists the providers (of one organization, when given).
pub async fn list(settings: &Settings, org: Option<String>) -> anyhow::Result<()> {
    let providers = provider_service(settings).await?;
    let all = providers.list(&Principal::cli(), org).await.map_err(|e| anyhow::anyhow!(e.message()))?;
    println!("{:<32} {:<20} {:<6} {:>4} {:<9} DESCRIPTION", "ID", "ORGANIZATION", "CHAN", "KEYS", "SIGNATURE");
    for p in all {
        let signature = if p.require_signature { "required" } else { "optional" };
        println!(
            "{:<32} {:<20} {:<6} {:>4} {:<9} {}",
            p.id,
            p.org_id,
            p.channel.as_str(),
            p.key_count,
            signature,
            p.description
        );
    }
    Ok(())
}

/// Removes a provider: ZITADEL's posts to its path answer 404 from then on.
pub async fn remove(settings: &Settings, id: &str) -> anyhow::Result<()> {
    let providers = provider_service(settings).await?;
    providers.delete(&Principal::cli(), id).await.map_err(|e| anyhow::anyhow!(e.message()))?;
    println!("provider {id} removed");
    Ok(())
}

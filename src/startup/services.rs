//! The domain services of one process, wired to one pool, and the database they
//! use: what `herald serve` and every command build before anything else
//! (docs/ARCHITECTURE.md, "Modules").

use std::sync::Arc;

use anyhow::Context;
use sqlx::PgPool;

use crate::auth::Authenticator;
use crate::config::Settings;
use crate::directory::Directory;
use crate::domain::id::READ_ONLY_NODE;
use crate::domain::{CodeCipher, IdGenerator, UrlTemplate};
use crate::invite::{InviteService, InviteSettings};
use crate::liveness::ProcessLease;
use crate::store;

use super::DELIVERY_LEASE;

/// Opens the database: creates it if missing, migrates unless told not to.
///
/// # Errors
/// The database cannot be reached or a migration fails.
pub async fn open_database(settings: &Settings) -> anyhow::Result<PgPool> {
    store::create_database_if_missing(&settings.database.url)
        .await
        .context("database.url: cannot create the database")?;
    let pool = store::pool(&settings.database.url, settings.database.max_connections).context("database.url")?;
    if settings.database.migrate_on_start {
        store::migrate(&pool).await.context("running migrations")?;
    }
    Ok(pool)
}

/// The domain services, wired to one pool.
pub struct Services {
    pub auth: Authenticator,
    pub directory: Directory,
    pub invites: InviteService,
    pub cipher: CodeCipher,
    pub ids: Arc<IdGenerator>,
    /// This process's row and heartbeat, which lease `ids` its node number (none
    /// for read-only commands). The heartbeat stops when this drops.
    pub lease: Option<ProcessLease>,
}

/// Builds the domain services, with a leased ID node (docs/ARCHITECTURE.md,
/// "Guarantees": no two live processes mint with one node).
///
/// # Errors
/// Invalid settings (the crypto key) or a database that does not answer.
pub async fn services(settings: &Settings, pool: PgPool) -> anyhow::Result<Services> {
    let lease =
        crate::liveness::lease(&pool, &settings.database.url, settings.delivery.process_dead_after, DELIVERY_LEASE)
            .await
            .context("leasing an ID node number")?;
    let ids = lease.ids.clone();
    services_with(settings, pool, ids, Some(lease))
}

/// The services of a command that only reads (`herald deliveries list`): no
/// process row and no node lease; its generator uses the node never leased.
///
/// # Errors
/// Invalid settings (the crypto key).
pub fn read_only_services(settings: &Settings, pool: PgPool) -> anyhow::Result<Services> {
    services_with(settings, pool, Arc::new(IdGenerator::new(READ_ONLY_NODE)), None)
}

fn services_with(
    settings: &Settings,
    pool: PgPool,
    ids: Arc<IdGenerator>,
    lease: Option<ProcessLease>,
) -> anyhow::Result<Services> {
    let cipher = CodeCipher::new(&settings.crypto_key()?);
    let invite_settings = InviteSettings {
        code_length: settings.invite.code_length,
        code_ttl: settings.invite.code_ttl,
        default_url_template: UrlTemplate::parse(&settings.invite.default_url_template)
            .map_err(|e| anyhow::anyhow!("invite.default_url_template: {}", e.text))?,
        default_application_name: settings.invite.default_application_name.clone(),
        max_codes_per_user_per_hour: settings.invite.max_codes_per_user_per_hour,
        limits: crate::invite::Limits {
            per_recipient: settings.invite.max_codes_per_recipient_per_hour,
            per_org: settings.invite.max_codes_per_org_per_hour,
        },
    };
    Ok(Services {
        auth: Authenticator::new(pool.clone(), ids.clone(), settings.bootstrap_token()),
        directory: Directory::new(pool.clone(), ids.clone()),
        invites: InviteService::new(pool.clone(), cipher.clone(), ids.clone(), invite_settings),
        cipher,
        ids,
        lease,
    })
}

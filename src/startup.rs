//! `Application`: everything `herald serve` starts, built the same way by `main`
//! and by the tests (which start it on port 0 with their own database).

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};
use anyhow::Context;
use sqlx::PgPool;

use crate::api::{self, AppState};
use crate::auth::Authenticator;
use crate::config::Settings;
use crate::directory::Directory;
use crate::domain::{CodeCipher, IdGenerator, UrlTemplate};
use crate::invite::{InviteService, InviteSettings};
use crate::store;

pub struct Application {
    port: u16,
    server: Server,
    pool: PgPool,
}

/// Opens the database: creates it if missing, migrates unless told not to.
///
/// # Errors
/// The database cannot be reached or a migration fails.
pub async fn open_database(settings: &Settings) -> anyhow::Result<PgPool> {
    store::create_database_if_missing(&settings.database.url).await.context("database.url: cannot create the database")?;
    let pool = store::pool(&settings.database.url, settings.database.max_connections).context("database.url")?;
    if settings.database.migrate_on_start {
        store::migrate(&pool).await.context("running migrations")?;
    }
    Ok(pool)
}

/// The services of the domain, wired to one pool.
///
/// # Errors
/// Invalid settings (the crypto key) or a database that does not answer.
pub async fn services(settings: &Settings, pool: PgPool) -> anyhow::Result<AppState> {
    let node = store::allocate_node_id(&pool).await.context("allocating an ID node number")?;
    let ids = Arc::new(IdGenerator::new(node));
    let cipher = CodeCipher::new(&settings.crypto_key()?);
    let invite_settings = InviteSettings {
        code_length: settings.invite.code_length,
        code_ttl: settings.invite.code_ttl,
        default_url_template: UrlTemplate::parse(&settings.invite.default_url_template)
            .map_err(|e| anyhow::anyhow!("invite.default_url_template: {}", e.text))?,
        default_application_name: settings.invite.default_application_name.clone(),
        max_codes_per_user_per_hour: settings.invite.max_codes_per_user_per_hour,
    };
    Ok(AppState {
        auth: Authenticator::new(pool.clone(), ids.clone(), settings.bootstrap_token()),
        directory: Directory::new(pool.clone(), ids.clone()),
        invites: InviteService::new(pool.clone(), cipher, ids, invite_settings),
        pool,
    })
}

impl Application {
    /// Connects, migrates and binds; the server runs once awaited.
    ///
    /// # Errors
    /// The database is unreachable, the address cannot be bound, or the settings
    /// are invalid.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.validate()?;
        if settings.env == "development" && settings.crypto.key.is_empty() {
            tracing::warn!("crypto.key is unset: using the development key; set it before storing real codes");
        }
        let pool = open_database(&settings).await?;
        let state = services(&settings, pool.clone()).await?;
        let listener = TcpListener::bind(&settings.http.addr).with_context(|| format!("http.addr: cannot bind {}", settings.http.addr))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "listening");
        let data = web::Data::new(state);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .wrap(middleware::from_fn(api::request_id::middleware))
                .configure(api::configure)
                .default_service(web::to(api::rest::not_found))
        })
        .listen(listener)?
        .shutdown_timeout(settings.shutdown.grace.as_secs())
        .run();
        Ok(Application { port: addr.port(), server, pool })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Serves until SIGINT/SIGTERM, then lets in-flight requests finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

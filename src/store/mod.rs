//! Every SQL statement herald runs lives below this module, grouped by table.
//!
//! Functions take `&mut PgConnection` when they must run inside a caller's
//! transaction (the invite service composes several into one), or the pool when they
//! stand alone. Nothing above `store` writes SQL.

pub mod bulk;
pub mod deliveries;
pub mod delivery_log;
mod error;
pub mod events;
pub mod invites;
pub mod orgs;
pub mod outbox;
pub mod processes;
pub mod tokens;
pub mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

pub type Tx = sqlx::Transaction<'static, Postgres>;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Creates the database named in `url` when it does not exist yet.
#[tracing::instrument(skip_all)]
pub async fn create_database_if_missing(url: &str) -> Result<(), sqlx::Error> {
    if !Postgres::database_exists(url).await? {
        tracing::info!("creating database");
        if let Err(e) = Postgres::create_database(url).await {
            // Two processes starting together may race to create it; the loser's
            // "already exists" is success.
            if !Postgres::database_exists(url).await? {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// A pool that connects lazily: herald starts (and answers `/healthz`) while the
/// database is still coming up, and requests fail with 503 until it answers.
pub fn pool(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?.application_name("herald");
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options))
}

#[tracing::instrument(skip_all)]
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// A node number (0–1023) for this process's ID generator, unique among the
/// processes that share the database (for up to 1024 starts before it wraps, which
/// only matters if more than 1024 run at once).
pub async fn allocate_node_id(pool: &PgPool) -> Result<u16, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT nextval('herald_node_ids')").fetch_one(pool).await?;
    Ok((n % 1024) as u16)
}

/// Whether the server runs autovacuum. herald updates each delivery row several
/// times; without vacuuming, its outbox index fills with dead entries and every
/// sweep slows down.
pub async fn autovacuum_on(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let v: String = sqlx::query_scalar("SHOW autovacuum").fetch_one(pool).await?;
    Ok(v == "on")
}

/// True when the database answers a trivial query.
pub async fn ping(pool: &PgPool) -> bool {
    sqlx::query("SELECT 1").execute(pool).await.is_ok()
}

/// Whether a query failed on a unique constraint named `constraint`.
pub(crate) fn is_unique_violation(e: &sqlx::Error, constraint: &str) -> bool {
    match e {
        sqlx::Error::Database(db) => db.code().as_deref() == Some("23505") && db.constraint() == Some(constraint),
        _ => false,
    }
}

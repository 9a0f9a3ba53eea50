//! Starting herald for a test: the real application on port 0, a database and a
//! queue prefix of the test's own, both removed when the test passes and kept when it
//! fails (to look at).

use std::sync::Once;
use std::time::Duration;

use base64::Engine;
use herald::config::Settings;
use herald::startup::Application;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

/// The server's root, without the database name.
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

/// A test's own database. herald's start-up makes and migrates it (the way it does in
/// production, so the tests run the real migrations); dropping this value drops the
/// database, unless the test is failing.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    /// A fresh name; nothing is made until herald (or `open`) connects.
    pub fn named(hex: &str) -> Self {
        let name = format!("herald_test_{hex}");
        TestDatabase { url: format!("{POSTGRES}/{name}"), name }
    }

    /// Makes and migrates the database with herald's own start-up code, for tests of
    /// library functions that need a database but no running herald.
    pub async fn open() -> (Self, PgPool) {
        let db = Self::named(&format!("{:016x}", rand::random::<u64>()));
        let mut settings = Settings::defaults();
        settings.database.url = db.url.clone();
        let pool = herald::startup::open_database(&settings).await.expect("the test database is created and migrated");
        (db, pool)
    }

    /// A pool on the server's maintenance database, for what a test does to its
    /// database from outside (drop it, refuse connections).
    async fn admin() -> PgPool {
        PgPoolOptions::new().max_connections(1).connect(&format!("{POSTGRES}/postgres")).await.unwrap()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: keeping database {}", self.name);
            return;
        }
        // Drop runs inside the test's runtime, which cannot block on itself: a
        // thread with its own small runtime drops the database (FORCE ends the
        // connections herald and the test's pools still hold).
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let admin = TestDatabase::admin().await;
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&admin).await;
                admin.close().await;
            });
        })
        .join();
    }
}

pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// `http://127.0.0.1:<port>` of the gRPC listener.
    pub grpc_address: String,
    /// A pool on the test's own database, to assert on rows.
    pub pool: PgPool,
    /// The configured bootstrap token (instance-scoped, every permission).
    pub bootstrap: String,
    pub client: reqwest::Client,
    /// The test's database name (to cut it off, or to look at it after a failure).
    pub database: String,
    /// The settings herald runs with (to start a second process on the same state).
    pub settings: Settings,
    /// The database, when this app made it (and so removes it); `None` for a second
    /// herald on another test's state. Dropped after `Drop::drop` removed the queues.
    owned_database: Option<TestDatabase>,
}

static TRACING: Once = Once::new();

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts herald with its worker, sending SMS through the webhook at
/// `<provider>/sms` (a real HTTP server the test runs).
pub async fn spawn_app_with_sms(provider: &wiremock::MockServer) -> TestApp {
    let url = format!("{}/sms", provider.uri());
    spawn_app_with(move |s| {
        s.roles = vec![herald::config::Role::Api, herald::config::Role::Worker];
        s.sms.provider = herald::config::SmsProvider::Webhook;
        s.sms.webhook_url = url;
    })
    .await
}

/// Starts herald with the test defaults, then `configure`'s changes.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let hex = format!("{:016x}", rand::random::<u64>());
    let database = TestDatabase::named(&hex);
    let mut settings = Settings::defaults();
    settings.http.addr = "127.0.0.1:0".into();
    settings.grpc.addr = "127.0.0.1:0".into();
    settings.database.url = database.url.clone();
    settings.auth.bootstrap_token = format!("bootstrap-{:032x}", rand::random::<u128>());
    settings.amqp.prefix = format!("herald-test-{hex}");
    settings.log.level = "warn".into();
    // A key of the test's own (and no warning about the development key).
    settings.crypto.key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    // The API alone by default: most tests look at the outbox rows as the API left
    // them. Tests of the delivery pipeline turn the worker role on.
    settings.roles = vec![herald::config::Role::Api];
    settings.email.transport = herald::config::EmailTransport::Log;
    // Most tests send many codes to one address (ada@example.com): the limits per
    // recipient and per organization are tested where they are set low.
    settings.invite.max_codes_per_recipient_per_hour = 1_000_000;
    settings.invite.max_codes_per_org_per_hour = 1_000_000;
    // One retry queue instead of six: fewer quorum queues per test.
    settings.delivery.retry_delays = vec![Duration::from_secs(1)];
    configure(&mut settings);
    let mut app = spawn_app_from(settings).await;
    app.owned_database = Some(database);
    app
}

/// Starts one more herald on `settings` (e.g. a worker on another test's database
/// and prefix). It leaves the database and queues to the test that made them.
pub async fn spawn_app_from(settings: Settings) -> TestApp {
    let database = settings.database.url.rsplit('/').next().unwrap_or_default().to_string();
    // One global subscriber for the whole binary (later calls are no-ops); at `warn`
    // it prints only what deserves a look.
    TRACING.call_once(|| herald::telemetry::init(&settings.log));

    let app = Application::build(settings.clone()).await.expect("herald starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let grpc_address = format!("http://127.0.0.1:{}", app.grpc_port());
    let bootstrap = settings.auth.bootstrap_token.clone();
    actix_web::rt::spawn(app.run_until_stopped());

    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&settings.database.url)
        .await
        .expect("the test database accepts connections");
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    TestApp { address, grpc_address, pool, bootstrap, client, database, settings, owned_database: None }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if self.owned_database.is_none() {
            return;
        }
        if std::thread::panicking() {
            eprintln!("test failed: keeping queues {}.*", self.settings.amqp.prefix);
            return;
        }
        // As for the database: a thread with its own runtime, since this one cannot
        // block on itself. The database goes right after, with `owned_database`.
        let topology = herald::queue::Topology::new(&self.settings.amqp.prefix, &self.settings.delivery.retry_delays);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(super::broker::delete_queues(&topology));
        })
        .join();
    }
}

impl TestApp {
    /// Makes the test's database refuse connections and ends the open ones (the
    /// server's and `pool`'s): herald's database is "down".
    pub async fn cut_off_database(&self) {
        let admin = TestDatabase::admin().await;
        sqlx::query(&format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS false", self.database))
            .execute(&admin)
            .await
            .unwrap();
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(&self.database)
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
    }

    /// Lets the test's database accept connections again (after `cut_off_database`).
    pub async fn restore_database(&self) {
        let admin = TestDatabase::admin().await;
        sqlx::query(&format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS true", self.database))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
    }
}

//! The test harness: starts the real application on port 0 with its own database
//! and queue prefix, and gives tests a client and a few helpers.

use std::sync::Once;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use herald::config::Settings;
use herald::startup::Application;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

/// The server's root, without the database name.
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// A pool on the test's own database, to assert on rows.
    pub pool: PgPool,
    /// The configured bootstrap token (instance-scoped, every permission).
    pub bootstrap: String,
    pub client: reqwest::Client,
    /// The test's database, dropped when the test passes (kept when it fails, to look
    /// at).
    pub database: String,
    /// The settings herald runs with (to start a second process on the same state).
    pub settings: Settings,
    /// Whether this app made the database and queue prefix (and so removes them).
    owns_state: bool,
}

static TRACING: Once = Once::new();

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts herald with the test defaults, then `configure`'s changes.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let hex = format!("{:016x}", rand::random::<u64>());
    let database = format!("herald_test_{hex}");
    let mut settings = Settings::defaults();
    settings.http.addr = "127.0.0.1:0".into();
    settings.database.url = format!("{POSTGRES}/{database}");
    settings.auth.bootstrap_token = format!("bootstrap-{:032x}", rand::random::<u128>());
    settings.amqp.prefix = format!("herald-test-{hex}");
    settings.log.level = "warn".into();
    // A key of the test's own (and no warning about the development key).
    settings.crypto.key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    // The API alone by default: most tests look at the outbox rows as the API left
    // them. Tests of the delivery pipeline turn the worker role on.
    settings.roles = vec![herald::config::Role::Api];
    settings.email.transport = herald::config::EmailTransport::Log;
    // One retry queue instead of six: fewer quorum queues per test.
    settings.delivery.retry_delays = vec![Duration::from_secs(1)];
    configure(&mut settings);
    let mut app = spawn_app_from(settings).await;
    app.owns_state = true;
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
    let bootstrap = settings.auth.bootstrap_token.clone();
    actix_web::rt::spawn(app.run_until_stopped());

    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&settings.database.url)
        .await
        .expect("the test database accepts connections");
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    TestApp { address, pool, bootstrap, client, database, settings, owns_state: false }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if !self.owns_state {
            return;
        }
        if std::thread::panicking() {
            eprintln!("test failed: keeping database {} and queues {}.*", self.database, self.settings.amqp.prefix);
            return;
        }
        // Drop runs inside the test's runtime, which cannot block on itself: a
        // thread with its own small runtime drops the database (FORCE ends the
        // connections the server and `pool` still hold).
        let name = self.database.clone();
        let topology = herald::queue::Topology::new(&self.settings.amqp.prefix, &self.settings.delivery.retry_delays);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                if let Ok(pool) = PgPoolOptions::new().max_connections(1).connect(&format!("{POSTGRES}/postgres")).await
                {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&pool).await;
                    pool.close().await;
                }
                delete_queues(&topology).await;
            });
        })
        .join();
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// POSTs JSON with a bearer token.
    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Response {
        self.client.post(self.url(path)).bearer_auth(token).json(body).send().await.expect("request sent")
    }

    /// POSTs raw bytes as JSON with a bearer token.
    pub async fn post_raw(&self, path: &str, token: &str, body: impl Into<reqwest::Body>) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.expect("request sent")
    }

    /// A Connect unary call: `POST /<service>/<method>` with the JSON message.
    pub async fn connect(&self, method: &str, token: &str, body: &Value) -> Response {
        self.post(&format!("/{method}"), token, body).await
    }

    /// A new organization (through the API, with the bootstrap token); its id.
    pub async fn create_org(&self) -> String {
        let name = format!("Org {:08x}", rand::random::<u32>());
        let resp = self.post("/v2/organizations", &self.bootstrap, &json!({ "name": name })).await;
        let body = ok_json(resp).await;
        body["organizationId"].as_str().expect("organizationId").to_string()
    }

    /// `POST /v2/users/human` with the bootstrap token; asserts 200 and returns the body.
    pub async fn add_human(&self, body: &Value) -> Value {
        ok_json(self.post("/v2/users/human", &self.bootstrap, body).await).await
    }

    /// A new human user of `org` with the given contacts; its id.
    pub async fn create_user(&self, org: &str, email: Option<&str>, phone: Option<&str>) -> String {
        let mut body = json!({
            "organization": {"orgId": org},
            "username": format!("user-{:016x}", rand::random::<u64>()),
            "profile": {"givenName": "Ada", "familyName": "Lovelace"},
        });
        if let Some(e) = email {
            body["email"] = json!({ "email": e });
        }
        if let Some(p) = phone {
            body["phone"] = json!({ "phone": p });
        }
        let body = ok_json(self.post("/v2/users/human", &self.bootstrap, &body).await).await;
        body["userId"].as_str().expect("userId").to_string()
    }

    /// An organization and one user with an e-mail address in it.
    pub async fn org_and_user(&self) -> (String, String) {
        let org = self.create_org().await;
        let user = self.create_user(&org, Some("ada@example.com"), None).await;
        (org, user)
    }

    /// A token for `org` (`None`: instance-scoped) with `perms`, minted by the
    /// bootstrap token.
    pub async fn token(&self, org: Option<&str>, perms: &[&str]) -> String {
        self.token_with_id(org, perms).await.1
    }

    /// `(tokenId, token)`.
    pub async fn token_with_id(&self, org: Option<&str>, perms: &[&str]) -> (String, String) {
        let mut body = json!({ "permissions": perms, "description": "test" });
        if let Some(o) = org {
            body["orgId"] = json!(o);
        }
        let body = ok_json(self.post("/admin/v1/tokens", &self.bootstrap, &body).await).await;
        (body["tokenId"].as_str().unwrap().to_string(), body["token"].as_str().unwrap().to_string())
    }

    /// Makes the test's database refuse connections and ends the open ones (the
    /// server's and `pool`'s): herald's database is "down".
    pub async fn cut_off_database(&self) {
        let admin = PgPoolOptions::new().max_connections(1).connect(&format!("{POSTGRES}/postgres")).await.unwrap();
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
        let admin = PgPoolOptions::new().max_connections(1).connect(&format!("{POSTGRES}/postgres")).await.unwrap();
        sqlx::query(&format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS true", self.database))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
    }

    /// `POST /v2/users/{user}/invite_code` with the bootstrap token.
    pub async fn create_code(&self, user: &str, body: &Value) -> Response {
        self.post(&format!("/v2/users/{user}/invite_code"), &self.bootstrap, body).await
    }

    /// Creates a code with `returnCode` and gives back `(code, sequence)`.
    pub async fn returned_code(&self, user: &str) -> (String, u64) {
        let body = ok_json(self.create_code(user, &json!({"returnCode": {}})).await).await;
        (body["inviteCode"].as_str().expect("inviteCode").to_string(), sequence(&body))
    }

    pub async fn resend(&self, user: &str) -> Response {
        self.post(&format!("/v2/users/{user}/invite_code/resend"), &self.bootstrap, &json!({})).await
    }

    pub async fn verify(&self, user: &str, code: &str) -> Response {
        self.post(
            &format!("/v2/users/{user}/invite_code/verify"),
            &self.bootstrap,
            &json!({ "verificationCode": code }),
        )
        .await
    }

    /// Every delivery of `user`, oldest first.
    pub async fn deliveries(&self, user: &str) -> Vec<Delivery> {
        sqlx::query_as(
            "SELECT status, channel, recipient, template, org_id, code_event_sequence
             FROM deliveries WHERE user_id = $1 ORDER BY created_at, id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    /// The types of `user`'s events, in sequence order.
    pub async fn event_types(&self, user: &str) -> Vec<String> {
        sqlx::query_scalar("SELECT type FROM events WHERE aggregate_id = $1 ORDER BY sequence")
            .bind(user)
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    pub async fn invite_row(&self, user: &str) -> Option<InviteRow> {
        sqlx::query_as(
            "SELECT code_encrypted, url_template, application_name, channel, returned, failed_checks, event_sequence
             FROM invite_codes WHERE user_id = $1",
        )
        .bind(user)
        .fetch_optional(&self.pool)
        .await
        .unwrap()
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Delivery {
    pub status: String,
    pub channel: String,
    pub recipient: String,
    pub template: String,
    pub org_id: String,
    pub code_event_sequence: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InviteRow {
    pub code_encrypted: Option<Vec<u8>>,
    pub url_template: String,
    pub application_name: String,
    pub channel: String,
    pub returned: bool,
    pub failed_checks: i32,
    pub event_sequence: i64,
}

/// Asserts 200 and returns the JSON body.
pub async fn ok_json(resp: Response) -> Value {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "expected 200, got {status}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `details.sequence` of a write's response, checked to be a JSON string.
pub fn sequence(body: &Value) -> u64 {
    let s = body["details"]["sequence"].as_str().unwrap_or_else(|| panic!("sequence is not a string: {body}"));
    s.parse().unwrap_or_else(|_| panic!("sequence is not a uint64: {s}"))
}

/// Asserts the REST error shape of API.md §1.2 with this status, code and id, and
/// returns the body. `message` is `"<text> (<id>)"` and `details[0]` repeats both.
pub async fn assert_error(resp: Response, status: u16, code: u64, id: &str) -> Value {
    let body = assert_error_code(resp, status, code).await;
    let detail = &body["details"][0];
    assert_eq!(detail["id"], json!(id), "{body}");
    let text = detail["message"].as_str().unwrap_or_else(|| panic!("details[0].message: {body}"));
    assert_eq!(body["message"], json!(format!("{text} ({id})")), "{body}");
    body
}

/// Asserts the REST error shape with this status and code, whatever the id.
pub async fn assert_error_code(resp: Response, status: u16, code: u64) -> Value {
    let got = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "status: {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("error body is not JSON ({e}): {text}"));
    assert_eq!(body["code"], json!(code), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "message: {body}");
    let details = body["details"].as_array().unwrap_or_else(|| panic!("details is not a list: {body}"));
    for d in details {
        assert_eq!(d["@type"], json!("type.googleapis.com/zitadel.v1.ErrorDetail"), "{body}");
        let (id, text) = (d["id"].as_str().unwrap(), d["message"].as_str().unwrap());
        assert_eq!(body["message"], json!(format!("{text} ({id})")), "{body}");
    }
    body
}

/// Asserts the Connect error shape of API.md §6 with this status, code name and id,
/// decoding `details[0].value` as the protobuf `ErrorDetail {1: id, 2: message}`.
pub async fn assert_connect_error(resp: Response, status: u16, code: &str, id: &str) -> Value {
    let got = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "status: {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("error body is not JSON ({e}): {text}"));
    assert_eq!(body["code"], json!(code), "{body}");
    let details = body["details"].as_array().unwrap_or_else(|| panic!("details: {body}"));
    assert_eq!(details.len(), 1, "{body}");
    let d = &details[0];
    assert_eq!(d["type"], json!("zitadel.v1.ErrorDetail"), "{body}");
    assert_eq!(d["debug"]["id"], json!(id), "{body}");
    let message = d["debug"]["message"].as_str().unwrap_or_else(|| panic!("debug.message: {body}"));
    assert_eq!(body["message"], json!(format!("{message} ({id})")), "{body}");
    // Connect writes binary as base64, padded or not.
    let value = d["value"].as_str().unwrap_or_else(|| panic!("value: {body}"));
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(value.trim_end_matches('='))
        .unwrap_or_else(|e| panic!("value is not base64 ({e}): {body}"));
    assert_eq!(bytes, protobuf_error_detail(id, message), "value of {body}");
    body
}

/// The expected encoding of `zitadel.v1.ErrorDetail { string id = 1; string message = 2; }`.
fn protobuf_error_detail(id: &str, message: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for (tag, s) in [(0x0a_u8, id), (0x12, message)] {
        out.push(tag);
        let mut len = s.len();
        while len >= 0x80 {
            out.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(s.as_bytes());
    }
    out
}

/// Asserts an RFC 3339 UTC timestamp with exactly milliseconds (`…:59.198Z`), and
/// returns it.
pub fn timestamp(v: &Value) -> DateTime<Utc> {
    let s = v.as_str().unwrap_or_else(|| panic!("timestamp is not a string: {v}"));
    let t: DateTime<Utc> = DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}")).into();
    assert_eq!(s, t.to_rfc3339_opts(SecondsFormat::Millis, true), "not UTC with 3 fractional digits and Z");
    assert!(s.len() == 24 && s.ends_with('Z') && s.as_bytes()[19] == b'.', "{s}");
    t
}

/// Asserts the `details` of a write: sequence a string, equal dates close to now,
/// owned by `org`. Returns the sequence.
pub fn assert_write_details(body: &Value, org: &str) -> u64 {
    let d = &body["details"];
    let seq = sequence(body);
    assert_eq!(d["changeDate"], d["creationDate"], "{body}");
    let at = timestamp(&d["changeDate"]);
    let age = Utc::now() - at;
    assert!(age >= -chrono::Duration::seconds(5) && age < chrono::Duration::seconds(30), "changeDate {at} is not now");
    assert_eq!(d["resourceOwner"], json!(org), "{body}");
    seq
}

/// The `Retry-After` header as whole seconds, asserted to be a positive integer.
pub fn retry_after(resp: &Response) -> u64 {
    let v = resp.headers().get("retry-after").expect("Retry-After header").to_str().unwrap().to_string();
    let secs: u64 = v.parse().unwrap_or_else(|_| panic!("Retry-After is not whole seconds: {v:?}"));
    assert!(secs > 0, "Retry-After: {secs}");
    secs
}

/// How long to sleep for a TTL to have passed, with some margin.
pub fn past(ttl: Duration) -> Duration {
    ttl + Duration::from_millis(500)
}

/// Removes a test's queues and exchanges, so runs do not pile up quorum queues.
async fn delete_queues(t: &herald::queue::Topology) {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    let Ok(conn) =
        lapin::Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", lapin::ConnectionProperties::default())
            .await
    else {
        return;
    };
    let Ok(ch) = conn.create_channel().await else { return };
    let mut queues = vec![
        t.email_queue(),
        t.sms_queue(),
        t.bulk_email_queue(),
        t.bulk_sms_queue(),
        t.resend_queue(),
        t.dead_queue(),
    ];
    queues.extend(t.retry_delays.iter().map(|d| t.retry_queue(*d)));
    for q in queues {
        let _ = ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await;
    }
    for e in [t.exchange(), t.retry_exchange()] {
        let _ = ch.exchange_delete(e.as_str().into(), ExchangeDeleteOptions::default()).await;
    }
    let _ = conn.close(200, "test done".into()).await;
}

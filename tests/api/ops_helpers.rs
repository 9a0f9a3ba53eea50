//! What the operators' tests share (bulk re-invites, replay, the command line): a
//! herald with workers that mails through the test SMTP server, seeding many users
//! quickly, waiting for what happens asynchronously, and the broker as an outside
//! producer sees it.

use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use herald::config::{EmailTransport, Role, Settings};
use herald::domain::{CodeCipher, IdGenerator, InviteCode};
use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{json, Value};

use crate::helpers::{ok_json, TestApp};
use crate::smtp::SmtpServer;

/// How long anything asynchronous may take before a test gives up.
pub const WAIT: Duration = Duration::from_secs(30);

/// Requests in flight when a test seeds through the API.
const IN_FLIGHT: usize = 16;

/// The API and the workers, mail through `smtp`, retries after one second, three
/// attempts at most.
pub fn with_mail(smtp: &SmtpServer) -> impl FnOnce(&mut Settings) + '_ {
    move |s: &mut Settings| {
        s.roles = vec![Role::Api, Role::Worker];
        s.email.transport = EmailTransport::Smtp;
        s.email.smtp_url = smtp.url();
        s.delivery.retry_delays = vec![Duration::from_secs(1)];
        s.delivery.max_attempts = 3;
    }
}

/// Asks `probe` every 50 ms until it answers `Some`, and returns that; panics with
/// `what` (and the last answer's absence) after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "waited {timeout:?} in vain for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `f` on every item, a few at a time; the results in the items' order.
pub async fn concurrently<I, T, F, Fut>(items: I, f: F) -> Vec<T>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = T>,
{
    futures_util::stream::iter(items).map(f).buffered(IN_FLIGHT).collect().await
}

/// `n` users of `org` made by herald's own importer from a generated CSV file,
/// with the addresses `<local>0@example.com` … ; their ids, in that order.
pub async fn import_users(app: &TestApp, org: &str, local: &str, n: usize) -> Vec<String> {
    let mut csv = String::from("username,email,given_name,family_name\n");
    for i in 0..n {
        csv.push_str(&format!("{local}{i},{local}{i}@example.com,Ada,Lovelace {i}\n"));
    }
    let path = std::env::temp_dir().join(format!("herald-test-{:016x}.csv", rand::random::<u64>()));
    std::fs::write(&path, csv).unwrap();
    let node = herald::store::allocate_node_id(&app.pool).await.unwrap();
    let report = herald::ops::import::import_users(&app.pool, &IdGenerator::new(node), org, &path, |_| {})
        .await
        .expect("the import runs");
    std::fs::remove_file(&path).unwrap();
    assert_eq!((report.imported, report.rejected.len()), (n, 0), "{:?}", report.rejected);

    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT email, id FROM users WHERE org_id = $1 AND username LIKE $2")
            .bind(org)
            .bind(format!("{local}%"))
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let by_email: std::collections::HashMap<String, String> = rows.into_iter().collect();
    (0..n).map(|i| by_email[&format!("{local}{i}@example.com")].clone()).collect()
}

/// Gives each user a sent, unexpired e-mail code the way Create leaves one (the code
/// sealed under the test's `crypto.key`, an `invite.code.added` event, the user's
/// sequence bumped) but without a delivery, so no mail goes out for it. For seeding
/// thousands of users; the codes, in the users' order.
pub async fn seed_sent_codes(app: &TestApp, org: &str, users: &[String]) -> Vec<String> {
    let cipher = CodeCipher::new(&app.settings.crypto_key().unwrap());
    let codes: Vec<InviteCode> = users.iter().map(|_| InviteCode::generate(app.settings.invite.code_length)).collect();
    let sealed: Vec<Vec<u8>> = users.iter().zip(&codes).map(|(u, c)| cipher.seal(c, u)).collect();
    let mut tx = app.pool.begin().await.unwrap();
    sqlx::query("UPDATE users SET sequence = sequence + 1, changed_at = now() WHERE id = ANY($1)")
        .bind(users)
        .execute(&mut *tx)
        .await
        .unwrap();
    let sequences: Vec<i64> = sqlx::query_scalar(
        "SELECT u.sequence FROM UNNEST($1::text[]) WITH ORDINALITY AS s(id, n) JOIN users u ON u.id = s.id ORDER BY s.n",
    )
    .bind(users)
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO events (aggregate_id, aggregate_type, sequence, type, payload, resource_owner, created_at, created_by)
         SELECT id, 'user', seq, 'invite.code.added', '{\"channel\": \"email\", \"returned\": false}', $3, now(), 'test'
         FROM UNNEST($1::text[], $2::bigint[]) AS s(id, seq)",
    )
    .bind(users)
    .bind(&sequences)
    .bind(org)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO invite_codes (user_id, code_encrypted, expires_at, url_template, application_name, channel,
                                   returned, failed_checks, event_sequence, created_at)
         SELECT id, sealed, now() + interval '1 day', $3, 'Acme', 'email', false, 0, seq, now()
         FROM UNNEST($1::text[], $2::bytea[], $4::bigint[]) AS s(id, sealed, seq)",
    )
    .bind(users)
    .bind(&sealed)
    .bind(&app.settings.invite.default_url_template)
    .bind(&sequences)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    codes.iter().map(|c| c.expose().to_string()).collect()
}

/// Sends every user a first code through the API (`POST …/invite_code`).
pub async fn send_codes(app: &TestApp, users: &[String]) {
    concurrently(users, |u| async move {
        ok_json(app.create_code(u, &json!({"sendCode": {"applicationName": "Acme"}})).await).await;
    })
    .await;
}

/// `(status, attempts)` of every delivery of `user`, oldest first.
pub async fn statuses(app: &TestApp, user: &str) -> Vec<(String, i32)> {
    sqlx::query_as("SELECT status, attempts FROM deliveries WHERE user_id = $1 ORDER BY id")
        .bind(user)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

/// Waits until the newest delivery of `user` has `status`; returns its id.
pub async fn wait_status(app: &TestApp, user: &str, status: &str) -> String {
    eventually(&format!("a {status} delivery for {user}"), WAIT, || async {
        let newest: Option<(String, String)> =
            sqlx::query_as("SELECT id::text, status FROM deliveries WHERE user_id = $1 ORDER BY id DESC LIMIT 1")
                .bind(user)
                .fetch_optional(&app.pool)
                .await
                .unwrap();
        newest.filter(|(_, s)| s == status).map(|(id, _)| id)
    })
    .await
}

/// `GET /admin/v1/bulk/{job}` with the bootstrap token.
pub async fn job(app: &TestApp, job: &str) -> Value {
    ok_json(app.get(&format!("/admin/v1/bulk/{job}"), &app.bootstrap).await).await
}

/// Waits until the job reports `finishedAt`, and returns its status.
pub async fn finished_job(app: &TestApp, id: &str, timeout: Duration) -> Value {
    eventually(&format!("job {id} to finish"), timeout, || async {
        let status = job(app, id).await;
        status.get("finishedAt").is_some().then_some(status)
    })
    .await
}

/// `POST /admin/v1/bulk/resend` with the bootstrap token: asserts 202 and returns
/// `(jobId, total)`.
pub async fn start_job(app: &TestApp, body: &Value) -> (String, u64) {
    let resp = app.post("/admin/v1/bulk/resend", &app.bootstrap, body).await;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 202, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["jobId", "total"], "{body}");
    let id = body["jobId"].as_str().unwrap_or_else(|| panic!("jobId is not a string: {body}"));
    assert!(!id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()), "{id}");
    (id.to_string(), body["total"].as_u64().unwrap())
}

pub async fn amqp() -> Connection {
    Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", ConnectionProperties::default()).await.unwrap()
}

/// Publishes as an outside producer does: on herald's exchange, with confirms and
/// `mandatory`, again until the broker routed it (herald declares its topology in
/// the background, so the exchange or the binding may not be there yet).
pub async fn publish(conn: &Connection, exchange: &str, routing_key: &str, kind: &str, body: &[u8]) {
    let confirming = || async {
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        ch
    };
    let mut ch = confirming().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let confirm = ch
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions { mandatory: true, ..Default::default() },
                body,
                BasicProperties::default().with_type(kind.into()),
            )
            .await;
        match confirm {
            // `Ack(None)`: routed; `Ack(Some(returned))`: no queue took it yet.
            Ok(c) => match c.await {
                Ok(lapin::Confirmation::Ack(None)) => return,
                other => assert!(Instant::now() < deadline, "not routed: {other:?}"),
            },
            // The exchange is not declared yet: the broker closed the channel.
            Err(e) => assert!(Instant::now() < deadline, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !ch.status().connected() {
            ch = confirming().await;
        }
    }
}

/// A message taken from a queue: its body and its headers as text.
#[derive(Debug)]
pub struct Taken {
    pub body: Vec<u8>,
    pub kind: Option<String>,
    pub headers: std::collections::BTreeMap<String, String>,
}

/// Takes every message waiting in `queue`.
pub async fn drain_queue(conn: &Connection, queue: &str) -> Vec<Taken> {
    let ch = conn.create_channel().await.unwrap();
    let mut out = Vec::new();
    while let Some(msg) = ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.unwrap() {
        let p = &msg.delivery.properties;
        let headers = p
            .headers()
            .as_ref()
            .map(|h| h.inner().clone())
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    lapin::types::AMQPValue::LongString(s) => s.to_string(),
                    other => format!("{other:?}"),
                };
                (k.as_str().to_string(), v)
            })
            .collect();
        out.push(Taken {
            body: msg.delivery.data.clone(),
            kind: p.kind().as_ref().map(|k| k.as_str().to_string()),
            headers,
        });
    }
    out
}

/// Makes the test SMTP server accept `recipient` again after a refusal.
pub fn accept_again(smtp: &SmtpServer, recipient: &str) {
    smtp.refuse(recipient, "250 OK", Some(0));
}

/// Waits until `/readyz` says the database and the broker answer: a job is
/// published before its 202, so a job posted while herald is still connecting to
/// the broker is refused with 503.
pub async fn wait_ready(app: &TestApp) {
    eventually("herald to be ready", WAIT, || async {
        let resp = app.client.get(app.url("/readyz")).send().await.unwrap();
        (resp.status().as_u16() == 200).then_some(())
    })
    .await;
}

/// Takes messages from `queue` until at least `n` came (failing after `WAIT`), then
/// waits a little longer for any that should not come, and returns all of them.
pub async fn take_at_least(conn: &Connection, queue: &str, n: usize) -> Vec<Taken> {
    let deadline = Instant::now() + WAIT;
    let mut taken = drain_queue(conn, queue).await;
    while taken.len() < n {
        assert!(Instant::now() < deadline, "{} of {n} reached {queue}", taken.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
        taken.extend(drain_queue(conn, queue).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    taken.extend(drain_queue(conn, queue).await);
    taken
}

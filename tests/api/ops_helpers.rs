//! What the operators' tests share (bulk re-invites, replay, the command line): a
//! herald with workers that mails through the test SMTP server, seeding many users
//! quickly, and bulk jobs through the API.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use herald::config::{EmailTransport, Role, Settings};
use herald::domain::{CodeCipher, IdGenerator, InviteCode};
use serde_json::{json, Value};

use crate::helpers::{eventually, ok_json, TestApp};
use crate::smtp::SmtpServer;

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

/// Makes the test SMTP server accept `recipient` again after a refusal.
pub fn accept_again(smtp: &SmtpServer, recipient: &str) {
    smtp.refuse(recipient, "250 OK", Some(0));
}

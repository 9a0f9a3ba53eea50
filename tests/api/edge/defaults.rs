//! Secure defaults (docs/ARCHITECTURE.md, "Configuration"): no shared development
//! key, production refuses to start without one, SMTP credentials never in the
//! clear by default, tokens made by tokens bounded by their maker, and `/metrics`
//! served from a cached count.

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{assert_error, eventually, ok_json, spawn_app, spawn_app_with, TestApp, WAIT};
use crate::ops_helpers::with_mail;
use crate::smtp::SmtpServer;

/// `herald serve` on the app's database and queue prefix, with no `crypto.key`.
fn serve(app: &TestApp, key_file: &std::path::Path, env: Option<&str>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.arg("serve")
        .env_remove("HERALD_ENV")
        .env_remove("HERALD__CRYPTO__KEY")
        .env_remove("RUST_LOG")
        .env("HERALD__DATABASE__URL", &app.settings.database.url)
        .env("HERALD__AMQP__PREFIX", &app.settings.amqp.prefix)
        .env("HERALD__HTTP__ADDR", "127.0.0.1:0")
        .env("HERALD__ROLES", "api")
        .env("HERALD__CRYPTO__KEY_FILE", key_file)
        .env("HERALD__LOG__LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(e) = env {
        cmd.env("HERALD_ENV", e);
    }
    cmd
}

/// Starts `herald serve`, waits for the key file to hold a key, stops it; its key
/// and what it logged.
async fn first_start(app: &TestApp, key_file: &std::path::Path) -> (String, String) {
    let mut child = serve(app, key_file, None).spawn().unwrap();
    let key = eventually("the key file", WAIT, || async {
        std::fs::read_to_string(key_file).ok().filter(|k| k.trim().len() == 44)
    })
    .await;
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    (key, String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[actix_web::test]
async fn without_a_key_a_development_machine_gets_its_own_private_one() {
    let app = spawn_app().await;
    let dir = std::env::temp_dir().join(format!("herald-key-{:016x}", rand::random::<u64>()));
    let key_file = dir.join("herald.key");

    let (key, log) = first_start(&app, &key_file).await;
    assert!(log.contains("crypto.key is unset"), "a warning: {log}");
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_ne!(key.trim(), "aGVyYWxkLWRldmVsb3BtZW50LWtleS1ub3Qtc2FmZSE=", "not the old shared key");

    let (again, _) = first_start(&app, &key_file).await;
    assert_eq!(again, key, "the same key on the next start");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[actix_web::test]
async fn production_without_a_key_refuses_to_start() {
    let app = spawn_app().await;
    let key_file = std::env::temp_dir().join(format!("herald-key-{:016x}", rand::random::<u64>()));
    let run = serve(&app, &key_file, Some("production")).output();
    let out = tokio::time::timeout(Duration::from_secs(30), run).await.expect("herald exits").unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr.contains("crypto.key"), "{stderr}");
    assert!(!key_file.exists(), "no key made in production");
}

#[actix_web::test]
async fn smtp_credentials_without_tls_are_not_sent_in_the_clear() {
    // Arrange: a server that offers no STARTTLS, and a URL with credentials.
    let smtp = SmtpServer::start().await;
    let url = format!("smtp://herald:secret@127.0.0.1:{}", smtp.port);
    let app = spawn_app_with(|s| {
        with_mail(&smtp)(s);
        s.email.smtp_url = url;
    })
    .await;
    let (_org, user) = app.org_and_user().await;

    // Act
    ok_json(app.create_code(&user, &json!({})).await).await;

    // Assert: the attempt fails on TLS, and no mail went out.
    let error: String = eventually("a failed attempt", WAIT, || async {
        sqlx::query_scalar("SELECT last_error FROM deliveries WHERE user_id = $1 AND last_error IS NOT NULL")
            .bind(&user)
            .fetch_optional(&app.pool)
            .await
            .unwrap()
    })
    .await;
    assert!(error.to_lowercase().contains("tls"), "{error}");
    assert_eq!(smtp.received(), 0);
}

#[actix_web::test]
async fn a_token_made_by_a_token_expires_with_it_and_is_revoked_with_it() {
    // Arrange: a token that expires in an hour, which makes a token, which makes one.
    let app = spawn_app().await;
    let org = app.create_org().await;
    let in_an_hour = chrono::Utc::now() + chrono::Duration::hours(1);
    let body = json!({"orgId": org, "permissions": ["token.write", "user.read"], "expiresAt": in_an_hour});
    let maker = ok_json(app.post("/admin/v1/tokens", &app.bootstrap, &body).await).await;
    let maker_token = maker["token"].as_str().unwrap();
    let body = json!({"permissions": ["token.write", "user.read"], "expiresAt": "2099-01-01T00:00:00Z"});
    let child = ok_json(app.post("/admin/v1/tokens", maker_token, &body).await).await;
    let child_token = child["token"].as_str().unwrap();
    let grandchild =
        ok_json(app.post("/admin/v1/tokens", child_token, &json!({"permissions": ["user.read"]})).await).await;
    let grandchild_token = grandchild["token"].as_str().unwrap();

    // Assert: neither outlives the maker.
    let expiries: Vec<Option<chrono::DateTime<chrono::Utc>>> =
        sqlx::query_scalar("SELECT expires_at FROM api_tokens WHERE id = ANY($1) ORDER BY id")
            .bind(vec![child["tokenId"].as_str().unwrap(), grandchild["tokenId"].as_str().unwrap()])
            .fetch_all(&app.pool)
            .await
            .unwrap();
    for e in expiries {
        let e = e.expect("an expiry inherited from the maker");
        assert!(e <= in_an_hour + chrono::Duration::milliseconds(1), "{e} after {in_an_hour}");
    }

    // Act: the maker is revoked.
    let maker_id = maker["tokenId"].as_str().unwrap();
    let revoke = app.client.delete(app.url(&format!("/admin/v1/tokens/{maker_id}"))).bearer_auth(&app.bootstrap);
    assert_eq!(revoke.send().await.unwrap().status().as_u16(), 200);

    // Assert: what it made, and what that made, no longer authenticate.
    for token in [maker_token, child_token, grandchild_token] {
        assert_error(app.get(&format!("/v2/organizations/{org}"), token).await, 401, 16, "AUTH-7fs1e").await;
    }
}

#[actix_web::test]
async fn metrics_answer_from_a_cached_count_not_a_count_per_scrape() {
    // Arrange: no broker, so what is queued stays in the outbox.
    let app = spawn_app_with(|s| s.amqp.url = "amqp://guest:guest@127.0.0.1:1/%2f".into()).await;
    let scrape = || async { app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap() };
    assert!(scrape().await.contains("herald_outbox_backlog 0"));
    let (_org, user) = app.org_and_user().await;
    ok_json(app.create_code(&user, &json!({})).await).await;

    // Act: scraped again at once.
    let text = scrape().await;

    // Assert: the backlog is the cached value; the database was not counted again.
    assert!(text.contains("herald_outbox_backlog 0"), "{text}");
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE published_at IS NULL")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(queued, 1);
}

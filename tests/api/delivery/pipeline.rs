//! What a delivered mail holds (multipart, language, escaping, login methods), what
//! travels on the broker (ids, never a code or an address), and the metrics.

use herald::config::Role;
use serde_json::{json, Value};

use super::{send_code, user_with};
use crate::helpers::{amqp, drain_queue, eventually, ok_json, spawn_app_with, wait_ready, wait_status, WAIT};
use crate::ops_helpers::with_mail;
use crate::smtp::SmtpServer;

#[actix_web::test]
async fn a_created_code_arrives_as_multipart_mail_whose_link_verifies() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    let (_org, user) = app.org_and_user().await;
    send_code(&app, &user).await;

    let mail = smtp.wait_for("ada@example.com", 1, WAIT).await.remove(0);
    assert!(mail.is_multipart_alternative(), "{}", mail.raw);
    assert_eq!(mail.from, "no-reply@localhost", "the envelope sender is email.from");
    assert_eq!(mail.subject(), "Invitation to Acme");
    let html = mail.part("text/html").expect("an HTML part");
    let code = mail.code_from_link();
    assert!(html.contains(&code), "the HTML part carries the code");
    assert!(mail.part("text/plain").unwrap().contains(&format!("Your invite code: {code}")));
    assert!(mail.header("Message-ID").is_some_and(|id| id.contains(".invite@")), "stable Message-ID");

    wait_status(&app, &user, "sent").await;
    ok_json(app.verify(&user, &code).await).await;
}

#[actix_web::test]
async fn a_german_user_gets_a_german_mail() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    let org = app.create_org().await;
    let user = user_with(
        &app,
        &org,
        json!({
            "email": {"email": "greta@example.com"},
            "profile": {"givenName": "Greta", "familyName": "Keller", "preferredLanguage": "de-CH"},
        }),
    )
    .await;
    send_code(&app, &user).await;
    let mail = smtp.wait_for("greta@example.com", 1, WAIT).await.remove(0);
    assert_eq!(mail.subject(), "Einladung zu Acme");
    assert!(mail.part("text/plain").unwrap().contains("Einladungscode"));
}

#[actix_web::test]
async fn the_organizations_language_applies_when_the_user_has_none() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    let org = ok_json(
        app.post("/v2/organizations", &app.bootstrap, &json!({"name": "Dupont", "defaultLanguage": "fr"})).await,
    )
    .await;
    let org = org["organizationId"].as_str().unwrap();
    let user = app.create_user(org, Some("jean@example.com"), None).await;
    send_code(&app, &user).await;
    let mail = smtp.wait_for("jean@example.com", 1, WAIT).await.remove(0);
    assert_eq!(mail.subject(), "Invitation à rejoindre Acme");
}

#[actix_web::test]
async fn html_escapes_the_display_name_and_text_keeps_it() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    let org = app.create_org().await;
    let user = user_with(
        &app,
        &org,
        json!({
            "email": {"email": "mallory@example.com"},
            "profile": {"givenName": "M", "familyName": "X", "displayName": "<script>alert(1)</script>"},
        }),
    )
    .await;
    send_code(&app, &user).await;
    let mail = smtp.wait_for("mallory@example.com", 1, WAIT).await.remove(0);
    let html = mail.part("text/html").unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(mail.part("text/plain").unwrap().contains("Hello <script>alert(1)</script>,"));
}

#[actix_web::test]
async fn the_mail_names_the_organizations_login_methods() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    let body = json!({"name": "Keys only", "loginMethods": ["passkey", "idp"]});
    let org = ok_json(app.post("/v2/organizations", &app.bootstrap, &body).await).await;
    let org = org["organizationId"].as_str().unwrap();
    let user = app.create_user(org, Some("kim@example.com"), None).await;
    send_code(&app, &user).await;
    let text = smtp.wait_for("kim@example.com", 1, WAIT).await.remove(0).part("text/plain").unwrap();
    assert!(text.contains("- Passkey"), "{text}");
    assert!(text.contains("- Identity provider"), "{text}");
    assert!(!text.contains("- Password"), "{text}");
}

#[actix_web::test]
async fn broker_messages_carry_ids_and_no_code_address_or_name() {
    let app = spawn_app_with(|s| s.roles = vec![Role::Api]).await;
    let org = app.create_org().await;
    let user = user_with(
        &app,
        &org,
        json!({
            "email": {"email": "secret.person@example.com"},
            "profile": {"givenName": "Secretgiven", "familyName": "Secretfamily"},
        }),
    )
    .await;
    send_code(&app, &user).await;
    ok_json(app.resend(&user).await).await;
    // The current code, read the way herald reads it.
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT code_encrypted FROM invite_codes WHERE user_id = $1")
        .bind(&user)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let key: [u8; 32] = app.settings.crypto_key().unwrap();
    let code = herald::domain::CodeCipher::new(&key).open(&sealed, &user).unwrap().expose().to_string();

    // No worker takes them: they wait in the queue. (The first delivery may be on
    // it too: a committed delivery is published at once, superseded or not.)
    let newest: i64 = sqlx::query_scalar("SELECT id FROM deliveries WHERE user_id = $1 ORDER BY id DESC LIMIT 1")
        .bind(&user)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let queue =
        herald::queue::Topology::new(&app.settings.amqp.prefix, &app.settings.delivery.retry_delays).email_queue();
    // The queues exist once herald's broker link is up.
    wait_ready(&app).await;
    let conn = amqp().await;
    let messages = std::cell::RefCell::new(Vec::new());
    let is_newest = |m: &crate::helpers::Taken| {
        serde_json::from_slice::<Value>(&m.body).unwrap()["deliveryId"] == json!(newest.to_string())
    };
    eventually("the newest delivery's message in the queue", WAIT, || async {
        let taken = drain_queue(&conn, &queue).await;
        messages.borrow_mut().extend(taken);
        messages.borrow().iter().any(is_newest).then_some(())
    })
    .await;
    let messages = messages.into_inner();
    for m in &messages {
        let (body, props) = (&m.body, m.properties());
        let json: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(json.as_object().unwrap().keys().collect::<Vec<_>>(), ["attempt", "deliveryId", "v"]);
        let everything = format!("{} {props}", String::from_utf8_lossy(body));
        for secret in [code.as_str(), "secret.person", "Secretgiven", "Secretfamily"] {
            assert!(!everything.contains(secret), "{secret} leaked into the broker: {everything}");
        }
    }
    let props = messages[0].properties();
    assert!(
        props.contains("delivery.v1") && props.contains("traceparent") && props.contains("x-request-id"),
        "{props}"
    );
}

#[actix_web::test]
async fn metrics_count_deliveries_by_channel_and_status() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    let (_org, user) = app.org_and_user().await;
    send_code(&app, &user).await;
    wait_status(&app, &user, "sent").await;
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains(r#"herald_deliveries_total{channel="email",status="sent"} 1"#), "{text}");
    assert!(text.contains("herald_delivery_attempt_seconds_bucket"), "{text}");
    assert!(text.contains("herald_outbox_backlog 0"), "{text}");
}

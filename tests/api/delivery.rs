//! The delivery pipeline (DESIGN.md §1–§8): a real RabbitMQ, a real SMTP server in
//! the test process, a real HTTP server (wiremock) as the SMS provider.

use std::time::Duration;

use herald::config::{Role, SmsProvider};
use lapin::options::{BasicGetOptions, BasicPublishOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{json, Value};
use wiremock::matchers::{header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{ok_json, spawn_app_from, spawn_app_with, TestApp};
use crate::ops_helpers::with_mail;
use crate::smtp::SmtpServer;

const WAIT: Duration = Duration::from_secs(20);

async fn user_with(app: &TestApp, org: &str, body: Value) -> String {
    let mut body = body;
    body["organization"] = json!({ "orgId": org });
    if body.get("profile").is_none() {
        body["profile"] = json!({"givenName": "Ada", "familyName": "Lovelace"});
    }
    let resp = app.add_human(&body).await;
    resp["userId"].as_str().unwrap().to_string()
}

async fn send_code(app: &TestApp, user: &str) {
    ok_json(app.create_code(user, &json!({"sendCode": {"applicationName": "Acme"}})).await).await;
}

/// `(status, attempts)` of every delivery of `user`, oldest first.
async fn statuses(app: &TestApp, user: &str) -> Vec<(String, i32)> {
    sqlx::query_as("SELECT status, attempts FROM deliveries WHERE user_id = $1 ORDER BY id")
        .bind(user)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

/// Waits until the newest delivery of `user` has `status`; returns its attempts.
async fn wait_status(app: &TestApp, user: &str, status: &str) -> i32 {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let all = statuses(app, user).await;
        if let Some((s, attempts)) = all.last() {
            if s == status {
                return *attempts;
            }
        }
        assert!(std::time::Instant::now() < deadline, "no {status} delivery for {user}: {all:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn amqp() -> Connection {
    Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", ConnectionProperties::default()).await.unwrap()
}

/// Takes every message waiting in `queue` (bodies and headers, as text).
async fn drain_queue(queue: &str) -> Vec<(Vec<u8>, String)> {
    let conn = amqp().await;
    let ch = conn.create_channel().await.unwrap();
    let mut out = Vec::new();
    while let Some(msg) = ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.unwrap() {
        let p = &msg.delivery.properties;
        let mut text = format!("type={:?}", p.kind().as_ref().map(|k| k.as_str().to_string()));
        for (k, v) in p.headers().as_ref().map(|h| h.inner().clone()).unwrap_or_default() {
            let v = match v {
                lapin::types::AMQPValue::LongString(s) => s.to_string(),
                other => format!("{other:?}"),
            };
            text.push_str(&format!(" {}={v}", k.as_str()));
        }
        out.push((msg.delivery.data.clone(), text));
    }
    out
}

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
async fn a_phone_only_user_gets_an_sms_through_the_webhook() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sms"))
        .and(header_exists("Idempotency-Key"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"id": "wh-1"})))
        .expect(1)
        .mount(&provider)
        .await;
    let url = format!("{}/sms", provider.uri());
    let app = spawn_app_with(move |s| {
        s.roles = vec![Role::Api, Role::Worker];
        s.sms.provider = SmsProvider::Webhook;
        s.sms.webhook_url = url;
    })
    .await;
    let org = app.create_org().await;
    let user = app.create_user(&org, None, Some("+41791234567")).await;
    send_code(&app, &user).await;
    wait_status(&app, &user, "sent").await;

    let requests = provider.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["to"], json!("+41791234567"));
    let text = body["body"].as_str().unwrap();
    let at = text.find("code is ").expect("the code in the SMS") + 8;
    let code: String = text[at..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
    assert!(text.contains(&format!("code={code}")), "the link carries the code: {text}");
    let id: String = sqlx::query_scalar("SELECT id::text FROM deliveries WHERE user_id = $1")
        .bind(&user)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(body["deliveryId"], json!(id));
    assert_eq!(requests[0].headers.get("Idempotency-Key").unwrap().to_str().unwrap(), id);
    ok_json(app.verify(&user, &code).await).await;
    assert!(app.event_types(&user).await.contains(&"user.phone.verified".to_string()));
}

#[actix_web::test]
async fn the_twilio_provider_posts_a_form_with_basic_auth() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/2010-04-01/Accounts/AC123/Messages.json"))
        .and(header_exists("Authorization"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": "SM42"})))
        .expect(1)
        .mount(&provider)
        .await;
    let base = provider.uri();
    let app = spawn_app_with(move |s| {
        s.roles = vec![Role::Api, Role::Worker];
        s.sms.provider = SmsProvider::Twilio;
        s.sms.twilio_base_url = base;
        s.sms.twilio_account_sid = "AC123".into();
        s.sms.twilio_auth_token = "secret".into();
        s.sms.twilio_from = "+15005550006".into();
    })
    .await;
    let org = app.create_org().await;
    let user = app.create_user(&org, None, Some("+41791234567")).await;
    send_code(&app, &user).await;
    wait_status(&app, &user, "sent").await;

    let req = &provider.received_requests().await.unwrap()[0];
    let form = String::from_utf8(req.body.clone()).unwrap();
    assert!(form.contains("To=%2B41791234567") && form.contains("From=%2B15005550006"), "{form}");
    assert!(form.contains("Body="), "{form}");
    // "AC123:secret" in basic auth.
    assert_eq!(req.headers.get("Authorization").unwrap().to_str().unwrap(), "Basic QUMxMjM6c2VjcmV0");
    let provider_id: Option<String> =
        sqlx::query_scalar("SELECT provider_message_id FROM deliveries WHERE user_id = $1")
            .bind(&user)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(provider_id.as_deref(), Some("SM42"));
}

#[actix_web::test]
async fn a_4xx_then_accept_is_sent_on_a_later_attempt() {
    let smtp = SmtpServer::start().await;
    smtp.refuse("ada@example.com", "451 4.7.1 Try again later", Some(1));
    let app = spawn_app_with(with_mail(&smtp)).await;
    let (_org, user) = app.org_and_user().await;
    send_code(&app, &user).await;

    assert!(wait_status(&app, &user, "sent").await >= 2);
    assert_eq!(smtp.mails_to("ada@example.com").len(), 1);
    let outcomes: Vec<String> = sqlx::query_scalar(
        "SELECT a.outcome FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.user_id = $1 ORDER BY a.id",
    )
    .bind(&user)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(outcomes, ["transient", "sent"]);
}

#[actix_web::test]
async fn a_5xx_is_dead_after_one_attempt() {
    let smtp = SmtpServer::start().await;
    smtp.refuse("ada@example.com", "550 5.1.1 No such user", None);
    let app = spawn_app_with(with_mail(&smtp)).await;
    let (_org, user) = app.org_and_user().await;
    send_code(&app, &user).await;

    assert_eq!(wait_status(&app, &user, "dead").await, 1);
    let last_error: String = sqlx::query_scalar("SELECT last_error FROM deliveries WHERE user_id = $1")
        .bind(&user)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(last_error.contains("550"), "{last_error}");
    assert_eq!(smtp.rcpt_attempts("ada@example.com"), 1);
}

#[actix_web::test]
async fn always_4xx_is_dead_after_max_attempts_and_parked_in_the_dead_queue() {
    let smtp = SmtpServer::start().await;
    smtp.refuse("ada@example.com", "421 4.3.2 Service not available", None);
    let app = spawn_app_with(with_mail(&smtp)).await;
    let (_org, user) = app.org_and_user().await;
    send_code(&app, &user).await;

    assert_eq!(wait_status(&app, &user, "dead").await, 3, "max_attempts is 3");
    assert_eq!(smtp.rcpt_attempts("ada@example.com"), 3);
    let dead = drain_queue(&format!("{}.dead", app.settings.amqp.prefix)).await;
    assert_eq!(dead.len(), 1, "one message parked");
    assert!(dead[0].1.contains("attempts exhausted"), "the reason travels in the headers: {}", dead[0].1);
}

#[actix_web::test]
async fn a_resend_while_the_first_delivery_waits_supersedes_it() {
    let smtp = SmtpServer::start().await;
    // An API-only herald: deliveries wait in the queue until a worker starts.
    let api = spawn_app_with(|s| {
        with_mail(&smtp)(s);
        s.roles = vec![Role::Api];
    })
    .await;
    let (_org, user) = api.org_and_user().await;
    send_code(&api, &user).await;
    ok_json(api.resend(&user).await).await;
    let all = statuses(&api, &user).await;
    assert_eq!(all.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(), ["superseded", "queued"]);

    let mut worker_settings = api.settings.clone();
    worker_settings.roles = vec![Role::Worker];
    let _worker = spawn_app_from(worker_settings).await;
    wait_status(&api, &user, "sent").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails = smtp.mails_to("ada@example.com");
    assert_eq!(mails.len(), 1, "only the newest code is mailed");
    ok_json(api.verify(&user, &mails[0].code_from_link()).await).await;
    assert_eq!(statuses(&api, &user).await[0].0, "superseded");
}

#[actix_web::test]
async fn a_resend_accepted_while_the_broker_is_unreachable_is_mailed_when_a_worker_can_reach_it() {
    let smtp = SmtpServer::start().await;
    let api = spawn_app_with(|s| {
        with_mail(&smtp)(s);
        s.roles = vec![Role::Api];
        // Nothing listens there: the broker is "down" for this process.
        s.amqp.url = "amqp://guest:guest@127.0.0.1:1/%2f".into();
    })
    .await;
    let ready = api.client.get(api.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    assert_eq!(ready.json::<Value>().await.unwrap(), json!({"database": "ok", "broker": "down"}));

    let (_org, user) = api.org_and_user().await;
    send_code(&api, &user).await;
    ok_json(api.resend(&user).await).await;
    let unpublished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE published_at IS NULL AND status = 'queued'")
            .fetch_one(&api.pool)
            .await
            .unwrap();
    assert_eq!(unpublished, 1, "the outbox holds it");

    let mut worker_settings = api.settings.clone();
    worker_settings.roles = vec![Role::Worker];
    worker_settings.amqp.url = "amqp://guest:guest@127.0.0.1:5672/%2f".into();
    let _worker = spawn_app_from(worker_settings).await;
    let mail = smtp.wait_for("ada@example.com", 1, WAIT).await.remove(0);
    wait_status(&api, &user, "sent").await;
    ok_json(api.verify(&user, &mail.code_from_link()).await).await;
}

/// Closes this test's broker connections (and only these: they are named after
/// the test's queue prefix).
fn close_connections_named(name: &str) -> usize {
    let out = std::process::Command::new("rabbitmqctl")
        .args(["list_connections", "-q", "--no-table-headers", "pid", "client_properties"])
        .output()
        .expect("rabbitmqctl runs");
    let listing = String::from_utf8_lossy(&out.stdout);
    let mut closed = 0;
    for line in listing.lines().filter(|l| l.contains(name)) {
        let pid = line.split_whitespace().next().unwrap();
        let status = std::process::Command::new("rabbitmqctl")
            .args(["close_connection", pid, "test closes it"])
            .status()
            .unwrap();
        assert!(status.success());
        closed += 1;
    }
    closed
}

#[actix_web::test]
async fn herald_reconnects_and_delivers_everything_after_the_broker_drops_it() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    let org = app.create_org().await;
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(app.create_user(&org, Some(&format!("before{i}@example.com")), None).await);
    }
    for u in &users {
        send_code(&app, u).await;
    }
    smtp.wait_for("before4@example.com", 1, WAIT).await;

    assert!(close_connections_named(&format!("herald {}", app.settings.amqp.prefix)) >= 1);
    // Work accepted right after the drop goes through the outbox and the new link.
    for i in 0..5 {
        let u = app.create_user(&org, Some(&format!("after{i}@example.com")), None).await;
        send_code(&app, &u).await;
        users.push(u);
    }
    for i in 0..5 {
        smtp.wait_for(&format!("after{i}@example.com"), 1, WAIT).await;
    }
    for u in &users {
        wait_status(&app, u, "sent").await;
    }
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
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

    let queue = format!("{}.deliveries.email", app.settings.amqp.prefix);
    let deadline = std::time::Instant::now() + WAIT;
    let messages = loop {
        let m = drain_queue(&queue).await;
        if !m.is_empty() || std::time::Instant::now() > deadline {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(messages.len(), 1, "the superseded delivery was never published");
    let (body, props) = &messages[0];
    let json: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(json.as_object().unwrap().keys().collect::<Vec<_>>(), ["attempt", "deliveryId", "v"]);
    let everything = format!("{} {props}", String::from_utf8_lossy(body));
    for secret in [code.as_str(), "secret.person", "Secretgiven", "Secretfamily"] {
        assert!(!everything.contains(secret), "{secret} leaked into the broker: {everything}");
    }
    assert!(
        props.contains("delivery.v1") && props.contains("traceparent") && props.contains("x-request-id"),
        "{props}"
    );
}

#[actix_web::test]
async fn a_malformed_message_is_parked_and_the_consumer_keeps_going() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    // Publish as an outside producer would, with confirms and `mandatory`, until the
    // broker routed it (herald declares its topology in the background).
    let conn = amqp().await;
    let confirming = || async {
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(lapin::options::ConfirmSelectOptions::default()).await.unwrap();
        ch
    };
    let mut ch = confirming().await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let confirm = ch
            .basic_publish(
                app.settings.amqp.prefix.as_str().into(),
                "delivery.email".into(),
                BasicPublishOptions { mandatory: true, ..Default::default() },
                b"{not json",
                BasicProperties::default().with_type("delivery.v1".into()),
            )
            .await;
        match confirm {
            Ok(c) => match c.await {
                Ok(lapin::Confirmation::Ack(None)) => break,
                other => assert!(std::time::Instant::now() < deadline, "not routed: {other:?}"),
            },
            // The exchange is not declared yet: the broker closed the channel.
            Err(e) => assert!(std::time::Instant::now() < deadline, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !ch.status().connected() {
            ch = confirming().await;
        }
    }

    let (_org, user) = app.org_and_user().await;
    send_code(&app, &user).await;
    smtp.wait_for("ada@example.com", 1, WAIT).await;
    let dead_queue = format!("{}.dead", app.settings.amqp.prefix);
    let deadline = std::time::Instant::now() + WAIT;
    let dead = loop {
        let d = drain_queue(&dead_queue).await;
        if !d.is_empty() || std::time::Instant::now() > deadline {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, b"{not json");
    assert!(dead[0].1.contains("unparsable delivery message"), "{}", dead[0].1);
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

#[actix_web::test]
async fn sigterm_finishes_in_flight_work_exits_0_and_a_restart_sends_the_rest() {
    let smtp = SmtpServer::start().await;
    smtp.set_delay(Duration::from_millis(150));
    // The API in this process, without workers; the worker is the real binary.
    let api = spawn_app_with(|s| {
        with_mail(&smtp)(s);
        s.roles = vec![Role::Api];
    })
    .await;
    let org = api.create_org().await;
    let mut users = Vec::new();
    for i in 0..20 {
        let u = api.create_user(&org, Some(&format!("t{i}@example.com")), None).await;
        send_code(&api, &u).await;
        users.push(u);
    }

    let s = &api.settings;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("serve")
        .env("HERALD__ROLES", "worker")
        .env("HERALD__DATABASE__URL", &s.database.url)
        .env("HERALD__AMQP__PREFIX", &s.amqp.prefix)
        .env("HERALD__CRYPTO__KEY", &s.crypto.key)
        .env("HERALD__EMAIL__TRANSPORT", "smtp")
        .env("HERALD__EMAIL__SMTP_URL", smtp.url())
        .env("HERALD__EMAIL__SMTP_CONNECTIONS", "1")
        .env("HERALD__AMQP__PREFETCH", "4")
        .env("HERALD__SHUTDOWN__GRACE", "10s")
        .env("HERALD__DELIVERY__RETRY_DELAYS", "1s")
        .env("HERALD__LOG__LEVEL", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    smtp.wait_for("t0@example.com", 1, WAIT).await;
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits within the grace period")
        .unwrap();
    assert_eq!(status.code(), Some(0), "a clean exit");
    let sent_by_first = smtp.mails().len();
    assert!(sent_by_first < users.len(), "the signal came with work still to do ({sent_by_first} sent)");
    let stuck: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status = 'sending'")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(stuck, 0, "in-flight deliveries were finished, not abandoned");

    // A restarted worker sends the rest.
    let mut worker_settings = api.settings.clone();
    worker_settings.roles = vec![Role::Worker];
    let _worker = spawn_app_from(worker_settings).await;
    for i in 0..users.len() {
        smtp.wait_for(&format!("t{i}@example.com"), 1, WAIT).await;
    }
    for u in &users {
        wait_status(&api, u, "sent").await;
    }
    let mut recipients: Vec<String> = smtp.mails().iter().flat_map(|m| m.to.clone()).collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), users.len());
}

//! docs/API.md §2.1: the invite link is http(s) only, with no control characters:
//! refused at the API, and checked again, rendered, when each message is sent.

use serde_json::json;

use crate::helpers::{assert_error, ok_json, spawn_app, spawn_app_from, wait_status};
use crate::smtp::SmtpServer;

#[actix_web::test]
async fn a_template_whose_scheme_a_value_could_complete_is_refused() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    let body = json!({"userId": "avascript", "organization": {"orgId": org},
                      "profile": {"givenName": "A", "familyName": "L"}, "email": {"email": "a@example.com"}});
    let user = app.add_human(&body).await["userId"].as_str().unwrap().to_string();
    assert_eq!(user, "avascript");

    for template in ["j{{.UserID}}:alert(1)", "myapp://invite?c={{.Code}}", "javascript:alert({{.Code}})"] {
        let resp = app.create_code(&user, &json!({"sendCode": {"urlTemplate": template}})).await;
        assert_error(resp, 400, 3, "DOMAIN-ieYa7").await;
    }
    for template in ["https://a.example/\r\n{{.Code}}", "https://a.example/\t{{.Code}}"] {
        let resp = app.create_code(&user, &json!({"sendCode": {"urlTemplate": template}})).await;
        assert_error(resp, 400, 3, "API-invalid").await;
    }
    ok_json(app.create_code(&user, &json!({"sendCode": {"urlTemplate": "https://a.example/?u={{.UserID}}"}})).await)
        .await;
}

#[actix_web::test]
async fn a_stored_template_that_renders_a_javascript_link_is_never_sent() {
    // Arrange: a code queued by the API alone, whose stored template is then one
    // that turns the user's id into `javascript:` (as a template stored before the
    // API refused it would).
    let smtp = SmtpServer::start().await;
    let app = spawn_app().await;
    let org = app.create_org().await;
    let body = json!({"userId": "avascript", "organization": {"orgId": org},
                      "profile": {"givenName": "A", "familyName": "L"}, "email": {"email": "victim@example.com"}});
    app.add_human(&body).await;
    ok_json(app.create_code("avascript", &json!({})).await).await;
    sqlx::query("UPDATE invite_codes SET url_template = 'j{{.UserID}}:alert(1)' WHERE user_id = 'avascript'")
        .execute(&app.pool)
        .await
        .unwrap();

    // Act: a worker takes the delivery.
    let mut settings = app.settings.clone();
    settings.roles = vec![herald::config::Role::Worker];
    settings.email.transport = herald::config::EmailTransport::Smtp;
    settings.email.smtp_url = smtp.url();
    let _worker = spawn_app_from(settings).await;

    // Assert: the delivery is dead, and no mail left herald.
    wait_status(&app, "avascript", "dead").await;
    assert!(smtp.mails_to("victim@example.com").is_empty());
}

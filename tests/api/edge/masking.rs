//! docs/ARCHITECTURE.md, "Retries": a provider's reply that names the address or
//! the number is masked before it is stored (`lastError`, the attempts), logged or
//! put in the dead queue's `x-herald-reason`; the SMTP code and the enhanced status
//! stay.

use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{amqp, ok_json, parked, spawn_app_with, spawn_app_with_sms, wait_status, TestApp};
use crate::ops_helpers::with_mail;
use crate::smtp::SmtpServer;

/// `lastError` of the user's delivery as the API lists it, and the errors of its
/// attempts as the API shows them.
async fn errors_shown(app: &TestApp, user: &str) -> Vec<String> {
    let list = ok_json(app.get(&format!("/admin/v1/deliveries?userId={user}"), &app.bootstrap).await).await;
    let delivery = &list["deliveries"][0];
    let id = delivery["id"].as_str().unwrap();
    let one = ok_json(app.get(&format!("/admin/v1/deliveries/{id}"), &app.bootstrap).await).await;
    let mut shown = vec![delivery["lastError"].as_str().unwrap_or_default().to_string()];
    shown.extend(one["attempts"].as_array().unwrap().iter().map(|a| a["error"].as_str().unwrap_or("").to_string()));
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT coalesce(error, '') FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.user_id = $1",
    )
    .bind(user)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    shown.extend(stored);
    shown
}

#[actix_web::test]
async fn an_smtp_reply_naming_the_address_is_masked_and_keeps_its_codes() {
    // Arrange: the SMTP server refuses Ada with a reply that names her address.
    let smtp = SmtpServer::start().await;
    smtp.refuse("ada@example.com", "550 5.1.1 <ada@example.com>: Recipient address rejected", None);
    let app = spawn_app_with(with_mail(&smtp)).await;
    let (_org, user) = app.org_and_user().await;

    // Act
    ok_json(app.create_code(&user, &json!({})).await).await;
    wait_status(&app, &user, "dead").await;

    // Assert: every place that keeps the reply has the codes and not the address.
    let shown = errors_shown(&app, &user).await;
    assert!(shown.len() >= 3, "{shown:?}");
    for e in &shown {
        assert!(!e.contains("ada@example.com"), "unmasked: {e}");
        assert!(e.contains("550") && e.contains("5.1.1") && e.contains("a***@example.com"), "{e}");
    }
    let dead = parked(&app, &amqp().await).await;
    let reason = dead[0].headers.get("x-herald-reason").expect("a reason");
    assert!(!reason.contains("ada@example.com") && reason.contains("550"), "{reason}");
}

#[actix_web::test]
async fn an_sms_providers_body_naming_the_number_is_masked() {
    // Arrange: the provider refuses with a body that repeats the number.
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_string(r#"{"error": "number +41791234567 is blocked"}"#))
        .mount(&provider)
        .await;
    let app = spawn_app_with_sms(&provider).await;
    let org = app.create_org().await;
    let user = app.create_user(&org, None, Some("+41791234567")).await;

    // Act
    ok_json(app.create_code(&user, &json!({})).await).await;
    wait_status(&app, &user, "dead").await;

    // Assert
    for e in errors_shown(&app, &user).await {
        assert!(!e.contains("1234567"), "unmasked: {e}");
        assert!(e.contains("400") && e.contains("blocked"), "{e}");
    }
}

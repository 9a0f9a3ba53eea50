//! SMS delivery through the two providers: the generic webhook and Twilio.

use herald::config::{Role, SmsProvider};
use serde_json::{json, Value};
use wiremock::matchers::{header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::send_code;
use crate::helpers::{ok_json, spawn_app_with, spawn_app_with_sms, wait_status};

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
    let app = spawn_app_with_sms(&provider).await;
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

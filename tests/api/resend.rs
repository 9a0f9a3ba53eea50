//! API.md §2.2: `POST /v2/users/{userId}/invite_code/resend`.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{assert_error, assert_write_details, ok_json, spawn_app, spawn_app_with, wait_until_expired};

#[actix_web::test]
async fn resend_without_any_code_is_400_code_9_code_not_found() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;

    let b = assert_error(app.resend(&user).await, 400, 9, "COMMAND-Wr3gq").await;

    assert_eq!(b["details"][0]["message"], "Code not found");
    assert_eq!(b["message"], "Code not found (COMMAND-Wr3gq)");
    assert!(app.invite_row(&user).await.is_none());
    assert!(app.deliveries(&user).await.is_empty());
}

#[actix_web::test]
async fn a_returned_code_is_not_resendable() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    app.returned_code(&user).await;
    let before = app.invite_row(&user).await.unwrap();

    assert_error(app.resend(&user).await, 400, 9, "COMMAND-Wr3gq").await;

    let after = app.invite_row(&user).await.unwrap();
    assert_eq!(after.code_encrypted, before.code_encrypted);
    assert!(app.deliveries(&user).await.is_empty());
}

#[actix_web::test]
async fn resend_issues_a_new_code_that_inherits_how_the_last_one_was_sent() {
    // Arrange
    let app = spawn_app().await;
    let org = app.create_org().await;
    let user = app.create_user(&org, Some("ada@example.com"), Some("+41791234567")).await;
    let template = "https://acme.example/join?c={{Code}}";
    let create = json!({"sendCode": {"urlTemplate": template, "applicationName": "Acme", "channel": "sms"}});
    ok_json(app.create_code(&user, &create).await).await;
    let before = app.invite_row(&user).await.unwrap();

    // Act
    let resp = ok_json(app.resend(&user).await).await;

    // Assert: a new code (new ciphertext, new event), same template, name and channel.
    assert!(resp.get("inviteCode").is_none(), "{resp}");
    let seq = assert_write_details(&resp, &org);
    let after = app.invite_row(&user).await.unwrap();
    assert_eq!(after.event_sequence as u64, seq);
    assert_ne!(after.code_encrypted, before.code_encrypted);
    assert_eq!(
        (after.url_template.as_str(), after.application_name.as_str(), after.channel.as_str()),
        (template, "Acme", "sms")
    );
    assert!(!after.returned);
    assert_eq!(app.event_types(&user).await, vec!["user.human.added", "invite.code.added", "invite.code.added"]);
    let d = app.deliveries(&user).await;
    assert_eq!(d.len(), 2);
    assert_eq!(d[1].status, "queued");
    assert_eq!((d[1].channel.as_str(), d[1].recipient.as_str()), ("sms", "+41791234567"));
    assert_eq!(d[1].code_event_sequence as u64, seq);
}

#[actix_web::test]
async fn a_body_sent_to_resend_is_ignored() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    ok_json(app.create_code(&user, &json!({})).await).await;
    let path = format!("/v2/users/{user}/invite_code/resend");

    // Neither a returnCode nor a body that is not JSON changes what resend does.
    let resp =
        ok_json(app.post(&path, &app.bootstrap, &json!({"returnCode": {}, "sendCode": {"channel": "sms"}})).await)
            .await;
    assert!(resp.get("inviteCode").is_none(), "{resp}");
    ok_json(app.post_raw(&path, &app.bootstrap, "this is not json").await).await;

    let row = app.invite_row(&user).await.unwrap();
    assert!(!row.returned);
    assert_eq!(row.channel, "email");
    assert_eq!(app.deliveries(&user).await.iter().filter(|d| d.status == "queued").count(), 1);
}

#[actix_web::test]
async fn resend_after_verify_is_already_initialized() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    ok_json(app.create_code(&user, &json!({})).await).await;
    let (code, _) = app.returned_code(&user).await;
    ok_json(app.verify(&user, &code).await).await;

    let b = assert_error(app.resend(&user).await, 400, 9, "COMMAND-EF34g").await;
    assert_eq!(b["details"][0]["message"], "User is already initialized");
}

#[actix_web::test]
async fn a_code_cleared_by_three_wrong_guesses_can_be_resent() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    ok_json(app.create_code(&user, &json!({})).await).await;
    for _ in 0..3 {
        assert_error(app.verify(&user, "WRONG0").await, 400, 3, "COMMAND-Wgn4q").await;
    }
    assert!(app.invite_row(&user).await.unwrap().code_encrypted.is_none());

    ok_json(app.resend(&user).await).await;

    let row = app.invite_row(&user).await.unwrap();
    assert!(row.code_encrypted.is_some());
    assert_eq!(row.failed_checks, 0);
}

#[actix_web::test]
async fn an_expired_code_can_be_resent() {
    let ttl = Duration::from_secs(1);
    let app = spawn_app_with(|s| s.invite.code_ttl = ttl).await;
    let (_, user) = app.org_and_user().await;
    ok_json(app.create_code(&user, &json!({})).await).await;
    wait_until_expired(&app.pool, ttl).await;

    let resp = ok_json(app.resend(&user).await).await;

    assert!(resp["details"]["sequence"].is_string());
    let d = app.deliveries(&user).await;
    assert_eq!(d.iter().map(|d| d.status.as_str()).collect::<Vec<_>>(), vec!["superseded", "queued"]);
}

#[actix_web::test]
async fn a_large_body_sent_to_resend_is_ignored_too() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    ok_json(app.create_code(&user, &json!({})).await).await;
    let big = json!({"padding": "x".repeat(100 * 1024)}).to_string();

    let resp = app.post_raw(&format!("/v2/users/{user}/invite_code/resend"), &app.bootstrap, big).await;

    ok_json(resp).await;
}

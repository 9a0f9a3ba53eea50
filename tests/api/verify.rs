//! API.md §2.3: `POST /v2/users/{userId}/invite_code/verify`.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    assert_error, assert_error_code, assert_write_details, ok_json, spawn_app, spawn_app_with, wait_until_expired,
};

#[actix_web::test]
async fn the_right_code_verifies_the_email_and_initializes_the_user() {
    // Arrange
    let app = spawn_app().await;
    let (org, user) = app.org_and_user().await;
    let (code, created_seq) = app.returned_code(&user).await;

    // Act: codes are compared case-insensitively.
    let resp = ok_json(app.verify(&user, &code.to_lowercase()).await).await;

    // Assert: the details of the last event, user.email.verified.
    let seq = assert_write_details(&resp, &org);
    assert_eq!(seq, created_seq + 2);
    assert_eq!(
        app.event_types(&user).await,
        vec!["user.human.added", "invite.code.added", "invite.check.succeeded", "user.email.verified"]
    );
    let (initialized, email_verified, phone_verified): (bool, bool, bool) =
        sqlx::query_as("SELECT initialized, email_verified, phone_verified FROM users WHERE id = $1")
            .bind(&user)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(initialized && email_verified && !phone_verified);
    assert!(app.invite_row(&user).await.unwrap().code_encrypted.is_none(), "the code is cleared");

    // The code does not verify twice.
    assert_error(app.verify(&user, &code).await, 400, 3, "COMMAND-Wgn4q").await;
}

#[actix_web::test]
async fn a_code_for_a_phone_only_user_verifies_the_phone() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    let user = app.create_user(&org, None, Some("+41791234567")).await;
    let (code, _) = app.returned_code(&user).await;

    ok_json(app.verify(&user, &code).await).await;

    assert_eq!(app.event_types(&user).await.last().unwrap(), "user.phone.verified");
    let (email_verified, phone_verified): (bool, bool) =
        sqlx::query_as("SELECT email_verified, phone_verified FROM users WHERE id = $1")
            .bind(&user)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(!email_verified && phone_verified);
}

#[actix_web::test]
async fn a_wrong_code_and_no_code_get_the_same_answer() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;

    // No code at all...
    let none = assert_error(app.verify(&user, "ABC123").await, 400, 3, "COMMAND-Wgn4q").await;
    // ...and a wrong one.
    app.returned_code(&user).await;
    let wrong = assert_error(app.verify(&user, "0").await, 400, 3, "COMMAND-Wgn4q").await;

    assert_eq!(none, wrong);
    assert_eq!(wrong["details"][0]["message"], "Code is invalid");
    let failed = app.event_types(&user).await.iter().filter(|t| *t == "invite.check.failed").count();
    assert_eq!(failed, 2, "each failure appends invite.check.failed");
}

#[actix_web::test]
async fn three_wrong_codes_clear_the_code_so_the_right_one_fails_too() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    let (code, _) = app.returned_code(&user).await;
    let wrong = if code == "AAAAAA" { "BBBBBB" } else { "AAAAAA" };

    for _ in 0..3 {
        assert_error(app.verify(&user, wrong).await, 400, 3, "COMMAND-Wgn4q").await;
    }
    assert_error(app.verify(&user, &code).await, 400, 3, "COMMAND-Wgn4q").await;

    assert!(app.invite_row(&user).await.unwrap().code_encrypted.is_none());
    let failed = app.event_types(&user).await.iter().filter(|t| *t == "invite.check.failed").count();
    assert_eq!(failed, 4);
    let initialized: bool = sqlx::query_scalar("SELECT initialized FROM users WHERE id = $1")
        .bind(&user)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!initialized);
}

#[actix_web::test]
async fn two_wrong_codes_still_leave_the_right_one_valid() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    let (code, _) = app.returned_code(&user).await;
    let wrong = if code == "AAAAAA" { "BBBBBB" } else { "AAAAAA" };

    for _ in 0..2 {
        assert_error(app.verify(&user, wrong).await, 400, 3, "COMMAND-Wgn4q").await;
    }

    ok_json(app.verify(&user, &code).await).await;
}

#[actix_web::test]
async fn a_new_code_resets_the_count_of_wrong_guesses() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    app.returned_code(&user).await;
    for _ in 0..2 {
        assert_error(app.verify(&user, "ZZZZZZZZ").await, 400, 3, "COMMAND-Wgn4q").await;
    }
    let (code, _) = app.returned_code(&user).await;
    for _ in 0..2 {
        assert_error(app.verify(&user, "ZZZZZZZZ").await, 400, 3, "COMMAND-Wgn4q").await;
    }

    ok_json(app.verify(&user, &code).await).await;
}

#[actix_web::test]
async fn an_expired_code_fails_and_is_cleared() {
    let ttl = Duration::from_secs(1);
    let app = spawn_app_with(|s| s.invite.code_ttl = ttl).await;
    let (_, user) = app.org_and_user().await;
    let (code, _) = app.returned_code(&user).await;
    wait_until_expired(&app.pool, ttl).await;

    assert_error(app.verify(&user, &code).await, 400, 3, "COMMAND-Wgn4q").await;

    let row = app.invite_row(&user).await.unwrap();
    assert!(row.code_encrypted.is_none(), "one check of an expired code clears it");
    // Even the right code fails from now on (it would fail anyway, being expired; the
    // cleared row above is what proves the clearing).
    assert_error(app.verify(&user, &code).await, 400, 3, "COMMAND-Wgn4q").await;
    let failed = app.event_types(&user).await.iter().filter(|t| *t == "invite.check.failed").count();
    assert_eq!(failed, 2);
}

#[actix_web::test]
async fn a_verification_code_must_be_1_to_20_characters() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    let (code, _) = app.returned_code(&user).await;
    let path = format!("/v2/users/{user}/invite_code/verify");

    for body in [json!({}), json!({"verificationCode": ""}), json!({"verificationCode": "A".repeat(21)})] {
        let resp = app.post(&path, &app.bootstrap, &body).await;
        assert_error_code(resp, 400, 3).await;
    }

    // None of those counted as a guess: the code still verifies.
    ok_json(app.verify(&user, &code).await).await;
}

#[actix_web::test]
async fn verify_cancels_the_deliveries_still_waiting() {
    // Arrange: a returned code is current, and a delivery of the user is still
    // waiting to be retried (a state the delivery workers create; written here by
    // hand as the workers are not part of this binary).
    let app = spawn_app().await;
    let (org, user) = app.org_and_user().await;
    let (code, seq) = app.returned_code(&user).await;
    sqlx::query(
        "WITH d AS (
             INSERT INTO deliveries (id, user_id, org_id, channel, recipient, template, locale, status,
                                     attempts, code_event_sequence, created_at, updated_at)
             VALUES (1, $1, $2, 'email', 'ada@example.com', 'invite_user', 'en', 'retrying', 1, $3, now(), now())
             RETURNING id
         )
         INSERT INTO delivery_open (id) SELECT id FROM d",
    )
    .bind(&user)
    .bind(&org)
    .bind(seq as i64)
    .execute(&app.pool)
    .await
    .unwrap();

    // Act
    ok_json(app.verify(&user, &code).await).await;

    // Assert
    let d = app.deliveries(&user).await;
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].status, "cancelled");
    // Out of the open set (what the relay and the sweeper read) in the same statement.
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM delivery_open").fetch_one(&app.pool).await.unwrap();
    assert_eq!(open, 0);
}

#[actix_web::test]
async fn a_returned_code_keeps_the_sms_channel_and_verifies_the_phone() {
    // A user with both contacts whose last code went by SMS: the returned code
    // inherits the channel, so verifying it verifies the phone.
    let app = spawn_app().await;
    let org = app.create_org().await;
    let user = app.create_user(&org, Some("ada@example.com"), Some("+41791234567")).await;
    ok_json(app.create_code(&user, &json!({"sendCode": {"channel": "sms"}})).await).await;
    let (code, _) = app.returned_code(&user).await;
    assert_eq!(app.invite_row(&user).await.unwrap().channel, "sms");

    ok_json(app.verify(&user, &code).await).await;

    assert_eq!(app.event_types(&user).await.last().unwrap(), "user.phone.verified");
    let read = ok_json(app.get(&format!("/v2/users/{user}"), &app.bootstrap).await).await;
    assert_eq!(read["user"]["human"]["phone"]["isVerified"], true);
    assert_eq!(read["user"]["human"]["email"]["isVerified"], false);
}

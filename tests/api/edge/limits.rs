//! docs/API.md §2.1: codes per recipient (across users) and per organization per
//! hour are limited: 429, code 8, `Retry-After`.

use std::time::Duration;

use herald::config::Role;
use serde_json::json;

use crate::helpers::{assert_error, eventually, ok_json, retry_after, spawn_app_from, spawn_app_with, wait_ready};
use crate::ops_helpers::{finished_job, start_job};

#[actix_web::test]
async fn one_address_shared_by_many_users_gets_at_most_the_recipient_limit() {
    // Arrange: three users of one organization who share one address.
    let app = spawn_app_with(|s| s.invite.max_codes_per_recipient_per_hour = 2).await;
    let org = app.create_org().await;
    let mut users = Vec::new();
    for _ in 0..3 {
        users.push(app.create_user(&org, Some("shared@example.com"), None).await);
    }
    let other = app.create_user(&org, Some("other@example.com"), None).await;

    // Act + Assert: two codes reach the address, the third is refused.
    ok_json(app.create_code(&users[0], &json!({})).await).await;
    ok_json(app.create_code(&users[1], &json!({})).await).await;
    let refused = app.create_code(&users[2], &json!({})).await;
    let wait = retry_after(&refused);
    assert!((3_500..=3_601).contains(&wait), "Retry-After {wait}");
    let body = assert_error(refused, 429, 8, "NOTIFY-rate").await;
    assert!(body["message"].as_str().unwrap().contains("recipient"), "{body}");
    assert_error(app.resend(&users[0]).await, 429, 8, "NOTIFY-rate").await;

    // Another address, and a code returned rather than sent, are not limited.
    ok_json(app.create_code(&other, &json!({})).await).await;
    ok_json(app.create_code(&users[2], &json!({"returnCode": {}})).await).await;
}

#[actix_web::test]
async fn an_organization_gets_at_most_its_limit_through_the_api_and_bulk_jobs_are_not_counted() {
    // Arrange: four users with addresses of their own in one organization, and
    // one in another.
    let app = spawn_app_with(|s| {
        s.invite.max_codes_per_org_per_hour = 3;
        s.roles = vec![Role::Api, Role::Worker];
    })
    .await;
    let (org, elsewhere) = (app.create_org().await, app.create_org().await);
    let mut users = Vec::new();
    for i in 0..4 {
        users.push(app.create_user(&org, Some(&format!("u{i}@example.com")), None).await);
    }
    let outside = app.create_user(&elsewhere, Some("o@example.com"), None).await;

    // Act + Assert: three codes, then a 429 for the organization.
    for u in &users[..3] {
        ok_json(app.create_code(u, &json!({})).await).await;
    }
    let refused = app.create_code(&users[3], &json!({})).await;
    assert!(retry_after(&refused) > 0);
    let body = assert_error(refused, 429, 8, "NOTIFY-rate").await;
    assert!(body["message"].as_str().unwrap().contains("organization"), "{body}");
    ok_json(app.create_code(&outside, &json!({})).await).await;

    // A bulk job, an operator's act, re-invites past the API's limit (once the broker
    // link is up: a job is refused with 503 before).
    wait_ready(&app).await;
    let (job, _) = start_job(&app, &json!({"orgId": org, "userIds": &users[..3]})).await;
    let status = finished_job(&app, &job, Duration::from_secs(30)).await;
    assert_eq!(status["succeeded"], json!(3), "{status}");
}

#[actix_web::test]
async fn a_second_process_counts_the_codes_the_first_sent_before_it_went_idle() {
    // Arrange: an organization with a limit of three, and four users.
    let app = spawn_app_with(|s| s.invite.max_codes_per_org_per_hour = 3).await;
    let org = app.create_org().await;
    let mut users = Vec::new();
    for i in 0..4 {
        users.push(app.create_user(&org, Some(&format!("u{i}@example.com")), None).await);
    }

    // Act: two codes through the first process, which then gets no more requests;
    // its counts reach the database by themselves.
    for u in &users[..2] {
        ok_json(app.create_code(u, &json!({})).await).await;
    }
    eventually("the idle process to write its two codes", Duration::from_secs(5), || async {
        let sent: Option<i64> = sqlx::query_scalar("SELECT sum(sent)::bigint FROM org_send_counts WHERE org_id = $1")
            .bind(&org)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        (sent == Some(2)).then_some(())
    })
    .await;

    // Assert: a second process on the same database allows the third code and
    // refuses the fourth.
    let second = spawn_app_from(app.settings.clone()).await;
    ok_json(second.create_code(&users[2], &json!({})).await).await;
    let body = assert_error(second.create_code(&users[3], &json!({})).await, 429, 8, "NOTIFY-rate").await;
    assert!(body["message"].as_str().unwrap().contains("organization"), "{body}");
}

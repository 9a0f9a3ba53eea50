//! API.md §1.1: `details` on every write, and on reads.

use chrono::Utc;
use serde_json::json;

use crate::helpers::{assert_error, assert_write_details, eventually, ok_json, sequence, spawn_app, timestamp, WAIT};

#[actix_web::test]
async fn every_write_counts_the_users_events_one_by_one() {
    // Arrange
    let app = spawn_app().await;
    let org = app.create_org().await;
    let created = app
        .add_human(&json!({"organization": {"orgId": org}, "profile": {"givenName": "Ada", "familyName": "Lovelace"},
                    "email": {"email": "ada@example.com"}}))
        .await;
    let user = created["userId"].as_str().unwrap().to_string();
    let mut seqs = vec![assert_write_details(&created, &org)];

    // Act: create (sent), resend, a failed check (appends, answers no details),
    // create (returned), verify (two events).
    seqs.push(assert_write_details(&ok_json(app.create_code(&user, &json!({})).await).await, &org));
    seqs.push(assert_write_details(&ok_json(app.resend(&user).await).await, &org));
    assert_error(app.verify(&user, "NOPE00").await, 400, 3, "COMMAND-Wgn4q").await;
    let returned = ok_json(app.create_code(&user, &json!({"returnCode": {}})).await).await;
    seqs.push(assert_write_details(&returned, &org));
    let code = returned["inviteCode"].as_str().unwrap();
    seqs.push(assert_write_details(&ok_json(app.verify(&user, code).await).await, &org));

    // Assert: 1 user.human.added, 2 and 3 codes, 4 the failed check, 5 the code,
    // 6 check.succeeded, 7 email.verified.
    assert_eq!(seqs, vec![1, 2, 3, 5, 7]);
}

#[actix_web::test]
async fn write_details_are_strings_and_millisecond_utc_timestamps() {
    let app = spawn_app().await;
    let (org, user) = app.org_and_user().await;

    let resp = app.create_code(&user, &json!({})).await;
    let text = resp.text().await.unwrap();

    // The raw JSON: a string sequence, never a number.
    assert!(text.contains(r#""sequence":"2""#), "{text}");
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    let d = &body["details"];
    assert_eq!(d.as_object().unwrap().len(), 4, "{d}");
    assert_eq!(d["changeDate"], d["creationDate"]);
    timestamp(&d["changeDate"]);
    assert_eq!(d["resourceOwner"], json!(org));
    // The stored event is the instant the response reports.
    let at: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT created_at FROM events WHERE aggregate_id = $1 AND sequence = 2")
            .bind(&user)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(timestamp(&d["changeDate"]), at);
}

#[actix_web::test]
async fn organizations_start_at_sequence_1_and_own_themselves() {
    let app = spawn_app().await;

    let body = ok_json(app.post("/v2/organizations", &app.bootstrap, &json!({"name": "Acme"})).await).await;

    let org = body["organizationId"].as_str().unwrap();
    assert!(!org.is_empty() && org.len() <= 20 && org.bytes().all(|b| b.is_ascii_digit()), "{org}");
    assert_eq!(assert_write_details(&body, org), 1);
}

#[actix_web::test]
async fn a_read_reports_the_first_and_the_last_event() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    let added = app
        .add_human(&json!({"organization": {"orgId": org}, "profile": {"givenName": "Ada", "familyName": "Lovelace"},
                    "email": {"email": "ada@example.com"}}))
        .await;
    let user = added["userId"].as_str().unwrap();
    // The second event must fall in a later millisecond than the first.
    let created = timestamp(&added["details"]["creationDate"]);
    eventually("a later millisecond", WAIT, || async {
        ((Utc::now() - created).num_milliseconds() >= 1).then_some(())
    })
    .await;
    let coded = ok_json(app.create_code(user, &json!({})).await).await;

    let read = ok_json(app.get(&format!("/v2/users/{user}"), &app.bootstrap).await).await;

    let d = &read["details"];
    assert_eq!(sequence(&read), 2);
    assert_eq!(d["creationDate"], added["details"]["creationDate"]);
    assert_eq!(d["changeDate"], coded["details"]["changeDate"]);
    assert!(timestamp(&d["changeDate"]) > timestamp(&d["creationDate"]));
    assert_eq!(d["resourceOwner"], json!(org));
}

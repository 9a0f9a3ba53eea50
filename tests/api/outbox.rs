//! API.md §2.1, §2.2, §5: the delivery recorded with each sent code, the superseding
//! of older ones, and codes stored only encrypted.

use serde_json::json;

use crate::helpers::{ok_json, sequence, spawn_app};

#[actix_web::test]
async fn a_sent_code_leaves_exactly_one_queued_delivery() {
    let app = spawn_app().await;
    let (org, user) = app.org_and_user().await;

    let body = ok_json(app.create_code(&user, &json!({})).await).await;

    let d = app.deliveries(&user).await;
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].status, "queued");
    assert_eq!((d[0].channel.as_str(), d[0].recipient.as_str()), ("email", "ada@example.com"));
    assert_eq!(d[0].org_id, org);
    assert_eq!(d[0].code_event_sequence as u64, sequence(&body));
    assert_eq!(d[0].template, "invite_user");
}

#[actix_web::test]
async fn each_new_code_supersedes_the_deliveries_still_waiting() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    let statuses = |d: Vec<crate::helpers::Delivery>| d.into_iter().map(|d| d.status).collect::<Vec<_>>();
    // The open set (`delivery_open`, what the relay and the sweeper read) holds the
    // waiting deliveries only, at once: the statement that supersedes one takes it out.
    let open = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT d.status FROM delivery_open o JOIN deliveries d ON d.id = o.id ORDER BY d.id",
        )
        .fetch_all(&app.pool)
        .await
        .unwrap()
    };

    ok_json(app.create_code(&user, &json!({})).await).await;
    ok_json(app.resend(&user).await).await;
    assert_eq!(statuses(app.deliveries(&user).await), vec!["superseded", "queued"]);
    assert_eq!(open().await, vec!["queued"]);

    ok_json(app.create_code(&user, &json!({"sendCode": {"applicationName": "Acme"}})).await).await;
    assert_eq!(statuses(app.deliveries(&user).await), vec!["superseded", "superseded", "queued"]);
    assert_eq!(open().await, vec!["queued"]);

    // A returned code records no delivery, and the one waiting carries a code that
    // no longer verifies: superseded too.
    app.returned_code(&user).await;
    assert_eq!(statuses(app.deliveries(&user).await), vec!["superseded", "superseded", "superseded"]);
    assert!(open().await.is_empty());
}

#[actix_web::test]
async fn a_returned_code_records_no_delivery() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;

    app.returned_code(&user).await;
    app.returned_code(&user).await;

    assert!(app.deliveries(&user).await.is_empty());
}

#[actix_web::test]
async fn deliveries_of_other_users_are_left_alone() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    let a = app.create_user(&org, Some("a@example.com"), None).await;
    let b = app.create_user(&org, Some("b@example.com"), None).await;
    ok_json(app.create_code(&a, &json!({})).await).await;

    ok_json(app.create_code(&b, &json!({})).await).await;
    ok_json(app.resend(&b).await).await;

    assert_eq!(app.deliveries(&a).await[0].status, "queued");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[actix_web::test]
async fn codes_are_stored_encrypted_and_never_in_events() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;

    let (code, _) = app.returned_code(&user).await;

    let row = app.invite_row(&user).await.unwrap();
    let sealed = row.code_encrypted.expect("a stored code");
    assert!(!contains(&sealed, code.as_bytes()), "the plain code is in code_encrypted");
    assert!(!contains(&sealed, code.to_lowercase().as_bytes()));
    assert!(sealed.len() > code.len());
    // No column of the row, nor any event of the user, holds the plain code.
    let row_text: String = sqlx::query_scalar("SELECT row_to_json(i)::text FROM invite_codes i WHERE user_id = $1")
        .bind(&user)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!row_text.contains(&code), "{row_text}");
    let events: Vec<String> = sqlx::query_scalar("SELECT row_to_json(e)::text FROM events e WHERE aggregate_id = $1")
        .bind(&user)
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    for e in events {
        assert!(!e.contains(&code), "{e}");
    }
    // Two codes sealed for the same user never share a ciphertext (random nonces).
    app.returned_code(&user).await;
    assert_ne!(app.invite_row(&user).await.unwrap().code_encrypted.unwrap(), sealed);
}

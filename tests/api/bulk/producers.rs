//! API.md §4: resend requests that outside producers publish on the broker: served,
//! scoped by the token they name, and parked with a reason when malformed.

use serde_json::json;

use crate::helpers::{amqp, eventually, ok_json, parked, publish, settled, spawn_app_with, TestApp, WAIT};
use crate::ops_helpers::{send_codes, with_mail};
use crate::smtp::SmtpServer;

#[actix_web::test]
async fn a_request_from_an_outside_producer_is_served_and_a_malformed_one_is_parked() {
    // Arrange: two users with mailed codes.
    let smtp = SmtpServer::start().await;
    let (app, ada, bob) = two_mailed_users(&smtp).await;
    let conn = amqp().await;
    let exchange = app.settings.amqp.prefix.clone();
    let request = |user: &str| json!({"v": 1, "userId": user}).to_string().into_bytes();

    // Act: a request as any producer may publish it.
    publish(&conn, &exchange, "resend.request", "resend-request.v1", &request(&ada)).await;

    // Assert: Ada gets a new code by mail.
    let mails = smtp.wait_for("ada@example.com", 2, WAIT).await;
    assert_ne!(mails[1].code_from_link(), mails[0].code_from_link());
    ok_json(app.verify(&ada, &mails[1].code_from_link()).await).await;

    // Act: a malformed request, then a good one behind it.
    let malformed = br#"{"v": 1, "userId": "#;
    publish(&conn, &exchange, "resend.request", "resend-request.v1", malformed).await;
    publish(&conn, &exchange, "resend.request", "resend-request.v1", &request(&bob)).await;

    // Assert: the good one is served, the malformed one is parked with its reason.
    let mails = smtp.wait_for("bob@example.com", 2, WAIT).await;
    ok_json(app.verify(&bob, &mails[1].code_from_link()).await).await;
    let parked = parked(&app, &conn).await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].body, malformed);
    assert_eq!(parked[0].kind.as_deref(), Some("resend-request.v1"));
    let reason = parked[0].headers.get("x-herald-reason").expect("an x-herald-reason header");
    assert!(reason.contains("unparsable resend request"), "{reason}");
    assert_eq!(smtp.mails_to("ada@example.com").len(), 2, "nothing else was resent");
}

#[actix_web::test]
async fn a_producer_request_naming_a_token_acts_with_that_tokens_scope() {
    // Arrange: a user with a mailed code in one organization, and a token with
    // user.write in each of two organizations.
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    let (a, b) = (app.create_org().await, app.create_org().await);
    let carl = app.create_user(&a, Some("carl@example.com"), None).await;
    send_codes(&app, std::slice::from_ref(&carl)).await;
    smtp.wait_for("carl@example.com", 1, WAIT).await;
    let (own_token, _) = app.token_with_id(Some(&a), &["user.write"]).await;
    let (other_token, _) = app.token_with_id(Some(&b), &["user.write"]).await;
    let conn = amqp().await;
    let exchange = app.settings.amqp.prefix.clone();
    let request = |by: &str| json!({"v": 1, "userId": carl, "requestedBy": by}).to_string().into_bytes();

    // Act: first on behalf of the other organization's token, then of its own.
    publish(&conn, &exchange, "resend.request", "resend-request.v1", &request(&other_token)).await;
    // The first is served (and refused) before the second arrives.
    settled(&app).await;
    publish(&conn, &exchange, "resend.request", "resend-request.v1", &request(&own_token)).await;

    // Assert: only the request of a token that sees Carl re-invited him.
    let mails = smtp.wait_for("carl@example.com", 2, WAIT).await;
    ok_json(app.verify(&carl, &mails[1].code_from_link()).await).await;
    settled(&app).await;
    assert_eq!(smtp.mails_to("carl@example.com").len(), 2, "the other tenant's token re-invited nobody");
}

#[actix_web::test]
async fn the_same_user_requested_three_times_at_once_gets_three_codes_one_after_another() {
    // Arrange: a user with a mailed code.
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    let org = app.create_org().await;
    let dana = app.create_user(&org, Some("dana@example.com"), None).await;
    send_codes(&app, std::slice::from_ref(&dana)).await;
    smtp.wait_for("dana@example.com", 1, WAIT).await;
    let conn = amqp().await;
    let exchange = app.settings.amqp.prefix.clone();
    let request = json!({"v": 1, "userId": dana}).to_string().into_bytes();

    // Act: three requests for her at once (resent together, they share a batch).
    for _ in 0..3 {
        publish(&conn, &exchange, "resend.request", "resend-request.v1", &request).await;
    }

    // Assert: three new codes, each its own event, issued one after the other.
    eventually("three new codes", WAIT, || async {
        let added = app.event_types(&dana).await.iter().filter(|t| *t == "invite.code.added").count();
        (added == 4).then_some(())
    })
    .await;
    let sequences: Vec<i64> = sqlx::query_scalar(
        "SELECT sequence FROM events WHERE aggregate_id = $1 AND type = 'invite.code.added' ORDER BY sequence",
    )
    .bind(&dana)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");
    // Each older code's delivery was sent before the next code or superseded by
    // it; the newest is sent, and its mail's code verifies.
    let newest: (i64, String) = eventually("the newest delivery sent", WAIT, || async {
        let row: (i64, String) = sqlx::query_as(
            "SELECT id, status FROM deliveries WHERE user_id = $1 ORDER BY code_event_sequence DESC LIMIT 1",
        )
        .bind(&dana)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        (row.1 == "sent").then_some(row)
    })
    .await;
    settled(&app).await;
    let statuses: Vec<String> = app.deliveries(&dana).await.into_iter().map(|d| d.status).collect();
    assert_eq!(statuses.len(), 4, "{statuses:?}");
    assert!(statuses.iter().all(|s| s == "sent" || s == "superseded"), "{statuses:?}");
    let sent = statuses.iter().filter(|s| *s == "sent").count();
    let mails = smtp.mails_to("dana@example.com");
    assert_eq!(mails.len(), sent, "one mail per sent delivery");
    let mail =
        mails.iter().find(|m| m.raw.contains(&format!("<{}.invite@", newest.0))).expect("the newest code's mail");
    ok_json(app.verify(&dana, &mail.code_from_link()).await).await;
}

#[actix_web::test]
async fn a_producer_message_may_name_several_users_and_must_name_some() {
    // Arrange: two users with mailed codes.
    let smtp = SmtpServer::start().await;
    let (app, ada, bob) = two_mailed_users(&smtp).await;
    let conn = amqp().await;
    let exchange = app.settings.amqp.prefix.clone();

    // Act: one message for both (and an id nobody has), then two that name nobody
    // usable: both fields at once, and neither.
    let several = json!({"v": 1, "userIds": [ada, "404404404404404404", bob]}).to_string();
    publish(&conn, &exchange, "resend.request", "resend-request.v1", several.as_bytes()).await;
    let both = json!({"v": 1, "userId": ada, "userIds": [bob]}).to_string();
    publish(&conn, &exchange, "resend.request", "resend-request.v1", both.as_bytes()).await;
    publish(&conn, &exchange, "resend.request", "resend-request.v1", br#"{"v": 1}"#).await;

    // Assert: Ada and Bob each get one new code that verifies.
    for (user, address) in [(&ada, "ada@example.com"), (&bob, "bob@example.com")] {
        let mails = smtp.wait_for(address, 2, WAIT).await;
        assert_ne!(mails[1].code_from_link(), mails[0].code_from_link());
        ok_json(app.verify(user, &mails[1].code_from_link()).await).await;
    }
    // The two that name nobody usable are parked with the reason.
    let parked = parked(&app, &conn).await;
    assert_eq!(parked.len(), 2, "{parked:?}");
    for p in &parked {
        let reason = p.headers.get("x-herald-reason").expect("an x-herald-reason header");
        assert!(reason.contains("exactly one of userId and userIds"), "{reason}");
    }
    assert_eq!(smtp.mails_to("ada@example.com").len(), 2, "the parked requests resent nobody");
    assert_eq!(smtp.mails_to("bob@example.com").len(), 2, "the parked requests resent nobody");
}

/// herald with mail, and Ada and Bob, whose first invites have arrived.
async fn two_mailed_users(smtp: &SmtpServer) -> (TestApp, String, String) {
    let app = spawn_app_with(with_mail(smtp)).await;
    let org = app.create_org().await;
    let ada = app.create_user(&org, Some("ada@example.com"), None).await;
    let bob = app.create_user(&org, Some("bob@example.com"), None).await;
    send_codes(&app, &[ada.clone(), bob.clone()]).await;
    smtp.wait_for("ada@example.com", 1, WAIT).await;
    smtp.wait_for("bob@example.com", 1, WAIT).await;
    (app, ada, bob)
}

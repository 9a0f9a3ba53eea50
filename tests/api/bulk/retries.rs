//! API.md §4 with docs/ARCHITECTURE.md, "Retries": bulk deliveries that share a
//! message are retried and parked one by one, and requests that meet a database
//! outage are retried until it ends.

use serde_json::{json, Value};

use crate::helpers::{amqp, eventually, ok_json, parked, publish, settled, spawn_app_with, TestApp, WAIT};
use crate::ops_helpers::{send_codes, start_job, with_mail};
use crate::smtp::SmtpServer;

#[actix_web::test]
async fn bulk_deliveries_that_share_a_message_are_retried_and_parked_one_by_one() {
    // Arrange: three users with mailed codes; then the SMTP server starts refusing
    // Ada for good and Bob once.
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    let org = app.create_org().await;
    let ada = app.create_user(&org, Some("ada@example.com"), None).await;
    let bob = app.create_user(&org, Some("bob@example.com"), None).await;
    let cy = app.create_user(&org, Some("cy@example.com"), None).await;
    send_codes(&app, &[ada.clone(), bob.clone(), cy.clone()]).await;
    for address in ["ada@example.com", "bob@example.com", "cy@example.com"] {
        smtp.wait_for(address, 1, WAIT).await;
    }
    smtp.refuse("ada@example.com", "550 5.1.1 No such user", None);
    smtp.refuse("bob@example.com", "421 4.3.2 Try again later", Some(1));

    // Act: one job for the three (their deliveries travel in one message).
    let (job_id, _) = start_job(&app, &json!({"orgId": org, "userIds": [ada, bob, cy]})).await;

    // Assert: Cy is mailed at once, Bob on his second attempt, Ada is dead, and the
    // dead queue holds a message for Ada's delivery alone.
    smtp.wait_for("cy@example.com", 2, WAIT).await;
    smtp.wait_for("bob@example.com", 2, WAIT).await;
    let ada_delivery: i64 = eventually("Ada's delivery dead", WAIT, || async {
        sqlx::query_scalar("SELECT id FROM deliveries WHERE job_id = $1 AND user_id = $2 AND status = 'dead'")
            .bind(&job_id)
            .bind(&ada)
            .fetch_optional(&app.pool)
            .await
            .unwrap()
    })
    .await;
    let attempts: Vec<(String, i32)> = sqlx::query_as(
        "SELECT user_id, attempts FROM deliveries WHERE job_id = $1 AND status = 'sent' ORDER BY user_id",
    )
    .bind(&job_id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let mut expected = vec![(bob.clone(), 2), (cy.clone(), 1)];
    expected.sort();
    assert_eq!(attempts, expected);
    let conn = amqp().await;
    let parked = parked(&app, &conn).await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    let body: Value = serde_json::from_slice(&parked[0].body).unwrap();
    assert_eq!(body["deliveryId"], json!(ada_delivery.to_string()), "{body}");
    assert!(body.get("deliveryIds").is_none(), "{body}");
    let reason = parked[0].headers.get("x-herald-reason").expect("an x-herald-reason header");
    assert!(reason.contains("550"), "{reason}");
    assert_eq!(smtp.mails_to("ada@example.com").len(), 1, "Ada's bulk mail was never accepted");
}

#[actix_web::test]
async fn requests_that_meet_a_database_outage_are_retried_and_resend_each_user_once() {
    // Arrange: three users with mailed codes, and attempts enough to outlast the
    // outage (bulk requests are capped by `delivery.max_attempts` like deliveries).
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(|s| {
        with_mail(&smtp)(s);
        s.delivery.max_attempts = 20;
    })
    .await;
    let org = app.create_org().await;
    let mut users = Vec::new();
    for n in ["ada", "bob", "cy"] {
        users.push(app.create_user(&org, Some(&format!("{n}@example.com")), None).await);
    }
    send_codes(&app, &users).await;
    for n in ["ada", "bob", "cy"] {
        smtp.wait_for(&format!("{n}@example.com"), 1, WAIT).await;
    }
    let conn = amqp().await;
    let exchange = app.settings.amqp.prefix.clone();

    // Act: the database goes down, a request for the three arrives, and the
    // database comes back a few retries (1 s apart in tests) later.
    app.cut_off_database().await;
    let request = json!({"v": 1, "userIds": users}).to_string();
    publish(&conn, &exchange, "resend.request", "resend-request.v1", request.as_bytes()).await;
    eventually("two retries of the request", WAIT, || async { (retried_requests(&app).await >= 2).then_some(()) })
        .await;
    assert_eq!(smtp.received(), 3, "nothing can be resent while the database is down");
    app.restore_database().await;

    // Assert: each user gets exactly one new code, and it verifies.
    for (user, n) in users.iter().zip(["ada", "bob", "cy"]) {
        let address = format!("{n}@example.com");
        let mails = smtp.wait_for(&address, 2, WAIT).await;
        ok_json(app.verify(user, &mails[1].code_from_link()).await).await;
    }
    settled(&app).await;
    assert_eq!(smtp.received(), 6, "one new mail each, no more");
    let metrics = app.get("/metrics", &app.bootstrap).await.text().await.unwrap();
    let retried = metrics
        .lines()
        .find(|l| l.contains("bulk") && l.contains("retried") && !l.starts_with('#'))
        .unwrap_or_else(|| panic!("no retried bulk requests in:\n{metrics}"));
    assert!(!retried.ends_with(" 0"), "{retried}");
}

/// Resend requests retried so far, as `/metrics` counts them (it answers without the
/// database).
async fn retried_requests(app: &TestApp) -> u64 {
    let metrics = app.get("/metrics", &app.bootstrap).await.text().await.unwrap();
    let line = metrics.lines().find(|l| l.starts_with(r#"herald_bulk_requests_total{outcome="retried"}"#));
    line.and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0)
}

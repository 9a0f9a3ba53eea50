//! docs/ARCHITECTURE.md, "Retries": a transient refusal is tried again, a permanent
//! one is dead at once, attempts run out, and what cannot be read is parked while the
//! consumer keeps going.

use super::send_code;
use crate::helpers::{amqp, parked, publish, spawn_app_with, wait_attempts, WAIT};
use crate::ops_helpers::with_mail;
use crate::smtp::SmtpServer;

#[actix_web::test]
async fn a_4xx_then_accept_is_sent_on_a_later_attempt() {
    let smtp = SmtpServer::start().await;
    smtp.refuse("ada@example.com", "451 4.7.1 Try again later", Some(1));
    let app = spawn_app_with(with_mail(&smtp)).await;
    let (_org, user) = app.org_and_user().await;
    send_code(&app, &user).await;

    assert!(wait_attempts(&app, &user, "sent").await >= 2);
    assert_eq!(smtp.mails_to("ada@example.com").len(), 1);
    let outcomes: Vec<String> = sqlx::query_scalar(
        "SELECT a.outcome FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.user_id = $1 ORDER BY a.id",
    )
    .bind(&user)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(outcomes, ["transient", "sent"]);
}

#[actix_web::test]
async fn a_5xx_is_dead_after_one_attempt() {
    let smtp = SmtpServer::start().await;
    smtp.refuse("ada@example.com", "550 5.1.1 No such user", None);
    let app = spawn_app_with(with_mail(&smtp)).await;
    let (_org, user) = app.org_and_user().await;
    send_code(&app, &user).await;

    assert_eq!(wait_attempts(&app, &user, "dead").await, 1);
    let last_error: String = sqlx::query_scalar("SELECT last_error FROM deliveries WHERE user_id = $1")
        .bind(&user)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(last_error.contains("550"), "{last_error}");
    assert_eq!(smtp.rcpt_attempts("ada@example.com"), 1);
}

#[actix_web::test]
async fn always_4xx_is_dead_after_max_attempts_and_parked_in_the_dead_queue() {
    let smtp = SmtpServer::start().await;
    smtp.refuse("ada@example.com", "421 4.3.2 Service not available", None);
    let app = spawn_app_with(with_mail(&smtp)).await;
    let (_org, user) = app.org_and_user().await;
    send_code(&app, &user).await;

    assert_eq!(wait_attempts(&app, &user, "dead").await, 3, "max_attempts is 3");
    assert_eq!(smtp.rcpt_attempts("ada@example.com"), 3);
    let dead = parked(&app, &amqp().await).await;
    assert_eq!(dead.len(), 1, "one message parked");
    let properties = dead[0].properties();
    assert!(properties.contains("attempts exhausted"), "the reason travels in the headers: {properties}");
}

#[actix_web::test]
async fn a_malformed_message_is_parked_and_the_consumer_keeps_going() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    // Published as an outside producer would, before any real delivery.
    let conn = amqp().await;
    publish(&conn, &app.settings.amqp.prefix, "delivery.email", "delivery.v1", b"{not json").await;

    let (_org, user) = app.org_and_user().await;
    send_code(&app, &user).await;
    smtp.wait_for("ada@example.com", 1, WAIT).await;
    let dead = parked(&app, &conn).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, b"{not json");
    let properties = dead[0].properties();
    assert!(properties.contains("unparsable delivery message"), "{properties}");
}

//! "Every delivery ends in a final status" (docs/ARCHITECTURE.md, "Guarantees and
//! how they are kept"), even when the broker loses its message: the message is
//! taken from the queue behind herald's back (as a purge, or a dead letter by the
//! queue's `x-delivery-limit`, would), and the sweeper hands the row back to the
//! outbox, which publishes it again. A claim held by a process that died is taken
//! over at once, not when its 90 s lease ends (a row handed to the relay of a dead
//! process is taken over the same way: `reliability::relay`, at the store).

use std::time::Duration;

use herald::config::Role;
use herald::queue::Topology;

use serde_json::json;

use crate::helpers::{
    amqp, drain_queue, eventually, ok_json, settled, spawn_app_from, spawn_app_with, wait_ready, TestApp, WAIT,
};
use crate::ops_helpers::with_mail;
use crate::smtp::SmtpServer;

/// An API-only herald (deliveries wait in the queue until a worker starts) that
/// deems a message lost one second after it was due.
async fn api_only(smtp: &SmtpServer) -> TestApp {
    spawn_app_with(|s| {
        with_mail(smtp)(s);
        s.roles = vec![Role::Api];
        s.delivery.republish_after = Duration::from_secs(1);
        s.delivery.process_dead_after = Duration::from_secs(2);
    })
    .await
}

async fn worker_for(api: &TestApp) -> TestApp {
    let mut settings = api.settings.clone();
    settings.roles = vec![Role::Worker];
    spawn_app_from(settings).await
}

async fn send_code(app: &TestApp, user: &str) {
    ok_json(app.create_code(user, &json!({"sendCode": {"applicationName": "Acme"}})).await).await;
}

/// The newest delivery of `user`; its id.
async fn newest(app: &TestApp, user: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM deliveries WHERE user_id = $1 ORDER BY id DESC LIMIT 1")
        .bind(user)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// A process that was killed a minute ago: its row, silent since.
async fn dead_process(app: &TestApp) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO herald_processes (node, host, pid, started_at, heartbeat_at, alive_since)
         VALUES (1000, 'gone', 1, now() - interval '2 minutes', now() - interval '1 minute',
                 now() - interval '2 minutes')
         RETURNING id",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// Takes the delivery messages waiting in the e-mail queue, as a purge would.
async fn lose_messages(app: &TestApp) -> usize {
    // The queues exist once herald's broker link is up.
    wait_ready(app).await;
    let queue = Topology::new(&app.settings.amqp.prefix, &app.settings.delivery.retry_delays).email_queue();
    let conn = amqp().await;
    let n = eventually("the message in the queue", WAIT, || async {
        let taken = drain_queue(&conn, &queue).await;
        (!taken.is_empty()).then_some(taken.len())
    })
    .await;
    let _ = conn.close(200, "lost".into()).await;
    n
}

async fn ends(app: &TestApp, id: i64) -> (String, i32) {
    eventually("the delivery to end", WAIT, || async {
        let (status, attempts): (String, i32) = sqlx::query_as("SELECT status, attempts FROM deliveries WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        (!["queued", "sending", "retrying"].contains(&status.as_str())).then_some((status, attempts))
    })
    .await
}

#[actix_web::test]
async fn a_queued_delivery_whose_message_the_broker_lost_is_published_again_and_sent() {
    let smtp = SmtpServer::start().await;
    let api = api_only(&smtp).await;
    let (_org, user) = api.org_and_user().await;
    send_code(&api, &user).await;
    let id = newest(&api, &user).await;

    assert!(lose_messages(&api).await >= 1);
    let _worker = worker_for(&api).await;

    assert_eq!(ends(&api, id).await, ("sent".to_string(), 1));
    settled(&api).await;
    assert_eq!(smtp.mails_to("ada@example.com").len(), 1);
}

#[actix_web::test]
async fn a_retrying_delivery_whose_retry_message_was_lost_is_sent_anyway() {
    let smtp = SmtpServer::start().await;
    let api = api_only(&smtp).await;
    let (_org, user) = api.org_and_user().await;
    send_code(&api, &user).await;
    let id = newest(&api, &user).await;
    lose_messages(&api).await;
    // As after a transient failure whose retry message the broker then lost.
    sqlx::query(
        "UPDATE deliveries SET status = 'retrying', attempts = 1, next_attempt_at = now() - interval '1 second'
         WHERE id = $1",
    )
    .bind(id)
    .execute(&api.pool)
    .await
    .unwrap();
    let _worker = worker_for(&api).await;

    assert_eq!(ends(&api, id).await, ("sent".to_string(), 2));
    settled(&api).await;
    assert_eq!(smtp.mails_to("ada@example.com").len(), 1);
}

#[actix_web::test]
async fn a_claim_held_by_a_dead_process_is_taken_over_long_before_its_lease_ends() {
    let smtp = SmtpServer::start().await;
    let api = api_only(&smtp).await;
    let (_org, user) = api.org_and_user().await;
    send_code(&api, &user).await;
    let id = newest(&api, &user).await;
    lose_messages(&api).await;
    // A process claimed it, then was killed: its heartbeat stopped a minute ago,
    // and its lease still has 90 s to run.
    let dead = dead_process(&api).await;
    sqlx::query(
        "UPDATE deliveries SET status = 'sending', attempts = 1, claimed_by = $2,
                lease_until = now() + interval '90 seconds'
         WHERE id = $1",
    )
    .bind(id)
    .bind(dead)
    .execute(&api.pool)
    .await
    .unwrap();
    let _worker = worker_for(&api).await;

    // WAIT (30 s) is far below the 90 s lease: only a takeover ends it in time.
    assert_eq!(ends(&api, id).await, ("sent".to_string(), 2));
    settled(&api).await;
    assert_eq!(smtp.mails_to("ada@example.com").len(), 1);
}

//! API.md §4: a job's mails travel in the bulk lane, so a transactional resend is
//! mailed while a large job is still at work, not behind it.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{eventually, ok_json, settled, spawn_app_with, TestApp, WAIT};
use crate::ops_helpers::{finished_job, import_users, job, seed_sent_codes, send_codes, start_job, with_mail};
use crate::smtp::SmtpServer;

#[actix_web::test]
async fn a_transactional_resend_is_mailed_while_a_job_of_5000_runs() {
    // Arrange: a user of one organization with a mailed code, and 5,000 pending
    // users of another (their codes made directly, without mails).
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    let vip_org = app.create_org().await;
    let vip = app.create_user(&vip_org, Some("vip@example.com"), None).await;
    send_codes(&app, std::slice::from_ref(&vip)).await;
    smtp.wait_for("vip@example.com", 1, WAIT).await;
    let org = app.create_org().await;
    let users = import_users(&app, &org, "many", 5_000).await;
    seed_sent_codes(&app, &org, &users).await;
    let started = Instant::now();
    // A mailbox slower than the job's resends, so the job's mails pile up in the
    // bulk lane: the transactional one must not wait behind them.
    smtp.set_delay(Duration::from_millis(20));
    let (job_id, total) = start_job(&app, &json!({"orgId": org, "allPending": true})).await;
    assert_eq!(total, 5_000);
    // The job is under way, with at least 1,500 of its mails waiting to go out
    // (they are made faster than they are sent): a resend queued behind them would
    // wait for all of them.
    let backlog = || async {
        let made: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE job_id = $1")
            .bind(&job_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        (made as usize).saturating_sub(smtp.received() - 1)
    };
    eventually("a backlog of 1,500 of the job's mails", WAIT * 2, || async {
        let waiting = backlog().await;
        (waiting >= 1_500).then_some(waiting)
    })
    .await;

    // Act
    let before = smtp.received() - 1;
    let waiting = backlog().await;
    ok_json(app.resend(&vip).await).await;

    // Assert: the resend is mailed while the job is still at work, ahead of the
    // job's backlog.
    eventually("the resend's mail", WAIT, || async { (smtp.received_by("vip@example.com") == 2).then_some(()) }).await;
    let status = job(&app, &job_id).await;
    let sent: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE job_id = $1 AND status = 'sent'")
        .bind(&job_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(status.get("finishedAt").is_none() || sent < 5_000, "the job was over already: {status}");
    let at = smtp.mails().iter().rposition(|m| m.to == ["vip@example.com"]).unwrap();
    let overtaken_by = at - 1 - before;
    eprintln!(
        "{before} of the job's mails were out and {waiting} waiting; {overtaken_by} more went out before the resend's"
    );
    // Only the job's mails already in the workers' hands (the prefetch) may still
    // go first, not the backlog.
    assert!(overtaken_by < waiting / 2, "the resend waited behind {overtaken_by} of the job's {waiting} waiting mails");

    // Every request of the job succeeds.
    let status = finished_job(&app, &job_id, WAIT * 2).await;
    assert_eq!((&status["done"], &status["succeeded"]), (&json!(5_000), &json!(5_000)), "{status}");
    eprintln!("requests done in {:.1}s; {} mails so far", started.elapsed().as_secs_f64(), smtp.received());

    // The rest of its mails would take a while (the 500-user test follows a job to
    // its last mail): stop them, so that nothing is at work when the test's
    // database and queues go.
    stop_job_mails(&app, &job_id).await;
}

/// Cancels the job's deliveries that are not over yet, and waits until herald
/// settled: the lane's messages of cancelled deliveries are acked without a send.
async fn stop_job_mails(app: &TestApp, job_id: &str) {
    sqlx::query(
        // Locked in id order, as herald locks deliveries, so this cannot deadlock
        // with a claim or the relay.
        "UPDATE deliveries SET status = 'cancelled', lease_until = NULL
         WHERE id IN (SELECT id FROM deliveries
                      WHERE job_id = $1 AND status IN ('queued', 'retrying', 'sending')
                      ORDER BY id FOR UPDATE)",
    )
    .bind(job_id)
    .execute(&app.pool)
    .await
    .unwrap();
    settled(app).await;
}

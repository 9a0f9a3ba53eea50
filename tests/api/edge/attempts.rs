//! docs/API.md §4: a bulk request that keeps failing transiently is tried
//! `delivery.max_attempts` times, then its users are counted as failed under
//! `BULK-attemptsexhausted`, and the job finishes.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{eventually, spawn_app_with, WAIT};
use crate::ops_helpers::{job, send_codes, start_job, with_mail};
use crate::smtp::SmtpServer;

#[actix_web::test]
async fn a_job_counts_the_users_still_failing_when_their_request_is_out_of_attempts() {
    // Arrange: a user with a mailed code, whose row the test then holds locked.
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    let org = app.create_org().await;
    let ada = app.create_user(&org, Some("ada@example.com"), None).await;
    send_codes(&app, std::slice::from_ref(&ada)).await;
    smtp.wait_for("ada@example.com", 1, WAIT).await;
    let mut lock = app.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE").bind(&ada).execute(&mut *lock).await.unwrap();

    // Act: a job for Ada; every time its resend waits for her row, the session is
    // ended under it (as a database failover would): a transient failure, each try.
    let (job_id, _) = start_job(&app, &json!({"orgId": org, "userIds": [ada]})).await;
    let status = eventually("the job to finish", Duration::from_secs(60), || async {
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
        )
        .execute(&app.pool)
        .await
        .unwrap();
        let status = job(&app, &job_id).await;
        status.get("finishedAt").is_some().then_some(status)
    })
    .await;
    lock.rollback().await.unwrap();

    // Assert: out of attempts (3), counted as failed; no new mail.
    assert_eq!(status["failed"], json!({"BULK-attemptsexhausted": 1}), "{status}");
    assert_eq!(status["succeeded"], json!(0), "{status}");
    assert_eq!(smtp.mails_to("ada@example.com").len(), 1);
}

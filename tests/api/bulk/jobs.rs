//! API.md §4: bulk jobs through the API: what a job covers, how it counts each
//! request, whose permissions it acts with, and what is refused.

use serde_json::{json, Value};

use super::codes_by_recipient;
use crate::helpers::{
    assert_error, assert_error_code, eventually, ok_json, settled, spawn_app, spawn_app_with, timestamp, wait_ready,
    WAIT,
};
use crate::ops_helpers::{concurrently, finished_job, import_users, job, send_codes, start_job, with_mail};
use crate::smtp::SmtpServer;

#[actix_web::test]
async fn all_pending_reinvites_every_pending_user_exactly_once_with_a_new_code() {
    // Arrange: 500 users whose first invite was mailed, and one never invited.
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    let org = app.create_org().await;
    let users = import_users(&app, &org, "pending", 500).await;
    let never = app.create_user(&org, Some("never@example.com"), None).await;
    send_codes(&app, &users).await;
    eventually("the 500 first invites", WAIT, || async { (smtp.received() >= 500).then_some(()) }).await;
    let first = codes_by_recipient(&smtp.mails());
    assert_eq!(first.len(), 500);

    // Act
    let (job_id, total) = start_job(&app, &json!({"orgId": org, "allPending": true})).await;

    // Assert: the job covers the 500 and ends with all of them resent.
    assert_eq!(total, 500);
    let status = finished_job(&app, &job_id, WAIT * 2).await;
    assert_eq!(status["jobId"], json!(job_id), "{status}");
    assert_eq!(status["orgId"], json!(org), "{status}");
    assert_eq!((&status["total"], &status["done"], &status["succeeded"]), (&json!(500), &json!(500), &json!(500)));
    assert_eq!(status["failed"], json!({}), "{status}");
    let created = timestamp(&status["createdAt"]);
    assert!(timestamp(&status["finishedAt"]) >= created, "{status}");

    // Every pending user gets one new mail, whose code differs from the first and verifies.
    eventually("the 500 re-invites", WAIT * 2, || async { (smtp.received() >= 1000).then_some(()) }).await;
    settled(&app).await;
    let all = codes_by_recipient(&smtp.mails());
    assert_eq!(smtp.received(), 1000, "one new mail each, no more");
    for i in 0..users.len() {
        let address = format!("pending{i}@example.com");
        let codes = &all[&address];
        assert_eq!(codes.len(), 2, "{address}: {codes:?}");
        assert_eq!(codes[0], first[&address][0]);
        assert_ne!(codes[1], codes[0], "{address} got the same code again");
    }
    // The old code stopped verifying (checked for one user: each failure is counted).
    let old = &first["pending0@example.com"][0];
    assert_error(app.verify(&users[0], old).await, 400, 3, "COMMAND-Wgn4q").await;
    concurrently(users.iter().enumerate(), |(i, user)| {
        let code = all[&format!("pending{i}@example.com")][1].clone();
        let app = &app;
        async move { ok_json(app.verify(user, &code).await).await }
    })
    .await;
    let sent: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE job_id = $1 AND status = 'sent'")
        .bind(&job_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(sent, 500);

    // The user never invited is untouched: no delivery, no mail, still no invite.
    assert!(app.deliveries(&never).await.is_empty());
    assert!(smtp.mails_to("never@example.com").is_empty());
    let view = ok_json(app.get(&format!("/v2/users/{never}"), &app.bootstrap).await).await;
    assert_eq!(view["user"]["invite"]["state"], json!("none"), "{view}");
}

#[actix_web::test]
async fn a_job_of_user_ids_counts_each_refused_request_under_its_error_id() {
    // Arrange: a user with a sent code, one without any code, and an id nobody has.
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    let org = app.create_org().await;
    let good = app.create_user(&org, Some("good@example.com"), None).await;
    let no_code = app.create_user(&org, Some("nocode@example.com"), None).await;
    send_codes(&app, std::slice::from_ref(&good)).await;
    let first = smtp.wait_for("good@example.com", 1, WAIT).await[0].code_from_link();

    // Act: the good user is listed twice; they are one user all the same.
    let ids = json!([good, no_code, "404404404404404404", good]);
    let (job_id, total) = start_job(&app, &json!({"orgId": org, "userIds": ids})).await;

    // Assert
    assert_eq!(total, 3);
    let status = finished_job(&app, &job_id, WAIT).await;
    assert_eq!((&status["total"], &status["done"], &status["succeeded"]), (&json!(3), &json!(3), &json!(1)));
    assert_eq!(status["failed"], json!({"COMMAND-Wr3gq": 1, "COMMAND-Wgvn4": 1}), "{status}");
    let mails = smtp.wait_for("good@example.com", 2, WAIT).await;
    let second = mails[1].code_from_link();
    assert_ne!(second, first);
    settled(&app).await;
    assert_eq!(smtp.mails_to("good@example.com").len(), 2, "resent once");
    ok_json(app.verify(&good, &second).await).await;
    assert!(app.deliveries(&no_code).await.is_empty());
    assert!(smtp.mails_to("nocode@example.com").is_empty());
}

#[actix_web::test]
async fn each_request_acts_with_the_permissions_and_scope_of_the_jobs_creator() {
    // Arrange: users with mailed codes in two organizations, and two tokens of the
    // first that may start jobs, one of them without `user.write`.
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    let (a, b) = (app.create_org().await, app.create_org().await);
    let ann = app.create_user(&a, Some("ann@example.com"), None).await;
    let bea = app.create_user(&b, Some("bea@example.com"), None).await;
    send_codes(&app, &[ann.clone(), bea.clone()]).await;
    smtp.wait_for("ann@example.com", 1, WAIT).await;
    smtp.wait_for("bea@example.com", 1, WAIT).await;
    let bulk_only = app.token(Some(&a), &["bulk.write"]).await;
    let bulk_and_users = app.token(Some(&a), &["bulk.write", "user.write"]).await;
    let body = json!({"orgId": a, "userIds": [ann, bea]});
    let start = |token: String| {
        let (app, body) = (&app, &body);
        async move {
            let resp = app.post("/admin/v1/bulk/resend", &token, body).await;
            assert_eq!(resp.status().as_u16(), 202);
            resp.json::<Value>().await.unwrap()["jobId"].as_str().unwrap().to_string()
        }
    };

    // Act
    let refused = start(bulk_only).await;
    let refused = finished_job(&app, &refused, WAIT).await;
    let allowed = start(bulk_and_users).await;
    let allowed = finished_job(&app, &allowed, WAIT).await;
    // Ann's new invite is out before the next job replaces her code (a code
    // replaced before its mail went out is superseded, not sent).
    smtp.wait_for("ann@example.com", 2, WAIT).await;
    // Even a token that sees every organization re-invites only the job's own.
    let instance = start(app.bootstrap.clone()).await;
    let instance = finished_job(&app, &instance, WAIT).await;

    // Assert: without user.write every resend is refused (API.md §2 check 4); with
    // it, the user of another organization is not found for this creator.
    assert_eq!((&refused["succeeded"], &refused["failed"]), (&json!(0), &json!({"AUTH-AWfge": 1, "COMMAND-Wgvn4": 1})));
    assert_eq!((&allowed["succeeded"], &allowed["failed"]), (&json!(1), &json!({"COMMAND-Wgvn4": 1})));
    assert_eq!((&instance["succeeded"], &instance["failed"]), (&json!(1), &json!({"COMMAND-Wgvn4": 1})));
    smtp.wait_for("ann@example.com", 3, WAIT).await;
    settled(&app).await;
    assert_eq!(smtp.mails_to("ann@example.com").len(), 3);
    assert_eq!(smtp.mails_to("bea@example.com").len(), 1, "the other tenant's user is untouched");
}

#[actix_web::test]
async fn a_job_without_pending_users_is_finished_at_once() {
    let app = spawn_app().await;
    wait_ready(&app).await;
    let (org, user) = app.org_and_user().await;
    // A returned code is not a sent invite.
    app.returned_code(&user).await;

    let (job_id, total) = start_job(&app, &json!({"orgId": org, "allPending": true})).await;

    assert_eq!(total, 0);
    let status = job(&app, &job_id).await;
    assert_eq!((&status["total"], &status["done"], &status["succeeded"]), (&json!(0), &json!(0), &json!(0)));
    timestamp(&status["finishedAt"]);
}

#[actix_web::test]
async fn a_job_counts_a_blank_or_oversized_id_as_refused_and_finishes() {
    // Arrange: one user with a mailed code.
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    let org = app.create_org().await;
    let good = app.create_user(&org, Some("good@example.com"), None).await;
    send_codes(&app, std::slice::from_ref(&good)).await;
    smtp.wait_for("good@example.com", 1, WAIT).await;

    // Act: ids that cannot be user ids, next to a good one.
    let ids = json!([" ", "x".repeat(201), good]);
    let (job_id, total) = start_job(&app, &json!({"orgId": org, "userIds": ids})).await;

    // Assert: all three are counted, the two bad ones under check 1's id, and the
    // job finishes.
    assert_eq!(total, 3);
    let status = finished_job(&app, &job_id, WAIT).await;
    assert_eq!((&status["done"], &status["succeeded"]), (&json!(3), &json!(1)), "{status}");
    assert_eq!(status["failed"], json!({"COMMAND-4jio3": 2}), "{status}");
    smtp.wait_for("good@example.com", 2, WAIT).await;
}

#[actix_web::test]
async fn bulk_needs_bulk_write_and_other_tenants_jobs_are_invisible() {
    let app = spawn_app().await;
    wait_ready(&app).await;
    let (a, ada) = app.org_and_user().await;
    let b = app.create_org().await;
    let everything_but_bulk =
        app.token(None, &["org.write", "user.read", "user.write", "delivery.read", "delivery.replay"]).await;
    let a_bulk = app.token(Some(&a), &["bulk.write"]).await;
    let b_bulk = app.token(Some(&b), &["bulk.write", "user.write"]).await;
    let body = json!({"orgId": a, "userIds": [ada]});

    assert_error(app.post("/admin/v1/bulk/resend", &everything_but_bulk, &body).await, 403, 7, "AUTH-AWfge").await;
    assert_error_code(app.post("/admin/v1/bulk/resend", &b_bulk, &body).await, 404, 5).await;
    let resp = app.post("/admin/v1/bulk/resend", &a_bulk, &body).await;
    assert_eq!(resp.status().as_u16(), 202);
    let job_id = resp.json::<Value>().await.unwrap()["jobId"].as_str().unwrap().to_string();
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM bulk_jobs").fetch_one(&app.pool).await.unwrap();
    assert_eq!(jobs, 1, "refused requests make no job");

    let path = format!("/admin/v1/bulk/{job_id}");
    assert_eq!(ok_json(app.get(&path, &a_bulk).await).await["orgId"], json!(a));
    assert_error_code(app.get(&path, &b_bulk).await, 404, 5).await;
    assert_error(app.get(&path, &everything_but_bulk).await, 403, 7, "AUTH-AWfge").await;
    assert_error_code(app.get("/admin/v1/bulk/123456789012345678", &app.bootstrap).await, 404, 5).await;
    let resp = app.client.get(app.url(&path)).send().await.unwrap();
    assert_error_code(resp, 401, 16).await;
}

#[actix_web::test]
async fn a_job_needs_an_organization_and_one_selection_of_at_most_10000_ids() {
    let app = spawn_app().await;
    wait_ready(&app).await;
    let (org, user) = app.org_and_user().await;
    let post = |body: Value| {
        let app = &app;
        async move { app.post("/admin/v1/bulk/resend", &app.bootstrap, &body).await }
    };

    for body in [
        json!({"userIds": [user]}),
        json!({"orgId": org}),
        json!({"orgId": org, "allPending": false}),
        json!({"orgId": org, "userIds": [user], "allPending": true}),
        json!({"orgId": org, "userIds": []}),
        json!({"orgId": org, "userIds": "all"}),
    ] {
        assert_error_code(post(body).await, 400, 3).await;
    }
    assert_error_code(post(json!({"orgId": "123456789", "allPending": true})).await, 404, 5).await;

    // Short ids (base 36), so that 10,001 of them fit in the 64 KiB body.
    let short_ids: Vec<String> = (0..10_001).map(base36).collect();
    assert_error_code(post(json!({"orgId": org, "userIds": short_ids})).await, 400, 3).await;
    let (_, total) = start_job(&app, &json!({"orgId": org, "userIds": short_ids[..10_000]})).await;
    assert_eq!(total, 10_000);
}

fn base36(mut n: u32) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = vec![digits[(n % 36) as usize]];
    while n >= 36 {
        n /= 36;
        out.push(digits[(n % 36) as usize]);
    }
    out.reverse();
    String::from_utf8(out).unwrap()
}

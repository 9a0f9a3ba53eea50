//! API.md §4: bulk re-invites. Jobs through `POST /admin/v1/bulk/resend` and
//! `GET /admin/v1/bulk/{jobId}`, requests that outside producers publish on the
//! broker themselves, and transactional resends that never wait behind a job.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{assert_error, assert_error_code, ok_json, spawn_app, spawn_app_with, timestamp, TestApp};
use crate::ops_helpers::{
    amqp, concurrently, eventually, finished_job, import_users, job, publish, seed_sent_codes, send_codes, start_job,
    take_at_least, wait_ready, with_mail, WAIT,
};
use crate::smtp::SmtpServer;

/// The recipients' codes, in the order their mails arrived.
fn codes_by_recipient(mails: &[crate::smtp::Mail]) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for m in mails {
        assert_eq!(m.to.len(), 1, "one recipient per mail: {:?}", m.to);
        out.entry(m.to[0].to_ascii_lowercase()).or_default().push(m.code_from_link());
    }
    out
}

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
    tokio::time::sleep(Duration::from_millis(500)).await;
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
    tokio::time::sleep(Duration::from_millis(500)).await;
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
    // Even a token that sees every organization re-invites only the job's own.
    let instance = start(app.bootstrap.clone()).await;
    let instance = finished_job(&app, &instance, WAIT).await;

    // Assert: without user.write every resend is refused (API.md §2 check 4); with
    // it, the user of another organization is not found for this creator.
    assert_eq!((&refused["succeeded"], &refused["failed"]), (&json!(0), &json!({"AUTH-AWfge": 1, "COMMAND-Wgvn4": 1})));
    assert_eq!((&allowed["succeeded"], &allowed["failed"]), (&json!(1), &json!({"COMMAND-Wgvn4": 1})));
    assert_eq!((&instance["succeeded"], &instance["failed"]), (&json!(1), &json!({"COMMAND-Wgvn4": 1})));
    smtp.wait_for("ann@example.com", 3, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
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
async fn a_request_from_an_outside_producer_is_served_and_a_malformed_one_is_parked() {
    // Arrange: two users with mailed codes.
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    let org = app.create_org().await;
    let ada = app.create_user(&org, Some("ada@example.com"), None).await;
    let bob = app.create_user(&org, Some("bob@example.com"), None).await;
    send_codes(&app, &[ada.clone(), bob.clone()]).await;
    smtp.wait_for("ada@example.com", 1, WAIT).await;
    smtp.wait_for("bob@example.com", 1, WAIT).await;
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
    let dead_queue = format!("{exchange}.dead");
    let parked = take_at_least(&conn, &dead_queue, 1).await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].body, malformed);
    assert_eq!(parked[0].kind.as_deref(), Some("resend-request.v1"));
    let reason = parked[0].headers.get("x-herald-reason").expect("an x-herald-reason header");
    assert!(reason.contains("unparsable resend request"), "{reason}");
    assert_eq!(smtp.mails_to("ada@example.com").len(), 2, "nothing else was resent");
}

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

/// Cancels the job's deliveries that are not over yet, and waits until the job's
/// lane and the retry queue hold no more of its messages (each is then acked
/// without a send: its delivery is cancelled).
async fn stop_job_mails(app: &TestApp, job_id: &str) {
    sqlx::query(
        "UPDATE deliveries SET status = 'cancelled', lease_until = NULL
         WHERE job_id = $1 AND status IN ('queued', 'retrying', 'sending')",
    )
    .bind(job_id)
    .execute(&app.pool)
    .await
    .unwrap();
    let conn = amqp().await;
    let ch = conn.create_channel().await.unwrap();
    let prefix = &app.settings.amqp.prefix;
    let queues = [format!("{prefix}.bulk.email"), format!("{prefix}.retry.1s")];
    eventually("the job's lane to empty", WAIT * 2, || async {
        let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
        for queue in &queues {
            let q = ch.queue_declare(queue.as_str().into(), passive, Default::default()).await.unwrap();
            if q.message_count() > 0 {
                return None;
            }
        }
        Some(())
    })
    .await;
    // The messages the workers hold are settled in a moment.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = conn.close(200, "done".into()).await;
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
    tokio::time::sleep(Duration::from_millis(500)).await;
    publish(&conn, &exchange, "resend.request", "resend-request.v1", &request(&own_token)).await;

    // Assert: only the request of a token that sees Carl re-invited him.
    let mails = smtp.wait_for("carl@example.com", 2, WAIT).await;
    ok_json(app.verify(&carl, &mails[1].code_from_link()).await).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
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
    let statuses: Vec<String> = app.deliveries(&dana).await.into_iter().map(|d| d.status).collect();
    assert_eq!(statuses.len(), 4, "{statuses:?}");
    assert!(statuses.iter().all(|s| s == "sent" || s == "superseded"), "{statuses:?}");
    let sent = statuses.iter().filter(|s| *s == "sent").count();
    tokio::time::sleep(Duration::from_millis(300)).await;
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
    let app = spawn_app_with(with_mail(&smtp)).await;
    let org = app.create_org().await;
    let ada = app.create_user(&org, Some("ada@example.com"), None).await;
    let bob = app.create_user(&org, Some("bob@example.com"), None).await;
    send_codes(&app, &[ada.clone(), bob.clone()]).await;
    smtp.wait_for("ada@example.com", 1, WAIT).await;
    smtp.wait_for("bob@example.com", 1, WAIT).await;
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
    let dead_queue = format!("{exchange}.dead");
    let parked = take_at_least(&conn, &dead_queue, 2).await;
    assert_eq!(parked.len(), 2, "{parked:?}");
    for p in &parked {
        let reason = p.headers.get("x-herald-reason").expect("an x-herald-reason header");
        assert!(reason.contains("exactly one of userId and userIds"), "{reason}");
    }
    assert_eq!(smtp.mails_to("ada@example.com").len(), 2, "the parked requests resent nobody");
    assert_eq!(smtp.mails_to("bob@example.com").len(), 2, "the parked requests resent nobody");
}

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
    let dead_queue = format!("{}.dead", app.settings.amqp.prefix);
    let parked = take_at_least(&conn, &dead_queue, 1).await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    let body: Value = serde_json::from_slice(&parked[0].body).unwrap();
    assert_eq!(body["deliveryId"], json!(ada_delivery.to_string()), "{body}");
    assert!(body.get("deliveryIds").is_none(), "{body}");
    let reason = parked[0].headers.get("x-herald-reason").expect("an x-herald-reason header");
    assert!(reason.contains("550"), "{reason}");
    assert_eq!(smtp.mails_to("ada@example.com").len(), 1, "Ada's bulk mail was never accepted");
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
async fn requests_that_meet_a_database_outage_are_retried_and_resend_each_user_once() {
    // Arrange: three users with mailed codes.
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
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
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(smtp.received(), 3, "nothing can be resent while the database is down");
    app.restore_database().await;

    // Assert: each user gets exactly one new code, and it verifies.
    for (user, n) in users.iter().zip(["ada", "bob", "cy"]) {
        let address = format!("{n}@example.com");
        let mails = smtp.wait_for(&address, 2, WAIT).await;
        ok_json(app.verify(user, &mails[1].code_from_link()).await).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.received(), 6, "one new mail each, no more");
    let metrics = app.get("/metrics", &app.bootstrap).await.text().await.unwrap();
    let retried = metrics
        .lines()
        .find(|l| l.contains("bulk") && l.contains("retried") && !l.starts_with('#'))
        .unwrap_or_else(|| panic!("no retried bulk requests in:\n{metrics}"));
    assert!(!retried.ends_with(" 0"), "{retried}");
}

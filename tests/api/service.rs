//! API.md §1 (`x-request-id`) and §7 (`/healthz`), and the service behind the
//! endpoints where a test must control what HTTP leaves to timing.

use herald::auth::Principal;
use herald::invite::{IssueContext, ResendRequest};
use serde_json::json;

use crate::helpers::{assert_error_code, ok_json, spawn_app};

#[actix_web::test]
async fn healthz_is_200() {
    let app = spawn_app().await;

    let resp = app.client.get(app.url("/healthz")).send().await.unwrap();

    assert_eq!(resp.status().as_u16(), 200);
}

#[actix_web::test]
async fn the_callers_request_id_is_echoed_on_success_and_on_error() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    let requests = [
        app.client.get(app.url("/healthz")),
        app.client.post(app.url(&format!("/v2/users/{user}/invite_code"))).bearer_auth(&app.bootstrap).json(&json!({})),
        // 401, 404 (user), 404 (no route), 400 (check 1).
        app.client.post(app.url(&format!("/v2/users/{user}/invite_code/resend"))),
        app.client.post(app.url("/v2/users/404/invite_code/resend")).bearer_auth(&app.bootstrap),
        app.client.get(app.url("/no/such/route")),
        app.client.post(app.url("/v2/users/%20/invite_code/verify")),
        // Connect, success and error.
        app.client
            .post(app.url("/zitadel.user.v2.UserService/GetUserByID"))
            .bearer_auth(&app.bootstrap)
            .json(&json!({"userId": user})),
        app.client.post(app.url("/zitadel.user.v2.UserService/GetUserByID")).json(&json!({"userId": user})),
    ];

    for (i, req) in requests.into_iter().enumerate() {
        let id = format!("test-request-{i}-{:08x}", rand::random::<u32>());
        let resp = req.header("x-request-id", &id).send().await.unwrap();

        let status = resp.status();
        assert_eq!(
            resp.headers().get("x-request-id").map(|v| v.to_str().unwrap()),
            Some(id.as_str()),
            "#{i} ({status})"
        );
    }
}

#[actix_web::test]
async fn a_request_id_is_made_when_the_caller_sends_none() {
    let app = spawn_app().await;

    let ok = app.client.get(app.url("/healthz")).send().await.unwrap();
    let err = app.client.post(app.url("/v2/users/1/invite_code")).send().await.unwrap();
    let err2 = app.client.post(app.url("/v2/users/1/invite_code")).send().await.unwrap();

    let ids: Vec<String> = [&ok, &err, &err2]
        .iter()
        .map(|r| r.headers().get("x-request-id").expect("x-request-id").to_str().unwrap().to_string())
        .collect();
    assert!(ids.iter().all(|i| !i.is_empty()), "{ids:?}");
    assert_ne!(ids[0], ids[1]);
    assert_ne!(ids[1], ids[2]);
    assert_eq!(err.status().as_u16(), 401);
}

#[actix_web::test]
async fn an_unknown_route_answers_in_the_error_shape() {
    let app = spawn_app().await;

    let resp = app.client.get(app.url("/v3/nothing")).send().await.unwrap();

    assert_error_code(resp, 404, 5).await;
    ok_json(app.client.get(app.url("/healthz")).send().await.unwrap()).await;
}

#[actix_web::test]
async fn a_database_that_does_not_answer_is_503_without_internals() {
    // Arrange: herald runs, then its database refuses every connection.
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    app.cut_off_database().await;

    // Act
    let rest = app.create_code(&user, &json!({})).await;
    let connect =
        app.connect("zitadel.user.v2.UserService/ResendInviteCode", &app.bootstrap, &json!({"userId": user})).await;

    // Assert
    let b = assert_error_code(rest, 503, 14).await;
    let text = b.to_string().to_lowercase();
    for leak in ["sql", "postgres", "database \"", "connection", "error communicating", "panicked"] {
        assert!(!text.contains(leak), "{leak:?} in {b}");
    }
    assert_eq!(connect.status().as_u16(), 503);
    let b: serde_json::Value = connect.json().await.unwrap();
    assert_eq!(b["code"], "unavailable", "{b}");
    assert!(!b.to_string().to_lowercase().contains("postgres"), "{b}");
    // healthz says nothing of dependencies.
    ok_json(app.client.get(app.url("/healthz")).send().await.unwrap()).await;
}

#[actix_web::test]
async fn a_database_connection_ended_mid_request_is_503() {
    // Arrange: the test holds the user's row lock, so herald's create waits on it.
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    let mut blocker = app.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE").bind(&user).execute(&mut *blocker).await.unwrap();
    let request = actix_web::rt::spawn({
        let (client, url, token) =
            (app.client.clone(), app.url(&format!("/v2/users/{user}/invite_code")), app.bootstrap.clone());
        async move { client.post(url).bearer_auth(token).json(&json!({})).send().await.unwrap() }
    });
    // Wait until herald's transaction is blocked on the lock.
    let waiting = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()
                   AND application_name = 'herald' AND wait_event_type = 'Lock'";
    let pid: i32 =
        crate::helpers::eventually("herald's create waits on the row lock", crate::helpers::WAIT, || async {
            sqlx::query_scalar(waiting).fetch_optional(&app.pool).await.unwrap()
        })
        .await;

    // Act: an administrator ends herald's connection (as a shutdown or failover does).
    sqlx::query("SELECT pg_terminate_backend($1)").bind(pid).execute(&app.pool).await.unwrap();
    let resp = request.await.unwrap();

    // Assert
    let b = assert_error_code(resp, 503, 14).await;
    assert!(!b.to_string().to_lowercase().contains("terminat"), "{b}");
    blocker.rollback().await.unwrap();
    // The next request gets a fresh connection.
    ok_json(app.create_code(&user, &json!({})).await).await;
}

#[actix_web::test]
async fn a_resend_the_database_refuses_fails_alone_in_its_group() {
    // Arrange: three users with sent codes, and herald's invite service on the
    // test's database, so that the test, not the timing of HTTP requests, decides
    // what shares a transaction.
    let app = spawn_app().await;
    let (org, _) = app.org_and_user().await;
    let mut users = Vec::new();
    for i in 0..3 {
        let user = app.create_user(&org, Some(&format!("g{i}@example.com")), None).await;
        ok_json(app.create_code(&user, &json!({})).await).await;
        users.push(user);
    }
    let invites = herald::startup::services(&app.settings, app.pool.clone()).await.unwrap().invites;
    let request = |user_id: &str| ResendRequest {
        caller: Principal::cli(),
        user_id: user_id.to_string(),
        ctx: IssueContext::default(),
    };
    // A user id PostgreSQL cannot even read (a NUL character) among the good ones:
    // it makes the group's shared statement fail.
    let mut group: Vec<ResendRequest> = users.iter().map(|u| request(u)).collect();
    group.insert(1, request("bad\u{0}id"));

    // Act
    let results = invites.resend_many(&group).await;

    // Assert: one answer per request, in order; only the bad one failed.
    assert_eq!(results.len(), 4);
    assert!(results[1].is_err(), "{:?}", results[1]);
    let good = [&results[0], &results[2], &results[3]];
    for (user, result) in users.iter().zip(good) {
        let issued = result.as_ref().unwrap_or_else(|e| panic!("{user}: {}", e.cause()));
        let delivery_id = issued.delivery_id.expect("a sent code has a delivery");
        let status: String = sqlx::query_scalar("SELECT status FROM deliveries WHERE id = $1 AND user_id = $2")
            .bind(delivery_id)
            .bind(user)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert_eq!(status, "queued");
        let deliveries = app.deliveries(user).await;
        let queued: Vec<_> = deliveries.iter().filter(|d| d.status == "queued").collect();
        assert_eq!(queued.len(), 1, "{deliveries:?}");
        assert_eq!(queued[0].code_event_sequence, issued.details.sequence);
    }
}

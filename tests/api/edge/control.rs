//! docs/API.md §1: control characters and NUL in an id or a text are refused at
//! the edge: 400, code 3, naming the field, or the not-found answer of an unknown
//! id; a bulk request naming such an id is refused, never retried.

use serde_json::json;

use crate::helpers::{
    amqp, assert_connect_error, assert_error, eventually, ok_json, publish, spawn_app, spawn_app_with, WAIT,
};
use crate::ops_helpers::{send_codes, with_mail};
use crate::smtp::SmtpServer;

/// Asserts a 400, code 3, whose message names `field`.
async fn names_the_field(resp: reqwest::Response, field: &str) {
    let body = assert_error(resp, 400, 3, "API-invalid").await;
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(field) && message.contains("control characters"), "{body}");
}

#[actix_web::test]
async fn a_control_character_in_a_body_names_its_field() {
    let app = spawn_app().await;
    let (org, user) = app.org_and_user().await;

    let cases = [
        ("/v2/organizations", json!({"name": "Acme\u{0}"}), "name"),
        (
            "/v2/users/human",
            json!({"organization": {"orgId": org}, "profile": {"givenName": "A\u{0}", "familyName": "L"},
                   "email": {"email": "x@example.com"}}),
            "profile.givenName",
        ),
        (
            "/v2/users/human",
            json!({"userId": "a\u{0}b", "organization": {"orgId": org}, "profile": {"givenName": "A", "familyName": "L"},
                   "email": {"email": "x@example.com"}}),
            "userId",
        ),
        ("/admin/v1/tokens", json!({"permissions": ["user.read"], "description": "d\u{0}"}), "description"),
        ("/admin/v1/tokens", json!({"orgId": "1\u{0}", "permissions": ["user.read"]}), "orgId"),
        ("/admin/v1/bulk/resend", json!({"orgId": org, "userIds": [user, "a\u{0}b"]}), "userIds[1]"),
        ("/admin/v1/deliveries/replay", json!({"filter": {"errorContains": "5\u{0}"}}), "filter.errorContains"),
        (
            &format!("/v2/users/{user}/invite_code"),
            json!({"sendCode": {"urlTemplate": "https://a.example/\r\n{{.Code}}"}}),
            "sendCode.urlTemplate",
        ),
        (&format!("/v2/users/{user}/invite_code/verify"), json!({"verificationCode": "AB\u{0}"}), "verificationCode"),
    ];
    for (path, body, field) in cases {
        names_the_field(app.post(path, &app.bootstrap, &body).await, field).await;
    }
    let nul = json!({"userId": "1\u{0}"});
    let connect = app.connect("zitadel.user.v2.UserService/ResendInviteCode", &app.bootstrap, &nul).await;
    let body = assert_connect_error(connect, 400, "invalid_argument", "API-invalid").await;
    assert!(body["message"].as_str().unwrap().contains("userId"), "{body}");
}

#[actix_web::test]
async fn a_control_character_in_a_path_or_filter_is_named_or_not_found() {
    let app = spawn_app().await;
    let t = &app.bootstrap;

    names_the_field(app.get("/v2/users/a%00b", t).await, "userId").await;
    names_the_field(app.post("/v2/users/a%00b/invite_code/resend", t, &json!({})).await, "userId").await;
    names_the_field(app.get("/admin/v1/deliveries?userId=a%00b", t).await, "userId").await;
    names_the_field(app.get("/admin/v1/deliveries?orgId=%0D%0A", t).await, "orgId").await;
    assert_error(app.get("/v2/organizations/a%00b", t).await, 404, 5, "ORG-notfound").await;
    assert_error(app.get("/admin/v1/bulk/a%00b", t).await, 404, 5, "BULK-notfound").await;
    let revoke = app.client.delete(app.url("/admin/v1/tokens/a%00b")).bearer_auth(t).send().await.unwrap();
    assert_error(revoke, 404, 5, "AUTH-tokennotfound").await;
    assert_error(app.get("/admin/v1/deliveries/a%00b", t).await, 404, 5, "NOTIFY-nodelivery").await;
}

#[actix_web::test]
async fn a_queued_resend_request_naming_such_an_id_is_refused_not_retried() {
    // Arrange: a user with a mailed code.
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    let org = app.create_org().await;
    let bob = app.create_user(&org, Some("bob@example.com"), None).await;
    send_codes(&app, std::slice::from_ref(&bob)).await;
    smtp.wait_for("bob@example.com", 1, WAIT).await;
    let conn = amqp().await;
    let exchange = app.settings.amqp.prefix.clone();

    // Act: an outside producer names a user id with a NUL beside Bob's.
    let body = json!({"v": 1, "userIds": ["a\u{0}b", bob]}).to_string().into_bytes();
    publish(&conn, &exchange, "resend.request", "resend-request.v1", &body).await;

    // Assert: Bob is resent; the other is refused under the id of its check, and
    // the request is never retried.
    smtp.wait_for("bob@example.com", 2, WAIT).await;
    let metrics = eventually("the refusal counted", WAIT, || async {
        let m = app.get("/metrics", &app.bootstrap).await.text().await.unwrap();
        m.contains(r#"herald_bulk_requests_total{outcome="API-invalid"} 1"#).then_some(m)
    })
    .await;
    assert!(!metrics.contains(r#"outcome="retried""#), "{metrics}");
    ok_json(app.get(&format!("/v2/users/{bob}"), &app.bootstrap).await).await;
}

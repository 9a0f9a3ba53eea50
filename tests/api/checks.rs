//! API.md §2: the four checks the invite endpoints share, in their order, and the
//! tenant matrix of §1.3.

use serde_json::json;

use crate::helpers::{assert_error, ok_json, spawn_app};

/// The three invite endpoints with a body each accepts.
fn endpoints(user: &str) -> [(String, serde_json::Value); 3] {
    [
        (format!("/v2/users/{user}/invite_code"), json!({"returnCode": {}})),
        (format!("/v2/users/{user}/invite_code/resend"), json!({})),
        (format!("/v2/users/{user}/invite_code/verify"), json!({"verificationCode": "ABC123"})),
    ]
}

#[actix_web::test]
async fn a_blank_or_too_long_user_id_is_rejected_before_authentication() {
    // Arrange
    let app = spawn_app().await;
    let too_long = "9".repeat(201);

    for user in ["%20", "%20%20%09", too_long.as_str()] {
        for (path, body) in endpoints(user) {
            // Act: no Authorization header at all; check 1 comes before check 2.
            let resp = app.client.post(app.url(&path)).json(&body).send().await.unwrap();

            // Assert
            let b = assert_error(resp, 400, 3, "COMMAND-4jio3").await;
            assert_eq!(b["details"][0]["message"], "User ID missing", "{path}");
        }
    }
}

#[actix_web::test]
async fn an_empty_user_id_segment_is_check_1_not_a_routing_404() {
    let app = spawn_app().await;
    for (path, body) in endpoints("") {
        let resp = app.post(&path, &app.bootstrap, &body).await;
        assert_error(resp, 400, 3, "COMMAND-4jio3").await;
    }
}

#[actix_web::test]
async fn no_authorization_header_is_401_auth_header_missing() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;

    for (path, body) in endpoints(&user) {
        let resp = app.client.post(app.url(&path)).json(&body).send().await.unwrap();

        assert_eq!(resp.status().as_u16(), 401, "{path}");
        let b: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(b["code"], 16, "{b}");
        assert_eq!(b["message"], "auth header missing", "{b}");
    }
    // Nothing was written.
    assert_eq!(app.event_types(&user).await, vec!["user.human.added"]);
}

#[actix_web::test]
async fn an_unknown_or_malformed_token_is_401_token_invalid() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;

    for header in ["Bearer not-a-token", "Bearer ", "Basic dXNlcjpwYXNz", &app.bootstrap] {
        for (path, body) in endpoints(&user) {
            let resp =
                app.client.post(app.url(&path)).header("authorization", header).json(&body).send().await.unwrap();

            let b = assert_error(resp, 401, 16, "AUTH-7fs1e").await;
            assert_eq!(b["details"][0]["message"], "Token is invalid");
        }
    }
}

#[actix_web::test]
async fn an_unknown_user_is_404_user_could_not_be_found() {
    let app = spawn_app().await;
    app.create_org().await;

    for (path, body) in endpoints("69629023906488334") {
        let resp = app.post(&path, &app.bootstrap, &body).await;

        let b = assert_error(resp, 404, 5, "COMMAND-Wgvn4").await;
        assert_eq!(b["details"][0]["message"], "User could not be found");
    }
}

#[actix_web::test]
async fn a_user_of_another_organization_is_404_even_with_user_write() {
    // Arrange: the user lives in org A; the token belongs to org B.
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    let other = app.create_org().await;
    let token = app.token(Some(&other), &["user.write", "user.read"]).await;

    for (path, body) in endpoints(&user) {
        // Act
        let resp = app.post(&path, &token, &body).await;
        // Assert: the same answer as a user that does not exist.
        assert_error(resp, 404, 5, "COMMAND-Wgvn4").await;
    }
    // Nothing was written to the user.
    assert_eq!(app.event_types(&user).await, vec!["user.human.added"]);
}

#[actix_web::test]
async fn another_organizations_token_without_permissions_still_gets_404_not_403() {
    // Check 3 (visibility) comes before check 4 (permission).
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    let other = app.create_org().await;
    let token = app.token(Some(&other), &["user.read"]).await;

    for (path, body) in endpoints(&user) {
        assert_error(app.post(&path, &token, &body).await, 404, 5, "COMMAND-Wgvn4").await;
    }
    // And for a user that does not exist at all, with a token lacking user.write.
    for (path, body) in endpoints("69629023906488334") {
        assert_error(app.post(&path, &token, &body).await, 404, 5, "COMMAND-Wgvn4").await;
    }
}

#[actix_web::test]
async fn a_same_org_token_without_user_write_is_403() {
    let app = spawn_app().await;
    let (org, user) = app.org_and_user().await;
    let token = app.token(Some(&org), &["user.read", "delivery.read"]).await;

    for (path, body) in endpoints(&user) {
        let b = assert_error(app.post(&path, &token, &body).await, 403, 7, "AUTH-AWfge").await;
        assert_eq!(b["details"][0]["message"], "No matching permissions found");
    }
    assert_eq!(app.event_types(&user).await, vec!["user.human.added"]);
}

#[actix_web::test]
async fn a_same_org_token_with_user_write_may_create_resend_and_verify() {
    let app = spawn_app().await;
    let (org, user) = app.org_and_user().await;
    let token = app.token(Some(&org), &["user.write"]).await;

    let sent = app.post(&format!("/v2/users/{user}/invite_code"), &token, &json!({})).await;
    ok_json(sent).await;
    let resent = app.post(&format!("/v2/users/{user}/invite_code/resend"), &token, &json!({})).await;
    ok_json(resent).await;
    let created =
        ok_json(app.post(&format!("/v2/users/{user}/invite_code"), &token, &json!({"returnCode": {}})).await).await;
    let code = created["inviteCode"].as_str().unwrap();
    let verified =
        app.post(&format!("/v2/users/{user}/invite_code/verify"), &token, &json!({"verificationCode": code})).await;
    ok_json(verified).await;
}

#[actix_web::test]
async fn an_instance_token_with_user_write_reaches_every_organization() {
    let app = spawn_app().await;
    let (_, user_a) = app.org_and_user().await;
    let (_, user_b) = app.org_and_user().await;
    let token = app.token(None, &["user.write"]).await;

    for user in [user_a, user_b] {
        ok_json(app.post(&format!("/v2/users/{user}/invite_code"), &token, &json!({"returnCode": {}})).await).await;
    }
}

#[actix_web::test]
async fn a_user_id_of_exactly_200_characters_passes_check_1() {
    let app = spawn_app().await;
    let id = "7".repeat(200);

    for (path, body) in endpoints(&id) {
        assert_error(app.post(&path, &app.bootstrap, &body).await, 404, 5, "COMMAND-Wgvn4").await;
    }
}

#[actix_web::test]
async fn a_deleted_user_is_404() {
    // Arrange: herald has no delete endpoint yet; the row is marked as one would be.
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    app.returned_code(&user).await;
    sqlx::query("UPDATE users SET state = 'deleted' WHERE id = $1").bind(&user).execute(&app.pool).await.unwrap();

    for (path, body) in endpoints(&user) {
        assert_error(app.post(&path, &app.bootstrap, &body).await, 404, 5, "COMMAND-Wgvn4").await;
    }
    assert_error(app.get(&format!("/v2/users/{user}"), &app.bootstrap).await, 404, 5, "COMMAND-Wgvn4").await;
}

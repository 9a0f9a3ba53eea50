//! docs/API.md §3: a caller-chosen user id never answers 500 and never tells one
//! tenant what another holds.

use serde_json::{json, Value};

use crate::helpers::{assert_error, ok_json, spawn_app};

fn human(org: &str, user_id: &str, username: &str) -> Value {
    json!({"userId": user_id, "username": username, "organization": {"orgId": org},
           "profile": {"givenName": "Ada", "familyName": "Lovelace"}, "email": {"email": "ada@example.com"}})
}

#[actix_web::test]
async fn a_user_id_equal_to_an_organization_id_is_a_user_like_any_other() {
    let app = spawn_app().await;
    let org = app.create_org().await;

    // Act: a user whose chosen id is the organization's own id.
    let created = ok_json(app.post("/v2/users/human", &app.bootstrap, &human(&org, &org, "ada")).await).await;

    // Assert: created, readable, and its invite code can be created and resent.
    assert_eq!(created["userId"], json!(org));
    let user = ok_json(app.get(&format!("/v2/users/{org}"), &app.bootstrap).await).await;
    assert_eq!(user["user"]["username"], json!("ada"));
    ok_json(app.create_code(&org, &json!({})).await).await;
    ok_json(app.resend(&org).await).await;
    let organization = ok_json(app.get(&format!("/v2/organizations/{org}"), &app.bootstrap).await).await;
    assert_eq!(organization["details"]["sequence"], json!("1"), "{organization}");
}

#[actix_web::test]
async fn a_user_id_held_in_another_organization_is_answered_as_a_fresh_request() {
    // Arrange: two tenants, each with an org-scoped token; tenant A holds "ada-1".
    let app = spawn_app().await;
    let (a, b) = (app.create_org().await, app.create_org().await);
    let token_a = app.token(Some(&a), &["user.write", "user.read"]).await;
    let token_b = app.token(Some(&b), &["user.write", "user.read"]).await;
    ok_json(app.post("/v2/users/human", &token_a, &human(&a, "ada-1", "ada")).await).await;

    // Act: tenant B asks for the same id.
    let resp = app.post("/v2/users/human", &token_b, &human(&b, "ada-1", "ada")).await;

    // Assert: no 409 (it would say that someone holds the id): B gets a user of
    // its own under an id herald chose, and A's user is untouched.
    let created = ok_json(resp).await;
    let id = created["userId"].as_str().unwrap();
    assert_ne!(id, "ada-1");
    assert_eq!(created["details"]["resourceOwner"], json!(b));
    ok_json(app.get(&format!("/v2/users/{id}"), &token_b).await).await;
    assert_error(app.get("/v2/users/ada-1", &token_b).await, 404, 5, "COMMAND-Wgvn4").await;
    let held = ok_json(app.get("/v2/users/ada-1", &token_a).await).await;
    assert_eq!(held["details"]["resourceOwner"], json!(a));

    // A tenant that can see the holder still learns that the id is taken.
    let again = app.post("/v2/users/human", &token_a, &human(&a, "ada-1", "ada2")).await;
    assert_error(again, 409, 6, "USER-idtaken").await;
}

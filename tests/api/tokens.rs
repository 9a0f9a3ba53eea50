//! API.md §1.3 and §3: API tokens.

use serde_json::json;

use crate::helpers::{assert_error, assert_error_code, ok_json, spawn_app, wait_until_expired};

#[actix_web::test]
async fn a_revoked_token_is_401() {
    let app = spawn_app().await;
    let (org, user) = app.org_and_user().await;
    let (id, token) = app.token_with_id(Some(&org), &["user.read"]).await;
    ok_json(app.get(&format!("/v2/users/{user}"), &token).await).await;

    let resp =
        app.client.delete(app.url(&format!("/admin/v1/tokens/{id}"))).bearer_auth(&app.bootstrap).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    let b = assert_error(app.get(&format!("/v2/users/{user}"), &token).await, 401, 16, "AUTH-7fs1e").await;
    assert_eq!(b["details"][0]["message"], "Token is invalid");
    // Revoking twice is not an error.
    let again =
        app.client.delete(app.url(&format!("/admin/v1/tokens/{id}"))).bearer_auth(&app.bootstrap).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 200);
}

#[actix_web::test]
async fn an_org_scoped_token_cannot_mint_for_another_org_or_beyond_its_permissions() {
    // Arrange: a token of org A that may write tokens and users.
    let app = spawn_app().await;
    let a = app.create_org().await;
    let b = app.create_org().await;
    let minter = app.token(Some(&a), &["token.write", "user.write"]).await;

    // Another organization: 404, as if it did not exist.
    let resp = app.post("/admin/v1/tokens", &minter, &json!({"orgId": b, "permissions": ["user.write"]})).await;
    assert_error_code(resp, 404, 5).await;
    // Permissions it lacks: 403.
    let resp =
        app.post("/admin/v1/tokens", &minter, &json!({"orgId": a, "permissions": ["user.write", "org.write"]})).await;
    assert_error(resp, 403, 7, "AUTH-AWfge").await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM api_tokens").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 1, "only the minter exists");

    // Its own organization, a subset of its permissions: a working token.
    let body =
        ok_json(app.post("/admin/v1/tokens", &minter, &json!({"orgId": a, "permissions": ["user.write"]})).await).await;
    let minted = body["token"].as_str().unwrap();
    let user = app.create_user(&a, Some("ada@example.com"), None).await;
    ok_json(app.post(&format!("/v2/users/{user}/invite_code"), minted, &json!({})).await).await;
    // It is scoped to org A.
    let in_b = app.create_user(&b, Some("bob@example.com"), None).await;
    assert_error(app.post(&format!("/v2/users/{in_b}/invite_code"), minted, &json!({})).await, 404, 5, "COMMAND-Wgvn4")
        .await;
}

#[actix_web::test]
async fn a_token_without_token_write_cannot_mint() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    let token = app.token(Some(&org), &["user.write"]).await;

    let resp = app.post("/admin/v1/tokens", &token, &json!({"orgId": org, "permissions": ["user.write"]})).await;

    assert_error(resp, 403, 7, "AUTH-AWfge").await;
}

#[actix_web::test]
async fn an_expired_token_is_401() {
    let app = spawn_app().await;
    let (org, user) = app.org_and_user().await;
    let expires_at = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let body = json!({"orgId": org, "permissions": ["user.read"], "expiresAt": expires_at.to_rfc3339()});
    let token =
        ok_json(app.post("/admin/v1/tokens", &app.bootstrap, &body).await).await["token"].as_str().unwrap().to_string();
    ok_json(app.get(&format!("/v2/users/{user}"), &token).await).await;

    wait_until_expired(&app.pool, (expires_at - chrono::Utc::now()).to_std().unwrap_or_default()).await;

    assert_error(app.get(&format!("/v2/users/{user}"), &token).await, 401, 16, "AUTH-7fs1e").await;
}

#[actix_web::test]
async fn a_token_expiring_in_the_past_is_refused() {
    let app = spawn_app().await;
    let body = json!({"permissions": ["user.read"], "expiresAt": "2020-01-01T00:00:00.000Z"});

    assert_error_code(app.post("/admin/v1/tokens", &app.bootstrap, &body).await, 400, 3).await;
}

#[actix_web::test]
async fn tokens_are_stored_only_as_a_hash() {
    let app = spawn_app().await;
    let org = app.create_org().await;

    let (id, token) = app.token_with_id(Some(&org), &["user.read"]).await;

    assert!(token.len() >= 32, "{token}");
    let row: String = sqlx::query_scalar("SELECT row_to_json(t)::text FROM api_tokens t WHERE id = $1")
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!row.contains(&token), "{row}");
    let hash: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM api_tokens WHERE id = $1")
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!hash.windows(token.len()).any(|w| w == token.as_bytes()));
}

#[actix_web::test]
async fn a_token_cannot_revoke_another_organizations_token() {
    let app = spawn_app().await;
    let a = app.create_org().await;
    let b = app.create_org().await;
    let (b_id, b_token) = app.token_with_id(Some(&b), &["user.read"]).await;
    let a_admin = app.token(Some(&a), &["token.write"]).await;

    let resp =
        app.client.delete(app.url(&format!("/admin/v1/tokens/{b_id}"))).bearer_auth(&a_admin).send().await.unwrap();

    assert_error_code(resp, 404, 5).await;
    ok_json(app.get(&format!("/v2/organizations/{b}"), &b_token).await).await;
}

#[actix_web::test]
async fn an_org_scoped_token_naming_no_org_mints_for_its_own() {
    let app = spawn_app().await;
    let a = app.create_org().await;
    let b = app.create_org().await;
    let in_b = app.create_user(&b, Some("bob@example.com"), None).await;
    let minter = app.token(Some(&a), &["token.write", "user.read"]).await;

    let body = ok_json(app.post("/admin/v1/tokens", &minter, &json!({"permissions": ["user.read"]})).await).await;

    let minted = body["token"].as_str().unwrap();
    assert_error(app.get(&format!("/v2/users/{in_b}"), minted).await, 404, 5, "COMMAND-Wgvn4").await;
    let org: Option<String> = sqlx::query_scalar("SELECT org_id FROM api_tokens WHERE id = $1")
        .bind(body["tokenId"].as_str().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(org.as_deref(), Some(a.as_str()));
}

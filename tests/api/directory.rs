//! API.md §3: organizations and users.

use serde_json::{json, Value};

use crate::helpers::{assert_error, assert_error_code, ok_json, spawn_app, timestamp};

fn human(org: &str, extra: Value) -> Value {
    let mut body = json!({"organization": {"orgId": org}, "profile": {"givenName": "Ada", "familyName": "Lovelace"}});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[actix_web::test]
async fn an_org_scoped_token_cannot_create_organizations() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    let scoped = app.token(Some(&org), &["org.write", "user.write", "token.write"]).await;
    let instance_without = app.token(None, &["user.write"]).await;

    for token in [scoped, instance_without] {
        let resp = app.post("/v2/organizations", &token, &json!({"name": "Evil Corp"})).await;
        assert_error(resp, 403, 7, "AUTH-AWfge").await;
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 1);

    // An instance-scoped token with org.write may.
    let token = app.token(None, &["org.write"]).await;
    ok_json(app.post("/v2/organizations", &token, &json!({"name": "Good Corp"})).await).await;
}

#[actix_web::test]
async fn an_organization_reads_back_with_its_defaults() {
    let app = spawn_app().await;
    let created = ok_json(app.post("/v2/organizations", &app.bootstrap, &json!({"name": "Acme"})).await).await;
    let org = created["organizationId"].as_str().unwrap();
    let explicit = ok_json(
        app.post(
            "/v2/organizations",
            &app.bootstrap,
            &json!({"name": "Beta", "defaultLanguage": "de", "loginMethods": ["passkey"]}),
        )
        .await,
    )
    .await;

    let read = ok_json(app.get(&format!("/v2/organizations/{org}"), &app.bootstrap).await).await;
    assert_eq!(read["organization"]["organizationId"], json!(org));
    assert_eq!(read["organization"]["name"], "Acme");
    assert_eq!(read["organization"]["defaultLanguage"], "en");
    assert_eq!(read["organization"]["loginMethods"], json!(["password", "passkey", "idp"]));
    assert_eq!(read["details"]["resourceOwner"], json!(org));

    let beta = explicit["organizationId"].as_str().unwrap();
    let read = ok_json(app.get(&format!("/v2/organizations/{beta}"), &app.bootstrap).await).await;
    assert_eq!(read["organization"]["defaultLanguage"], "de");
    assert_eq!(read["organization"]["loginMethods"], json!(["passkey"]));

    // Another tenant's token sees nothing; a token without user.read is refused.
    let other = app.create_org().await;
    let foreign = app.token(Some(&other), &["user.read"]).await;
    assert_error_code(app.get(&format!("/v2/organizations/{org}"), &foreign).await, 404, 5).await;
    let weak = app.token(Some(org), &["user.write"]).await;
    assert_error(app.get(&format!("/v2/organizations/{org}"), &weak).await, 403, 7, "AUTH-AWfge").await;
}

#[actix_web::test]
async fn usernames_are_unique_per_organization() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    let other = app.create_org().await;
    let ada = human(&org, json!({"username": "ada", "email": {"email": "ada@example.com"}}));
    app.add_human(&ada).await;

    let again = human(&org, json!({"username": "ada", "email": {"email": "other@example.com"}}));
    assert_error_code(app.post("/v2/users/human", &app.bootstrap, &again).await, 409, 6).await;

    // The same username in another organization is fine.
    let elsewhere = human(&other, json!({"username": "ada", "email": {"email": "ada@example.com"}}));
    app.add_human(&elsewhere).await;

    // The username defaults to the e-mail address, so the same e-mail twice collides.
    let first = human(&org, json!({"email": {"email": "grace@example.com"}}));
    let added = app.add_human(&first).await;
    let read =
        ok_json(app.get(&format!("/v2/users/{}", added["userId"].as_str().unwrap()), &app.bootstrap).await).await;
    assert_eq!(read["user"]["username"], "grace@example.com");
    assert_error_code(app.post("/v2/users/human", &app.bootstrap, &first).await, 409, 6).await;

    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE org_id = $1")
        .bind(&org)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 2);
}

#[actix_web::test]
async fn invalid_contacts_are_400_code_3() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    let long_email = format!("{}@{}.example.com", "a".repeat(64), "b".repeat(180));
    assert!(long_email.len() > 254);

    for extra in [
        json!({"email": {"email": "not-an-address"}}),
        json!({"email": {"email": "ada@exa mple.com"}}),
        json!({"email": {"email": "ada..l@example.com"}}),
        json!({"email": {"email": long_email}}),
        json!({"phone": {"phone": "0791234567"}}),
        json!({"phone": {"phone": "+0791234567"}}),
        json!({"phone": {"phone": "+4179123456789012"}}),
        json!({"phone": {"phone": "+41 79 abc"}}),
        json!({}),
        json!({"email": {"email": ""}, "phone": {"phone": ""}}),
    ] {
        let resp = app.post("/v2/users/human", &app.bootstrap, &human(&org, extra.clone())).await;
        assert_error_code(resp, 400, 3).await;
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 0);
}

#[actix_web::test]
async fn users_are_created_only_with_user_write_in_their_organization() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    let other = app.create_org().await;
    let body = human(&org, json!({"email": {"email": "ada@example.com"}}));

    let foreign = app.token(Some(&other), &["user.write"]).await;
    assert_error_code(app.post("/v2/users/human", &foreign, &body).await, 404, 5).await;
    let reader = app.token(Some(&org), &["user.read"]).await;
    assert_error(app.post("/v2/users/human", &reader, &body).await, 403, 7, "AUTH-AWfge").await;
    let writer = app.token(Some(&org), &["user.write"]).await;
    ok_json(app.post("/v2/users/human", &writer, &body).await).await;
}

#[actix_web::test]
async fn get_user_shows_the_invite_going_from_none_to_sent_to_verified() {
    // Arrange
    let app = spawn_app().await;
    let org = app.create_org().await;
    let added = app.add_human(&json!({"organization": {"orgId": org}, "username": "ada",
                    "profile": {"givenName": "Ada", "familyName": "Lovelace", "displayName": "Ada L.", "preferredLanguage": "de"},
                    "email": {"email": "ada@example.com", "isVerified": false}})).await;
    let user = added["userId"].as_str().unwrap().to_string();
    let path = format!("/v2/users/{user}");

    // No invite yet.
    let read = ok_json(app.get(&path, &app.bootstrap).await).await;
    let u = &read["user"];
    assert_eq!(u["userId"], json!(user));
    assert_eq!(u["username"], "ada");
    assert!(u["state"].is_string(), "{read}");
    assert_eq!(
        u["human"]["profile"],
        json!({"givenName": "Ada", "familyName": "Lovelace", "displayName": "Ada L.", "preferredLanguage": "de"})
    );
    assert_eq!(u["human"]["email"], json!({"email": "ada@example.com", "isVerified": false}));
    assert!(u["human"].get("phone").is_none(), "a user without a phone has no phone: {read}");
    assert_eq!(u["invite"], json!({"state": "none"}));
    assert_eq!(read["details"]["sequence"], "1");

    // Sent.
    let created = ok_json(app.create_code(&user, &json!({})).await).await;
    let read = ok_json(app.get(&path, &app.bootstrap).await).await;
    let invite = &read["user"]["invite"];
    assert_eq!(invite["state"], "sent");
    assert_eq!(invite["channel"], "email");
    let expires = timestamp(&invite["expiresAt"]);
    let created_at = timestamp(&created["details"]["changeDate"]);
    assert_eq!(expires - created_at, chrono::Duration::hours(72));

    // Returned.
    let (code, _) = app.returned_code(&user).await;
    let read = ok_json(app.get(&path, &app.bootstrap).await).await;
    assert_eq!(read["user"]["invite"]["state"], "returned");

    // Verified.
    ok_json(app.verify(&user, &code).await).await;
    let read = ok_json(app.get(&path, &app.bootstrap).await).await;
    assert_eq!(read["user"]["invite"]["state"], "verified");
    assert!(read["user"]["invite"].get("expiresAt").is_none(), "{read}");
    assert_eq!(read["user"]["human"]["email"]["isVerified"], true);
    assert_eq!(read["details"]["sequence"], "5");
}

#[actix_web::test]
async fn get_user_checks_tenant_and_permission() {
    let app = spawn_app().await;
    let (org, user) = app.org_and_user().await;
    let other = app.create_org().await;
    let path = format!("/v2/users/{user}");

    let foreign = app.token(Some(&other), &["user.read"]).await;
    assert_error(app.get(&path, &foreign).await, 404, 5, "COMMAND-Wgvn4").await;
    let writer = app.token(Some(&org), &["user.write"]).await;
    assert_error(app.get(&path, &writer).await, 403, 7, "AUTH-AWfge").await;
    let reader = app.token(Some(&org), &["user.read"]).await;
    ok_json(app.get(&path, &reader).await).await;
    assert_error(app.get("/v2/users/%20", &reader).await, 400, 3, "COMMAND-4jio3").await;
    assert_error(app.get("/v2/users/123", &reader).await, 404, 5, "COMMAND-Wgvn4").await;
}

#[actix_web::test]
async fn user_ids_are_decimal_snowflakes() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.create_user(&org, Some(&format!("u{i}@example.com")), None).await);
    }
    for id in &ids {
        assert!(!id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()), "{id}");
    }
    let numbers: Vec<u64> = ids.iter().map(|i| i.parse().unwrap()).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "roughly time-ordered: {numbers:?}");
}

#[actix_web::test]
async fn a_caller_may_choose_the_user_id_once() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    let body = human(&org, json!({"userId": "ada-1815", "email": {"email": "ada@example.com"}}));

    let added = app.add_human(&body).await;
    assert_eq!(added["userId"], "ada-1815");
    ok_json(app.get("/v2/users/ada-1815", &app.bootstrap).await).await;

    let again = human(&org, json!({"userId": "ada-1815", "email": {"email": "other@example.com"}}));
    assert_error_code(app.post("/v2/users/human", &app.bootstrap, &again).await, 409, 6).await;
}

#[actix_web::test]
async fn an_organization_name_must_be_one_line_of_1_to_200_characters() {
    let app = spawn_app().await;
    for name in ["", "   ", "Acme\r\nX-Injected: 1", &"A".repeat(201)] {
        let resp = app.post("/v2/organizations", &app.bootstrap, &json!({ "name": name })).await;
        assert_error_code(resp, 400, 3).await;
    }
    let resp = app.post("/v2/organizations", &app.bootstrap, &json!({"name": "Acme", "loginMethods": ["magic"]})).await;
    let b = assert_error_code(resp, 400, 3).await;
    assert!(b["message"].as_str().unwrap().contains("loginMethods"), "{b}");
}

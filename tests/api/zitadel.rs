//! API.md §8: herald as ZITADEL's HTTP notification provider. Providers are
//! registered per organization; ZITADEL's posts, built here in exactly its shape
//! and signed here with HMAC-SHA256, are accepted once, with a delivery row in the
//! outbox, or refused with nothing stored.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{assert_error, assert_error_code, spawn_app, TestApp};

/// 36 letters and digits, like the keys ZITADEL's admin API answers.
pub const KEY: &str = "Zk3pQ9wLm2Xv7Rt4Yb8Nc1Hd6Jf0Gs5Ua2Ee";
pub const INVITE: &str = "user.human.invite.code.added";

/// What ZITADEL posts for an invite code to `email` (ZITADEL's HTTP provider
/// payload: contextInfo, templateData already translated, args with lower-case keys).
pub fn invite_message(email: &str, code: &str) -> Value {
    json!({
        "contextInfo": {
            "eventType": INVITE,
            "provider": {"id": "285181292935381355", "description": "herald"},
            "recipientEmailAddress": email
        },
        "templateData": {
            "title": "Invitation to Acme", "preHeader": "Invitation to Acme", "subject": "Invitation to Acme",
            "greeting": "Hello Ada Lovelace,",
            "text": format!("You have been invited to Acme. Your code is {code}. Please use the button below to finish the invitation process."),
            "url": format!("https://acme.zitadel.cloud/ui/login/user/invite?userID=285181292935381356&loginname=ada&code={code}&orgID=285181292935381300&authRequestID="),
            "buttonText": "Accept invitation", "primaryColor": "#5469d4", "backgroundColor": "#fafafa",
            "fontColor": "#000000", "logoUrl": "", "fontUrl": "", "fontFaceFamily": "",
            "fontFamily": "-apple-system, BlinkMacSystemFont, Segoe UI, Lato, Arial, Helvetica, sans-serif",
            "includeFooter": false, "footerText": ""
        },
        "args": {
            "userID": "285181292935381356", "orgID": "285181292935381300", "userName": "ada",
            "firstName": "Ada", "lastName": "Lovelace", "nickName": "", "displayName": "Ada Lovelace",
            "lastEmail": email, "verifiedEmail": "", "lastPhone": "", "verifiedPhone": "",
            "preferredLoginName": "ada@acme.zitadel.cloud", "loginName": "ada@acme.zitadel.cloud",
            "loginNames": ["ada@acme.zitadel.cloud"], "changeDate": "2025-03-25T16:32:59.198Z",
            "creationDate": "2025-03-25T16:32:59.198Z", "code": code, "applicationName": "ZITADEL",
            "expiry": 259200000000000u64
        }
    })
}

/// `t=<t>,v1=<hex of HMAC-SHA256(key, "<t>." + body)>`.
pub fn signature(key: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Registers a provider with the bootstrap token; its id.
pub async fn provider(app: &TestApp, org: &str, channel: &str, keys: &[&str], require: bool) -> String {
    let body = json!({"orgId": org, "channel": channel, "signingKeys": keys, "requireSignature": require,
                      "description": "ZITADEL production"});
    let resp = app.post("/admin/v1/zitadel/providers", &app.bootstrap, &body).await;
    assert_eq!(resp.status().as_u16(), 201);
    let body: Value = resp.json().await.unwrap();
    let id = body["providerId"].as_str().unwrap().to_string();
    assert_eq!(body["path"], json!(format!("/zitadel/v1/notifications/{id}")));
    id
}

/// POSTs `body` as ZITADEL does (compact JSON), with `signature` as
/// `Zitadel-Signature` (Go's spelling) when given.
pub async fn post(app: &TestApp, provider: &str, body: &[u8], signature: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url(&format!("/zitadel/v1/notifications/{provider}")))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(s) = signature {
        req = req.header("Zitadel-Signature", s);
    }
    req.send().await.expect("request sent")
}

/// POSTs `message` signed with `key` now; asserts 202 and returns the delivery id.
pub async fn post_signed(app: &TestApp, provider: &str, key: &str, message: &Value) -> String {
    let body = serde_json::to_vec(message).unwrap();
    let resp = post(app, provider, &body, Some(&signature(key, now(), &body))).await;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 202, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    body["deliveryId"].as_str().expect("deliveryId").to_string()
}

async fn count(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&app.pool).await.unwrap()
}

#[actix_web::test]
async fn a_signed_invite_is_accepted_with_a_delivery_in_the_outbox() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    let p = provider(&app, &org, "email", &[KEY], true).await;

    let id = post_signed(&app, &p, KEY, &invite_message("ada@example.com", "K3M9QX")).await;

    let row: (String, Option<String>, String, String, String, String, String) = sqlx::query_as(
        "SELECT source, user_id, org_id, channel, recipient, template, status FROM deliveries WHERE id = $1",
    )
    .bind(id.parse::<i64>().unwrap())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        row,
        ("zitadel".into(), None, org, "email".into(), "ada@example.com".into(), INVITE.into(), "queued".into())
    );
    let stored: Vec<u8> = sqlx::query_scalar("SELECT message_encrypted FROM zitadel_messages WHERE delivery_id = $1")
        .bind(id.parse::<i64>().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!stored.windows(6).any(|w| w == b"K3M9QX"), "the code is stored in plain text");
}

#[actix_web::test]
async fn refused_posts_store_nothing() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    let p = provider(&app, &org, "email", &[KEY], true).await;
    let body = serde_json::to_vec(&invite_message("ada@example.com", "K3M9QX")).unwrap();

    let wrong_key = post(&app, &p, &body, Some(&signature("Another0Key0Of0Thirty0Six0Characters", now(), &body))).await;
    assert_error(wrong_key, 401, 16, "ZITADEL-signature").await;
    assert_error(post(&app, &p, &body, None).await, 401, 16, "ZITADEL-signature").await;
    let an_hour_old = post(&app, &p, &body, Some(&signature(KEY, now() - 3600, &body))).await;
    assert_error(an_hour_old, 401, 16, "ZITADEL-signature").await;
    let malformed = post(&app, &p, &body, Some("v1=abc;t=12")).await;
    assert_error(malformed, 400, 3, "ZITADEL-sigheader").await;
    // Signed, then changed on the way: the signature covers the raw bytes.
    let sig = signature(KEY, now(), &body);
    let changed = String::from_utf8(body.clone()).unwrap().replace("K3M9QX", "AAAAAA");
    assert_error(post(&app, &p, changed.as_bytes(), Some(&sig)).await, 401, 16, "ZITADEL-signature").await;
    // Past 64 KiB, signed or not.
    let mut large = invite_message("ada@example.com", "K3M9QX");
    large["templateData"]["text"] = json!("x".repeat(70 * 1024));
    let large = serde_json::to_vec(&large).unwrap();
    assert_error(post(&app, &p, &large, Some(&signature(KEY, now(), &large))).await, 413, 3, "API-bodysize").await;

    assert_eq!(count(&app, "deliveries").await, 0);
    assert_eq!(count(&app, "zitadel_messages").await, 0);
}

#[actix_web::test]
async fn the_same_message_twice_is_one_delivery_and_a_new_code_another() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    let p = provider(&app, &org, "email", &[KEY], true).await;
    let message = invite_message("ada@example.com", "K3M9QX");

    let first = post_signed(&app, &p, KEY, &message).await;
    // ZITADEL's retry: the same JSON, signed again.
    let again = post_signed(&app, &p, KEY, &message).await;
    let new_code = post_signed(&app, &p, KEY, &invite_message("ada@example.com", "Q7W2ER")).await;

    assert_eq!(first, again);
    assert_ne!(first, new_code);
    assert_eq!(count(&app, "deliveries").await, 2);
}

#[actix_web::test]
async fn messages_without_event_or_recipient_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    let p = provider(&app, &org, "sms", &[KEY], true).await;
    let mut no_event = invite_message("ada@example.com", "K3M9QX");
    no_event["contextInfo"]["recipientPhoneNumber"] = json!("+41791234567");
    no_event["contextInfo"].as_object_mut().unwrap().remove("eventType");
    let email_only = invite_message("ada@example.com", "K3M9QX");

    for (message, field) in [(no_event, "contextInfo.eventType"), (email_only, "contextInfo.recipientPhoneNumber")] {
        let body = serde_json::to_vec(&message).unwrap();
        let resp = post(&app, &p, &body, Some(&signature(KEY, now(), &body))).await;
        let err = assert_error(resp, 400, 3, "ZITADEL-message").await;
        assert!(err["message"].as_str().unwrap().contains(field), "{err}");
    }
    assert_eq!(count(&app, "deliveries").await, 0);
}

#[actix_web::test]
async fn unknown_providers_are_404_and_unsigned_posts_pass_only_where_allowed() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    let open = provider(&app, &org, "email", &[], false).await;
    let body = serde_json::to_vec(&invite_message("ada@example.com", "K3M9QX")).unwrap();

    let resp = post(&app, &open, &body, None).await;
    assert_eq!(resp.status().as_u16(), 202);
    assert_error(post(&app, "0123456789abcdef0123456789abcdef", &body, None).await, 404, 5, "ZITADEL-noprovider").await;
    assert_eq!(count(&app, "deliveries").await, 1);
}

#[actix_web::test]
async fn keys_rotate_by_patch_and_are_never_shown() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    let p = provider(&app, &org, "email", &[KEY], true).await;
    let next = "N3xtK3yN3xtK3yN3xtK3yN3xtK3yN3xtK3y0";
    let path = format!("/admin/v1/zitadel/providers/{p}");

    // While ZITADEL rotates: both keys.
    let patch = |keys: Vec<&str>| {
        app.client.patch(app.url(&path)).bearer_auth(&app.bootstrap).json(&json!({"signingKeys": keys})).send()
    };
    assert_eq!(patch(vec![KEY, next]).await.unwrap().status().as_u16(), 200);
    post_signed(&app, &p, KEY, &invite_message("ada@example.com", "AAAAAA")).await;
    post_signed(&app, &p, next, &invite_message("ada@example.com", "BBBBBB")).await;
    // Rotated: the old key no longer signs.
    let shown: Value = patch(vec![next]).await.unwrap().json().await.unwrap();
    let body = serde_json::to_vec(&invite_message("ada@example.com", "CCCCCC")).unwrap();
    assert_error_code(post(&app, &p, &body, Some(&signature(KEY, now(), &body))).await, 401, 16).await;

    let got = app.get(&path, &app.bootstrap).await.text().await.unwrap();
    let listed = app.get("/admin/v1/zitadel/providers", &app.bootstrap).await.text().await.unwrap();
    for text in [shown.to_string(), got, listed] {
        assert!(!text.contains(KEY) && !text.contains(next), "a key is shown: {text}");
        assert!(text.contains("\"signingKeys\":1"), "{text}");
    }
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT signing_keys_encrypted FROM zitadel_providers").fetch_one(&app.pool).await.unwrap();
    assert!(!stored.windows(next.len()).any(|w| w == next.as_bytes()), "the key is stored in plain text");
}

#[actix_web::test]
async fn a_provider_of_another_organization_is_invisible_and_out_of_reach() {
    let app = spawn_app().await;
    let (a, b) = (app.create_org().await, app.create_org().await);
    let theirs = provider(&app, &b, "email", &[KEY], true).await;
    let ours = provider(&app, &a, "email", &[KEY], true).await;
    let token = app.token(Some(&a), &["provider.write"]).await;
    let no_permission = app.token(Some(&a), &["user.read"]).await;
    let theirs_path = format!("/admin/v1/zitadel/providers/{theirs}");

    assert_error(app.get(&theirs_path, &token).await, 404, 5, "ZITADEL-noprovider").await;
    let delete = app.client.delete(app.url(&theirs_path)).bearer_auth(&token).send().await.unwrap();
    assert_error(delete, 404, 5, "ZITADEL-noprovider").await;
    let create = json!({"orgId": b, "channel": "email", "signingKeys": [KEY]});
    assert_error(app.post("/admin/v1/zitadel/providers", &token, &create).await, 404, 5, "ORG-notfound").await;
    let listed: Value = app.get("/admin/v1/zitadel/providers", &token).await.json().await.unwrap();
    assert_eq!(listed["providers"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["providers"][0]["providerId"], json!(ours));
    // Visible, but not without provider.write.
    let ours_path = format!("/admin/v1/zitadel/providers/{ours}");
    assert_error(app.get(&ours_path, &no_permission).await, 403, 7, "AUTH-AWfge").await;
    // Its own organization, named or not.
    let own = json!({"channel": "sms", "signingKeys": [KEY]});
    assert_eq!(app.post("/admin/v1/zitadel/providers", &token, &own).await.status().as_u16(), 201);

    // Removed: ZITADEL's posts answer 404.
    let delete = app.client.delete(app.url(&ours_path)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(delete.status().as_u16(), 200);
    let body = serde_json::to_vec(&invite_message("ada@example.com", "K3M9QX")).unwrap();
    assert_error_code(post(&app, &ours, &body, Some(&signature(KEY, now(), &body))).await, 404, 5).await;
}

#[actix_web::test]
async fn identical_posts_at_once_share_one_delivery_and_others_get_their_own() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    let p = provider(&app, &org, "email", &[KEY], true).await;
    // Eight copies of one message among eight others, all at once: posts that
    // arrive together share a transaction, copies included.
    let messages: Vec<Value> = (0..16)
        .map(|i| {
            if i % 2 == 0 {
                invite_message("ada@example.com", "K3M9QX")
            } else {
                invite_message("ada@example.com", &format!("CODE{i:02}"))
            }
        })
        .collect();

    let ids = futures_util::future::join_all(messages.iter().map(|m| post_signed(&app, &p, KEY, m))).await;

    let copies: Vec<&String> = ids.iter().step_by(2).collect();
    assert!(copies.iter().all(|id| *id == copies[0]), "{ids:?}");
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 9, "{ids:?}");
    assert_eq!(count(&app, "deliveries").await, 9);
    assert_eq!(count(&app, "zitadel_messages").await, 9);
}

#[actix_web::test]
async fn metrics_count_received_duplicate_and_refused_posts_per_provider() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    let p = provider(&app, &org, "email", &[KEY], true).await;
    let message = invite_message("ada@example.com", "K3M9QX");
    post_signed(&app, &p, KEY, &message).await;
    post_signed(&app, &p, KEY, &message).await;
    let body = serde_json::to_vec(&message).unwrap();
    post(&app, &p, &body, None).await;

    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();

    for (event, outcome) in [(INVITE, "received"), (INVITE, "duplicate"), ("", "refused_signature")] {
        let line =
            format!("herald_zitadel_messages_total{{event_type=\"{event}\",outcome=\"{outcome}\",provider=\"{p}\"}} 1");
        assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
    }
}

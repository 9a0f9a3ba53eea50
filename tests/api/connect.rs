//! API.md §6: the Connect paths ZITADEL's SDKs call, with the behaviour of the REST
//! paths and the Connect error body.

use serde_json::{json, Value};

use crate::helpers::{
    assert_connect_error, assert_write_details, ok_json, retry_after, sequence, spawn_app, spawn_app_with,
};

const CREATE: &str = "zitadel.user.v2.UserService/CreateInviteCode";
const RESEND: &str = "zitadel.user.v2.UserService/ResendInviteCode";
const VERIFY: &str = "zitadel.user.v2.UserService/VerifyInviteCode";
const ADD_HUMAN: &str = "zitadel.user.v2.UserService/AddHumanUser";
const GET_USER: &str = "zitadel.user.v2.UserService/GetUserByID";
const ADD_ORG: &str = "zitadel.org.v2.OrganizationService/AddOrganization";

#[actix_web::test]
async fn a_zitadel_client_flow_over_connect() {
    let app = spawn_app().await;
    let t = &app.bootstrap;

    // AddOrganization
    let org_resp = ok_json(app.connect(ADD_ORG, t, &json!({"name": "Acme"})).await).await;
    let org = org_resp["organizationId"].as_str().unwrap().to_string();
    assert_eq!(assert_write_details(&org_resp, &org), 1);

    // AddHumanUser
    let user_resp = ok_json(
        app.connect(
            ADD_HUMAN,
            t,
            &json!({"username": "ada", "organization": {"orgId": org},
                    "profile": {"givenName": "Ada", "familyName": "Lovelace"},
                    "email": {"email": "ada@example.com", "isVerified": false}}),
        )
        .await,
    )
    .await;
    let user = user_resp["userId"].as_str().unwrap().to_string();
    assert_eq!(assert_write_details(&user_resp, &org), 1);

    // CreateInviteCode (sent), then ResendInviteCode.
    let sent = ok_json(
        app.connect(CREATE, t, &json!({"userId": user, "sendCode": {"urlTemplate": "https://acme.example/i?c={{.Code}}", "applicationName": "Acme"}}))
            .await,
    )
    .await;
    assert!(sent.get("inviteCode").is_none(), "{sent}");
    assert_eq!(assert_write_details(&sent, &org), 2);
    let resent = ok_json(app.connect(RESEND, t, &json!({"userId": user})).await).await;
    assert_eq!(assert_write_details(&resent, &org), 3);
    let d = app.deliveries(&user).await;
    assert_eq!(d.iter().map(|d| d.status.as_str()).collect::<Vec<_>>(), vec!["superseded", "queued"]);

    // CreateInviteCode with returnCode, then VerifyInviteCode.
    let returned = ok_json(app.connect(CREATE, t, &json!({"userId": user, "returnCode": {}})).await).await;
    assert_eq!(assert_write_details(&returned, &org), 4);
    let code = returned["inviteCode"].as_str().unwrap();
    let verified = ok_json(app.connect(VERIFY, t, &json!({"userId": user, "verificationCode": code})).await).await;
    assert_eq!(assert_write_details(&verified, &org), 6);

    // GetUserByID
    let read = ok_json(app.connect(GET_USER, t, &json!({"userId": user})).await).await;
    assert_eq!(read["user"]["userId"], json!(user));
    assert_eq!(read["user"]["username"], "ada");
    assert_eq!(read["user"]["invite"]["state"], "verified");
    assert_eq!(read["user"]["human"]["email"]["isVerified"], true);
    assert_eq!(read["details"]["sequence"], "6");
    // The same message as REST's GET.
    let rest = ok_json(app.get(&format!("/v2/users/{user}"), t).await).await;
    assert_eq!(read, rest);
}

#[actix_web::test]
async fn connect_errors_of_the_shared_checks() {
    let app = spawn_app().await;
    let (org, user) = app.org_and_user().await;
    let other = app.create_org().await;
    let foreign = app.token(Some(&other), &["user.write", "user.read"]).await;
    let reader = app.token(Some(&org), &["user.read"]).await;

    for method in [CREATE, RESEND, VERIFY] {
        let body = |u: &str| json!({"userId": u, "verificationCode": "ABC123"});

        // 1. userId blank, missing, too long.
        for b in [body(" "), json!({"verificationCode": "ABC123"}), body(&"9".repeat(201))] {
            let resp = app.client.post(app.url(&format!("/{method}"))).json(&b).send().await.unwrap();
            assert_connect_error(resp, 400, "invalid_argument", "COMMAND-4jio3").await;
        }
        // 2. No header: 401, message exactly `auth header missing`.
        let resp = app.client.post(app.url(&format!("/{method}"))).json(&body(&user)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        let b: Value = resp.json().await.unwrap();
        assert_eq!(b["code"], "unauthenticated", "{b}");
        assert_eq!(b["message"], "auth header missing", "{b}");
        // 2. Bad token.
        assert_connect_error(app.connect(method, "nope", &body(&user)).await, 401, "unauthenticated", "AUTH-7fs1e")
            .await;
        // 3. Unknown user; another tenant's user.
        assert_connect_error(
            app.connect(method, &app.bootstrap, &body("4242")).await,
            404,
            "not_found",
            "COMMAND-Wgvn4",
        )
        .await;
        assert_connect_error(app.connect(method, &foreign, &body(&user)).await, 404, "not_found", "COMMAND-Wgvn4")
            .await;
        // 4. No user.write.
        assert_connect_error(app.connect(method, &reader, &body(&user)).await, 403, "permission_denied", "AUTH-AWfge")
            .await;
    }
    assert_eq!(app.event_types(&user).await, vec!["user.human.added"]);
}

#[actix_web::test]
async fn connect_errors_of_create_resend_and_verify() {
    let app = spawn_app_with(|s| s.invite.max_codes_per_user_per_hour = 3).await;
    let t = &app.bootstrap;
    let org = app.create_org().await;
    let user = app.create_user(&org, Some("ada@example.com"), None).await;
    let create = |extra: Value| {
        let mut b = json!({"userId": user});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };

    // Resend with no code at all.
    let b = assert_connect_error(
        app.connect(RESEND, t, &json!({"userId": user})).await,
        400,
        "failed_precondition",
        "COMMAND-Wr3gq",
    )
    .await;
    assert_eq!(b["message"], "Code not found (COMMAND-Wr3gq)");
    // URL templates.
    for (template, id) in [
        ("https://a.example/{{.Code", "DOMAIN-oGh5e"),
        ("https://a.example/{{.Secret}}", "DOMAIN-ieYa7"),
        ("javascript:alert({{.Code}})", "DOMAIN-ieYa7"),
    ] {
        let resp = app.connect(CREATE, t, &create(json!({"sendCode": {"urlTemplate": template}}))).await;
        assert_connect_error(resp, 400, "invalid_argument", id).await;
    }
    // No address for the channel.
    let resp = app.connect(CREATE, t, &create(json!({"sendCode": {"channel": "sms"}}))).await;
    assert_connect_error(resp, 400, "failed_precondition", "NOTIFY-0contact").await;
    // A returned code is not resendable.
    let returned = ok_json(app.connect(CREATE, t, &create(json!({"returnCode": {}}))).await).await;
    assert_connect_error(
        app.connect(RESEND, t, &json!({"userId": user})).await,
        400,
        "failed_precondition",
        "COMMAND-Wr3gq",
    )
    .await;
    // A wrong code.
    let resp = app.connect(VERIFY, t, &json!({"userId": user, "verificationCode": "WRONG1"})).await;
    let b = assert_connect_error(resp, 400, "invalid_argument", "COMMAND-Wgn4q").await;
    assert_eq!(b["details"][0]["debug"]["message"], "Code is invalid");
    // Rate limit: codes 2 and 3 pass, the 4th is refused.
    ok_json(app.connect(CREATE, t, &create(json!({}))).await).await;
    let last = ok_json(app.connect(CREATE, t, &create(json!({"returnCode": {}}))).await).await;
    let resp = app.connect(CREATE, t, &create(json!({}))).await;
    retry_after(&resp);
    assert_connect_error_code(resp, 429, "resource_exhausted").await;
    assert!(sequence(&last) > sequence(&returned));
    // Already initialized.
    let code = last["inviteCode"].as_str().unwrap();
    ok_json(app.connect(VERIFY, t, &json!({"userId": user, "verificationCode": code})).await).await;
    for (method, body) in [(CREATE, create(json!({}))), (RESEND, json!({"userId": user}))] {
        assert_connect_error(app.connect(method, t, &body).await, 400, "failed_precondition", "COMMAND-EF34g").await;
    }
}

#[actix_web::test]
async fn connect_errors_of_the_body() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    let t = &app.bootstrap;

    // Malformed JSON; a wrong type, named.
    let resp = app.post_raw(&format!("/{CREATE}"), t, "{\"userId\": ").await;
    let b = assert_connect_error_code(resp, 400, "invalid_argument").await;
    assert!(b["message"].is_string());
    let resp = app.connect(CREATE, t, &json!({"userId": user, "sendCode": {"urlTemplate": 5}})).await;
    let b = assert_connect_error_code(resp, 400, "invalid_argument").await;
    assert!(b["message"].as_str().unwrap().contains("sendCode.urlTemplate"), "{b}");
    let resp = app.connect(CREATE, t, &json!({"userId": user, "sendCode": {"channel": "fax"}})).await;
    let b = assert_connect_error_code(resp, 400, "invalid_argument").await;
    assert!(b["message"].as_str().unwrap().contains("sendCode.channel"), "{b}");
    // sendCode and returnCode together.
    let resp = app.connect(CREATE, t, &json!({"userId": user, "sendCode": {}, "returnCode": {}})).await;
    assert_connect_error_code(resp, 400, "invalid_argument").await;
    // Over 64 KiB.
    let big = json!({"userId": user, "padding": "x".repeat(65 * 1024)}).to_string();
    assert_connect_error_code(app.post_raw(&format!("/{CREATE}"), t, big).await, 413, "invalid_argument").await;
    // CR/LF in the application name.
    let resp = app.connect(CREATE, t, &json!({"userId": user, "sendCode": {"applicationName": "A\r\nB"}})).await;
    assert_connect_error_code(resp, 400, "invalid_argument").await;
    assert!(app.invite_row(&user).await.is_none());

    // Unknown fields are ignored; proto names are accepted.
    let resp = app.connect(CREATE, t, &json!({"user_id": user, "return_code": {}, "future": 1})).await;
    let code = ok_json(resp).await["inviteCode"].as_str().unwrap().to_string();
    let resp = app.connect(VERIFY, t, &json!({"user_id": user, "verification_code": code})).await;
    ok_json(resp).await;
}

/// The Connect error shape, whatever the id (for errors API.md gives no id).
async fn assert_connect_error_code(resp: reqwest::Response, status: u16, code: &str) -> Value {
    let got = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(got, status, "{body}");
    assert_eq!(body["code"], json!(code), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    body
}

#[actix_web::test]
async fn add_human_user_refuses_credentials() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    let base = json!({"organization": {"orgId": org}, "profile": {"givenName": "Ada", "familyName": "Lovelace"},
                      "email": {"email": "ada@example.com"}});

    for (field, value) in [
        ("password", json!({"password": "Secr3t!", "changeRequired": false})),
        ("hashedPassword", json!({"hash": "$2a$10$abc"})),
        ("hashed_password", json!({"hash": "$2a$10$abc"})),
        ("idpLinks", json!([{"idpId": "1", "userId": "x", "userName": "ada"}])),
        ("totpSecret", json!("JBSWY3DPEHPK3PXP")),
    ] {
        let mut body = base.clone();
        body[field] = value;

        let resp = app.connect(ADD_HUMAN, &app.bootstrap, &body).await;

        assert_connect_error(resp, 400, "invalid_argument", "USER-nocreds").await;
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 0);
    // Without them, the same request succeeds.
    ok_json(app.connect(ADD_HUMAN, &app.bootstrap, &base).await).await;
}

#[actix_web::test]
async fn connect_errors_of_organizations_and_users() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    let scoped = app.token(Some(&org), &["org.write", "user.read"]).await;

    assert_connect_error(
        app.connect(ADD_ORG, &scoped, &json!({"name": "X"})).await,
        403,
        "permission_denied",
        "AUTH-AWfge",
    )
    .await;
    let body = json!({"username": "ada", "organization": {"orgId": org}, "profile": {"givenName": "A", "familyName": "L"},
                      "email": {"email": "ada@example.com"}});
    ok_json(app.connect(ADD_HUMAN, &app.bootstrap, &body).await).await;
    assert_connect_error_code(app.connect(ADD_HUMAN, &app.bootstrap, &body).await, 409, "already_exists").await;
    let bad = json!({"organization": {"orgId": org}, "profile": {"givenName": "A", "familyName": "L"},
                     "phone": {"phone": "079 123"}});
    assert_connect_error_code(app.connect(ADD_HUMAN, &app.bootstrap, &bad).await, 400, "invalid_argument").await;
    assert_connect_error(
        app.connect(GET_USER, &app.bootstrap, &json!({"userId": "1"})).await,
        404,
        "not_found",
        "COMMAND-Wgvn4",
    )
    .await;

    // GetUserByID: the tenant matrix.
    let user = app.create_user(&org, Some("grace@example.com"), None).await;
    let other = app.create_org().await;
    let foreign = app.token(Some(&other), &["user.read"]).await;
    let writer = app.token(Some(&org), &["user.write"]).await;
    let get = json!({ "userId": user });
    assert_connect_error(app.connect(GET_USER, &foreign, &get).await, 404, "not_found", "COMMAND-Wgvn4").await;
    assert_connect_error(app.connect(GET_USER, &writer, &get).await, 403, "permission_denied", "AUTH-AWfge").await;
    ok_json(app.connect(GET_USER, &scoped, &get).await).await;
    let blank = json!({"userId": " "});
    assert_connect_error(app.connect(GET_USER, &scoped, &blank).await, 400, "invalid_argument", "COMMAND-4jio3").await;
}

#[actix_web::test]
async fn connect_accepts_json_with_a_charset_and_refuses_other_codecs() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    let url = app.url(&format!("/{GET_USER}"));
    let body = json!({ "userId": user }).to_string();

    let with_charset = app
        .client
        .post(&url)
        .bearer_auth(&app.bootstrap)
        .header("content-type", "application/json; charset=utf-8")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    ok_json(with_charset).await;

    // application/proto is served too (connect_binary.rs); anything else is 415.
    let xml = app
        .client
        .post(&url)
        .bearer_auth(&app.bootstrap)
        .header("content-type", "application/xml")
        .body("<userId>1</userId>")
        .send()
        .await
        .unwrap();
    assert_eq!(xml.status().as_u16(), 415);
}

#[actix_web::test]
async fn an_unserved_zitadel_method_is_501_unimplemented() {
    let app = spawn_app().await;

    for method in [
        "zitadel.user.v2.UserService/DeleteUser",
        "zitadel.session.v2.SessionService/CreateSession",
        "zitadel.org.v2.OrganizationService/ListOrganizations",
    ] {
        let resp = app.connect(method, &app.bootstrap, &json!({})).await;

        assert_eq!(resp.status().as_u16(), 501, "{method}");
        let b: Value = resp.json().await.unwrap();
        assert_eq!(b["code"], "unimplemented", "{b}");
        assert!(b["message"].as_str().is_some_and(|m| !m.is_empty()), "{b}");
    }
}

#[actix_web::test]
async fn connect_responses_keep_sequence_a_string_and_omit_empty_fields() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;

    let text = app.connect(CREATE, &app.bootstrap, &json!({"userId": user})).await.text().await.unwrap();

    assert!(text.contains(r#""sequence":"2""#), "{text}");
    assert!(!text.contains("inviteCode") && !text.contains("null"), "{text}");
}

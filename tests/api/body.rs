//! API.md §1: JSON bodies: limits, parse errors that name the field, unknown fields,
//! proto-name aliases, omitted empty fields.

use serde_json::json;

use crate::helpers::{assert_error_code, ok_json, spawn_app};

#[actix_web::test]
async fn malformed_json_is_400_code_3() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;

    for (path, body) in [
        (format!("/v2/users/{user}/invite_code"), "{"),
        (format!("/v2/users/{user}/invite_code"), "{} trailing"),
        (format!("/v2/users/{user}/invite_code/verify"), "{\"verificationCode\": }"),
        ("/v2/users/human".to_string(), "not json"),
        ("/v2/organizations".to_string(), "[1,"),
        ("/admin/v1/tokens".to_string(), "{'single': 'quotes'}"),
    ] {
        let resp = app.post_raw(&path, &app.bootstrap, body).await;
        assert_error_code(resp, 400, 3).await;
    }
    assert!(app.invite_row(&user).await.is_none());
}

#[actix_web::test]
async fn a_value_of_the_wrong_type_is_400_naming_the_field() {
    let app = spawn_app().await;
    let (org, user) = app.org_and_user().await;
    let cases = [
        (format!("/v2/users/{user}/invite_code"), json!({"sendCode": {"urlTemplate": 5}}), "sendCode.urlTemplate"),
        (
            format!("/v2/users/{user}/invite_code"),
            json!({"sendCode": {"applicationName": ["Acme"]}}),
            "sendCode.applicationName",
        ),
        (format!("/v2/users/{user}/invite_code"), json!({"returnCode": true}), "returnCode"),
        (format!("/v2/users/{user}/invite_code/verify"), json!({"verificationCode": 123456}), "verificationCode"),
        (
            "/v2/users/human".to_string(),
            json!({"organization": {"orgId": org}, "profile": {"givenName": 1}, "email": {"email": "a@example.com"}}),
            "profile.givenName",
        ),
    ];

    for (path, body, field) in cases {
        let resp = app.post(&path, &app.bootstrap, &body).await;

        let b = assert_error_code(resp, 400, 3).await;
        assert!(b["message"].as_str().unwrap().contains(field), "{field} not named in {b}");
    }
}

#[actix_web::test]
async fn an_unknown_enum_value_is_400_naming_the_field() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;

    let resp = app.create_code(&user, &json!({"sendCode": {"channel": "fax"}})).await;

    let b = assert_error_code(resp, 400, 3).await;
    assert!(b["message"].as_str().unwrap().contains("sendCode.channel"), "{b}");
    assert!(app.invite_row(&user).await.is_none());

    let resp = app.post("/admin/v1/tokens", &app.bootstrap, &json!({"permissions": ["user.write", "root"]})).await;
    let b = assert_error_code(resp, 400, 3).await;
    assert!(b["message"].as_str().unwrap().contains("permissions"), "{b}");
}

#[actix_web::test]
async fn a_body_over_64_kib_is_413_code_3() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    // Valid JSON, only too large: an unknown field carries the bulk.
    let big = json!({"sendCode": {}, "padding": "x".repeat(64 * 1024)}).to_string();
    assert!(big.len() > 64 * 1024);

    let resp = app.post_raw(&format!("/v2/users/{user}/invite_code"), &app.bootstrap, big.clone()).await;
    assert_error_code(resp, 413, 3).await;
    let resp = app.post_raw("/v2/users/human", &app.bootstrap, big).await;
    assert_error_code(resp, 413, 3).await;
    assert!(app.invite_row(&user).await.is_none());

    // Just under the limit is fine.
    let mut fits = json!({"sendCode": {}, "padding": ""});
    let room = 64 * 1024 - fits.to_string().len();
    fits["padding"] = json!("x".repeat(room));
    assert_eq!(fits.to_string().len(), 64 * 1024);
    ok_json(app.post_raw(&format!("/v2/users/{user}/invite_code"), &app.bootstrap, fits.to_string()).await).await;
}

#[actix_web::test]
async fn unknown_fields_are_ignored() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;

    let body = json!({
        "sendCode": {"urlTemplate": "https://a.example/{{.Code}}", "futureOption": true},
        "somethingNew": {"nested": [1, 2, 3]},
    });
    ok_json(app.create_code(&user, &body).await).await;

    assert_eq!(app.invite_row(&user).await.unwrap().url_template, "https://a.example/{{.Code}}");
}

#[actix_web::test]
async fn proto_field_names_are_accepted_as_aliases() {
    let app = spawn_app().await;
    let org = app.create_org().await;

    // AddHumanUser with proto names.
    let added = app
        .add_human(&json!({"organization": {"org_id": org}, "username": "ada",
                    "profile": {"given_name": "Ada", "family_name": "Lovelace", "preferred_language": "de"},
                    "email": {"email": "ada@example.com", "is_verified": false}}))
        .await;
    let user = added["userId"].as_str().unwrap().to_string();
    let read = ok_json(app.get(&format!("/v2/users/{user}"), &app.bootstrap).await).await;
    assert_eq!(read["user"]["human"]["profile"]["givenName"], "Ada");
    assert_eq!(read["user"]["human"]["profile"]["preferredLanguage"], "de");

    // send_code / url_template / application_name.
    let send = json!({"send_code": {"url_template": "https://a.example/i?c={{Code}}", "application_name": "Acme"}});
    ok_json(app.create_code(&user, &send).await).await;
    let row = app.invite_row(&user).await.unwrap();
    assert_eq!((row.url_template.as_str(), row.application_name.as_str()), ("https://a.example/i?c={{Code}}", "Acme"));

    // return_code, then verification_code.
    let returned = ok_json(app.create_code(&user, &json!({"return_code": {}})).await).await;
    let code = returned["inviteCode"].as_str().expect("return_code returned the code");
    let path = format!("/v2/users/{user}/invite_code/verify");
    ok_json(app.post(&path, &app.bootstrap, &json!({"verification_code": code})).await).await;
}

#[actix_web::test]
async fn fields_without_a_value_are_omitted_not_null() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;

    let sent = app.create_code(&user, &json!({})).await.text().await.unwrap();
    let read = app.get(&format!("/v2/users/{user}"), &app.bootstrap).await.text().await.unwrap();

    for text in [sent, read] {
        assert!(!text.contains("null"), "{text}");
    }
}

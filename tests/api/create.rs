//! API.md §2.1: `POST /v2/users/{userId}/invite_code`.

use serde_json::json;

use crate::helpers::{assert_error, assert_error_code, ok_json, retry_after, sequence, spawn_app, spawn_app_with};

#[actix_web::test]
async fn an_empty_body_or_empty_object_sends_with_the_defaults() {
    let app = spawn_app().await;
    let (org, user) = app.org_and_user().await;

    for body in [None, Some("{}")] {
        // Act
        let req = app.client.post(app.url(&format!("/v2/users/{user}/invite_code"))).bearer_auth(&app.bootstrap);
        let req = match body {
            Some(b) => req.header("content-type", "application/json").body(b),
            None => req,
        };
        let resp = ok_json(req.send().await.unwrap()).await;

        // Assert: a sent code is not returned, and the field is omitted, not null.
        assert!(resp.get("inviteCode").is_none(), "{resp}");
        assert_eq!(resp["details"]["resourceOwner"], json!(org));
        let row = app.invite_row(&user).await.expect("a code row");
        let defaults = herald::config::Settings::defaults();
        assert_eq!(row.url_template, defaults.invite.default_url_template);
        assert_eq!(row.application_name, defaults.invite.default_application_name);
        assert_eq!(row.channel, "email");
        assert!(!row.returned);
        assert!(row.code_encrypted.is_some());
    }
}

#[actix_web::test]
async fn return_code_gives_a_code_of_six_characters_from_a_to_z_and_0_to_9() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;

    let (code, _) = app.returned_code(&user).await;

    assert_eq!(code.len(), 6, "{code}");
    assert!(code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()), "{code}");
    let row = app.invite_row(&user).await.unwrap();
    assert!(row.returned);
    assert_eq!(app.event_types(&user).await, vec!["user.human.added", "invite.code.added"]);
}

#[actix_web::test]
async fn code_length_follows_the_configuration() {
    let app = spawn_app_with(|s| s.invite.code_length = 10).await;
    let (_, user) = app.org_and_user().await;
    let (code, _) = app.returned_code(&user).await;
    assert_eq!(code.len(), 10, "{code}");
}

#[actix_web::test]
async fn both_placeholder_syntaxes_are_accepted_and_stored() {
    let app = spawn_app().await;
    let (org, _) = app.org_and_user().await;
    let templates = [
        "https://app.example.com/invite?userID={{.UserID}}&code={{.Code}}&orgID={{.OrgID}}",
        "https://app.example.com/invite?userID={{UserID}}&code={{Code}}&orgID={{OrgID}}",
        "https://app.example.com/invite/{{ .Code }}",
    ];

    for template in templates {
        let user = app.create_user(&org, Some("grace@example.com"), None).await;

        let resp = app.create_code(&user, &json!({"sendCode": {"urlTemplate": template}})).await;

        ok_json(resp).await;
        assert_eq!(app.invite_row(&user).await.unwrap().url_template, template);
    }
}

#[actix_web::test]
async fn a_template_that_does_not_parse_is_domain_ogh5e() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;

    for template in ["https://app.example.com/invite?code={{.Code", "https://app.example.com/{{}}"] {
        let resp = app.create_code(&user, &json!({"sendCode": {"urlTemplate": template}})).await;

        let b = assert_error(resp, 400, 3, "DOMAIN-oGh5e").await;
        assert_eq!(b["details"][0]["message"], "URL Template is invalid", "{template}");
    }
    // A refused request leaves nothing behind.
    assert!(app.invite_row(&user).await.is_none());
    assert_eq!(app.event_types(&user).await, vec!["user.human.added"]);
    assert!(app.deliveries(&user).await.is_empty());
}

#[actix_web::test]
async fn an_unknown_placeholder_is_domain_ieya7() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;

    for template in ["https://app.example.com/invite?pw={{.Password}}", "https://app.example.com/{{Email}}"] {
        let resp = app.create_code(&user, &json!({"sendCode": {"urlTemplate": template}})).await;

        let b = assert_error(resp, 400, 3, "DOMAIN-ieYa7").await;
        assert_eq!(b["details"][0]["message"], "URL Template is invalid", "{template}");
    }
    assert!(app.invite_row(&user).await.is_none());
}

#[actix_web::test]
async fn dangerous_schemes_and_relative_links_are_domain_ieya7() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;

    for template in [
        "javascript:alert('{{.Code}}')",
        "JavaScript:alert(1)//{{Code}}",
        "data:text/html,<a>{{Code}}</a>",
        "vbscript:msgbox({{Code}})",
        "file:///etc/{{Code}}",
        "/invite?code={{.Code}}",
    ] {
        let resp = app.create_code(&user, &json!({"sendCode": {"urlTemplate": template}})).await;

        assert_error(resp, 400, 3, "DOMAIN-ieYa7").await;
    }
    assert!(app.invite_row(&user).await.is_none());
}

#[actix_web::test]
async fn a_template_of_more_than_200_characters_is_invalid() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    let long = format!("https://app.example.com/{}?c={{{{Code}}}}", "a".repeat(180));
    assert!(long.chars().count() > 200);

    for template in [long.as_str(), ""] {
        let resp = app.create_code(&user, &json!({"sendCode": {"urlTemplate": template}})).await;
        assert_error_code(resp, 400, 3).await;
    }
}

#[actix_web::test]
async fn an_application_name_with_cr_lf_or_out_of_bounds_is_400_code_3() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    let long = "A".repeat(201);

    for name in ["Acme\r\nBcc: victim@example.com", "Acme\n", "Ac\u{7}me", "", long.as_str()] {
        let resp = app.create_code(&user, &json!({"sendCode": {"applicationName": name}})).await;

        assert_error_code(resp, 400, 3).await;
    }
    assert!(app.invite_row(&user).await.is_none());

    // 200 characters is still fine.
    let ok = app.create_code(&user, &json!({"sendCode": {"applicationName": "A".repeat(200)}})).await;
    ok_json(ok).await;
}

#[actix_web::test]
async fn a_channel_the_user_has_no_address_for_is_notify_0contact() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    let email_only = app.create_user(&org, Some("ada@example.com"), None).await;
    let phone_only = app.create_user(&org, None, Some("+41791234567")).await;

    let resp = app.create_code(&email_only, &json!({"sendCode": {"channel": "sms"}})).await;
    let b = assert_error(resp, 400, 9, "NOTIFY-0contact").await;
    assert_eq!(b["details"][0]["message"], "User has no contact to notify");

    let resp = app.create_code(&phone_only, &json!({"sendCode": {"channel": "email"}})).await;
    assert_error(resp, 400, 9, "NOTIFY-0contact").await;

    assert!(app.invite_row(&email_only).await.is_none());
    assert!(app.deliveries(&phone_only).await.is_empty());
}

#[actix_web::test]
async fn without_a_channel_email_is_preferred_then_sms() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    let both = app.create_user(&org, Some("ada@example.com"), Some("+41791234567")).await;
    let phone_only = app.create_user(&org, None, Some("+41791234568")).await;

    ok_json(app.create_code(&both, &json!({})).await).await;
    ok_json(app.create_code(&phone_only, &json!({})).await).await;

    let d = app.deliveries(&both).await;
    assert_eq!((d[0].channel.as_str(), d[0].recipient.as_str()), ("email", "ada@example.com"));
    let d = app.deliveries(&phone_only).await;
    assert_eq!((d[0].channel.as_str(), d[0].recipient.as_str()), ("sms", "+41791234568"));

    // Asked for explicitly, SMS goes to the phone of a user who has both.
    ok_json(app.create_code(&both, &json!({"sendCode": {"channel": "sms"}})).await).await;
    let d = app.deliveries(&both).await;
    assert_eq!((d[1].channel.as_str(), d[1].recipient.as_str()), ("sms", "+41791234567"));
}

#[actix_web::test]
async fn send_code_and_return_code_together_are_400_code_3() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;

    let resp = app.create_code(&user, &json!({"sendCode": {}, "returnCode": {}})).await;

    assert_error_code(resp, 400, 3).await;
    assert!(app.invite_row(&user).await.is_none());
}

#[actix_web::test]
async fn an_initialized_user_is_400_code_9_already_initialized() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    let (code, _) = app.returned_code(&user).await;
    ok_json(app.verify(&user, &code).await).await;

    for body in [json!({}), json!({"returnCode": {}}), json!({"sendCode": {"applicationName": "Acme"}})] {
        let resp = app.create_code(&user, &body).await;

        let b = assert_error(resp, 400, 9, "COMMAND-EF34g").await;
        assert_eq!(b["details"][0]["message"], "User is already initialized");
    }
}

#[actix_web::test]
async fn what_is_left_out_is_inherited_from_the_previous_code_but_not_return_code() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    let user = app.create_user(&org, Some("ada@example.com"), Some("+41791234567")).await;
    let template = "https://acme.example/join/{{.UserID}}/{{.Code}}";

    // A code sent by SMS with a template and a name...
    let first = json!({"sendCode": {"urlTemplate": template, "applicationName": "Acme", "channel": "sms"}});
    ok_json(app.create_code(&user, &first).await).await;
    // ...then a returned code, then a plain create.
    app.returned_code(&user).await;
    let row = app.invite_row(&user).await.unwrap();
    assert!(row.returned);
    assert_eq!(
        (row.url_template.as_str(), row.application_name.as_str(), row.channel.as_str()),
        (template, "Acme", "sms")
    );

    let resp = ok_json(app.create_code(&user, &json!({})).await).await;

    assert!(resp.get("inviteCode").is_none(), "returnCode is not inherited: {resp}");
    let row = app.invite_row(&user).await.unwrap();
    assert!(!row.returned);
    assert_eq!(
        (row.url_template.as_str(), row.application_name.as_str(), row.channel.as_str()),
        (template, "Acme", "sms")
    );
    let last = app.deliveries(&user).await.pop().unwrap();
    assert_eq!(
        (last.status.as_str(), last.channel.as_str(), last.recipient.as_str()),
        ("queued", "sms", "+41791234567")
    );
}

#[actix_web::test]
async fn a_new_code_replaces_the_previous_one() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    let (first, _) = app.returned_code(&user).await;
    let (second, _) = app.returned_code(&user).await;
    assert_ne!(first, second, "two draws of 36^6 collided; rerun");

    assert_error(app.verify(&user, &first).await, 400, 3, "COMMAND-Wgn4q").await;
    ok_json(app.verify(&user, &second).await).await;
}

#[actix_web::test]
async fn the_eleventh_code_in_an_hour_is_429_with_retry_after() {
    // Arrange: ten codes, sent, the most the default allows in an hour.
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    for _ in 0..10 {
        ok_json(app.create_code(&user, &json!({})).await).await;
    }
    let before = app.invite_row(&user).await.unwrap();

    // Act: an eleventh create, then a resend.
    let create = app.create_code(&user, &json!({})).await;
    let resend = app.resend(&user).await;

    // Assert
    for resp in [create, resend] {
        let secs = retry_after(&resp);
        assert!(secs <= 3601, "Retry-After {secs}s is more than an hour");
        assert_error_code(resp, 429, 8).await;
    }
    // Nothing changed: the tenth code is still the current one.
    let after = app.invite_row(&user).await.unwrap();
    assert_eq!(after.event_sequence, before.event_sequence);
    assert_eq!(after.code_encrypted, before.code_encrypted);
    let added = app.event_types(&user).await.iter().filter(|t| *t == "invite.code.added").count();
    assert_eq!(added, 10);
    assert_eq!(app.deliveries(&user).await.iter().filter(|d| d.status == "queued").count(), 1);
}

#[actix_web::test]
async fn a_rate_limited_user_keeps_its_last_returned_code() {
    let app = spawn_app_with(|s| s.invite.max_codes_per_user_per_hour = 2).await;
    let (_, user) = app.org_and_user().await;
    app.returned_code(&user).await;
    let (code, seq) = app.returned_code(&user).await;

    let resp = app.create_code(&user, &json!({"returnCode": {}})).await;

    retry_after(&resp);
    let b = assert_error_code(resp, 429, 8).await;
    assert!(b.get("inviteCode").is_none());
    let verified = ok_json(app.verify(&user, &code).await).await;
    assert!(sequence(&verified) > seq);
}

#[actix_web::test]
async fn the_rate_limit_is_per_user() {
    let app = spawn_app_with(|s| s.invite.max_codes_per_user_per_hour = 1).await;
    let org = app.create_org().await;
    let a = app.create_user(&org, Some("a@example.com"), None).await;
    let b = app.create_user(&org, Some("b@example.com"), None).await;

    ok_json(app.create_code(&a, &json!({})).await).await;
    assert_error_code(app.create_code(&a, &json!({})).await, 429, 8).await;
    ok_json(app.create_code(&b, &json!({})).await).await;
}

//! API.md §8.1 and §8.3: a provider whose organization chose
//! `useHeraldInviteTemplate` gets ZITADEL's invites in herald's own invite template
//! (herald's subject, layout and languages around ZITADEL's code and link); every
//! other event, and every invite of a provider without the choice, keeps ZITADEL's
//! texts.

use std::time::Duration;

use serde_json::{json, Value};

use crate::cli::{herald, success};
use crate::helpers::{ok_json, spawn_app_with, TestApp};
use crate::ops_helpers::with_mail;
use crate::smtp::{Mail, SmtpServer};
use crate::zitadel::{invite_message, post_signed, KEY};

const WAIT: Duration = Duration::from_secs(20);
const FIELD: &str = "useHeraldInviteTemplate";

async fn provider_with(app: &TestApp, org: &str, herald_invite: Option<bool>) -> String {
    let mut body = json!({"orgId": org, "channel": "email", "signingKeys": [KEY]});
    if let Some(on) = herald_invite {
        body[FIELD] = json!(on);
    }
    let resp = app.post("/admin/v1/zitadel/providers", &app.bootstrap, &body).await;
    assert_eq!(resp.status().as_u16(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body[FIELD], json!(herald_invite.unwrap_or(false)), "{body}");
    body["providerId"].as_str().unwrap().to_string()
}

async fn shown(app: &TestApp, provider: &str) -> Value {
    let p = ok_json(app.get(&format!("/admin/v1/zitadel/providers/{provider}"), &app.bootstrap).await).await;
    p[FIELD].clone()
}

async fn patch(app: &TestApp, path: &str, body: Value) -> Value {
    ok_json(app.client.patch(app.url(path)).bearer_auth(&app.bootstrap).json(&body).send().await.unwrap()).await
}

/// The one mail `to` receives (panics after [`WAIT`]).
async fn mail_to(smtp: &SmtpServer, to: &str) -> Mail {
    smtp.wait_for(to, 1, WAIT).await.remove(0)
}

/// Asserts `mail` is herald's invite, in English, with ZITADEL's code and link.
fn assert_heralds_invite(mail: &Mail, message: &Value, code: &str) {
    let link = message["templateData"]["url"].as_str().unwrap();
    let text = mail.part("text/plain").unwrap();
    let html = mail.part("text/html").unwrap();
    assert_eq!(mail.subject(), "Invitation to ZITADEL");
    assert!(text.contains("Hello Ada Lovelace,") && text.contains(&format!("Your invite code: {code}")), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.windows(2).any(|w| w == ["Set up your account", link]), "the button's link: {text}");
    assert!(html.contains("herald-card") && html.contains(code), "{html}");
    assert!(!text.contains("Accept invitation") && !html.contains("Accept invitation"), "ZITADEL's texts: {text}");
    assert_eq!(mail.code_from_link(), code);
}

/// Asserts `mail` carries ZITADEL's own texts for the invite.
fn assert_zitadels_invite(mail: &Mail, code: &str) {
    let text = mail.part("text/plain").unwrap();
    assert_eq!(mail.subject(), "Invitation to Acme");
    assert!(text.contains(&format!("Your code is {code}.")) && text.contains("Accept invitation: "), "{text}");
    assert!(!text.contains("Your invite code:"), "herald's texts: {text}");
}

#[actix_web::test]
async fn with_the_option_an_invite_gets_heralds_template_and_zitadels_code_and_link() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    let org = app.create_org().await;
    let p = provider_with(&app, &org, Some(true)).await;
    let english = invite_message("ada@example.com", "K3M9QX");
    let mut german = invite_message("ada.de@example.com", "Q7W2ER");
    german["args"]["preferredLanguage"] = json!("de");
    let mut reset = invite_message("ada.reset@example.com", "R5T8ZU");
    reset["contextInfo"]["eventType"] = json!("user.human.password.code.added");
    reset["templateData"]["subject"] = json!("Reset password");
    reset["templateData"]["text"] = json!("Your code to reset your password is R5T8ZU.");
    reset["templateData"]["buttonText"] = json!("Reset password");

    post_signed(&app, &p, KEY, &english).await;
    post_signed(&app, &p, KEY, &german).await;
    post_signed(&app, &p, KEY, &reset).await;

    assert_eq!(shown(&app, &p).await, json!(true));
    assert_heralds_invite(&mail_to(&smtp, "ada@example.com").await, &english, "K3M9QX");
    let de = mail_to(&smtp, "ada.de@example.com").await;
    let text = de.part("text/plain").unwrap();
    assert_eq!(de.subject(), "Einladung zu ZITADEL");
    assert!(text.contains("Ihr Einladungscode: Q7W2ER"), "{text}");
    assert!(text.contains(german["templateData"]["url"].as_str().unwrap()), "{text}");
    let reset_mail = mail_to(&smtp, "ada.reset@example.com").await;
    let text = reset_mail.part("text/plain").unwrap();
    assert_eq!(reset_mail.subject(), "Reset password");
    assert!(text.contains("Your code to reset your password is R5T8ZU."), "{text}");
    assert!(!text.contains("Your invite code:"), "{text}");
}

#[actix_web::test]
async fn without_the_option_invites_keep_zitadels_texts_until_a_patch_turns_it_on() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    let org = app.create_org().await;
    let p = provider_with(&app, &org, None).await;

    post_signed(&app, &p, KEY, &invite_message("ada@example.com", "K3M9QX")).await;
    assert_zitadels_invite(&mail_to(&smtp, "ada@example.com").await, "K3M9QX");
    let path = format!("/admin/v1/zitadel/providers/{p}");
    let patched = patch(&app, &path, json!({FIELD: true})).await;
    let later = invite_message("bob@example.com", "Q7W2ER");
    post_signed(&app, &p, KEY, &later).await;

    assert_eq!(patched[FIELD], json!(true), "{patched}");
    assert_eq!(shown(&app, &p).await, json!(true));
    assert_heralds_invite(&mail_to(&smtp, "bob@example.com").await, &later, "Q7W2ER");
    let off = patch(&app, &path, json!({"description": "kept"})).await;
    assert_eq!(off[FIELD], json!(true), "a PATCH without the field changed it: {off}");
}

#[actix_web::test]
async fn the_command_line_sets_the_option() {
    let app = spawn_app_with(|_| {}).await;
    let org = app.create_org().await;

    let with = ["zitadel-provider", "add", "--org", &org, "--channel", "email", "--signing-key", KEY];
    let plain = success(&herald(&app, &with).await).trim().to_string();
    let mut chosen = with.to_vec();
    chosen.push("--herald-invite-template");
    let chosen = success(&herald(&app, &chosen).await).trim().to_string();

    assert_eq!(shown(&app, &plain).await, json!(false));
    assert_eq!(shown(&app, &chosen).await, json!(true));
}

//! `herald zitadel-provider add|list|remove` (README, "Use herald as ZITADEL's
//! notification provider"): the real binary against a herald the test runs.

use serde_json::Value;

use crate::cli::{herald, success};
use crate::helpers::{assert_error_code, spawn_app};
use crate::zitadel::{invite_message, now, post, post_signed, signature, KEY};

#[actix_web::test]
async fn providers_are_added_listed_and_removed_on_the_command_line() {
    let app = spawn_app().await;
    let org = app.create_org().await;

    let out =
        herald(&app, &["zitadel-provider", "add", "--org", &org, "--channel", "email", "--signing-key", KEY]).await;
    let signed = success(&out).trim().to_string();
    let out = herald(&app, &["zitadel-provider", "add", "--org", &org, "--channel", "sms", "--no-signature"]).await;
    let open = success(&out).trim().to_string();
    let listed = success(&herald(&app, &["zitadel-provider", "list", "--org", &org]).await);

    assert!(signed.len() == 32 && signed.bytes().all(|b| b.is_ascii_hexdigit()), "{signed}");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("/zitadel/v1/notifications/{open}")));
    let line = |id: &str| listed.lines().find(|l| l.starts_with(id)).unwrap_or_else(|| panic!("{id}: {listed}"));
    assert!(line(&signed).contains("email") && line(&signed).contains("required"), "{listed}");
    assert!(line(&open).contains("sms") && line(&open).contains("optional"), "{listed}");
    assert!(!listed.contains(KEY), "a key is shown: {listed}");
    // The registered key signs ZITADEL's posts.
    post_signed(&app, &signed, KEY, &invite_message("ada@example.com", "K3M9QX")).await;

    success(&herald(&app, &["zitadel-provider", "remove", &signed]).await);
    let body = serde_json::to_vec(&invite_message("ada@example.com", "Q7W2ER")).unwrap();
    assert_error_code(post(&app, &signed, &body, Some(&signature(KEY, now(), &body))).await, 404, 5).await;
    let providers: Value = app.get("/admin/v1/zitadel/providers", &app.bootstrap).await.json().await.unwrap();
    assert_eq!(providers["providers"].as_array().unwrap().len(), 1, "{providers}");
}

#[actix_web::test]
async fn adding_for_an_unknown_organization_fails_and_says_why() {
    let app = spawn_app().await;

    let out =
        herald(&app, &["zitadel-provider", "add", "--org", "nope", "--channel", "email", "--signing-key", KEY]).await;

    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Organization not found"));
}

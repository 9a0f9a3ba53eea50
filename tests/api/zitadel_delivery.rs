//! API.md §8 and §5: a ZITADEL message, once accepted, travels herald's delivery
//! pipeline: one mail (or SMS) in herald's layout with ZITADEL's texts, retries,
//! the attempt log, the operators' listing and replay.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{eventually, ok_json, spawn_app_with, spawn_app_with_sms, TestApp};
use crate::ops_helpers::{accept_again, with_mail};
use crate::smtp::SmtpServer;
use crate::zitadel::{invite_message, post_signed, provider, INVITE, KEY};

const ADA: &str = "ada@example.com";
const WAIT: Duration = Duration::from_secs(20);

/// Waits until the delivery's status is `status` (panics after [`WAIT`]).
async fn wait_status(app: &TestApp, id: &str, status: &str) {
    let id: i64 = id.parse().unwrap();
    eventually(&format!("delivery {id} {status}"), WAIT, || async {
        let now: String = sqlx::query_scalar("SELECT status FROM deliveries WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        (now == status).then_some(())
    })
    .await;
}

async fn delivery(app: &TestApp, id: &str) -> Value {
    ok_json(app.get(&format!("/admin/v1/deliveries/{id}"), &app.bootstrap).await).await
}

#[actix_web::test]
async fn a_signed_invite_becomes_one_mail_with_zitadels_subject_code_and_link() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    let org = app.create_org().await;
    let p = provider(&app, &org, "email", &[KEY], true).await;
    let message = invite_message(ADA, "K3M9QX");

    let id = post_signed(&app, &p, KEY, &message).await;
    let mails = smtp.wait_for(ADA, 1, WAIT).await;
    wait_status(&app, &id, "sent").await;
    // ZITADEL's retry of the same message, after it was sent.
    assert_eq!(post_signed(&app, &p, KEY, &message).await, id);

    let mail = &mails[0];
    assert_eq!(mail.subject(), "Invitation to Acme");
    assert!(mail.is_multipart_alternative());
    assert!(mail.header("Message-ID").unwrap().contains(&id));
    let text = mail.part("text/plain").unwrap();
    assert!(text.contains("Hello Ada Lovelace,") && text.contains("Your code is K3M9QX."), "{text}");
    let link = message["templateData"]["url"].as_str().unwrap();
    assert!(text.contains(&format!("Accept invitation: {link}")), "{text}");
    let html = mail.part("text/html").unwrap();
    assert!(html.contains("Accept invitation") && html.contains("#5469d4") && html.contains("K3M9QX"), "{html}");
    assert_eq!(mail.code_from_link(), "K3M9QX");

    // A new code for the same user is a new message: a second mail.
    let second = post_signed(&app, &p, KEY, &invite_message(ADA, "Q7W2ER")).await;
    wait_status(&app, &second, "sent").await;
    assert_eq!(smtp.received_by(ADA), 2);
    assert_eq!(smtp.mails_to(ADA)[1].code_from_link(), "Q7W2ER");
}

#[actix_web::test]
async fn an_sms_message_goes_to_the_sms_provider_as_zitadels_text() {
    let sms = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sms"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"id": "wh-1"})))
        .expect(1)
        .mount(&sms)
        .await;
    let app = spawn_app_with_sms(&sms).await;
    let org = app.create_org().await;
    let p = provider(&app, &org, "sms", &[KEY], true).await;
    let message = json!({
        "contextInfo": {"eventType": "user.human.phone.code.added", "provider": {"id": "1", "description": "herald"},
                        "recipientPhoneNumber": "+41791234567"},
        "templateData": {"title": "", "text": "Your verification code is 531 267 &amp; valid for 1h."},
        "args": {"userID": "285181292935381356", "code": "531267", "lastPhone": "+41791234567"}
    });

    let id = post_signed(&app, &p, KEY, &message).await;
    wait_status(&app, &id, "sent").await;

    let requests = sms.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["to"], json!("+41791234567"));
    assert_eq!(body["body"], json!("Your verification code is 531 267 & valid for 1h."));
}

#[actix_web::test]
async fn a_refused_attempt_is_retried_and_logged_like_any_delivery() {
    let smtp = SmtpServer::start().await;
    smtp.refuse(ADA, "451 4.7.1 Try again later", Some(1));
    let app = spawn_app_with(with_mail(&smtp)).await;
    let org = app.create_org().await;
    let p = provider(&app, &org, "email", &[KEY], true).await;

    let id = post_signed(&app, &p, KEY, &invite_message(ADA, "K3M9QX")).await;
    wait_status(&app, &id, "sent").await;

    let d = delivery(&app, &id).await;
    assert_eq!((d["source"].as_str(), d["template"].as_str()), (Some("zitadel"), Some(INVITE)), "{d}");
    assert!(d.get("userId").is_none(), "{d}");
    assert_eq!(d["recipient"], json!("a***@example.com"));
    let outcomes: Vec<&str> =
        d["attempts"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["transient", "sent"], "{d}");
    assert!(d["attempts"][0]["error"].as_str().unwrap().contains("451"), "{d}");
    assert_eq!(smtp.received_by(ADA), 1);
    let listed = ok_json(app.get(&format!("/admin/v1/deliveries?orgId={org}"), &app.bootstrap).await).await;
    assert_eq!(listed["deliveries"][0]["source"], json!("zitadel"), "{listed}");
}

#[actix_web::test]
async fn a_dead_message_is_replayed_as_it_was_received() {
    let smtp = SmtpServer::start().await;
    smtp.refuse(ADA, "550 5.1.1 No such user", None);
    let app = spawn_app_with(with_mail(&smtp)).await;
    let org = app.create_org().await;
    let p = provider(&app, &org, "email", &[KEY], true).await;
    let id = post_signed(&app, &p, KEY, &invite_message(ADA, "K3M9QX")).await;
    wait_status(&app, &id, "dead").await;

    accept_again(&smtp, ADA);
    let replayed =
        ok_json(app.post(&format!("/admin/v1/deliveries/{id}/replay"), &app.bootstrap, &json!({})).await).await;
    wait_status(&app, &id, "sent").await;

    assert_eq!(replayed, json!({"outcome": "requeued", "deliveryId": id}));
    let mails = smtp.mails_to(ADA);
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].code_from_link(), "K3M9QX");
}

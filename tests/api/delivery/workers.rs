//! Workers that start late, lose the broker or are stopped: the outbox holds what
//! the API accepted, a newer code supersedes one still waiting, and nothing in flight
//! is lost.

use std::time::Duration;

use herald::config::Role;
use serde_json::{json, Value};

use super::send_code;
use crate::helpers::{
    close_connections_named, eventually, ok_json, settled, spawn_app_from, spawn_app_with, statuses, wait_status, WAIT,
};
use crate::ops_helpers::with_mail;
use crate::smtp::SmtpServer;

#[actix_web::test]
async fn a_resend_while_the_first_delivery_waits_supersedes_it() {
    let smtp = SmtpServer::start().await;
    // An API-only herald: deliveries wait in the queue until a worker starts.
    let api = spawn_app_with(|s| {
        with_mail(&smtp)(s);
        s.roles = vec![Role::Api];
    })
    .await;
    let (_org, user) = api.org_and_user().await;
    send_code(&api, &user).await;
    ok_json(api.resend(&user).await).await;
    let all = statuses(&api, &user).await;
    assert_eq!(all.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(), ["superseded", "queued"]);

    let mut worker_settings = api.settings.clone();
    worker_settings.roles = vec![Role::Worker];
    let _worker = spawn_app_from(worker_settings).await;
    wait_status(&api, &user, "sent").await;
    settled(&api).await;
    let mails = smtp.mails_to("ada@example.com");
    assert_eq!(mails.len(), 1, "only the newest code is mailed");
    ok_json(api.verify(&user, &mails[0].code_from_link()).await).await;
    assert_eq!(statuses(&api, &user).await[0].0, "superseded");
}

#[actix_web::test]
async fn a_resend_accepted_while_the_broker_is_unreachable_is_mailed_when_a_worker_can_reach_it() {
    let smtp = SmtpServer::start().await;
    let api = spawn_app_with(|s| {
        with_mail(&smtp)(s);
        s.roles = vec![Role::Api];
        // Nothing listens there: the broker is "down" for this process.
        s.amqp.url = "amqp://guest:guest@127.0.0.1:1/%2f".into();
    })
    .await;
    let ready = api.client.get(api.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    assert_eq!(ready.json::<Value>().await.unwrap(), json!({"database": "ok", "broker": "down"}));

    let (_org, user) = api.org_and_user().await;
    send_code(&api, &user).await;
    ok_json(api.resend(&user).await).await;
    let unpublished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE published_at IS NULL AND status = 'queued'")
            .fetch_one(&api.pool)
            .await
            .unwrap();
    assert_eq!(unpublished, 1, "the outbox holds it");

    let mut worker_settings = api.settings.clone();
    worker_settings.roles = vec![Role::Worker];
    worker_settings.amqp.url = "amqp://guest:guest@127.0.0.1:5672/%2f".into();
    let _worker = spawn_app_from(worker_settings).await;
    let mail = smtp.wait_for("ada@example.com", 1, WAIT).await.remove(0);
    wait_status(&api, &user, "sent").await;
    ok_json(api.verify(&user, &mail.code_from_link()).await).await;
}

#[actix_web::test]
async fn herald_reconnects_and_delivers_everything_after_the_broker_drops_it() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    let org = app.create_org().await;
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(app.create_user(&org, Some(&format!("before{i}@example.com")), None).await);
    }
    for u in &users {
        send_code(&app, u).await;
    }
    smtp.wait_for("before4@example.com", 1, WAIT).await;

    assert!(close_connections_named(&format!("herald {}", app.settings.amqp.prefix)).await >= 1);
    // Work accepted right after the drop goes through the outbox and the new link.
    for i in 0..5 {
        let u = app.create_user(&org, Some(&format!("after{i}@example.com")), None).await;
        send_code(&app, &u).await;
        users.push(u);
    }
    for i in 0..5 {
        smtp.wait_for(&format!("after{i}@example.com"), 1, WAIT).await;
    }
    for u in &users {
        wait_status(&app, u, "sent").await;
    }
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
}

#[actix_web::test]
async fn sigterm_finishes_in_flight_work_exits_0_and_a_restart_sends_the_rest() {
    let smtp = SmtpServer::start().await;
    smtp.set_delay(Duration::from_millis(150));
    // The API in this process, without workers; the worker is the real binary.
    let api = spawn_app_with(|s| {
        with_mail(&smtp)(s);
        s.roles = vec![Role::Api];
    })
    .await;
    let org = api.create_org().await;
    let mut users = Vec::new();
    for i in 0..20 {
        let u = api.create_user(&org, Some(&format!("t{i}@example.com")), None).await;
        send_code(&api, &u).await;
        users.push(u);
    }

    let s = &api.settings;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("serve")
        .env("HERALD__ROLES", "worker")
        .env("HERALD__DATABASE__URL", &s.database.url)
        .env("HERALD__AMQP__PREFIX", &s.amqp.prefix)
        .env("HERALD__CRYPTO__KEY", &s.crypto.key)
        .env("HERALD__EMAIL__TRANSPORT", "smtp")
        .env("HERALD__EMAIL__SMTP_URL", smtp.url())
        .env("HERALD__EMAIL__SMTP_CONNECTIONS", "1")
        .env("HERALD__AMQP__PREFETCH", "4")
        .env("HERALD__SHUTDOWN__GRACE", "10s")
        .env("HERALD__DELIVERY__RETRY_DELAYS", "1s")
        .env("HERALD__LOG__LEVEL", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The first mail, whoever it is for: deliveries made before the API's broker
    // link was up wait for the relay's next sweep, so t0's is not always first.
    eventually("the first mail", WAIT, || async { (!smtp.mails().is_empty()).then_some(()) }).await;
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits within the grace period")
        .unwrap();
    assert_eq!(status.code(), Some(0), "a clean exit");
    let sent_by_first = smtp.mails().len();
    assert!(sent_by_first < users.len(), "the signal came with work still to do ({sent_by_first} sent)");
    let stuck: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status = 'sending'")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(stuck, 0, "in-flight deliveries were finished, not abandoned");

    // A restarted worker sends the rest.
    let mut worker_settings = api.settings.clone();
    worker_settings.roles = vec![Role::Worker];
    let _worker = spawn_app_from(worker_settings).await;
    for i in 0..users.len() {
        smtp.wait_for(&format!("t{i}@example.com"), 1, WAIT).await;
    }
    for u in &users {
        wait_status(&api, u, "sent").await;
    }
    let mut recipients: Vec<String> = smtp.mails().iter().flat_map(|m| m.to.clone()).collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), users.len());
}

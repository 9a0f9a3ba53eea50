//! The operators' command line (`herald users import`, `herald bulk-resend`,
//! `herald deliveries …`): the real binary as a subprocess, against the database and
//! queues of a herald the test runs in-process.

use std::process::Output;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    ok_json, settled, spawn_app, spawn_app_with, statuses, wait_status, wait_until_expired, TestApp, WAIT,
};
use crate::ops_helpers::{accept_again, send_codes, with_mail};
use crate::smtp::SmtpServer;

/// Runs `herald <args>` on the app's database, queue prefix and key; waits for it
/// to exit (a minute at most).
pub async fn herald(app: &TestApp, args: &[&str]) -> Output {
    let s = &app.settings;
    let delays: Vec<String> =
        s.delivery.retry_delays.iter().map(|d| herald::queue::Topology::delay_label(*d)).collect();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .env_remove("HERALD_ENV")
        .env_remove("RUST_LOG")
        .env("HERALD__DATABASE__URL", &s.database.url)
        .env("HERALD__AMQP__PREFIX", &s.amqp.prefix)
        .env("HERALD__CRYPTO__KEY", &s.crypto.key)
        // The app's retry queues, so the command declares no others.
        .env("HERALD__DELIVERY__RETRY_DELAYS", delays.join(","))
        .env("HERALD__LOG__LEVEL", "warn")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(60), run).await.expect("herald exits within a minute").unwrap()
}

/// Asserts exit status 0 and returns stdout.
pub fn success(out: &Output) -> String {
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    stdout.into_owned()
}

#[actix_web::test]
async fn users_import_reports_the_bad_lines_and_imports_the_rest() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    let file = std::env::temp_dir().join(format!("herald-cli-import-{:016x}.csv", rand::random::<u64>()));
    let rows = [
        "username,email,given_name,family_name",
        "ann,ann@example.com,Ann,Smith",
        "bad,not-an-address,Bad,Row",
        "cid,cid@example.com,Cid,Jones",
        "dan,dan@example.com,,Brown",
        "ann,ann.again@example.com,Ann,Again",
        "eve,eve@example.com,Eve,White",
    ];
    std::fs::write(&file, rows.join("\n") + "\n").unwrap();

    let out = herald(&app, &["users", "import", file.to_str().unwrap(), "--org", &org]).await;
    // An organization that does not exist stops the import before it starts.
    let unknown_org = herald(&app, &["users", "import", file.to_str().unwrap(), "--org", "123456789"]).await;

    std::fs::remove_file(&file).unwrap();
    assert_eq!(unknown_org.status.code(), Some(1), "{unknown_org:?}");
    let stderr = String::from_utf8_lossy(&unknown_org.stderr);
    assert!(stderr.contains("organization 123456789 does not exist"), "{stderr}");
    let stdout = success(&out);
    for line in [3, 5, 6] {
        assert!(stdout.contains(&format!("line {line}: ")), "line {line} is reported:\n{stdout}");
    }
    for line in [1, 2, 4, 7] {
        assert!(!stdout.contains(&format!("line {line}: ")), "line {line} is fine:\n{stdout}");
    }
    assert!(stdout.contains("imported 3, rejected 3"), "{stdout}");
    let users: Vec<(String, String)> =
        sqlx::query_as("SELECT id, username FROM users WHERE org_id = $1 ORDER BY username")
            .bind(&org)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let names: Vec<&str> = users.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, ["ann", "cid", "eve"]);
    let ann = ok_json(app.get(&format!("/v2/users/{}", users[0].0), &app.bootstrap).await).await;
    assert_eq!(ann["user"]["human"]["email"]["email"], json!("ann@example.com"), "{ann}");
}

#[actix_web::test]
async fn bulk_resend_follows_the_job_and_prints_its_totals() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    let org = app.create_org().await;
    let mut users = Vec::new();
    for i in 0..3 {
        users.push(app.create_user(&org, Some(&format!("p{i}@example.com")), None).await);
    }
    app.create_user(&org, Some("uninvited@example.com"), None).await;
    send_codes(&app, &users).await;
    for i in 0..3 {
        smtp.wait_for(&format!("p{i}@example.com"), 1, WAIT).await;
    }

    let out = herald(&app, &["bulk-resend", "--org", &org, "--all-pending"]).await;

    let stdout = success(&out);
    assert!(stdout.contains("3 resend requests published"), "{stdout}");
    assert!(stdout.contains("3 resent, 0 failed, 3 delivered, 0 dead"), "{stdout}");
    // It returned once the job's mails were out.
    for (i, user) in users.iter().enumerate() {
        let mails = smtp.mails_to(&format!("p{i}@example.com"));
        assert_eq!(mails.len(), 2, "p{i}");
        assert_ne!(mails[0].code_from_link(), mails[1].code_from_link());
        ok_json(app.verify(user, &mails[1].code_from_link()).await).await;
    }
    assert!(smtp.mails_to("uninvited@example.com").is_empty());
}

#[actix_web::test]
async fn bulk_resend_from_a_file_of_ids_counts_the_unknown_ones() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(with_mail(&smtp)).await;
    let org = app.create_org().await;
    let (kim, lee) = (
        app.create_user(&org, Some("kim@example.com"), None).await,
        app.create_user(&org, Some("lee@example.com"), None).await,
    );
    send_codes(&app, &[kim.clone(), lee.clone()]).await;
    smtp.wait_for("kim@example.com", 1, WAIT).await;
    smtp.wait_for("lee@example.com", 1, WAIT).await;
    let file = std::env::temp_dir().join(format!("herald-ids-{:016x}.txt", rand::random::<u64>()));
    // Kim only (Lee is not in the file), one unknown id, a comment and a blank line.
    std::fs::write(&file, format!("# re-invite\n{kim}\n\nno-such-user\n")).unwrap();

    let out = herald(&app, &["bulk-resend", "--org", &org, "--file", file.to_str().unwrap()]).await;
    let _ = std::fs::remove_file(&file);

    let stdout = success(&out);
    assert!(stdout.contains("2 resend requests published"), "{stdout}");
    assert!(stdout.contains("1 resent, 1 failed, 1 delivered"), "{stdout}");
    assert!(stdout.contains("failed COMMAND-Wgvn4: 1"), "{stdout}");
    assert_eq!(smtp.mails_to("kim@example.com").len(), 2);
    assert_eq!(smtp.mails_to("lee@example.com").len(), 1, "not in the file");
}

#[actix_web::test]
async fn deliveries_list_show_and_replay_a_dead_delivery() {
    // Arrange: one delivery sent, one refused for good.
    let smtp = SmtpServer::start().await;
    smtp.refuse("dead@example.com", "550 5.1.1 No such user", None);
    let app = spawn_app_with(with_mail(&smtp)).await;
    let org = app.create_org().await;
    let fine = app.create_user(&org, Some("fine@example.com"), None).await;
    let dead = app.create_user(&org, Some("dead@example.com"), None).await;
    send_codes(&app, &[fine.clone(), dead.clone()]).await;
    let fine_id = wait_status(&app, &fine, "sent").await;
    let id = wait_status(&app, &dead, "dead").await;

    // list
    let stdout = success(&herald(&app, &["deliveries", "list", "--status", "dead"]).await);
    let line = stdout.lines().find(|l| l.starts_with(&id)).unwrap_or_else(|| panic!("{id} is listed:\n{stdout}"));
    for part in ["dead", "email", "d***@example.com", "550"] {
        assert!(line.contains(part), "{part} in {line:?}");
    }
    assert!(!stdout.contains(&fine_id) && !stdout.contains("f***@example.com"), "only dead ones:\n{stdout}");
    assert!(!stdout.contains("dead@example.com"), "addresses are masked:\n{stdout}");

    // show
    let stdout = success(&herald(&app, &["deliveries", "show", &id]).await);
    assert!(stdout.contains(&format!("delivery   {id}")), "{stdout}");
    assert!(stdout.contains("status     dead after 1 attempt(s)"), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.contains("attempt 1 at") && l.contains("permanent") && l.contains("550")),
        "{stdout}"
    );

    // replay --all --dry-run: counted, nothing changed.
    let stdout = success(&herald(&app, &["deliveries", "replay", "--all", "--dry-run"]).await);
    assert!(stdout.contains("matched 1 · replayed 0"), "{stdout}");
    assert!(stdout.contains("dry run: nothing changed"), "{stdout}");
    settled(&app).await;
    assert_eq!(statuses(&app, &dead).await, [("dead".to_string(), 1)]);
    assert!(smtp.mails_to("dead@example.com").is_empty());

    // replay --id: the running herald sends it.
    accept_again(&smtp, "dead@example.com");
    let stdout = success(&herald(&app, &["deliveries", "replay", "--id", &id]).await);
    assert!(stdout.contains(&format!("delivery {id} requeued")), "{stdout}");
    let mail = smtp.wait_for("dead@example.com", 1, WAIT).await.remove(0);
    assert_eq!(wait_status(&app, &dead, "sent").await, id);
    ok_json(app.verify(&dead, &mail.code_from_link()).await).await;
    let stdout = success(&herald(&app, &["deliveries", "replay", "--all"]).await);
    assert!(stdout.contains("matched 0 · replayed 0"), "{stdout}");
}

#[actix_web::test]
async fn deliveries_replay_reissue_sends_a_new_code_for_a_dead_delivery_whose_code_expired() {
    // Arrange: a delivery refused for good, whose code then expires.
    let ttl = Duration::from_secs(3);
    let smtp = SmtpServer::start().await;
    smtp.refuse("late@example.com", "550 5.1.1 No such user", None);
    let app = spawn_app_with(|s| {
        with_mail(&smtp)(s);
        s.invite.code_ttl = ttl;
    })
    .await;
    let org = app.create_org().await;
    let late = app.create_user(&org, Some("late@example.com"), None).await;
    send_codes(&app, std::slice::from_ref(&late)).await;
    let id = wait_status(&app, &late, "dead").await;
    wait_until_expired(&app.pool, ttl).await;
    accept_again(&smtp, "late@example.com");

    // Without --reissue the stale delivery is refused, and nothing is sent.
    let out = herald(&app, &["deliveries", "replay", "--id", &id]).await;
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stale"), "{}", String::from_utf8_lossy(&out.stderr));

    // Act
    let stdout = success(&herald(&app, &["deliveries", "replay", "--id", &id, "--reissue"]).await);

    // Assert: a new code in a new delivery, mailed by the running herald; it verifies.
    assert!(stdout.contains(&format!("delivery {id} superseded by a new code (delivery ")), "{stdout}");
    let mail = smtp.wait_for("late@example.com", 1, WAIT).await.remove(0);
    ok_json(app.verify(&late, &mail.code_from_link()).await).await;
    assert_ne!(wait_status(&app, &late, "sent").await, id, "sent in the new delivery");
}

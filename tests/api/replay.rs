//! API.md §5: deliveries as operators see them (`GET /admin/v1/deliveries`, one
//! delivery with its attempts) and the replay of dead ones, one by one or by filter.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    assert_error, assert_error_code, ok_json, settled, spawn_app_with, statuses, timestamp, wait_status,
    wait_until_expired, TestApp, WAIT,
};
use crate::ops_helpers::{accept_again, send_codes, with_mail};
use crate::smtp::SmtpServer;

const NO_SUCH_USER: &str = "550 5.1.1 No such user";

async fn delivery(app: &TestApp, id: &str) -> Value {
    ok_json(app.get(&format!("/admin/v1/deliveries/{id}"), &app.bootstrap).await).await
}

async fn list(app: &TestApp, token: &str, query: &str) -> Value {
    ok_json(app.get(&format!("/admin/v1/deliveries?{query}"), token).await).await
}

async fn replay_one(app: &TestApp, id: &str, body: Value) -> reqwest::Response {
    app.post(&format!("/admin/v1/deliveries/{id}/replay"), &app.bootstrap, &body).await
}

async fn replay_matching(app: &TestApp, body: Value) -> Value {
    ok_json(app.post("/admin/v1/deliveries/replay", &app.bootstrap, &body).await).await
}

/// The delivery as the listing shows it (where `attempts` is the count; in
/// `GET /admin/v1/deliveries/{id}` it is the list of attempts).
async fn listed(app: &TestApp, id: &str) -> Value {
    let all = list(app, &app.bootstrap, "limit=500").await;
    let found = all["deliveries"].as_array().unwrap().iter().find(|d| d["id"] == json!(id)).cloned();
    found.unwrap_or_else(|| panic!("delivery {id} is not listed: {all}"))
}

/// The ids of a listing, in its order.
fn ids(listing: &Value) -> Vec<String> {
    listing["deliveries"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_string()).collect()
}

/// A user of `org` whose first code was mailed to `email` and refused for good.
async fn dead_user(app: &TestApp, org: &str, email: &str) -> (String, String) {
    let user = app.create_user(org, Some(email), None).await;
    send_codes(app, std::slice::from_ref(&user)).await;
    let id = wait_status(app, &user, "dead").await;
    (user, id)
}

#[actix_web::test]
async fn a_dead_delivery_replayed_once_the_mailbox_accepts_is_sent_with_its_attempts_reset() {
    // Arrange: a delivery refused with 550, then a mailbox that accepts again.
    let smtp = SmtpServer::start().await;
    smtp.refuse("ada@example.com", NO_SUCH_USER, None);
    let app = spawn_app_with(with_mail(&smtp)).await;
    let org = app.create_org().await;
    let (user, id) = dead_user(&app, &org, "ada@example.com").await;
    let dead = listed(&app, &id).await;
    assert_eq!((&dead["status"], &dead["attempts"]), (&json!("dead"), &json!(1)), "{dead}");
    assert!(dead["lastError"].as_str().is_some_and(|e| e.contains("550")), "{dead}");
    accept_again(&smtp, "ada@example.com");

    // Act
    let body = ok_json(replay_one(&app, &id, json!({})).await).await;

    // Assert: the same delivery goes out, and its code verifies.
    assert_eq!(body, json!({"outcome": "requeued", "deliveryId": id}));
    let mail = smtp.wait_for("ada@example.com", 1, WAIT).await.remove(0);
    assert_eq!(wait_status(&app, &user, "sent").await, id);
    let sent = listed(&app, &id).await;
    assert_eq!(sent["attempts"], json!(1), "counted again from zero: {sent}");
    assert!(sent.get("lastError").is_none(), "{sent}");
    timestamp(&sent["sentAt"]);
    // The history keeps both attempts: the refused one and the one after the replay.
    let history = delivery(&app, &id).await;
    let outcomes: Vec<(Value, Value)> = history["attempts"]
        .as_array()
        .unwrap_or_else(|| panic!("attempts is a list: {history}"))
        .iter()
        .map(|a| (a["attempt"].clone(), a["outcome"].clone()))
        .collect();
    assert_eq!(outcomes, [(json!(1), json!("permanent")), (json!(1), json!("sent"))], "{history}");
    ok_json(app.verify(&user, &mail.code_from_link()).await).await;

    // A delivery that is no longer dead is not replayed.
    assert_error_code(replay_one(&app, &id, json!({})).await, 400, 9).await;
    settled(&app).await;
    assert_eq!(smtp.mails_to("ada@example.com").len(), 1);
}

#[actix_web::test]
async fn a_filtered_replay_counts_in_a_dry_run_replays_for_real_and_is_safe_to_repeat() {
    // Arrange: two dead deliveries in one organization, one in another.
    let smtp = SmtpServer::start().await;
    for who in ["a1", "a2", "b1"] {
        smtp.refuse(&format!("{who}@example.com"), NO_SUCH_USER, None);
    }
    let app = spawn_app_with(with_mail(&smtp)).await;
    let (a, b) = (app.create_org().await, app.create_org().await);
    let (a1, _) = dead_user(&app, &a, "a1@example.com").await;
    let (a2, _) = dead_user(&app, &a, "a2@example.com").await;
    let (b1, b1_delivery) = dead_user(&app, &b, "b1@example.com").await;
    for who in ["a1", "a2", "b1"] {
        accept_again(&smtp, &format!("{who}@example.com"));
    }

    // A dry run counts and changes nothing.
    let report = replay_matching(&app, json!({"filter": {"orgId": a}, "dryRun": true})).await;
    assert_eq!(report, json!({"matched": 2, "replayed": 0, "skipped": {"stale": 0}}));
    settled(&app).await;
    for user in [&a1, &a2, &b1] {
        assert_eq!(statuses(&app, user).await, [("dead".to_string(), 1)]);
    }
    assert!(smtp.mails().is_empty());
    let report = replay_matching(&app, json!({"filter": {"errorContains": "550"}, "dryRun": true})).await;
    assert_eq!(report["matched"], json!(3), "{report}");
    let report = replay_matching(&app, json!({"filter": {"errorContains": "quota"}, "dryRun": true})).await;
    assert_eq!(report["matched"], json!(0), "{report}");

    // For real: the organization's dead deliveries go out.
    let report = replay_matching(&app, json!({"filter": {"orgId": a}})).await;
    assert_eq!(report, json!({"matched": 2, "replayed": 2, "skipped": {"stale": 0}}));
    for (user, email) in [(&a1, "a1@example.com"), (&a2, "a2@example.com")] {
        let mail = smtp.wait_for(email, 1, WAIT).await.remove(0);
        wait_status(&app, user, "sent").await;
        ok_json(app.verify(user, &mail.code_from_link()).await).await;
    }

    // Again: nothing is dead there any more, so nothing is replayed twice.
    let report = replay_matching(&app, json!({"filter": {"orgId": a}})).await;
    assert_eq!(report, json!({"matched": 0, "replayed": 0, "skipped": {"stale": 0}}));
    settled(&app).await;
    assert_eq!(smtp.mails().len(), 2);
    assert_eq!(delivery(&app, &b1_delivery).await["status"], json!("dead"));
    assert!(smtp.mails_to("b1@example.com").is_empty());
}

#[actix_web::test]
async fn a_dead_delivery_whose_code_expired_is_stale_and_goes_out_only_with_a_new_code() {
    // Arrange: two deliveries refused for good, whose codes then expire.
    // Long enough for a reissued code to be mailed and typed before it expires.
    let ttl = Duration::from_secs(4);
    let smtp = SmtpServer::start().await;
    smtp.refuse("ada@example.com", NO_SUCH_USER, None);
    smtp.refuse("bob@example.com", NO_SUCH_USER, None);
    let app = spawn_app_with(|s| {
        with_mail(&smtp)(s);
        s.invite.code_ttl = ttl;
    })
    .await;
    let org = app.create_org().await;
    let (ada, ada_delivery) = dead_user(&app, &org, "ada@example.com").await;
    let (bob, bob_delivery) = dead_user(&app, &org, "bob@example.com").await;
    wait_until_expired(&app.pool, ttl).await;
    accept_again(&smtp, "ada@example.com");
    accept_again(&smtp, "bob@example.com");

    // Without `reissue`: skipped as stale, and refused one by one.
    let report = replay_matching(&app, json!({"filter": {}})).await;
    assert_eq!(report, json!({"matched": 2, "replayed": 0, "skipped": {"stale": 2}}));
    assert_error(replay_one(&app, &ada_delivery, json!({})).await, 400, 9, "NOTIFY-stale").await;
    assert_eq!(statuses(&app, &ada).await, [("dead".to_string(), 1)]);
    assert_eq!(statuses(&app, &bob).await, [("dead".to_string(), 1)]);

    // With `reissue`, one delivery: a new code, in a new delivery, that verifies.
    let body = ok_json(replay_one(&app, &ada_delivery, json!({"reissue": true})).await).await;
    assert_eq!(body["outcome"], json!("reissued"), "{body}");
    assert_eq!(body["replacedDeliveryId"], json!(ada_delivery), "{body}");
    let new_delivery = body["deliveryId"].as_str().unwrap_or_else(|| panic!("deliveryId: {body}"));
    assert_ne!(new_delivery, ada_delivery);
    let mail = smtp.wait_for("ada@example.com", 1, WAIT).await.remove(0);
    ok_json(app.verify(&ada, &mail.code_from_link()).await).await;
    assert_eq!(wait_status(&app, &ada, "sent").await, new_delivery);
    assert_ne!(delivery(&app, &ada_delivery).await["status"], json!("dead"), "replaced, so not replayable again");

    // With `reissue`, by filter: only Bob's is still dead.
    let report = replay_matching(&app, json!({"filter": {}, "reissue": true})).await;
    assert_eq!(report, json!({"matched": 1, "replayed": 1, "skipped": {"stale": 0}}));
    let mail = smtp.wait_for("bob@example.com", 1, WAIT).await.remove(0);
    ok_json(app.verify(&bob, &mail.code_from_link()).await).await;
    assert_ne!(delivery(&app, &bob_delivery).await["status"], json!("dead"));
    assert_eq!(smtp.mails().len(), 2);
}

#[actix_web::test]
async fn the_listing_filters_masks_recipients_and_pages_with_a_cursor() {
    // Arrange: in one organization three mailed users, one texted, one refused;
    // in another, one mailed user.
    let smtp = SmtpServer::start().await;
    smtp.refuse("dave@example.com", NO_SUCH_USER, None);
    let app = spawn_app_with(with_mail(&smtp)).await;
    let (a, b) = (app.create_org().await, app.create_org().await);
    let mut users = Vec::new();
    for name in ["alice", "bob", "carol"] {
        users.push(app.create_user(&a, Some(&format!("{name}@example.com")), None).await);
    }
    let texted = app.create_user(&a, None, Some("+41791234567")).await;
    let eve = app.create_user(&b, Some("eve@example.com"), None).await;
    send_codes(&app, &[users.clone(), vec![texted.clone(), eve.clone()]].concat()).await;
    for user in users.iter().chain([&texted, &eve]) {
        wait_status(&app, user, "sent").await;
    }
    let (dave, dave_delivery) = dead_user(&app, &a, "dave@example.com").await;

    // Pages of two, newest first, until there is no nextCursor.
    let (mut seen, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let query = match &cursor {
            None => "limit=2".to_string(),
            Some(c) => format!("limit=2&cursor={c}"),
        };
        let page = list(&app, &app.bootstrap, &query).await;
        pages += 1;
        assert!(ids(&page).len() <= 2, "{page}");
        seen.extend(ids(&page));
        match page.get("nextCursor") {
            Some(c) => cursor = Some(c.as_str().unwrap_or_else(|| panic!("nextCursor is a string: {page}")).into()),
            None => break,
        }
        assert!(pages < 10, "the cursor does not advance");
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 6, "no delivery twice: {seen:?}");
    let numbers: Vec<u64> = seen.iter().map(|s| s.parse().unwrap()).collect();
    assert!(numbers.windows(2).all(|w| w[0] > w[1]), "newest first: {seen:?}");
    assert_eq!(ids(&list(&app, &app.bootstrap, "").await), seen, "everything fits the default page");

    // What each entry holds: masked recipients, no nulls.
    let all = list(&app, &app.bootstrap, "").await;
    for d in all["deliveries"].as_array().unwrap() {
        let keys: HashSet<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
        for key in ["id", "userId", "orgId", "channel", "recipient", "template", "status", "attempts"] {
            assert!(keys.contains(key), "{key} missing: {d}");
        }
        assert!(d.as_object().unwrap().values().all(|v| !v.is_null()), "{d}");
        timestamp(&d["createdAt"]);
        timestamp(&d["updatedAt"]);
        assert_eq!(d["template"], json!("invite_user"));
        assert_eq!(d.get("sentAt").is_some(), d["status"] == "sent", "{d}");
    }
    let only = |query: &str| {
        let app = &app;
        let query = query.to_string();
        async move { list(app, &app.bootstrap, &query).await["deliveries"].as_array().unwrap().clone() }
    };
    let alice = only(&format!("userId={}", users[0])).await;
    assert_eq!(alice.len(), 1);
    assert_eq!(alice[0]["recipient"], json!("a***@example.com"));
    assert_eq!((&alice[0]["userId"], &alice[0]["orgId"]), (&json!(users[0]), &json!(a)));
    let sms = only("channel=sms").await;
    assert_eq!(sms.len(), 1);
    assert_eq!((&sms[0]["userId"], &sms[0]["recipient"]), (&json!(texted), &json!("+4179*****67")));
    let dead = only("status=dead").await;
    assert_eq!(dead.len(), 1);
    assert_eq!((&dead[0]["id"], &dead[0]["userId"]), (&json!(dave_delivery), &json!(dave)));
    assert_eq!(dead[0]["recipient"], json!("d***@example.com"));
    assert!(dead[0]["lastError"].as_str().is_some_and(|e| e.contains("550")), "{}", dead[0]);
    assert_eq!(only("status=sent").await.len(), 5);
    assert!(only("status=retrying").await.is_empty());
    let other = only(&format!("orgId={b}")).await;
    assert_eq!(other.len(), 1);
    assert_eq!(other[0]["userId"], json!(eve));
    assert_eq!(only(&format!("orgId={a}&status=sent")).await.len(), 4);
    // Dave's delivery was made last: `since` its time holds it alone, `until` it
    // holds every other.
    let at = dead[0]["createdAt"].as_str().unwrap();
    let since = only(&format!("since={at}")).await;
    assert_eq!(since.iter().map(|d| d["id"].clone()).collect::<Vec<_>>(), [json!(dave_delivery)]);
    assert_eq!(only(&format!("until={at}")).await.len(), 5);
    assert_error_code(app.get("/admin/v1/deliveries?since=yesterday", &app.bootstrap).await, 400, 3).await;

    assert_error_code(app.get("/admin/v1/deliveries?status=lost", &app.bootstrap).await, 400, 3).await;
    assert_error_code(app.get("/admin/v1/deliveries?channel=fax", &app.bootstrap).await, 400, 3).await;
}

#[actix_web::test]
async fn one_delivery_shows_every_attempt() {
    let smtp = SmtpServer::start().await;
    smtp.refuse("ada@example.com", "451 4.7.1 Try again later", Some(1));
    let app = spawn_app_with(with_mail(&smtp)).await;
    let (_org, user) = app.org_and_user().await;
    send_codes(&app, std::slice::from_ref(&user)).await;
    let id = wait_status(&app, &user, "sent").await;

    let body = delivery(&app, &id).await;

    assert_eq!((&body["id"], &body["userId"], &body["status"]), (&json!(id), &json!(user), &json!("sent")));
    assert_eq!(body["recipient"], json!("a***@example.com"));
    timestamp(&body["sentAt"]);
    let attempts = body["attempts"].as_array().unwrap_or_else(|| panic!("attempts is a list: {body}"));
    assert_eq!(attempts.len(), 2, "{body}");
    assert_eq!((&attempts[0]["attempt"], &attempts[0]["outcome"]), (&json!(1), &json!("transient")));
    assert!(attempts[0]["error"].as_str().is_some_and(|e| e.contains("451")), "{body}");
    assert_eq!((&attempts[1]["attempt"], &attempts[1]["outcome"]), (&json!(2), &json!("sent")));
    assert!(attempts[1].get("error").is_none(), "{body}");
    for a in attempts {
        timestamp(&a["at"]);
        assert!(a["durationMs"].as_u64().is_some(), "{a}");
    }
    assert!(timestamp(&attempts[0]["at"]) < timestamp(&attempts[1]["at"]));

    assert_error_code(app.get("/admin/v1/deliveries/123456789012345678", &app.bootstrap).await, 404, 5).await;
    assert_error_code(app.get("/admin/v1/deliveries/not-a-number", &app.bootstrap).await, 404, 5).await;
}

#[actix_web::test]
async fn listing_needs_delivery_read_and_replaying_needs_delivery_replay() {
    let smtp = SmtpServer::start().await;
    smtp.refuse("ada@example.com", NO_SUCH_USER, None);
    let app = spawn_app_with(with_mail(&smtp)).await;
    let org = app.create_org().await;
    let (user, id) = dead_user(&app, &org, "ada@example.com").await;
    let reader = app.token(None, &["delivery.read", "user.read", "user.write", "bulk.write"]).await;
    let replayer = app.token(None, &["delivery.replay"]).await;
    let one = format!("/admin/v1/deliveries/{id}");

    assert_error(app.get("/admin/v1/deliveries", &replayer).await, 403, 7, "AUTH-AWfge").await;
    assert_error(app.get(&one, &replayer).await, 403, 7, "AUTH-AWfge").await;
    assert_eq!(ids(&list(&app, &reader, "").await), std::slice::from_ref(&id));
    ok_json(app.get(&one, &reader).await).await;

    let replay = format!("{one}/replay");
    assert_error(app.post(&replay, &reader, &json!({})).await, 403, 7, "AUTH-AWfge").await;
    let resp = app.post("/admin/v1/deliveries/replay", &reader, &json!({"filter": {}, "dryRun": true})).await;
    assert_error(resp, 403, 7, "AUTH-AWfge").await;
    assert_eq!(statuses(&app, &user).await, [("dead".to_string(), 1)]);

    accept_again(&smtp, "ada@example.com");
    assert_eq!(ok_json(app.post(&replay, &replayer, &json!({})).await).await["outcome"], json!("requeued"));
    smtp.wait_for("ada@example.com", 1, WAIT).await;
    let resp = app.client.get(app.url("/admin/v1/deliveries")).send().await.unwrap();
    assert_error_code(resp, 401, 16).await;
}

#[actix_web::test]
async fn another_tenants_deliveries_are_invisible_and_an_org_token_lists_only_its_own() {
    let smtp = SmtpServer::start().await;
    smtp.refuse("ada@example.com", NO_SUCH_USER, None);
    smtp.refuse("bob@example.com", NO_SUCH_USER, None);
    let app = spawn_app_with(with_mail(&smtp)).await;
    let (a, b) = (app.create_org().await, app.create_org().await);
    let (_, ada_delivery) = dead_user(&app, &a, "ada@example.com").await;
    let (bob, bob_delivery) = dead_user(&app, &b, "bob@example.com").await;
    let a_ops = app.token(Some(&a), &["delivery.read", "delivery.replay"]).await;

    // Listing: its own organization only, whatever the filter.
    let own = list(&app, &a_ops, "").await;
    assert_eq!(ids(&own), std::slice::from_ref(&ada_delivery), "{own}");
    assert!(ids(&list(&app, &a_ops, &format!("userId={bob}")).await).is_empty());
    assert_error_code(app.get(&format!("/admin/v1/deliveries?orgId={b}"), &a_ops).await, 404, 5).await;

    // Another tenant's delivery does not exist for it.
    let theirs = format!("/admin/v1/deliveries/{bob_delivery}");
    assert_error_code(app.get(&theirs, &a_ops).await, 404, 5).await;
    assert_error_code(app.post(&format!("{theirs}/replay"), &a_ops, &json!({})).await, 404, 5).await;
    let resp = app.post("/admin/v1/deliveries/replay", &a_ops, &json!({"filter": {"orgId": b}})).await;
    assert_error_code(resp, 404, 5).await;
    let report =
        ok_json(app.post("/admin/v1/deliveries/replay", &a_ops, &json!({"filter": {}, "dryRun": true})).await).await;
    assert_eq!(report["matched"], json!(1), "only its own: {report}");
    assert_eq!(statuses(&app, &bob).await, [("dead".to_string(), 1)]);
}

//! Concurrent writes to one user: serialised, distinct sequences, last code wins
//! (API.md §1.1, §2.1, §2.2).

use std::collections::BTreeSet;

use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::{assert_error, ok_json, sequence, spawn_app};

#[actix_web::test]
async fn eight_concurrent_creates_get_distinct_sequences_and_only_the_newest_code_verifies() {
    // Arrange
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;

    let body = json!({"returnCode": {}});

    // Act
    let responses = join_all((0..8).map(|_| app.create_code(&user, &body))).await;

    // Assert: all 200, eight distinct sequences 2..=9.
    let mut issued = Vec::new();
    for resp in responses {
        let body = ok_json(resp).await;
        issued.push((sequence(&body), body["inviteCode"].as_str().unwrap().to_string()));
    }
    let seqs: BTreeSet<u64> = issued.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (2..=9).collect::<BTreeSet<u64>>(), "{issued:?}");
    issued.sort();
    let (newest_seq, newest) = issued.last().unwrap().clone();
    assert_eq!(app.invite_row(&user).await.unwrap().event_sequence as u64, newest_seq);
    let older = issued.iter().map(|(_, c)| c).find(|c| **c != newest).expect("an older, different code");

    assert_error(app.verify(&user, older).await, 400, 3, "COMMAND-Wgn4q").await;
    ok_json(app.verify(&user, &newest).await).await;
}

#[actix_web::test]
async fn eight_concurrent_resends_get_distinct_sequences_and_leave_one_queued_delivery() {
    // Arrange: a first, sent code.
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    ok_json(app.create_code(&user, &json!({})).await).await;

    // Act
    let responses = join_all((0..8).map(|_| app.resend(&user))).await;

    // Assert
    let mut seqs = BTreeSet::new();
    for resp in responses {
        seqs.insert(sequence(&ok_json(resp).await));
    }
    assert_eq!(seqs, (3..=10).collect::<BTreeSet<u64>>());
    let deliveries = app.deliveries(&user).await;
    assert_eq!(deliveries.len(), 9);
    let queued: Vec<_> = deliveries.iter().filter(|d| d.status == "queued").collect();
    assert_eq!(queued.len(), 1, "{deliveries:?}");
    assert_eq!(queued[0].code_event_sequence, 10);
    assert!(deliveries.iter().filter(|d| d.status != "queued").all(|d| d.status == "superseded"), "{deliveries:?}");
    assert_eq!(app.invite_row(&user).await.unwrap().event_sequence, 10);
}

#[actix_web::test]
async fn concurrent_creates_past_the_rate_limit_let_exactly_the_limit_through() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    let body = json!({});

    let responses = join_all((0..13).map(|_| app.create_code(&user, &body))).await;

    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 10, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 3, "{statuses:?}");
    let added = app.event_types(&user).await.iter().filter(|t| *t == "invite.code.added").count();
    assert_eq!(added, 10);
}

#[actix_web::test]
async fn a_code_verified_concurrently_verifies_once() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    let (code, _) = app.returned_code(&user).await;

    let responses = join_all((0..4).map(|_| app.verify(&user, &code))).await;

    let mut ok = 0;
    for resp in responses {
        if resp.status().as_u16() == 200 {
            ok += 1;
        } else {
            assert_error(resp, 400, 3, "COMMAND-Wgn4q").await;
        }
    }
    assert_eq!(ok, 1);
    let verified = app.event_types(&user).await.iter().filter(|t| *t == "user.email.verified").count();
    assert_eq!(verified, 1);
}

#[actix_web::test]
async fn concurrent_wrong_guesses_still_clear_the_code_after_three() {
    let app = spawn_app().await;
    let (_, user) = app.org_and_user().await;
    let (code, _) = app.returned_code(&user).await;
    let wrong = if code == "AAAAAA" { "BBBBBB" } else { "AAAAAA" };

    for resp in join_all((0..5).map(|_| app.verify(&user, wrong))).await {
        assert_error(resp, 400, 3, "COMMAND-Wgn4q").await;
    }

    assert_error(app.verify(&user, &code).await, 400, 3, "COMMAND-Wgn4q").await;
    assert!(app.invite_row(&user).await.unwrap().code_encrypted.is_none());
}

#[actix_web::test]
async fn a_resend_the_database_refuses_fails_alone_among_concurrent_ones() {
    // Arrange: forty users with sent codes.
    let app = spawn_app().await;
    let (org, _) = app.org_and_user().await;
    let mut users = Vec::new();
    for i in 0..40 {
        let user = app.create_user(&org, Some(&format!("u{i}@example.com")), None).await;
        ok_json(app.create_code(&user, &json!({})).await).await;
        users.push(user);
    }

    // Act: their resends at once, with one whose id PostgreSQL cannot even read
    // (a NUL character) among them: resends that arrive together share a
    // transaction, and that one makes the shared statement fail.
    let bad_body = json!({"userId": "bad\u{0}id"});
    let (first, second) = users.split_at(20);
    let (good_first, bad, good_second) = futures_util::future::join3(
        join_all(first.iter().map(|u| app.resend(u))),
        async {
            // Behind the first twenty, so that it joins a group rather than leads one:
            // a yield lets their requests go out first.
            tokio::task::yield_now().await;
            app.connect("zitadel.user.v2.UserService/ResendInviteCode", &app.bootstrap, &bad_body).await
        },
        join_all(second.iter().map(|u| app.resend(u))),
    )
    .await;
    let good = good_first.into_iter().chain(good_second);

    // Assert: every other resend succeeded; only the bad one failed.
    for resp in good {
        ok_json(resp).await;
    }
    assert!(!bad.status().is_success(), "{}", bad.status());
    for user in &users {
        assert_eq!(app.deliveries(user).await.iter().filter(|d| d.status == "queued").count(), 1);
    }
}

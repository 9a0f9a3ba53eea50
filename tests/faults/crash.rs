//! `kill -9` of herald in the middle of a bulk re-invite, then a restart on the same
//! state (docs/ARCHITECTURE.md, "Guarantees and how they are kept").

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{eventually, figure, missing_and_twice, within, Fault};

const USERS: usize = 3_000;

#[actix_web::test]
async fn a_kill_mid_bulk_loses_no_invite_and_the_restart_sends_the_rest_within_15_s() {
    // Arrange: 3,000 users with a sent code, a herald with workers.
    let fault = Fault::begin().await;
    let mut herald = fault.herald("crash").await;
    let org = fault.org(&herald).await;
    fault.users_with_codes(&org, "crash", USERS).await;

    // Act: re-invite them all, and kill herald once a third of the mails are out.
    fault.start_job(&herald, &json!({"orgId": org, "allPending": true})).await;
    eventually("a third of the re-invites", Duration::from_secs(120), || async {
        (fault.smtp.received() >= USERS / 3).then_some(())
    })
    .await;
    herald.kill().await;

    // What was in flight at the kill: deliveries the dead process had claimed
    // (`sending`), and of those, the ones the mail server had already accepted (the
    // duplicate window). Every SMTP session of the dead process has ended first, so
    // no mail of it is still on its way into the server…
    eventually("the dead process's SMTP sessions to end", Duration::from_secs(10), || async {
        (fault.gate.connections() == 0).then_some(())
    })
    .await;
    // …and every statement it had sent PostgreSQL has ended (a COMMIT on its way
    // still counts): then the rows say what the dead process left.
    eventually("the dead process's database sessions to end", Duration::from_secs(10), || async {
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'herald'",
        )
        .fetch_one(&fault.pool)
        .await
        .unwrap();
        (left == 0).then_some(())
    })
    .await;
    let received_at_kill = fault.smtp.received();
    let claimed: Vec<String> = sqlx::query_scalar("SELECT id::text FROM deliveries WHERE status = 'sending'")
        .fetch_all(&fault.pool)
        .await
        .unwrap();
    let before_kill = fault.delivered_ids();
    let accepted: HashSet<String> = before_kill.iter().cloned().collect();
    let status_at_kill: std::collections::HashMap<String, String> =
        sqlx::query_as("SELECT id::text, status FROM deliveries")
            .fetch_all(&fault.pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let in_window = claimed.iter().filter(|id| accepted.contains(*id)).count();

    let restarted = Instant::now();
    herald.restart().await;

    // Assert: every user has the new invite within 15 s of the restart…
    let all_in_15s = within(Duration::from_secs(15), || async {
        missing_and_twice(&fault.mails_per_recipient(), "crash", USERS).0.is_empty().then_some(())
    })
    .await;
    let missing_after_15s = match all_in_15s {
        Some(()) => 0,
        None => missing_and_twice(&fault.mails_per_recipient(), "crash", USERS).0.len(),
    };
    let all = restarted.elapsed();
    if missing_after_15s > 0 {
        figure(
            "kill -9 mid bulk",
            &format!(
                "{USERS} users: {} deliveries in flight at the kill, {in_window} of them accepted by the SMTP \
                 server; 15 s after the restart {missing_after_15s} users still had no re-invite",
                claimed.len()
            ),
        );
        panic!("{missing_after_15s} users without their re-invite 15 s after the restart");
    }
    fault.settled(Duration::from_secs(60)).await;

    // …and only mails the dead process had in flight went out twice.
    let counts = fault.mails_per_recipient();
    let (missing, twice) = missing_and_twice(&counts, "crash", USERS);
    let duplicates: usize = twice.iter().map(|(_, c)| c - 1).sum();
    figure(
        "kill -9 mid bulk",
        &format!(
            "{USERS} users: {received_at_kill} mails before the kill, {} deliveries in flight (claimed), \
             {in_window} of them already accepted by the SMTP server; after the restart every user had \
             the invite in {:.1} s; {duplicates} duplicate(s), {} missing",
            claimed.len(),
            all.as_secs_f64(),
            missing.len()
        ),
    );
    assert!(missing.is_empty(), "users without a re-invite: {missing:?}");
    // A mail twice is a delivery the dead process had claimed, each at most twice.
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for id in fault.delivered_ids() {
        *seen.entry(id).or_default() += 1;
    }
    let claimed: HashSet<&String> = claimed.iter().collect();
    let describe = |(id, c): (&String, &usize)| {
        let before = before_kill.iter().filter(|b| *b == id).count();
        format!("{id}: {c} mails, {before} before the kill, {:?} at the kill", status_at_kill.get(id))
    };
    let outside: Vec<String> = seen.iter().filter(|(id, c)| **c > 1 && !claimed.contains(id)).map(describe).collect();
    assert!(outside.is_empty(), "sent twice but not in flight at the kill: {} {outside:#?}", outside.len());
    let thrice: Vec<String> = seen.iter().filter(|(_, c)| **c > 2).map(describe).collect();
    assert!(thrice.is_empty(), "sent three times or more: {} {thrice:#?}", thrice.len());
    assert!(herald.exited().is_none(), "{}", herald.tail());
}

//! Two herald processes on one database and one queue prefix, a bulk re-invite and
//! concurrent resends through both: each user exactly one mail per request
//! (docs/ARCHITECTURE.md, "Roles and processes").

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;

use crate::harness::{eventually, figure, missing_and_twice, Fault};

const BULK: usize = 3_000;
const RESENDS: usize = 500;

#[actix_web::test]
async fn two_processes_one_state_a_bulk_and_500_resends_one_mail_per_request() {
    // Arrange: two processes, 3,000 users for the bulk and 500 others for resends.
    let fault = Fault::begin().await;
    let mut a = fault.herald("a").await;
    let mut b = fault.herald("b").await;
    let org = fault.org(&a).await;
    let bulk_users = fault.users_with_codes(&org, "bulk", BULK).await;
    let api_users = fault.users_with_codes(&org, "api", RESENDS).await;

    // Act: the bulk through one, the resends through both while the bulk runs.
    fault.start_job(&a, &json!({"orgId": org, "userIds": bulk_users})).await;
    let statuses: Vec<u16> = futures_util::stream::iter(api_users.iter().enumerate())
        .map(|(i, u)| fault.resend(if i % 2 == 0 { &a } else { &b }, u))
        .buffer_unordered(RESENDS)
        .map(|(s, _)| s)
        .collect()
        .await;

    // Assert: every request answered 200, every user got exactly one mail.
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    eventually("every mail", Duration::from_secs(120), || async {
        (fault.smtp.received() >= BULK + RESENDS).then_some(())
    })
    .await;
    fault.settled(Duration::from_secs(60)).await;
    let counts = fault.mails_per_recipient();
    let (bulk_missing, bulk_twice) = missing_and_twice(&counts, "bulk", BULK);
    let (api_missing, api_twice) = missing_and_twice(&counts, "api", RESENDS);
    figure(
        "two processes",
        &format!(
            "{BULK}-user bulk and {RESENDS} concurrent resends through two processes: {} mails, \
             {} missing, {} twice",
            fault.smtp.received(),
            bulk_missing.len() + api_missing.len(),
            bulk_twice.len() + api_twice.len()
        ),
    );
    assert!(bulk_missing.is_empty() && bulk_twice.is_empty(), "bulk: missing {bulk_missing:?}, twice {bulk_twice:?}");
    assert!(api_missing.is_empty() && api_twice.is_empty(), "resends: missing {api_missing:?}, twice {api_twice:?}");
    assert!(a.exited().is_none() && b.exited().is_none(), "{}{}", a.tail(), b.tail());
}

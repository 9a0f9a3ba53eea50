//! The mail server down for 20 s while resends arrive: herald retries, and every
//! invite arrives once the server is back, each once (docs/ARCHITECTURE.md,
//! "Retries").

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::harness::{eventually, figure, missing_and_twice, Fault};

const USERS: usize = 300;

#[actix_web::test]
async fn the_smtp_server_down_20_s_under_300_resends_delivers_all_300_after_each_once() {
    // Arrange
    let mut fault = Fault::begin().await;
    let mut herald = fault.herald("mail-server").await;
    let org = fault.org(&herald).await;
    let users = fault.users_with_codes(&org, "smtp", USERS).await;

    // Act: the server goes down, 300 resends arrive, it comes back after 20 s.
    fault.gate.close();
    let down = Instant::now();
    let statuses: Vec<u16> = futures_util::stream::iter(&users)
        .map(|u| fault.resend(&herald, u))
        .buffered(32)
        .map(|(s, _)| s)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // The outage itself is what passes here.
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(down.elapsed())).await;
    assert_eq!(fault.smtp.received(), 0, "the server was down");
    fault.gate.open().await;
    let back = Instant::now();

    // Assert: all 300 delivered, each once.
    let took = eventually("every invite after the outage", Duration::from_secs(60), || async {
        let (missing, _) = missing_and_twice(&fault.mails_per_recipient(), "smtp", USERS);
        missing.is_empty().then(|| back.elapsed())
    })
    .await;
    fault.settled(Duration::from_secs(60)).await;
    let (missing, twice) = missing_and_twice(&fault.mails_per_recipient(), "smtp", USERS);
    figure(
        "SMTP server down 20 s",
        &format!(
            "{USERS} resends during the outage, all 200; every invite arrived {:.1} s after the server was back; \
             {} missing, {} twice",
            took.as_secs_f64(),
            missing.len(),
            twice.len()
        ),
    );
    assert!(missing.is_empty() && twice.is_empty(), "missing {missing:?}, twice {twice:?}");
    assert!(herald.exited().is_none(), "herald exited: {}", herald.tail());
    herald.wait_ready().await;
}

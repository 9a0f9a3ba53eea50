//! A rolling restart of the three nodes, one at a time, while resends arrive at a
//! steady pace: every resend answers 200, and each is mailed exactly once
//! (docs/ARCHITECTURE.md, "Scaling out").

use std::time::{Duration, Instant};

use super::{begin, control, on_cluster, one_mail_per_200, per_status, Heal, Load, SHARED_POSTGRES};
use crate::harness::figure;

const USERS: usize = 3_000;
/// One resend every 30 ms (33 a second), each to a user of its own.
const PACE: Duration = Duration::from_millis(30);

#[actix_web::test]
async fn a_rolling_restart_of_the_three_nodes_during_steady_resends_loses_nothing_and_sends_nothing_twice() {
    // Arrange
    let mut fault = begin(SHARED_POSTGRES).await;
    let _heal = Heal;
    on_cluster(&mut fault, 1);
    let herald = fault.herald("rolling").await;
    let org = fault.org(&herald).await;
    let users = fault.users_with_codes(&org, "roll", USERS).await;
    let mut load = Load::new(&fault, &herald, &users, PACE);

    // Act: resends before, during and after each node's restart; a node stops
    // only once no quorum queue needs it for its majority (what operators check).
    load.run(Duration::from_secs(1), |_| false).await;
    let mut outages = Vec::new();
    for n in ["1", "2", "3"] {
        load.during(control(false, &["quorum-safe", n])).await;
        let stopped = Instant::now();
        load.during(control(false, &["stop", n])).await;
        load.during(control(false, &["start", n])).await;
        outages.push(stopped.elapsed());
    }
    load.run(Duration::from_secs(2), |_| false).await;
    let answers = load.finish().await;

    // Assert: every resend answered 200 within 5 s, each mailed exactly once.
    let statuses = per_status(&answers);
    let slowest = answers.iter().map(|(_, _, d)| *d).max().unwrap();
    let (lost, twice) = one_mail_per_200(&fault, "roll", &answers).await;
    figure(
        "cluster: rolling restart",
        &format!(
            "{} resends at 33/s while nodes 1, 2, 3 restarted in turn (down {}): statuses {statuses:?}, \
             slowest {:.0} ms; {lost} lost, {twice} twice",
            answers.len(),
            outages.iter().map(|d| format!("{:.1} s", d.as_secs_f64())).collect::<Vec<_>>().join(", "),
            slowest.as_secs_f64() * 1000.0
        ),
    );
    assert_eq!(statuses.get(&200).copied(), Some(answers.len()), "statuses (0: no answer in 10 s): {statuses:?}");
    assert!(slowest < Duration::from_secs(5), "a resend took {slowest:?}");
    assert_eq!((lost, twice), (0, 0), "lost, twice");
}

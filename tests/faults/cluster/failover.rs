//! PostgreSQL fails over while resends arrive: the primary stops, its synchronous
//! replica is promoted, the proxy herald connects through is switched. Every resend
//! answers 200 or 503 within 5 s, and every 200 is mailed exactly once: with
//! synchronous replication a 200 is committed on the replica too
//! (docs/ARCHITECTURE.md, "Scaling out").

use std::time::{Duration, Instant};

use sqlx::postgres::PgPoolOptions;

use super::leader::setting;
use super::proxy::Proxy;
use super::{begin, control, one_mail_per_200, per_status, Load};
use crate::harness::figure;

const USERS: usize = 1_500;
/// One resend every 25 ms (40 a second), each to a user of its own.
const PACE: Duration = Duration::from_millis(25);
/// The proxy's port, and the primary's and the replica's.
const PROXY: u16 = 5436;
const PRIMARY: u16 = 5434;
const REPLICA: u16 = 5435;

fn through_proxy(database: &str) -> String {
    format!("postgres://postgres@127.0.0.1:{PROXY}/{database}")
}

#[actix_web::test]
async fn a_failover_to_the_synchronous_replica_answers_200_or_503_and_mails_every_200_once() {
    // Arrange: a primary and its replica, herald's database on them through the proxy.
    control(true, &["up", &std::process::id().to_string()]).await;
    let mut fault = begin(&format!("postgres://postgres@127.0.0.1:{PRIMARY}")).await;
    let proxy = Proxy::start(PROXY, PRIMARY).await;
    let url = setting(&fault, "HERALD__DATABASE__URL");
    let database = url.rsplit('/').next().unwrap().to_string();
    fault.set("HERALD__DATABASE__URL", &through_proxy(&database));
    fault.pool = pool(&database);
    let herald = fault.herald("failover").await;
    let org = fault.org(&herald).await;
    let users = fault.users_with_codes(&org, "fo", USERS).await;
    let mut load = Load::new(&fault, &herald, &users, PACE);

    // Act: resends before, during and after the switch.
    load.run(Duration::from_secs(1), |_| false).await;
    let started = Instant::now();
    load.during(async {
        control(true, &["stop-primary"]).await;
        control(true, &["promote"]).await;
        proxy.switch(REPLICA);
    })
    .await;
    let switch = started.elapsed();
    let back = load.answers.len();
    // Until herald answered 20 resends in a row with 200: it recovered by itself.
    load.run(Duration::from_secs(30), |a| a.len() >= back + 20 && a[a.len() - 20..].iter().all(|(_, s, _)| *s == 200))
        .await;
    let answers = load.finish().await;

    // Assert: 200 or 503 only, none after 5 s; each 200 mailed once.
    fault.pool = pool(&database);
    let statuses = per_status(&answers);
    let slowest = answers.iter().map(|(_, _, d)| *d).max().unwrap();
    let (lost, twice) = one_mail_per_200(&fault, "fo", &answers).await;
    figure(
        "PostgreSQL failover",
        &format!(
            "{} resends at 40/s; primary stopped, replica promoted, proxy switched in {:.1} s: statuses \
             {statuses:?} (0 = no answer), slowest {:.0} ms; {lost} lost, {twice} twice",
            answers.len(),
            switch.as_secs_f64(),
            slowest.as_secs_f64() * 1000.0
        ),
    );
    let other: Vec<_> = answers.iter().filter(|(_, s, _)| *s != 200 && *s != 503).collect();
    assert!(other.is_empty(), "answers other than 200 and 503: {other:?}");
    assert!(slowest < Duration::from_secs(5), "a resend took {slowest:?}");
    assert_eq!((lost, twice), (0, 0), "lost, twice");
    drop(herald);
    drop(proxy);
    control(true, &["down"]).await;
}

fn pool(database: &str) -> sqlx::PgPool {
    PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(&through_proxy(database))
        .unwrap()
}

//! RabbitMQ gone or blocked under load: herald keeps answering from PostgreSQL, says
//! so on `/readyz`, and publishes everything once the broker is back
//! (docs/ARCHITECTURE.md, "Guarantees and how they are kept").

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;

use crate::harness::{control, eventually, figure, missing_and_twice, within, Fault};

#[actix_web::test]
async fn rabbitmq_stopped_5_s_mid_bulk_every_user_gets_exactly_one_invite() {
    // Arrange
    const USERS: usize = 2_000;
    let mut fault = Fault::begin().await;
    // Two messages of 100 deliveries in hand at a time: the rest of the bulk waits
    // in the broker when it stops, instead of in herald's prefetch.
    fault.set("HERALD__AMQP__PREFETCH", "2");
    let mut herald = fault.herald("broker-stop").await;
    let org = fault.org(&herald).await;
    fault.users_with_codes(&org, "stop", USERS).await;

    // Act: the broker stops for 5 s once a tenth of the mails are out.
    fault.start_job(&herald, &json!({"orgId": org, "allPending": true})).await;
    eventually("a tenth of the re-invites", Duration::from_secs(120), || async {
        (fault.smtp.received() >= USERS / 10).then_some(())
    })
    .await;
    let at_stop = fault.smtp.received();
    control("rabbit-stop").await;
    // The outage lasts until herald has seen it: `/readyz` says the broker is down.
    eventually("/readyz to say the broker is down", Duration::from_secs(30), || async {
        let (status, body) = fault.readyz(&herald).await;
        (status == 503 && body["broker"] == "down").then_some(())
    })
    .await;
    control("rabbit-start").await;
    let back = Instant::now();
    let at_start = fault.smtp.received();
    assert!(at_start < USERS, "the whole bulk was out before the broker came back: the outage tested nothing");

    // Assert: every user exactly one new invite, and herald never exited.
    let took = eventually("every user's re-invite", Duration::from_secs(90), || async {
        let (missing, _) = missing_and_twice(&fault.mails_per_recipient(), "stop", USERS);
        missing.is_empty().then(|| back.elapsed())
    })
    .await;
    fault.settled(Duration::from_secs(60)).await;
    let (missing, twice) = missing_and_twice(&fault.mails_per_recipient(), "stop", USERS);
    figure(
        "RabbitMQ stopped 5 s mid bulk",
        &format!(
            "{USERS} users, {at_stop} mails out when the stop began, {at_start} when it started again: every user had the invite {:.1} s after the \
             broker was back; {} missing, {} twice",
            took.as_secs_f64(),
            missing.len(),
            twice.len()
        ),
    );
    assert!(missing.is_empty() && twice.is_empty(), "missing {missing:?}, twice {twice:?}");
    assert!(herald.exited().is_none(), "herald exited: {}", herald.tail());
    herald.wait_ready().await;
    let status = herald.terminate().await;
    assert!(status.success(), "SIGTERM: {status}: {}", herald.tail());
}

#[actix_web::test]
async fn under_a_memory_alarm_resends_answer_200_at_once_and_are_all_delivered_after() {
    // Arrange: 100 users with a sent code.
    const USERS: usize = 100;
    let fault = Fault::begin().await;
    let herald = fault.herald("alarm").await;
    let org = fault.org(&herald).await;
    let users = fault.users_with_codes(&org, "alarm", USERS).await;

    // Act: the broker blocks publishers; every user is resent to, and half of them
    // a second time while their first delivery waits to be published.
    control("alarm").await;
    let second: Vec<&String> = users.iter().step_by(2).collect();
    let answers: Vec<(u16, Duration)> = futures_util::stream::iter(users.iter().chain(second.iter().copied()))
        .map(|u| fault.resend(&herald, u))
        .buffered(16)
        .collect()
        .await;
    let during_alarm = fault.smtp.received();
    // (A broker blocks a connection when it publishes: herald has published by now.)
    let blocked = within(Duration::from_secs(10), || async {
        let (status, body) = fault.readyz(&herald).await;
        (body["broker"] == "blocked").then_some((status, body))
    })
    .await;
    // What it said instead, for the figure and the assertion below.
    let readyz = match blocked {
        Some(r) => r,
        None => fault.readyz(&herald).await,
    };
    control("unalarm").await;

    // Assert: every resend answered 200 without waiting for the broker…
    let statuses: HashMap<u16, usize> = answers.iter().fold(HashMap::new(), |mut m, (s, _)| {
        *m.entry(*s).or_default() += 1;
        m
    });
    let slowest = answers.iter().map(|(_, d)| *d).max().unwrap();
    figure(
        "RabbitMQ memory alarm",
        &format!(
            "{} resends during the alarm: statuses {statuses:?}, slowest {:.0} ms; /readyz said {} {}; \
             {during_alarm} mails during the alarm",
            answers.len(),
            slowest.as_secs_f64() * 1000.0,
            readyz.0,
            readyz.1
        ),
    );
    assert_eq!(statuses, HashMap::from([(200, answers.len())]), "statuses (0: no answer in 10 s)");
    assert!(slowest < Duration::from_secs(5), "a resend took {slowest:?}");
    assert_eq!(readyz.1["broker"], "blocked", "/readyz during the alarm: {} {}", readyz.0, readyz.1);

    // …and once the alarm cleared, every user got exactly one mail: their newest code.
    eventually("every user's invite", Duration::from_secs(60), || async {
        let (missing, _) = missing_and_twice(&fault.mails_per_recipient(), "alarm", USERS);
        missing.is_empty().then_some(())
    })
    .await;
    fault.settled(Duration::from_secs(60)).await;
    let (missing, twice) = missing_and_twice(&fault.mails_per_recipient(), "alarm", USERS);
    assert!(missing.is_empty() && twice.is_empty(), "missing {missing:?}, twice {twice:?}");
    let newest: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT ON (user_id) id::text FROM deliveries ORDER BY user_id, id DESC")
            .fetch_all(&fault.pool)
            .await
            .unwrap();
    let mut delivered = fault.delivered_ids();
    delivered.sort();
    let mut newest = newest;
    newest.sort();
    assert_eq!(delivered, newest, "each mail is of the user's newest delivery");
    let (status, body) = fault.readyz(&herald).await;
    assert_eq!(status, 200, "{body}");
}

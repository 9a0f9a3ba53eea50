//! PostgreSQL stopped while resends arrive: herald answers each at once (200, or 503
//! while it cannot commit), sends one mail per 200, and recovers by itself
//! (docs/ARCHITECTURE.md, "Guarantees and how they are kept").

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;

use crate::harness::{control, eventually, figure, Fault, Herald};

const USERS: usize = 1_500;
/// One resend every 25 ms (40 a second), each to a user of its own.
const PACE: Duration = Duration::from_millis(25);

type Answer<'a> = Pin<Box<dyn Future<Output = (usize, (u16, Duration))> + 'a>>;

/// Resends at a steady pace, each to the next user, and keeps every answer.
struct Load<'a> {
    fault: &'a Fault,
    herald: &'a Herald,
    users: &'a [String],
    next: usize,
    in_flight: FuturesUnordered<Answer<'a>>,
    /// `(user index, status, time to answer)`, in the order the answers came.
    answers: Vec<(usize, u16, Duration)>,
}

impl<'a> Load<'a> {
    /// Sends for `duration`, or until `enough` says the answers so far suffice.
    async fn run(&mut self, duration: Duration, enough: impl Fn(&[(usize, u16, Duration)]) -> bool) {
        let end = Instant::now() + duration;
        let mut tick = tokio::time::interval(PACE);
        while Instant::now() < end && !enough(&self.answers) {
            tokio::select! {
                _ = tick.tick() => {
                    assert!(self.next < self.users.len(), "the load ran out of users");
                    let (fault, herald, i) = (self.fault, self.herald, self.next);
                    let user = &self.users[i];
                    self.in_flight.push(Box::pin(async move { (i, fault.resend(herald, user).await) }));
                    self.next += 1;
                }
                Some((i, (status, took))) = self.in_flight.next() => self.answers.push((i, status, took)),
            }
        }
    }

    /// Waits for the answers still owed.
    async fn drain(&mut self) {
        while let Some((i, (status, took))) = self.in_flight.next().await {
            self.answers.push((i, status, took));
        }
    }
}

// Fails today: while PostgreSQL is down a resend waits the pool's 5 s acquire
// timeout, and a grouped resend that failed so runs each request again alone and
// waits 5 s more (`invite::issue::after_failed_round`), so answers come after up to
// 10 s. Run it with `cargo test --test faults -- --ignored`.
#[ignore = "answers take up to 10 s while PostgreSQL is down (issue 12): a grouped resend reruns after the pool timeout"]
#[actix_web::test]
async fn postgres_stopped_10_s_each_resend_answers_200_or_503_at_once_and_each_200_gets_one_mail() {
    // Arrange
    let fault = Fault::begin().await;
    let mut herald = fault.herald("database").await;
    let org = fault.org(&herald).await;
    let users = fault.users_with_codes(&org, "pg", USERS).await;
    let mut load = Load {
        fault: &fault,
        herald: &herald,
        users: &users,
        next: 0,
        in_flight: FuturesUnordered::new(),
        answers: Vec::new(),
    };

    // Act: resends arrive before, during and after a 10 s stop of PostgreSQL.
    load.run(Duration::from_secs(1), |_| false).await;
    control("pg-stop").await;
    load.run(Duration::from_secs(10), |_| false).await;
    control("pg-start").await;
    let back = load.answers.len();
    // Until herald answered 20 resends in a row with 200: it recovered by itself.
    load.run(Duration::from_secs(30), |a| a.len() >= back + 20 && a[a.len() - 20..].iter().all(|(_, s, _)| *s == 200))
        .await;
    load.drain().await;
    let answers = std::mem::take(&mut load.answers);
    let sent = load.next;
    drop(load);

    // Assert: 200 or 503, never another status, never an answer after 5 s.
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for (_, s, _) in &answers {
        *statuses.entry(*s).or_default() += 1;
    }
    let slowest = answers.iter().map(|(_, _, d)| *d).max().unwrap();
    let over_5s = answers.iter().filter(|(_, _, d)| *d >= Duration::from_secs(5)).count();
    figure(
        "PostgreSQL stopped 10 s",
        &format!(
            "{sent} resends at 40/s: statuses {statuses:?} (0 = no answer), slowest {:.0} ms, {over_5s} at 5 s or more",
            slowest.as_secs_f64() * 1000.0
        ),
    );
    let other: Vec<&(usize, u16, Duration)> = answers.iter().filter(|(_, s, _)| *s != 200 && *s != 503).collect();
    assert!(other.is_empty(), "answers other than 200 and 503: {other:?}");
    assert_eq!(over_5s, 0, "answers that took 5 s or more (slowest {slowest:?})");
    assert!(herald.exited().is_none(), "herald exited: {}", herald.tail());

    // Every 200 gets exactly one mail; a 503 at most one (its commit may have
    // happened before the answer was lost); a user never resent to, none.
    eventually("a mail for every 200", Duration::from_secs(60), || async {
        let counts = fault.mails_per_recipient();
        let ok = answers
            .iter()
            .filter(|(_, s, _)| *s == 200)
            .all(|(i, _, _)| counts.contains_key(&Fault::address("pg", *i)));
        ok.then_some(())
    })
    .await;
    fault.settled(Duration::from_secs(60)).await;
    let counts = fault.mails_per_recipient();
    for (i, status, _) in &answers {
        let got = counts.get(&Fault::address("pg", *i)).copied().unwrap_or(0);
        match status {
            200 => assert_eq!(got, 1, "user {i} (200) got {got} mails"),
            _ => assert!(got <= 1, "user {i} ({status}) got {got} mails"),
        }
    }
    assert_eq!(counts.len(), answers.iter().filter(|(i, _, _)| counts.contains_key(&Fault::address("pg", *i))).count());
    herald.wait_ready().await;
}

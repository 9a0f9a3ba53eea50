//! herald past one machine (docs/ARCHITECTURE.md, "Scaling out"): on a three-node
//! RabbitMQ cluster of this binary's own (`scripts/rabbitmq-cluster`), with nodes
//! stopped mid bulk and restarted one at a time, with herald split into `api` and
//! `worker` processes, and on a PostgreSQL primary that fails over to its replica
//! (`scripts/pg-failover`, `proxy`). They take turns with the other fault tests (the
//! load of one never slows another); their databases are on the shared PostgreSQL,
//! which they never stop (the failover test's on its own primary and replica).

mod failover;
mod leader;
mod proxy;
mod rolling;
mod split;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;

use crate::harness::{Fault, Herald};

/// The AMQP ports of nodes 1, 2, 3.
pub const PORTS: [u16; 3] = [5674, 5675, 5676];

const CLUSTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/rabbitmq-cluster");
const FAILOVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-failover");

static UP: OnceLock<Result<(), String>> = OnceLock::new();

/// The shared PostgreSQL (never stopped by these tests).
pub const SHARED_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

/// One cluster test's world: its turn, a database on `root`, processes of at most
/// 6 connections each.
pub async fn begin(root: &str) -> Fault {
    let mut fault = Fault::begin_on(root).await;
    fault.set("HERALD__DATABASE__MAX_CONNECTIONS", "6");
    // A connection per request: a kept-alive connection that the server closes as a
    // request goes out fails that request unanswered, a race of HTTP/1.1 itself that
    // says nothing of the faults these tests make.
    fault.client =
        reqwest::Client::builder().timeout(Duration::from_secs(10)).pool_max_idle_per_host(0).build().unwrap();
    fault
}

/// The cluster's URLs, starting with node `first` (1..3).
pub fn urls(first: usize) -> String {
    (0..3)
        .map(|k| format!("amqp://guest:guest@127.0.0.1:{}/%2f", PORTS[(first - 1 + k) % 3]))
        .collect::<Vec<_>>()
        .join(",")
}

/// Starts the cluster once per run of this binary (stopped when it exits), and
/// points the processes `fault` starts after at it, nodes from `first` on, with
/// three replicas per queue.
pub fn on_cluster(fault: &mut Fault, first: usize) {
    let up = UP.get_or_init(|| script(CLUSTER, &["up", &std::process::id().to_string()]));
    if let Err(e) = up {
        panic!("the RabbitMQ cluster did not start: {e}");
    }
    fault.set("HERALD__AMQP__URLS", &urls(first));
    fault.set("HERALD__AMQP__QUORUM_REPLICAS", "3");
}

/// `rabbitmq-cluster ARGS…` or `pg-failover ARGS…`, asynchronously; its output.
pub async fn control(failover: bool, args: &[&str]) -> String {
    let out =
        tokio::process::Command::new(if failover { FAILOVER } else { CLUSTER }).args(args).output().await.unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The node (1..3) leading `queue`.
pub async fn leader(queue: &str) -> usize {
    leader_now(queue).await.unwrap_or_else(|node| panic!("leader of {queue}: {node:?}"))
}

/// The node (1..3) leading `queue`, or what the cluster said instead (nothing while
/// a new leader is being elected).
pub async fn leader_now(queue: &str) -> Result<usize, String> {
    let node = control(false, &["leader", queue]).await;
    match node.as_str() {
        "herald-c1@localhost" => Ok(1),
        "herald-c2@localhost" => Ok(2),
        "herald-c3@localhost" => Ok(3),
        _ => Err(node),
    }
}

/// Whatever a failed test left stopped, started again (the next test's cluster).
pub struct Heal;

impl Drop for Heal {
    fn drop(&mut self) {
        if std::thread::panicking() && UP.get().is_some() {
            let _ = script(CLUSTER, &["heal"]);
        }
    }
}

fn script(path: &str, args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new(path).args(args).output().map_err(|e| format!("{path}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}\n{}{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

type Answer<'a> = Pin<Box<dyn Future<Output = (usize, (u16, Duration))> + 'a>>;

/// Resends at a steady pace, each to the next user of `users`, keeping every answer.
pub struct Load<'a> {
    pub fault: &'a Fault,
    pub herald: &'a Herald,
    pub users: &'a [String],
    pub pace: Duration,
    pub next: usize,
    in_flight: FuturesUnordered<Answer<'a>>,
    /// `(user index, status, time to answer)`, in the order the answers came.
    pub answers: Vec<(usize, u16, Duration)>,
}

impl<'a> Load<'a> {
    pub fn new(fault: &'a Fault, herald: &'a Herald, users: &'a [String], pace: Duration) -> Self {
        Load { fault, herald, users, pace, next: 0, in_flight: FuturesUnordered::new(), answers: Vec::new() }
    }

    /// Sends while `during` runs (a stop, a restart…), and returns its output.
    pub async fn during<T>(&mut self, during: impl Future<Output = T>) -> T {
        let mut during = std::pin::pin!(during);
        let mut tick = tokio::time::interval(self.pace);
        loop {
            tokio::select! {
                out = &mut during => return out,
                _ = tick.tick() => self.send(),
                Some((i, (status, took))) = self.in_flight.next() => self.answers.push((i, status, took)),
            }
        }
    }

    /// Sends for `duration`, or until `enough` says the answers so far suffice.
    pub async fn run(&mut self, duration: Duration, enough: impl Fn(&[(usize, u16, Duration)]) -> bool) {
        let end = Instant::now() + duration;
        let mut tick = tokio::time::interval(self.pace);
        while Instant::now() < end && !enough(&self.answers) {
            tokio::select! {
                _ = tick.tick() => self.send(),
                Some((i, (status, took))) = self.in_flight.next() => self.answers.push((i, status, took)),
            }
        }
    }

    fn send(&mut self) {
        assert!(self.next < self.users.len(), "the load ran out of users");
        let (fault, herald, i) = (self.fault, self.herald, self.next);
        let user = &self.users[i];
        self.in_flight.push(Box::pin(async move { (i, fault.resend(herald, user).await) }));
        self.next += 1;
    }

    /// Waits for the answers still owed, and returns them all.
    pub async fn finish(mut self) -> Vec<(usize, u16, Duration)> {
        while let Some((i, (status, took))) = self.in_flight.next().await {
            self.answers.push((i, status, took));
        }
        self.answers
    }
}

/// Answers per status.
pub fn per_status(answers: &[(usize, u16, Duration)]) -> HashMap<u16, usize> {
    let mut statuses = HashMap::new();
    for (_, s, _) in answers {
        *statuses.entry(*s).or_default() += 1;
    }
    statuses
}

/// After the load: every user answered 200 got exactly one mail, every other user
/// at most one (a 503's commit may have happened before its answer was lost), and
/// no user never resent to got any. `(lost, twice)`.
pub async fn one_mail_per_200(fault: &Fault, local: &str, answers: &[(usize, u16, Duration)]) -> (usize, usize) {
    crate::harness::eventually("a mail for every 200", Duration::from_secs(120), || async {
        let counts = fault.mails_per_recipient();
        let ok = answers
            .iter()
            .filter(|(_, s, _)| *s == 200)
            .all(|(i, _, _)| counts.contains_key(&Fault::address(local, *i)));
        ok.then_some(())
    })
    .await;
    fault.settled(Duration::from_secs(90)).await;
    let counts = fault.mails_per_recipient();
    let (mut lost, mut twice) = (0, 0);
    for (i, status, _) in answers {
        let got = counts.get(&Fault::address(local, *i)).copied().unwrap_or(0);
        match (status, got) {
            (200, 0) => lost += 1,
            (_, 2..) => twice += 1,
            _ => {}
        }
    }
    let asked: usize = answers.iter().filter(|(i, _, _)| counts.contains_key(&Fault::address(local, *i))).count();
    assert_eq!(counts.len(), asked, "mails to users never resent to");
    (lost, twice)
}

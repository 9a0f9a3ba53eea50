//! The fault tests' harness: a test's turn on the fault instances (`instances`), the
//! real herald binary as processes (`process`), the test SMTP server behind a gate
//! that can take it down (`gate`), the users a test starts from (`seed`), and what a
//! user sees (mails, answers), counted.

mod gate;
mod instances;
mod process;
mod seed;

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

pub use gate::Gate;
pub use instances::control;
pub use process::Herald;

use crate::smtp::SmtpServer;

/// One fault test's world: its turn on the instances, its database and queue prefix
/// on them, its SMTP server, and the environment every herald process of it gets.
pub struct Fault {
    pub smtp: SmtpServer,
    pub gate: Gate,
    pub bootstrap: String,
    pub client: reqwest::Client,
    /// On the test's database (lazy: the first herald makes the database).
    pub pool: PgPool,
    database: String,
    prefix: String,
    key: [u8; 32],
    extra: Vec<(String, String)>,
    /// The PostgreSQL cluster's root URL (without a database).
    root: String,
    // Last: the next test's turn starts after everything above is gone.
    _turn: instances::Turn,
}

impl Fault {
    pub async fn begin() -> Fault {
        Fault::begin_on(instances::POSTGRES).await
    }

    /// Like `begin` (a turn: the load of one test never slows another), with the
    /// test's database on the PostgreSQL cluster at `root` (the cluster tests).
    pub async fn begin_on(root: &str) -> Fault {
        let turn = instances::exclusive().await;
        let hex = format!("{:016x}", rand::random::<u64>());
        let smtp = SmtpServer::start().await;
        let gate = Gate::start(smtp.port).await;
        let database = format!("herald_fault_{hex}");
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy(&format!("{root}/{database}"))
            .unwrap();
        Fault {
            smtp,
            gate,
            bootstrap: format!("bootstrap-{:032x}", rand::random::<u128>()),
            client: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap(),
            pool,
            database,
            prefix: format!("herald-fault-{hex}"),
            key: rand::random(),
            extra: Vec::new(),
            root: root.to_string(),
            _turn: turn,
        }
    }

    /// Sets one more `HERALD__…` key (or replaces one) for the processes started after.
    pub fn set(&mut self, key: &str, value: &str) {
        self.extra.retain(|(k, _)| k != key);
        self.extra.push((key.to_string(), value.to_string()));
    }

    /// What every herald of this test runs with: both roles, the fault instances,
    /// mail through the gate; transient failures retried after 1 s, then every 3 s,
    /// for a minute (an outage of a test never makes a delivery dead).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [
            ("HERALD__ROLES", "api,worker".to_string()),
            ("HERALD__DATABASE__URL", format!("{}/{}", self.root, self.database)),
            ("HERALD__AMQP__URL", instances::AMQP.to_string()),
            ("HERALD__AMQP__PREFIX", self.prefix.clone()),
            ("HERALD__AUTH__BOOTSTRAP_TOKEN", self.bootstrap.clone()),
            ("HERALD__CRYPTO__KEY", base64::engine::general_purpose::STANDARD.encode(self.key)),
            ("HERALD__EMAIL__TRANSPORT", "smtp".to_string()),
            ("HERALD__EMAIL__SMTP_URL", self.gate.url()),
            ("HERALD__DELIVERY__RETRY_DELAYS", "1s,3s".to_string()),
            ("HERALD__DELIVERY__MAX_ATTEMPTS", "20".to_string()),
            ("HERALD__LOG__LEVEL", "warn".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in &self.extra {
            env.retain(|(e, _)| e != k);
            env.push((k.clone(), v.clone()));
        }
        env
    }

    /// Starts one more herald process on this test's state.
    pub async fn herald(&self, name: &str) -> Herald {
        Herald::start(name, self.env()).await
    }

    /// `POST /v2/users/{user}/invite_code/resend` through `herald`: the status (0 when
    /// no answer came) and how long the answer took.
    pub async fn resend(&self, herald: &Herald, user: &str) -> (u16, Duration) {
        let started = Instant::now();
        let resp = self
            .client
            .post(herald.url(&format!("/v2/users/{user}/invite_code/resend")))
            .bearer_auth(&self.bootstrap)
            .json(&json!({}))
            .send()
            .await;
        (resp.map(|r| r.status().as_u16()).unwrap_or(0), started.elapsed())
    }

    /// `POST /admin/v1/bulk/resend` through `herald`: asserts 202, returns the job id.
    pub async fn start_job(&self, herald: &Herald, body: &Value) -> String {
        let resp =
            self.client.post(herald.url("/admin/v1/bulk/resend")).bearer_auth(&self.bootstrap).json(body).send().await;
        let resp = resp.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 202, "{body}");
        body["jobId"].as_str().expect("jobId").to_string()
    }

    /// `/readyz` through `herald`: its status and body.
    pub async fn readyz(&self, herald: &Herald) -> (u16, Value) {
        let resp = self.client.get(herald.url("/readyz")).timeout(Duration::from_secs(5)).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Mails received per recipient.
    pub fn mails_per_recipient(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for m in self.smtp.mails() {
            for to in m.to {
                *counts.entry(to.to_ascii_lowercase()).or_default() += 1;
            }
        }
        counts
    }

    /// The delivery ids of the mails received (from each `Message-ID`,
    /// `<delivery-id.invite@domain>`), one per mail.
    pub fn delivered_ids(&self) -> Vec<String> {
        self.smtp
            .mails()
            .iter()
            .map(|m| {
                let id = m.header("Message-ID").unwrap_or_default();
                id.trim_start_matches('<').split(".invite@").next().unwrap_or_default().to_string()
            })
            .collect()
    }

    /// Deliveries not yet in a final status.
    pub async fn unfinished(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status IN ('queued', 'sending', 'retrying')")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Waits until every delivery is final and every job has all its results: then
    /// no more mail can come (a mail is sent only for a delivery not yet final).
    pub async fn settled(&self, timeout: Duration) {
        eventually("every delivery final and every job done", timeout, || async {
            let jobs_open: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM bulk_jobs j WHERE (SELECT count(*) FROM bulk_results r WHERE r.job_id = j.id) < j.total",
            )
            .fetch_one(&self.pool)
            .await
            .unwrap();
            (self.unfinished().await == 0 && jobs_open == 0).then_some(())
        })
        .await;
    }
}

impl Drop for Fault {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: database {} and queues {}.* stay until the run ends", self.database, self.prefix);
            return;
        }
        // A thread with its own runtime: this one cannot block on itself.
        let name = self.database.clone();
        let root = self.root.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let Ok(admin) = sqlx::PgPool::connect(&format!("{root}/postgres")).await else {
                    return;
                };
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&admin).await;
                admin.close().await;
            });
        })
        .join();
    }
}

/// Asks `probe` every 50 ms until it answers `Some`, and returns that; panics with
/// `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match within(timeout, probe).await {
        Some(v) => v,
        None => panic!("waited {timeout:?} in vain for {what}"),
    }
}

/// Asks `probe` every 50 ms until it answers `Some`, and returns that, or `None`
/// once `timeout` passed: for a test that reports how long a fact took, or what it
/// saw instead, before it asserts.
pub async fn within<T, F, Fut>(timeout: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Users of `local` (0..n) without a mail, and those with more than one (with
/// their count).
pub fn missing_and_twice(counts: &HashMap<String, usize>, local: &str, n: usize) -> (Vec<usize>, Vec<(usize, usize)>) {
    let mut missing = Vec::new();
    let mut twice = Vec::new();
    for i in 0..n {
        match counts.get(&Fault::address(local, i)).copied().unwrap_or(0) {
            0 => missing.push(i),
            1 => {}
            c => twice.push((i, c)),
        }
    }
    (missing, twice)
}

/// Prints a measured figure and keeps it in `target/tmp/fault-figures.txt` (the
/// README's "What herald survives" quotes them).
pub fn figure(test: &str, text: &str) {
    use std::io::Write;
    println!("[{test}] {text}");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fault-figures.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{} [{test}] {text}", chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"));
    }
}

//! Waiting for facts, not for time: a test that sleeps and then asserts "nothing more
//! arrived" passes on a slow machine for the wrong reason and fails on a loaded one.
//! Each helper here polls for a fact and fails the test with what it saw after `WAIT`.
//! `wait_until_expired` waits for the database's clock, the one herald compares
//! expiries with, to pass the expiry.

use std::future::Future;
use std::time::{Duration, Instant};

use herald::domain::DeliveryStatus;
use herald::queue::Topology;
use lapin::Connection;

use super::app::TestApp;
use super::broker::{amqp, drain_queue, ready_messages, unacked_messages, Taken};

/// How long anything asynchronous may take before a test gives up.
pub const WAIT: Duration = Duration::from_secs(30);

/// How often a waiting helper looks again.
pub(super) const POLL: Duration = Duration::from_millis(50);

/// Asks `probe` every 50 ms until it answers `Some`, and returns that; panics with
/// `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "waited {timeout:?} in vain for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until herald has nothing left to do for this test: no delivery of the test's
/// database is queued, sending or retrying, and no work queue of its prefix holds a
/// ready or unacknowledged message (the dead queue may hold parked ones). After it, a
/// count is final: "nothing more arrived" is `settled`, then exactly N.
///
/// Work moves between the three places (a row is published, a message is taken, a
/// retry is published before its original is acked), so one look at each in turn can
/// miss a piece in transit; two quiet looks in a row cannot both miss it.
pub async fn settled(app: &TestApp) {
    let topology = Topology::new(&app.settings.amqp.prefix, &app.settings.delivery.retry_delays);
    let conn = amqp().await;
    let deadline = Instant::now() + WAIT;
    let mut quiet = 0;
    while quiet < 2 {
        match at_work(app, &conn, &topology).await {
            None => quiet += 1,
            Some(what) => {
                quiet = 0;
                assert!(Instant::now() < deadline, "herald did not settle in {WAIT:?}: {what}");
                tokio::time::sleep(POLL).await;
            }
        }
    }
    let _ = conn.close(200, "settled".into()).await;
}

/// What herald still has at work for this test, if anything. The cheap looks go
/// first: `rabbitmqctl` costs half a second.
async fn at_work(app: &TestApp, conn: &Connection, topology: &Topology) -> Option<String> {
    let unfinished = [DeliveryStatus::Queued, DeliveryStatus::Sending, DeliveryStatus::Retrying].map(|s| s.as_str());
    let deliveries: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM deliveries WHERE status = ANY($1) GROUP BY status")
            .bind(&unfinished[..])
            .fetch_all(&app.pool)
            .await
            .unwrap();
    if !deliveries.is_empty() {
        return Some(format!("deliveries {deliveries:?}"));
    }
    let ready = ready_messages(conn, topology).await;
    if !ready.is_empty() {
        return Some(format!("ready messages {ready:?}"));
    }
    let unacked = unacked_messages(&topology.prefix).await;
    (unacked > 0).then(|| format!("{unacked} unacknowledged messages"))
}

/// What herald parked in the test's dead queue, taken from it once herald settled
/// (a message is parked before its original is acked, so none is still on its way).
pub async fn parked(app: &TestApp, conn: &Connection) -> Vec<Taken> {
    settled(app).await;
    drain_queue(conn, &format!("{}.dead", app.settings.amqp.prefix)).await
}

/// Waits until something that lives `ttl` from now (a code, a token) has expired by
/// the database's clock, which herald compares expiries with.
pub async fn wait_until_expired(pool: &sqlx::PgPool, ttl: Duration) {
    let until: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now() + make_interval(secs => $1)")
        .bind(ttl.as_secs_f64())
        .fetch_one(pool)
        .await
        .unwrap();
    eventually("the expiry to pass on the database's clock", ttl + WAIT, || async {
        let past: bool = sqlx::query_scalar("SELECT clock_timestamp() > $1").bind(until).fetch_one(pool).await.unwrap();
        past.then_some(())
    })
    .await;
}

/// `(status, attempts)` of every delivery of `user`, oldest first.
pub async fn statuses(app: &TestApp, user: &str) -> Vec<(String, i32)> {
    sqlx::query_as("SELECT status, attempts FROM deliveries WHERE user_id = $1 ORDER BY id")
        .bind(user)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

/// Waits until the newest delivery of `user` has `status`; returns its id and
/// attempts.
async fn newest_with_status(app: &TestApp, user: &str, status: &str) -> (String, i32) {
    eventually(&format!("a {status} delivery for {user}"), WAIT, || async {
        let newest: Option<(String, String, i32)> = sqlx::query_as(
            "SELECT id::text, status, attempts FROM deliveries WHERE user_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(user)
        .fetch_optional(&app.pool)
        .await
        .unwrap();
        newest.filter(|(_, s, _)| s == status).map(|(id, _, attempts)| (id, attempts))
    })
    .await
}

/// Waits until the newest delivery of `user` has `status`; returns its id.
pub async fn wait_status(app: &TestApp, user: &str, status: &str) -> String {
    newest_with_status(app, user, status).await.0
}

/// Waits until the newest delivery of `user` has `status`; returns its attempts.
pub async fn wait_attempts(app: &TestApp, user: &str, status: &str) -> i32 {
    newest_with_status(app, user, status).await.1
}

/// Waits until `/readyz` says the database and the broker answer: a job is
/// published before its 202, so a job posted while herald is still connecting to
/// the broker is refused with 503.
pub async fn wait_ready(app: &TestApp) {
    eventually("herald to be ready", WAIT, || async {
        let resp = app.client.get(app.url("/readyz")).send().await.unwrap();
        (resp.status().as_u16() == 200).then_some(())
    })
    .await;
}

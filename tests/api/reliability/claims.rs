//! Claims and their holders (docs/ARCHITECTURE.md, "Guarantees and how they are
//! kept"): a claim of a live process holds, one of a process known dead is taken
//! over at once (not when its 90 s lease ends), an outage of the database itself
//! kills nobody, a late attempt never overwrites a later one, and a delivery in
//! work keeps its lease while its process lives.

use std::time::Duration;

use chrono::Utc;
use herald::domain::{AttemptOutcome, DeliveryStatus};
use herald::store::deliveries::{claim_many, AttemptRecord, Claim, Holder};
use herald::store::delivery_log::record_attempts;
use sqlx::PgPool;

use super::fixture::{process_row, queued_delivery, quiet_database, row};
use crate::helpers::{eventually, WAIT};

const DEAD_AFTER: Duration = Duration::from_secs(5);

fn by(process: i64) -> Holder {
    Holder { process, dead_after: DEAD_AFTER }
}

/// The claim's word for one delivery, and its attempt number when claimed.
async fn claim(pool: &PgPool, id: i64, holder: Holder) -> (String, i32) {
    let mut found = claim_many(pool, &[id], chrono::Duration::seconds(90), holder).await.unwrap();
    match found.pop().map(|(_, c)| c) {
        Some(Claim::Claimed(ctx)) => ("claimed".into(), ctx.attempts),
        Some(other) => (format!("{other:?}"), 0),
        None => ("missing".into(), 0),
    }
}

async fn silence(pool: &PgPool, process: i64, secs: f64) {
    sqlx::query("UPDATE herald_processes SET heartbeat_at = now() - make_interval(secs => $2) WHERE id = $1")
        .bind(process)
        .bind(secs)
        .execute(pool)
        .await
        .unwrap();
}

fn sent(id: i64, attempt: i32) -> AttemptRecord {
    AttemptRecord {
        delivery_id: id,
        attempt,
        started_at: Utc::now(),
        outcome: AttemptOutcome::Sent,
        error: None,
        duration_ms: 1,
        status: DeliveryStatus::Sent,
        next_attempt_at: None,
        provider_message_id: None,
    }
}

#[actix_web::test]
async fn a_claim_of_a_live_process_holds_and_one_of_a_dead_process_is_taken_over_at_once() {
    let (_db, pool) = quiet_database().await;
    let id = queued_delivery(&pool).await;
    let (holder, other) = (process_row(&pool, 1, 0.0).await, process_row(&pool, 2, 0.0).await);

    assert_eq!(claim(&pool, id, by(holder)).await, ("claimed".into(), 1));
    assert_eq!(row(&pool, id).await, ("sending".into(), 1, Some(holder)));
    assert_eq!(claim(&pool, id, by(other)).await.0, "Leased", "a live holder keeps its claim");

    // The holder stops beating (kill -9): past `dead_after` its claim is taken
    // over, though the lease it took has 90 s to run.
    silence(&pool, holder, DEAD_AFTER.as_secs_f64() + 1.0).await;
    assert_eq!(claim(&pool, id, by(other)).await, ("claimed".into(), 2));
    assert_eq!(row(&pool, id).await, ("sending".into(), 2, Some(other)));
}

#[actix_web::test]
async fn an_outage_of_the_database_itself_makes_no_process_look_dead() {
    let (_db, pool) = quiet_database().await;
    let id = queued_delivery(&pool).await;
    let holder = process_row(&pool, 1, 0.0).await;
    assert_eq!(claim(&pool, id, by(holder)).await.0, "claimed");

    // Everybody was silent (the database was down); the first process back has
    // beaten for a moment only: no evidence yet that the holder could have beaten.
    silence(&pool, holder, DEAD_AFTER.as_secs_f64() + 1.0).await;
    let back: i64 =
        sqlx::query_scalar("INSERT INTO herald_processes (node, host, pid) VALUES (2, 'here', 2) RETURNING id")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(claim(&pool, id, by(back)).await.0, "Leased");
}

#[actix_web::test]
async fn an_attempt_recorded_after_its_claim_was_taken_over_changes_nothing() {
    let (_db, pool) = quiet_database().await;
    let id = queued_delivery(&pool).await;
    let (slow, other) = (process_row(&pool, 1, 0.0).await, process_row(&pool, 2, 0.0).await);
    assert_eq!(claim(&pool, id, by(slow)).await, ("claimed".into(), 1));
    silence(&pool, slow, DEAD_AFTER.as_secs_f64() + 1.0).await;
    assert_eq!(claim(&pool, id, by(other)).await, ("claimed".into(), 2));

    // Attempt 1 ends late: its record is refused, the row stays attempt 2's.
    assert!(record_attempts(&pool, &[sent(id, 1)]).await.unwrap().is_empty());
    assert_eq!(row(&pool, id).await, ("sending".into(), 2, Some(other)));

    assert_eq!(record_attempts(&pool, &[sent(id, 2)]).await.unwrap(), vec![id]);
    // Repeating a record (its commit was unknown) writes nothing more.
    assert!(record_attempts(&pool, &[sent(id, 2)]).await.unwrap().is_empty());
    assert_eq!(row(&pool, id).await, ("sent".into(), 2, None));
    let logged: Vec<i32> = sqlx::query_scalar("SELECT attempt FROM delivery_attempts WHERE delivery_id = $1")
        .bind(id)
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(logged, vec![2]);
}

#[actix_web::test]
async fn a_delivery_in_work_keeps_its_lease_while_its_process_lives() {
    let (db, pool) = quiet_database().await;
    let id = queued_delivery(&pool).await;
    let lease = herald::liveness::lease(&pool, &db.url, Duration::from_secs(1), Duration::from_secs(60)).await.unwrap();
    let me = Holder { process: lease.liveness.process(), dead_after: Duration::from_secs(1) };
    // A one-second lease, as if the send waited long for an SMTP connection.
    let found = claim_many(&pool, &[id], chrono::Duration::seconds(1), me).await.unwrap();
    assert!(matches!(found[0].1, Claim::Claimed(_)));
    let _held = lease.liveness.hold(id);

    eventually("the heartbeat to extend the lease", WAIT, || async {
        let ahead: bool =
            sqlx::query_scalar("SELECT lease_until > now() + interval '30 seconds' FROM deliveries WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
        ahead.then_some(())
    })
    .await;
    assert_eq!(row(&pool, id).await, ("sending".into(), 1, Some(me.process)));
}

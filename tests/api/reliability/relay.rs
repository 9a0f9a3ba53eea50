//! The outbox relay's claim (docs/ARCHITECTURE.md, "Guarantees and how they are
//! kept": a blocked broker): rows are claimed by a committed lease before anything is
//! published, so no row lock is held while the broker is waited for, a resend that
//! supersedes a row being published does not wait, and a claim whose publish was
//! not confirmed is handed back or runs out.

use std::time::Duration;

use chrono::Utc;
use herald::store::deliveries::end_waiting;
use herald::store::outbox::{hand_back_stranded, mark_published, release, take_unpublished};
use sqlx::PgPool;

use super::fixture::{process_row, queued_delivery, quiet_database, row};
use crate::helpers::{eventually, WAIT};

async fn taken(pool: &PgPool, lease: Duration) -> Vec<i64> {
    take_unpublished(pool, 100, lease).await.unwrap().into_iter().map(|u| u.id).collect()
}

#[actix_web::test]
async fn rows_being_published_carry_a_committed_lease_and_lock_nothing() {
    let (_db, pool) = quiet_database().await;
    let id = queued_delivery(&pool).await;

    assert_eq!(taken(&pool, Duration::from_secs(30)).await, vec![id]);

    // The claim is committed: the row shows its lease, and another relay skips it.
    let leased: bool = sqlx::query_scalar("SELECT publishing_until > now() FROM deliveries WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(leased);
    assert!(taken(&pool, Duration::from_secs(30)).await.is_empty());

    // While the broker is waited for, a resend supersedes the row without waiting
    // on it (a lock held across the publish would make this time out).
    let user: String =
        sqlx::query_scalar("SELECT user_id FROM deliveries WHERE id = $1").bind(id).fetch_one(&pool).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL lock_timeout = '1s'").execute(&mut *tx).await.unwrap();
    assert_eq!(end_waiting(&mut tx, &user, "superseded", Utc::now()).await.unwrap(), 1);
    tx.commit().await.unwrap();

    // The confirm that comes afterwards changes nothing the resend decided.
    mark_published(&pool, &[id]).await.unwrap();
    assert_eq!(row(&pool, id).await.0, "superseded");
}

#[actix_web::test]
async fn an_unconfirmed_claim_is_handed_back_or_runs_out() {
    let (_db, pool) = quiet_database().await;
    let id = queued_delivery(&pool).await;

    assert_eq!(taken(&pool, Duration::from_secs(30)).await, vec![id]);
    release(&pool, &[id]).await.unwrap();
    assert_eq!(taken(&pool, Duration::from_millis(200)).await, vec![id], "handed back, taken again");

    // A relay that died holding it: the next one takes it once the claim runs out.
    let again = eventually("the claim to run out", WAIT, || async {
        let t = taken(&pool, Duration::from_secs(30)).await;
        (!t.is_empty()).then_some(t)
    })
    .await;
    assert_eq!(again, vec![id]);
    mark_published(&pool, &[id]).await.unwrap();
    assert!(taken(&pool, Duration::from_secs(30)).await.is_empty(), "a published row is not taken");
}

#[actix_web::test]
async fn the_sweeper_hands_back_a_dead_holders_row_and_ends_one_that_outlived_every_attempt() {
    let (_db, pool) = quiet_database().await;
    let (again, exhausted) = (queued_delivery(&pool).await, queued_delivery(&pool).await);
    let dead = process_row(&pool, 1, 60.0).await;
    // The sweeping process itself beats: the evidence that the database is
    // reachable, without which nobody counts as dead.
    process_row(&pool, 2, 0.0).await;
    // Both claimed by a process that died; the second at its last attempt.
    for (id, attempts) in [(again, 1), (exhausted, 3)] {
        sqlx::query(
            "UPDATE deliveries SET status = 'sending', attempts = $2, claimed_by = $3, published_at = now(),
                    lease_until = now() + interval '90 seconds'
             WHERE id = $1",
        )
        .bind(id)
        .bind(attempts)
        .bind(dead)
        .execute(&pool)
        .await
        .unwrap();
    }

    let mut handed = hand_back_stranded(&pool, Duration::from_secs(5), Duration::from_secs(600), 3, 100).await.unwrap();
    handed.sort();
    let mut both = vec![again, exhausted];
    both.sort();
    assert_eq!(handed, both);

    assert_eq!(row(&pool, again).await, ("queued".into(), 1, None));
    assert_eq!(taken(&pool, Duration::from_secs(30)).await, vec![again], "back in the outbox");
    assert_eq!(row(&pool, exhausted).await.0, "dead");
    // Nothing is stranded any more.
    assert!(hand_back_stranded(&pool, Duration::from_secs(5), Duration::from_secs(600), 3, 100)
        .await
        .unwrap()
        .is_empty());
}

#[actix_web::test]
async fn a_row_handed_to_the_relay_of_a_dead_process_goes_back_to_the_outbox_long_before_its_hold_ends() {
    let (_db, pool) = quiet_database().await;
    let (of_dead, of_live) = (queued_delivery(&pool).await, queued_delivery(&pool).await);
    let dead = process_row(&pool, 1, 60.0).await;
    let live = process_row(&pool, 2, 0.0).await;
    // Both written held by a process's relay for ten minutes and never published.
    for (id, holder) in [(of_dead, dead), (of_live, live)] {
        sqlx::query(
            "UPDATE deliveries SET claimed_by = $2, publishing_until = now() + interval '10 minutes' WHERE id = $1",
        )
        .bind(id)
        .bind(holder)
        .execute(&pool)
        .await
        .unwrap();
    }
    assert!(taken(&pool, Duration::from_secs(30)).await.is_empty(), "held rows are not the sweep's");

    let handed = hand_back_stranded(&pool, Duration::from_secs(5), Duration::from_secs(600), 3, 100).await.unwrap();

    assert_eq!(handed, vec![of_dead], "only the dead process's row");
    assert_eq!(row(&pool, of_dead).await, ("queued".into(), 0, None));
    assert_eq!(taken(&pool, Duration::from_secs(30)).await, vec![of_dead], "back in the outbox");
}

//! Snowflake node numbers leased by process rows with a heartbeat (docs/ARCHITECTURE.md,
//! "Guarantees and how they are kept"): two live processes never share one, the
//! number of a dead process is given out again, a process that lost its number
//! while silent learns it at its next beat, and read-only commands take none.

use std::time::Duration;

use herald::store::processes::{beat, Beat};

use super::fixture::{process_row, quiet_database};

const DEAD_AFTER: Duration = Duration::from_secs(6);

async fn lease(pool: &sqlx::PgPool, url: &str) -> herald::liveness::ProcessLease {
    herald::liveness::lease(pool, url, DEAD_AFTER, Duration::from_secs(90)).await.unwrap()
}

async fn processes(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM herald_processes").fetch_one(pool).await.unwrap()
}

#[actix_web::test]
async fn live_processes_get_distinct_nodes_and_a_dead_ones_node_is_given_out_again() {
    let (db, pool) = quiet_database().await;
    // Node 0 was held by a process silent for a minute: dead, its number free.
    process_row(&pool, 0, 60.0).await;

    let (a, b) = (lease(&pool, &db.url).await, lease(&pool, &db.url).await);
    assert_eq!((a.ids.node(), b.ids.node()), (0, 1));

    // A clean end frees the number at once.
    a.end(&pool).await;
    let c = lease(&pool, &db.url).await;
    assert_eq!(c.ids.node(), 0);
    assert_ne!(c.liveness.process(), b.liveness.process());
}

#[actix_web::test]
async fn a_process_whose_node_was_taken_while_it_was_silent_learns_it_at_its_next_beat() {
    let (_db, pool) = quiet_database().await;
    let silent = process_row(&pool, 5, 60.0).await;
    let taker = process_row(&pool, 5, 0.0).await;
    let mut conn = pool.acquire().await.unwrap();

    assert_eq!(beat(&mut conn, silent, Duration::from_secs(2), DEAD_AFTER).await.unwrap(), Beat::Lost);
    assert_eq!(beat(&mut conn, taker, Duration::from_secs(2), DEAD_AFTER).await.unwrap(), Beat::Kept);
}

#[actix_web::test]
async fn read_only_commands_take_no_node() {
    let (db, pool) = quiet_database().await;
    let mut settings = herald::config::Settings::defaults();
    settings.database.url = db.url.clone();

    let s = herald::startup::read_only_services(&settings, pool.clone()).unwrap();
    assert!(s.lease.is_none());
    assert_eq!(s.ids.node(), herald::domain::id::READ_ONLY_NODE);
    assert_eq!(processes(&pool).await, 0);

    let s = herald::startup::services(&settings, pool.clone()).await.unwrap();
    assert!(s.lease.is_some());
    assert_eq!(processes(&pool).await, 1);
}

//! A delivery row and what its claim joins (organization, user, current code),
//! written straight into a fresh database: for tests that drive the store functions
//! themselves, with no herald (and so no sweeper or relay) on that database.

use sqlx::PgPool;

use crate::helpers::TestDatabase;

/// A migrated database of the test's own, with nothing running on it.
pub async fn quiet_database() -> (TestDatabase, PgPool) {
    TestDatabase::open().await
}

/// A `queued` delivery of a fresh user whose current code it carries; its id.
pub async fn queued_delivery(pool: &PgPool) -> i64 {
    let n: i64 = rand::random::<u32>() as i64;
    let (org, user, delivery) = (format!("org{n}"), format!("user{n}"), 1_000_000 + n);
    sqlx::query(
        "INSERT INTO organizations (id, name, login_methods, sequence, created_at, changed_at)
         VALUES ($1, 'Acme', '{}', 1, now(), now())",
    )
    .bind(&org)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO users (id, org_id, username, given_name, family_name, display_name, email, sequence,
                            created_at, changed_at)
         VALUES ($1, $2, $1, 'Ada', 'Lovelace', 'Ada Lovelace', 'ada@example.com', 1, now(), now())",
    )
    .bind(&user)
    .bind(&org)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO invite_codes (user_id, code_encrypted, expires_at, url_template, application_name, channel,
                                   returned, event_sequence, created_at)
         VALUES ($1, '\\x00', now() + interval '1 hour', 'https://x/{{.Code}}', 'Acme', 'email', false, 1, now())",
    )
    .bind(&user)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "WITH d AS (
             INSERT INTO deliveries (id, user_id, org_id, channel, recipient, template, locale, status,
                                     code_event_sequence, created_at, updated_at)
             VALUES ($1, $2, $3, 'email', 'ada@example.com', 'invite_user', 'en', 'queued', 1, now(), now())
             RETURNING id
         ), opened AS (
             INSERT INTO delivery_open (id) SELECT id FROM d
         )
         INSERT INTO delivery_outbox (id) SELECT id FROM d",
    )
    .bind(delivery)
    .bind(&user)
    .bind(&org)
    .execute(pool)
    .await
    .unwrap();
    delivery
}

/// A process row as a process that stopped beating `silent_secs` ago leaves it.
pub async fn process_row(pool: &PgPool, node: i32, silent_secs: f64) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO herald_processes (node, host, pid, started_at, heartbeat_at, alive_since)
         VALUES ($1, 'elsewhere', 1, now() - interval '1 hour', now() - make_interval(secs => $2),
                 now() - interval '1 hour')
         RETURNING id",
    )
    .bind(node)
    .bind(silent_secs)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// `(status, attempts, claimed_by)` of a delivery.
pub async fn row(pool: &PgPool, id: i64) -> (String, i32, Option<i64>) {
    sqlx::query_as("SELECT status, attempts, claimed_by FROM deliveries WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

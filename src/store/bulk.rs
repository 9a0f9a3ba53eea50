//! `bulk_jobs` and `bulk_results`.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    pub id: String,
    pub org_id: String,
    pub total: i32,
    pub created_by: String,
    pub creator_org_id: Option<String>,
    pub creator_permissions: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
}

pub async fn insert_job(pool: &PgPool, j: &JobRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO bulk_jobs (id, org_id, total, created_by, creator_org_id, creator_permissions, created_at)
         VALUES ($1, $2, 0, $3, $4, $5, $6)",
    )
    .bind(&j.id)
    .bind(&j.org_id)
    .bind(&j.created_by)
    .bind(&j.creator_org_id)
    .bind(&j.creator_permissions)
    .bind(j.created_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Every request of the job is on the broker: `total` is final.
pub async fn mark_published(pool: &PgPool, id: &str, total: i32) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE bulk_jobs SET total = $2, published_at = now() WHERE id = $1")
        .bind(id)
        .bind(total)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn get_job(pool: &PgPool, id: &str) -> Result<Option<JobRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM bulk_jobs WHERE id = $1").bind(id).fetch_optional(pool).await
}

/// Records refused requests of bulk jobs: `(job id, user id, error id)`. A
/// request already recorded keeps its first outcome.
pub async fn record_failures(conn: &mut PgConnection, failures: &[(&str, &str, &str)]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO bulk_results (job_id, user_id, error_id, at)
         SELECT job_id, user_id, error_id, now() FROM unnest($1::text[], $2::text[], $3::text[])
             AS f(job_id, user_id, error_id)
         ON CONFLICT (job_id, user_id) DO NOTHING",
    )
    .bind(failures.iter().map(|f| f.0).collect::<Vec<_>>())
    .bind(failures.iter().map(|f| f.1).collect::<Vec<_>>())
    .bind(failures.iter().map(|f| f.2).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// `(error id or None for success, count, last at)` per outcome of the job.
pub async fn result_counts(
    pool: &PgPool,
    job_id: &str,
) -> Result<Vec<(Option<String>, i64, Option<DateTime<Utc>>)>, sqlx::Error> {
    sqlx::query_as("SELECT error_id, count(*), max(at) FROM bulk_results WHERE job_id = $1 GROUP BY error_id")
        .bind(job_id)
        .fetch_all(pool)
        .await
}

/// The job's deliveries by status (what the command line shows as "sent").
pub async fn delivery_counts(pool: &PgPool, job_id: &str) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT status, count(*) FROM deliveries WHERE job_id = $1 GROUP BY status")
        .bind(job_id)
        .fetch_all(pool)
        .await
}

/// One page of the users of an organization whose invite was sent and not yet
/// verified, after `after` in id order. Pages (keyset, not OFFSET) rather than one
/// long query: no statement stays open while a 100,000-user job is published, and
/// memory holds one page.
pub async fn pending_users_page(
    pool: &PgPool,
    org_id: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT u.id FROM users u JOIN invite_codes c ON c.user_id = u.id
         WHERE u.org_id = $1 AND u.state = 'active' AND NOT u.initialized AND NOT c.returned
           AND ($2::text IS NULL OR u.id > $2)
         ORDER BY u.id
         LIMIT $3",
    )
    .bind(org_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

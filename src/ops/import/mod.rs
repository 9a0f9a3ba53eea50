//! `herald users import FILE --org ID`: many human users into one organization.
//!
//! The file is CSV with a header row, or JSON lines (one object per line); its first
//! non-empty line tells which (`{` starts JSON). It is read line by line, never
//! whole, so memory grows with the batch, not with the file (plus a set of the
//! usernames seen, to catch duplicates).
//!
//! Each row is checked by the rules `POST /v2/users/human` applies to one user
//! ([`crate::directory::Directory::create_human`]). A bad row is reported with its
//! line number and skipped; the rest are imported. Good rows go in batches of
//! [`BATCH_ROWS`], one transaction each: the users in one statement, then their
//! `user.human.added` events in another. A username given twice in the file, or
//! already taken in the organization, makes a bad row too.
//!
//! - [`lines`]: the file's lines, and a line's CSV or JSON split into a row's fields;
//! - [`rows`]: a row's fields, the CSV columns, and the checks of one row;
//! - this module: the import itself (batches, transactions) and its report.

mod lines;
mod rows;

use std::collections::HashSet;
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::domain::{now_ms, IdGenerator};
use crate::store::{self, users::UserRow};

use lines::Rows;
use rows::Claimed;

/// Users per transaction: large enough that a statement's round trip is amortised
/// over many rows, small enough that a failure loses little and the arrays stay
/// far below PostgreSQL's limits.
pub const BATCH_ROWS: usize = 1_000;

/// The author the events name: the operator at the command line, not an API token.
const CREATED_BY: &str = "cli";

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Users created (each with its `user.human.added` event).
    pub imported: usize,
    /// The rows skipped, by line number.
    pub rejected: Vec<Rejected>,
}

/// A row that was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// 1-based line number in the file (the header is line 1 of a CSV file).
    pub line: usize,
    /// Why, in words an operator can act on.
    pub reason: String,
}

/// How far an import got; reported after every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportProgress {
    /// Lines of the file read so far (header and blank lines included), to compare
    /// with the file's line count.
    pub lines_read: usize,
    /// Users created so far.
    pub imported: usize,
    /// Rows rejected so far.
    pub rejected: usize,
}

/// Imports the users in the file at `path` into organization `org_id`, calling
/// `progress` after every batch.
///
/// # Errors
/// The organization does not exist, the file cannot be read, a CSV header names an
/// unknown column or lacks a required one, or the database fails. Batches committed
/// before the failure stay imported (the last progress report says how many).
#[tracing::instrument(skip_all, fields(org_id = %org_id, path = %path.display()))]
pub async fn import_users(
    pool: &PgPool,
    ids: &IdGenerator,
    org_id: &str,
    path: &Path,
    mut progress: impl FnMut(ImportProgress),
) -> anyhow::Result<ImportReport> {
    let org = {
        let mut conn = pool.acquire().await.context("connecting to the database")?;
        store::orgs::get(&mut conn, org_id).await.context("reading the organization")?
    };
    let Some(org) = org else {
        anyhow::bail!("organization {org_id} does not exist");
    };
    let file = tokio::fs::File::open(path).await.with_context(|| format!("opening {}", path.display()))?;
    let mut rows = Rows::new(file);
    let mut claimed = Claimed::default();
    let mut batch = Batch::default();
    let mut report = ImportReport::default();
    let mut reported = None;

    loop {
        let next = rows.next().await.with_context(|| format!("reading {}", path.display()))?;
        let Some((line, fields)) = next else { break };
        let at = *batch.at.get_or_insert_with(now_ms);
        let checked = fields.and_then(|fields| rows::check(fields, line, &org.id, ids, at, &mut claimed));
        match checked {
            Ok(user) => batch.push(line, user),
            Err(reason) => report.rejected.push(Rejected { line, reason }),
        }
        if batch.users.len() >= BATCH_ROWS {
            insert_batch(pool, &org.id, &mut batch, &mut report).await?;
            let now = report.progress(rows.lines_read());
            progress(now);
            reported = Some(now);
        }
    }
    insert_batch(pool, &org.id, &mut batch, &mut report).await?;
    // The last batch, or the bad rows and blank lines after the last full one.
    let last = report.progress(rows.lines_read());
    if reported != Some(last) {
        progress(last);
    }
    report.rejected.sort_by_key(|r| r.line);
    tracing::info!(imported = report.imported, rejected = report.rejected.len(), "users imported");
    Ok(report)
}

impl ImportReport {
    fn progress(&self, lines_read: usize) -> ImportProgress {
        ImportProgress { lines_read, imported: self.imported, rejected: self.rejected.len() }
    }
}

/// Valid users waiting for their transaction.
#[derive(Debug, Default)]
struct Batch {
    /// The batch's time: the users' `created_at` and their events'.
    at: Option<DateTime<Utc>>,
    users: Vec<UserRow>,
    /// The line of each user in `users`, to report the ones the database refuses.
    lines: Vec<usize>,
}

impl Batch {
    fn push(&mut self, line: usize, user: UserRow) {
        self.users.push(user);
        self.lines.push(line);
    }
}

/// Inserts the batch's users and their first events in one transaction, counts them
/// in `report`, and leaves the batch empty. Users the database skips (their
/// username or id is taken) become rejections.
async fn insert_batch(pool: &PgPool, org_id: &str, batch: &mut Batch, report: &mut ImportReport) -> anyhow::Result<()> {
    let Batch { at, users, lines } = std::mem::take(batch);
    if users.is_empty() {
        return Ok(());
    }
    let first_line = lines.first().copied().unwrap_or_default();
    let context = || format!("importing the batch that starts on line {first_line}");
    let mut tx = pool.begin().await.with_context(context)?;
    let inserted: HashSet<String> =
        store::users::insert_many(&mut tx, &users).await.with_context(context)?.into_iter().collect();
    if inserted.len() < users.len() {
        let skipped: Vec<&str> = users.iter().filter(|u| !inserted.contains(&u.id)).map(|u| u.id.as_str()).collect();
        // Generated ids are new by construction; only an id given in the file can
        // already exist. Every other skipped row lost on its username.
        let taken_ids: HashSet<String> =
            store::users::existing_ids(&mut tx, &skipped).await.with_context(context)?.into_iter().collect();
        for (user, &line) in users.iter().zip(&lines).filter(|(u, _)| !inserted.contains(&u.id)) {
            let reason = if taken_ids.contains(&user.id) {
                "userId already exists"
            } else {
                "username is already taken in this organization"
            };
            report.rejected.push(Rejected { line, reason: reason.into() });
        }
    }
    // The event payload names the fields that were set, not the personal data.
    let events: Vec<(String, Value)> = users
        .iter()
        .filter(|u| inserted.contains(&u.id))
        .map(|u| {
            let payload = json!({"username": u.username, "hasEmail": u.email.is_some(), "hasPhone": u.phone.is_some()});
            (u.id.clone(), payload)
        })
        .collect();
    let at = at.unwrap_or_else(now_ms);
    store::events::insert_first_many(&mut tx, "user", &events, "user.human.added", org_id, CREATED_BY, at)
        .await
        .with_context(context)?;
    tx.commit().await.with_context(context)?;
    report.imported += events.len();
    Ok(())
}

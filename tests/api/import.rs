//! `herald users import`: the library function against a database of the test's own
//! (the harness's `TestDatabase`: no herald runs, nothing but the import touches it).

use std::fmt::Write as _;
use std::path::PathBuf;

use herald::domain::IdGenerator;
use herald::ops::import::{import_users, ImportProgress, ImportReport};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::TestDatabase;

/// A migrated database for one test, with one organization in it; dropped with the
/// value when the test passes.
struct TestDb {
    pool: PgPool,
    org_id: String,
    ids: IdGenerator,
    /// Last, so the pool closes before the database goes.
    _database: TestDatabase,
}

impl TestDb {
    async fn new() -> Self {
        let (database, pool) = TestDatabase::open().await;
        let org_id = "org-import".to_string();
        sqlx::query(
            "INSERT INTO organizations (id, name, default_language, login_methods, sequence, created_at, changed_at)
             VALUES ($1, 'Acme', 'en', ARRAY['password'], 1, now(), now())",
        )
        .bind(&org_id)
        .execute(&pool)
        .await
        .unwrap();
        TestDb { pool, org_id, ids: IdGenerator::new(1), _database: database }
    }

    async fn import(&self, file: &TempFile) -> (ImportReport, Vec<ImportProgress>) {
        let mut progress = Vec::new();
        let report = import_users(&self.pool, &self.ids, &self.org_id, &file.0, |p| progress.push(p))
            .await
            .expect("the import runs");
        (report, progress)
    }

    async fn scalar(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).bind(&self.org_id).fetch_one(&self.pool).await.unwrap()
    }
}

/// A file in the temporary folder, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(content: &str) -> Self {
        let path = std::env::temp_dir().join(format!("herald-import-{:016x}", rand::random::<u64>()));
        std::fs::write(&path, content).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn lines_and_reasons(report: &ImportReport) -> Vec<(usize, &str)> {
    report.rejected.iter().map(|r| (r.line, r.reason.as_str())).collect()
}

/// Users of the organization without exactly one event.
const USERS_WITHOUT_ONE_EVENT: &str = "
    SELECT count(*) FROM users u
    WHERE u.org_id = $1 AND (SELECT count(*) FROM events e WHERE e.aggregate_id = u.id) <> 1";

/// Events of the organization other than a user's `user.human.added` of sequence 1
/// by `cli`.
const OTHER_EVENTS: &str = "
    SELECT count(*) FROM events
    WHERE resource_owner = $1
      AND NOT (aggregate_type = 'user' AND sequence = 1 AND type = 'user.human.added' AND created_by = 'cli')";

#[tokio::test]
async fn csv_rows_are_imported_and_bad_ones_reported_by_line() {
    // Arrange: a header (line 1) and 53 rows (lines 2 to 54), three of them bad.
    let db = TestDb::new().await;
    let mut csv = String::from("username,email,phone,given_name,family_name,display_name,language\n");
    for line in 2..=54 {
        let i = line - 2;
        let row = match line {
            10 => format!("user{i},user{i}@@example.com,,Given{i},Family{i},,en"),
            25 => format!("user{i},user{i}@example.com,,Given{i},,,en"),
            40 => format!("user1,user{i}@example.com,,Given{i},Family{i},,en"),
            // Phone only, no username: the phone becomes the username.
            l if l % 7 == 0 => format!(",,+41 79 000 {i:04},Given{i},Family{i},,"),
            // A display name with a comma and quotes, quoted.
            l if l % 5 == 0 => {
                format!(r#"user{i},user{i}@example.com,,Given{i},Family{i},"Family{i}, ""G"" {i}",de-CH"#)
            }
            _ => format!("user{i},user{i}@example.com,,Given{i},Family{i},,en"),
        };
        writeln!(csv, "{row}").unwrap();
    }
    let file = TempFile::new(&csv);

    // Act
    let (report, progress) = db.import(&file).await;

    // Assert
    assert_eq!(report.imported, 50);
    let rejected = lines_and_reasons(&report);
    assert_eq!(rejected.iter().map(|r| r.0).collect::<Vec<_>>(), [10, 25, 40], "{rejected:?}");
    assert!(rejected[0].1.contains("e-mail"), "{rejected:?}");
    assert_eq!(rejected[1].1, "profile.familyName is required");
    assert_eq!(rejected[2].1, "username is also on line 3");
    assert_eq!(progress, [ImportProgress { lines_read: 54, imported: 50, rejected: 3 }]);

    assert_eq!(db.scalar("SELECT count(*) FROM users WHERE org_id = $1").await, 50);
    assert_eq!(db.scalar("SELECT count(*) FROM events WHERE resource_owner = $1").await, 50);
    assert_eq!(db.scalar(USERS_WITHOUT_ONE_EVENT).await, 0);
    assert_eq!(db.scalar(OTHER_EVENTS).await, 0);
    let (display_name, language): (String, Option<String>) =
        sqlx::query_as("SELECT display_name, preferred_language FROM users WHERE username = 'user3'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((display_name.as_str(), language.as_deref()), (r#"Family3, "G" 3"#, Some("de-CH")));
    let (email, phone, display_name): (Option<String>, Option<String>, String) =
        sqlx::query_as("SELECT email, phone, display_name FROM users WHERE username = '+41790000005'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((email, phone.as_deref(), display_name.as_str()), (None, Some("+41790000005"), "Given5 Family5"));
    let payload: Value = sqlx::query_scalar(
        "SELECT e.payload FROM events e JOIN users u ON u.id = e.aggregate_id WHERE u.username = 'user0'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(payload, json!({"username": "user0", "hasEmail": true, "hasPhone": false}));
    assert_eq!(db.scalar("SELECT count(*) FROM users WHERE org_id = $1 AND sequence <> 1").await, 0);

    // Act again: JSON lines into the same organization, one username already there.
    let jsonl = [
        r#"{"username":"json1","email":"json1@example.com","givenName":"Jay","familyName":"Son","preferredLanguage":"de"}"#,
        "",
        r#"{"username":"user0","email":"other@example.com","givenName":"Jay","familyName":"Son"}"#,
        r#"{"userId":"ext-1","email":"ext1@example.com","givenName":"Ex","familyName":"Ternal","displayName":"E. T."}"#,
        r#"{"phone":"12345","givenName":"Bad","familyName":"Phone"}"#,
        r#"{"phone":"+41 79 111 22 33","givenName":"Phone","familyName":"Only","language":"fr"}"#,
    ]
    .join("\n");
    let (report, _) = db.import(&TempFile::new(&jsonl)).await;

    assert_eq!(report.imported, 3);
    let rejected = lines_and_reasons(&report);
    assert_eq!(rejected[0], (3, "username is already taken in this organization"));
    assert_eq!(rejected[1].0, 5);
    assert!(rejected[1].1.contains("E.164"), "{rejected:?}");
    assert_eq!(rejected.len(), 2);
    assert_eq!(db.scalar("SELECT count(*) FROM users WHERE org_id = $1").await, 53);
    assert_eq!(db.scalar("SELECT count(*) FROM events WHERE resource_owner = $1").await, 53);
    assert_eq!(db.scalar(USERS_WITHOUT_ONE_EVENT).await, 0);
    assert_eq!(db.scalar(OTHER_EVENTS).await, 0);
    let (username, display_name): (String, String) =
        sqlx::query_as("SELECT username, display_name FROM users WHERE id = 'ext-1'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((username.as_str(), display_name.as_str()), ("ext1@example.com", "E. T."));

    // And a user id that exists already.
    let again = r#"{"userId":"ext-1","username":"fresh","email":"fresh@example.com","givenName":"F","familyName":"R"}"#;
    let (report, _) = db.import(&TempFile::new(again)).await;
    assert_eq!(report.imported, 0);
    assert_eq!(lines_and_reasons(&report), [(1, "userId already exists")]);
    assert_eq!(db.scalar("SELECT count(*) FROM users WHERE org_id = $1").await, 53);
}

#[tokio::test]
async fn large_files_go_in_batches_of_a_thousand_and_duplicates_are_caught_across_them() {
    // Arrange: 2,500 rows (lines 2 to 2,501); line 2,300 repeats line 7's username.
    let db = TestDb::new().await;
    let mut csv = String::from("username,email,givenName,familyName\n");
    for line in 2..=2501 {
        let name = if line == 2300 { 7 } else { line };
        writeln!(csv, "u{name},u{line}@example.com,G,F").unwrap();
    }
    let file = TempFile::new(&csv);

    // Act
    let (report, progress) = db.import(&file).await;

    // Assert
    assert_eq!(report.imported, 2499);
    assert_eq!(lines_and_reasons(&report), [(2300, "username is also on line 7")]);
    assert_eq!(
        progress,
        [
            ImportProgress { lines_read: 1001, imported: 1000, rejected: 0 },
            ImportProgress { lines_read: 2001, imported: 2000, rejected: 0 },
            ImportProgress { lines_read: 2501, imported: 2499, rejected: 1 },
        ]
    );
    assert_eq!(db.scalar("SELECT count(*) FROM users WHERE org_id = $1").await, 2499);
    assert_eq!(db.scalar(USERS_WITHOUT_ONE_EVENT).await, 0);
    assert_eq!(db.scalar(OTHER_EVENTS).await, 0);
}

#[tokio::test]
async fn an_unknown_organization_is_refused_by_name() {
    let db = TestDb::new().await;
    let file = TempFile::new("email,given_name,family_name\nada@example.com,Ada,Lovelace\n");

    let result = import_users(&db.pool, &db.ids, "no-such-org", &file.0, |_| {}).await;

    let error = result.expect_err("an unknown organization is an error");
    assert!(format!("{error:#}").contains("no-such-org"), "{error:#}");
    assert_eq!(db.scalar("SELECT count(*) FROM users WHERE org_id = $1").await, 0);
}

#[tokio::test]
async fn a_bad_csv_header_stops_the_import_before_any_row() {
    let db = TestDb::new().await;
    let file = TempFile::new("email,given_name,familyname\nada@example.com,Ada,Lovelace\n");

    let result = import_users(&db.pool, &db.ids, &db.org_id, &file.0, |_| {}).await;

    let error = format!("{:#}", result.expect_err("an unknown column is an error"));
    assert!(error.contains("line 1") && error.contains("familyname"), "{error}");
    assert_eq!(db.scalar("SELECT count(*) FROM users WHERE org_id = $1").await, 0);
}

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

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::domain::{now_ms, Error, IdGenerator};
use crate::store::{self, users::UserRow};

/// Users per transaction: large enough that a statement's round trip is amortised
/// over many rows, small enough that a failure loses little and the arrays stay
/// far below PostgreSQL's limits.
pub const BATCH_ROWS: usize = 1_000;

/// The longest line read (a user's fields are at most a few hundred bytes each); a
/// longer one is a bad row, skipped without being held in memory.
const MAX_LINE_BYTES: usize = 64 * 1024;

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
        let checked = fields.and_then(|fields| {
            let explicit_id = present(&fields.user_id).is_some();
            let user = validate(fields, &org.id, ids, at)?;
            claimed.claim(line, &user, explicit_id)?;
            Ok(user)
        });
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

/// The usernames (and given user ids) of the valid rows so far, with their lines: a
/// second row with the same one is a bad row, caught before it reaches the database.
#[derive(Debug, Default)]
struct Claimed {
    usernames: HashMap<String, usize>,
    user_ids: HashMap<String, usize>,
}

impl Claimed {
    /// Records the user's username (and id, when the file gave it), or says which
    /// line has it already.
    fn claim(&mut self, line: usize, user: &UserRow, explicit_id: bool) -> Result<(), String> {
        if let Some(first) = self.usernames.get(&user.username) {
            return Err(format!("username is also on line {first}"));
        }
        if explicit_id {
            if let Some(first) = self.user_ids.get(&user.id) {
                return Err(format!("userId is also on line {first}"));
            }
            self.user_ids.insert(user.id.clone(), line);
        }
        self.usernames.insert(user.username.clone(), line);
        Ok(())
    }
}

/// One row's values as the file gives them, before any check. In JSON the keys are
/// these names in lowerCamelCase; in CSV they are the header's columns.
#[derive(Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Fields {
    user_id: Option<String>,
    username: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    display_name: Option<String>,
    #[serde(alias = "language")]
    preferred_language: Option<String>,
}

/// A value that is there: absent and empty mean the same, as in the API.
fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

fn reason(e: Error) -> String {
    e.text.into_owned()
}

/// Checks one row exactly as `POST /v2/users/human` checks one user, and builds it
/// (a new id from `ids` unless the row gives one).
fn validate(f: Fields, org_id: &str, ids: &IdGenerator, at: DateTime<Utc>) -> Result<UserRow, String> {
    let req = crate::directory::NewHuman {
        user_id: f.user_id,
        org_id: org_id.to_string(),
        username: f.username,
        given_name: f.given_name.unwrap_or_default(),
        family_name: f.family_name.unwrap_or_default(),
        display_name: f.display_name,
        preferred_language: f.preferred_language,
        email: f.email,
        email_verified: false,
        phone: f.phone,
        phone_verified: false,
    };
    crate::directory::build_human(&req, org_id, ids, at).map_err(reason)
}

/// A column a CSV header may name (snake_case or lowerCamelCase).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    UserId,
    Username,
    Email,
    Phone,
    GivenName,
    FamilyName,
    DisplayName,
    Language,
}

impl Column {
    const NAMES: &'static str =
        "username, email, phone, given_name, family_name, display_name, language, user_id (or their lowerCamelCase)";

    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "user_id" | "userId" => Column::UserId,
            "username" => Column::Username,
            "email" => Column::Email,
            "phone" => Column::Phone,
            "given_name" | "givenName" => Column::GivenName,
            "family_name" | "familyName" => Column::FamilyName,
            "display_name" | "displayName" => Column::DisplayName,
            "language" | "preferred_language" | "preferredLanguage" => Column::Language,
            _ => return None,
        })
    }

    fn slot(self, f: &mut Fields) -> &mut Option<String> {
        match self {
            Column::UserId => &mut f.user_id,
            Column::Username => &mut f.username,
            Column::Email => &mut f.email,
            Column::Phone => &mut f.phone,
            Column::GivenName => &mut f.given_name,
            Column::FamilyName => &mut f.family_name,
            Column::DisplayName => &mut f.display_name,
            Column::Language => &mut f.preferred_language,
        }
    }
}

/// A CSV file's columns, in order.
#[derive(Debug, PartialEq, Eq)]
struct Header(Vec<Column>);

impl Header {
    /// Refuses a header that would make every row bad (an unknown or repeated
    /// column, no name columns, no contact column): better said once than 100,000
    /// times.
    fn parse(line: &str) -> Result<Self, String> {
        let mut columns = Vec::new();
        for name in split_record(line)? {
            let name = name.trim();
            let column =
                Column::parse(name).ok_or_else(|| format!("unknown column {name:?}; known: {}", Column::NAMES))?;
            if columns.contains(&column) {
                return Err(format!("column {name:?} is named twice"));
            }
            columns.push(column);
        }
        for (column, name) in [(Column::GivenName, "given_name"), (Column::FamilyName, "family_name")] {
            if !columns.contains(&column) {
                return Err(format!("the header has no {name} column"));
            }
        }
        if !columns.contains(&Column::Email) && !columns.contains(&Column::Phone) {
            return Err("the header has neither an email nor a phone column".into());
        }
        Ok(Header(columns))
    }

    fn fields(&self, line: &str) -> Result<Fields, String> {
        let values = split_record(line)?;
        if values.len() != self.0.len() {
            return Err(format!("{} fields where the header has {}", values.len(), self.0.len()));
        }
        let mut fields = Fields::default();
        for (column, value) in self.0.iter().zip(values) {
            *column.slot(&mut fields) = Some(value);
        }
        Ok(fields)
    }
}

/// Splits one CSV record (RFC 4180, on one line): fields separated by commas; a
/// field in double quotes may hold commas, and `""` in it stands for one quote.
fn split_record(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        let more = if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field is not closed (fields cannot span lines)".into()),
                }
            }
            match chars.next() {
                Some(',') => true,
                None => false,
                Some(_) => return Err("a quoted field must be followed by a comma or the end of the line".into()),
            }
        } else {
            loop {
                match chars.next() {
                    Some(',') => break true,
                    None => break false,
                    Some('"') => {
                        return Err("a quote inside an unquoted field (quote the field and double the quote)".into())
                    }
                    Some(c) => field.push(c),
                }
            }
        };
        fields.push(field);
        if !more {
            return Ok(fields);
        }
    }
}

fn json_fields(line: &str) -> Result<Fields, String> {
    serde_json::from_str(line).map_err(|e| format!("not a user object: {e}"))
}

/// How the rows are written, known from the first non-empty line.
#[derive(Debug)]
enum Format {
    Csv(Header),
    JsonLines,
}

/// The rows of an import file, each with its line number and either its values or
/// why they cannot be read.
struct Rows {
    lines: Lines,
    format: Option<Format>,
}

impl Rows {
    fn new(file: tokio::fs::File) -> Self {
        Rows { lines: Lines::new(file), format: None }
    }

    fn lines_read(&self) -> usize {
        self.lines.read
    }

    /// The next row, skipping blank lines and the CSV header.
    ///
    /// # Errors
    /// The file cannot be read, or its first line is a bad CSV header (or unreadable,
    /// so the format is unknown).
    async fn next(&mut self) -> anyhow::Result<Option<(usize, Result<Fields, String>)>> {
        loop {
            let Some((line, text)) = self.lines.next().await? else { return Ok(None) };
            let text = match (text, &self.format) {
                (Ok(text), _) => text,
                (Err(reason), Some(_)) => return Ok(Some((line, Err(reason.into())))),
                (Err(reason), None) => anyhow::bail!("line {line}: {reason}"),
            };
            if text.trim().is_empty() {
                continue;
            }
            match &self.format {
                Some(Format::Csv(header)) => return Ok(Some((line, header.fields(&text)))),
                Some(Format::JsonLines) => return Ok(Some((line, json_fields(&text)))),
                None if text.trim_start().starts_with('{') => {
                    self.format = Some(Format::JsonLines);
                    return Ok(Some((line, json_fields(&text))));
                }
                None => {
                    let header = Header::parse(&text).map_err(|e| anyhow::anyhow!("line {line}: CSV header: {e}"))?;
                    self.format = Some(Format::Csv(header));
                }
            }
        }
    }
}

/// A file's lines, one at a time, without their line ends (and without a UTF-8
/// byte order mark on the first).
struct Lines {
    reader: BufReader<tokio::fs::File>,
    buf: Vec<u8>,
    /// Lines returned so far: the number of the last one.
    read: usize,
}

impl Lines {
    fn new(file: tokio::fs::File) -> Self {
        Lines { reader: BufReader::with_capacity(64 * 1024, file), buf: Vec::new(), read: 0 }
    }

    /// The next line and its number, or why its text cannot be used (too long, not
    /// UTF-8); `None` at the end of the file.
    async fn next(&mut self) -> std::io::Result<Option<(usize, Result<String, &'static str>)>> {
        self.buf.clear();
        // At most one byte more than a line may have (its newline): a longer line is
        // never held whole.
        let limit = MAX_LINE_BYTES as u64 + 1;
        let n = (&mut self.reader).take(limit).read_until(b'\n', &mut self.buf).await?;
        if n == 0 {
            return Ok(None);
        }
        self.read += 1;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
        } else if self.buf.len() > MAX_LINE_BYTES {
            self.skip_rest_of_line().await?;
            return Ok(Some((self.read, Err("the line is longer than 64 KiB"))));
        }
        let text = match String::from_utf8(std::mem::take(&mut self.buf)) {
            Ok(text) => text,
            Err(e) => {
                self.buf = e.into_bytes();
                return Ok(Some((self.read, Err("the line is not UTF-8"))));
            }
        };
        let text = match text.strip_prefix('\u{feff}') {
            Some(rest) if self.read == 1 => rest.to_string(),
            _ => text,
        };
        Ok(Some((self.read, Ok(text))))
    }

    async fn skip_rest_of_line(&mut self) -> std::io::Result<()> {
        loop {
            let chunk = self.reader.fill_buf().await?;
            if chunk.is_empty() {
                return Ok(());
            }
            match chunk.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    self.reader.consume(end + 1);
                    return Ok(());
                }
                None => {
                    let n = chunk.len();
                    self.reader.consume(n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        now_ms()
    }

    fn ada() -> Fields {
        Fields {
            email: Some("ada@example.com".into()),
            given_name: Some("Ada".into()),
            family_name: Some("Lovelace".into()),
            ..Fields::default()
        }
    }

    fn check(f: Fields) -> Result<UserRow, String> {
        validate(f, "org1", &IdGenerator::new(1), at())
    }

    #[test]
    fn csv_fields_split_on_commas_outside_quotes() {
        assert_eq!(split_record("a,b,c").unwrap(), ["a", "b", "c"]);
        assert_eq!(split_record(r#""Lovelace, Ada",x"#).unwrap(), ["Lovelace, Ada", "x"]);
        assert_eq!(split_record(r#""say ""hi""",,"#).unwrap(), [r#"say "hi""#, "", ""]);
        assert_eq!(split_record(r#""""#).unwrap(), [""]);
        assert_eq!(split_record(" a , b").unwrap(), [" a ", " b"]);
    }

    #[test]
    fn csv_refuses_broken_quoting() {
        for bad in [r#""open,b"#, r#""a"b,c"#, r#"a"b,c"#] {
            assert!(split_record(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn csv_header_accepts_both_spellings_and_refuses_unknown_columns() {
        let snake = Header::parse("username,email,given_name,family_name,language,user_id").unwrap();
        let camel = Header::parse("username,email,givenName,familyName,preferredLanguage,userId").unwrap();
        assert_eq!(snake, camel);
        assert!(Header::parse("email,given_name,family_name,emial").unwrap_err().contains("emial"));
        assert!(Header::parse("email,given_name,given_name,family_name").is_err());
        assert!(Header::parse("email,given_name").unwrap_err().contains("family_name"));
        assert!(Header::parse("username,given_name,family_name").is_err());
    }

    #[test]
    fn csv_rows_map_to_fields_by_the_header() {
        let header = Header::parse("familyName,givenName,email,displayName").unwrap();
        let f = header.fields(r#"Lovelace,Ada,ada@example.com,"Lovelace, Ada""#).unwrap();
        assert_eq!(f, Fields { display_name: Some("Lovelace, Ada".into()), ..ada() });
        assert!(header.fields("Lovelace,Ada").unwrap_err().contains("2 fields"));
    }

    #[test]
    fn json_rows_use_camel_case_and_refuse_unknown_keys() {
        let f = json_fields(r#"{"email":"ada@example.com","givenName":"Ada","familyName":"Lovelace","language":"de"}"#);
        assert_eq!(f.unwrap(), Fields { preferred_language: Some("de".into()), ..ada() });
        assert!(json_fields(r#"{"emial":"ada@example.com"}"#).is_err());
        assert!(json_fields(r#"{"phone":41791234567}"#).is_err());
    }

    #[test]
    fn a_good_row_gets_the_defaults_of_the_api() {
        let u = check(ada()).unwrap();
        assert_eq!(u.username, "ada@example.com");
        assert_eq!(u.display_name, "Ada Lovelace");
        assert_eq!((u.org_id.as_str(), u.sequence, u.state.as_str()), ("org1", 1, "active"));
        assert!(u.id.parse::<i64>().is_ok());

        let phone_only = Fields { email: None, phone: Some("+41 79 123 45 67".into()), ..ada() };
        assert_eq!(check(phone_only).unwrap().username, "+41791234567");

        let given = Fields { user_id: Some("ext-7".into()), username: Some("ada".into()), ..ada() };
        let u = check(given).unwrap();
        assert_eq!((u.id.as_str(), u.username.as_str()), ("ext-7", "ada"));
    }

    #[test]
    fn bad_rows_say_why() {
        let cases = [
            (Fields { email: Some("ada@".into()), ..ada() }, "e-mail"),
            (Fields { phone: Some("0791234567".into()), ..ada() }, "E.164"),
            (Fields { email: None, ..ada() }, "needs an email or a phone"),
            (Fields { email: Some(String::new()), phone: Some(String::new()), ..ada() }, "needs an email or a phone"),
            (Fields { given_name: None, ..ada() }, "givenName is required"),
            (Fields { family_name: Some(String::new()), ..ada() }, "familyName is required"),
            (Fields { family_name: Some("  ".into()), ..ada() }, "familyName must be 1 to 200"),
            (Fields { display_name: Some("A\r\nBcc: x".into()), ..ada() }, "control characters"),
            (Fields { preferred_language: Some("english".into()), ..ada() }, "language tag"),
            (Fields { user_id: Some("a/b".into()), ..ada() }, "userId must not contain"),
        ];
        for (fields, why) in cases {
            let reason = check(fields).unwrap_err();
            assert!(reason.contains(why), "{reason:?} should say {why:?}");
        }
    }

    #[test]
    fn a_username_or_user_id_used_twice_in_the_file_is_refused_the_second_time() {
        let mut claimed = Claimed::default();
        let first = check(ada()).unwrap();
        assert!(claimed.claim(2, &first, false).is_ok());
        let again = check(Fields { given_name: Some("Augusta".into()), ..ada() }).unwrap();
        assert_eq!(claimed.claim(7, &again, false).unwrap_err(), "username is also on line 2");

        let a = check(Fields { user_id: Some("u1".into()), username: Some("a".into()), ..ada() }).unwrap();
        let b = check(Fields { user_id: Some("u1".into()), username: Some("b".into()), ..ada() }).unwrap();
        assert!(claimed.claim(8, &a, true).is_ok());
        assert_eq!(claimed.claim(9, &b, true).unwrap_err(), "userId is also on line 8");
    }

    async fn rows_of(name: &str, content: &[u8]) -> anyhow::Result<Vec<(usize, Result<Fields, String>)>> {
        let path = std::env::temp_dir().join(format!("herald-import-{name}-{:016x}", rand::random::<u64>()));
        std::fs::write(&path, content)?;
        let mut rows = Rows::new(tokio::fs::File::open(&path).await?);
        let mut all = Vec::new();
        let result = async {
            while let Some(row) = rows.next().await? {
                all.push(row);
            }
            anyhow::Ok(())
        }
        .await;
        std::fs::remove_file(&path)?;
        result.map(|()| all)
    }

    #[tokio::test]
    async fn the_first_line_tells_csv_from_json_lines_and_line_numbers_count_every_line() {
        let csv = "\u{feff}email,given_name,family_name\r\n\r\nada@example.com,Ada,Lovelace\r\n\"x,y\n";
        let rows = rows_of("csv", csv.as_bytes()).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0], (3, Ok(ada())));
        assert_eq!(rows[1].0, 4);
        assert!(rows[1].1.is_err());

        let json = "\n{\"email\":\"ada@example.com\",\"givenName\":\"Ada\",\"familyName\":\"Lovelace\"}\nnot json";
        let rows = rows_of("json", json.as_bytes()).await.unwrap();
        assert_eq!(rows[0], (2, Ok(ada())));
        assert_eq!(rows[1].0, 3);
        assert!(rows[1].1.is_err());

        assert!(rows_of("header", b"mail,given_name,family_name\n").await.unwrap_err().to_string().contains("line 1"));
    }

    #[tokio::test]
    async fn overlong_and_non_utf8_lines_are_bad_rows_and_reading_goes_on() {
        let mut content = b"email,given_name,family_name\n".to_vec();
        content.extend(std::iter::repeat_n(b'a', MAX_LINE_BYTES + 10));
        content.extend(b"\nada@example.com,Ad\xff,Lovelace\nada@example.com,Ada,Lovelace");
        let rows = rows_of("long", &content).await.unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], (2, Err("the line is longer than 64 KiB".into())));
        assert_eq!(rows[1], (3, Err("the line is not UTF-8".into())));
        assert_eq!(rows[2], (4, Ok(ada())));
    }
}

//! One row of an import file: its fields as the file gives them, the CSV columns
//! that name them, and the checks of `POST /v2/users/human` applied to it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::lines::split_record;
use crate::domain::{Error, IdGenerator};
use crate::store::users::UserRow;

/// Checks one row (read from `line`) exactly as the API checks one user, then
/// claims its username (and its id, when the row gives one) against the rows before.
///
/// # Errors
/// Why the row is bad, in words an operator can act on.
pub(super) fn check(
    fields: Fields,
    line: usize,
    org_id: &str,
    ids: &IdGenerator,
    at: DateTime<Utc>,
    claimed: &mut Claimed,
) -> Result<UserRow, String> {
    let explicit_id = present(&fields.user_id).is_some();
    let user = validate(fields, org_id, ids, at)?;
    claimed.claim(line, &user, explicit_id)?;
    Ok(user)
}

/// The usernames (and given user ids) of the valid rows so far, with their lines: a
/// second row with the same one is a bad row, caught before it reaches the database.
#[derive(Debug, Default)]
pub(super) struct Claimed {
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
pub(super) struct Fields {
    pub(super) user_id: Option<String>,
    pub(super) username: Option<String>,
    pub(super) email: Option<String>,
    pub(super) phone: Option<String>,
    pub(super) given_name: Option<String>,
    pub(super) family_name: Option<String>,
    pub(super) display_name: Option<String>,
    #[serde(alias = "language")]
    pub(super) preferred_language: Option<String>,
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
pub(super) struct Header(Vec<Column>);

impl Header {
    /// Refuses a header that would make every row bad (an unknown or repeated
    /// column, no name columns, no contact column): better said once than 100,000
    /// times.
    pub(super) fn parse(line: &str) -> Result<Self, String> {
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

    pub(super) fn fields(&self, line: &str) -> Result<Fields, String> {
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::domain::now_ms;

    /// A good row, for the tests of this module and of `lines`.
    pub(in crate::ops::import) fn ada() -> Fields {
        Fields {
            email: Some("ada@example.com".into()),
            given_name: Some("Ada".into()),
            family_name: Some("Lovelace".into()),
            ..Fields::default()
        }
    }

    fn check(f: Fields) -> Result<UserRow, String> {
        validate(f, "org1", &IdGenerator::new(1), now_ms())
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
}

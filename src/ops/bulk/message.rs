//! `resend-request.v1`, the message on `<p>.resend-requests`: what a bulk job
//! publishes, and what any producer with broker credentials may publish itself
//! (docs/ARCHITECTURE.md, "Bulk re-invites and replay").
//!
//! Named `ResendMessage`, not `ResendRequest`: the invite service's
//! `invite::ResendRequest` is one user's resend, this is the wire form that names
//! one user or many.

use serde::{Deserialize, Serialize};

use crate::domain::one_or_many;

/// The `type` of a resend request.
pub const MESSAGE_TYPE: &str = "resend-request.v1";
/// Most users one `resend-request.v1` may name in `userIds`.
pub const MAX_USERS_PER_MESSAGE: usize = 1_000;

/// `resend-request.v1`: one user (`userId`) or several (`userIds`, each resent as
/// its own request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResendMessage {
    pub v: u8,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The id of the token the request acts for (producers outside herald).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Transient failures so far (herald's own bookkeeping; producers leave it out).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ResendMessage {
    /// The message a job publishes for `users` (a chunk of its selection).
    pub fn for_job(job_id: &str, users: &[String]) -> Self {
        ResendMessage {
            v: 1,
            user_id: String::new(),
            user_ids: users.to_vec(),
            job_id: Some(job_id.to_string()),
            requested_by: None,
            attempt: 0,
        }
    }

    /// The message as it travels.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising a struct of strings and integers cannot fail.
        serde_json::to_vec(self).expect("serialisable")
    }

    /// The users it names, or why it names none (or too many): the one rule for
    /// "one id or many" that `delivery.v1` follows too.
    ///
    /// # Errors
    /// Both `userId` and `userIds`, neither, or more than [`MAX_USERS_PER_MESSAGE`].
    pub fn users(&self) -> Result<Vec<String>, String> {
        let users = one_or_many(&self.user_id, &self.user_ids, MAX_USERS_PER_MESSAGE, ("userId", "userIds"))?;
        Ok(users.into_iter().map(str::to_string).collect())
    }

    /// The same request for `users` only (what is left to retry), in the form it
    /// came in: a `userId` request stays one.
    pub fn for_users(&self, mut users: Vec<String>) -> Self {
        let (user_id, user_ids) = if users.len() == 1 && self.user_ids.is_empty() {
            (users.remove(0), vec![])
        } else {
            (String::new(), users)
        };
        ResendMessage { user_id, user_ids, ..self.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> ResendMessage {
        serde_json::from_str(body).unwrap()
    }

    fn json_of(ids: &[String]) -> String {
        serde_json::json!({"v": 1, "userIds": ids}).to_string()
    }

    #[test]
    fn a_request_names_one_user_or_several_never_both_nor_none() {
        assert_eq!(parse(r#"{"v":1,"userId":"1"}"#).users().unwrap(), ["1"]);
        assert_eq!(parse(r#"{"v":1,"userIds":["1","2"]}"#).users().unwrap(), ["1", "2"]);
        assert!(parse(r#"{"v":1,"userId":"1","userIds":["2"]}"#).users().is_err());
        assert!(parse(r#"{"v":1}"#).users().is_err());
        let too_many: Vec<String> = (0..=MAX_USERS_PER_MESSAGE).map(|i| i.to_string()).collect();
        assert!(parse(&json_of(&too_many)).users().is_err());
    }

    #[test]
    fn a_retry_names_only_the_users_left_in_the_form_they_came_in() {
        let one = parse(r#"{"v":1,"userId":"1","jobId":"j"}"#);
        assert_eq!(
            serde_json::to_string(&one.for_users(vec!["1".into()])).unwrap(),
            r#"{"v":1,"userId":"1","jobId":"j"}"#
        );
        let several = parse(r#"{"v":1,"userIds":["1","2","3"],"jobId":"j"}"#);
        assert_eq!(
            serde_json::to_string(&several.for_users(vec!["2".into()])).unwrap(),
            r#"{"v":1,"userIds":["2"],"jobId":"j"}"#
        );
    }

    #[test]
    fn a_job_message_names_its_users_and_job() {
        let m = ResendMessage::for_job("j", &["1".into(), "2".into()]);
        assert_eq!(String::from_utf8(m.encode()).unwrap(), r#"{"v":1,"userIds":["1","2"],"jobId":"j"}"#);
    }
}

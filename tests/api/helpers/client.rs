//! Talking to herald over HTTP as a client does, the fixtures most tests start from
//! (an organization, a user, a token, a code), and the rows a test reads back.

use reqwest::Response;
use serde_json::{json, Value};

use super::app::TestApp;
use super::asserts::{ok_json, sequence};

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// POSTs JSON with a bearer token.
    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Response {
        self.client.post(self.url(path)).bearer_auth(token).json(body).send().await.expect("request sent")
    }

    /// POSTs raw bytes as JSON with a bearer token.
    pub async fn post_raw(&self, path: &str, token: &str, body: impl Into<reqwest::Body>) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.expect("request sent")
    }

    /// A Connect unary call: `POST /<service>/<method>` with the JSON message.
    pub async fn connect(&self, method: &str, token: &str, body: &Value) -> Response {
        self.post(&format!("/{method}"), token, body).await
    }

    /// A new organization (through the API, with the bootstrap token); its id.
    pub async fn create_org(&self) -> String {
        let name = format!("Org {:08x}", rand::random::<u32>());
        let resp = self.post("/v2/organizations", &self.bootstrap, &json!({ "name": name })).await;
        let body = ok_json(resp).await;
        body["organizationId"].as_str().expect("organizationId").to_string()
    }

    /// `POST /v2/users/human` with the bootstrap token; asserts 200 and returns the body.
    pub async fn add_human(&self, body: &Value) -> Value {
        ok_json(self.post("/v2/users/human", &self.bootstrap, body).await).await
    }

    /// A new human user of `org` with the given contacts; its id.
    pub async fn create_user(&self, org: &str, email: Option<&str>, phone: Option<&str>) -> String {
        let mut body = json!({
            "organization": {"orgId": org},
            "username": format!("user-{:016x}", rand::random::<u64>()),
            "profile": {"givenName": "Ada", "familyName": "Lovelace"},
        });
        if let Some(e) = email {
            body["email"] = json!({ "email": e });
        }
        if let Some(p) = phone {
            body["phone"] = json!({ "phone": p });
        }
        let body = ok_json(self.post("/v2/users/human", &self.bootstrap, &body).await).await;
        body["userId"].as_str().expect("userId").to_string()
    }

    /// An organization and one user with an e-mail address in it.
    pub async fn org_and_user(&self) -> (String, String) {
        let org = self.create_org().await;
        let user = self.create_user(&org, Some("ada@example.com"), None).await;
        (org, user)
    }

    /// A token for `org` (`None`: instance-scoped) with `perms`, minted by the
    /// bootstrap token.
    pub async fn token(&self, org: Option<&str>, perms: &[&str]) -> String {
        self.token_with_id(org, perms).await.1
    }

    /// `(tokenId, token)`.
    pub async fn token_with_id(&self, org: Option<&str>, perms: &[&str]) -> (String, String) {
        let mut body = json!({ "permissions": perms, "description": "test" });
        if let Some(o) = org {
            body["orgId"] = json!(o);
        }
        let body = ok_json(self.post("/admin/v1/tokens", &self.bootstrap, &body).await).await;
        (body["tokenId"].as_str().unwrap().to_string(), body["token"].as_str().unwrap().to_string())
    }

    /// `POST /v2/users/{user}/invite_code` with the bootstrap token.
    pub async fn create_code(&self, user: &str, body: &Value) -> Response {
        self.post(&format!("/v2/users/{user}/invite_code"), &self.bootstrap, body).await
    }

    /// Creates a code with `returnCode` and gives back `(code, sequence)`.
    pub async fn returned_code(&self, user: &str) -> (String, u64) {
        let body = ok_json(self.create_code(user, &json!({"returnCode": {}})).await).await;
        (body["inviteCode"].as_str().expect("inviteCode").to_string(), sequence(&body))
    }

    pub async fn resend(&self, user: &str) -> Response {
        self.post(&format!("/v2/users/{user}/invite_code/resend"), &self.bootstrap, &json!({})).await
    }

    pub async fn verify(&self, user: &str, code: &str) -> Response {
        self.post(
            &format!("/v2/users/{user}/invite_code/verify"),
            &self.bootstrap,
            &json!({ "verificationCode": code }),
        )
        .await
    }

    /// Every delivery of `user`, oldest first.
    pub async fn deliveries(&self, user: &str) -> Vec<Delivery> {
        sqlx::query_as(
            "SELECT status, channel, recipient, template, org_id, code_event_sequence
             FROM deliveries WHERE user_id = $1 ORDER BY created_at, id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    /// The types of `user`'s events, in sequence order.
    pub async fn event_types(&self, user: &str) -> Vec<String> {
        sqlx::query_scalar("SELECT type FROM events WHERE aggregate_id = $1 ORDER BY sequence")
            .bind(user)
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    pub async fn invite_row(&self, user: &str) -> Option<InviteRow> {
        sqlx::query_as(
            "SELECT code_encrypted, url_template, application_name, channel, returned, failed_checks, event_sequence
             FROM invite_codes WHERE user_id = $1",
        )
        .bind(user)
        .fetch_optional(&self.pool)
        .await
        .unwrap()
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Delivery {
    pub status: String,
    pub channel: String,
    pub recipient: String,
    pub template: String,
    pub org_id: String,
    pub code_event_sequence: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InviteRow {
    pub code_encrypted: Option<Vec<u8>>,
    pub url_template: String,
    pub application_name: String,
    pub channel: String,
    pub returned: bool,
    pub failed_checks: i32,
    pub event_sequence: i64,
}

//! The delivery pipeline (docs/ARCHITECTURE.md), by feature: what a mail holds and
//! what travels on the broker (`pipeline`), retries and dead letters (`retries`), SMS
//! providers (`sms`), and workers that start late, lose the broker or are stopped
//! (`workers`). A real RabbitMQ, a real SMTP server in the test process, a real HTTP
//! server (wiremock) as the SMS provider.

use serde_json::{json, Value};

use crate::helpers::{ok_json, TestApp};

mod pipeline;
mod retries;
mod sms;
mod workers;

async fn user_with(app: &TestApp, org: &str, body: Value) -> String {
    let mut body = body;
    body["organization"] = json!({ "orgId": org });
    if body.get("profile").is_none() {
        body["profile"] = json!({"givenName": "Ada", "familyName": "Lovelace"});
    }
    let resp = app.add_human(&body).await;
    resp["userId"].as_str().unwrap().to_string()
}

async fn send_code(app: &TestApp, user: &str) {
    ok_json(app.create_code(user, &json!({"sendCode": {"applicationName": "Acme"}})).await).await;
}

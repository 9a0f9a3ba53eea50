//! `SmsSender`: SMS through an HTTP provider (a JSON webhook, or Twilio), or the log.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use reqwest::StatusCode;

use super::{Accepted, SendError};
use crate::config::{Sms as SmsSettings, SmsProvider};

const HTTP_TIMEOUT: Duration = Duration::from_secs(15);

/// Request: send one SMS.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Accepted, SendError>")]
pub struct SendSms(pub OutgoingSms);

#[derive(Debug, Clone)]
pub struct OutgoingSms {
    pub delivery_id: i64,
    pub to: String,
    pub body: String,
}

pub struct SmsSender {
    settings: SmsSettings,
    client: reqwest::Client,
}

fn client() -> reqwest::Client {
    // A client without TLS roots or proxies cannot fail to build except for a
    // broken system; fall back to the default client in that case.
    reqwest::Client::builder().timeout(HTTP_TIMEOUT).build().unwrap_or_default()
}

impl SmsSender {
    pub fn start(settings: SmsSettings) -> Addr<SmsSender> {
        Supervisor::start(move |_| SmsSender { settings, client: client() })
    }
}

impl Actor for SmsSender {
    type Context = Context<Self>;
}

impl Supervised for SmsSender {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.client = client();
    }
}

impl Handler<SendSms> for SmsSender {
    type Result = ResponseFuture<Result<Accepted, SendError>>;

    fn handle(&mut self, msg: SendSms, _ctx: &mut Self::Context) -> Self::Result {
        let settings = Arc::new(self.settings.clone());
        let client = self.client.clone();
        Box::pin(async move { send(&settings, &client, msg.0).await })
    }
}

async fn send(s: &SmsSettings, client: &reqwest::Client, m: OutgoingSms) -> Result<Accepted, SendError> {
    let request = match s.provider {
        SmsProvider::Log => {
            // Never the body: it holds the code.
            tracing::info!(delivery_id = m.delivery_id, to = %crate::domain::contact::mask_phone(&m.to), "SMS (log provider)");
            return Ok(Accepted::default());
        }
        SmsProvider::Webhook => client
            .post(&s.webhook_url)
            // The provider can drop a retry of a message it already accepted.
            .header("Idempotency-Key", m.delivery_id.to_string())
            .json(&serde_json::json!({"to": m.to, "body": m.body, "deliveryId": m.delivery_id.to_string()})),
        SmsProvider::Twilio => {
            let url = format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                s.twilio_base_url.trim_end_matches('/'),
                s.twilio_account_sid
            );
            client.post(url).basic_auth(&s.twilio_account_sid, Some(&s.twilio_auth_token)).form(&[
                ("To", m.to.as_str()),
                ("From", s.twilio_from.as_str()),
                ("Body", m.body.as_str()),
            ])
        }
    };
    let response = request.send().await.map_err(|e| SendError::transient(format!("SMS provider unreachable: {e}")))?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.text().await.unwrap_or_default();
    classify(status, retry_after, &body)
}

/// 2xx accepted; 408, 429 and 5xx transient (honouring `Retry-After`); other 4xx
/// permanent.
fn classify(status: StatusCode, retry_after: Option<Duration>, body: &str) -> Result<Accepted, SendError> {
    if status.is_success() {
        let id = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("sid").or_else(|| v.get("id")).and_then(|x| x.as_str()).map(str::to_string));
        return Ok(Accepted { provider_message_id: id });
    }
    let snippet: String = body.chars().take(200).collect();
    let message = format!("SMS provider answered {status}: {snippet}");
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS {
        Err(SendError::transient_after(message, retry_after))
    } else {
        Err(SendError::permanent(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_answers_are_classified() {
        assert_eq!(
            classify(StatusCode::CREATED, None, r#"{"sid":"SM1"}"#).unwrap().provider_message_id.as_deref(),
            Some("SM1")
        );
        assert!(matches!(classify(StatusCode::BAD_GATEWAY, None, ""), Err(SendError::Transient { .. })));
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, Some(Duration::from_secs(9)), ""),
            Err(SendError::Transient { retry_after: Some(d), .. }) if d == Duration::from_secs(9)
        ));
        assert!(matches!(classify(StatusCode::REQUEST_TIMEOUT, None, ""), Err(SendError::Transient { .. })));
        assert!(matches!(classify(StatusCode::BAD_REQUEST, None, ""), Err(SendError::Permanent { .. })));
    }
}

//! `Publisher`: confirmed, mandatory publishes.
//!
//! A publish succeeds only when the broker confirmed it *and* did not return it as
//! unroutable. Callers see every failure; nothing is marked published otherwise.
//! A publish that is not confirmed within [`CONFIRM_TIMEOUT`] fails (a blocked
//! broker never confirms): callers hand such work back and try again later.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use tokio::sync::Mutex;

use super::link::{LinkHandle, LinkStatus, Subscribe};
use super::Outgoing;

/// How long a batch may wait for its confirms. Under a memory or disk alarm the
/// broker stops reading, and neither the publish nor its confirm would ever end.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("broker not connected")]
    NotConnected,
    #[error("broker returned the message as unroutable ({0})")]
    Unroutable(String),
    #[error("broker refused the message (nack)")]
    Nacked,
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    #[error("broker error: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("broker did not confirm within {0:?}")]
    Timeout(Duration),
}

/// Request: publish these messages; one result per message, in order.
#[derive(Message)]
#[rtype(result = "Vec<Result<(), PublishError>>")]
pub struct Publish(pub Vec<Outgoing>);

#[derive(Default)]
struct Shared {
    conn: std::sync::Mutex<Option<Arc<Connection>>>,
    /// One confirm-mode channel, opened on first use after each (re)connect.
    channel: Mutex<Option<Channel>>,
}

impl Shared {
    async fn channel(&self) -> Result<Channel, PublishError> {
        let mut slot = self.channel.lock().await;
        if let Some(ch) = slot.as_ref().filter(|c| c.status().connected()) {
            return Ok(ch.clone());
        }
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone().ok_or(PublishError::NotConnected)?;
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        *slot = Some(ch.clone());
        Ok(ch)
    }

    async fn publish(&self, batch: Vec<Outgoing>) -> Vec<Result<(), PublishError>> {
        let ch = match self.channel().await {
            Ok(ch) => ch,
            Err(e) => {
                let text = e.to_string();
                return batch.iter().map(|_| Err(PublishError::Unavailable(text.clone()))).collect();
            }
        };
        // Send everything, then wait for the confirms together: one round trip
        // for the batch instead of one per message.
        let mut pending = Vec::with_capacity(batch.len());
        for msg in &batch {
            let opts = BasicPublishOptions { mandatory: true, ..Default::default() };
            pending.push(
                ch.basic_publish(
                    msg.exchange.as_str().into(),
                    msg.routing_key.as_str().into(),
                    opts,
                    &msg.body,
                    properties(msg),
                )
                .await,
            );
        }
        let confirms = join_all(pending.into_iter().map(|p| async move {
            match p {
                Ok(confirm) => match confirm.await {
                    Ok(Confirmation::Ack(None)) => Ok(()),
                    Ok(Confirmation::Ack(Some(ret))) | Ok(Confirmation::Nack(Some(ret))) => {
                        Err(PublishError::Unroutable(ret.reply_text.to_string()))
                    }
                    Ok(Confirmation::Nack(None)) => Err(PublishError::Nacked),
                    // The channel is in confirm mode; an unrequested confirm would be
                    // a broken channel.
                    Ok(Confirmation::NotRequested) => Err(PublishError::Nacked),
                    Err(e) => Err(PublishError::Amqp(e)),
                },
                Err(e) => Err(PublishError::Amqp(e)),
            }
        }))
        .await;
        if confirms.iter().any(|r| matches!(r, Err(PublishError::Amqp(_)))) {
            // A channel-level error closes the channel; open a fresh one next time.
            *self.channel.lock().await = None;
        }
        confirms
    }
}

fn properties(msg: &Outgoing) -> BasicProperties {
    let mut headers = FieldTable::default();
    for (k, v) in &msg.headers {
        headers.insert(k.as_str().into(), AMQPValue::LongString(LongString::from(v.as_str())));
    }
    if !msg.cc.is_empty() {
        let cc: Vec<AMQPValue> = msg.cc.iter().map(|k| AMQPValue::LongString(LongString::from(k.as_str()))).collect();
        headers.insert("CC".into(), AMQPValue::FieldArray(FieldArray::from(cc)));
    }
    let mut p = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2) // persistent
        .with_type(msg.kind.as_str().into())
        .with_headers(headers);
    if let Some(id) = &msg.message_id {
        p = p.with_message_id(id.as_str().into());
    }
    p
}

pub struct Publisher {
    link: LinkHandle,
    shared: Arc<Shared>,
}

impl Publisher {
    pub fn start(link: LinkHandle) -> Addr<Publisher> {
        Supervisor::start(move |_| Publisher { link, shared: Arc::new(Shared::default()) })
    }
}

impl Actor for Publisher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.link.addr.do_send(Subscribe(ctx.address().recipient()));
    }
}

impl Supervised for Publisher {}

impl Handler<LinkStatus> for Publisher {
    type Result = ();

    fn handle(&mut self, status: LinkStatus, _ctx: &mut Self::Context) {
        let conn = match status {
            LinkStatus::Up(c) => Some(c),
            LinkStatus::Down => None,
        };
        *self.shared.conn.lock().unwrap_or_else(|p| p.into_inner()) = conn;
        // Any channel belonged to the old connection.
        if let Ok(mut ch) = self.shared.channel.try_lock() {
            *ch = None;
        }
    }
}

impl Handler<Publish> for Publisher {
    type Result = ResponseFuture<Vec<Result<(), PublishError>>>;

    fn handle(&mut self, msg: Publish, _ctx: &mut Self::Context) -> Self::Result {
        let shared = self.shared.clone();
        Box::pin(async move {
            let n = msg.0.len();
            match tokio::time::timeout(CONFIRM_TIMEOUT, shared.publish(msg.0)).await {
                Ok(results) => results,
                Err(_) => {
                    // The channel may hold the broker's half-finished state: start afresh
                    // (unless another publish is opening one right now; never wait here).
                    if let Ok(mut ch) = shared.channel.try_lock() {
                        *ch = None;
                    }
                    (0..n).map(|_| Err(PublishError::Timeout(CONFIRM_TIMEOUT))).collect()
                }
            }
        })
    }
}

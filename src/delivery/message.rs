//! `delivery.v1`, the wire format of a delivery message, and the builders of the
//! outgoing messages. Ids only: no code, address or name ever reaches the broker
//! (docs/ARCHITECTURE.md, "Guarantees": no secrets in the broker).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::{one_or_many, Channel, Lane};
use crate::queue::{Outgoing, WorkQueue};

/// The `type` of a delivery message.
pub const MESSAGE_TYPE: &str = "delivery.v1";

/// Bulk deliveries per message from the relay: one message per delivery made the
/// broker's work a fifth of the machine's CPU at bulk rates.
pub const IDS_PER_MESSAGE: usize = 100;
/// Most deliveries one message may name.
const MAX_IDS_PER_MESSAGE: usize = 1_000;

/// `delivery.v1`: one delivery (`deliveryId`), or several (`deliveryIds`: the
/// relay sends bulk deliveries 100 per message; each is claimed, sent, retried or
/// parked on its own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryMessage {
    pub v: u8,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub delivery_id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivery_ids: Vec<String>,
    pub attempt: u32,
}

impl DeliveryMessage {
    /// The message for one delivery.
    pub fn one(id: i64, attempt: u32) -> Self {
        DeliveryMessage { v: 1, delivery_id: id.to_string(), delivery_ids: vec![], attempt }
    }

    /// One message for several deliveries.
    pub fn many(ids: &[i64], attempt: u32) -> Self {
        DeliveryMessage {
            v: 1,
            delivery_id: String::new(),
            delivery_ids: ids.iter().map(i64::to_string).collect(),
            attempt,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serialising a struct of strings and integers cannot fail.
        serde_json::to_vec(self).expect("serialisable")
    }

    /// Whether it names several deliveries (`deliveryIds`), each to be handled as
    /// if it had come alone.
    pub fn names_many(&self) -> bool {
        !self.delivery_ids.is_empty()
    }

    /// The deliveries it names, or why it names none.
    ///
    /// # Errors
    /// An unknown version, both or neither of `deliveryId`/`deliveryIds`, too many
    /// ids, or an id that is not a number.
    pub fn ids(&self) -> Result<Vec<i64>, String> {
        if self.v != 1 {
            return Err(format!("unknown version {}", self.v));
        }
        one_or_many(&self.delivery_id, &self.delivery_ids, MAX_IDS_PER_MESSAGE, ("deliveryId", "deliveryIds"))?
            .into_iter()
            .map(|id| id.parse::<i64>().map_err(|e| format!("deliveryId {id:?}: {e}")))
            .collect()
    }
}

/// The queue a delivery travels: its channel's, on its lane (a transactional mail
/// never waits behind a bulk backlog: docs/ARCHITECTURE.md, "Bulk re-invites and
/// replay").
pub fn work_queue(channel: Channel, lane: Lane) -> WorkQueue {
    match (channel, lane) {
        (Channel::Email, Lane::Transactional) => WorkQueue::Email,
        (Channel::Sms, Lane::Transactional) => WorkQueue::Sms,
        (Channel::Email, Lane::Bulk) => WorkQueue::BulkEmail,
        (Channel::Sms, Lane::Bulk) => WorkQueue::BulkSms,
    }
}

/// The message for a delivery, with its tracing headers.
pub fn outgoing(
    exchange: &str,
    id: i64,
    channel: Channel,
    lane: Lane,
    attempt: u32,
    request_id: Option<&str>,
) -> Outgoing {
    let mut headers = BTreeMap::new();
    let request_id = request_id.map(str::to_string).unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()));
    headers.insert("traceparent".to_string(), traceparent(&request_id));
    headers.insert("x-request-id".to_string(), request_id);
    Outgoing {
        exchange: exchange.to_string(),
        routing_key: work_queue(channel, lane).key().to_string(),
        cc: vec![],
        kind: MESSAGE_TYPE.into(),
        body: DeliveryMessage::one(id, attempt).encode(),
        headers,
        message_id: Some(format!("delivery-{id}-{attempt}")),
    }
}

/// One message for several bulk deliveries of one channel (each on its first
/// attempt as far as the relay knows; the claim counts the real attempts).
pub fn outgoing_many(exchange: &str, ids: &[i64], channel: Channel, request_id: Option<&str>) -> Outgoing {
    let first = ids.first().copied().unwrap_or_default();
    let mut message = outgoing(exchange, first, channel, Lane::Bulk, 1, request_id);
    message.body = DeliveryMessage::many(ids, 1).encode();
    message.message_id = Some(format!("deliveries-{first}-{}", ids.len()));
    message
}

/// A W3C `traceparent` whose trace id is the request id when it is 32 hex digits
/// (herald's own ids are), so one trace id follows a resend end to end.
pub fn traceparent(request_id: &str) -> String {
    let trace = if request_id.len() == 32 && request_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        request_id.to_ascii_lowercase()
    } else {
        format!("{:032x}", rand::random::<u128>())
    };
    format!("00-{trace}-{:016x}-01", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(body: &str) -> Result<Vec<i64>, String> {
        serde_json::from_str::<DeliveryMessage>(body).unwrap().ids()
    }

    #[test]
    fn a_message_names_one_delivery_or_several_never_both_nor_none() {
        assert_eq!(ids(r#"{"v":1,"deliveryId":"7","attempt":1}"#), Ok(vec![7]));
        assert_eq!(ids(r#"{"v":1,"deliveryIds":["7","8"],"attempt":1}"#), Ok(vec![7, 8]));
        assert!(ids(r#"{"v":1,"deliveryId":"7","deliveryIds":["8"],"attempt":1}"#).is_err());
        assert!(ids(r#"{"v":1,"attempt":1}"#).is_err());
        assert!(ids(r#"{"v":1,"deliveryIds":["7","x"],"attempt":1}"#).is_err());
        assert!(ids(r#"{"v":2,"deliveryId":"7","attempt":1}"#).is_err());
    }

    #[test]
    fn a_single_delivery_message_keeps_its_shape() {
        assert_eq!(
            String::from_utf8(DeliveryMessage::one(7, 2).encode()).unwrap(),
            r#"{"v":1,"deliveryId":"7","attempt":2}"#
        );
        let many = outgoing_many("herald", &[7, 8], Channel::Email, Some("bulk-j"));
        assert_eq!(many.routing_key, "bulk.email");
        assert_eq!(String::from_utf8(many.body).unwrap(), r#"{"v":1,"deliveryIds":["7","8"],"attempt":1}"#);
    }

    #[test]
    fn a_transactional_delivery_travels_its_channels_own_queue() {
        let one = outgoing("herald", 7, Channel::Sms, Lane::Transactional, 1, None);
        assert_eq!(one.routing_key, "delivery.sms");
        assert_eq!(one.message_id.as_deref(), Some("delivery-7-1"));
        assert!(one.headers.contains_key("traceparent") && one.headers.contains_key("x-request-id"));
    }
}

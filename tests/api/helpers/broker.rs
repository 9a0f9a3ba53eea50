//! The broker as the tests see it from outside herald: publishing as an outside
//! producer does, taking what herald parked, counting what is still at work, and the
//! operator's `rabbitmqctl`.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use herald::queue::Topology;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::{BasicProperties, Connection, ConnectionProperties};

use super::waiting::WAIT;

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub async fn amqp() -> Connection {
    Connection::connect(AMQP, ConnectionProperties::default()).await.unwrap()
}

/// Publishes as an outside producer does: on herald's exchange, with confirms and
/// `mandatory`, again until the broker routed it (herald declares its topology in
/// the background, so the exchange or the binding may not be there yet).
pub async fn publish(conn: &Connection, exchange: &str, routing_key: &str, kind: &str, body: &[u8]) {
    let confirming = || async {
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        ch
    };
    let mut ch = confirming().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let confirm = ch
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions { mandatory: true, ..Default::default() },
                body,
                BasicProperties::default().with_type(kind.into()),
            )
            .await;
        match confirm {
            // `Ack(None)`: routed; `Ack(Some(returned))`: no queue took it yet.
            Ok(c) => match c.await {
                Ok(lapin::Confirmation::Ack(None)) => return,
                other => assert!(Instant::now() < deadline, "not routed: {other:?}"),
            },
            // The exchange is not declared yet: the broker closed the channel.
            Err(e) => assert!(Instant::now() < deadline, "{e}"),
        }
        // Polled like every fact the harness waits for (`waiting::POLL`).
        tokio::time::sleep(super::waiting::POLL).await;
        if !ch.status().connected() {
            ch = confirming().await;
        }
    }
}

/// A message taken from a queue: its body and its headers as text.
#[derive(Debug)]
pub struct Taken {
    pub body: Vec<u8>,
    pub kind: Option<String>,
    pub headers: BTreeMap<String, String>,
}

impl Taken {
    /// Its properties on one line (`type=Some("…") key=value …`), to search for a
    /// word wherever herald put it.
    pub fn properties(&self) -> String {
        let mut text = format!("type={:?}", self.kind);
        for (k, v) in &self.headers {
            text.push_str(&format!(" {k}={v}"));
        }
        text
    }
}

/// Takes every message waiting in `queue`.
pub async fn drain_queue(conn: &Connection, queue: &str) -> Vec<Taken> {
    let ch = conn.create_channel().await.unwrap();
    let mut out = Vec::new();
    while let Some(msg) = ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.unwrap() {
        let p = &msg.delivery.properties;
        let headers = p
            .headers()
            .as_ref()
            .map(|h| h.inner().clone())
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    lapin::types::AMQPValue::LongString(s) => s.to_string(),
                    other => format!("{other:?}"),
                };
                (k.as_str().to_string(), v)
            })
            .collect();
        out.push(Taken {
            body: msg.delivery.data.clone(),
            kind: p.kind().as_ref().map(|k| k.as_str().to_string()),
            headers,
        });
    }
    let _ = ch.close(200, "drained".into()).await;
    out
}

/// The queues where herald's work waits: the lanes, the resend requests and the
/// retry queues; not the dead queue, where parked messages stay until an operator
/// takes them.
fn work_queues(t: &Topology) -> Vec<String> {
    let mut queues = vec![t.email_queue(), t.sms_queue(), t.bulk_email_queue(), t.bulk_sms_queue(), t.resend_queue()];
    queues.extend(t.retry_delays.iter().map(|d| t.retry_queue(*d)));
    queues
}

/// Ready messages in the work queues of `t`, by queue (those holding any). A passive
/// declare answers from the queue itself; `rabbitmqctl list_queues` does not do for
/// this: for quorum queues it reports figures that lag by seconds (seen as 0 right
/// after a publish on RabbitMQ 3.10).
pub async fn ready_messages(conn: &Connection, t: &Topology) -> Vec<(String, u32)> {
    let ch = conn.create_channel().await.unwrap();
    let mut out = Vec::new();
    for queue in work_queues(t) {
        let passive = QueueDeclareOptions { passive: true, ..Default::default() };
        match ch.queue_declare(queue.as_str().into(), passive, Default::default()).await {
            Ok(q) if q.message_count() > 0 => out.push((queue, q.message_count())),
            Ok(_) => {}
            // Not declared yet (the broker closed the channel): herald is starting.
            Err(_) => return vec![(queue, u32::MAX)],
        }
    }
    let _ = ch.close(200, "counted".into()).await;
    out
}

/// Messages herald's connections (named `herald <prefix>`) hold unacknowledged. AMQP
/// cannot see them; `rabbitmqctl list_channels` asks each channel and is current.
pub async fn unacked_messages(prefix: &str) -> u64 {
    let channels = rabbitmqctl_list("list_channels", &["connection", "messages_unacknowledged"]).await;
    let busy: Vec<(String, u64)> = channels
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let (conn, n) = (parts.next()?, parts.next()?.parse().ok()?);
            (n > 0).then(|| (conn.to_string(), n))
        })
        .collect();
    if busy.is_empty() {
        // Nothing unacked on the whole broker: no need to ask whose connections.
        return 0;
    }
    let ours: HashSet<String> = herald_connections(prefix).await.into_iter().collect();
    busy.iter().filter(|(conn, _)| ours.contains(conn)).map(|(_, n)| n).sum()
}

/// The connection pids of every herald on `prefix` (servers, workers, commands).
async fn herald_connections(prefix: &str) -> Vec<String> {
    let name = format!("herald {prefix}");
    let listing = rabbitmqctl_list("list_connections", &["pid", "client_properties"]).await;
    listing
        .lines()
        .filter(|l| l.contains(&name))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

/// Closes the broker connections named `name` (and only these: herald names them
/// after the test's queue prefix); how many.
pub async fn close_connections_named(name: &str) -> usize {
    let listing = rabbitmqctl_list("list_connections", &["pid", "client_properties"]).await;
    let mut closed = 0;
    for line in listing.lines().filter(|l| l.contains(name)) {
        let pid = line.split_whitespace().next().unwrap();
        rabbitmqctl(&["close_connection", pid, "test closes it"]).await;
        closed += 1;
    }
    closed
}

/// Runs `rabbitmqctl <list command> <items>` quietly, without table headers; its
/// stdout.
async fn rabbitmqctl_list(command: &str, items: &[&str]) -> String {
    let mut args = vec![command, "-q", "--no-table-headers"];
    args.extend(items);
    rabbitmqctl(&args).await
}

/// Runs `rabbitmqctl <args>` (it waits for the command, not on the runtime); its
/// stdout.
async fn rabbitmqctl(args: &[&str]) -> String {
    let out = tokio::process::Command::new("rabbitmqctl").args(args).output().await.expect("rabbitmqctl runs");
    assert!(out.status.success(), "rabbitmqctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes a test's queues and exchanges, so runs do not pile up quorum queues.
pub(super) async fn delete_queues(t: &Topology) {
    let Ok(conn) = Connection::connect(AMQP, ConnectionProperties::default()).await else {
        return;
    };
    let Ok(ch) = conn.create_channel().await else { return };
    let mut queues = work_queues(t);
    queues.push(t.dead_queue());
    for q in queues {
        let _ = ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await;
    }
    for e in [t.exchange(), t.retry_exchange()] {
        let _ = ch.exchange_delete(e.as_str().into(), ExchangeDeleteOptions::default()).await;
    }
    let _ = conn.close(200, "test done".into()).await;
}

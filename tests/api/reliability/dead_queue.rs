//! `<p>.dead` is bounded (docs/ARCHITECTURE.md, "RabbitMQ topology": the database
//! holds the truth, the queue is the operators' view), and a deployment whose dead
//! queue an older herald declared without the bound still starts.

use herald::queue::topology::DEAD_MAX_LENGTH;
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable, LongString};

use crate::helpers::{amqp, spawn_app_with, wait_ready};

fn quorum(bounded: bool) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString(LongString::from("quorum")));
    if bounded {
        args.insert("x-max-length".into(), AMQPValue::LongLongInt(DEAD_MAX_LENGTH));
        args.insert("x-overflow".into(), AMQPValue::LongString(LongString::from("drop-head")));
    }
    args
}

/// Declares `queue` with `args`; whether the broker agreed (a queue's arguments
/// never change: different ones answer PRECONDITION_FAILED).
async fn declare(queue: &str, args: FieldTable) -> bool {
    let conn = amqp().await;
    let ch = conn.create_channel().await.unwrap();
    let opts = QueueDeclareOptions { durable: true, ..Default::default() };
    let agreed = ch.queue_declare(queue.into(), opts, args).await.is_ok();
    let _ = conn.close(200, "declared".into()).await;
    agreed
}

#[actix_web::test]
async fn a_fresh_dead_queue_is_bounded() {
    let app = spawn_app_with(|_| {}).await;
    wait_ready(&app).await;
    let dead = format!("{}.dead", app.settings.amqp.prefix);

    assert!(declare(&dead, quorum(true)).await, "herald declared {dead} with its bound");
    assert!(!declare(&dead, quorum(false)).await, "{dead} has arguments beyond a plain quorum queue");
}

#[actix_web::test]
async fn a_dead_queue_declared_earlier_without_a_bound_is_used_as_it_is() {
    let prefix = format!("herald-test-{:016x}", rand::random::<u64>());
    let dead = format!("{prefix}.dead");
    assert!(declare(&dead, quorum(false)).await);

    let app = spawn_app_with(|s| s.amqp.prefix = prefix.clone()).await;

    // The link is up (topology declared), not looping on PRECONDITION_FAILED.
    wait_ready(&app).await;
    assert!(declare(&dead, quorum(false)).await, "the old queue is left as it was");
}

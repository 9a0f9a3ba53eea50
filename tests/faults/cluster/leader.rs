//! The node leading the bulk delivery queue, and holding herald's connection,
//! stops mid bulk: the queue's leader moves to a node that is left, herald
//! reconnects there, and every user gets exactly one new invite
//! (docs/ARCHITECTURE.md, "Scaling out").

use std::time::{Duration, Instant};

use serde_json::json;

use super::{begin, control, leader, leader_now, on_cluster, Heal, SHARED_POSTGRES};
use crate::harness::{eventually, figure, missing_and_twice, Fault};

const USERS: usize = 3_000;

/// The value of one `HERALD__` key of `fault`'s processes.
pub fn setting(fault: &Fault, key: &str) -> String {
    fault.env().into_iter().find(|(k, _)| k == key).map(|(_, v)| v).expect(key)
}

#[actix_web::test]
async fn the_node_leading_the_delivery_queue_stops_mid_bulk_every_user_gets_exactly_one_invite() {
    // Arrange: the queues declared (and their leaders placed) by a first process,
    // then herald connected first to the node leading `<p>.bulk.email`.
    let mut fault = begin(SHARED_POSTGRES).await;
    let _heal = Heal;
    on_cluster(&mut fault, 1);
    // Two messages of 100 deliveries in hand at a time: the rest waits in the queue.
    fault.set("HERALD__AMQP__PREFETCH", "2");
    let queue = format!("{}.bulk.email", setting(&fault, "HERALD__AMQP__PREFIX"));
    let mut first = fault.herald("declare").await;
    let node = leader(&queue).await;
    assert!(first.terminate().await.success(), "{}", first.tail());
    on_cluster(&mut fault, node);
    let herald = fault.herald("bulk").await;
    let org = fault.org(&herald).await;
    fault.users_with_codes(&org, "lead", USERS).await;

    // Act: the leader stops (its connections close first, then it exits) once a
    // tenth of the mails are out, stays down until the queue has a new leader and
    // herald delivers again through the nodes left, and starts again.
    fault.start_job(&herald, &json!({"orgId": org, "allPending": true})).await;
    eventually("a tenth of the re-invites", Duration::from_secs(120), || async {
        (fault.smtp.received() >= USERS / 10).then_some(())
    })
    .await;
    let stopped = Instant::now();
    let at_stop = fault.smtp.received();
    control(false, &["stop", &node.to_string()]).await;
    let new_leader = eventually("a new leader of the bulk queue", Duration::from_secs(60), || async {
        leader_now(&queue).await.ok().filter(|n| *n != node)
    })
    .await;
    eventually("mails while the node is down", Duration::from_secs(60), || async {
        (fault.smtp.received() > at_stop).then_some(())
    })
    .await;
    let during_outage = fault.smtp.received() - at_stop;
    control(false, &["start", &node.to_string()]).await;
    let outage = stopped.elapsed();
    let at_start = fault.smtp.received();
    assert!(at_stop < USERS / 2, "most of the bulk was out before the node stopped: the outage tested little");

    // Assert: every user exactly one new invite.
    eventually("every user's re-invite", Duration::from_secs(120), || async {
        let (missing, _) = missing_and_twice(&fault.mails_per_recipient(), "lead", USERS);
        missing.is_empty().then_some(())
    })
    .await;
    fault.settled(Duration::from_secs(60)).await;
    let (missing, twice) = missing_and_twice(&fault.mails_per_recipient(), "lead", USERS);
    figure(
        "cluster: leader stopped mid bulk",
        &format!(
            "{USERS}-user bulk; node {node} (leader of the bulk queue, herald's connection) down for {:.1} s \
             (stop, a new leader and mails again, start) from {at_stop} mails out, {at_start} when it was back \
             ({during_outage} sent while it was down); leader moved to node {new_leader}; {} missing, {} twice",
            outage.as_secs_f64(),
            missing.len(),
            twice.len()
        ),
    );
    assert_ne!(new_leader, node, "the leader did not move");
    assert!(missing.is_empty() && twice.is_empty(), "missing {missing:?}, twice {twice:?}");
}

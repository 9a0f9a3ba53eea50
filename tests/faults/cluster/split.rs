//! herald as one `api` process and two `worker` processes, each connected to
//! another node of the cluster: a 3,000-user bulk re-invite gives every user
//! exactly one new invite (docs/ARCHITECTURE.md, "Scaling out").

use std::time::Duration;

use serde_json::json;

use super::{begin, on_cluster, urls, Heal, SHARED_POSTGRES};
use crate::harness::{eventually, figure, missing_and_twice};

const USERS: usize = 3_000;

#[actix_web::test]
async fn one_api_and_two_worker_processes_give_every_user_exactly_one_invite() {
    // Arrange: api on node 1, the workers on nodes 2 and 3.
    let mut fault = begin(SHARED_POSTGRES).await;
    let _heal = Heal;
    on_cluster(&mut fault, 1);
    fault.set("HERALD__ROLES", "api");
    let api = fault.herald("api").await;
    fault.set("HERALD__ROLES", "worker");
    fault.set("HERALD__AMQP__URLS", &urls(2));
    let w1 = fault.herald("worker-1").await;
    fault.set("HERALD__AMQP__URLS", &urls(3));
    let w2 = fault.herald("worker-2").await;
    let org = fault.org(&api).await;
    fault.users_with_codes(&org, "split", USERS).await;

    // Act
    fault.start_job(&api, &json!({"orgId": org, "allPending": true})).await;

    // Assert: every user exactly one invite, sent by both workers.
    eventually("every user's re-invite", Duration::from_secs(180), || async {
        let (missing, _) = missing_and_twice(&fault.mails_per_recipient(), "split", USERS);
        missing.is_empty().then_some(())
    })
    .await;
    fault.settled(Duration::from_secs(60)).await;
    let (missing, twice) = missing_and_twice(&fault.mails_per_recipient(), "split", USERS);
    figure(
        "cluster: one api, two workers",
        &format!(
            "{USERS}-user bulk through an api process, two worker processes: {} missing, {} twice",
            missing.len(),
            twice.len()
        ),
    );
    assert!(missing.is_empty() && twice.is_empty(), "missing {missing:?}, twice {twice:?}");
    let mut all = [api, w1, w2];
    for h in &mut all {
        assert!(h.exited().is_none(), "{}", h.tail());
    }
}

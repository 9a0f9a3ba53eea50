//! `DeliveryWorker`: the actor a delivery consumer hands its messages to. A shell
//! over [`Pipeline::handle`]; each message is handled concurrently (the consumer's
//! prefetch bounds how many).

use actix::prelude::*;

use super::Pipeline;
use crate::queue::{Disposition, Incoming};

pub struct DeliveryWorker {
    pipeline: Pipeline,
}

impl DeliveryWorker {
    /// Starts the worker on `arbiter` (its consumer's), so deliveries of one queue
    /// are handled on that queue's thread, and their claims and records are
    /// batched there.
    pub fn start_in(arbiter: &ArbiterHandle, pipeline: Pipeline) -> Addr<DeliveryWorker> {
        Supervisor::start_in_arbiter(arbiter, move |_| DeliveryWorker { pipeline: pipeline.batched() })
    }
}

impl Actor for DeliveryWorker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The broker's prefetch is the real bound on work in flight; the mailbox
        // only needs to hold what the consumers pass on.
        ctx.set_mailbox_capacity(1024);
    }
}

impl Supervised for DeliveryWorker {}

impl Handler<Incoming> for DeliveryWorker {
    type Result = ResponseFuture<Disposition>;

    fn handle(&mut self, msg: Incoming, _ctx: &mut Self::Context) -> Self::Result {
        let pipeline = self.pipeline.clone();
        Box::pin(async move { pipeline.handle(msg).await })
    }
}

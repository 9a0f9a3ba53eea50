//! `BulkWorker`: the actor the resend-request consumer hands its messages to. A
//! shell over [`RequestHandler::handle`], kept apart so that one generic worker
//! shell can replace it and `DeliveryWorker` alike (docs/ARCHITECTURE.md, "Actors":
//! it owns nothing, a restart loses nothing).

use actix::prelude::*;

use super::RequestHandler;
use crate::queue::{Disposition, Incoming};

pub struct BulkWorker {
    handler: RequestHandler,
}

impl BulkWorker {
    /// Starts the worker on `arbiter` (its consumer's thread), where its resends
    /// are batched.
    pub fn start_in(arbiter: &ArbiterHandle, handler: RequestHandler) -> Addr<BulkWorker> {
        Supervisor::start_in_arbiter(arbiter, move |_| BulkWorker { handler: handler.batched() })
    }
}

impl Actor for BulkWorker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The broker's prefetch is the real bound on work in flight; the mailbox
        // only needs to hold what the consumer passes on.
        ctx.set_mailbox_capacity(1024);
    }
}

impl Supervised for BulkWorker {}

impl Handler<Incoming> for BulkWorker {
    type Result = ResponseFuture<Disposition>;

    fn handle(&mut self, msg: Incoming, _ctx: &mut Self::Context) -> Self::Result {
        let handler = self.handler.clone();
        Box::pin(async move { handler.handle(msg).await })
    }
}

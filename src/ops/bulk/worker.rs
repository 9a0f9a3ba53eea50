//! `BulkWorker`: the actor the resend-request consumer hands its messages to, the
//! generic [`Worker`] shell over a [`RequestHandler`] (docs/ARCHITECTURE.md,
//! "Actors": it owns nothing, a restart loses nothing).

use actix::prelude::*;

use super::RequestHandler;
use crate::queue::{Disposition, Handle, Incoming, Worker};

/// The resend-request consumer's actor.
pub type BulkWorker = Worker<RequestHandler>;

impl Handle for RequestHandler {
    async fn handle(&self, msg: Incoming) -> Disposition {
        RequestHandler::handle(self, msg).await
    }
}

impl Worker<RequestHandler> {
    /// Starts the worker on `arbiter` (its consumer's thread), where its resends
    /// are batched.
    pub fn start_in(arbiter: &ArbiterHandle, handler: RequestHandler) -> Addr<BulkWorker> {
        Worker::start_with(arbiter, move || handler.batched())
    }
}

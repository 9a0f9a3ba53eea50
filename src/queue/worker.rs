//! `Worker<H>`: the actor a [`QueueConsumer`](super::QueueConsumer) hands its
//! messages to, a shell over a [`Handle`]. It knows nothing of what the messages
//! mean: the handler decides, the worker only runs each message's handling
//! concurrently (the consumer's prefetch bounds how many) and answers with the
//! [`Disposition`] the consumer carries out.
//!
//! Start it on the consumer's Arbiter, so one queue's work runs on that queue's
//! thread (docs/ARCHITECTURE.md, "Actors"):
//!
//! ```text
//! QueueConsumer::start(link, topology, options, |arbiter| {
//!     Worker::start_with(arbiter, move || handler.batched()).recipient()
//! }, publisher);
//! ```

use std::future::Future;
use std::rc::Rc;

use actix::prelude::*;

use super::{Disposition, Incoming};

/// What a worker runs for each message. Implement it with an `async fn`.
pub trait Handle: 'static {
    /// Handles one message and says what to do with it. It must not panic: actix
    /// does not restart an actor whose handler panicked.
    fn handle(&self, msg: Incoming) -> impl Future<Output = Disposition>;
}

/// Messages the mailbox holds: the broker's prefetch is the real bound on work in
/// flight; the mailbox only needs to hold what the consumers pass on.
const MAILBOX: usize = 1024;

/// The actor shell; holds nothing but its handler, so a restart loses nothing.
pub struct Worker<H> {
    /// Shared with the handlings in flight; never sent to another thread.
    handler: Rc<H>,
}

impl<H: Handle> Worker<H> {
    /// Starts the worker on `arbiter` under a supervisor. `make` builds the handler
    /// on that thread, so whatever the handler keeps per thread (batchers) lives
    /// where the messages are handled.
    pub fn start_with(arbiter: &ArbiterHandle, make: impl FnOnce() -> H + Send + 'static) -> Addr<Worker<H>> {
        Supervisor::start_in_arbiter(arbiter, move |_| Worker { handler: Rc::new(make()) })
    }
}

impl<H: Handle> Actor for Worker<H> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX);
    }
}

impl<H: Handle> Supervised for Worker<H> {}

impl<H: Handle> Handler<Incoming> for Worker<H> {
    type Result = ResponseFuture<Disposition>;

    fn handle(&mut self, msg: Incoming, _ctx: &mut Self::Context) -> Self::Result {
        let handler = self.handler.clone();
        Box::pin(async move { handler.handle(msg).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Acks what names itself `ok`, parks the rest.
    struct Judge;

    impl Handle for Judge {
        async fn handle(&self, msg: Incoming) -> Disposition {
            if msg.body == b"ok" {
                Disposition::Ack
            } else {
                Disposition::Dead { reason: "not ok".into() }
            }
        }
    }

    fn incoming(body: &[u8]) -> Incoming {
        Incoming {
            kind: None,
            body: body.to_vec(),
            headers: BTreeMap::new(),
            routing_key: "k".into(),
            redelivered: false,
        }
    }

    #[actix_rt::test]
    async fn the_worker_answers_with_the_handlers_disposition() {
        let worker = Worker::start_with(&Arbiter::current(), || Judge);
        assert_eq!(worker.send(incoming(b"ok")).await.unwrap(), Disposition::Ack);
        assert_eq!(worker.send(incoming(b"no")).await.unwrap(), Disposition::Dead { reason: "not ok".into() });
    }
}

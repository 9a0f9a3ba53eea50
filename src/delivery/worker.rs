//! `DeliveryWorker`: the actor a delivery consumer hands its messages to, the
//! generic [`Worker`] shell over a [`Pipeline`] (docs/ARCHITECTURE.md, "Actors").

use actix::prelude::*;

use super::Pipeline;
use crate::queue::Worker;

/// The delivery consumers' actor.
pub type DeliveryWorker = Worker<Pipeline>;

impl Worker<Pipeline> {
    /// Starts the worker on `arbiter` (its consumer's), so deliveries of one queue
    /// are handled on that queue's thread, and their claims and records are
    /// batched there.
    pub fn start_in(arbiter: &ArbiterHandle, pipeline: Pipeline) -> Addr<DeliveryWorker> {
        Worker::start_with(arbiter, move || pipeline.batched())
    }
}

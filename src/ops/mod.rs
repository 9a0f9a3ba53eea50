//! Operators' tools: importing users, bulk re-invites (the resend-request queue
//! and its jobs) and the recovery of dead deliveries. Above `invite` and
//! `delivery`: a bulk request is exactly one invite-service resend, a replay puts a
//! delivery back in the outbox.

pub mod bulk;
pub mod import;
pub mod replay;

pub use bulk::{BulkService, BulkWorker, JobStatus, ResendMessage, Selection};
pub use replay::{ReplayOutcome, ReplayReport, ReplayService};

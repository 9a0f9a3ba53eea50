//! herald under faults that can be shown on the shared PostgreSQL and RabbitMQ
//! without stopping or alarming them (docs/ARCHITECTURE.md, "Guarantees and how
//! they are kept"): a message the broker lost still ends its delivery (`stranded`);
//! a claim of a dead process is taken over at once, a late attempt never overwrites
//! a later one, and a delivery in work keeps its lease (`claims`); the relay's claim
//! commits before it publishes (`relay`); ID nodes are leased (`nodes`); the dead
//! queue is bounded (`dead_queue`).
//!
//! `fixture` makes deliveries straight in a database no herald runs on, where a
//! test drives the store functions step by step with no sweeper in between.

mod claims;
mod dead_queue;
mod fixture;
mod nodes;
mod relay;
mod stranded;

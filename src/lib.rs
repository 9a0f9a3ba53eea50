//! herald resends invite codes and delivers them by e-mail and SMS.
//!
//! The map of the crate, top to bottom (dependencies point down):
//!
//! - [`startup`]: [`startup::Application`], what `herald serve` starts; the tests
//!   build the same thing on port 0.
//! - [`api`]: actix-web routes in two framings (REST and Connect) over one
//!   [`api::call::Call`], the error mapping, request ids. Thin: parse, call,
//!   serialise.
//! - [`ops`]: operators' tools: user import, bulk re-invites (jobs, the
//!   resend-request queue and its consumer, retried like deliveries), replay of dead
//!   deliveries. [`cli`]: their subcommands.
//! - [`invite`]: create, resend and verify invite codes: one transaction each, the
//!   checks in API.md's order. [`directory`]: organizations and users.
//!   [`auth`]: tokens and permissions.
//! - [`store`]: every SQL statement, by table, and the migrations.
//! - [`domain`]: newtypes and rules (ids, contacts, codes, URL templates, errors),
//!   free of HTTP, SQL and AMQP types.
//! - [`config`], [`telemetry`]: layered settings, the tracing subscriber.

pub mod api;
pub mod auth;
pub mod batch;
pub mod channels;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod directory;
pub mod domain;
pub mod invite;
pub mod metrics;
pub mod ops;
pub mod queue;
pub mod render;
pub mod startup;
pub mod store;
pub mod telemetry;

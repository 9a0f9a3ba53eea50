//! herald resends invite codes and delivers them by e-mail and SMS.
//!
//! The map of the crate, in the order a resend travels (docs/ARCHITECTURE.md, "The
//! way a resend travels"); dependencies point down the layers named in "Modules":
//!
//! 1. [`startup`]: [`startup::Application`], what `herald serve` starts (the tests
//!    build the same thing on port 0): the pool, the broker link, the actors, the
//!    HTTP server, shutdown.
//! 2. [`api`]: actix-web routes in two framings (REST and Connect) over one
//!    [`api::call::Call`], the error mapping, request ids. Thin: parse, call,
//!    serialise. [`auth`] turns the bearer token into a principal.
//! 3. [`invite`]: create, resend and verify invite codes, the checks in API.md's
//!    order: `invite/rules.rs` decides (pure), `invite/issue.rs` runs the shared
//!    transaction. [`batch`] gathers what arrives during one statement into the next.
//!    [`directory`]: organizations and users.
//! 4. [`store`]: every SQL statement, by table (the outbox rows included), and the
//!    migrations.
//! 5. [`delivery`]: the outbox relay publishes committed rows; the pipeline claims,
//!    renders, sends and records each delivery; [`delivery::retry`] decides what an
//!    attempt leads to (pure).
//! 6. [`queue`]: the only user of the broker client: link, topology, confirmed
//!    publisher, the generic consumer and worker shell.
//! 7. [`render`]: handlebars templates and i18n texts; [`channels`]: SMTP and SMS
//!    senders. [`metrics`]: Prometheus counters of all of the above.
//! 8. [`domain`]: newtypes and rules (ids, contacts, codes, URL templates, delivery
//!    statuses, errors), free of HTTP, SQL and AMQP types.
//!
//! Beside the way of a resend: [`ops`], operators' tools (user import, bulk
//! re-invites through the resend-request queue, replay of dead deliveries) and
//! [`cli`], their subcommands; [`config`] and [`telemetry`], layered settings and the
//! tracing subscriber; [`liveness`], the process's row and heartbeat (its ID node
//! lease, and what lets another process take over its claims when it dies).

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
pub mod liveness;
pub mod metrics;
pub mod ops;
pub mod queue;
pub mod render;
pub mod startup;
pub mod store;
pub mod telemetry;

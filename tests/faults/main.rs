//! herald under faults: the real binary (`herald serve`), killed, cut off from its
//! broker, its database and its mail server, run twice on one state, and checked by
//! what its users see: the mails each received and the answers each request got.
//! Each test has its own database and queue prefix on a PostgreSQL cluster and a
//! RabbitMQ node of this binary's own (docs/ARCHITECTURE.md, "Testing"), and the
//! tests take turns on them, so the fault of one never hits another. Every wait is
//! bounded; the only sleeps are the outages themselves.

// The SMTP server of the API tests, one copy for both binaries.
#[allow(dead_code)]
#[path = "../api/smtp.rs"]
mod smtp;

mod harness;

mod broker;
mod crash;
mod database;
mod mail_server;
mod processes;

mod cluster;

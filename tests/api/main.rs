//! herald's black-box tests: the real application on port 0, its own database per
//! test, driven through HTTP (REST and Connect), AMQP and SMTP, and checked by what a
//! client sees and by the rows left behind. API.md is the contract; each module names
//! its section. `helpers` is the harness every module shares.

mod body;
mod bulk;
mod checks;
mod cli;
mod concurrency;
mod connect;
mod create;
mod delivery;
mod details;
mod directory;
mod helpers;
mod import;
mod ops_helpers;
mod outbox;
mod reliability;
mod replay;
mod resend;
mod service;
mod smtp;
mod tokens;
mod verify;

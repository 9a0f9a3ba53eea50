//! The test harness, by concern: starting herald with a database and queue prefix of
//! the test's own (`app`), talking to it over HTTP and making the fixtures a test
//! needs (`client`), checking what it answers (`asserts`), the broker as an outside
//! producer and an operator see it (`broker`), and waiting for facts rather than for
//! time (`waiting`).
//!
//! Everything is re-exported here, so tests name `crate::helpers::…` whatever file a
//! helper lives in.

mod app;
mod asserts;
mod broker;
mod client;
mod waiting;

pub use app::{spawn_app, spawn_app_from, spawn_app_with, spawn_app_with_sms, TestApp, TestDatabase};
pub use asserts::{
    assert_connect_error, assert_error, assert_error_code, assert_write_details, ok_json, retry_after, sequence,
    timestamp,
};
pub use broker::{amqp, close_connections_named, drain_queue, publish, Taken};
pub use client::Delivery;
pub use waiting::{
    eventually, parked, settled, statuses, wait_attempts, wait_ready, wait_status, wait_until_expired, WAIT,
};

//! Snowflake-style IDs: decimal strings, unique, roughly time-ordered (API.md §1).
//!
//! 41 bits of milliseconds since 2024-01-01, 10 bits of node, 12 bits of sequence.
//! The node number is leased from PostgreSQL (`store::processes`, kept by the
//! process's heartbeat in `liveness`), so no two live herald processes that share a
//! database mint with the same node; a process that loses its lease (silent past
//! `delivery.process_dead_after` while another took the number) is given a new one
//! with [`IdGenerator::set_node`]. Commands that only read use [`READ_ONLY_NODE`],
//! which is never leased.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use chrono::Utc;

/// 2024-01-01T00:00:00Z in Unix milliseconds.
const EPOCH_MS: i64 = 1_704_067_200_000;
const NODE_BITS: u32 = 10;
const SEQ_BITS: u32 = 12;

/// The node of commands that mint no ids (`herald deliveries list`): they take no
/// lease, and the lease never hands this number out.
pub const READ_ONLY_NODE: u16 = 1023;

#[derive(Debug)]
pub struct IdGenerator {
    /// The leased node number; it changes only when the lease was lost.
    node: AtomicI64,
    /// (last millisecond used, sequence within it). A mutex rather than an atomic:
    /// the two must move together, and the critical section is a few instructions.
    state: Mutex<(i64, i64)>,
}

impl IdGenerator {
    pub fn new(node: u16) -> Self {
        IdGenerator { node: AtomicI64::new(Self::masked(node)), state: Mutex::new((0, 0)) }
    }

    fn masked(node: u16) -> i64 {
        i64::from(node) & ((1 << NODE_BITS) - 1)
    }

    /// Mints with `node` from now on (a new lease after the old one was lost).
    pub fn set_node(&self, node: u16) {
        self.node.store(Self::masked(node), Ordering::SeqCst);
    }

    pub fn node(&self) -> u16 {
        self.node.load(Ordering::SeqCst) as u16
    }

    /// A new ID, strictly greater than every ID this generator returned before.
    pub fn next_i64(&self) -> i64 {
        // A poisoned lock only means another thread panicked between two plain
        // integer writes; the pair is still consistent, so keep using it.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Utc::now().timestamp_millis() - EPOCH_MS;
        let (last, seq) = *state;
        let (ms, seq) = if now > last {
            (now, 0)
        } else if seq + 1 < (1 << SEQ_BITS) {
            (last, seq + 1)
        } else {
            // Sequence exhausted within one millisecond (or the clock went back):
            // borrow the next millisecond rather than repeat an ID.
            (last + 1, 0)
        };
        *state = (ms, seq);
        (ms << (NODE_BITS + SEQ_BITS)) | (self.node.load(Ordering::SeqCst) << SEQ_BITS) | seq
    }

    pub fn next_string(&self) -> String {
        self.next_i64().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_strictly_increase_and_are_unique() {
        let g = IdGenerator::new(7);
        let mut last = 0;
        for _ in 0..20_000 {
            let id = g.next_i64();
            assert!(id > last);
            last = id;
        }
    }

    #[test]
    fn different_nodes_never_collide_in_one_millisecond() {
        let (a, b) = (IdGenerator::new(1), IdGenerator::new(2));
        let xs: std::collections::HashSet<_> = (0..1000).map(|_| a.next_i64()).collect();
        assert!((0..1000).all(|_| !xs.contains(&b.next_i64())));
    }

    #[test]
    fn a_new_node_shows_in_the_next_id() {
        let g = IdGenerator::new(5);
        let node_of = |id: i64| (id >> SEQ_BITS) & ((1 << NODE_BITS) - 1);
        assert_eq!(node_of(g.next_i64()), 5);
        g.set_node(9);
        assert_eq!((g.node(), node_of(g.next_i64())), (9, 9));
    }
}

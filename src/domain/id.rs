//! Snowflake-style IDs: decimal strings, unique, roughly time-ordered (API.md §1).
//!
//! 41 bits of milliseconds since 2024-01-01, 10 bits of node, 12 bits of sequence.
//! The node number comes from a PostgreSQL sequence at start-up (`store::ids`), so up
//! to 1024 herald processes that share a database never mint the same ID.

use std::sync::Mutex;

use chrono::Utc;

/// 2024-01-01T00:00:00Z in Unix milliseconds.
const EPOCH_MS: i64 = 1_704_067_200_000;
const NODE_BITS: u32 = 10;
const SEQ_BITS: u32 = 12;

#[derive(Debug)]
pub struct IdGenerator {
    node: i64,
    /// (last millisecond used, sequence within it). A mutex rather than an atomic:
    /// the two must move together, and the critical section is a few instructions.
    state: Mutex<(i64, i64)>,
}

impl IdGenerator {
    pub fn new(node: u16) -> Self {
        IdGenerator { node: i64::from(node) & ((1 << NODE_BITS) - 1), state: Mutex::new((0, 0)) }
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
        (ms << (NODE_BITS + SEQ_BITS)) | (self.node << SEQ_BITS) | seq
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
}

//! Operators' tools: bulk imports; bulk re-invites and replay come next.
//!
//! Each tool is a plain async function over the pool that reports its progress to a
//! callback, so the command line (or, later, a bulk job's consumer) decides how to
//! show it.

pub mod import;

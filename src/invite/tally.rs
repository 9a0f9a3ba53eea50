//! The codes each organization sent, counted by the minute for the limit per
//! organization (`limits.rs`, docs/API.md §2.1), kept in memory and written to
//! `org_send_counts` once a second per process (docs/ARCHITECTURE.md,
//! "Performance"). Written after every commit instead, the count cost a commit of
//! its own per transaction, and one organization's minute row serialised the
//! counts of all its resends.
//!
//! A count stays in memory, and is added to what the database says, until the
//! statement that wrote it committed: this process never undercounts itself.
//! Other processes see it within a second; a process that dies loses at most its
//! last second of counts, which lets that many codes past an hourly limit.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// How often a process writes its counts (`InviteService::count_sends_every_second`).
pub(crate) const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Counts per organization, per minute.
type Minutes = HashMap<String, BTreeMap<DateTime<Utc>, i64>>;

/// Rows to write: `(organization, minute, codes)`.
pub(crate) type Rows = Vec<(String, DateTime<Utc>, i64)>;

#[derive(Debug, Clone, Default)]
pub(crate) struct OrgTally(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    /// Counted here, not yet committed to the database.
    unwritten: Mutex<Minutes>,
    flushing: AtomicBool,
}

/// The minute a code sent at `at` is counted in.
pub(crate) fn minute(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::minutes(1)).unwrap_or(at)
}

impl OrgTally {
    fn lock(&self) -> std::sync::MutexGuard<'_, Minutes> {
        // A poisoned map means a thread panicked between two map operations; the
        // counts are still usable.
        self.0.unwritten.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts `n` codes of `org` sent at `at`.
    pub(crate) fn add(&self, org: &str, at: DateTime<Utc>, n: i64) {
        let mut map = self.lock();
        let minutes = match map.get_mut(org) {
            Some(m) => m,
            None => map.entry(org.to_string()).or_default(),
        };
        *minutes.entry(minute(at)).or_default() += n;
    }

    /// What this process counted for `org` since `since` and has not written yet:
    /// how many, and the earliest minute they are in.
    pub(crate) fn unwritten(&self, org: &str, since: DateTime<Utc>) -> (i64, Option<DateTime<Utc>>) {
        let map = self.lock();
        let Some(minutes) = map.get(org) else { return (0, None) };
        let mut counted = minutes.range(minute(since)..).peekable();
        let oldest = counted.peek().map(|(m, _)| **m);
        (counted.map(|(_, n)| n).sum(), oldest)
    }

    /// The counts to write, or `None` when there are none or a write of them runs.
    /// The caller writes them and then calls [`Self::written`], or [`Self::failed`].
    pub(crate) fn take(&self) -> Option<Rows> {
        if self.0.flushing.swap(true, Ordering::AcqRel) {
            return None;
        }
        let rows: Rows = self
            .lock()
            .iter()
            .flat_map(|(org, minutes)| minutes.iter().map(move |(m, n)| (org.clone(), *m, *n)))
            .collect();
        if rows.is_empty() {
            self.0.flushing.store(false, Ordering::Release);
            return None;
        }
        Some(rows)
    }

    /// `rows` (from [`Self::take`]) are committed: they leave memory.
    pub(crate) fn written(&self, rows: &[(String, DateTime<Utc>, i64)]) {
        let mut map = self.lock();
        for (org, m, n) in rows {
            let Some(minutes) = map.get_mut(org) else { continue };
            if let Some(left) = minutes.get_mut(m) {
                *left -= n;
                if *left <= 0 {
                    minutes.remove(m);
                }
            }
            if minutes.is_empty() {
                map.remove(org);
            }
        }
        self.0.flushing.store(false, Ordering::Release);
    }

    /// The write failed: the counts stay in memory for the next flush.
    pub(crate) fn failed(&self) {
        self.0.flushing.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn counts_are_kept_by_the_minute_and_read_from_a_window() {
        let t = OrgTally::default();
        t.add("o1", at("2026-12-01T12:00:10Z"), 2);
        t.add("o1", at("2026-12-01T12:00:50Z"), 1);
        t.add("o1", at("2026-12-01T12:05:00Z"), 4);
        t.add("o2", at("2026-12-01T12:05:00Z"), 9);
        assert_eq!(t.unwritten("o1", at("2026-12-01T11:10:00Z")), (7, Some(at("2026-12-01T12:00:00Z"))));
        // A window that starts within a minute takes that whole minute.
        assert_eq!(t.unwritten("o1", at("2026-12-01T12:00:30Z")), (7, Some(at("2026-12-01T12:00:00Z"))));
        assert_eq!(t.unwritten("o1", at("2026-12-01T12:01:00Z")), (4, Some(at("2026-12-01T12:05:00Z"))));
        assert_eq!(t.unwritten("o3", at("2026-12-01T11:00:00Z")), (0, None));
    }

    #[test]
    fn one_write_at_a_time_and_what_it_wrote_leaves_memory_but_not_what_came_meanwhile() {
        let t = OrgTally::default();
        assert_eq!(t.take(), None, "nothing counted, nothing to write");
        t.add("o1", at("2026-12-01T12:00:10Z"), 2);
        let rows = t.take().expect("a count to write");
        assert_eq!(rows, vec![("o1".to_string(), at("2026-12-01T12:00:00Z"), 2)]);
        assert_eq!(t.take(), None, "one write at a time");
        t.add("o1", at("2026-12-01T12:00:20Z"), 1);
        t.written(&rows);
        assert_eq!(t.unwritten("o1", at("2026-12-01T11:30:00Z")).0, 1);
        assert_eq!(t.take().map(|r| r[0].2), Some(1));
        t.failed();
        assert_eq!(t.unwritten("o1", at("2026-12-01T11:30:00Z")).0, 1, "a failed write keeps the count");
        let rows = t.take().expect("the kept count");
        t.written(&rows);
        assert_eq!(t.unwritten("o1", at("2026-12-01T11:30:00Z")), (0, None));
        assert_eq!(t.take(), None, "all written");
    }
}

//! The codes each organization sent, counted by the minute for the limit per
//! organization (`limits.rs`, docs/API.md §2.1), kept in memory and written to
//! `org_send_counts` at most once a second per process (docs/ARCHITECTURE.md,
//! "Performance"). Written after every commit instead, the count cost a commit of
//! its own per transaction, and one organization's minute row serialised the
//! counts of all its resends.
//!
//! A count stays in memory, and is added to what the database says, until the
//! statement that wrote it committed: this process never undercounts itself.
//! Other processes see it within a second; a process that dies loses at most its
//! last second of counts, which lets that many codes past an hourly limit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// How often at most a process writes its counts.
const FLUSH_EVERY_MS: i64 = 1_000;

/// Counts per `(organization, minute)`.
type Minutes = HashMap<(String, DateTime<Utc>), i64>;

#[derive(Debug, Clone, Default)]
pub(crate) struct OrgTally(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    /// Counted here, not yet committed to the database.
    unwritten: Mutex<Minutes>,
    /// When the last flush started (ms since the epoch).
    last_flush_ms: AtomicI64,
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
        *self.lock().entry((org.to_string(), minute(at))).or_default() += n;
    }

    /// What this process counted for `org` since `since` and has not written yet:
    /// how many, and the earliest minute they are in.
    pub(crate) fn unwritten(&self, org: &str, since: DateTime<Utc>) -> (i64, Option<DateTime<Utc>>) {
        let from = minute(since);
        self.lock()
            .iter()
            .filter(|((o, m), _)| o == org && *m >= from)
            .fold((0, None), |(n, oldest), ((_, m), k)| (n + k, Some(oldest.map_or(*m, |o: DateTime<Utc>| o.min(*m)))))
    }

    /// The counts to write now, or `None` when a flush runs or ran less than a
    /// second ago. The caller writes them and then calls [`Self::written`], or
    /// [`Self::failed`].
    pub(crate) fn due(&self, now_ms: i64) -> Option<Vec<(String, DateTime<Utc>, i64)>> {
        if now_ms - self.0.last_flush_ms.load(Ordering::Relaxed) < FLUSH_EVERY_MS
            || self.0.flushing.swap(true, Ordering::AcqRel)
        {
            return None;
        }
        let rows: Vec<_> = self.lock().iter().map(|((o, m), n)| (o.clone(), *m, *n)).collect();
        if rows.is_empty() {
            self.0.flushing.store(false, Ordering::Release);
            return None;
        }
        self.0.last_flush_ms.store(now_ms, Ordering::Relaxed);
        Some(rows)
    }

    /// `rows` (from [`Self::due`]) are committed: they leave memory.
    pub(crate) fn written(&self, rows: &[(String, DateTime<Utc>, i64)]) {
        let mut map = self.lock();
        for (org, m, n) in rows {
            if let Some(left) = map.get_mut(&(org.clone(), *m)) {
                *left -= n;
                if *left <= 0 {
                    map.remove(&(org.clone(), *m));
                }
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
    fn a_flush_is_due_once_a_second_and_what_it_wrote_leaves_memory_but_not_what_came_meanwhile() {
        let t = OrgTally::default();
        assert_eq!(t.due(10_000), None, "nothing counted, nothing to write");
        t.add("o1", at("2026-12-01T12:00:10Z"), 2);
        let rows = t.due(10_500).expect("due: the last flush was half a second ago but wrote nothing");
        assert_eq!(rows, vec![("o1".to_string(), at("2026-12-01T12:00:00Z"), 2)]);
        assert_eq!(t.due(12_000), None, "one flush at a time");
        t.add("o1", at("2026-12-01T12:00:20Z"), 1);
        t.written(&rows);
        assert_eq!(t.unwritten("o1", at("2026-12-01T11:30:00Z")).0, 1);
        assert_eq!(t.due(11_000), None, "less than a second after the last");
        assert_eq!(t.due(11_600).map(|r| r[0].2), Some(1));
        t.failed();
        assert_eq!(t.unwritten("o1", at("2026-12-01T11:30:00Z")).0, 1, "a failed write keeps the count");
    }
}

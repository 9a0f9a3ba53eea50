//! The retry policy (docs/ARCHITECTURE.md, "Retries"), as plain functions.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// What happens after a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait this long (one of the declared delays), then try again.
    Retry(Duration),
    /// Attempts exhausted.
    Dead,
    /// The next try would come after the code expired.
    Expired,
}

/// Decides the next step after `attempts` (≥ 1) failed transiently.
///
/// The base delay is `delays[attempts-1]` (the last one repeats), jittered by
/// `jitter` (a factor in 0.8..=1.2) and rounded to the nearest declared delay; a
/// `Retry-After` picks the smallest declared delay that honours it.
pub fn after_transient(
    attempts: u32,
    max_attempts: u32,
    delays: &[Duration],
    retry_after: Option<Duration>,
    jitter: f64,
    now: DateTime<Utc>,
    code_expires_at: DateTime<Utc>,
) -> Next {
    if attempts >= max_attempts || delays.is_empty() {
        return Next::Dead;
    }
    let base = delays[(attempts as usize - 1).min(delays.len() - 1)];
    let wanted = base.mul_f64(jitter.clamp(0.8, 1.2));
    let mut delay = nearest(delays, wanted);
    if let Some(after) = retry_after {
        if after > delay {
            delay = delays.iter().copied().find(|d| *d >= after).unwrap_or(delays[delays.len() - 1]);
        }
    }
    let at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
    if at >= code_expires_at {
        Next::Expired
    } else {
        Next::Retry(delay)
    }
}

fn nearest(delays: &[Duration], wanted: Duration) -> Duration {
    let dist = |d: &Duration| d.as_secs_f64().ln() - wanted.as_secs_f64().ln();
    // Nearest on a log scale: 20s is nearer 30s than 5s, as a person would say.
    delays.iter().copied().min_by(|a, b| dist(a).abs().total_cmp(&dist(b).abs())).unwrap_or(wanted)
}

/// A jitter factor in 0.8..=1.2.
pub fn jitter() -> f64 {
    0.8 + rand::random::<f64>() * 0.4
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delays() -> Vec<Duration> {
        ["5s", "30s", "2m", "10m", "30m", "2h"].iter().map(|s| humantime::parse_duration(s).unwrap()).collect()
    }

    fn far() -> DateTime<Utc> {
        Utc::now() + chrono::Duration::days(3)
    }

    #[test]
    fn schedule_follows_the_attempt_count() {
        let now = Utc::now();
        assert_eq!(after_transient(1, 7, &delays(), None, 1.0, now, far()), Next::Retry(Duration::from_secs(5)));
        assert_eq!(after_transient(2, 7, &delays(), None, 1.2, now, far()), Next::Retry(Duration::from_secs(30)));
        assert_eq!(after_transient(6, 7, &delays(), None, 0.8, now, far()), Next::Retry(Duration::from_secs(7200)));
        assert_eq!(after_transient(7, 7, &delays(), None, 1.0, now, far()), Next::Dead);
    }

    #[test]
    fn retry_after_chooses_a_later_tier() {
        let now = Utc::now();
        assert_eq!(
            after_transient(1, 7, &delays(), Some(Duration::from_secs(45)), 1.0, now, far()),
            Next::Retry(Duration::from_secs(120))
        );
        assert_eq!(
            after_transient(1, 7, &delays(), Some(Duration::from_secs(1)), 1.0, now, far()),
            Next::Retry(Duration::from_secs(5))
        );
    }

    #[test]
    fn a_retry_never_outlives_the_code() {
        let now = Utc::now();
        let soon = now + chrono::Duration::seconds(10);
        assert_eq!(after_transient(2, 7, &delays(), None, 1.0, now, soon), Next::Expired);
    }
}

//! Prometheus metrics (`GET /metrics`).
//!
//! One registry per process, passed around as a value (no globals), so tests that
//! run several herald instances in one process keep their counts apart.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

use crate::domain::{AttemptOutcome, Channel, DeliveryStatus};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    inner: Arc<Inner>,
}

struct Inner {
    http_requests: IntCounterVec,
    resends: IntCounterVec,
    deliveries: IntCounterVec,
    attempt_seconds: HistogramVec,
    outbox_backlog: IntGauge,
    bulk_requests: IntCounterVec,
    replays: IntCounterVec,
    zitadel_messages: IntCounterVec,
    /// When the gauges read from the database were last refreshed.
    gauges_read_at: Mutex<Option<Instant>>,
}

/// How long a gauge read from the database is served before it is read again: a
/// scrape answers from the cached value, so scrapers (however many, however often)
/// cost the database at most one `count(*)` per interval.
pub const GAUGE_REFRESH: Duration = Duration::from_secs(5);

/// Whether a gauge read at `last` is due for a new read at `now`.
fn due(last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|t| now.saturating_duration_since(t) >= GAUGE_REFRESH)
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        // Registering fresh, uniquely named collectors on a new registry cannot fail.
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let inner = Inner {
            http_requests: counter("herald_http_requests_total", "HTTP requests by status code", &["status"]),
            resends: counter(
                "herald_invite_codes_total",
                "Invite codes issued or refused, by operation and outcome",
                &["operation", "outcome"],
            ),
            deliveries: counter(
                "herald_deliveries_total",
                "Deliveries reaching a status, by channel",
                &["channel", "status"],
            ),
            attempt_seconds: {
                let h = HistogramVec::new(
                    HistogramOpts::new("herald_delivery_attempt_seconds", "Duration of one send attempt")
                        .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
                    &["channel", "outcome"],
                )
                .expect("valid metric");
                registry.register(Box::new(h.clone())).expect("unique metric");
                h
            },
            bulk_requests: counter(
                "herald_bulk_requests_total",
                "Resend requests from the queue, by outcome (succeeded, retried, or the error id)",
                &["outcome"],
            ),
            replays: counter("herald_replays_total", "Dead deliveries replayed, by how", &["outcome"]),
            zitadel_messages: counter(
                "herald_zitadel_messages_total",
                "ZITADEL notifications by provider, event type and outcome (received, refused_signature, duplicate, delivered, dead)",
                &["provider", "event_type", "outcome"],
            ),
            gauges_read_at: Mutex::new(None),
            outbox_backlog: {
                let g = IntGauge::new("herald_outbox_backlog", "Queued deliveries not yet published to the broker")
                    .expect("valid metric");
                registry.register(Box::new(g.clone())).expect("unique metric");
                g
            },
        };
        Metrics { registry, inner: Arc::new(inner) }
    }

    pub fn http_request(&self, status: u16) {
        self.inner.http_requests.with_label_values(&[&status.to_string()]).inc();
    }

    pub fn invite_code(&self, operation: &str, outcome: &str) {
        self.inner.resends.with_label_values(&[operation, outcome]).inc();
    }

    pub fn delivery(&self, channel: Channel, status: DeliveryStatus) {
        self.inner.deliveries.with_label_values(&[channel.as_str(), status.as_str()]).inc();
    }

    pub fn attempt(&self, channel: Channel, outcome: AttemptOutcome, seconds: f64) {
        self.inner.attempt_seconds.with_label_values(&[channel.as_str(), outcome.as_str()]).observe(seconds);
    }

    pub fn bulk_request(&self, outcome: &str) {
        self.inner.bulk_requests.with_label_values(&[outcome]).inc();
    }

    pub fn replay(&self, outcome: &str) {
        self.inner.replays.with_label_values(&[outcome]).inc();
    }

    /// Whether the caller should read the database's gauges now; true at most once
    /// per [`GAUGE_REFRESH`], whoever asks (the first caller takes the turn).
    pub fn gauges_due(&self) -> bool {
        let mut last = self.inner.gauges_read_at.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if due(*last, now) {
            *last = Some(now);
            true
        } else {
            false
        }
    }

    pub fn zitadel_message(&self, provider: &str, event_type: &str, outcome: &str) {
        self.inner.zitadel_messages.with_label_values(&[provider, event_type, outcome]).inc();
    }

    pub fn set_outbox_backlog(&self, n: i64) {
        self.inner.outbox_backlog.set(n);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_are_read_at_most_once_per_interval() {
        let now = Instant::now();
        assert!(due(None, now));
        assert!(!due(Some(now), now + Duration::from_secs(1)));
        assert!(due(Some(now), now + GAUGE_REFRESH));
        let m = Metrics::new();
        assert!(m.gauges_due(), "the first scrape reads");
        assert!(!m.gauges_due(), "the next ones answer from the cache");
    }
}

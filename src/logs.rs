//! Diagnostics on stderr, kept readable under attack: each place that writes a line (one
//! `warn!` in the proxy or in a library, such as rustls refusing an SNI name or h2 refusing
//! streams) writes at most [`BURST`] lines per [`WINDOW`]; the rest are counted, in the
//! `consent_proxy_log_lines_suppressed_total` metric and in one summary line per place and
//! window. Debug and trace lines, asked for explicitly, are never held back.

use prometheus_client::metrics::counter::Counter;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::layer::{Context, Layer};

/// Lines one place may write per window.
pub const BURST: u32 = 5;
/// The window, after which held-back lines are summarized.
pub const WINDOW: Duration = Duration::from_secs(10);
/// The target of the summary lines, which are never held back.
const SUMMARY_TARGET: &str = "consent_proxy::logs";

/// Lines held back since start, for the metrics.
pub fn suppressed_lines() -> &'static Counter {
    static COUNTER: OnceLock<Counter> = OnceLock::new();
    COUNTER.get_or_init(Counter::default)
}

/// Where a line comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Place {
    Callsite(tracing::callsite::Identifier),
    /// A `log` record (rustls logs through the `log` crate): all share one callsite per level.
    Log {
        target: String,
        file: Option<String>,
        line: Option<u32>,
    },
}

/// One place's lines in the current window.
#[derive(Debug)]
struct Tally {
    since: Instant,
    written: u32,
    held: u64,
    /// The first held-back line, for the summary.
    sample: Option<String>,
    target: String,
}

/// The rate limit, shared between the layer and the thread that writes the summaries.
#[derive(Debug, Default, Clone)]
pub struct RateLimit {
    tallies: Arc<Mutex<HashMap<Place, Tally>>>,
}

/// Reads an event's message.
struct Message(Option<String>);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl RateLimit {
    /// Whether a line from `place` may be written at `now`. `message` (which runs the event's
    /// `Debug` and `Display` code, and so may log itself) is called without the lock held.
    fn admit(
        &self,
        place: Place,
        target: &str,
        now: Instant,
        message: impl FnOnce() -> String,
    ) -> bool {
        let needs_sample = {
            let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
            let tally = tallies.entry(place.clone()).or_insert_with(|| Tally {
                since: now,
                written: 0,
                held: 0,
                sample: None,
                target: target.to_string(),
            });
            if now.duration_since(tally.since) >= WINDOW && tally.held == 0 {
                tally.since = now;
                tally.written = 0;
            }
            if tally.written < BURST {
                tally.written += 1;
                return true;
            }
            tally.held += 1;
            tally.sample.is_none()
        };
        suppressed_lines().inc();
        if needs_sample {
            let sample = message();
            let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(t) = tallies.get_mut(&place)
                && t.sample.is_none()
            {
                t.sample = Some(sample);
            }
        }
        false
    }

    /// The summaries of the windows that have ended with lines held back, and a fresh window
    /// for their places.
    pub fn summaries(&self, now: Instant) -> Vec<String> {
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        tallies.retain(|_, t| {
            if now.duration_since(t.since) < WINDOW {
                return true;
            }
            if t.held > 0 {
                let took = now.duration_since(t.since).as_secs();
                out.push(format!(
                    "{} more lines like this from {} in the last {took} s were not written: {}",
                    t.held,
                    t.target,
                    t.sample.as_deref().unwrap_or("")
                ));
            }
            // Quiet places are forgotten; the others start a new window.
            false
        });
        out
    }

    /// Writes the summaries as their windows end (looked at every second), on a thread of its
    /// own, for the life of the process.
    pub fn spawn_summaries(&self) {
        let limit = self.clone();
        let _ = std::thread::Builder::new()
            .name("log-summary".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    for line in limit.summaries(Instant::now()) {
                        tracing::warn!(target: SUMMARY_TARGET, "{line}");
                    }
                }
            });
    }
}

impl<S: Subscriber> Layer<S> for RateLimit {
    fn event_enabled(&self, event: &Event<'_>, _ctx: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if *meta.level() > Level::INFO || meta.target() == SUMMARY_TARGET {
            return true;
        }
        let message = || {
            let mut m = Message(None);
            event.record(&mut m);
            m.0.unwrap_or_default()
        };
        let now = Instant::now();
        match event.normalized_metadata() {
            Some(log) => {
                let target = log.target().to_string();
                let place = Place::Log {
                    target: target.clone(),
                    file: log.file().map(str::to_string),
                    line: log.line(),
                };
                self.admit(place, &target, now, message)
            }
            None => self.admit(
                Place::Callsite(meta.callsite()),
                meta.target(),
                now,
                message,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(n: u32) -> Place {
        Place::Log {
            target: "rustls".into(),
            file: None,
            line: Some(n),
        }
    }

    #[test]
    fn a_place_writes_a_burst_per_window_and_the_rest_is_summarized() {
        let limit = RateLimit::default();
        let t0 = Instant::now();
        let written = (0..100)
            .filter(|i| limit.admit(place(1), "rustls", t0, || format!("Illegal SNI {i}")))
            .count();
        assert_eq!(written, BURST as usize);
        // Another place has a budget of its own.
        assert!(limit.admit(place(2), "h2", t0, String::new));
        assert!(limit.summaries(t0 + Duration::from_secs(1)).is_empty());
        let lines = limit.summaries(t0 + WINDOW);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("95 more lines like this from rustls"),
            "{lines:?}"
        );
        assert!(lines[0].ends_with("Illegal SNI 5"), "{lines:?}");
        // A new window.
        assert!(limit.admit(place(1), "rustls", t0 + WINDOW, String::new));
        assert!(suppressed_lines().get() >= 95);
    }
}

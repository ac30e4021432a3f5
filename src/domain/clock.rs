//! The one source of "now" for everything that decides by time: when a sync started, when a
//! batch was submitted, whether a scan is stale, what today's budget has used.
//!
//! Production code runs on [`Clock::system`]. Tests run on [`Clock::manual`] and move time
//! with [`Clock::advance`], so a rule like "a submission older than `scanning_timeout` is
//! stuck" is tested without sleeping and cannot flake on a slow machine.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Milliseconds since the Unix epoch, UTC: the unit of every time hss-scand stores.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    /// The machine's clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that stands at `start_ms` until it is moved.
    pub fn manual(start_ms: i64) -> Clock {
        Clock(Some(Arc::new(AtomicI64::new(start_ms))))
    }

    /// Now, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            None => chrono::Utc::now().timestamp_millis(),
            Some(manual) => manual.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock forward (every clone sees it). The system clock cannot be moved:
    /// asking is a bug in the caller.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        match &self.0 {
            Some(manual) => {
                manual.fetch_add(by, Ordering::SeqCst);
            }
            None => debug_assert!(false, "the system clock cannot be advanced"),
        }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("Clock::system"),
            Some(manual) => write!(f, "Clock::manual({})", manual.load(Ordering::SeqCst)),
        }
    }
}

/// A duration in the clock's unit, saturating rather than wrapping for absurd values.
pub fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_for_every_clone() {
        let clock = Clock::manual(1_000);
        let seen_by_another = clock.clone();
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance(Duration::from_secs(2));
        assert_eq!(seen_by_another.now_ms(), 3_000);
    }

    #[test]
    fn the_system_clock_is_now() {
        let before = chrono::Utc::now().timestamp_millis();
        let now = Clock::system().now_ms();
        assert!(now >= before && now - before < 60_000, "{now} vs {before}");
    }
}

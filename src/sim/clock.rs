//! The simulator's notion of now, by which it stamps every change (a push, a finished scan, a
//! task) and answers every time-window filter.
//!
//! By default it is the machine's clock. A test or benchmark that runs the daemon on a clock
//! of its own (a manual [`Clock`](crate::domain::Clock) it moves by hours in milliseconds)
//! needs the simulator to keep the same time, or the daemon's windows ("changed since the
//! last sync") would ask about hours the simulator has not lived yet. So the clock can be
//! moved forward, and can be frozen: a frozen clock stands still between two moves, exactly
//! like the daemon's manual clock, so that both agree to the millisecond however long the
//! machine takes to run the steps in between.
//!
//! Request signatures are still checked against the machine's clock: that is the client's
//! clock, which no test moves.

use std::sync::atomic::{AtomicI64, Ordering};

/// Now, in epoch milliseconds: the machine's clock plus an offset, or a frozen time.
#[derive(Debug)]
pub struct SimClock {
    frozen: bool,
    /// Frozen: the time itself. Running: what is added to the machine's clock.
    value: AtomicI64,
}

impl SimClock {
    /// The machine's clock (`frozen`: standing at the machine's time now until moved).
    pub fn new(frozen: bool) -> SimClock {
        SimClock {
            frozen,
            value: AtomicI64::new(if frozen { machine_ms() } else { 0 }),
        }
    }

    pub fn now_ms(&self) -> i64 {
        let value = self.value.load(Ordering::SeqCst);
        if self.frozen {
            value
        } else {
            machine_ms().saturating_add(value)
        }
    }

    /// Moves the clock forward by `ms` (a negative amount is refused by the callers: time
    /// that goes back would make finished scans unfinished). Returns the new now.
    pub fn advance(&self, ms: i64) -> i64 {
        self.value.fetch_add(ms, Ordering::SeqCst);
        self.now_ms()
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen
    }
}

/// The machine's clock in epoch milliseconds.
pub(crate) fn machine_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frozen_clock_moves_only_when_advanced() {
        let clock = SimClock::new(true);
        let start = clock.now_ms();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(clock.now_ms(), start);
        assert_eq!(clock.advance(60_000), start + 60_000);
        assert_eq!(clock.now_ms(), start + 60_000);
    }

    #[test]
    fn a_running_clock_keeps_its_offset() {
        let clock = SimClock::new(false);
        clock.advance(3_600_000);
        let ahead = clock.now_ms() - machine_ms();
        assert!((3_599_000..=3_600_000).contains(&ahead), "{ahead}");
    }
}

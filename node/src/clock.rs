//! The node's clock: unix milliseconds that never go backwards, even across restarts on a
//! Raspberry Pi that boots in 1970. Timestamps are informative; nothing is ordered by them.

use std::time::{SystemTime, UNIX_EPOCH};

/// A monotonic millisecond clock resumed from the last value the store persisted.
#[derive(Debug, Clone)]
pub struct Clock {
    /// The last timestamp handed out; the store persists it with every write.
    last: i64,
}

impl Clock {
    pub fn resume(last: i64) -> Self {
        Self { last }
    }

    /// The next timestamp: the system time, or one past the last one if the system clock is
    /// behind (or was set back).
    pub fn tick_at(&mut self, system_ms: i64) -> i64 {
        self.last = system_ms.max(self.last + 1);
        self.last
    }

    /// [`Self::tick_at`] the current system time.
    pub fn tick(&mut self) -> i64 {
        let system_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        self.tick_at(system_ms)
    }

    pub fn last(&self) -> i64 {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_backwards_when_the_system_clock_does() {
        let mut clock = Clock::resume(1_700_000_000_000);
        assert_eq!(clock.tick_at(0), 1_700_000_000_001);
        assert_eq!(clock.tick_at(0), 1_700_000_000_002);
        assert_eq!(clock.tick_at(1_800_000_000_000), 1_800_000_000_000);
    }
}

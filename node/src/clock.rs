//! The node's clock: unix milliseconds that never go backwards, even across restarts on a
//! Raspberry Pi that boots in 1970. Timestamps are informative; nothing is ordered by them.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A monotonic millisecond clock resumed from the last value the store persisted. Clones share
/// it, so an entry built off the writer ticks the same clock as the writer.
#[derive(Debug, Clone)]
pub struct Clock {
    /// The last timestamp handed out; the store persists it with every write.
    last: Arc<AtomicI64>,
}

impl Clock {
    pub fn resume(last: i64) -> Self {
        Self {
            last: Arc::new(AtomicI64::new(last)),
        }
    }

    /// The next timestamp: the system time, or one past the last one if the system clock is
    /// behind (or was set back).
    pub fn tick_at(&self, system_ms: i64) -> i64 {
        let previous = self
            .last
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(system_ms.max(last + 1))
            })
            .expect("the update always succeeds");
        system_ms.max(previous + 1)
    }

    /// [`Self::tick_at`] the current system time.
    pub fn tick(&self) -> i64 {
        let system_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        self.tick_at(system_ms)
    }

    pub fn last(&self) -> i64 {
        self.last.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_backwards_when_the_system_clock_does() {
        let clock = Clock::resume(1_700_000_000_000);
        assert_eq!(clock.tick_at(0), 1_700_000_000_001);
        assert_eq!(clock.tick_at(0), 1_700_000_000_002);
        assert_eq!(clock.tick_at(1_800_000_000_000), 1_800_000_000_000);
    }

    #[test]
    fn clones_tick_one_clock_from_any_thread() {
        let clock = Clock::resume(0);
        let ticks: Vec<i64> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let clock = clock.clone();
                    scope.spawn(move || (0..1000).map(|_| clock.tick_at(5)).collect::<Vec<_>>())
                })
                .collect();
            threads
                .into_iter()
                .flat_map(|t| t.join().unwrap())
                .collect()
        });
        let distinct: std::collections::BTreeSet<i64> = ticks.iter().copied().collect();
        assert_eq!(distinct.len(), 4000, "no timestamp is handed out twice");
        assert_eq!(clock.last(), 4004);
    }
}

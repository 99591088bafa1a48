//! The thread that keeps the search index following the store. The writer wakes it after each
//! flush with the durable change-log position; it indexes what was logged since its last
//! position and commits. Wakes coalesce (only the highest position matters) and commits are at
//! least [`COMMIT_EVERY`] apart, so a burst of thousands of writes or synced changes costs a
//! few commits, a lone write is searchable at once, and the writer never waits for it.
//!
//! Every change passes the writer's change log (local writes, peers' changes, bundle imports,
//! tombstones), so following the log is following everything.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::SearchIndex;
use crate::store::Reader;

/// Pause after a failed catch-up before trying again.
const RETRY: Duration = Duration::from_secs(1);
/// Least time between two commits. Each commit is a new segment, an fsync, a reader reload and
/// later merges: committed after every flush of 8 busy clients, merging alone took a sixth of
/// the node's CPU (`docs/benchmarks.md`).
pub const COMMIT_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
struct State {
    /// The highest durable change-log position heard of.
    durable: u64,
    /// No more wakes will come: catch up one last time and stop.
    closed: bool,
}

/// How the writer wakes the indexer; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Wake {
    shared: Arc<(Mutex<State>, Condvar)>,
}

impl Wake {
    /// Everything up to `durable` is on disk: index it.
    pub fn durable(&self, durable: u64) {
        let (state, signal) = &*self.shared;
        let mut state = state.lock().expect("indexer wake lock");
        if durable > state.durable {
            state.durable = durable;
            signal.notify_one();
        }
    }

    fn close(&self) {
        let (state, signal) = &*self.shared;
        state.lock().expect("indexer wake lock").closed = true;
        signal.notify_one();
    }

    /// Waits for a position past `indexed`; `None` once closed and caught up.
    fn next(&self, indexed: u64) -> Option<u64> {
        let (state, signal) = &*self.shared;
        let mut state = state.lock().expect("indexer wake lock");
        while state.durable <= indexed && !state.closed {
            state = signal.wait(state).expect("indexer wake lock");
        }
        (state.durable > indexed).then_some(state.durable)
    }

    /// Waits `time`, or less if closed meanwhile.
    fn rest(&self, time: Duration) {
        let (state, signal) = &*self.shared;
        let state = state.lock().expect("indexer wake lock");
        let _ = signal
            .wait_timeout_while(state, time, |state| !state.closed)
            .expect("indexer wake lock");
    }
}

/// The running indexer.
#[derive(Debug)]
pub struct Indexer {
    wake: Wake,
    thread: std::thread::JoinHandle<()>,
}

impl Indexer {
    /// Starts following `store` from the index's position, first catching up to what the
    /// store holds (writes made while the node was stopped).
    pub fn spawn(index: Arc<SearchIndex>, store: Reader) -> std::io::Result<Indexer> {
        let wake = Wake::default();
        wake.durable(store.logged_seq().unwrap_or(0));
        let thread = {
            let wake = wake.clone();
            std::thread::Builder::new()
                .name("minga-indexer".into())
                .spawn(move || run(&index, &store, &wake))?
        };
        Ok(Indexer { wake, thread })
    }

    /// The handle the writer wakes the indexer with.
    pub fn wake(&self) -> Wake {
        self.wake.clone()
    }

    /// Indexes what is left and stops.
    pub fn stop(self) {
        self.wake.close();
        if self.thread.join().is_err() {
            tracing::error!("the search indexer panicked");
        }
    }
}

fn run(index: &SearchIndex, store: &Reader, wake: &Wake) {
    let mut failures = 0u32;
    while let Some(upto) = wake.next(index.indexed()) {
        let started = std::time::Instant::now();
        match index.catch_up(store, upto) {
            Ok(touched) => {
                failures = 0;
                tracing::debug!(touched, upto, elapsed = ?started.elapsed(), "indexed");
                wake.rest(COMMIT_EVERY.saturating_sub(started.elapsed()));
            }
            Err(e) => {
                failures += 1;
                tracing::error!("indexing changes up to {upto}: {e}");
                if failures >= 3 {
                    tracing::error!(
                        "the search index stays behind until the next start rebuilds it"
                    );
                    return;
                }
                std::thread::sleep(RETRY);
            }
        }
    }
}

//! What a run measures while it runs: per update, when each node first held it and over how
//! many hops; per node, the bytes it sent and received; and the refusals. Everything a report
//! shows is derived from these at the end.

use std::collections::{BTreeMap, BTreeSet};

use crate::net::Micros;

/// `held_ms` of a node that never held the update.
pub const NEVER: u32 = u32::MAX;

/// `hops` of a node that never held the update.
pub const NO_HOPS: u8 = u8::MAX;

/// Traffic classes, for the totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Gossip = 0,
    Reconcile = 1,
    Sync = 2,
    Attack = 3,
}

/// One update (a new entry or an edit: one signed change) and how it spread.
#[derive(Debug, Clone)]
pub struct UpdateStats {
    pub doc: u32,
    pub edit: bool,
    /// Bytes of the change.
    pub size: u64,
    pub origin: u32,
    pub made_at: Micros,
    /// Per node: simulated milliseconds when it first held the update, or [`NEVER`].
    pub held_ms: Vec<u32>,
    /// Per node: changes hands from the origin to this node (0 at the origin).
    pub hops: Vec<u8>,
    /// Copies of the change received by a node that already held it.
    pub duplicates: u64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub updates: Vec<UpdateStats>,
    /// Change hash → index in `updates`.
    pub by_hash: BTreeMap<[u8; 32], u32>,
    /// Changes of the entries every node held at the start.
    pub preloaded: BTreeSet<[u8; 32]>,
    pub sent: Vec<u64>,
    pub received: Vec<u64>,
    /// Bytes sent per [`Class`].
    pub traffic: [u64; 4],
    pub messages: u64,
    pub lost: u64,
    pub duplicate_announcements: u64,
    /// Changes stored anywhere that no honest author made: must stay 0.
    pub invalid_stored: u64,
    /// Payloads or messages refused, by reason.
    pub rejected: BTreeMap<&'static str, u64>,
    /// `Changes` payloads that lacked dependencies lost in transit (not an attack).
    pub missing_dependencies: u64,
    pub dropped_peers: u64,
    /// Documents pulled because a peer's change log listed them on reconnecting.
    pub listed_pulls: u64,
    /// Listings that waited because the document was being pulled from another peer.
    pub listings_waited: u64,
    pub bundle_bytes: u64,
    /// When the bundle was imported, and the updates it brought to its importer.
    pub bundle: Option<(Micros, Vec<u32>)>,
    /// Updates the workload could not make (no online node held the entry to edit).
    pub skipped_updates: u64,
    pub events: u64,
}

impl Metrics {
    pub fn new(nodes: usize) -> Self {
        Self {
            sent: vec![0; nodes],
            received: vec![0; nodes],
            ..Self::default()
        }
    }

    pub fn add_update(&mut self, hash: [u8; 32], stats: UpdateStats) {
        self.by_hash.insert(hash, self.updates.len() as u32);
        self.updates.push(stats);
    }

    /// Records that `node` now holds `hash`, received from `from` (`None`: it made it).
    pub fn gained(&mut self, node: u32, hash: &[u8; 32], from: Option<u32>, now: Micros) {
        let Some(&u) = self.by_hash.get(hash) else {
            if !self.preloaded.contains(hash) {
                self.invalid_stored += 1;
            }
            return;
        };
        let stats = &mut self.updates[u as usize];
        let n = node as usize;
        if stats.held_ms[n] != NEVER {
            return;
        }
        stats.held_ms[n] = (now / 1000).min(u64::from(NEVER - 1)) as u32;
        stats.hops[n] = match from {
            None => 0,
            Some(f) => stats.hops[f as usize].saturating_add(1).min(NO_HOPS - 1),
        };
    }

    /// A copy of `hash` reached a node that held it already.
    pub fn duplicate(&mut self, hash: &[u8; 32]) {
        if let Some(&u) = self.by_hash.get(hash) {
            self.updates[u as usize].duplicates += 1;
        }
    }

    pub fn reject(&mut self, reason: &'static str) {
        *self.rejected.entry(reason).or_default() += 1;
    }
}

/// The time by which `fraction` of `counted` nodes held an update, given the times at which
/// those that did held it (in any order); `None` if too few did. The spread metric of both the
/// simulator and the real-stack runner, so their t50/t99/t100 compare.
pub fn time_to_fraction<T: Ord + Copy>(
    mut held: Vec<T>,
    counted: usize,
    fraction: f64,
) -> Option<T> {
    let needed = ((counted as f64 * fraction).ceil() as usize).max(1);
    held.sort_unstable();
    held.get(needed - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_time_counts_the_nodes_that_never_held_it() {
        let held = vec![30, 10, 20];
        assert_eq!(time_to_fraction(held.clone(), 4, 0.5), Some(20));
        assert_eq!(time_to_fraction(held.clone(), 4, 0.75), Some(30));
        assert_eq!(
            time_to_fraction(held.clone(), 4, 1.0),
            None,
            "one never did"
        );
        assert_eq!(time_to_fraction(held, 3, 0.0), Some(10));
    }
}

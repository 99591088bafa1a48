//! Churn on a running cluster, on the simulator's schedule: a seeded fraction of the nodes
//! goes offline after an exponential online time and comes back after an exponential offline
//! time, again and again until `until_s`, when every node is back (so the end shows whether
//! everyone caught up). The draws are the runner's own seeded stream, as its dials are, so a
//! run churns the same nodes at the same times each time, though not the model's nodes.

use std::time::{Duration, Instant};

use minga_simulations::scenario::Churn;

use super::unit;
use super::updates::Update;
use crate::content::Rng;

/// One stretch a node spends offline, in seconds of the scenario's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spell {
    pub node: usize,
    pub down_s: f64,
    /// At most the churn's `until_s`.
    pub up_s: f64,
}

/// Every offline spell of a run of `nodes` nodes seeded `seed`, in no particular order: the
/// churning nodes are the first `round(fraction × nodes)` of a seeded shuffle (the simulator's
/// rule), and each one's online and offline times are exponential with the scenario's means.
pub fn schedule(nodes: usize, churn: &Churn, seed: u64) -> Vec<Spell> {
    let mut rng = Rng::new(seed, 0xC4_0123);
    let mut order: Vec<usize> = (0..nodes).collect();
    for i in (1..nodes).rev() {
        order.swap(i, rng.range(0, i));
    }
    let count = ((nodes as f64) * churn.fraction).round() as usize;
    let mut spells = Vec::new();
    for &node in &order[..count.min(nodes)] {
        let mut at = exponential(&mut rng, churn.mean_online_s);
        while at < churn.until_s {
            let up_s = (at + exponential(&mut rng, churn.mean_offline_s)).min(churn.until_s);
            spells.push(Spell {
                node,
                down_s: at,
                up_s,
            });
            at = up_s + exponential(&mut rng, churn.mean_online_s);
        }
    }
    spells
}

/// An exponential draw with mean `mean`, as the simulator's.
fn exponential(rng: &mut Rng, mean: f64) -> f64 {
    -mean * (1.0 - unit(rng)).ln()
}

/// An offline spell as it happened.
#[derive(Debug, Clone)]
pub struct Absence {
    pub node: usize,
    /// When the node's stop was asked for.
    pub down: Instant,
    /// When it was started again (`None` while it is offline).
    pub up: Option<Instant>,
}

/// How a returning node caught up with what was made while it was away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Nothing was made while it was away.
    Nothing,
    /// It held every update made while it was away this long after it was started again.
    After(Duration),
    /// It still lacked one (or has not come back).
    Not,
}

impl Absence {
    /// Whether `update` was made while the node was away.
    pub fn missed(&self, update: &Update) -> bool {
        update.made >= self.down && self.up.is_none_or(|up| update.made < up)
    }

    /// From the restart until the node held every update made while it was away.
    pub fn catch_up(&self, updates: &[Update]) -> CatchUp {
        let Some(up) = self.up else {
            return CatchUp::Not;
        };
        let mut last = None;
        for update in updates.iter().filter(|u| self.missed(u)) {
            match update.held_after[self.node] {
                Some(after) => last = last.max(Some(update.made + after)),
                None => return CatchUp::Not,
            }
        }
        last.map_or(CatchUp::Nothing, |at: Instant| {
            CatchUp::After(at.saturating_duration_since(up))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Churn, schedule};

    #[test]
    fn spells_are_seeded_ordered_per_node_and_end_by_until() {
        let churn = Churn {
            fraction: 0.2,
            mean_online_s: 30.0,
            mean_offline_s: 20.0,
            until_s: 200.0,
        };
        let spells = schedule(40, &churn, 3);
        assert_eq!(spells, schedule(40, &churn, 3));
        assert_ne!(spells, schedule(40, &churn, 4));
        let mut churning: Vec<usize> = spells.iter().map(|s| s.node).collect();
        churning.dedup();
        assert!(churning.len() <= 8, "{churning:?}");
        assert!(spells.len() > 8, "a few cycles each: {}", spells.len());
        for pair in spells.windows(2) {
            if pair[0].node == pair[1].node {
                assert!(pair[0].up_s < pair[1].down_s);
            }
        }
        assert!(
            spells
                .iter()
                .all(|s| s.down_s < s.up_s && s.up_s <= churn.until_s)
        );
    }
}

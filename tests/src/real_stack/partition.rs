//! A partition of a running cluster, made with nothing but the node's own API: every node of
//! one side blocks every node of the other (`POST /api/v1/peers/{peer}/block` disconnects the
//! peer and refuses it from then on), and the heal unblocks them again, after which each node
//! redials its bootstrap peers on its own (every second, backing off to 30 s). Every node of
//! the other side is blocked, not only the connected ones, because a node may learn and dial
//! peers beyond its bootstrap list (identify, Kademlia).

use std::time::Duration;

use anyhow::{Result, ensure};

use super::LocalNode;
use super::updates::Update;
use crate::content::Rng;
use crate::measure::wait_for;

/// Which nodes are in the cut-off group, as the simulator picks them: the first
/// `round(fraction × nodes)` of a seeded shuffle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    cut_off: Vec<bool>,
}

impl Split {
    /// The group of partition number `index` of a run seeded `seed`.
    pub fn seeded(nodes: usize, fraction: f64, seed: u64, index: usize) -> Split {
        let mut rng = Rng::new(seed, 0x5_0117 + index as u64);
        let mut order: Vec<usize> = (0..nodes).collect();
        for i in (1..nodes).rev() {
            order.swap(i, rng.range(0, i));
        }
        let count = ((nodes as f64) * fraction).round() as usize;
        let mut cut_off = vec![false; nodes];
        for &node in &order[..count.min(nodes)] {
            cut_off[node] = true;
        }
        Split { cut_off }
    }

    /// Whether the split keeps nodes `a` and `b` apart.
    pub fn apart(&self, a: usize, b: usize) -> bool {
        self.cut_off[a] != self.cut_off[b]
    }

    /// Nodes in the cut-off group.
    pub fn cut_off(&self) -> usize {
        self.cut_off.iter().filter(|c| **c).count()
    }

    /// Every pair `(a, b)` the split keeps apart, each side's view of it (both orders).
    fn pairs(&self) -> Vec<(usize, usize)> {
        let n = self.cut_off.len();
        (0..n)
            .flat_map(|a| (0..n).map(move |b| (a, b)))
            .filter(|&(a, b)| self.apart(a, b))
            .collect()
    }

    /// Blocks every node of one side on every node of the other (one thread per node: each
    /// block waits for a durable flush), then waits until no connection crosses the split.
    pub fn cut(&self, nodes: &[LocalNode], timeout: Duration) -> Result<()> {
        self.set_blocked(nodes, true)?;
        wait_for(
            timeout,
            "the links across the partition to close",
            Duration::from_millis(100),
            || Ok(self.links_across(nodes)? == 0),
            || Ok(format!("{} links still cross", self.links_across(nodes)?)),
        )
    }

    /// Unblocks what [`Split::cut`] blocked; the nodes reconnect by themselves.
    pub fn heal(&self, nodes: &[LocalNode]) -> Result<()> {
        self.set_blocked(nodes, false)
    }

    fn set_blocked(&self, nodes: &[LocalNode], blocked: bool) -> Result<()> {
        let pairs = self.pairs();
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..nodes.len())
                .map(|a| {
                    let peers: Vec<usize> =
                        pairs.iter().filter(|p| p.0 == a).map(|p| p.1).collect();
                    scope.spawn(move || block_all(&nodes[a], &peers, nodes, blocked))
                })
                .collect();
            workers
                .into_iter()
                .try_for_each(|w| w.join().expect("a blocking thread panicked"))
        })
    }

    /// Connections across the split, as the nodes list their peers (`/api/v1/peers`); each
    /// counted once per end.
    pub fn links_across(&self, nodes: &[LocalNode]) -> Result<usize> {
        let mut across = 0;
        for (a, node) in nodes.iter().enumerate() {
            let connected = connected_peers(node)?;
            across += (0..nodes.len())
                .filter(|&b| self.apart(a, b) && connected.contains(&nodes[b].peer_id()))
                .count();
        }
        Ok(across)
    }

    /// Nodes without a connection on their own side (every link they had crossed the
    /// split): during the partition they hear from nobody.
    pub fn alone(&self, nodes: &[LocalNode]) -> Result<Vec<usize>> {
        let mut alone = Vec::new();
        for (a, node) in nodes.iter().enumerate() {
            if connected_peers(node)?.is_empty() {
                alone.push(a);
            }
        }
        Ok(alone)
    }

    /// Node-updates held on the other side of the split from where they were made: any is a
    /// leak through the partition (a store keeps what it got, so checking once at the heal
    /// catches every leak since the cut).
    pub fn leaks<'a>(&self, updates: impl IntoIterator<Item = &'a Update>) -> usize {
        updates
            .into_iter()
            .map(|update| {
                let held = update.held_after.iter().enumerate();
                held.filter(|(node, held)| held.is_some() && self.apart(update.origin, *node))
                    .count()
            })
            .sum()
    }
}

/// `node` blocks (or unblocks) each of `peers`.
fn block_all(node: &LocalNode, peers: &[usize], nodes: &[LocalNode], blocked: bool) -> Result<()> {
    for &b in peers {
        let path = format!("/api/v1/peers/{}/block", nodes[b].peer_id());
        let (status, answer) = match blocked {
            true => node.post(&path, "{}"),
            false => node.delete(&path),
        };
        ensure!(
            status == 200,
            "{path} (blocked {blocked}) answered {status}: {answer}"
        );
    }
    Ok(())
}

/// The peer ids `node` is connected to.
fn connected_peers(node: &LocalNode) -> Result<Vec<String>> {
    let (status, body) = node.get("/api/v1/peers");
    ensure!(status == 200, "/api/v1/peers answered {status}");
    Ok(body["peers"]
        .as_array()
        .map(|peers| {
            peers
                .iter()
                .filter_map(|p| p["peer_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::Split;

    #[test]
    fn the_cut_off_group_is_the_rounded_fraction_and_seeded() {
        let split = Split::seeded(40, 0.5, 2, 0);
        assert_eq!(split.cut_off(), 20);
        assert_eq!(split, Split::seeded(40, 0.5, 2, 0));
        assert_ne!(split, Split::seeded(40, 0.5, 3, 0));
        assert_eq!(Split::seeded(7, 0.3, 1, 0).cut_off(), 2);
        let pairs = split.pairs();
        assert_eq!(pairs.len(), 2 * 20 * 20);
        assert!(
            pairs
                .iter()
                .all(|&(a, b)| split.apart(a, b) && split.apart(b, a))
        );
    }
}

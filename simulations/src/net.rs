//! The network model: who is connected to whom, which links are up (churn, partitions, peers
//! dropped for invalid bytes) and when a message sent now arrives (uplink queueing, per-link
//! latency, loss). Times are microseconds of simulated time.

use crate::rng::SimRng;
use crate::scenario::Scenario;

/// Simulated time in microseconds.
pub type Micros = u64;

pub fn micros(seconds: f64) -> Micros {
    (seconds * 1e6).round() as Micros
}

/// Links and their state; per-node data is a few words, so 10,000 nodes cost little.
#[derive(Debug)]
pub struct Net {
    /// Each node's connections, sorted.
    pub peers: Vec<Vec<u32>>,
    pub online: Vec<bool>,
    /// Bit `i` is set when the node is in partition `i`'s cut-off group.
    groups: Vec<u8>,
    /// Bits of the partitions in force.
    active: u8,
    /// Peers a node dropped for cryptographic or framing failures, sorted.
    blocked: Vec<Vec<u32>>,
    /// When each node's uplink is free again.
    busy_until: Vec<Micros>,
    latency_us: [f64; 2],
    /// Microseconds per byte on an uplink.
    us_per_byte: f64,
    loss: f64,
    salt: u64,
}

/// The fate of one message.
pub enum Transit {
    Arrives(Micros),
    Lost,
}

impl Net {
    pub fn new(scenario: &Scenario, rng: &mut SimRng) -> Self {
        let n = scenario.nodes as usize;
        let mut peers: Vec<Vec<u32>> = vec![Vec::new(); n];
        // Each node dials half its connections at random, so degrees average `connections`.
        let dials = scenario.overlay.connections.div_ceil(2).max(1);
        for a in 0..n as u32 {
            for _ in 0..dials {
                let mut b = rng.below(n as u64 - 1) as u32;
                if b >= a {
                    b += 1;
                }
                peers[a as usize].push(b);
                peers[b as usize].push(a);
            }
        }
        let mut groups = vec![0u8; n];
        for (i, partition) in scenario.partitions.iter().enumerate().take(8) {
            let mut order: Vec<u32> = (0..n as u32).collect();
            rng.shuffle(&mut order);
            let cut = ((n as f64) * partition.fraction).round() as usize;
            let members = &order[..cut];
            for node in members {
                groups[*node as usize] |= 1 << i;
            }
            if members.len() > 1 {
                for &a in members {
                    for _ in 0..partition.local_links {
                        let b = members[rng.below(members.len() as u64) as usize];
                        if b != a {
                            peers[a as usize].push(b);
                            peers[b as usize].push(a);
                        }
                    }
                }
            }
        }
        for list in &mut peers {
            list.sort_unstable();
            list.dedup();
        }
        Self {
            peers,
            online: vec![true; n],
            groups,
            active: 0,
            blocked: vec![Vec::new(); n],
            busy_until: vec![0; n],
            latency_us: scenario.links.latency_ms.map(|ms| ms * 1000.0),
            us_per_byte: 8.0 * 1000.0 / scenario.links.uplink_kbps,
            loss: scenario.links.loss,
            salt: rng.word(),
        }
    }

    pub fn in_group(&self, node: u32, partition: usize) -> bool {
        self.groups[node as usize] & (1 << partition) != 0
    }

    pub fn set_partition(&mut self, partition: usize, active: bool) {
        if active {
            self.active |= 1 << partition;
        } else {
            self.active &= !(1 << partition);
        }
    }

    /// Whether a partition in force separates `a` and `b`.
    pub fn separated(&self, a: u32, b: u32) -> bool {
        (self.groups[a as usize] ^ self.groups[b as usize]) & self.active != 0
    }

    /// Whether `a` and `b` can exchange messages now.
    pub fn reachable(&self, a: u32, b: u32) -> bool {
        self.online[a as usize]
            && self.online[b as usize]
            && !self.separated(a, b)
            && !self.is_blocked(a, b)
            && !self.is_blocked(b, a)
    }

    fn is_blocked(&self, by: u32, peer: u32) -> bool {
        self.blocked[by as usize].binary_search(&peer).is_ok()
    }

    /// `by` drops `peer` for good.
    pub fn block(&mut self, by: u32, peer: u32) {
        let list = &mut self.blocked[by as usize];
        if let Err(at) = list.binary_search(&peer) {
            list.insert(at, peer);
        }
    }

    /// The reachable connections of `node`.
    pub fn reachable_peers(&self, node: u32) -> Vec<u32> {
        self.peers[node as usize]
            .iter()
            .copied()
            .filter(|p| self.reachable(node, *p))
            .collect()
    }

    /// One-way latency of the link `a`–`b`: fixed per link, drawn from the run's salt.
    fn latency(&self, a: u32, b: u32) -> f64 {
        let (lo, hi) = (a.min(b) as u64, a.max(b) as u64);
        let x = splitmix(self.salt ^ (lo << 32) ^ hi);
        let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
        self.latency_us[0] + unit * (self.latency_us[1] - self.latency_us[0])
    }

    /// Puts `bytes` on `from`'s uplink now towards `to`.
    pub fn transmit(
        &mut self,
        now: Micros,
        from: u32,
        to: u32,
        bytes: u64,
        rng: &mut SimRng,
    ) -> Transit {
        let start = self.busy_until[from as usize].max(now);
        let done = start + (bytes as f64 * self.us_per_byte).ceil() as Micros;
        self.busy_until[from as usize] = done;
        if self.loss > 0.0 && rng.chance(self.loss) {
            return Transit::Lost;
        }
        Transit::Arrives(done + self.latency(from, to).round() as Micros)
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

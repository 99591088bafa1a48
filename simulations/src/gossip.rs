//! A gossipsub-like overlay carrying announcements, kept to the rules that shape its traffic:
//! a mesh of degree D per node, grafted up to D below D_lo and pruned to D above D_hi at every
//! heartbeat; a node's own messages flood to all its peers (`flood_publish`), others are
//! forwarded to the mesh only, once validated (here: once the node holds what they announce); messages of the last heartbeats are advertised by IHAVE to D_lazy
//! peers outside the mesh, which ask for the ones they lack by IWANT; each node forwards a
//! message once (message ids are a hash of the announcement, so a re-announcement of the same
//! heads is the same message). It returns what to send; the simulator moves the bytes.

use crate::net::Net;
use crate::rng::SimRng;
use crate::scenario::Overlay;

/// Bytes a gossipsub frame adds to an announcement: the frame's length, protobuf tags and
/// lengths, and the topic (`minga/collections/1/NN`). The node's messages are unsigned
/// (`MessageAuthenticity::Anonymous`), so they carry no source, sequence number or signature.
pub const ENVELOPE_BYTES: u64 = 30;

/// Bytes of a control message, and of each message id it names.
const CONTROL_BYTES: u64 = 24;
const ID_BYTES: u64 = 20;

/// A message of the overlay; announcements are named by their index in the run.
#[derive(Debug, Clone)]
pub enum GossipMsg {
    Publish(u32),
    IHave(Vec<u32>),
    IWant(Vec<u32>),
    Graft,
    Prune,
}

/// What receiving a gossip message did.
#[derive(Debug, Default)]
pub struct Received {
    pub send: Vec<(u32, GossipMsg)>,
    /// An announcement seen for the first time, to act on.
    pub fresh: Option<u32>,
    /// A copy of an announcement already seen.
    pub duplicate: bool,
}

#[derive(Debug)]
pub struct Gossip {
    config: Overlay,
    mesh: Vec<Vec<u32>>,
    /// Recent messages per node with the heartbeat they arrived in (gossipsub's mcache).
    recent: Vec<Vec<(u32, u32)>>,
    beats: Vec<u32>,
    /// Per announcement, a bitset of the nodes that have seen it.
    seen: Vec<Vec<u64>>,
    /// Each announcement's size on the wire.
    sizes: Vec<u64>,
    nodes: usize,
}

impl Gossip {
    pub fn new(config: Overlay, nodes: usize) -> Self {
        Self {
            config,
            mesh: vec![Vec::new(); nodes],
            recent: vec![Vec::new(); nodes],
            beats: vec![0; nodes],
            seen: Vec::new(),
            sizes: Vec::new(),
            nodes,
        }
    }

    /// Registers an announcement of `bytes` encoded bytes; returns its index.
    pub fn register(&mut self, bytes: u64) -> u32 {
        self.seen.push(vec![0; self.nodes.div_ceil(64)]);
        self.sizes.push(bytes + ENVELOPE_BYTES);
        (self.sizes.len() - 1) as u32
    }

    pub fn size(&self, message: &GossipMsg) -> u64 {
        match message {
            GossipMsg::Publish(m) => self.sizes[*m as usize],
            GossipMsg::IHave(ids) | GossipMsg::IWant(ids) => {
                CONTROL_BYTES + ID_BYTES * ids.len() as u64
            }
            GossipMsg::Graft | GossipMsg::Prune => CONTROL_BYTES,
        }
    }

    pub fn has_seen(&self, node: u32, message: u32) -> bool {
        self.seen[message as usize][node as usize / 64] & (1 << (node % 64)) != 0
    }

    /// Marks `message` seen at `node`; false if it already was.
    fn see(&mut self, node: u32, message: u32) -> bool {
        if self.has_seen(node, message) {
            return false;
        }
        self.seen[message as usize][node as usize / 64] |= 1 << (node % 64);
        self.recent[node as usize].push((self.beats[node as usize], message));
        true
    }

    /// `node` publishes its own announcement.
    pub fn publish(&mut self, node: u32, message: u32, net: &Net) -> Vec<(u32, GossipMsg)> {
        self.see(node, message);
        let targets = if self.config.flood_publish {
            net.reachable_peers(node)
        } else {
            self.mesh[node as usize].clone()
        };
        targets
            .into_iter()
            .map(|p| (p, GossipMsg::Publish(message)))
            .collect()
    }

    pub fn receive(&mut self, node: u32, from: u32, message: GossipMsg) -> Received {
        let mut out = Received::default();
        match message {
            GossipMsg::Publish(m) => {
                if !self.see(node, m) {
                    out.duplicate = true;
                    return out;
                }
                out.fresh = Some(m);
            }
            GossipMsg::IHave(ids) => {
                let wanted: Vec<u32> = ids
                    .into_iter()
                    .filter(|m| !self.has_seen(node, *m))
                    .collect();
                if !wanted.is_empty() {
                    out.send.push((from, GossipMsg::IWant(wanted)));
                }
            }
            GossipMsg::IWant(ids) => {
                out.send = ids
                    .into_iter()
                    .map(|m| (from, GossipMsg::Publish(m)))
                    .collect();
            }
            GossipMsg::Graft => {
                let mesh = &mut self.mesh[node as usize];
                if let Err(at) = mesh.binary_search(&from) {
                    mesh.insert(at, from);
                }
            }
            GossipMsg::Prune => self.mesh[node as usize].retain(|p| *p != from),
        }
        out
    }

    /// Forwards announcement `m`, received from `from`, to the mesh. The simulator calls it
    /// once the node holds what `m` announces (its validation), so a peer that pulls from a
    /// forwarder finds the content there.
    pub fn forward(&self, node: u32, from: u32, m: u32, net: &Net) -> Vec<(u32, GossipMsg)> {
        self.mesh[node as usize]
            .iter()
            .filter(|p| **p != from && net.reachable(node, **p))
            .map(|p| (*p, GossipMsg::Publish(m)))
            .collect()
    }

    /// One heartbeat of `node`: mesh upkeep and IHAVE gossip.
    pub fn heartbeat(&mut self, node: u32, net: &Net, rng: &mut SimRng) -> Vec<(u32, GossipMsg)> {
        let i = node as usize;
        let c = &self.config;
        let mut out = Vec::new();
        self.mesh[i].retain(|p| net.reachable(node, *p));
        let reachable = net.reachable_peers(node);
        let outside: Vec<u32> = reachable
            .iter()
            .copied()
            .filter(|p| self.mesh[i].binary_search(p).is_err())
            .collect();
        if self.mesh[i].len() < c.d_lo as usize {
            let need = c.d as usize - self.mesh[i].len();
            for peer in rng.sample(&outside, need) {
                let at = self.mesh[i].binary_search(&peer).unwrap_err();
                self.mesh[i].insert(at, peer);
                out.push((peer, GossipMsg::Graft));
            }
        } else if self.mesh[i].len() > c.d_hi as usize {
            let keep = rng.sample(&self.mesh[i], c.d as usize);
            for peer in self.mesh[i].clone() {
                if !keep.contains(&peer) {
                    out.push((peer, GossipMsg::Prune));
                }
            }
            self.mesh[i] = keep;
            self.mesh[i].sort_unstable();
        }
        self.beats[i] += 1;
        let beat = self.beats[i];
        let window = c.history_gossip;
        self.recent[i].retain(|(b, _)| beat - b <= window);
        let ids: Vec<u32> = self.recent[i].iter().map(|(_, m)| *m).collect();
        if !ids.is_empty() {
            let lazy: Vec<u32> = outside
                .iter()
                .copied()
                .filter(|p| self.mesh[i].binary_search(p).is_err())
                .collect();
            for peer in rng.sample(&lazy, c.d_lazy as usize) {
                out.push((peer, GossipMsg::IHave(ids.clone())));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    #[test]
    fn heartbeats_keep_every_mesh_within_its_bounds() {
        let scenario = Scenario::parse(
            "name = \"t\"\nnodes = 200\ndoc = \"model\"\nduration_s = 1.0\n[overlay]\nconnections = 16\n",
            "inline",
        )
        .expect("a valid scenario");
        let mut rng = SimRng::new(9);
        let net = Net::new(&scenario, &mut rng);
        let mut gossip = Gossip::new(scenario.overlay.clone(), 200);
        for _ in 0..5 {
            for node in 0..200 {
                for (peer, message) in gossip.heartbeat(node, &net, &mut rng) {
                    gossip.receive(peer, node, message);
                }
            }
        }
        let o = &scenario.overlay;
        for (node, mesh) in gossip.mesh.iter().enumerate() {
            let reachable = net.reachable_peers(node as u32).len();
            assert!(mesh.len() <= o.d_hi as usize, "node {node}: {}", mesh.len());
            assert!(
                mesh.len() >= (o.d_lo as usize).min(reachable),
                "node {node}"
            );
        }
    }
}

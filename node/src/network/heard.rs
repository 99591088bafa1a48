//! What a node keeps of the catalogue gossip: the collections heard of, at most
//! [`MAX_HEARD`] (the least recently heard go first), and, on a mirror, how many it may still
//! follow by itself and how fast each peer may make it follow new ones. Any peer can gossip
//! any number of made-up ids; none of them may grow the node without bound.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use minga_protocol::DocumentId;

/// Most collections kept as heard of (`available` in the network status).
pub const MAX_HEARD: usize = 10_000;
/// Most collections a mirror follows by itself; past it, it logs and follows no more (the
/// operator can still follow more by hand).
pub const MAX_MIRRORED: usize = 1_000;
/// New collections a mirror follows because of one peer's gossip within [`FOLLOW_WINDOW`].
pub const FOLLOWS_PER_PEER: u32 = 50;
pub const FOLLOW_WINDOW: Duration = Duration::from_secs(60);

/// The collections heard of, by when they were last heard.
#[derive(Debug, Default)]
pub struct Heard {
    /// Each id's tick of last hearing.
    at: HashMap<DocumentId, u64>,
    /// Ids by tick of last hearing, oldest first.
    order: BTreeMap<u64, DocumentId>,
    tick: u64,
}

/// What hearing of a collection changed.
#[derive(Debug, PartialEq, Eq)]
pub struct Hearing {
    /// Not heard of before (or since it was evicted).
    pub new: bool,
    /// Forgotten to make room.
    pub evicted: Option<DocumentId>,
}

impl Heard {
    /// Records `id` as heard now.
    pub fn hear(&mut self, id: DocumentId) -> Hearing {
        self.tick += 1;
        let previous = self.at.insert(id, self.tick);
        if let Some(previous) = previous {
            self.order.remove(&previous);
        }
        self.order.insert(self.tick, id);
        let mut evicted = None;
        if self.at.len() > MAX_HEARD
            && let Some((_, oldest)) = self.order.pop_first()
        {
            self.at.remove(&oldest);
            evicted = Some(oldest);
        }
        Hearing {
            new: previous.is_none(),
            evicted,
        }
    }
}

/// How many new follows each peer's gossip has caused in its current window.
#[derive(Debug, Default)]
pub struct FollowRate {
    windows: HashMap<PeerId, (Instant, u32)>,
}

impl FollowRate {
    /// Whether `peer`'s gossip may make the mirror follow one more collection now; counts it.
    pub fn allow(&mut self, peer: PeerId, now: Instant) -> bool {
        self.windows
            .retain(|_, (start, _)| now.duration_since(*start) < FOLLOW_WINDOW);
        let (_, used) = self.windows.entry(peer).or_insert((now, 0));
        if *used >= FOLLOWS_PER_PEER {
            return false;
        }
        *used += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> DocumentId {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&n.to_be_bytes());
        DocumentId::from_bytes(bytes)
    }

    /// Past the cap, each new id evicts the least recently heard one; hearing an id again
    /// keeps it.
    #[test]
    fn the_catalogue_keeps_the_most_recently_heard() {
        let mut heard = Heard::default();
        for n in 0..MAX_HEARD as u32 {
            assert_eq!(
                heard.hear(id(n)),
                Hearing {
                    new: true,
                    evicted: None
                }
            );
        }
        assert!(!heard.hear(id(0)).new);
        let made_up = heard.hear(id(u32::MAX));
        assert_eq!(made_up.evicted, Some(id(1)));
        for n in 0..100 {
            heard.hear(id(1_000_000 + n));
        }
        assert_eq!(heard.at.len(), MAX_HEARD);
        assert_eq!(heard.order.len(), MAX_HEARD);
        assert!(heard.at.contains_key(&id(0)));
        assert!(!heard.at.contains_key(&id(101)));
    }

    #[test]
    fn one_peer_makes_a_mirror_follow_at_most_its_share_per_window() {
        let mut rate = FollowRate::default();
        let (peer, other) = (PeerId::random(), PeerId::random());
        let start = Instant::now();
        let allowed = (0..FOLLOWS_PER_PEER * 2)
            .filter(|_| rate.allow(peer, start))
            .count();
        assert_eq!(allowed, FOLLOWS_PER_PEER as usize);
        assert!(rate.allow(other, start));
        assert!(rate.allow(peer, start + FOLLOW_WINDOW));
    }
}

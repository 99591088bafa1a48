//! One fetch per document across peers. A node back online asks every peer what changed
//! while it was away (`Request::Since`), and they all list the same new entries; fetched from
//! each at once, every entry would arrive once per peer. A document listed by a second peer
//! while it is being fetched from a first waits instead, and once that fetch has landed it is
//! fetched from the second peer only if its digest there still differs from ours. A fetch
//! that fails or whose peer leaves holds nothing back: its waiting listings are fetched.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use minga_protocol::DocumentId;
use minga_protocol::reconcile::Item;

/// A fetch not answered in this long (a request times out after 120 s) no longer holds back
/// other peers' listings of its document.
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// A listing of a document held back while it is fetched from another peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The peer that listed it, to fetch from if it still differs.
    pub peer: PeerId,
    pub collection: DocumentId,
    /// Its id and its digest at that peer.
    pub item: Item,
}

#[derive(Debug, Default)]
struct State {
    /// Documents being fetched, from whom, since when.
    fetching: HashMap<[u8; 16], (PeerId, Instant)>,
    /// Listings waiting for those fetches, by the peer fetched from.
    waiting: HashMap<PeerId, Vec<Waiting>>,
}

/// Shared by the network task and its spawned work.
#[derive(Debug, Clone, Default)]
pub struct Fetching(Arc<Mutex<State>>);

impl Fetching {
    /// Of the documents `peer` listed as differing, those to fetch from it now (they count as
    /// being fetched from it); the others wait for the peer they are being fetched from.
    pub fn claim(&self, peer: PeerId, collection: DocumentId, listed: &[Item]) -> Vec<[u8; 16]> {
        let now = Instant::now();
        let mut state = self.0.lock().expect("not poisoned");
        let mut now_fetched = Vec::new();
        for item in listed {
            match state.fetching.get(&item.id) {
                Some(&(from, since)) if from != peer && now - since < FETCH_TIMEOUT => {
                    state.waiting.entry(from).or_default().push(Waiting {
                        peer,
                        collection,
                        item: *item,
                    });
                }
                _ => {
                    state.fetching.insert(item.id, (peer, now));
                    now_fetched.push(item.id);
                }
            }
        }
        now_fetched
    }

    /// `peer` answered for `ids`: they are no longer being fetched from it.
    pub fn landed(&self, peer: PeerId, ids: &[[u8; 16]]) {
        let mut state = self.0.lock().expect("not poisoned");
        for id in ids {
            if state
                .fetching
                .get(id)
                .is_some_and(|(from, _)| *from == peer)
            {
                state.fetching.remove(id);
            }
        }
    }

    /// `peer` is gone: nothing is being fetched from it any more.
    pub fn forget(&self, peer: PeerId) {
        let mut state = self.0.lock().expect("not poisoned");
        state.fetching.retain(|_, (from, _)| *from != peer);
    }

    /// Whether any listing waits for a fetch.
    pub fn has_waiting(&self) -> bool {
        !self.0.lock().expect("not poisoned").waiting.is_empty()
    }

    /// The listings no fetch holds back any more (it landed, failed, timed out or its peer
    /// left), to be checked against what is here now and fetched if they still differ.
    pub fn take_unblocked(&self) -> Vec<Waiting> {
        let now = Instant::now();
        let mut guard = self.0.lock().expect("not poisoned");
        let State { fetching, waiting } = &mut *guard;
        let mut unblocked = Vec::new();
        waiting.retain(|from, listings| {
            listings.retain(|w| {
                let blocked = fetching
                    .get(&w.item.id)
                    .is_some_and(|(peer, since)| peer == from && now - *since < FETCH_TIMEOUT);
                if !blocked {
                    unblocked.push(w.clone());
                }
                blocked
            });
            !listings.is_empty()
        });
        unblocked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(byte: u8, digest: u8) -> Item {
        Item {
            id: [byte; 16],
            digest: [digest; 16],
        }
    }

    #[test]
    fn a_document_listed_by_two_peers_is_fetched_from_the_first_only() {
        let fetching = Fetching::default();
        let (first, second) = (PeerId::random(), PeerId::random());
        let collection = DocumentId::from_bytes([9; 16]);
        let both = item(1, 7);
        assert_eq!(
            fetching.claim(first, collection, &[both, item(2, 7)]),
            vec![[1; 16], [2; 16]]
        );
        assert_eq!(
            fetching.claim(second, collection, &[both, item(3, 7)]),
            vec![[3; 16]],
            "the second peer's listing of 1 waits"
        );
        assert!(fetching.take_unblocked().is_empty(), "still being fetched");
        fetching.landed(first, &[[1; 16], [2; 16]]);
        assert_eq!(
            fetching.take_unblocked(),
            vec![Waiting {
                peer: second,
                collection,
                item: both
            }]
        );
        assert_eq!(
            fetching.claim(second, collection, &[both]),
            vec![[1; 16]],
            "landed: no longer being fetched"
        );
    }

    #[test]
    fn listings_waiting_for_a_peer_that_left_are_handed_back() {
        let fetching = Fetching::default();
        let (gone, other) = (PeerId::random(), PeerId::random());
        let collection = DocumentId::from_bytes([9; 16]);
        fetching.claim(gone, collection, &[item(1, 1)]);
        assert!(fetching.claim(other, collection, &[item(1, 2)]).is_empty());
        fetching.forget(gone);
        let back = fetching.take_unblocked();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].peer, other);
        assert!(fetching.take_unblocked().is_empty(), "handed back once");
        assert_eq!(
            fetching.claim(other, collection, &[item(1, 2)]),
            vec![[1; 16]]
        );
    }
}

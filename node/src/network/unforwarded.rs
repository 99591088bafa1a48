//! Announcements held back from gossip until their change is here: gossipsub forwards a message
//! only once it is validated, and an announcement is validated when this node holds what it
//! names, so a neighbour that pulls from us on hearing it finds the change, not just its heads.

use std::collections::HashMap;
use std::time::Instant;

use libp2p::PeerId;
use libp2p::gossipsub::MessageId;
use minga_protocol::DocumentId;

/// Most announcements held at once: beyond this a peer flooding announcements of changes it
/// does not have costs pulls, not memory.
const MAX_HELD: usize = 4096;

/// An announcement whose change is being pulled.
#[derive(Debug)]
pub struct Held {
    pub message: MessageId,
    /// The peer it came from, which holds the change (it forwarded it) and is pulled from.
    pub source: PeerId,
    pub collection: DocumentId,
    pub heads: Vec<[u8; 32]>,
    received: Instant,
}

/// Held announcements by the document they name.
#[derive(Debug, Default)]
pub struct Unforwarded {
    by_document: HashMap<DocumentId, Vec<Held>>,
    count: usize,
}

impl Unforwarded {
    /// Holds an announcement back; `false` when too many are held already (the caller then
    /// lets gossipsub drop it).
    pub fn hold(
        &mut self,
        id: DocumentId,
        message: MessageId,
        source: PeerId,
        collection: DocumentId,
        heads: Vec<[u8; 32]>,
    ) -> bool {
        if self.count >= MAX_HELD {
            return false;
        }
        self.count += 1;
        self.by_document.entry(id).or_default().push(Held {
            message,
            source,
            collection,
            heads,
            received: Instant::now(),
        });
        true
    }

    /// Removes and returns the announcements of `id` for which `here` is true: their change
    /// arrived, so they can be forwarded.
    pub fn take_arrived(
        &mut self,
        id: &DocumentId,
        mut here: impl FnMut(&Held) -> bool,
    ) -> Vec<Held> {
        let Some(held) = self.by_document.get_mut(id) else {
            return Vec::new();
        };
        let (arrived, waiting) = std::mem::take(held).into_iter().partition(|h| here(h));
        *held = waiting;
        if held.is_empty() {
            self.by_document.remove(id);
        }
        self.count -= arrived.len();
        arrived
    }

    /// The announcements of `id` still waiting.
    pub fn waiting(&self, id: &DocumentId) -> &[Held] {
        self.by_document.get(id).map_or(&[], Vec::as_slice)
    }

    /// Removes and returns the announcements received before `before`: their pull brought
    /// nothing in time, and gossipsub is about to forget them anyway.
    pub fn take_older(&mut self, before: Instant) -> Vec<Held> {
        let mut old = Vec::new();
        self.by_document.retain(|_, held| {
            let (expired, waiting) = std::mem::take(held)
                .into_iter()
                .partition(|h: &Held| h.received < before);
            old.extend(expired);
            *held = waiting;
            !held.is_empty()
        });
        self.count -= old.len();
        old
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn id(byte: u8) -> DocumentId {
        DocumentId::from_bytes([byte; DocumentId::LEN])
    }

    fn hold(unforwarded: &mut Unforwarded, document: u8, head: u8) -> bool {
        unforwarded.hold(
            id(document),
            MessageId::new(&[document, head]),
            PeerId::random(),
            id(0),
            vec![[head; 32]],
        )
    }

    #[test]
    fn only_announcements_whose_change_arrived_are_released() {
        let mut unforwarded = Unforwarded::default();
        hold(&mut unforwarded, 1, 10);
        hold(&mut unforwarded, 1, 11);
        hold(&mut unforwarded, 2, 20);
        let arrived = unforwarded.take_arrived(&id(1), |h| h.heads == [[10; 32]]);
        assert_eq!(arrived.len(), 1);
        assert_eq!(arrived[0].message, MessageId::new(&[1, 10]));
        assert_eq!(unforwarded.waiting(&id(1)).len(), 1);
        assert_eq!(unforwarded.waiting(&id(2)).len(), 1);
        assert!(unforwarded.take_arrived(&id(3), |_| true).is_empty());
    }

    #[test]
    fn old_announcements_expire_and_free_their_place() {
        let mut unforwarded = Unforwarded::default();
        for n in 0..MAX_HELD {
            assert!(hold(&mut unforwarded, (n % 200) as u8, (n / 200) as u8));
        }
        assert!(!hold(&mut unforwarded, 1, 255), "the cap is kept");
        let expired = unforwarded.take_older(Instant::now() + Duration::from_secs(1));
        assert_eq!(expired.len(), MAX_HELD);
        assert!(unforwarded.waiting(&id(1)).is_empty());
        assert!(hold(&mut unforwarded, 1, 255));
    }
}

//! What the sync session reads of this node: the store, seen as [`Replica`].

use std::sync::Arc;

use libp2p::PeerId;
use minga_protocol::DocumentId;
use minga_protocol::reconcile::{DIGEST_LEN, Item, ItemSet};
use minga_protocol::session::Replica;

use crate::store::Reader;
use crate::store::source_tag;

/// The store as the session reads it. A read that fails is logged and counts as nothing
/// there: the next check tries again.
pub struct View<'a> {
    pub store: &'a Reader,
    /// Serve every collection, followed or not.
    pub mirror: bool,
    /// A mirror that follows as many collections as it may pulls no others.
    pub mirror_full: bool,
}

fn logged<T: Default, E: std::fmt::Display>(what: &str, result: Result<T, E>) -> T {
    result.unwrap_or_else(|e| {
        tracing::error!("reading {what}: {e}");
        T::default()
    })
}

impl Replica<PeerId> for View<'_> {
    fn followed(&self) -> Vec<DocumentId> {
        logged("followed collections", self.store.followed())
    }

    fn follows(&self, collection: &DocumentId) -> bool {
        logged("followed collections", self.store.is_followed(collection))
    }

    fn carries(&self, collection: &DocumentId) -> bool {
        self.mirror || self.follows(collection)
    }

    fn pulls(&self, collection: &DocumentId) -> bool {
        (self.mirror && !self.mirror_full) || self.follows(collection)
    }

    fn position(&self, peer: &PeerId, collection: &DocumentId) -> Option<u64> {
        logged(
            "a change-log position",
            self.store.peer_seq(&peer.to_string(), collection),
        )
    }

    fn reconcile_set(&self, collection: &DocumentId) -> Result<Arc<ItemSet>, String> {
        self.store
            .reconcile_set(collection)
            .map_err(|e| e.to_string())
    }

    fn digest(&self, collection: &DocumentId, id: &DocumentId) -> Option<[u8; DIGEST_LEN]> {
        logged("a digest", self.store.item_digest(collection, id))
    }

    fn holds(&self, collection: &DocumentId, id: &DocumentId, heads: &[[u8; 32]]) -> bool {
        logged("held heads", self.store.holds(collection, id, heads))
    }

    fn log_position(&self) -> u64 {
        self.store.seq()
    }

    fn changed_since(
        &self,
        collection: &DocumentId,
        since: u64,
        limit: usize,
        asker: &PeerId,
    ) -> Result<(Vec<Item>, bool), String> {
        let asker = source_tag(&asker.to_string());
        self.store
            .changed_since(collection, since, limit, Some(asker))
            .map_err(|e| e.to_string())
    }
}

//! What a node says in `/minga/sync/1`: serving a peer's requests and acting on its responses.
//! Reads go to the store; anything received is verified and written by the event loop.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use libp2p::PeerId;

use minga_protocol::automerge::ChangeHash;
use minga_protocol::reconcile::Item;
use minga_protocol::reconcile::{self, RangePart};
use minga_protocol::sync::{self, Held, SignedDoc, SyncDocument};
use minga_protocol::wire::{
    MAX_SINCE_ITEMS, Offer, Payload, Request, Response, SINCE_UNKNOWN, WireKind,
};
use minga_protocol::{AuthorId, DocKind, DocumentId, Signature, VerifyError};
use prometheus_client::metrics::counter::Counter;

use super::fetching::Fetching;
use crate::commons::Spread;
use crate::store::Reader;
use crate::store::load;
use crate::store::{SourceTag, source_tag};
use crate::{Error, Handle};

/// Most offers in one sync request.
const MAX_OFFERS: usize = minga_protocol::limits::MAX_SYNC_OFFERS;

/// A batch stops growing past this many bytes of payload.
const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The node's side of the exchange: read access and the writer.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub store: Reader,
    pub handle: Handle,
    /// Serve and keep every collection, followed or not.
    pub mirror: bool,
    /// This node's author and its signature vouching for the node's peer id.
    pub operator: (AuthorId, Signature),
    /// Documents a peer's payload changed here.
    pub received: Counter,
    /// Documents offered to each peer by reconciliation and not answered yet.
    pub offered: Offered,
    /// Documents a change listing named, being fetched from one peer.
    pub fetching: Fetching,
}

/// How long an unanswered offer keeps a document from being offered to the same peer again.
const OFFER_TIMEOUT: Duration = Duration::from_secs(120);

/// Documents on their way to a peer, and since when: a reconciliation or change listing that
/// overlaps one still being synced (a periodic check, a repeated identify) skips them rather
/// than sending the same documents twice.
#[derive(Debug, Clone, Default)]
pub struct Offered(Arc<Mutex<HashMap<OfferedTo, Instant>>>);

/// A document (by id) offered to a peer.
type OfferedTo = (PeerId, [u8; 16]);

impl Offered {
    /// Of `ids`, those not already on their way to `peer`; they count as on their way now.
    pub fn claim(&self, peer: PeerId, ids: &[[u8; 16]]) -> Vec<[u8; 16]> {
        let now = Instant::now();
        let mut offered = self.0.lock().expect("not poisoned");
        offered.retain(|_, since| now.duration_since(*since) < OFFER_TIMEOUT);
        ids.iter()
            .filter(|id| match offered.entry((peer, **id)) {
                Entry::Occupied(_) => false,
                Entry::Vacant(slot) => {
                    slot.insert(now);
                    true
                }
            })
            .copied()
            .collect()
    }

    /// Of the documents in `to_sync`, those not already on their way to `peer`; see
    /// [`Self::claim`].
    pub fn claim_sync(&self, peer: PeerId, to_sync: &ToSync) -> ToSync {
        ToSync {
            ids: self.claim(peer, &to_sync.ids),
            collection: to_sync.collection,
            they_lack: to_sync.they_lack.clone(),
        }
    }

    /// The peer is gone: whatever was on its way to it is not, and is offered again on the
    /// next connection.
    pub fn forget(&self, peer: PeerId) {
        let mut offered = self.0.lock().expect("not poisoned");
        offered.retain(|(to, _), _| *to != peer);
    }

    /// The peer answered for these documents.
    pub fn settle(&self, peer: PeerId, answers: &[Offer]) {
        let mut offered = self.0.lock().expect("not poisoned");
        for answer in answers {
            offered.remove(&(peer, answer.id));
        }
    }
}

/// A peer broke the protocol (a forged change, a malformed range): drop it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Misbehaved(pub String);

/// Differences found by reconciliation: documents to bring level with the peer.
#[derive(Debug, Default)]
pub struct ToSync {
    pub collection: Option<DocumentId>,
    pub ids: Vec<[u8; 16]>,
    /// Of `ids`, those the peer holds no version of.
    pub they_lack: BTreeSet<[u8; 16]>,
}

/// Why a request could not be served.
fn refused(reason: &str) -> Response {
    Response::Refused {
        reason: reason.to_owned(),
    }
}

impl Exchange {
    fn carries(&self, collection: &DocumentId) -> Result<bool, Error> {
        Ok(self.mirror || self.store.is_followed(collection)?)
    }

    /// Answers `peer`'s request; may also find documents this side should bring level.
    pub async fn serve(
        &self,
        peer: PeerId,
        request: Request,
    ) -> Result<(Response, ToSync), Misbehaved> {
        let from = source_tag(&peer.to_string());
        match request {
            Request::Reconcile { collection, parts } => {
                let collection = DocumentId::from_bytes(collection);
                match self.carries(&collection) {
                    Ok(true) => {}
                    Ok(false) => return Ok((refused("collection not carried"), ToSync::default())),
                    Err(e) => return Ok((refused(&e.to_string()), ToSync::default())),
                }
                let (reply, to_sync) = self.reconcile_step(collection, &parts)?;
                Ok((Response::Reconcile { parts: reply }, to_sync))
            }
            Request::Operator => {
                let (author, signature) = self.operator;
                let response = Response::Operator {
                    author: *author.as_bytes(),
                    signature: signature.0.to_vec(),
                };
                Ok((response, ToSync::default()))
            }
            Request::Since { collection, since } => {
                let collection = DocumentId::from_bytes(collection);
                match self.carries(&collection) {
                    Ok(true) => Ok((self.since(&collection, since, from), ToSync::default())),
                    Ok(false) => Ok((refused("collection not carried"), ToSync::default())),
                    Err(e) => Ok((refused(&e.to_string()), ToSync::default())),
                }
            }
            Request::Sync { offers } => {
                let mut answers = Vec::with_capacity(offers.len());
                for offer in offers {
                    answers.push(self.answer(offer, from).await?);
                }
                Ok((Response::Sync { answers }, ToSync::default()))
            }
        }
    }

    /// One reconciliation step against our set of `collection`.
    pub fn reconcile_step(
        &self,
        collection: DocumentId,
        parts: &[RangePart],
    ) -> Result<(Vec<RangePart>, ToSync), Misbehaved> {
        let items = self
            .store
            .reconcile_set(&collection)
            .map_err(|e| Misbehaved(e.to_string()))?;
        let step = reconcile::respond(&items, parts).map_err(|e| Misbehaved(e.to_string()))?;
        let they_lack = step.they_lack.iter().copied().collect();
        let to_sync = ToSync {
            collection: Some(collection),
            ids: step.differing,
            they_lack,
        };
        Ok((step.reply, to_sync))
    }

    /// What of `collection` changed after our change-log position `since`, less what came
    /// from the asker.
    fn since(&self, collection: &DocumentId, since: u64, asker: SourceTag) -> Response {
        // Read first: whatever changes later has a greater position and is in the next answer.
        let seq = self.store.seq();
        let listed = if since == SINCE_UNKNOWN {
            Ok((Vec::new(), true))
        } else {
            self.store
                .changed_since(collection, since, MAX_SINCE_ITEMS, Some(asker))
        };
        match listed {
            // Too many to list: the asker reconciles instead, so it gets none of them.
            Ok((_, false)) => Response::Since {
                seq,
                items: Vec::new(),
                complete: false,
            },
            Ok((items, true)) => Response::Since {
                seq,
                items,
                complete: true,
            },
            Err(e) => refused(&e.to_string()),
        }
    }

    /// The documents of `peer`'s [`Response::Since`] that differ from ours, except those being
    /// fetched from another peer already (they wait for it: see [`Fetching`]).
    pub fn since_differences(
        &self,
        peer: PeerId,
        collection: DocumentId,
        theirs: &[Item],
    ) -> Result<ToSync, Error> {
        let mut differing = Vec::new();
        for item in theirs {
            let id = DocumentId::from_bytes(item.id);
            if self.store.item_digest(&collection, &id)? != Some(item.digest) {
                differing.push(*item);
            }
        }
        differing.sort_by_key(|item| item.id);
        differing.dedup_by_key(|item| item.id);
        let ids = self.fetching.claim(peer, collection, &differing);
        Ok(ToSync {
            collection: Some(collection),
            ids,
            they_lack: BTreeSet::new(),
        })
    }

    /// Listings that waited for a fetch from another peer which has since landed or failed,
    /// and still differ from what is here: what to fetch from whom.
    pub fn unblocked_fetches(&self) -> Vec<(PeerId, ToSync)> {
        let mut by_peer: HashMap<(PeerId, DocumentId), Vec<[u8; 16]>> = HashMap::new();
        for waiting in self.fetching.take_unblocked() {
            let id = DocumentId::from_bytes(waiting.item.id);
            let ours = self
                .store
                .item_digest(&waiting.collection, &id)
                .ok()
                .flatten();
            if ours != Some(waiting.item.digest) {
                by_peer
                    .entry((waiting.peer, waiting.collection))
                    .or_default()
                    .push(waiting.item.id);
            }
        }
        by_peer
            .into_iter()
            .map(|((peer, collection), ids)| {
                let to_sync = ToSync {
                    collection: Some(collection),
                    ids,
                    they_lack: BTreeSet::new(),
                };
                (peer, to_sync)
            })
            .collect()
    }

    /// The first message of reconciling `collection`.
    pub fn initiate(&self, collection: &DocumentId) -> Result<Request, Error> {
        let items = self.store.reconcile_set(collection)?;
        Ok(Request::Reconcile {
            collection: *collection.as_bytes(),
            parts: reconcile::initiate(&items),
        })
    }

    /// Offers for documents found differing, batched into requests.
    pub fn offers(&self, to_sync: &ToSync) -> Result<Vec<Request>, Error> {
        self.offer_batches(to_sync).collect()
    }

    /// [`Self::offers`], each batch read from the store only when the previous one is taken:
    /// the first leaves at once, and thousands of documents are never all in memory.
    pub fn offer_batches<'a>(
        &'a self,
        to_sync: &'a ToSync,
    ) -> impl Iterator<Item = Result<Request, Error>> + 'a {
        let mut ids = to_sync.ids.iter().peekable();
        std::iter::from_fn(move || {
            let mut batch = Vec::new();
            let mut bytes = 0;
            while let Some(id) = ids.next_if(|_| batch.len() < MAX_OFFERS && bytes < BATCH_BYTES) {
                let id = DocumentId::from_bytes(*id);
                let kind = if Some(id) == to_sync.collection {
                    WireKind::Collection
                } else {
                    WireKind::Entry
                };
                let whole = to_sync.they_lack.contains(id.as_bytes());
                match self.offer(id, kind, whole) {
                    Ok(offer) => {
                        bytes += payload_size(&offer.payload);
                        batch.push(offer);
                    }
                    Err(e) => return Some(Err(e)),
                }
            }
            (!batch.is_empty()).then_some(Ok(Request::Sync { offers: batch }))
        })
    }

    /// Our side of a document: its heads, and the whole of it when the peer holds none.
    fn offer(&self, id: DocumentId, kind: WireKind, whole: bool) -> Result<Offer, Error> {
        Ok(sync::offer(
            *id.as_bytes(),
            kind,
            &self.shareable(&id, kind)?,
            whole,
        ))
    }

    /// Applies what the peer offered, and answers with our heads and what it lacks.
    async fn answer(&self, mut offer: Offer, from: SourceTag) -> Result<Offer, Misbehaved> {
        let id = DocumentId::from_bytes(offer.id);
        // The payload is applied and not needed again: move it rather than copy a whole
        // document.
        let payload = std::mem::replace(&mut offer.payload, Payload::Nothing);
        self.apply(id, offer.kind, payload, Spread::Quietly, from)
            .await?;
        let held = self
            .shareable(&id, offer.kind)
            .map_err(|e| Misbehaved(e.to_string()))?;
        Ok(sync::answer(&offer, &held))
    }

    /// Acts on `peer`'s answers to our offers; returns a last request carrying what the peer
    /// lacks.
    pub async fn on_answers(
        &self,
        peer: PeerId,
        answers: Vec<Offer>,
        spread: Spread,
    ) -> Result<Option<Request>, Misbehaved> {
        let from = source_tag(&peer.to_string());
        let mut follow_up = Vec::new();
        for mut answer in answers {
            let id = DocumentId::from_bytes(answer.id);
            let payload = std::mem::replace(&mut answer.payload, Payload::Nothing);
            self.apply(id, answer.kind, payload, spread, from).await?;
            if answer.heads.is_empty() {
                continue;
            }
            let held = self
                .shareable(&id, answer.kind)
                .map_err(|e| Misbehaved(e.to_string()))?;
            follow_up.extend(sync::follow_up(&answer, &held));
        }
        Ok((!follow_up.is_empty()).then_some(Request::Sync { offers: follow_up }))
    }

    async fn apply(
        &self,
        id: DocumentId,
        kind: WireKind,
        payload: Payload,
        spread: Spread,
        from: SourceTag,
    ) -> Result<(), Misbehaved> {
        if payload == Payload::Nothing {
            return Ok(());
        }
        match self
            .handle
            .apply_remote(id, DocKind::from(kind), payload, spread, from)
            .await
        {
            Ok(changed) => {
                if changed {
                    self.received.inc();
                }
                Ok(())
            }
            Err(Error::Rejected(reason)) => Err(Misbehaved(format!("{id}: {reason}"))),
            Err(e) => {
                tracing::warn!(%id, "could not apply a peer's change: {e}");
                Ok(())
            }
        }
    }

    /// What of a document may leave this node.
    fn shareable(&self, id: &DocumentId, kind: WireKind) -> Result<Held<Stored>, Error> {
        if let Some(stone) = self.store.tombstone(id)? {
            return Ok(Held::Withdrawn(stone));
        }
        let (carried, heads) = match kind {
            WireKind::Entry => match self.store.entry(id)? {
                Some(entry) if entry.is_shareable() => {
                    let carried = entry
                        .collection
                        .parse()
                        .ok()
                        .map(|c| self.carries(&c))
                        .transpose()?
                        .unwrap_or(false);
                    (carried, Some(entry.heads))
                }
                _ => (false, None),
            },
            WireKind::Collection => (self.store.collection(id)?.is_some(), None),
        };
        let Some(saved) = self.store.document(id)?.filter(|_| carried) else {
            return Ok(Held::Nothing);
        };
        let signatures: BTreeMap<_, _> = self.store.signatures(id)?.into_iter().collect();
        let stored = match heads.map(|h| decode_heads(&h)) {
            Some(Some(heads)) => Stored {
                id: *id,
                saved,
                heads,
                signatures,
                loaded: OnceLock::new(),
            },
            // A collection's view does not keep its heads: load it.
            _ => Stored::loaded(
                *id,
                SignedDoc {
                    doc: load(id, &saved)?,
                    signatures,
                },
            ),
        };
        Ok(Held::Doc(stored))
    }
}

/// Heads as the entry view keeps them (hex), sorted; `None` if one does not decode.
fn decode_heads(heads: &[String]) -> Option<Vec<[u8; 32]>> {
    let mut bytes: Vec<[u8; 32]> = heads
        .iter()
        .map(|h| {
            let mut head = [0u8; 32];
            hex::decode_to_slice(h, &mut head).ok().map(|()| head)
        })
        .collect::<Option<_>>()?;
    bytes.sort();
    Some(bytes)
}

/// A document as the store keeps it: its saved bytes (which a peer holding nothing receives as
/// they are), heads and signatures, and the automerge document loaded only when changes must be
/// picked out of it.
struct Stored {
    id: DocumentId,
    saved: Vec<u8>,
    /// Sorted.
    heads: Vec<[u8; 32]>,
    /// Of every change held, so they also say which changes are held.
    signatures: BTreeMap<ChangeHash, Signature>,
    loaded: OnceLock<Option<SignedDoc>>,
}

impl Stored {
    fn loaded(id: DocumentId, signed: SignedDoc) -> Self {
        Stored {
            id,
            saved: signed.doc.save(),
            heads: signed.heads(),
            signatures: signed.signatures.clone(),
            loaded: OnceLock::from(Some(signed)),
        }
    }

    fn signed(&self) -> Option<&SignedDoc> {
        self.loaded
            .get_or_init(|| match load(&self.id, &self.saved) {
                Ok(doc) => Some(SignedDoc {
                    doc,
                    signatures: self.signatures.clone(),
                }),
                Err(e) => {
                    tracing::error!(id = %self.id, "a stored document does not load: {e}");
                    None
                }
            })
            .as_ref()
    }
}

impl SyncDocument for Stored {
    fn heads(&self) -> Vec<[u8; 32]> {
        self.heads.clone()
    }

    fn has_change(&self, hash: &[u8; 32]) -> bool {
        self.signatures.contains_key(&ChangeHash(*hash))
    }

    fn payload_for(&self, theirs: &[[u8; 32]]) -> Payload {
        if theirs.is_empty() {
            return sync::whole(self.saved.clone(), &self.signatures);
        }
        match self.signed() {
            Some(signed) => sync::payload_for(signed, theirs, || self.saved.clone()),
            None => Payload::Nothing,
        }
    }

    fn apply(
        id: DocumentId,
        kind: DocKind,
        held: Option<&Self>,
        payload: &Payload,
    ) -> Result<Option<Self>, VerifyError> {
        let held = held.and_then(Stored::signed);
        let applied = SignedDoc::apply(id, kind, held, payload)?;
        Ok(applied.map(|signed| Stored::loaded(id, signed)))
    }
}

fn payload_size(payload: &Payload) -> usize {
    match payload {
        Payload::Nothing | Payload::Tombstone(_) => 64,
        Payload::Changes(changes) => changes.iter().map(|c| c.change.len() + 64).sum(),
        Payload::Whole {
            document,
            signatures,
        } => document.len() + 96 * signatures.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_on_its_way_is_not_offered_twice() {
        let offered = Offered::default();
        let (peer, other) = (PeerId::random(), PeerId::random());
        assert_eq!(offered.claim(peer, &[[1; 16], [2; 16]]).len(), 2);
        assert_eq!(offered.claim(peer, &[[1; 16], [3; 16]]), vec![[3; 16]]);
        assert_eq!(offered.claim(other, &[[1; 16]]), vec![[1; 16]]);
        let answer = Offer {
            id: [1; 16],
            kind: WireKind::Entry,
            heads: Vec::new(),
            payload: Payload::Nothing,
        };
        offered.settle(peer, &[answer]);
        assert_eq!(offered.claim(peer, &[[1; 16]]), vec![[1; 16]]);
        offered.forget(peer);
        assert_eq!(
            offered.claim(peer, &[[1; 16], [3; 16]]).len(),
            2,
            "the peer left"
        );
        assert_eq!(offered.claim(other, &[[1; 16]]), Vec::<[u8; 16]>::new());
    }
}

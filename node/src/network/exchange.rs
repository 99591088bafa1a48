//! What a node says in `/minga/sync/1`: serving a peer's requests and acting on its responses.
//! Reads go to the store; anything received is verified and written by the event loop.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use libp2p::PeerId;

use minga_protocol::automerge::ChangeHash;
use minga_protocol::session::{Spread, ToSync};
use minga_protocol::sync::{self, Held, SignedDoc, SyncDocument};
use minga_protocol::wire::{Offer, Payload, Request, WireKind};
use minga_protocol::{AuthorId, DocKind, DocumentId, Signature, VerifyError};
use prometheus_client::metrics::counter::Counter;

use crate::commons::Verified;
use crate::store::{Reader, load};
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
}

/// A peer broke the protocol (a forged change, a malformed range): drop it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Misbehaved(pub String);

impl Exchange {
    fn carries(&self, collection: &DocumentId) -> Result<bool, Error> {
        Ok(self.mirror || self.store.is_followed(collection)?)
    }

    /// Applies the documents `peer` offered in a request, and answers each with our heads and
    /// what it lacks (not asking for those `coming` from another peer already).
    pub async fn answer_offers(
        &self,
        peer: PeerId,
        offers: Vec<Offer>,
        coming: &BTreeSet<[u8; 16]>,
    ) -> Result<Vec<Offer>, Misbehaved> {
        let from = source_tag(&peer.to_string());
        let offers = self.receive(offers, Spread::Quietly, from).await?;
        offers
            .iter()
            .map(|offer| {
                let held = self
                    .shareable(&DocumentId::from_bytes(offer.id), offer.kind)
                    .map_err(|e| Misbehaved(e.to_string()))?;
                Ok(sync::answer(offer, &held, coming.contains(&offer.id)))
            })
            .collect()
    }

    /// Offers for documents found differing, batched into requests, each batch read from the
    /// store only when the previous one is taken:
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
                let kind = if id == to_sync.collection {
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

    /// Acts on `peer`'s answers to our offers; returns a last request carrying what the peer
    /// lacks.
    pub async fn on_answers(
        &self,
        peer: PeerId,
        answers: Vec<Offer>,
        spread: Spread,
    ) -> Result<Option<Request>, Misbehaved> {
        let from = source_tag(&peer.to_string());
        let answers = self.receive(answers, spread, from).await?;
        let mut follow_up = Vec::new();
        for answer in answers.iter().filter(|answer| !answer.heads.is_empty()) {
            let held = self
                .shareable(&DocumentId::from_bytes(answer.id), answer.kind)
                .map_err(|e| Misbehaved(e.to_string()))?;
            follow_up.extend(sync::follow_up(answer, &held));
        }
        Ok((!follow_up.is_empty()).then_some(Request::Sync { offers: follow_up }))
    }

    /// Verifies and applies what `peer` sent in `offers`, and returns them without their
    /// payloads. They are queued to the writer all at once, so they share its flushes rather
    /// than wait for one each.
    async fn receive(
        &self,
        offers: Vec<Offer>,
        spread: Spread,
        from: SourceTag,
    ) -> Result<Vec<Offer>, Misbehaved> {
        let (mut offers, ahead) = self.verify_ahead(offers).await?;
        let applying = offers.iter_mut().zip(ahead).map(|(offer, ahead)| {
            let id = DocumentId::from_bytes(offer.id);
            // Applied and not needed again: moved rather than a whole document copied.
            let payload = std::mem::replace(&mut offer.payload, Payload::Nothing);
            self.apply(id, offer.kind, payload, spread, from, ahead)
        });
        futures::future::try_join_all(applying).await?;
        Ok(offers)
    }

    /// Verifies the whole documents among `offers` that are not held here, on every core and
    /// off the writer, which then only stores them (or verifies again, against what it holds,
    /// if one arrived meanwhile). The offers come back with what was verified, in order.
    async fn verify_ahead(
        &self,
        offers: Vec<Offer>,
    ) -> Result<(Vec<Offer>, Vec<Option<Verified>>), Misbehaved> {
        let mut fresh = Vec::with_capacity(offers.len());
        for offer in &offers {
            let id = DocumentId::from_bytes(offer.id);
            let new_here = matches!(offer.payload, Payload::Whole { .. })
                && !self.store.has_document(&id).unwrap_or(false);
            fresh.push(new_here);
        }
        if !fresh.contains(&true) {
            let none = offers.iter().map(|_| None).collect();
            return Ok((offers, none));
        }
        tokio::task::spawn_blocking(move || {
            let docs: Vec<_> = offers
                .iter()
                .zip(&fresh)
                .map(|(offer, fresh)| {
                    let id = DocumentId::from_bytes(offer.id);
                    fresh.then(|| (id, DocKind::from(offer.kind), &offer.payload))
                })
                .collect();
            let ahead = Verified::ahead(&docs);
            (offers, ahead)
        })
        .await
        .map_err(|e| Misbehaved(format!("verifying its documents panicked: {e}")))
    }

    async fn apply(
        &self,
        id: DocumentId,
        kind: WireKind,
        payload: Payload,
        spread: Spread,
        from: SourceTag,
        ahead: Option<Verified>,
    ) -> Result<(), Misbehaved> {
        if payload == Payload::Nothing {
            return Ok(());
        }
        match self
            .handle
            .apply_remote(id, DocKind::from(kind), payload, spread, from, ahead)
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
        let heads = match kind {
            WireKind::Entry => match self.store.entry(id)? {
                None => return Ok(Held::Absent),
                Some(entry) => {
                    let carried = match entry.collection.parse() {
                        Ok(collection) => self.carries(&collection)?,
                        Err(_) => false,
                    };
                    if !entry.is_shareable() || !carried {
                        return Ok(Held::Withheld);
                    }
                    Some(entry.heads)
                }
            },
            WireKind::Collection if self.store.collection(id)?.is_none() => {
                return Ok(Held::Absent);
            }
            WireKind::Collection => None,
        };
        let Some(saved) = self.store.document(id)? else {
            return Ok(Held::Absent);
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

//! Bringing one document level between two peers, sans IO and generic over the document: the
//! node runs it over automerge documents ([`SignedDoc`]), the simulator over a lightweight
//! [`crate::model::ModelDoc`] as well, so both exercise the same exchange.
//!
//! The side that found a document differing (by reconciliation or an announcement) sends an
//! [`offer`]: its heads, and the whole document if the peer holds none. The peer applies it and
//! sends an [`answer`]: the changes the offerer lacks, and its heads when it lacks some of the
//! offerer's. The offerer applies those and, if the peer still lacks some of its own changes,
//! sends them in a last offer ([`follow_up`]).
//! At most two round trips, batched over many documents, and only missing changes on the wire.
//! Applying is the caller's step between these functions: the node does it on its writer
//! thread, the simulator in place, both through [`SyncDocument::apply`].

use std::collections::BTreeMap;

use automerge::{Automerge, ChangeHash};

use crate::inflate::Budget;
use crate::verify::{self, DocKind, SignedChange, VerifyError, contained};
use crate::wire::{HashSignature, NOTHING_HELD, Offer, Payload, SignedBytes, WireKind};
use crate::{DocumentId, Signature, Tombstone};

/// A replica's copy of one document, as far as syncing needs it.
pub trait SyncDocument: Sized {
    /// The heads, sorted.
    fn heads(&self) -> Vec<[u8; 32]>;

    /// Whether the change with this hash is held.
    fn has_change(&self, hash: &[u8; 32]) -> bool;

    /// What a peer whose heads are `theirs` lacks: the whole document if it holds nothing,
    /// else the changes that are not ancestors of the heads of theirs we know.
    fn payload_for(&self, theirs: &[[u8; 32]]) -> Payload;

    /// Verifies a payload against what is held (`None`: nothing) and returns the document it
    /// makes; `Ok(None)` when it brings nothing new. Nothing unverified is ever kept.
    fn apply(
        id: DocumentId,
        kind: DocKind,
        held: Option<&Self>,
        payload: &Payload,
    ) -> Result<Option<Self>, VerifyError>;
}

/// What a replica may tell a peer about one document.
#[derive(Debug, Clone)]
pub enum Held<D> {
    /// The document was withdrawn.
    Withdrawn(Tombstone),
    /// Not held at all: offered by its heads alone, it is asked for whole.
    Absent,
    /// Held but not to be shared (private, unconsented, of a collection not carried).
    Withheld,
    Doc(D),
}

impl<D: SyncDocument> Held<D> {
    fn heads_and(&self, payload: impl FnOnce(&D) -> Payload) -> (Vec<[u8; 32]>, Payload) {
        match self {
            Held::Withdrawn(stone) => (Vec::new(), Payload::Tombstone(stone.clone())),
            Held::Absent | Held::Withheld => (Vec::new(), Payload::Nothing),
            Held::Doc(doc) => (doc.heads(), payload(doc)),
        }
    }
}

/// Our first word on a document found differing: our heads, and the whole of it when the peer
/// holds none (`they_lack`).
pub fn offer<D: SyncDocument>(
    id: [u8; 16],
    kind: WireKind,
    held: &Held<D>,
    they_lack: bool,
) -> Offer {
    let (heads, payload) = held.heads_and(|doc| {
        if they_lack {
            doc.payload_for(&[])
        } else {
            Payload::Nothing
        }
    });
    Offer {
        id,
        kind,
        heads,
        payload,
    }
}

/// The answer to `offer`, once its payload is applied to `held`: what the offerer lacks, and
/// our heads only when it must send us something back. When it holds changes we lack (heads
/// we do not know), our heads alone let it send exactly those, instead of our whole history
/// now; when we hold none of the document, [`NOTHING_HELD`] asks for the whole of it, unless
/// it is `coming` from another peer already. Otherwise it holds exactly our heads once it
/// applies the answer, so they are left out: 32 bytes a document, most of an answer.
pub fn answer<D: SyncDocument>(offer: &Offer, held: &Held<D>, coming: bool) -> Offer {
    let (heads, payload) = match held {
        Held::Absent if !offer.heads.is_empty() && !coming => {
            (vec![NOTHING_HELD], Payload::Nothing)
        }
        Held::Doc(doc) if !offer.heads.iter().all(|h| doc.has_change(h)) => {
            (doc.heads(), Payload::Nothing)
        }
        Held::Doc(doc) if doc.heads() == offer.heads => (Vec::new(), Payload::Nothing),
        Held::Doc(doc) => (Vec::new(), doc.payload_for(&offer.heads)),
        Held::Withdrawn(stone) => (Vec::new(), Payload::Tombstone(stone.clone())),
        Held::Absent | Held::Withheld => (Vec::new(), Payload::Nothing),
    };
    Offer {
        id: offer.id,
        kind: offer.kind,
        heads,
        payload,
    }
}

/// After applying an answer to `held`: a last offer with what the peer still lacks, if any
/// (none when the answer left its heads out; the whole document when it holds none). Where the
/// peer's heads are not all known here, that is everything not below the known ones, so that
/// two sides that both changed a document always make progress.
pub fn follow_up<D: SyncDocument>(answer: &Offer, held: &Held<D>) -> Option<Offer> {
    let Held::Doc(doc) = held else {
        return None;
    };
    let heads = doc.heads();
    if answer.heads.is_empty() || heads == answer.heads {
        return None;
    }
    let theirs: &[[u8; 32]] = if answer.heads == [NOTHING_HELD] {
        &[]
    } else {
        &answer.heads
    };
    let payload = doc.payload_for(theirs);
    (payload != Payload::Nothing).then_some(Offer {
        id: answer.id,
        kind: answer.kind,
        heads,
        payload,
    })
}

/// A document with the signatures of all its changes.
#[derive(Debug, Clone)]
pub struct SignedDoc {
    pub doc: Automerge,
    pub signatures: BTreeMap<ChangeHash, Signature>,
}

impl From<WireKind> for DocKind {
    fn from(kind: WireKind) -> Self {
        match kind {
            WireKind::Entry => DocKind::Entry,
            WireKind::Collection => DocKind::Collection,
        }
    }
}

impl From<DocKind> for WireKind {
    fn from(kind: DocKind) -> Self {
        match kind {
            DocKind::Entry => WireKind::Entry,
            DocKind::Collection => WireKind::Collection,
        }
    }
}

/// A document after a payload was applied, with the signatures of the changes it gained.
pub type Applied = (Automerge, Vec<(ChangeHash, Signature)>);

/// Sorted heads as wire bytes.
pub fn heads_bytes(doc: &Automerge) -> Vec<[u8; 32]> {
    let mut heads: Vec<[u8; 32]> = doc.get_heads().iter().map(|h| h.0).collect();
    heads.sort();
    heads
}

impl SyncDocument for SignedDoc {
    fn heads(&self) -> Vec<[u8; 32]> {
        heads_bytes(&self.doc)
    }

    fn has_change(&self, hash: &[u8; 32]) -> bool {
        self.doc
            .get_change_meta_by_hash(&ChangeHash(*hash))
            .is_some()
    }

    fn payload_for(&self, theirs: &[[u8; 32]]) -> Payload {
        payload_for(self, theirs, || self.doc.save())
    }

    fn apply(
        id: DocumentId,
        kind: DocKind,
        held: Option<&Self>,
        payload: &Payload,
    ) -> Result<Option<Self>, VerifyError> {
        let Some((doc, new)) = apply_payload(id, kind, held.map(|h| &h.doc), payload)? else {
            return Ok(None);
        };
        let mut signatures = held.map(|h| h.signatures.clone()).unwrap_or_default();
        signatures.extend(new);
        Ok(Some(SignedDoc { doc, signatures }))
    }
}

/// The whole saved document and the signatures of all its changes, for a peer holding nothing.
pub fn whole(document: Vec<u8>, signatures: &BTreeMap<ChangeHash, Signature>) -> Payload {
    let signatures = signatures
        .iter()
        .map(|(hash, sig)| HashSignature {
            hash: hash.0,
            signature: sig.0.to_vec(),
        })
        .collect();
    Payload::Whole {
        document,
        signatures,
    }
}

/// [`SyncDocument::payload_for`] of a signed document whose saved bytes `saved` gives, so a
/// caller that keeps them (the node's store) need not save the document again.
pub fn payload_for(
    held: &SignedDoc,
    theirs: &[[u8; 32]],
    saved: impl FnOnce() -> Vec<u8>,
) -> Payload {
    if theirs.is_empty() {
        return whole(saved(), &held.signatures);
    }
    let known: Vec<ChangeHash> = theirs
        .iter()
        .map(|h| ChangeHash(*h))
        .filter(|h| held.doc.get_change_meta_by_hash(h).is_some())
        .collect();
    let mut changes: Vec<SignedBytes> = Vec::new();
    for change in held.doc.get_changes(&known) {
        let Some(signature) = held.signatures.get(&change.hash()) else {
            // A change without a signature is never stored; skip rather than send it unsigned.
            continue;
        };
        changes.push(SignedBytes {
            change: change.raw_bytes().to_vec(),
            signature: signature.0.to_vec(),
        });
    }
    if changes.is_empty() {
        Payload::Nothing
    } else {
        Payload::Changes(changes)
    }
}

/// Verifies a payload against what is held (`None`: nothing) and returns the new document with
/// the signatures of the changes it gained. `Ok(None)` when the payload brings nothing new.
pub fn apply_payload(
    id: DocumentId,
    kind: DocKind,
    held: Option<&Automerge>,
    payload: &Payload,
) -> Result<Option<Applied>, VerifyError> {
    // Every byte below reaches automerge only once its inflation is known to fit the budget.
    let mut budget = Budget::new();
    let incoming: Vec<SignedChange> = match payload {
        Payload::Nothing | Payload::Tombstone(_) => return Ok(None),
        Payload::Changes(changes) => changes
            .iter()
            .map(|c| {
                let signature = signature(&c.signature)?;
                SignedChange::decode_within(c.change.clone(), signature, &mut budget)
            })
            .collect::<Result<_, _>>()?,
        Payload::Whole {
            document,
            signatures,
        } => {
            budget.admit(document)?;
            // Loaded into a scratch document only to take its changes apart; every one of them
            // is verified below before anything is kept.
            let changes = contained(|| Automerge::load(document).map(|s| s.get_changes(&[])))?;
            let by_hash: BTreeMap<[u8; 32], &Vec<u8>> =
                signatures.iter().map(|s| (s.hash, &s.signature)).collect();
            changes
                .into_iter()
                .map(|change| {
                    let sig = by_hash
                        .get(&change.hash().0)
                        .ok_or(VerifyError::BadSignature {
                            hash: change.hash(),
                        })?;
                    Ok(SignedChange {
                        signature: signature(sig)?,
                        change,
                    })
                })
                .collect::<Result<_, VerifyError>>()?
        }
    };
    let empty = Automerge::new();
    let held_doc = held.unwrap_or(&empty);
    let new: Vec<(ChangeHash, Signature)> = incoming
        .iter()
        .filter(|c| held_doc.get_change_meta_by_hash(&c.change.hash()).is_none())
        .map(|c| (c.change.hash(), c.signature))
        .collect();
    if new.is_empty() {
        return Ok(None);
    }
    let doc = verify::verify_and_apply(id, kind, held_doc, incoming)?;
    Ok(Some((doc, new)))
}

pub(crate) fn signature(bytes: &[u8]) -> Result<Signature, VerifyError> {
    Signature::try_from(bytes)
        .map_err(|_| VerifyError::Malformed("a signature is not 64 bytes".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuthorKey;
    use crate::model::ModelDoc;

    /// A document offered by its heads alone to a peer that holds none of it: the peer asks for
    /// it, and the follow-up brings it whole; when it is on its way from elsewhere, it does not.
    #[test]
    fn a_peer_holding_none_of_a_heads_only_offer_asks_for_it_whole() {
        let (id, doc) = ModelDoc::create(&AuthorKey::from_bytes(&[1; 32]), 7, 500);
        let held = Held::Doc(doc.clone());
        let offer = offer(*id.as_bytes(), WireKind::Entry, &held, false);
        assert_eq!(offer.payload, Payload::Nothing);

        let asked = answer(&offer, &Held::<ModelDoc>::Absent, false);
        assert_eq!(asked.heads, [NOTHING_HELD]);
        let last = follow_up(&asked, &held).expect("the whole document follows");
        assert!(matches!(last.payload, Payload::Whole { .. }));
        let kept = ModelDoc::apply(id, DocKind::Entry, None, &last.payload).unwrap();
        assert_eq!(kept.map(|d| d.heads()), Some(doc.heads()));

        let coming = answer(&offer, &Held::<ModelDoc>::Absent, true);
        assert!(coming.heads.is_empty());
        assert_eq!(follow_up(&coming, &held), None);
        let withheld = answer(&offer, &Held::<ModelDoc>::Withheld, false);
        assert!(
            withheld.heads.is_empty(),
            "a withheld document is never asked for"
        );
    }
}

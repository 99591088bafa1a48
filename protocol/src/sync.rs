//! Bringing one document level between two peers, as pure functions over automerge documents:
//! what to send a peer given its heads, and how to verify and apply what a peer sent. The node
//! moves these payloads over `/minga/sync/1`; the simulator can move them over a model network.
//!
//! The side that found a document differing (by reconciliation or an announcement) offers its
//! heads, and the whole document if the peer holds none; the peer applies it and answers with
//! its heads and the changes the offerer lacks; the offerer applies those and, if the peer still
//! lacks some of its own changes, sends them in a last offer. At most two round trips, batched
//! over many documents, and only missing changes on the wire.

use std::collections::BTreeMap;

use automerge::{Automerge, ChangeHash};

use crate::verify::{self, DocKind, SignedChange, VerifyError};
use crate::wire::{HashSignature, Payload, SignedBytes, WireKind};
use crate::{DocumentId, Signature};

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

/// What a peer whose heads are `theirs` lacks of `held`: the whole document if it holds
/// nothing, else the changes that are not ancestors of the heads of theirs we know.
pub fn payload_for(
    held: &SignedDoc,
    theirs: &[[u8; 32]],
    saved: impl FnOnce() -> Vec<u8>,
) -> Payload {
    if theirs.is_empty() {
        let signatures = held
            .signatures
            .iter()
            .map(|(hash, sig)| HashSignature {
                hash: hash.0,
                signature: sig.0.to_vec(),
            })
            .collect();
        return Payload::Whole {
            document: saved(),
            signatures,
        };
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
    let incoming: Vec<SignedChange> = match payload {
        Payload::Nothing | Payload::Tombstone(_) => return Ok(None),
        Payload::Changes(changes) => changes
            .iter()
            .map(|c| SignedChange::decode(c.change.clone(), signature(&c.signature)?))
            .collect::<Result<_, _>>()?,
        Payload::Whole {
            document,
            signatures,
        } => {
            // Loaded into a scratch document only to take its changes apart; every one of them
            // is verified below before anything is kept.
            let scratch =
                Automerge::load(document).map_err(|e| VerifyError::Malformed(e.to_string()))?;
            let by_hash: BTreeMap<[u8; 32], &Vec<u8>> =
                signatures.iter().map(|s| (s.hash, &s.signature)).collect();
            scratch
                .get_changes(&[])
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

fn signature(bytes: &[u8]) -> Result<Signature, VerifyError> {
    Signature::try_from(bytes)
        .map_err(|_| VerifyError::Malformed("a signature is not 64 bytes".into()))
}

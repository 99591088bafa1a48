//! A lightweight stand-in for an entry's automerge document, so the simulator can run the real
//! sync core with 10,000 nodes: a graph of signed changes that carry only their author, their
//! dependencies and the size of the edit they stand for. It is verified like the real thing
//! (signatures, the genesis bound to the id, dependencies present) and sent in the same
//! payloads, so hostile bytes are refused by the same kinds of checks.

use std::collections::{BTreeMap, BTreeSet};

use automerge::ChangeHash;
use serde::{Deserialize, Serialize};

use crate::limits::MAX_DOCUMENT_BYTES;
use crate::sync::{SyncDocument, signature};
use crate::verify::{DocKind, VerifyError};
use crate::wire::{HashSignature, Payload, SignedBytes};
use crate::{AuthorId, AuthorKey, DocumentId, Signature};

/// One edit of a model document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelChange {
    pub author: [u8; 32],
    /// Tells apart edits by one author on the same dependencies (and genesis changes).
    pub seq: u64,
    pub deps: Vec<[u8; 32]>,
    /// Bytes of the edit this change stands for: counted, never allocated.
    pub size: u32,
}

impl ModelChange {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("model changes encode")
    }

    fn decode(bytes: &[u8]) -> Result<Self, VerifyError> {
        postcard::from_bytes(bytes).map_err(|e| VerifyError::Malformed(e.to_string()))
    }

    pub fn hash(&self) -> ChangeHash {
        let mut hasher = blake3::Hasher::new_derive_key("minga model change 1");
        hasher.update(&self.encode());
        ChangeHash(*hasher.finalize().as_bytes())
    }
}

/// A model document: its changes in causal order with their signatures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelDoc {
    changes: Vec<(ChangeHash, ModelChange, Signature)>,
    index: BTreeMap<ChangeHash, usize>,
    heads: BTreeSet<[u8; 32]>,
}

impl ModelDoc {
    /// A new document whose genesis `key` signs; `nonce` tells apart documents made alike.
    pub fn create(key: &AuthorKey, nonce: u64, size: u32) -> (DocumentId, ModelDoc) {
        let genesis = ModelChange {
            author: *key.id().as_bytes(),
            seq: nonce,
            deps: Vec::new(),
            size,
        };
        let id = DocumentId::of_genesis(&genesis.hash());
        let mut doc = ModelDoc::default();
        doc.sign_and_add(id, key, genesis);
        (id, doc)
    }

    /// An edit by `key` on top of the current heads.
    pub fn edit(&mut self, id: DocumentId, key: &AuthorKey, size: u32) -> ChangeHash {
        let change = ModelChange {
            author: *key.id().as_bytes(),
            seq: self.changes.len() as u64,
            deps: self.heads.iter().copied().collect(),
            size,
        };
        self.sign_and_add(id, key, change)
    }

    fn sign_and_add(&mut self, id: DocumentId, key: &AuthorKey, change: ModelChange) -> ChangeHash {
        let hash = change.hash();
        let signature = key.sign_change(&id, &hash);
        self.add(hash, change, signature);
        hash
    }

    /// Adds a change whose dependencies are all held.
    fn add(&mut self, hash: ChangeHash, change: ModelChange, signature: Signature) {
        for dep in &change.deps {
            self.heads.remove(dep);
        }
        self.heads.insert(hash.0);
        self.index.insert(hash, self.changes.len());
        self.changes.push((hash, change, signature));
    }

    pub fn contains(&self, hash: &ChangeHash) -> bool {
        self.index.contains_key(hash)
    }

    /// Every change's hash and the size it stands for, in causal order.
    pub fn changes(&self) -> impl Iterator<Item = (ChangeHash, u32)> + '_ {
        self.changes.iter().map(|(hash, c, _)| (*hash, c.size))
    }

    /// Indexes of the changes that are ancestors of (or equal to) `known`.
    fn ancestors(&self, known: &[ChangeHash]) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<usize> = known
            .iter()
            .filter_map(|h| self.index.get(h))
            .copied()
            .collect();
        while let Some(at) = stack.pop() {
            if seen.insert(at) {
                let deps = &self.changes[at].1.deps;
                stack.extend(deps.iter().filter_map(|d| self.index.get(&ChangeHash(*d))));
            }
        }
        seen
    }
}

impl SyncDocument for ModelDoc {
    fn heads(&self) -> Vec<[u8; 32]> {
        self.heads.iter().copied().collect()
    }

    fn has_change(&self, hash: &[u8; 32]) -> bool {
        self.contains(&ChangeHash(*hash))
    }

    fn payload_for(&self, theirs: &[[u8; 32]]) -> Payload {
        if theirs.is_empty() {
            let changes: Vec<&ModelChange> = self.changes.iter().map(|(_, c, _)| c).collect();
            let signatures = self
                .changes
                .iter()
                .map(|(hash, _, sig)| HashSignature {
                    hash: hash.0,
                    signature: sig.0.to_vec(),
                })
                .collect();
            return Payload::Whole {
                document: postcard::to_allocvec(&changes).expect("model changes encode"),
                signatures,
            };
        }
        let known: Vec<ChangeHash> = theirs.iter().map(|h| ChangeHash(*h)).collect();
        let theirs = self.ancestors(&known);
        let missing: Vec<SignedBytes> = (0..self.changes.len())
            .filter(|at| !theirs.contains(at))
            .map(|at| {
                let (_, change, signature) = &self.changes[at];
                SignedBytes {
                    change: change.encode(),
                    signature: signature.0.to_vec(),
                }
            })
            .collect();
        if missing.is_empty() {
            Payload::Nothing
        } else {
            Payload::Changes(missing)
        }
    }

    fn apply(
        id: DocumentId,
        _kind: DocKind,
        held: Option<&Self>,
        payload: &Payload,
    ) -> Result<Option<Self>, VerifyError> {
        let incoming: Vec<(ModelChange, Signature)> = match payload {
            Payload::Nothing | Payload::Tombstone(_) => return Ok(None),
            Payload::Changes(changes) => changes
                .iter()
                .map(|c| Ok((ModelChange::decode(&c.change)?, signature(&c.signature)?)))
                .collect::<Result<_, VerifyError>>()?,
            Payload::Whole {
                document,
                signatures,
            } => {
                let changes: Vec<ModelChange> = postcard::from_bytes(document)
                    .map_err(|e| VerifyError::Malformed(e.to_string()))?;
                let by_hash: BTreeMap<[u8; 32], &Vec<u8>> =
                    signatures.iter().map(|s| (s.hash, &s.signature)).collect();
                changes
                    .into_iter()
                    .map(|change| {
                        let hash = change.hash();
                        let sig = by_hash
                            .get(&hash.0)
                            .ok_or(VerifyError::BadSignature { hash })?;
                        Ok((change, signature(sig)?))
                    })
                    .collect::<Result<_, VerifyError>>()?
            }
        };
        let mut doc = held.cloned().unwrap_or_default();
        let mut pending: Vec<(ChangeHash, ModelChange, Signature)> = Vec::new();
        for (change, sig) in incoming {
            let hash = change.hash();
            if doc.contains(&hash) || pending.iter().any(|(h, _, _)| *h == hash) {
                continue;
            }
            verify(&id, &hash, &change, &sig)?;
            pending.push((hash, change, sig));
        }
        if pending.is_empty() {
            return Ok(None);
        }
        // Add in causal order, whatever order they came in.
        loop {
            let before = pending.len();
            let mut waiting = Vec::new();
            for (hash, change, sig) in pending {
                if change.deps.iter().all(|d| doc.contains(&ChangeHash(*d))) {
                    doc.add(hash, change, sig);
                } else {
                    waiting.push((hash, change, sig));
                }
            }
            pending = waiting;
            if pending.is_empty() {
                return Ok(Some(doc));
            }
            if pending.len() == before {
                return Err(VerifyError::MissingDependencies(pending.len()));
            }
        }
    }
}

/// The checks a change passes before it is kept.
fn verify(
    id: &DocumentId,
    hash: &ChangeHash,
    change: &ModelChange,
    sig: &Signature,
) -> Result<(), VerifyError> {
    if change.size as usize > MAX_DOCUMENT_BYTES {
        return Err(VerifyError::TooLarge {
            hash: *hash,
            size: change.size as usize,
        });
    }
    if change.deps.is_empty() && !id.is_genesis(hash) {
        return Err(VerifyError::NotGenesis {
            hash: *hash,
            document: *id,
        });
    }
    if !AuthorId::from_bytes(change.author).verify_change(id, hash, sig) {
        return Err(VerifyError::BadSignature { hash: *hash });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> AuthorKey {
        AuthorKey::from_bytes(&[byte; 32])
    }

    #[test]
    fn concurrent_edits_merge_both_ways() {
        let (id, a) = ModelDoc::create(&key(1), 7, 500);
        let mut b = ModelDoc::apply(id, DocKind::Entry, None, &a.payload_for(&[]))
            .unwrap()
            .unwrap();
        let mut a = a;
        a.edit(id, &key(1), 100);
        b.edit(id, &key(2), 200);
        let to_b = a.payload_for(&b.heads());
        let to_a = b.payload_for(&a.heads());
        let b = ModelDoc::apply(id, DocKind::Entry, Some(&b), &to_b)
            .unwrap()
            .unwrap();
        let a = ModelDoc::apply(id, DocKind::Entry, Some(&a), &to_a)
            .unwrap()
            .unwrap();
        assert_eq!(a.heads(), b.heads());
        assert_eq!(a.heads().len(), 2);
        assert_eq!(a.payload_for(&b.heads()), Payload::Nothing);
    }

    #[test]
    fn forged_and_transplanted_changes_are_refused() {
        let (id, doc) = ModelDoc::create(&key(1), 1, 10);
        let Payload::Whole {
            document,
            mut signatures,
        } = doc.payload_for(&[])
        else {
            panic!("a peer with nothing gets the whole document");
        };
        signatures[0].signature[0] ^= 1;
        let forged = Payload::Whole {
            document: document.clone(),
            signatures,
        };
        assert!(matches!(
            ModelDoc::apply(id, DocKind::Entry, None, &forged),
            Err(VerifyError::BadSignature { .. })
        ));
        let (other, _) = ModelDoc::create(&key(1), 2, 10);
        assert!(matches!(
            ModelDoc::apply(other, DocKind::Entry, None, &doc.payload_for(&[])),
            Err(VerifyError::NotGenesis { .. })
        ));
        let garbage = Payload::Changes(vec![SignedBytes {
            change: vec![0xff; 3],
            signature: vec![0; 64],
        }]);
        assert!(matches!(
            ModelDoc::apply(id, DocKind::Entry, Some(&doc), &garbage),
            Err(VerifyError::Malformed(_))
        ));
    }
}

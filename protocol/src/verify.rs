//! Which changes a node accepts. Every rule is judged from a change and its ancestors only, so
//! every node decides the same way and replicas never diverge for good:
//!
//! - the signature verifies, over the document id and the hash recomputed from the bytes;
//! - the actor is `author key ‖ 16-byte nonce` and the key is the signer;
//! - a change without dependencies is the genesis, whose hash the id certifies;
//! - no change after the genesis writes a fixed field;
//! - the change is at most [`MAX_DOCUMENT_BYTES`] and the document it leaves (its ancestors plus
//!   itself) passes [`Entry::check`] or [`Collection::check`];
//! - for a collection, the signer maintains it;
//! - no two different changes share an actor and sequence number (equivocation).

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::fmt::Display;
use std::panic::{self, AssertUnwindSafe};

use automerge::{ActorId, Automerge, Change, ChangeHash, legacy};

use crate::inflate::Budget;
use crate::limits::{MAX_DOCUMENT_BYTES, MAX_INFLATED_BYTES, MAX_PAYLOAD_CHUNKS, MAX_PAYLOAD_ROWS};
use crate::{AuthorId, AuthorKey, Collection, DocumentId, Entry, Refusal, Signature};

/// What kind of document a change belongs to; each has its own fixed fields and rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocKind {
    Entry,
    Collection,
}

/// A change with the signature of its author.
#[derive(Clone, Debug)]
pub struct SignedChange {
    pub change: Change,
    pub signature: Signature,
}

/// Two different changes claiming one actor and sequence number: proof of a forked author.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Equivocation {
    pub actor: ActorId,
    pub seq: u64,
    pub first: ChangeHash,
    pub second: ChangeHash,
}

/// Why a change was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("a change could not be decoded: {0}")]
    Malformed(String),
    #[error("change {hash}: the signature does not verify")]
    BadSignature { hash: ChangeHash },
    #[error("change {hash}: the actor is not an author key followed by a 16-byte nonce")]
    ForeignActor { hash: ChangeHash },
    #[error("change {hash} has no dependencies but is not the genesis of {document}")]
    NotGenesis {
        hash: ChangeHash,
        document: DocumentId,
    },
    #[error("change {hash} has {size} bytes; at most {MAX_DOCUMENT_BYTES} are allowed")]
    TooLarge { hash: ChangeHash, size: usize },
    #[error("change {hash} writes {field}, which is fixed at creation")]
    ImmutableField { hash: ChangeHash, field: String },
    #[error("change {hash} is signed by {author}, who does not maintain the collection")]
    NotMaintainer { hash: ChangeHash, author: AuthorId },
    #[error("change {hash} leaves the document invalid: {refusal}")]
    Refused { hash: ChangeHash, refusal: Refusal },
    #[error("equivocation: actor {} sequence {} is both {} and {}", .0.actor, .0.seq, .0.first, .0.second)]
    Equivocation(Equivocation),
    #[error("{0} change(s) depend on changes that were not sent")]
    MissingDependencies(usize),
    #[error("the payload's compressed parts inflate to more than {MAX_INFLATED_BYTES} bytes")]
    Inflates,
    #[error("the payload holds more than {MAX_PAYLOAD_CHUNKS} automerge chunks")]
    TooManyChunks,
    #[error("the payload's columns describe more than {MAX_PAYLOAD_ROWS} operations")]
    TooManyRows,
}

impl SignedChange {
    /// Decodes change bytes from elsewhere; the hash is recomputed from them.
    pub fn decode(bytes: Vec<u8>, signature: Signature) -> Result<Self, VerifyError> {
        Self::decode_within(bytes, signature, &mut Budget::new())
    }

    /// [`Self::decode`], the bytes counted against the `budget` of the payload they came in.
    pub fn decode_within(
        bytes: Vec<u8>,
        signature: Signature,
        budget: &mut Budget,
    ) -> Result<Self, VerifyError> {
        budget.admit(&bytes)?;
        let change = contained(|| Change::from_bytes(bytes))?;
        Ok(SignedChange { change, signature })
    }
}

/// Runs an automerge call on bytes from elsewhere, its error or its panic answered as
/// [`VerifyError::Malformed`]. automerge 0.12 still has `unwrap`s a crafted change reaches
/// before any signature is checked (an op counter past `u32` panics in `OpId::new`; found by
/// fuzzing, `docs/fuzzing.md`), so every call that decodes, loads or applies foreign changes
/// goes through here. The default hook still prints the panic: silencing it would mean
/// swapping the process-wide hook, which races every other thread's panics.
pub(crate) fn contained<T, E: Display>(
    call: impl FnOnce() -> Result<T, E>,
) -> Result<T, VerifyError> {
    match panic::catch_unwind(AssertUnwindSafe(call)) {
        Ok(result) => result.map_err(|e| VerifyError::Malformed(e.to_string())),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("no message");
            Err(VerifyError::Malformed(format!(
                "automerge panicked: {message}"
            )))
        }
    }
}

impl AuthorKey {
    /// Signs every change of `doc` that is not an ancestor of `since`.
    pub fn sign_changes_since(
        &self,
        document: &DocumentId,
        doc: &Automerge,
        since: &[ChangeHash],
    ) -> Vec<(ChangeHash, Signature)> {
        doc.get_changes_meta(since)
            .iter()
            .map(|meta| (meta.hash, self.sign_change(document, &meta.hash)))
            .collect()
    }
}

/// Verifies `incoming` against the `held` document and returns the document with them applied.
///
/// Nothing is applied unless every change passes; changes already held are skipped.
pub fn verify_and_apply(
    document: DocumentId,
    kind: DocKind,
    held: &Automerge,
    incoming: Vec<SignedChange>,
) -> Result<Automerge, VerifyError> {
    let mut seen: BTreeMap<(Vec<u8>, u64), ChangeHash> = held
        .get_changes_meta(&[])
        .iter()
        .map(|meta| ((meta.actor.to_bytes().to_vec(), meta.seq), meta.hash))
        .collect();
    let mut pending: Vec<SignedChange> = Vec::new();
    let mut hashes = BTreeSet::new();
    for signed in incoming {
        let hash = signed.change.hash();
        if held.get_change_meta_by_hash(&hash).is_some() || !hashes.insert(hash) {
            continue;
        }
        check_alone(document, kind, &signed)?;
        let slot = (
            signed.change.actor_id().to_bytes().to_vec(),
            signed.change.seq(),
        );
        if let Some(first) = seen.insert(slot, hash) {
            return Err(VerifyError::Equivocation(Equivocation {
                actor: signed.change.actor_id().clone(),
                seq: signed.change.seq(),
                first,
                second: hash,
            }));
        }
        pending.push(signed);
    }

    let mut doc = held.clone();
    while !pending.is_empty() {
        let before = pending.len();
        let mut waiting = Vec::new();
        for signed in pending {
            let ready = signed
                .change
                .deps()
                .iter()
                .all(|d| doc.get_change_meta_by_hash(d).is_some());
            if ready {
                apply_checked(document, kind, &mut doc, signed.change)?;
            } else {
                waiting.push(signed);
            }
        }
        if waiting.len() == before {
            return Err(VerifyError::MissingDependencies(waiting.len()));
        }
        pending = waiting;
    }
    Ok(doc)
}

/// The rules that need only the change itself.
fn check_alone(
    document: DocumentId,
    kind: DocKind,
    signed: &SignedChange,
) -> Result<(), VerifyError> {
    let change = &signed.change;
    let hash = change.hash();
    let size = change.raw_bytes().len();
    // A chunk is magic (4 bytes) ‖ checksum (4) ‖ …; the checksum is the start of the hash but
    // not hashed itself, and `Change::from_bytes` does not check it (loading a document does),
    // so without this a corrupted checksum would pass verification and fail to load later.
    if change.raw_bytes().get(4..8) != Some(&hash.0[..4]) {
        return Err(VerifyError::Malformed(format!(
            "change {hash}: the checksum does not match"
        )));
    }
    if size > MAX_DOCUMENT_BYTES {
        return Err(VerifyError::TooLarge { hash, size });
    }
    let author = AuthorId::of_actor(change.actor_id()).ok_or(VerifyError::ForeignActor { hash })?;
    if !author.verify_change(&document, &hash, &signed.signature) {
        return Err(VerifyError::BadSignature { hash });
    }
    if change.deps().is_empty() {
        if !document.is_genesis(&hash) {
            return Err(VerifyError::NotGenesis { hash, document });
        }
        return Ok(());
    }
    let fixed: &[&str] = match kind {
        DocKind::Entry => &crate::entry::FIXED_FIELDS,
        DocKind::Collection => &crate::collection::FIXED_FIELDS,
    };
    for op in contained(|| Ok::<_, Infallible>(change.decode()))?.operations {
        if let (legacy::ObjectId::Root, legacy::Key::Map(key)) = (&op.obj, &op.key)
            && fixed.contains(&key.as_str())
        {
            return Err(VerifyError::ImmutableField {
                hash,
                field: key.to_string(),
            });
        }
    }
    Ok(())
}

/// Applies one change whose dependencies are in `doc`, checking the state it leaves; on an
/// error `doc` may hold part of it, so the caller must drop it.
fn apply_checked(
    document: DocumentId,
    kind: DocKind,
    doc: &mut Automerge,
    change: Change,
) -> Result<(), VerifyError> {
    let hash = change.hash();
    let mut deps = change.deps().to_vec();
    deps.sort();
    let mut heads = doc.get_heads();
    heads.sort();
    // The state before the change: the document itself when the change extends every head, else
    // the document at the change's dependencies.
    let before = if deps == heads {
        None
    } else {
        Some(contained(|| doc.fork_at(&deps))?)
    };
    if kind == DocKind::Collection && !change.deps().is_empty() {
        let author =
            AuthorId::of_actor(change.actor_id()).ok_or(VerifyError::ForeignActor { hash })?;
        let state = before.as_ref().unwrap_or(doc);
        if !Collection::read(document, state).is_maintainer(&author) {
            return Err(VerifyError::NotMaintainer { hash, author });
        }
    }
    let refused = |refusal| VerifyError::Refused { hash, refusal };
    let check = |state: &Automerge| match kind {
        DocKind::Entry => Entry::read(document, state).check(),
        DocKind::Collection => Collection::check(state),
    };
    match before {
        // `doc` is the caller's working copy, dropped if any change fails: no need to keep
        // the state before this one.
        None => {
            contained(|| doc.apply_changes([change]))?;
            check(doc).map_err(refused)?;
        }
        Some(mut state) => {
            contained(|| state.apply_changes([change.clone()]))?;
            check(&state).map_err(refused)?;
            contained(|| doc.apply_changes([change]))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{self, MAX_MESSAGE_BYTES, Payload, Request};

    /// A peer's change whose op counter exceeds `u32` (found by fuzzing `sync_payload`):
    /// automerge 0.12 panics decoding it, before any signature is checked.
    #[test]
    fn a_change_automerge_panics_on_is_malformed() {
        let bytes =
            include_bytes!("../../fuzz/corpus/sync_payload/automerge-opid-counter-over-u32");
        let Ok(Request::Sync { offers }) = wire::decode::<Request>(bytes, MAX_MESSAGE_BYTES) else {
            panic!("the input is a sync request");
        };
        let changes: Vec<_> = offers
            .iter()
            .flat_map(|offer| match &offer.payload {
                Payload::Changes(changes) => changes.clone(),
                _ => Vec::new(),
            })
            .collect();
        assert!(!changes.is_empty());
        // automerge's panic, contained...
        let panicked = changes
            .iter()
            .map(|c| contained(|| Change::from_bytes(c.change.clone())))
            .filter(|r| matches!(r, Err(VerifyError::Malformed(m)) if m.starts_with("automerge panicked")))
            .count();
        assert_eq!(panicked, 1);
        // ...and the node's decoding refuses every change (the inflation budget's walk, which
        // comes first, already finds the panicking one malformed).
        for change in changes {
            let decoded = SignedChange::decode(change.change, Signature([0; 64]));
            assert!(decoded.is_err(), "{decoded:?}");
        }
    }
}

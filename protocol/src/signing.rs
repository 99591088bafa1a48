//! Author keys and change signatures: a signature binds one change to one document and one key.
//!
//! The signed message is `"minga/change/1\0" ‖ document id ‖ change hash`; the verifier recomputes
//! the hash from the change bytes, so a signature can never be moved to other bytes or another
//! document.

use std::fmt;
use std::str::FromStr;

use automerge::{ActorId, ChangeHash};
use ed25519_dalek::Signer;

use crate::DocumentId;

/// Domain separation tag of change signatures.
const CHANGE_DOMAIN: &[u8] = b"minga/change/1\0";

/// Domain separation tag of an author key vouching for a node's network key (peer id).
const PEER_DOMAIN: &[u8] = b"minga/peer/1\0";

/// Bytes of the per-start nonce appended to the author key in actor ids.
pub const NONCE_LEN: usize = 16;

/// The secret key that signs content. It can be exported and moved to another machine.
pub struct AuthorKey(ed25519_dalek::SigningKey);

/// The public half of an author key: who signed a change.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AuthorId([u8; 32]);

/// An ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl AuthorKey {
    pub fn from_bytes(secret: &[u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(secret))
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn id(&self) -> AuthorId {
        AuthorId(self.0.verifying_key().to_bytes())
    }

    /// The automerge actor for this key in one run of a node: key ‖ nonce. A fresh nonce at every
    /// start means a restored backup can never reuse an (actor, sequence number) pair.
    pub fn actor(&self, nonce: [u8; NONCE_LEN]) -> ActorId {
        let mut bytes = Vec::with_capacity(32 + NONCE_LEN);
        bytes.extend_from_slice(&self.id().0);
        bytes.extend_from_slice(&nonce);
        ActorId::from(bytes)
    }

    pub fn sign_change(&self, document: &DocumentId, hash: &ChangeHash) -> Signature {
        Signature(self.0.sign(&change_message(document, hash)).to_bytes())
    }

    /// Vouches that the node with this peer id (its bytes) speaks for this author.
    pub fn vouch_for_peer(&self, peer: &[u8]) -> Signature {
        self.sign_raw(&[PEER_DOMAIN, peer].concat())
    }

    /// Signs `domain ‖ payload`; used by other signed records (tombstones).
    pub(crate) fn sign_raw(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }
}

impl fmt::Debug for AuthorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthorKey({})", self.id())
    }
}

impl AuthorId {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The author key an actor id claims: its first 32 bytes, when it is a Minga actor.
    pub fn of_actor(actor: &ActorId) -> Option<Self> {
        let bytes = actor.to_bytes();
        (bytes.len() == 32 + NONCE_LEN).then(|| Self(bytes[..32].try_into().expect("32 bytes")))
    }

    pub fn verify_change(&self, document: &DocumentId, hash: &ChangeHash, sig: &Signature) -> bool {
        self.verify_raw(&change_message(document, hash), sig)
    }

    /// Whether this author vouched for the node with this peer id.
    pub fn vouches_for_peer(&self, peer: &[u8], sig: &Signature) -> bool {
        self.verify_raw(&[PEER_DOMAIN, peer].concat(), sig)
    }

    pub(crate) fn verify_raw(&self, message: &[u8], sig: &Signature) -> bool {
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&sig.0))
            .is_ok()
    }
}

impl fmt::Display for AuthorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for AuthorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthorId({self})")
    }
}

impl FromStr for AuthorId {
    type Err = hex::FromHexError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0; 32];
        hex::decode_to_slice(text, &mut bytes)?;
        Ok(Self(bytes))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(&self.0[..8]))
    }
}

impl TryFrom<&[u8]> for Signature {
    type Error = std::array::TryFromSliceError;

    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        Ok(Self(bytes.try_into()?))
    }
}

fn change_message(document: &DocumentId, hash: &ChangeHash) -> Vec<u8> {
    [CHANGE_DOMAIN, document.as_bytes(), &hash.0].concat()
}

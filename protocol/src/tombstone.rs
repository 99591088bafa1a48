//! Tombstones: signed withdrawals of an entry. automerge keeps all history, so removing a story
//! needs a record every node honours by dropping the document and refusing its id.

use serde::{Deserialize, Serialize};

use crate::{AuthorId, AuthorKey, DocumentId, Signature};

/// Domain separation tag of tombstone signatures.
const TOMBSTONE_DOMAIN: &[u8] = b"minga/tombstone/1\0";

/// A signed `{entry id, reason}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    pub entry: DocumentId,
    pub reason: String,
    /// Hex author key of the signer: the entry's author or a maintainer of its collection.
    pub signer: String,
    /// Hex ed25519 signature over the domain tag, the entry id and the reason.
    pub signature: String,
}

impl Tombstone {
    pub fn sign(key: &AuthorKey, entry: DocumentId, reason: &str) -> Self {
        let signature = key.sign_raw(&message(&entry, reason));
        Tombstone {
            entry,
            reason: reason.to_owned(),
            signer: key.id().to_string(),
            signature: hex::encode(signature.0),
        }
    }

    /// The signer, if the signature verifies.
    pub fn verified_signer(&self) -> Option<AuthorId> {
        let signer: AuthorId = self.signer.parse().ok()?;
        let bytes = hex::decode(&self.signature).ok()?;
        let signature = Signature::try_from(bytes.as_slice()).ok()?;
        signer
            .verify_raw(&message(&self.entry, &self.reason), &signature)
            .then_some(signer)
    }
}

fn message(entry: &DocumentId, reason: &str) -> Vec<u8> {
    [TOMBSTONE_DOMAIN, entry.as_bytes(), reason.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_and_detects_tampering() {
        let key = AuthorKey::from_bytes(&[3; 32]);
        let entry = DocumentId::from_bytes([9; 16]);
        let mut stone = Tombstone::sign(&key, entry, "withdrawn by the family");
        assert_eq!(stone.verified_signer(), Some(key.id()));
        stone.reason.push('!');
        assert_eq!(stone.verified_signer(), None);
    }
}

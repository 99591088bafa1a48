//! The API's answers that are not a stored view of their own, as types: the API serialises
//! them and the CLI reads them back (or builds them itself when no node runs), so a renamed
//! field fails to compile instead of printing nothing. The stored views (`Entry`,
//! `Collection`, `Tombstone`) come from `minga_protocol`; the read answers (`Status`,
//! `CollectionList`, `Listing`, `History`) from [`crate::queries`]; the bundle summaries from
//! [`crate::bundle`].

use minga_protocol::{DocumentId, Tombstone};
use serde::{Deserialize, Serialize};

/// `201` of `POST /api/v1/collections` and `POST /api/v1/entries`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    pub id: DocumentId,
}

/// `POST` and `DELETE /api/v1/collections/{id}/follow`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Followed {
    pub followed: bool,
}

/// `POST` and `DELETE /api/v1/peers/{peer}/block`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocked {
    pub blocked: bool,
}

/// `DELETE /api/v1/entries/{id}`: the entry withdrawn and its signed tombstone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub deleted: DocumentId,
    pub tombstone: Tombstone,
}

impl From<Tombstone> for Deleted {
    fn from(tombstone: Tombstone) -> Self {
        Deleted {
            deleted: tombstone.entry,
            tombstone,
        }
    }
}

/// `GET /api/v1/peers`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerList {
    pub peers: Vec<Peer>,
}

/// A connected peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub peer_id: String,
    pub addresses: Vec<String>,
    /// Unix milliseconds of the last event from the peer.
    pub last_seen: i64,
    /// Bytes of sync messages and attachment ranges sent to the peer since it connected
    /// (absent from nodes before 2026-12-06).
    #[serde(default)]
    pub bytes_sent: u64,
    /// Bytes of sync messages and attachment ranges received from the peer.
    #[serde(default)]
    pub bytes_received: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use minga_protocol::AuthorKey;

    /// The JSON of DESIGN.md's contract, field for field.
    #[test]
    fn views_keep_the_contract_field_names() {
        let id = DocumentId::from_bytes([1; DocumentId::LEN]);
        let stone = Tombstone::sign(&AuthorKey::from_bytes(&[2; 32]), id, "duplicado");
        let deleted = serde_json::to_value(Deleted::from(stone.clone())).unwrap();
        assert_eq!(deleted["deleted"], id.to_string());
        assert_eq!(deleted["tombstone"]["reason"], "duplicado");
        let peers = PeerList {
            peers: vec![Peer {
                peer_id: "p".into(),
                addresses: vec!["/ip4/10.0.0.2/tcp/4747".into()],
                last_seen: 5,
                bytes_sent: 7,
                bytes_received: 9,
            }],
        };
        let json = serde_json::to_value(&peers).unwrap();
        assert_eq!(json["peers"][0]["last_seen"], 5);
        assert_eq!(json["peers"][0]["bytes_received"], 9);
        assert_eq!(
            serde_json::from_value::<PeerList>(json).unwrap(),
            peers,
            "the CLI reads back what the API writes"
        );
        assert_eq!(
            serde_json::to_value(Created { id }).unwrap()["id"],
            id.to_string()
        );
        assert_eq!(
            serde_json::to_value(Followed { followed: true }).unwrap()["followed"],
            true
        );
        assert_eq!(
            serde_json::to_value(Blocked { blocked: false }).unwrap()["blocked"],
            false
        );
    }
}

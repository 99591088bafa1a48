//! The messages peers exchange: `/minga/sync/1` requests and responses, and the gossip
//! announcements. Encoded with postcard (compact, no field names); decoding is bounded by
//! [`MAX_MESSAGE_BYTES`] and unknown trailing bytes are ignored so newer peers can extend them.
//! Every list and text is bounded too (`crate::limits`), checked while it is decoded.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};

use crate::Tombstone;
use crate::limits::{
    MAX_CATALOGUE_ITEMS, MAX_CATALOGUE_TEXT_BYTES, MAX_DOCUMENT_BYTES, MAX_HEADS,
    MAX_OFFER_CHANGES, MAX_REASON_BYTES, MAX_SIGNATURE_BYTES, MAX_SYNC_OFFERS,
};
use crate::reconcile::{Item, MAX_PARTS, RangePart};

/// Largest message: a batch of whole entries, each at most 1 MiB.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Largest gossip message.
pub const MAX_GOSSIP_BYTES: usize = 64 * 1024;

/// Whether a document is an entry or a collection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireKind {
    Entry,
    Collection,
}

/// A request of `/minga/sync/1`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// One step of reconciling a collection's set of documents.
    Reconcile {
        collection: [u8; 16],
        #[serde(deserialize_with = "crate::bounded::vec::<_, _, MAX_PARTS>")]
        parts: Vec<RangePart>,
    },
    /// Documents to bring level, offered by the side that found them differing.
    Sync {
        #[serde(deserialize_with = "crate::bounded::vec::<_, _, MAX_SYNC_OFFERS>")]
        offers: Vec<Offer>,
    },
    /// Which author runs the node: asked once per connection, so blocking a peer can hide
    /// its author's content.
    Operator,
    /// What of a collection changed on the peer after its change-log position `since` (the
    /// `seq` of its last [`Response::Since`]); [`SINCE_UNKNOWN`] asks only for the position.
    Since { collection: [u8; 16], since: u64 },
}

/// `since` of a peer never asked before: answer with the position only.
pub const SINCE_UNKNOWN: u64 = u64::MAX;

/// Most items in one [`Response::Since`]; past it the asker reconciles instead.
pub const MAX_SINCE_ITEMS: usize = 4096;

/// A response of `/minga/sync/1`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// The next reconciliation step; empty when every range is settled.
    Reconcile {
        #[serde(deserialize_with = "crate::bounded::vec::<_, _, MAX_PARTS>")]
        parts: Vec<RangePart>,
    },
    /// One answer per offer, in order.
    Sync {
        #[serde(deserialize_with = "crate::bounded::vec::<_, _, MAX_SYNC_OFFERS>")]
        answers: Vec<Offer>,
    },
    /// Not served (a collection not followed, a blocked peer, a busy node); not an attack.
    Refused {
        #[serde(deserialize_with = "crate::bounded::string::<_, MAX_REASON_BYTES>")]
        reason: String,
    },
    /// The node's author key, and its signature vouching for the node's peer id.
    Operator {
        author: [u8; 32],
        #[serde(
            serialize_with = "byte_run",
            deserialize_with = "crate::bounded::bytes::<_, MAX_SIGNATURE_BYTES>"
        )]
        signature: Vec<u8>,
    },
    /// The collection's documents changed since the asked position, the current position, and
    /// whether that is all of them.
    Since {
        seq: u64,
        #[serde(deserialize_with = "crate::bounded::vec::<_, _, MAX_SINCE_ITEMS>")]
        items: Vec<Item>,
        complete: bool,
    },
}

/// One document in a sync exchange: the sender's heads and what it sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    pub id: [u8; 16],
    pub kind: WireKind,
    /// The sender's heads after applying what it received; empty if it holds nothing. An answer
    /// leaves them out (empty) when they are the offer's, and says `[NOTHING_HELD]` when it holds
    /// none of a document offered by its heads alone, to ask for the whole of it.
    #[serde(deserialize_with = "crate::bounded::vec::<_, _, MAX_HEADS>")]
    pub heads: Vec<[u8; 32]>,
    pub payload: Payload,
}

/// The heads of a document held not at all, in an answer (as git's zero object id): no change
/// hashes to it, so an offerer that does not know this value still sends every change.
pub const NOTHING_HELD: [u8; 32] = [0; 32];

/// What an offer carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Payload {
    Nothing,
    /// Changes the receiver lacks, each with its author's signature.
    Changes(
        #[serde(deserialize_with = "crate::bounded::vec::<_, _, MAX_OFFER_CHANGES>")]
        Vec<SignedBytes>,
    ),
    /// The whole saved document and the signatures of all its changes, for a receiver that
    /// holds none of it.
    Whole {
        #[serde(
            serialize_with = "byte_run",
            deserialize_with = "crate::bounded::bytes::<_, MAX_DOCUMENT_BYTES>"
        )]
        document: Vec<u8>,
        #[serde(deserialize_with = "crate::bounded::vec::<_, _, MAX_OFFER_CHANGES>")]
        signatures: Vec<HashSignature>,
    },
    /// The document was withdrawn.
    Tombstone(Tombstone),
}

/// A change's bytes and its signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedBytes {
    #[serde(
        serialize_with = "byte_run",
        deserialize_with = "crate::bounded::bytes::<_, MAX_DOCUMENT_BYTES>"
    )]
    pub change: Vec<u8>,
    #[serde(
        serialize_with = "byte_run",
        deserialize_with = "crate::bounded::bytes::<_, MAX_SIGNATURE_BYTES>"
    )]
    pub signature: Vec<u8>,
}

/// A change hash and its signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashSignature {
    pub hash: [u8; 32],
    #[serde(
        serialize_with = "byte_run",
        deserialize_with = "crate::bounded::bytes::<_, MAX_SIGNATURE_BYTES>"
    )]
    pub signature: Vec<u8>,
}

/// Gossip on a collection topic: a document changed; its content is pulled, never pushed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    pub collection: [u8; 16],
    pub id: [u8; 16],
    pub kind: WireKind,
    #[serde(deserialize_with = "crate::bounded::vec::<_, _, MAX_HEADS>")]
    pub heads: Vec<[u8; 32]>,
}

/// Gossip on the catalogue topic: collections a node carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalogue {
    #[serde(deserialize_with = "crate::bounded::vec::<_, _, MAX_CATALOGUE_ITEMS>")]
    pub collections: Vec<CatalogueItem>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogueItem {
    pub id: [u8; 16],
    #[serde(deserialize_with = "crate::bounded::string::<_, MAX_CATALOGUE_TEXT_BYTES>")]
    pub name: String,
    #[serde(deserialize_with = "crate::bounded::string::<_, MAX_CATALOGUE_TEXT_BYTES>")]
    pub title: String,
}

/// Why bytes are not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message of {0} bytes is over the limit of {1}")]
    TooLarge(usize, usize),
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Encodes a byte field in one piece. Postcard writes the same bytes as for a sequence of
/// `u8` (the length, then the bytes) but without a call per byte, so encoding a payload, and
/// measuring it with [`encoded_len`], costs per field rather than per byte.
fn byte_run<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes)
}

pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    postcard::to_allocvec(message).expect("wire types encode")
}

/// The length of [`encode`]'s bytes, without allocating them.
pub fn encoded_len<T: Serialize>(message: &T) -> usize {
    postcard::serialize_with_flavor(message, postcard::ser_flavors::Size::default())
        .expect("wire types encode")
}

/// Decodes a message of at most `limit` bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, WireError> {
    if bytes.len() > limit {
        return Err(WireError::TooLarge(bytes.len(), limit));
    }
    postcard::take_from_bytes(bytes)
        .map(|(message, _rest)| message)
        .map_err(|e| WireError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn byte_fields_encode_as_a_sequence_of_u8_would() {
        let signed = SignedBytes {
            change: vec![1, 2, 3],
            signature: vec![9; 200],
        };
        let mut expected = vec![3, 1, 2, 3, 200, 1];
        expected.extend([9; 200]);
        assert_eq!(encode(&signed), expected);
        assert_eq!(encoded_len(&signed), expected.len());
        #[derive(Serialize)]
        struct AsSequences {
            change: Vec<u8>,
            signature: Vec<u8>,
        }
        let as_sequences = AsSequences {
            change: signed.change.clone(),
            signature: signed.signature.clone(),
        };
        assert_eq!(encode(&signed), encode(&as_sequences));
    }

    #[test]
    fn round_trips() {
        let request = Request::Sync {
            offers: vec![Offer {
                id: [1; 16],
                kind: WireKind::Entry,
                heads: vec![[2; 32]],
                payload: Payload::Changes(vec![SignedBytes {
                    change: vec![3; 10],
                    signature: vec![4; 64],
                }]),
            }],
        };
        assert_eq!(
            decode::<Request>(&encode(&request), MAX_MESSAGE_BYTES),
            Ok(request)
        );
    }

    /// Lists and texts past their bounds are malformed messages, refused while decoding.
    #[test]
    fn lists_and_texts_past_their_bounds_are_refused() {
        let offer = Offer {
            id: [1; 16],
            kind: WireKind::Entry,
            heads: Vec::new(),
            payload: Payload::Nothing,
        };
        let offers = |n| Request::Sync {
            offers: vec![offer.clone(); n],
        };
        let decoded = |r: &Request| decode::<Request>(&encode(r), MAX_MESSAGE_BYTES);
        assert!(decoded(&offers(MAX_SYNC_OFFERS)).is_ok());
        assert!(matches!(
            decoded(&offers(MAX_SYNC_OFFERS + 1)),
            Err(WireError::Malformed(_))
        ));
        let catalogue = |name: String| Catalogue {
            collections: vec![CatalogueItem {
                id: [2; 16],
                name,
                title: String::new(),
            }],
        };
        let decoded = |c: &Catalogue| decode::<Catalogue>(&encode(c), MAX_GOSSIP_BYTES);
        assert!(decoded(&catalogue("a".repeat(MAX_CATALOGUE_TEXT_BYTES))).is_ok());
        assert!(decoded(&catalogue("a".repeat(MAX_CATALOGUE_TEXT_BYTES + 1))).is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<Request>(&bytes, MAX_MESSAGE_BYTES);
            let _ = decode::<Response>(&bytes, MAX_MESSAGE_BYTES);
            let _ = decode::<Announcement>(&bytes, MAX_GOSSIP_BYTES);
        }
    }
}

//! Blob addressing and the messages of `/minga/blob/1`: attachments are named by the BLAKE3
//! hash of their bytes, and peers fetch them range by range, each range a verified-streaming
//! (bao) encoding that the receiver checks against the hash before it writes a byte.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The BLAKE3 hash of a blob's bytes: lowercase hex in JSON and on disk, 32 bytes on the wire.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobHash(pub [u8; 32]);

impl Serialize for BlobHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for BlobHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(deserializer).map(BlobHash)
        }
    }
}

/// Why a text is not a blob hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a blob hash (64 hex digits of BLAKE3)")]
pub struct BlobHashError(pub String);

impl BlobHash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> BlobHash {
        BlobHash(*blake3::hash(bytes).as_bytes())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl FromStr for BlobHash {
    type Err = BlobHashError;

    /// Exactly 64 hex digits, nothing else: a hash never carries a path separator, a dot or a
    /// percent sign, so it is safe as a file name once parsed.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let refuse = || BlobHashError(text.chars().take(80).collect());
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(refuse());
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| refuse())?;
        Ok(BlobHash(bytes))
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({})", self.to_hex())
    }
}

/// The bao chunk group: 16 KiB (2^4 BLAKE3 chunks of 1 KiB). The outboard keeps one 64-byte
/// hash pair per group, 0.4 % of the blob; ranges are requested in whole groups.
pub const CHUNK_GROUP_LOG: u8 = 4;

/// Bytes in one chunk group.
pub const CHUNK_GROUP_BYTES: u64 = 1024 << CHUNK_GROUP_LOG;

/// Most bytes of blob data one request asks for.
pub const MAX_RANGE_BYTES: u64 = 4 * 1024 * 1024;

/// Largest response frame: a range of data, its chunk groups' hashes and the parents above.
pub const MAX_RESPONSE_BYTES: usize = MAX_RANGE_BYTES as usize + 256 * 1024;

/// A request of `/minga/blob/1`: the bao encoding of `len` bytes of a blob from `start`.
/// `start` is a multiple of [`CHUNK_GROUP_BYTES`]; `len` at most [`MAX_RANGE_BYTES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRequest {
    pub hash: BlobHash,
    pub start: u64,
    pub len: u64,
}

impl BlobRequest {
    /// Whether the request is well-formed (aligned, bounded, non-empty).
    pub fn is_valid(&self) -> bool {
        self.start.is_multiple_of(CHUNK_GROUP_BYTES) && self.len > 0 && self.len <= MAX_RANGE_BYTES
    }
}

/// The header of a response of `/minga/blob/1`; a `Range` header is followed on the stream
/// by exactly `encoded_len` bytes of bao encoding (parents in pre-order, then leaf data).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobResponseHead {
    /// The blob is `size` bytes; the encoding of the requested range follows.
    Range { size: u64, encoded_len: u64 },
    /// The peer does not hold the whole blob (yet).
    Missing,
    /// The request is malformed (unaligned, too long, past the end).
    Refused,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_parse_only_from_64_hex_digits() {
        let hash = BlobHash::of(b"minga");
        assert_eq!(hash.to_hex().parse::<BlobHash>(), Ok(hash));
        assert_eq!(
            hash.to_hex().to_uppercase().parse::<BlobHash>(),
            Ok(hash),
            "case does not matter on input"
        );
        for bad in [
            "",
            "abc",
            "../../etc/passwd",
            &format!("{}/", &hash.to_hex()[..63]),
            &format!("{}0", hash.to_hex()),
            &"g".repeat(64),
            &format!("..{}", &hash.to_hex()[2..]),
        ] {
            assert!(bad.parse::<BlobHash>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn hashes_are_hex_in_json_and_bytes_on_the_wire() {
        let hash = BlobHash::of(b"minga");
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(json, format!("\"{hash}\""));
        assert_eq!(serde_json::from_str::<BlobHash>(&json).unwrap(), hash);
        let wire = crate::wire::encode(&hash);
        assert_eq!(wire.len(), 32);
        assert_eq!(crate::wire::decode::<BlobHash>(&wire, 64).unwrap(), hash);
    }

    #[test]
    fn requests_must_be_aligned_and_bounded() {
        let hash = BlobHash::of(b"x");
        let ok = BlobRequest {
            hash,
            start: CHUNK_GROUP_BYTES * 3,
            len: MAX_RANGE_BYTES,
        };
        assert!(ok.is_valid());
        assert!(!BlobRequest { start: 1, ..ok }.is_valid());
        assert!(!BlobRequest { len: 0, ..ok }.is_valid());
        assert!(
            !BlobRequest {
                len: MAX_RANGE_BYTES + 1,
                ..ok
            }
            .is_valid()
        );
    }
}

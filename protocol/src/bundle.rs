//! The sneakernet bundle format, without IO: a signed manifest that names every section of the
//! bundle by size and BLAKE3 hash, the header that starts every part file, and the checks a
//! reader makes before it trusts a byte. The node streams bundles to and from disk around this.
//!
//! A bundle is one logical byte stream, cut into part files of at most a fixed size (FAT32 holds
//! files under 4 GiB), each starting with a [`PartHeader`]:
//!
//! ```text
//! part 1:  header | manifest length (u32 LE) | manifest (JSON) | signature (64) | sections…
//! part n:  header | …sections continued
//! ```
//!
//! Sections follow in manifest order: collections, entries, tombstones (each a postcard
//! [`Payload`](crate::wire::Payload), the same form network sync carries) and blobs (raw bytes,
//! whose section hash is the blob's own hash). The manifest signature binds the manifest to the
//! exporting node's author key; the manifest's hashes bind every section; the part header binds
//! a part to its bundle and its place.

use serde::{Deserialize, Serialize};

use crate::{AuthorId, AuthorKey, DocumentId, Signature};

/// First bytes of every part file.
pub const MAGIC: [u8; 8] = *b"MINGABDL";

/// The bundle format this code writes. Readers accept every version up to it (see [`upgrade`]).
pub const FORMAT_VERSION: u32 = 1;

/// Bytes of a [`PartHeader`].
pub const PART_HEADER_LEN: usize = 8 + 4 + 4 + 4 + 32;

/// Bytes of the manifest signature.
pub const SIGNATURE_LEN: usize = 64;

/// Largest manifest: 64 MiB is several hundred thousand documents.
pub const MAX_MANIFEST_BYTES: u32 = 64 * 1024 * 1024;

/// Largest document or tombstone section: a whole document (1 MiB) with its signatures, in a
/// wire message.
pub const MAX_DOCUMENT_SECTION: u64 = crate::wire::MAX_MESSAGE_BYTES as u64;

/// Largest blob section (and so largest attachment a bundle carries): 16 GiB.
pub const MAX_BLOB_SECTION: u64 = 16 << 30;

/// Largest part a FAT32 stick holds comfortably: 2 GiB.
pub const MAX_PART_BYTES: u64 = 2 << 30;

/// Domain separation tag of manifest signatures.
const MANIFEST_DOMAIN: &[u8] = b"minga/bundle-manifest/1\0";

/// The start of every part file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartHeader {
    pub format: u32,
    /// 1-based position of this part.
    pub index: u32,
    pub count: u32,
    /// The bundle this part belongs to: BLAKE3 of its manifest bytes.
    pub bundle: [u8; 32],
}

/// What the manifest describes: the state exported and the sections carried.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// Who exported it.
    pub node: Exporter,
    /// The exporting node's clock when it exported (informative only).
    pub created: i64,
    /// The collections exported (`--collection`, or every one held with `--all`).
    pub collections: Vec<DocumentId>,
    /// The bundle the receiver was assumed to hold (`--since`), as its hex id.
    pub since: Option<String>,
    /// Every shareable document of those collections with its heads, carried or not: what a
    /// node that imported this bundle holds at least, for the next `--since`.
    pub documents: Vec<DocumentState>,
    /// Every withdrawn entry of those collections, carried or not.
    pub tombstones: Vec<DocumentId>,
    /// What follows the manifest, in order.
    pub sections: Vec<Section>,
}

/// The node that exported a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exporter {
    pub peer_id: String,
    /// Hex author key that signs the manifest.
    pub author: String,
}

/// A document and its heads (sorted lowercase hex change hashes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentState {
    pub id: DocumentId,
    pub kind: SectionKind,
    pub heads: Vec<String>,
}

/// One section of a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    pub kind: SectionKind,
    /// A document id, or a blob's hex BLAKE3 hash.
    pub id: String,
    pub size: u64,
    /// Hex BLAKE3 of the section's bytes.
    pub hash: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SectionKind {
    Collection,
    Entry,
    Tombstone,
    Blob,
}

/// Why bytes are not a bundle this node can trust.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("not a minga bundle (it does not start with the bundle magic)")]
    NotABundle,
    #[error(
        "made by a newer minga (bundle format {found}; this minga reads up to {FORMAT_VERSION}); upgrade minga to import it"
    )]
    NewerFormat { found: u32 },
    #[error("bundle format {0} is unknown")]
    UnknownFormat(u32),
    #[error("part {found} is where part {expected} should be (parts out of order or renamed)")]
    PartOutOfOrder { expected: u32, found: u32 },
    #[error("part {index} belongs to another bundle")]
    ForeignPart { index: u32 },
    #[error("the bundle has {count} parts but part {index} says {claims}")]
    PartCount { index: u32, count: u32, claims: u32 },
    #[error("the manifest claims {size} bytes; at most {MAX_MANIFEST_BYTES} are allowed")]
    ManifestTooLarge { size: u32 },
    #[error(
        "the manifest's signature does not verify: the manifest was altered or damaged, or signed by another key"
    )]
    BadSignature,
    #[error("the manifest is not valid: {0}")]
    BadManifest(String),
    #[error("section {index} ({kind:?} {id}) claims {size} bytes; at most {max} are allowed")]
    SectionTooLarge {
        index: usize,
        kind: SectionKind,
        id: String,
        size: u64,
        max: u64,
    },
}

impl PartHeader {
    pub fn encode(&self) -> [u8; PART_HEADER_LEN] {
        let mut bytes = [0u8; PART_HEADER_LEN];
        bytes[..8].copy_from_slice(&MAGIC);
        bytes[8..12].copy_from_slice(&self.format.to_le_bytes());
        bytes[12..16].copy_from_slice(&self.index.to_le_bytes());
        bytes[16..20].copy_from_slice(&self.count.to_le_bytes());
        bytes[20..].copy_from_slice(&self.bundle);
        bytes
    }

    pub fn decode(bytes: &[u8; PART_HEADER_LEN]) -> Result<Self, BundleError> {
        if bytes[..8] != MAGIC {
            return Err(BundleError::NotABundle);
        }
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let header = PartHeader {
            format: word(8),
            index: word(12),
            count: word(16),
            bundle: bytes[20..].try_into().expect("32 bytes"),
        };
        check_format(header.format)?;
        Ok(header)
    }

    /// Checks that this header is part `index` of the bundle the first part started.
    pub fn check_follows(&self, first: &PartHeader, index: u32) -> Result<(), BundleError> {
        if self.bundle != first.bundle {
            return Err(BundleError::ForeignPart { index });
        }
        if self.index != index {
            return Err(BundleError::PartOutOfOrder {
                expected: index,
                found: self.index,
            });
        }
        if self.count != first.count {
            return Err(BundleError::PartCount {
                index,
                count: first.count,
                claims: self.count,
            });
        }
        Ok(())
    }
}

fn check_format(format: u32) -> Result<(), BundleError> {
    match format {
        0 => Err(BundleError::UnknownFormat(0)),
        f if f > FORMAT_VERSION => Err(BundleError::NewerFormat { found: f }),
        _ => Ok(()),
    }
}

/// The id of a bundle: BLAKE3 of its manifest bytes.
pub fn bundle_id(manifest_bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(manifest_bytes).as_bytes()
}

impl Manifest {
    /// The manifest's bytes and their signature by `key`.
    pub fn sign(&self, key: &AuthorKey) -> (Vec<u8>, Signature) {
        let bytes = serde_json::to_vec(self).expect("manifests serialise");
        let signature = key.sign_raw(&signed_message(&bytes));
        (bytes, signature)
    }

    /// Parses manifest bytes of bundle format `format`, checks the signature of the author key
    /// they name, and checks that every section size is within its limit.
    pub fn open(format: u32, bytes: &[u8], signature: &Signature) -> Result<Self, BundleError> {
        let manifest = upgrade(format, bytes)?;
        let author: AuthorId =
            manifest.node.author.parse().map_err(|_| {
                BundleError::BadManifest("the exporter's author key is not hex".into())
            })?;
        if !author.verify_raw(&signed_message(bytes), signature) {
            return Err(BundleError::BadSignature);
        }
        manifest.check_sizes()?;
        Ok(manifest)
    }

    /// Bytes of all sections together.
    pub fn data_bytes(&self) -> u64 {
        self.sections.iter().map(|s| s.size).sum()
    }

    fn check_sizes(&self) -> Result<(), BundleError> {
        for (index, section) in self.sections.iter().enumerate() {
            let max = match section.kind {
                SectionKind::Blob => MAX_BLOB_SECTION,
                _ => MAX_DOCUMENT_SECTION,
            };
            if section.size > max {
                return Err(BundleError::SectionTooLarge {
                    index,
                    kind: section.kind,
                    id: section.id.clone(),
                    size: section.size,
                    max,
                });
            }
        }
        Ok(())
    }
}

/// Reads a manifest of any format this code knows into the current form: the migration path
/// for bundles written by older versions (format 1 is the first, so there is nothing to
/// convert yet; a format 2 adds its conversion from 1 here).
pub fn upgrade(format: u32, bytes: &[u8]) -> Result<Manifest, BundleError> {
    check_format(format)?;
    let manifest: Manifest =
        serde_json::from_slice(bytes).map_err(|e| BundleError::BadManifest(e.to_string()))?;
    if manifest.format != format {
        return Err(BundleError::BadManifest(format!(
            "it says format {} inside a format {format} bundle",
            manifest.format
        )));
    }
    Ok(manifest)
}

fn signed_message(manifest_bytes: &[u8]) -> Vec<u8> {
    [MANIFEST_DOMAIN, manifest_bytes].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        let key = AuthorKey::from_bytes(&[7; 32]);
        Manifest {
            format: FORMAT_VERSION,
            node: Exporter {
                peer_id: "12D3KooWtest".into(),
                author: key.id().to_string(),
            },
            created: 5,
            collections: vec![DocumentId::from_bytes([1; 16])],
            since: None,
            documents: Vec::new(),
            tombstones: Vec::new(),
            sections: vec![Section {
                kind: SectionKind::Blob,
                id: "ab".into(),
                size: 3,
                hash: "ab".into(),
            }],
        }
    }

    #[test]
    fn signed_manifests_open_and_altered_ones_do_not() {
        let key = AuthorKey::from_bytes(&[7; 32]);
        let (bytes, signature) = manifest().sign(&key);
        assert_eq!(
            Manifest::open(1, &bytes, &signature).unwrap(),
            manifest(),
            "round trip"
        );
        let altered = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("\"size\":3", "\"size\":4");
        assert_eq!(
            Manifest::open(1, altered.as_bytes(), &signature),
            Err(BundleError::BadSignature)
        );
        let other = AuthorKey::from_bytes(&[8; 32]);
        let mut forged = manifest();
        forged.node.author = other.id().to_string();
        let (forged_bytes, _) = forged.sign(&other);
        assert_eq!(
            Manifest::open(1, &forged_bytes, &signature),
            Err(BundleError::BadSignature)
        );
    }

    #[test]
    fn absurd_section_sizes_are_refused_after_the_signature() {
        let key = AuthorKey::from_bytes(&[7; 32]);
        let mut absurd = manifest();
        absurd.sections[0].size = u64::MAX;
        let (bytes, signature) = absurd.sign(&key);
        assert!(matches!(
            Manifest::open(1, &bytes, &signature),
            Err(BundleError::SectionTooLarge { .. })
        ));
    }

    #[test]
    fn part_headers_round_trip_and_place_parts() {
        let first = PartHeader {
            format: 1,
            index: 1,
            count: 3,
            bundle: [9; 32],
        };
        assert_eq!(PartHeader::decode(&first.encode()), Ok(first));
        let third = PartHeader { index: 3, ..first };
        assert_eq!(
            third.check_follows(&first, 2),
            Err(BundleError::PartOutOfOrder {
                expected: 2,
                found: 3
            })
        );
        let foreign = PartHeader {
            bundle: [0; 32],
            index: 2,
            ..first
        };
        assert_eq!(
            foreign.check_follows(&first, 2),
            Err(BundleError::ForeignPart { index: 2 })
        );
        let mut newer = first.encode();
        newer[8] = 9;
        assert_eq!(
            PartHeader::decode(&newer),
            Err(BundleError::NewerFormat { found: 9 })
        );
        assert_eq!(
            PartHeader::decode(&[0; PART_HEADER_LEN]),
            Err(BundleError::NotABundle)
        );
    }
}

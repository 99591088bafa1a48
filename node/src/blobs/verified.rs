//! The BLAKE3 tree through `bao-tree`: computing a blob's outboard, encoding a range with the
//! hashes that prove it, and decoding a peer's encoding chunk group by chunk group, so nothing
//! unverified is ever handed on to be written.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read};

use bao_tree::io::outboard::PostOrderOutboard;
use bao_tree::io::sync::{DecodeResponseIter, encode_ranges_validated, outboard_post_order};
use bao_tree::io::{BaoContentItem, DecodeError};
use bao_tree::{BaoTree, BlockSize, ChunkNum, ChunkRanges};
use minga_protocol::BlobHash;
use minga_protocol::blob::CHUNK_GROUP_LOG;

/// The block size every Minga outboard uses.
pub const BLOCK: BlockSize = BlockSize::from_chunk_log(CHUNK_GROUP_LOG);

/// Reads `data` (of `size` bytes) once, writing its post-order outboard to `outboard`; returns
/// the BLAKE3 hash of the data.
pub fn compute_outboard(data: impl Read, size: u64, outboard: &File) -> io::Result<BlobHash> {
    let tree = BaoTree::new(size, BLOCK);
    let mut writer = BufWriter::with_capacity(1 << 16, outboard);
    let root = outboard_post_order(BufReader::with_capacity(1 << 20, data), tree, &mut writer)?;
    writer.into_inner().map_err(|e| e.into_error())?;
    Ok(BlobHash(*root.as_bytes()))
}

/// The chunk ranges of the bytes `start..start + len`.
fn chunks(start: u64, len: u64) -> ChunkRanges {
    ChunkRanges::from(ChunkNum::chunks(start)..ChunkNum::chunks(start + len))
}

/// The bao encoding of `start..start + len` of a complete blob, checked against its outboard
/// while it is read (a disk that rotted is caught here, not by the peer).
pub fn encode_range(
    hash: &BlobHash,
    size: u64,
    data: &File,
    outboard: &File,
    start: u64,
    len: u64,
) -> io::Result<Vec<u8>> {
    let outboard = PostOrderOutboard {
        root: blake3_hash(hash),
        tree: BaoTree::new(size, BLOCK),
        data: outboard,
    };
    let mut encoded = Vec::with_capacity(len as usize + 4096);
    encode_ranges_validated(data, outboard, &chunks(start, len), &mut encoded)
        .map_err(|e| io::Error::other(format!("encoding {hash} at {start}: {e:?}")))?;
    Ok(encoded)
}

/// A verified piece of blob data and where it goes.
#[derive(Debug)]
pub struct Piece {
    pub offset: u64,
    pub data: Vec<u8>,
}

/// A range that failed verification at byte `offset` of the blob; `good` holds the pieces
/// before it, which did verify.
#[derive(Debug)]
pub struct BadRange {
    pub offset: u64,
    pub reason: String,
    pub good: Vec<Piece>,
}

/// Decodes a peer's encoding of `start..start + len` of the blob `hash` of `size` bytes,
/// verifying every chunk group against the hash before it is returned.
pub fn decode_range(
    hash: &BlobHash,
    size: u64,
    start: u64,
    len: u64,
    encoded: &[u8],
) -> Result<Vec<Piece>, BadRange> {
    let ranges = chunks(start, len);
    let tree = BaoTree::new(size, BLOCK);
    let mut good = Vec::new();
    let mut reader = encoded;
    for item in DecodeResponseIter::new(blake3_hash(hash), tree, &mut reader, &ranges) {
        match item {
            Ok(BaoContentItem::Parent(_)) => {}
            Ok(BaoContentItem::Leaf(leaf)) => good.push(Piece {
                offset: leaf.offset,
                data: leaf.data.to_vec(),
            }),
            Err(error) => {
                let (offset, reason) = match error {
                    DecodeError::LeafHashMismatch(chunk) => {
                        (chunk.to_bytes(), "chunk hash mismatch".to_owned())
                    }
                    DecodeError::LeafNotFound(chunk) => {
                        (chunk.to_bytes(), "encoding ends early".to_owned())
                    }
                    DecodeError::ParentHashMismatch(node) => (
                        node.chunk_range().start.to_bytes(),
                        "parent hash mismatch".to_owned(),
                    ),
                    DecodeError::ParentNotFound(node) => (
                        node.chunk_range().start.to_bytes(),
                        "encoding ends early".to_owned(),
                    ),
                    DecodeError::Io(e) => (start, e.to_string()),
                };
                return Err(BadRange {
                    offset,
                    reason,
                    good,
                });
            }
        }
    }
    if !reader.is_empty() {
        return Err(BadRange {
            offset: start + len,
            reason: format!("{} bytes past the encoding", reader.len()),
            good,
        });
    }
    Ok(good)
}

fn blake3_hash(hash: &BlobHash) -> bao_tree::blake3::Hash {
    bao_tree::blake3::Hash::from_bytes(hash.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use minga_protocol::blob::CHUNK_GROUP_BYTES;

    fn blob(size: usize) -> Vec<u8> {
        (0..size).map(|i| (i * 7 + i / 1000) as u8).collect()
    }

    fn stored(bytes: &[u8]) -> (tempfile::TempDir, File, File, BlobHash) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("d"), bytes).unwrap();
        let outboard = File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(dir.path().join("o"))
            .unwrap();
        let data = File::open(dir.path().join("d")).unwrap();
        let hash = compute_outboard(&data, bytes.len() as u64, &outboard).unwrap();
        let data = File::open(dir.path().join("d")).unwrap();
        (dir, data, outboard, hash)
    }

    #[test]
    fn the_root_is_plain_blake3_and_ranges_round_trip() {
        let bytes = blob(300_000);
        let (_dir, data, outboard, hash) = stored(&bytes);
        assert_eq!(hash, BlobHash::of(&bytes));
        let size = bytes.len() as u64;
        let start = CHUNK_GROUP_BYTES * 5;
        let encoded = encode_range(&hash, size, &data, &outboard, start, 100_000).unwrap();
        let pieces = decode_range(&hash, size, start, 100_000, &encoded).unwrap();
        let mut offset = start;
        for piece in &pieces {
            assert_eq!(piece.offset, offset);
            assert_eq!(
                piece.data,
                bytes[offset as usize..offset as usize + piece.data.len()]
            );
            offset += piece.data.len() as u64;
        }
        assert!(offset >= start + 100_000);
        // The last range ends with the blob.
        let tail = encode_range(&hash, size, &data, &outboard, start * 3, size).unwrap();
        let pieces = decode_range(&hash, size, start * 3, size, &tail).unwrap();
        let last = pieces.last().unwrap();
        assert_eq!(last.offset + last.data.len() as u64, size);
    }

    #[test]
    fn a_flipped_byte_is_caught_at_its_chunk_group() {
        let bytes = blob(200_000);
        let (_dir, data, outboard, hash) = stored(&bytes);
        let size = bytes.len() as u64;
        let mut encoded = encode_range(&hash, size, &data, &outboard, 0, size).unwrap();
        // Flip a byte near the end: the groups before it verify, the one holding it does not.
        let at = encoded.len() - 20_000;
        encoded[at] ^= 1;
        let bad = decode_range(&hash, size, 0, size, &encoded).unwrap_err();
        assert_eq!(bad.offset % CHUNK_GROUP_BYTES, 0);
        assert!(bad.offset > 0 && bad.offset < size);
        let verified: u64 = bad.good.iter().map(|p| p.data.len() as u64).sum();
        assert_eq!(
            verified, bad.offset,
            "every group before the bad one verified"
        );
        // And a hash of other bytes refuses the first group.
        let other = BlobHash::of(b"other");
        assert!(decode_range(&other, size, 0, size, &encoded).is_err());
    }
}

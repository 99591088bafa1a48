//! The seam between bundles and the blob store: which blobs an entry needs, and reading and
//! keeping their bytes. Bundles carry blobs through this trait only, so the blob store of
//! issue 4 plugs in by implementing it; until it exists [`NoBlobStore`] holds nothing, which
//! makes every export a `--no-blobs` export and every carried blob skipped (and counted).

use std::io::{self, Read};

use minga_protocol::Entry;

/// A blob's BLAKE3 hash.
pub type BlobHash = [u8; 32];

/// What bundles need from the blob store.
pub trait BlobStore: Send + std::fmt::Debug {
    /// The size of a held blob; `None` when this node does not hold it.
    fn size(&self, hash: &BlobHash) -> io::Result<Option<u64>>;

    /// The bytes of a held blob.
    fn open(&self, hash: &BlobHash) -> io::Result<Box<dyn Read + Send>>;

    /// Whether this node keeps blobs at all.
    fn keeps_blobs(&self) -> bool;

    /// Keeps the blob `hash` of `size` bytes read from `bytes`, checking the bytes against the
    /// hash before the blob becomes visible (a wrong blob is an error and is not kept).
    fn put(&self, hash: &BlobHash, size: u64, bytes: &mut dyn Read) -> io::Result<()>;
}

/// The blobs an entry's attachments name, with their sizes; malformed hashes are skipped
/// (they name no blob anyone can hold).
pub fn of_entry(entry: &Entry) -> Vec<(BlobHash, u64)> {
    entry
        .attachments
        .iter()
        .filter_map(|a| {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(&a.hash, &mut hash).ok()?;
            Some((hash, a.size))
        })
        .collect()
}

/// The blob store of a node that has none (before issue 4): holds and keeps nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBlobStore;

impl BlobStore for NoBlobStore {
    fn size(&self, _hash: &BlobHash) -> io::Result<Option<u64>> {
        Ok(None)
    }

    fn open(&self, hash: &BlobHash) -> io::Result<Box<dyn Read + Send>> {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("blob {} is not held", hex::encode(hash)),
        ))
    }

    fn keeps_blobs(&self) -> bool {
        false
    }

    fn put(&self, hash: &BlobHash, _size: u64, _bytes: &mut dyn Read) -> io::Result<()> {
        Err(io::Error::other(format!(
            "blob {}: this node has no blob store",
            hex::encode(hash)
        )))
    }
}

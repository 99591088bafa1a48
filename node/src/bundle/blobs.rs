//! The seam between bundles and the blob store: which blobs an entry needs, and reading and
//! keeping their bytes. Bundles carry blobs through [`BundleBlobs`] only: the node's
//! [`crate::BlobStore`] implements it, and [`NoBlobStore`] (a store that keeps nothing, so
//! every export is a `--no-blobs` export) stands in where blobs are not wanted.

use std::io::{self, Read};

use minga_protocol::Entry;

/// A blob's BLAKE3 hash.
pub type BlobHash = [u8; 32];

/// What bundles need from the blob store.
pub trait BundleBlobs: Send + std::fmt::Debug {
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

/// A blob store that holds and keeps nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBlobStore;

impl BundleBlobs for NoBlobStore {
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

impl BundleBlobs for crate::BlobStore {
    fn size(&self, hash: &BlobHash) -> io::Result<Option<u64>> {
        let record = self
            .complete(&minga_protocol::BlobHash(*hash))
            .map_err(io::Error::other)?;
        Ok(record.map(|r| r.size))
    }

    fn open(&self, hash: &BlobHash) -> io::Result<Box<dyn Read + Send>> {
        let (file, _) = self
            .open_data(&minga_protocol::BlobHash(*hash))
            .map_err(io::Error::other)?;
        Ok(Box::new(file))
    }

    fn keeps_blobs(&self) -> bool {
        true
    }

    fn put(&self, hash: &BlobHash, size: u64, bytes: &mut dyn Read) -> io::Result<()> {
        let mut upload = self.upload(size).map_err(io::Error::other)?;
        let mut hasher = blake3::Hasher::new();
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let n = match bytes.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buffer[..n]);
            upload.write(&buffer[..n]).map_err(io::Error::other)?;
        }
        // Checked before the blob is installed: a wrong blob is never kept (the upload's
        // temporary file goes with it).
        if hasher.finalize().as_bytes() != hash || upload.size() != size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("blob {} does not match its hash or size", hex::encode(hash)),
            ));
        }
        self.finish_upload(upload).map_err(io::Error::other)?;
        Ok(())
    }
}

//! The store's index of blobs: which are complete, which are partly downloaded (and how far
//! the verified prefix reaches), which entries reference each, and which lost their last
//! reference and wait to be removed. The bytes themselves are files (see `crate::blobs`).

use minga_protocol::{BlobHash, DocumentId, Entry};
use serde::{Deserialize, Serialize};

use super::StoreError;
use super::{Reader, Staged, corrupt, id_from, json};

/// What the store knows of one blob (`h:` hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    /// Size in bytes.
    pub size: u64,
    /// Bytes from the start that are verified and on disk (`size` when complete).
    pub have: u64,
    pub complete: bool,
    /// MIME type detected from the content (empty until the first bytes are in).
    pub mime: String,
}

/// The one writer of the store besides [`Store`]: the blob store's records of its files
/// (`h:` rows, and removing a blob's garbage mark with it). Blob files are written where
/// their bytes arrive (an upload, a download from a peer), not on the event loop, and their
/// records with them; nothing else can be written through this. It reads
/// as a [`Reader`] does.
#[derive(Debug, Clone)]
pub struct BlobRecords {
    reader: Reader,
}

impl BlobRecords {
    pub(super) fn new(reader: Reader) -> Self {
        BlobRecords { reader }
    }

    /// Records a blob's state; durable after the next flush.
    pub fn put_blob(&self, hash: &BlobHash, record: &BlobRecord) -> Result<u64, StoreError> {
        let mut batch = sled::Batch::default();
        batch.insert(blob_key(hash), json(record));
        self.reader.apply(batch)
    }

    /// Forgets a blob and its garbage mark.
    pub fn remove_blob(&self, hash: &BlobHash) -> Result<u64, StoreError> {
        let mut batch = sled::Batch::default();
        batch.remove(blob_key(hash));
        batch.remove([b"g:".as_slice(), &hash.0].concat());
        self.reader.apply(batch)
    }

    /// Makes every write applied so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.reader.flush_applied()
    }

    /// Marks a blob for removal, as losing its last reference does.
    #[cfg(test)]
    pub(crate) fn mark_blob_garbage(&self, hash: &BlobHash) -> Result<u64, StoreError> {
        let mut batch = sled::Batch::default();
        batch.insert([b"g:".as_slice(), &hash.0].concat(), &[]);
        self.reader.apply(batch)
    }
}

impl std::ops::Deref for BlobRecords {
    type Target = Reader;

    fn deref(&self) -> &Reader {
        &self.reader
    }
}

/// A blob some held entry references, with the size the entry declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRef {
    pub hash: BlobHash,
    pub size: u64,
}

impl Reader {
    pub fn blob(&self, hash: &BlobHash) -> Result<Option<BlobRecord>, StoreError> {
        self.get_json(&blob_key(hash))
    }

    /// Every blob the store knows, complete or partial, by hash.
    pub fn blobs(&self) -> Result<Vec<(BlobHash, BlobRecord)>, StoreError> {
        self.db
            .scan_prefix(b"h:")
            .map(|item| {
                let (k, v) = item?;
                let hash = hash_from(&k[2..])?;
                let record =
                    serde_json::from_slice(&v).map_err(|e| corrupt("h:", &e.to_string()))?;
                Ok((hash, record))
            })
            .collect()
    }

    /// The blobs held entries reference, each once, with the largest size declared for it.
    pub fn blob_refs(&self) -> Result<Vec<BlobRef>, StoreError> {
        let mut refs: Vec<BlobRef> = Vec::new();
        for item in self.db.scan_prefix(b"u:") {
            let (k, v) = item?;
            let hash = hash_from(&k[2..34])?;
            let size = u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| corrupt("u:", "size is not 8 bytes"))?,
            );
            // Keys are sorted by hash, so references to one blob are adjacent.
            match refs.last_mut() {
                Some(last) if last.hash == hash => last.size = last.size.max(size),
                _ => refs.push(BlobRef { hash, size }),
            }
        }
        Ok(refs)
    }

    pub fn is_blob_referenced(&self, hash: &BlobHash) -> Result<bool, StoreError> {
        Ok(self
            .db
            .scan_prefix([b"u:".as_slice(), &hash.0].concat())
            .next()
            .transpose()?
            .is_some())
    }

    /// Whether an entry that may leave the node (not private, every consent given) attaches the
    /// blob: only such blobs are served to peers, so a private entry's files stay home even
    /// for a peer that learnt their hash.
    pub fn is_blob_shareable(&self, hash: &BlobHash) -> Result<bool, StoreError> {
        let prefix = [b"u:".as_slice(), &hash.0].concat();
        for key in self.db.scan_prefix(&prefix).keys() {
            let key = key?;
            let id = id_from(&key[prefix.len()..])?;
            if self.entry(&id)?.is_some_and(|entry| entry.is_shareable()) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Blobs that lost their last reference (an entry withdrawn or edited) since last collected.
    pub fn blob_garbage(&self) -> Result<Vec<BlobHash>, StoreError> {
        self.db
            .scan_prefix(b"g:")
            .keys()
            .map(|k| hash_from(&k?[2..]))
            .collect()
    }

    /// Adds to `batch` the reference changes of an entry going from `old` to `new` (`None` when
    /// withdrawn): `u:` rows for its attachments, and a `g:` mark on every blob it no longer
    /// references that no other entry references either.
    pub(super) fn reference_blobs(
        &self,
        batch: &mut Staged,
        id: &DocumentId,
        old: Option<&Entry>,
        new: Option<&Entry>,
    ) -> Result<(), StoreError> {
        let hashes = |entry: Option<&Entry>| -> Vec<(BlobHash, u64)> {
            entry
                .map(|e| e.attachments.as_slice())
                .unwrap_or_default()
                .iter()
                .filter_map(|a| Some((a.blob_hash()?, a.size)))
                .collect()
        };
        let (before, after) = (hashes(old), hashes(new));
        for (hash, _) in &before {
            if after.iter().any(|(h, _)| h == hash) {
                continue;
            }
            batch.remove(ref_key(hash, id));
            if !self.referenced_elsewhere(batch, hash, id)? {
                batch.insert([b"g:".as_slice(), &hash.0].concat(), []);
            }
        }
        for (hash, size) in &after {
            batch.insert(ref_key(hash, id), size.to_be_bytes());
            batch.remove([b"g:".as_slice(), &hash.0].concat());
        }
        Ok(())
    }

    /// Whether an entry other than `id` references the blob, counting the staged writes (an
    /// import may move a blob from one entry to another within one batch).
    fn referenced_elsewhere(
        &self,
        batch: &Staged,
        hash: &BlobHash,
        id: &DocumentId,
    ) -> Result<bool, StoreError> {
        let prefix = [b"u:".as_slice(), &hash.0].concat();
        Ok(self
            .keys_in(batch, &prefix)?
            .iter()
            .any(|key| &key[prefix.len()..] != id.as_bytes()))
    }
}

fn blob_key(hash: &BlobHash) -> Vec<u8> {
    [b"h:".as_slice(), &hash.0].concat()
}

fn ref_key(hash: &BlobHash, id: &DocumentId) -> Vec<u8> {
    [b"u:".as_slice(), &hash.0, id.as_bytes()].concat()
}

fn hash_from(bytes: &[u8]) -> Result<BlobHash, StoreError> {
    Ok(BlobHash(
        bytes
            .try_into()
            .map_err(|_| corrupt("h:", "hash is not 32 bytes"))?,
    ))
}

//! The blob store: attachments as files named by their BLAKE3 hash, each with a post-order bao
//! outboard so any range can be served with its proof; the sled store indexes what is complete
//! and how far each partial download's verified prefix reaches.
//!
//! ```text
//! <data dir>/blobs/data/<hex>      complete blobs (only ever renamed into place whole)
//! <data dir>/blobs/outboard/<hex>  their outboards (renamed into place before the data)
//! <data dir>/blobs/partial/<hex>   downloads in progress: the verified prefix, then maybe junk
//! <data dir>/blobs/tmp/            uploads being written; emptied at every open
//! <data dir>/blobs/thumbnails/      small JPEGs of image blobs, made on demand (`thumbnail`)
//! ```
//!
//! A file is complete only when its `h:` record says so, and that record is written after the
//! rename and the directory fsync; a partial file is trusted only up to the `have` of its
//! record, which is written after the file's fsync. So `kill -9` at any point leaves either a
//! complete blob or a partial one that resumes from its recorded prefix.

pub mod mime;
pub mod thumbnail;
pub mod verified;

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use minga_protocol::BlobHash;
use serde::{Deserialize, Serialize};

use crate::store::{BlobRecord, BlobRecords, Reader, StoreError};

pub use thumbnail::ThumbnailError;
pub use verified::{BadRange, Piece};

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob store: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the blob is over the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("no complete blob {0}")]
    NotFound(BlobHash),
    #[error("the downloaded bytes of {0} do not hash to it")]
    Mismatch(BlobHash),
}

/// Limits and budgets of blobs, with their defaults.
#[derive(Debug, Clone, Copy)]
pub struct BlobLimits {
    /// Largest blob accepted from a user (413 past it) or fetched from peers.
    pub max_blob_bytes: u64,
    /// Total size of the blobs an ordinary node fetches for the entries it holds, smallest
    /// first (a mirror fetches every blob).
    pub fetch_budget: u64,
    /// Most bytes per second of blob data fetched from peers (0: no limit), for metered links.
    pub fetch_rate: u64,
}

impl Default for BlobLimits {
    fn default() -> Self {
        BlobLimits {
            max_blob_bytes: 2 << 30,
            fetch_budget: 4 << 30,
            fetch_rate: 0,
        }
    }
}

/// A blob added by a user; its JSON is the answer of `POST /api/v1/blobs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Added {
    pub hash: BlobHash,
    pub size: u64,
    pub mime: String,
    /// Whether this upload brought the blob (the node did not hold it before).
    #[serde(skip)]
    pub new: bool,
}

/// A download as the API shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Download {
    pub size: u64,
    /// Verified bytes on disk.
    pub have: u64,
    /// Peers the blob is being fetched from now.
    pub peers: Vec<String>,
}

/// A range a peer served that failed verification.
#[derive(Debug, Clone, Serialize)]
pub struct Rejection {
    pub hash: String,
    pub peer: String,
    /// Byte offset of the first chunk group that did not verify.
    pub offset: u64,
    pub reason: String,
}

/// Live transfer figures, shared by the fetcher and the API.
#[derive(Debug, Default, Serialize)]
pub struct Progress {
    pub downloads: BTreeMap<String, Download>,
    /// Ranges refused for failing verification since start.
    pub rejected_ranges: u64,
    /// The latest rejections, newest last.
    pub rejections: VecDeque<Rejection>,
    /// Blob bytes verified and written since start.
    pub bytes_fetched: u64,
}

/// Rejections kept for the API.
const MAX_REJECTIONS: usize = 16;

/// Handle to the blob store; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct BlobStore {
    root: PathBuf,
    records: BlobRecords,
    /// Serialises the transitions of the index (complete, removed) against each other.
    index: Arc<Mutex<()>>,
    progress: Arc<Mutex<Progress>>,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// An upload being written to a temp file, its size checked against the limit as it grows.
#[derive(Debug)]
pub struct Upload {
    file: File,
    path: PathBuf,
    size: u64,
    limit: u64,
    head: Vec<u8>,
}

impl Upload {
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), BlobError> {
        self.size += bytes.len() as u64;
        if self.size > self.limit {
            return Err(BlobError::TooLarge { limit: self.limit });
        }
        let room = mime::SNIFF_BYTES.saturating_sub(self.head.len());
        self.head.extend_from_slice(&bytes[..room.min(bytes.len())]);
        self.file.write_all(bytes)?;
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.size
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // Finished uploads were renamed away; anything left here is abandoned.
        let _ = fs::remove_file(&self.path);
    }
}

impl BlobStore {
    /// Opens the blob store under `root`, creating its directories and emptying `tmp/`.
    pub fn open(root: &Path, records: BlobRecords) -> Result<Self, BlobError> {
        for sub in ["data", "outboard", "partial", "tmp"] {
            fs::create_dir_all(root.join(sub))?;
        }
        for leftover in fs::read_dir(root.join("tmp"))? {
            fs::remove_file(leftover?.path())?;
        }
        Ok(BlobStore {
            root: root.to_owned(),
            records,
            index: Arc::new(Mutex::new(())),
            progress: Arc::new(Mutex::new(Progress::default())),
        })
    }

    pub fn record(&self, hash: &BlobHash) -> Result<Option<BlobRecord>, BlobError> {
        Ok(self.records.blob(hash)?)
    }

    /// The record of a complete blob.
    pub fn complete(&self, hash: &BlobHash) -> Result<Option<BlobRecord>, BlobError> {
        Ok(self.record(hash)?.filter(|r| r.complete))
    }

    /// Opens a complete blob's data for reading.
    pub fn open_data(&self, hash: &BlobHash) -> Result<(File, BlobRecord), BlobError> {
        let record = self.complete(hash)?.ok_or(BlobError::NotFound(*hash))?;
        Ok((File::open(self.data_path(hash))?, record))
    }

    /// Starts an upload limited to `limit` bytes.
    pub fn upload(&self, limit: u64) -> Result<Upload, BlobError> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| io::Error::other(e.to_string()))?;
        let path = self.root.join("tmp").join(hex::encode(nonce));
        let file = File::options().create_new(true).write(true).open(&path)?;
        Ok(Upload {
            file,
            path,
            size: 0,
            limit,
            head: Vec::new(),
        })
    }

    /// Makes an upload a complete blob (or finds it already held), durably.
    pub fn finish_upload(&self, upload: Upload) -> Result<Added, BlobError> {
        upload.file.sync_all()?;
        let (hash, outboard) = self.outboard_of(&upload.path, upload.size)?;
        let mime = mime::detect(&upload.head);
        let new = self.install(&hash, &upload.path, &outboard, upload.size, &mime)?;
        Ok(Added {
            hash,
            size: upload.size,
            mime,
            new,
        })
    }

    /// Adds everything `reader` yields, calling `progress` with the bytes read so far.
    pub fn add_reader(
        &self,
        mut reader: impl Read,
        limit: u64,
        mut progress: impl FnMut(u64),
    ) -> Result<Added, BlobError> {
        let mut upload = self.upload(limit)?;
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let n = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            upload.write(&buffer[..n])?;
            progress(upload.size());
        }
        self.finish_upload(upload)
    }

    /// The bao encoding of a range of a complete blob, or `None` when it is not held whole.
    pub fn encode_range(
        &self,
        hash: &BlobHash,
        start: u64,
        len: u64,
    ) -> Result<Option<(u64, Vec<u8>)>, BlobError> {
        let Some(record) = self.complete(hash)? else {
            return Ok(None);
        };
        let data = File::open(self.data_path(hash))?;
        let outboard = File::open(self.outboard_path(hash))?;
        let encoded = verified::encode_range(hash, record.size, &data, &outboard, start, len)?;
        Ok(Some((record.size, encoded)))
    }

    /// Starts or resumes the download of a blob of `size` bytes; returns its verified prefix.
    /// Bytes past the recorded prefix (written before a crash, never recorded) are cut off.
    pub fn begin_download(&self, hash: &BlobHash, size: u64) -> Result<u64, BlobError> {
        let _index = self.index.lock().expect("blob index lock");
        let have = match self.records.blob(hash)? {
            Some(record) if record.complete => return Ok(record.size),
            Some(record) if record.size == size => record.have,
            _ => {
                let record = BlobRecord {
                    size,
                    have: 0,
                    complete: false,
                    mime: String::new(),
                };
                self.records.put_blob(hash, &record)?;
                self.records.flush()?;
                0
            }
        };
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.partial_path(hash))?;
        file.set_len(have)?;
        file.sync_all()?;
        Ok(have)
    }

    /// Writes verified pieces into a download's partial file.
    pub fn write_pieces(&self, hash: &BlobHash, pieces: &[Piece]) -> Result<(), BlobError> {
        let file = File::options().write(true).open(self.partial_path(hash))?;
        for piece in pieces {
            file.write_all_at(&piece.data, piece.offset)?;
        }
        let written: u64 = pieces.iter().map(|p| p.data.len() as u64).sum();
        self.progress().bytes_fetched += written;
        Ok(())
    }

    /// Records that the first `have` bytes of a download are verified and on disk.
    pub fn record_prefix(&self, hash: &BlobHash, have: u64) -> Result<(), BlobError> {
        File::options()
            .write(true)
            .open(self.partial_path(hash))?
            .sync_all()?;
        let _index = self.index.lock().expect("blob index lock");
        if let Some(mut record) = self.records.blob(hash)?.filter(|r| !r.complete) {
            record.have = have.min(record.size);
            self.records.put_blob(hash, &record)?;
            self.records.flush()?;
        }
        Ok(())
    }

    /// Completes a download whose every byte is verified: rehashes it while writing its
    /// outboard, and moves it into place.
    pub fn finish_download(&self, hash: &BlobHash) -> Result<(), BlobError> {
        let partial = self.partial_path(hash);
        let record = self.records.blob(hash)?.ok_or(BlobError::NotFound(*hash))?;
        let (actual, outboard) = self.outboard_of(&partial, record.size)?;
        if actual != *hash {
            // Unreachable with verified pieces, unless the disk lies: start over.
            let _ = fs::remove_file(&partial);
            self.records.remove_blob(hash)?;
            return Err(BlobError::Mismatch(*hash));
        }
        let mut head = vec![0u8; mime::SNIFF_BYTES.min(record.size as usize)];
        File::open(&partial)?.read_exact(&mut head)?;
        self.install(hash, &partial, &outboard, record.size, &mime::detect(&head))?;
        Ok(())
    }

    /// Removes the blobs that lost their last reference, unless one came back.
    pub fn collect_garbage(&self) -> Result<usize, BlobError> {
        let mut removed = 0;
        for hash in self.records.blob_garbage()? {
            if self.remove_unreferenced(&hash)? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes blobs a refused request uploaded (those it brought, [`Added::new`]) that no entry
    /// has come to reference meanwhile, so a refused form leaves nothing behind.
    pub fn discard_uploads(&self, hashes: &[BlobHash]) -> Result<usize, BlobError> {
        let mut removed = 0;
        for hash in hashes {
            if self.remove_unreferenced(hash)? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes a blob, its outboard and thumbnails, unless an entry references it; answers
    /// whether it did.
    fn remove_unreferenced(&self, hash: &BlobHash) -> Result<bool, BlobError> {
        let _index = self.index.lock().expect("blob index lock");
        if self.records.is_blob_referenced(hash)? {
            return Ok(false);
        }
        self.records.remove_blob(hash)?;
        self.records.flush()?;
        for path in [
            self.data_path(hash),
            self.outboard_path(hash),
            self.partial_path(hash),
        ] {
            match fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        self.remove_thumbnails(hash)?;
        Ok(true)
    }

    /// Live transfer figures.
    pub fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().expect("blob progress lock")
    }

    /// Records a range that failed verification.
    pub fn reject(&self, rejection: Rejection) {
        let mut progress = self.progress();
        progress.rejected_ranges += 1;
        if progress.rejections.len() == MAX_REJECTIONS {
            progress.rejections.pop_front();
        }
        progress.rejections.push_back(rejection);
    }

    pub fn store(&self) -> &Reader {
        &self.records
    }

    /// Computes the outboard of the file at `path` into a temp file; returns the hash and it.
    fn outboard_of(&self, path: &Path, size: u64) -> Result<(BlobHash, Upload), BlobError> {
        let outboard = self.upload(u64::MAX)?;
        let hash = verified::compute_outboard(File::open(path)?, size, &outboard.file)?;
        outboard.file.sync_all()?;
        Ok((hash, outboard))
    }

    /// Moves synced data and outboard files into place and records the blob complete. If it
    /// already is, the new files are dropped: identical content is stored once. Answers whether
    /// the blob is new here.
    fn install(
        &self,
        hash: &BlobHash,
        data: &Path,
        outboard: &Upload,
        size: u64,
        mime: &str,
    ) -> Result<bool, BlobError> {
        let _index = self.index.lock().expect("blob index lock");
        if self.records.blob(hash)?.is_some_and(|r| r.complete) {
            let _ = fs::remove_file(data);
            return Ok(false);
        }
        fs::rename(&outboard.path, self.outboard_path(hash))?;
        fs::rename(data, self.data_path(hash))?;
        File::open(self.root.join("outboard"))?.sync_all()?;
        File::open(self.root.join("data"))?.sync_all()?;
        let record = BlobRecord {
            size,
            have: size,
            complete: true,
            mime: mime.to_owned(),
        };
        self.records.put_blob(hash, &record)?;
        self.records.flush()?;
        Ok(true)
    }

    fn data_path(&self, hash: &BlobHash) -> PathBuf {
        self.root.join("data").join(hash.to_hex())
    }

    fn outboard_path(&self, hash: &BlobHash) -> PathBuf {
        self.root.join("outboard").join(hash.to_hex())
    }

    fn partial_path(&self, hash: &BlobHash) -> PathBuf {
        self.root.join("partial").join(hash.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minga_protocol::blob::CHUNK_GROUP_BYTES;

    fn open(dir: &Path) -> BlobStore {
        let store = crate::Store::open(&dir.join("store"), 8 << 20).unwrap();
        BlobStore::open(&dir.join("blobs"), store.blob_records()).unwrap()
    }

    fn bytes(size: usize, seed: u8) -> Vec<u8> {
        (0..size)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 10) as u8)
            .collect()
    }

    #[test]
    fn identical_content_is_stored_once_and_limits_hold() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = open(dir.path());
        let content = bytes(100_000, 1);
        let first = blobs.add_reader(&content[..], 1 << 20, |_| {}).unwrap();
        let second = blobs.add_reader(&content[..], 1 << 20, |_| {}).unwrap();
        assert_eq!(first.hash, BlobHash::of(&content));
        assert_eq!(second.hash, first.hash);
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/data")).unwrap().count(),
            1
        );
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/tmp")).unwrap().count(),
            0
        );
        let (mut file, record) = blobs.open_data(&first.hash).unwrap();
        let mut back = Vec::new();
        file.read_to_end(&mut back).unwrap();
        assert_eq!((back, record.size), (content.clone(), 100_000));
        let refused = blobs.add_reader(&content[..], 99_999, |_| {});
        assert!(matches!(refused, Err(BlobError::TooLarge { .. })));
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn a_download_resumes_from_its_recorded_prefix_after_a_crash() {
        let source_dir = tempfile::tempdir().unwrap();
        let source = open(source_dir.path());
        let content = bytes(40 * CHUNK_GROUP_BYTES as usize + 123, 7);
        let size = content.len() as u64;
        let hash = source
            .add_reader(&content[..], u64::MAX, |_| {})
            .unwrap()
            .hash;

        let dir = tempfile::tempdir().unwrap();
        let half = 20 * CHUNK_GROUP_BYTES;
        {
            let sink = open(dir.path());
            assert_eq!(sink.begin_download(&hash, size).unwrap(), 0);
            let (_, encoded) = source.encode_range(&hash, 0, half).unwrap().unwrap();
            let pieces = verified::decode_range(&hash, size, 0, half, &encoded).unwrap();
            sink.write_pieces(&hash, &pieces).unwrap();
            sink.record_prefix(&hash, half).unwrap();
            // Written but never recorded: a crash here must not let these bytes count.
            let (_, encoded) = source
                .encode_range(&hash, half, 5 * CHUNK_GROUP_BYTES)
                .unwrap()
                .unwrap();
            let mut pieces =
                verified::decode_range(&hash, size, half, 5 * CHUNK_GROUP_BYTES, &encoded).unwrap();
            pieces[0].data[0] ^= 0xff;
            sink.write_pieces(&hash, &pieces).unwrap();
            assert!(
                sink.complete(&hash).unwrap().is_none(),
                "partial is not complete"
            );
            assert!(matches!(sink.open_data(&hash), Err(BlobError::NotFound(_))));
        }
        let sink = open(dir.path());
        assert_eq!(sink.begin_download(&hash, size).unwrap(), half);
        let (_, encoded) = source
            .encode_range(&hash, half, size - half)
            .unwrap()
            .unwrap();
        let pieces = verified::decode_range(&hash, size, half, size - half, &encoded).unwrap();
        sink.write_pieces(&hash, &pieces).unwrap();
        sink.record_prefix(&hash, size).unwrap();
        sink.finish_download(&hash).unwrap();
        let (mut file, record) = sink.open_data(&hash).unwrap();
        let mut back = Vec::new();
        file.read_to_end(&mut back).unwrap();
        assert!(record.complete);
        assert!(back == content, "the resumed blob is byte-identical");
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/partial"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn a_blob_whose_last_reference_went_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = open(dir.path());
        let added = blobs
            .add_reader(&b"kept by nothing"[..], 1 << 20, |_| {})
            .unwrap();
        // Without a garbage mark nothing goes, even unreferenced (a fresh `blob add`).
        assert_eq!(blobs.collect_garbage().unwrap(), 0);
        blobs.records.mark_blob_garbage(&added.hash).unwrap();
        assert_eq!(blobs.collect_garbage().unwrap(), 1);
        assert!(blobs.record(&added.hash).unwrap().is_none());
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/data")).unwrap().count(),
            0
        );
    }
}

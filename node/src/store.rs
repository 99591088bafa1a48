//! The store: one sled tree holding documents, signatures, read views, listing indexes,
//! collections, tombstones and node settings, under key prefixes. Every logical write is one
//! atomic sled batch; [`Store::flush`] makes everything written so far durable, and callers
//! acknowledge a write only after a flush that followed it.
//!
//! Key layout (`id` is a 16-byte document id, `inv` the 8-byte inverted `updated` time, so a
//! forward scan lists the newest first):
//!
//! | key | value |
//! |---|---|
//! | `m:format`, `m:clock`, `m:entries`, `m:set:<name>` | format version, clock, entry count, settings |
//! | `d:` id | the saved automerge document (entry or collection) |
//! | `s:` id hash | the 64-byte signature of one change |
//! | `e:` id | the entry's JSON view, deflated (`store/view`), so reads and lists need no automerge load |
//! | `i:a:` inv id, `i:c:` coll inv id, `i:k:` kind 0 inv id, `i:t:` tag 0 inv id, `i:l:` lang 0 inv id | listing indexes |
//! | `c:` id, `k:` id, `n:` name | collection view, its entry count, name → id |
//! | `f:` id | followed collection |
//! | `t:` id | tombstone |
//! | `r:` coll id | reconciliation digest of a shareable document of the collection |
//! | `l:` coll seq, `o:` coll id | the change log: `seq` (8 bytes, from `m:seq`) → id of the row last set then (and the [`SourceTag`] of the peer that change came from), and back |
//! | `q:` peer coll | the peer's `m:seq` when it last told this node what changed since |
//! | `b:` peer | blocked peer; the value is the author key it vouched for, whose content is hidden |
//! | `h:` hash | a blob's record: size, verified prefix, complete, MIME type (`store/blobs`) |
//! | `u:` hash id | entry `id` references blob `hash`; the value is the size it declares |
//! | `g:` hash | a blob that lost its last reference, to be removed after the next flush |

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use minga_protocol::automerge::{Automerge, ChangeHash};
use minga_protocol::reconcile::{self, Item, ItemSet};
use minga_protocol::{AuthorId, Collection, DocumentId, Entry, Signature, Tombstone};
use serde::{Deserialize, Serialize};

mod blobs;
mod journal;
mod view;
pub use blobs::{BlobRecord, BlobRecords, BlobRef};

/// Why the store could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("data dir: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "data dir {0} is in use by another minga process (a running node?); stop it, or use the CLI, which talks to a running node"
    )]
    Locked(String),
    #[error(
        "the store has format version {found}, this minga reads version {expected}; export it with the minga that wrote it and import the bundle"
    )]
    Format { found: u32, expected: u32 },
    #[error("store record {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
}

/// Loads a stored document.
pub fn load(id: &DocumentId, bytes: &[u8]) -> Result<Automerge, StoreError> {
    Automerge::load(bytes).map_err(|e| StoreError::Corrupt {
        key: format!("d:{id}"),
        reason: e.to_string(),
    })
}

/// The file sled locks while a `Db` has the store open (`<dir>/db`).
const SLED_LOCK_FILE: &str = "db";

/// How long [`wait_for_lock`] waits at most: [`LOCK_RETRIES`] tries, [`LOCK_RETRY_PAUSE`] apart.
const LOCK_RETRIES: u32 = 200;
const LOCK_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

/// Waits until no `Db` holds the store's file lock. A `Db` dropped in this process can hold it
/// a moment longer (sled's thread pool finishes its writes), and sled reports the lock only as
/// text, so the lock is tried here first, by its error kind. Past the wait, sled's own open
/// reports the lock.
fn wait_for_lock(dir: &Path) -> Result<(), StoreError> {
    use fs2::FileExt;
    let Ok(file) = std::fs::File::open(dir.join(SLED_LOCK_FILE)) else {
        return Ok(()); // A new store: nothing to wait for.
    };
    for _ in 0..LOCK_RETRIES {
        match file.try_lock_exclusive() {
            Ok(()) => return Ok(FileExt::unlock(&file)?),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(LOCK_RETRY_PAUSE);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The store format this code reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// The store with the capability to write it. There is one, held by the writer ([`Commons`]
/// on the event loop, or in the CLI holding the data dir's lock); everything else reads
/// through a [`Reader`] cloned out of it ([`Store::reader`]). The one other writer is the
/// blob store, which records the blob files it writes through its own narrow
/// [`BlobRecords`]. A `Store` reads too: it dereferences to its [`Reader`].
///
/// [`Commons`]: crate::Commons
pub struct Store {
    reader: Reader,
}

/// Read access to the store: cheap to clone, safe to use from any thread, and without a
/// method that writes:
///
/// ```compile_fail,E0599
/// fn write(reader: &minga_node::store::Reader) {
///     reader.set_followed(&"11111111111111111111111".parse().unwrap(), true).unwrap();
/// }
/// ```
///
/// ```compile_fail,E0277
/// fn writer(reader: minga_node::store::Reader) -> minga_node::Store {
///     reader.into()
/// }
/// ```
#[derive(Clone)]
pub struct Reader {
    db: sled::Db,
    /// A large import's staged rows, until they are moved in (`store/journal`).
    journal: sled::Tree,
    /// Batches applied so far; a flush makes all of them durable.
    written: Arc<AtomicU64>,
    /// Batches known to be on disk: the `written` count a finished flush started from.
    durable: Arc<AtomicU64>,
    /// Reconciliation sets with their fingerprints, by collection, kept equal to the `r:` rows
    /// once built: every write of an `r:` row updates its set after the batch is applied.
    reconcile_sets: Arc<Mutex<HashMap<DocumentId, Arc<ItemSet>>>>,
    /// The last change-log sequence number handed out (`m:seq`); only the writer advances it.
    seq: Arc<AtomicU64>,
}

/// Filters and paging of an entry listing.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub collection: Option<DocumentId>,
    pub kind: Option<String>,
    pub tag: Option<String>,
    pub lang: Option<String>,
    /// At most this many entries (the API clamps it to 1..=500).
    pub limit: usize,
    /// Continue after this position (a `next_cursor`).
    pub cursor: Option<Cursor>,
}

/// A position in a listing: the inverted time and id of the last entry returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor([u8; 24]);

/// One page of a listing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryPage {
    pub entries: Vec<Entry>,
    pub next_cursor: Option<String>,
}

/// Writes staged for one atomic batch, readable before they are applied: an import stages
/// thousands of documents whose counters and views must see each other. A large one spills
/// its rows to the store's journal ([`Store::spill_if_large`]) and is still applied all or
/// nothing.
#[derive(Debug, Default)]
pub struct Staged {
    /// Key → new value, or `None` for a removal (rows not yet spilled).
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// The reconciliation rows the batch sets, to update the cached sets once it is applied.
    reconciled: Vec<ItemChange>,
    /// Bytes of every row staged so far, spilled or not (a row set twice counts twice).
    bytes: u64,
    /// Of those, the bytes of rows already spilled to the journal.
    spilled_bytes: u64,
    /// The peer whose changes the batch applies, recorded in the change log so that peer is
    /// not told back what it sent; `None` for local writes and imports.
    source: Option<SourceTag>,
}

/// A peer, as the change log records where a change came from: 8 bytes of the BLAKE3 hash
/// of its peer id.
pub type SourceTag = [u8; 8];

/// The [`SourceTag`] of a peer id.
pub fn source_tag(peer: &str) -> SourceTag {
    let hash = blake3::hash(peer.as_bytes());
    hash.as_bytes()[..8].try_into().expect("8 of 32 bytes")
}

/// A change to one row of a reconciliation set: `None` removes it.
type ItemChange = (DocumentId, DocumentId, Option<[u8; 16]>);

impl Staged {
    /// A batch of changes that came from the peer `source`.
    pub fn from_peer(source: SourceTag) -> Self {
        Staged {
            source: Some(source),
            ..Staged::default()
        }
    }

    /// The batch's documents hold more than their source sent: their change-log rows name no
    /// source, so they are listed to every peer.
    pub fn forget_source(&mut self) {
        self.source = None;
    }

    fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.stage(key.into(), Some(value.into()));
    }

    fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.stage(key.into(), None);
    }

    fn stage(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.bytes += (key.len() + value.as_ref().map_or(0, Vec::len)) as u64;
        self.pending.insert(key, value);
    }

    /// Bytes of the staged rows: about what the batch adds to the store, before sled's
    /// overhead.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether earlier rows were spilled to the journal.
    fn spilled(&self) -> bool {
        self.spilled_bytes > 0
    }

    fn into_batch(self) -> sled::Batch {
        let mut batch = sled::Batch::default();
        for (key, value) in self.pending {
            match value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        batch
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").finish_non_exhaustive()
    }
}

impl std::ops::Deref for Store {
    type Target = Reader;

    fn deref(&self) -> &Reader {
        &self.reader
    }
}

impl Cursor {
    pub fn parse(text: &str) -> Option<Cursor> {
        let mut bytes = [0; 24];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Cursor(bytes))
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// Where a store's bytes go ([`Store::usage`]).
#[derive(Debug, Default)]
pub struct Usage {
    pub by_prefix: BTreeMap<String, Rows>,
    /// sled's size on disk.
    pub on_disk: u64,
}

/// Rows under one key prefix.
#[derive(Debug, Default, Clone, Copy)]
pub struct Rows {
    pub count: u64,
    /// Their keys' and values' bytes.
    pub bytes: u64,
}

impl Store {
    /// Opens (or creates) the store under `dir`, checking its format version.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        wait_for_lock(dir)?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .open()?;
        match db.get(b"m:format")? {
            None if db.is_empty() => {
                db.insert(b"m:format", &FORMAT_VERSION.to_be_bytes())?;
                db.flush()?;
            }
            None => return Err(corrupt("m:format", "missing")),
            Some(found) => {
                let found = u32::from_be_bytes(
                    found
                        .as_ref()
                        .try_into()
                        .map_err(|_| corrupt("m:format", "not 4 bytes"))?,
                );
                if found != FORMAT_VERSION {
                    return Err(StoreError::Format {
                        found,
                        expected: FORMAT_VERSION,
                    });
                }
            }
        }
        let journal = db.open_tree(journal::TREE)?;
        let mut reader = Reader {
            db,
            journal,
            written: Arc::new(AtomicU64::new(0)),
            durable: Arc::new(AtomicU64::new(0)),
            reconcile_sets: Arc::default(),
            seq: Arc::default(),
        };
        reader.finish_journal()?;
        reader.seq = Arc::new(AtomicU64::new(reader.get_u64(b"m:seq")?.unwrap_or(0)));
        Ok(Store { reader })
    }

    /// A read-only handle for everything that is not the writer.
    pub fn reader(&self) -> Reader {
        self.reader.clone()
    }

    /// The writer of the blob store's records (`store/blobs`), for [`crate::BlobStore`].
    pub fn blob_records(&self) -> BlobRecords {
        BlobRecords::new(self.reader.clone())
    }

    /// Makes every write applied so far durable (fsync). Concurrent writers share one flush.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.reader.flush_applied()
    }

    pub fn set_peer_seq(
        &self,
        peer: &str,
        collection: &DocumentId,
        seq: u64,
    ) -> Result<u64, StoreError> {
        let mut batch = sled::Batch::default();
        batch.insert(peer_seq_key(peer, collection), &seq.to_be_bytes());
        self.apply(batch)
    }

    /// Brings the store back to a consistent state after the writer caught a panic: a journal
    /// the interrupted write left is finished if committed and dropped if not (as at open),
    /// and the cached reconciliation sets are rebuilt from the store on next use.
    pub fn recover(&self) -> Result<(), StoreError> {
        self.reconcile_sets().clear();
        self.finish_journal().map(|_| ())
    }

    /// Blocks (or unblocks) a peer; `author`, the key it vouched for, has its content hidden.
    pub fn set_blocked(
        &self,
        peer: &str,
        blocked: bool,
        author: Option<AuthorId>,
    ) -> Result<u64, StoreError> {
        let mut batch = sled::Batch::default();
        let key = [b"b:", peer.as_bytes()].concat();
        if blocked {
            let author = author.map(|a| a.as_bytes().to_vec()).unwrap_or_default();
            batch.insert(key, author);
        } else {
            batch.remove(key);
        }
        self.apply(batch)
    }

    /// Stores a new or changed entry with the signatures of its new changes.
    pub fn put_entry(
        &self,
        entry: &Entry,
        document: &[u8],
        signatures: &[(ChangeHash, Signature)],
        clock: i64,
    ) -> Result<u64, StoreError> {
        let mut staged = Staged::default();
        self.stage_entry(&mut staged, entry, document, signatures, clock)?;
        self.apply_staged(staged)
    }

    /// Moves `staged`'s rows to the journal once they hold more than
    /// [`journal::SPILL_BYTES`], so a large import's memory stays bounded.
    pub fn spill_if_large(&self, staged: &mut Staged) -> Result<(), StoreError> {
        if staged.bytes - staged.spilled_bytes >= journal::SPILL_BYTES {
            journal::spill(&self.journal, staged)?;
        }
        Ok(())
    }

    /// Drops staged writes that will not be applied, with any rows they spilled.
    pub fn discard_staged(&self, staged: Staged) -> Result<(), StoreError> {
        if staged.spilled() {
            journal::clear(&self.db, &self.journal)?;
        }
        Ok(())
    }

    /// Applies staged writes all or nothing: as one atomic batch, or, when they spilled, by
    /// committing the journal and moving it in (which makes it durable on return).
    pub fn apply_staged(&self, mut staged: Staged) -> Result<u64, StoreError> {
        let reconciled = std::mem::take(&mut staged.reconciled);
        let written = if staged.spilled() {
            journal::spill(&self.journal, &mut staged)?;
            journal::commit(&self.db, &self.journal)?;
            self.finish_journal()?
        } else {
            self.apply(staged.into_batch())?
        };
        let mut sets = self.reconcile_sets();
        for (collection, id, digest) in reconciled {
            if let Some(set) = sets.get_mut(&collection) {
                let set = Arc::make_mut(set);
                match digest {
                    Some(digest) => set.upsert(Item {
                        id: *id.as_bytes(),
                        digest,
                    }),
                    None => set.remove(id.as_bytes()),
                }
            }
        }
        Ok(written)
    }

    /// [`Self::put_entry`], staged.
    pub fn stage_entry(
        &self,
        batch: &mut Staged,
        entry: &Entry,
        document: &[u8],
        signatures: &[(ChangeHash, Signature)],
        clock: i64,
    ) -> Result<(), StoreError> {
        let old = self.entry_in(batch, &entry.id)?;
        match &old {
            Some(old) => index_keys(old).into_iter().for_each(|k| batch.remove(k)),
            None => {
                let count = self.u64_in(batch, b"m:entries")?.unwrap_or(0);
                batch.insert(b"m:entries", (count + 1).to_be_bytes());
                if let Some(collection) = entry.collection_id() {
                    let count = self.u64_in(batch, &key(b"k:", &collection))?.unwrap_or(0);
                    batch.insert(key(b"k:", &collection), (count + 1).to_be_bytes());
                }
            }
        }
        index_keys(entry)
            .into_iter()
            .for_each(|k| batch.insert(k, []));
        if let Some(collection) = entry.collection_id() {
            // Only what may leave the node is ever reconciled with peers.
            let digest = entry
                .is_shareable()
                .then(|| entry_digest(entry))
                .transpose()?;
            self.stage_item(batch, collection, entry.id, digest)?;
        }
        self.reference_blobs(batch, &entry.id, old.as_ref(), Some(entry))?;
        batch.insert(key(b"e:", &entry.id), view::encode(entry));
        stage_document(batch, &entry.id, document, signatures, clock);
        Ok(())
    }

    /// Stores a new or changed collection, and follows it if `follow`.
    pub fn put_collection(
        &self,
        collection: &Collection,
        heads: &[[u8; 32]],
        document: &[u8],
        signatures: &[(ChangeHash, Signature)],
        clock: i64,
        follow: bool,
    ) -> Result<u64, StoreError> {
        let mut staged = Staged::default();
        self.stage_collection(&mut staged, collection, heads, document, signatures, clock)?;
        if follow {
            stage_followed(&mut staged, &collection.id, true);
        }
        self.apply_staged(staged)
    }

    /// Records a tombstone and drops the entry, its signatures and its index rows.
    pub fn put_tombstone(&self, tombstone: &Tombstone, clock: i64) -> Result<u64, StoreError> {
        let mut staged = Staged::default();
        self.stage_tombstone(&mut staged, tombstone, clock)?;
        self.apply_staged(staged)
    }

    /// [`Self::put_tombstone`], staged.
    pub fn stage_tombstone(
        &self,
        batch: &mut Staged,
        tombstone: &Tombstone,
        clock: i64,
    ) -> Result<(), StoreError> {
        let id = &tombstone.entry;
        if let Some(old) = self.entry_in(batch, id)? {
            index_keys(&old).into_iter().for_each(|k| batch.remove(k));
            let count = self.u64_in(batch, b"m:entries")?.unwrap_or(0);
            batch.insert(b"m:entries", count.saturating_sub(1).to_be_bytes());
            if let Some(collection) = old.collection_id() {
                // A private or unconsented entry never leaves the node, not even as a tombstone.
                let digest = old.is_shareable().then_some(TOMBSTONE_DIGEST);
                self.stage_item(batch, collection, *id, digest)?;
                let count = self.u64_in(batch, &key(b"k:", &collection))?.unwrap_or(0);
                batch.insert(
                    key(b"k:", &collection),
                    count.saturating_sub(1).to_be_bytes(),
                );
            }
            self.reference_blobs(batch, id, Some(&old), None)?;
        }
        for signature in self.keys_in(batch, &key(b"s:", id))? {
            batch.remove(signature);
        }
        batch.remove(key(b"e:", id));
        batch.remove(key(b"d:", id));
        batch.insert(key(b"t:", id), json(tombstone));
        batch.insert(b"m:clock", (clock as u64).to_be_bytes());
        Ok(())
    }

    pub fn set_followed(&self, id: &DocumentId, followed: bool) -> Result<u64, StoreError> {
        let mut staged = Staged::default();
        stage_followed(&mut staged, id, followed);
        self.apply_staged(staged)
    }

    pub fn set_setting(&self, name: &str, value: &str) -> Result<u64, StoreError> {
        let mut batch = sled::Batch::default();
        batch.insert(format!("m:set:{name}").as_bytes(), value.as_bytes());
        self.apply(batch)
    }

    /// [`Store::put_collection`], staged.
    pub fn stage_collection(
        &self,
        batch: &mut Staged,
        collection: &Collection,
        heads: &[[u8; 32]],
        document: &[u8],
        signatures: &[(ChangeHash, Signature)],
        clock: i64,
    ) -> Result<(), StoreError> {
        let digest = reconcile::heads_digest(heads);
        self.stage_item(batch, collection.id, collection.id, Some(digest))?;
        batch.insert(
            [b"n:".as_slice(), collection.name.as_bytes()].concat(),
            collection.id.as_bytes(),
        );
        batch.insert(
            key(b"c:", &collection.id),
            json(&Collection {
                entries: 0,
                ..collection.clone()
            }),
        );
        stage_document(batch, &collection.id, document, signatures, clock);
        Ok(())
    }

    /// Sets (or with `None` removes) the reconciliation row of `id` in `collection`, and moves
    /// the id to the end of the collection's change log.
    fn stage_item(
        &self,
        batch: &mut Staged,
        collection: DocumentId,
        id: DocumentId,
        digest: Option<[u8; 16]>,
    ) -> Result<(), StoreError> {
        let item = item_key(&collection, &id);
        match digest {
            Some(digest) => batch.insert(item, digest),
            None => batch.remove(item),
        }
        let position = [key(b"o:", &collection).as_slice(), id.as_bytes()].concat();
        if let Some(old) = self.u64_in(batch, &position)? {
            batch.remove([key(b"l:", &collection).as_slice(), &old.to_be_bytes()].concat());
        }
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let row = match batch.source {
            Some(source) => [id.as_bytes().as_slice(), &source].concat(),
            None => id.as_bytes().to_vec(),
        };
        batch.insert(
            [key(b"l:", &collection).as_slice(), &seq.to_be_bytes()].concat(),
            row,
        );
        batch.insert(position, seq.to_be_bytes());
        batch.insert(b"m:seq", seq.to_be_bytes());
        batch.reconciled.push((collection, id, digest));
        Ok(())
    }
}

impl Reader {
    /// Moves a committed journal into the store and empties it; drops one never committed.
    /// Returns the last batch written (or the current count if none was).
    fn finish_journal(&self) -> Result<u64, StoreError> {
        let mut written = self.applied_writes();
        if journal::is_committed(&self.journal)? {
            written = journal::replay(&self.journal, |batch| self.apply(batch))?;
            self.db.flush()?;
        }
        journal::clear(&self.db, &self.journal)?;
        Ok(written)
    }

    /// Makes every batch applied so far durable; [`Store::flush`] and [`BlobRecords::flush`].
    fn flush_applied(&self) -> Result<(), StoreError> {
        let written = self.written.load(Ordering::SeqCst);
        self.db.flush()?;
        self.durable.fetch_max(written, Ordering::SeqCst);
        Ok(())
    }

    /// How many write batches have been applied; see [`Self::durable_writes`].
    pub fn applied_writes(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// How many write batches are known to be on disk.
    pub fn durable_writes(&self) -> u64 {
        self.durable.load(Ordering::SeqCst)
    }

    /// Applies one atomic batch; returns its sequence number among this process's writes.
    fn apply(&self, batch: sled::Batch) -> Result<u64, StoreError> {
        self.db.apply_batch(batch)?;
        Ok(self.written.fetch_add(1, Ordering::SeqCst) + 1)
    }

    /// A value as it will be once `staged` is applied.
    fn get_in(&self, staged: &Staged, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(value) = staged.pending.get(key) {
            return Ok(value.clone());
        }
        if staged.spilled()
            && let Some(value) = journal::get(&self.journal, key)?
        {
            return Ok(value);
        }
        Ok(self.db.get(key)?.map(|v| v.to_vec()))
    }

    /// The keys under `prefix` as they will be once `staged` is applied.
    fn keys_in(&self, staged: &Staged, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut keys = BTreeMap::new();
        for key in self.db.scan_prefix(prefix).keys() {
            keys.insert(key?.to_vec(), true);
        }
        if staged.spilled() {
            for (key, value) in journal::scan(&self.journal, prefix)? {
                keys.insert(key, value.is_some());
            }
        }
        let pending = staged.pending.range(prefix.to_vec()..);
        for (key, value) in pending.take_while(|(k, _)| k.starts_with(prefix)) {
            keys.insert(key.clone(), value.is_some());
        }
        Ok(keys
            .into_iter()
            .filter_map(|(key, present)| present.then_some(key))
            .collect())
    }

    /// [`Self::entry`], as it will be once `staged` is applied.
    pub fn entry_in(&self, staged: &Staged, id: &DocumentId) -> Result<Option<Entry>, StoreError> {
        let key = key(b"e:", id);
        view::decode(&key, self.get_in(staged, &key)?)
    }

    /// [`Self::document`], as it will be once `staged` is applied.
    pub fn document_in(
        &self,
        staged: &Staged,
        id: &DocumentId,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_in(staged, &key(b"d:", id))
    }

    /// [`Self::tombstone`], as it will be once `staged` is applied.
    pub fn tombstone_in(
        &self,
        staged: &Staged,
        id: &DocumentId,
    ) -> Result<Option<Tombstone>, StoreError> {
        let key = key(b"t:", id);
        decode_json(&key, self.get_in(staged, &key)?)
    }

    /// [`Self::collection`] (without its entry count), as it will be once `staged` is applied.
    pub fn collection_in(
        &self,
        staged: &Staged,
        id: &DocumentId,
    ) -> Result<Option<Collection>, StoreError> {
        let key = key(b"c:", id);
        decode_json(&key, self.get_in(staged, &key)?)
    }

    /// [`Self::is_followed`], as it will be once `staged` is applied.
    pub fn is_followed_in(&self, staged: &Staged, id: &DocumentId) -> Result<bool, StoreError> {
        Ok(self.get_in(staged, &key(b"f:", id))?.is_some())
    }

    fn u64_in(&self, staged: &Staged, key: &[u8]) -> Result<Option<u64>, StoreError> {
        let Some(bytes) = self.get_in(staged, key)? else {
            return Ok(None);
        };
        let bytes: [u8; 8] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| corrupt_key(key, "not 8 bytes"))?;
        Ok(Some(u64::from_be_bytes(bytes)))
    }

    pub fn clock(&self) -> Result<i64, StoreError> {
        Ok(self.get_u64(b"m:clock")?.map_or(0, |v| v as i64))
    }

    /// Rows and their key + value bytes by key prefix (`d:`, `e:`, `i:a:` …, as the table
    /// above), and sled's own size on disk: where a store's bytes go.
    pub fn usage(&self) -> Result<Usage, StoreError> {
        let mut by_prefix: BTreeMap<String, Rows> = BTreeMap::new();
        for row in self.db.iter() {
            let (key, value) = row?;
            // Listing indexes are told apart by their second part (`i:a:`, `i:c:` …).
            let cut = if key.first() == Some(&b'i') { 4 } else { 2 };
            let prefix = String::from_utf8_lossy(&key[..cut.min(key.len())]).into_owned();
            let rows = by_prefix.entry(prefix).or_default();
            rows.count += 1;
            rows.bytes += (key.len() + value.len()) as u64;
        }
        Ok(Usage {
            by_prefix,
            on_disk: self.db.size_on_disk()?,
        })
    }

    pub fn entry_count(&self) -> Result<u64, StoreError> {
        Ok(self.get_u64(b"m:entries")?.unwrap_or(0))
    }

    pub fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        let value = self.db.get(format!("m:set:{name}"))?;
        Ok(value.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    pub fn entry(&self, id: &DocumentId) -> Result<Option<Entry>, StoreError> {
        let key = key(b"e:", id);
        view::decode(&key, self.db.get(&key)?)
    }

    /// The saved automerge document of an entry or collection.
    pub fn document(&self, id: &DocumentId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get(key(b"d:", id))?.map(|v| v.to_vec()))
    }

    /// Whether any version of a document is held, without reading it.
    pub fn has_document(&self, id: &DocumentId) -> Result<bool, StoreError> {
        Ok(self.db.contains_key(key(b"d:", id))?)
    }

    /// The signatures of a document's changes, by change hash.
    pub fn signatures(&self, id: &DocumentId) -> Result<Vec<(ChangeHash, Signature)>, StoreError> {
        let prefix = key(b"s:", id);
        self.db
            .scan_prefix(&prefix)
            .map(|item| {
                let (k, v) = item?;
                let hash = ChangeHash::try_from(&k[prefix.len()..])
                    .map_err(|_| corrupt("s:", "bad change hash"))?;
                let sig = Signature::try_from(v.as_ref()).map_err(|_| corrupt("s:", "bad sig"))?;
                Ok((hash, sig))
            })
            .collect()
    }

    pub fn collection(&self, id: &DocumentId) -> Result<Option<Collection>, StoreError> {
        let Some(mut collection) = self.get_json::<Collection>(&key(b"c:", id))? else {
            return Ok(None);
        };
        collection.entries = self.get_u64(&key(b"k:", id))?.unwrap_or(0);
        Ok(Some(collection))
    }

    pub fn collection_by_name(&self, name: &str) -> Result<Option<DocumentId>, StoreError> {
        let Some(bytes) = self.db.get([b"n:", name.as_bytes()].concat())? else {
            return Ok(None);
        };
        Ok(Some(id_from(&bytes)?))
    }

    /// Every collection this node holds, by name.
    pub fn collections(&self) -> Result<Vec<Collection>, StoreError> {
        let mut all = Vec::new();
        for item in self.db.scan_prefix(b"n:") {
            let (_, id) = item?;
            if let Some(collection) = self.collection(&id_from(&id)?)? {
                all.push(collection);
            }
        }
        Ok(all)
    }

    pub fn is_followed(&self, id: &DocumentId) -> Result<bool, StoreError> {
        Ok(self.db.contains_key(key(b"f:", id))?)
    }

    /// The reconciliation set of a collection: its shareable documents (the collection itself
    /// included) with the digests of their heads, sorted by id.
    pub fn items(&self, collection: &DocumentId) -> Result<Vec<Item>, StoreError> {
        let prefix = key(b"r:", collection);
        self.db
            .scan_prefix(&prefix)
            .map(|item| {
                let (k, v) = item?;
                Ok(Item {
                    id: k[prefix.len()..]
                        .try_into()
                        .map_err(|_| corrupt("r:", "bad id"))?,
                    digest: v
                        .as_ref()
                        .try_into()
                        .map_err(|_| corrupt("r:", "bad digest"))?,
                })
            })
            .collect()
    }

    /// The reconciliation digest of one document of a collection, if it is in the set.
    pub fn item_digest(
        &self,
        collection: &DocumentId,
        id: &DocumentId,
    ) -> Result<Option<[u8; 16]>, StoreError> {
        let Some(digest) = self.db.get(item_key(collection, id))? else {
            return Ok(None);
        };
        let digest = digest
            .as_ref()
            .try_into()
            .map_err(|_| corrupt("r:", "bad digest"))?;
        Ok(Some(digest))
    }

    /// Whether this node holds every change an announcement of `heads` names: the same heads,
    /// or later ones built on them (each change's signature is kept under its hash). Empty heads
    /// announce a withdrawal, held once the document is a tombstone here.
    pub fn holds(
        &self,
        collection: &DocumentId,
        id: &DocumentId,
        heads: &[[u8; 32]],
    ) -> Result<bool, StoreError> {
        let digest = self.item_digest(collection, id)?;
        if heads.is_empty() {
            return Ok(digest == Some(TOMBSTONE_DIGEST));
        }
        if digest == Some(reconcile::heads_digest(heads)) {
            return Ok(true);
        }
        for head in heads {
            if !self
                .db
                .contains_key([key(b"s:", id).as_slice(), head].concat())?
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The change log's last sequence number: every later change of a reconciliation row gets
    /// a greater one.
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Rows of a collection's reconciliation set changed after `since`, oldest first; at most
    /// `limit` (the flag says whether that was all of them). Rows changed and then made private
    /// are left out: they are no longer in the set, and so are rows whose last change came
    /// from `asker`, which holds that version already.
    pub fn changed_since(
        &self,
        collection: &DocumentId,
        since: u64,
        limit: usize,
        asker: Option<SourceTag>,
    ) -> Result<(Vec<Item>, bool), StoreError> {
        let prefix = key(b"l:", collection);
        let start = [prefix.as_slice(), &since.saturating_add(1).to_be_bytes()].concat();
        let mut items = Vec::new();
        for row in self.db.range(start..) {
            let (k, id) = row?;
            if !k.starts_with(&prefix) {
                break;
            }
            let (id, source) = log_row(&id)?;
            if source.is_some() && source == asker {
                continue;
            }
            if items.len() == limit {
                return Ok((items, false));
            }
            if let Some(digest) = self.item_digest(collection, &id)? {
                items.push(Item {
                    id: *id.as_bytes(),
                    digest,
                });
            }
        }
        Ok((items, true))
    }

    /// The change-log position last written to disk's tree (`m:seq`): unlike [`Self::seq`], it
    /// counts no position handed to a batch that was then refused. Read on the writer right
    /// after a flush, it is durable.
    pub fn logged_seq(&self) -> Result<u64, StoreError> {
        Ok(self.get_u64(b"m:seq")?.unwrap_or(0))
    }

    /// Every document whose change-log row is after `since`, with that row's position, across
    /// all collections (entries, tombstones and collections alike); one seek per collection.
    pub fn log_since(&self, since: u64) -> Result<Vec<(u64, DocumentId)>, StoreError> {
        let mut found = Vec::new();
        let mut next = b"l:".to_vec();
        while let Some(row) = self.db.range(next.clone()..).next() {
            let (k, _) = row?;
            if !k.starts_with(b"l:") {
                break;
            }
            let collection = id_from(
                k.get(2..2 + DocumentId::LEN)
                    .ok_or_else(|| corrupt("l:", "short key"))?,
            )?;
            let prefix = key(b"l:", &collection);
            let start = [prefix.as_slice(), &since.saturating_add(1).to_be_bytes()].concat();
            for row in self.db.range(start..) {
                let (k, id) = row?;
                if !k.starts_with(&prefix) {
                    break;
                }
                let seq: [u8; 8] = k[prefix.len()..]
                    .try_into()
                    .map_err(|_| corrupt("l:", "bad position"))?;
                found.push((u64::from_be_bytes(seq), log_row(&id)?.0));
            }
            // The next collection's rows start after every position of this one.
            next = [prefix.as_slice(), &[0xff; 9]].concat();
        }
        found.sort_unstable_by_key(|(seq, _)| *seq);
        Ok(found)
    }

    /// The peer's change-log position for a collection, when it last told us what changed.
    pub fn peer_seq(&self, peer: &str, collection: &DocumentId) -> Result<Option<u64>, StoreError> {
        self.get_u64(&peer_seq_key(peer, collection))
    }

    /// The cached reconciliation sets. A panic while they were held may have left one half
    /// updated: then they are all dropped, to be rebuilt from the store on next use.
    fn reconcile_sets(&self) -> MutexGuard<'_, HashMap<DocumentId, Arc<ItemSet>>> {
        self.reconcile_sets.lock().unwrap_or_else(|poisoned| {
            let mut sets = poisoned.into_inner();
            sets.clear();
            self.reconcile_sets.clear_poison();
            sets
        })
    }

    /// The reconciliation set of a collection with cached fingerprints: built from the `r:`
    /// rows on first use, then kept current by every write.
    pub fn reconcile_set(&self, collection: &DocumentId) -> Result<Arc<ItemSet>, StoreError> {
        // Held while building, so a write that lands meanwhile updates the set after it is in.
        let mut sets = self.reconcile_sets();
        if let Some(set) = sets.get(collection) {
            return Ok(set.clone());
        }
        let set = Arc::new(ItemSet::new(self.items(collection)?));
        sets.insert(*collection, set.clone());
        Ok(set)
    }

    /// The collections this node follows.
    pub fn followed(&self) -> Result<Vec<DocumentId>, StoreError> {
        self.db
            .scan_prefix(b"f:")
            .keys()
            .map(|k| id_from(&k?[2..]))
            .collect()
    }

    pub fn is_blocked(&self, peer: &str) -> Result<bool, StoreError> {
        Ok(self.db.contains_key([b"b:", peer.as_bytes()].concat())?)
    }

    pub fn blocked(&self) -> Result<Vec<String>, StoreError> {
        self.db
            .scan_prefix(b"b:")
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?[2..]).into_owned()))
            .collect()
    }

    /// Authors of blocked peers, whose content this node hides.
    pub fn hidden_authors(&self) -> Result<BTreeSet<String>, StoreError> {
        let mut hidden = BTreeSet::new();
        for row in self.db.scan_prefix(b"b:").values() {
            if let Ok(author) = <[u8; 32]>::try_from(row?.as_ref()) {
                hidden.insert(AuthorId::from_bytes(author).to_string());
            }
        }
        Ok(hidden)
    }

    pub fn tombstone(&self, id: &DocumentId) -> Result<Option<Tombstone>, StoreError> {
        self.get_json(&key(b"t:", id))
    }

    /// Entries matching the filters, newest first, then by id.
    pub fn list(&self, query: &ListQuery) -> Result<EntryPage, StoreError> {
        let prefix = if let Some(collection) = &query.collection {
            key(b"i:c:", collection)
        } else if let Some(tag) = &query.tag {
            [b"i:t:", tag.as_bytes(), &[0]].concat()
        } else if let Some(kind) = &query.kind {
            [b"i:k:", kind.as_bytes(), &[0]].concat()
        } else if let Some(lang) = &query.lang {
            [
                b"i:l:",
                minga_protocol::lang::macrolanguage(lang).as_bytes(),
                &[0],
            ]
            .concat()
        } else {
            b"i:a:".to_vec()
        };
        let start = match &query.cursor {
            Some(cursor) => Bound::Excluded([prefix.as_slice(), &cursor.0].concat()),
            None => Bound::Included(prefix.clone()),
        };
        let mut entries = Vec::new();
        let mut last = None;
        let mut more = false;
        for item in self.db.range::<Vec<u8>, _>((start, Bound::Unbounded)) {
            let (k, _) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            let suffix: [u8; 24] = k[k.len() - 24..]
                .try_into()
                .map_err(|_| corrupt("i:", "short key"))?;
            let id = DocumentId::from_bytes(suffix[8..].try_into().expect("16 bytes"));
            let Some(entry) = self.entry(&id)? else {
                continue;
            };
            if !matches(query, &entry) {
                continue;
            }
            if entries.len() == query.limit {
                more = true;
                break;
            }
            entries.push(entry);
            last = Some(Cursor(suffix));
        }
        let next_cursor = if more {
            last.map(|c| c.to_string())
        } else {
            None
        };
        Ok(EntryPage {
            entries,
            next_cursor,
        })
    }

    /// Whether no import's rows are waiting in the journal.
    #[cfg(test)]
    pub(crate) fn journal_is_empty(&self) -> bool {
        self.journal.is_empty()
    }

    fn get_u64(&self, key: &[u8]) -> Result<Option<u64>, StoreError> {
        let Some(bytes) = self.db.get(key)? else {
            return Ok(None);
        };
        let bytes: [u8; 8] = bytes
            .as_ref()
            .try_into()
            .map_err(|_| corrupt_key(key, "not 8 bytes"))?;
        Ok(Some(u64::from_be_bytes(bytes)))
    }

    fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        decode_json(key, self.db.get(key)?)
    }
}

/// [`Store::set_followed`], staged.
pub fn stage_followed(batch: &mut Staged, id: &DocumentId, followed: bool) {
    if followed {
        batch.insert(key(b"f:", id), []);
    } else {
        batch.remove(key(b"f:", id));
    }
}

fn stage_document(
    batch: &mut Staged,
    id: &DocumentId,
    document: &[u8],
    signatures: &[(ChangeHash, Signature)],
    clock: i64,
) {
    batch.insert(key(b"d:", id), document);
    for (hash, signature) in signatures {
        batch.insert([key(b"s:", id).as_slice(), &hash.0].concat(), signature.0);
    }
    batch.insert(b"m:clock", (clock as u64).to_be_bytes());
}

fn decode_json<T: serde::de::DeserializeOwned>(
    key: &[u8],
    bytes: Option<impl AsRef<[u8]>>,
) -> Result<Option<T>, StoreError> {
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    serde_json::from_slice(bytes.as_ref())
        .map(Some)
        .map_err(|e| corrupt_key(key, &e.to_string()))
}

fn matches(query: &ListQuery, entry: &Entry) -> bool {
    query
        .collection
        .is_none_or(|c| entry.collection == c.to_string())
        && query.kind.as_ref().is_none_or(|k| entry.kind == *k)
        && query.tag.as_ref().is_none_or(|t| entry.tags.contains(t))
        && query
            .lang
            .as_ref()
            .is_none_or(|l| minga_protocol::lang::matches(l, &entry.lang))
}

/// The listing index keys of an entry.
fn index_keys(entry: &Entry) -> Vec<Vec<u8>> {
    // Order-preserving map of i64 onto u64, inverted so newer sorts first.
    let inv = (!((entry.updated as u64) ^ (1 << 63))).to_be_bytes();
    let suffix = [inv.as_slice(), entry.id.as_bytes()].concat();
    let mut keys = vec![[b"i:a:".as_slice(), &suffix].concat()];
    if let Some(collection) = entry.collection_id() {
        keys.push([key(b"i:c:", &collection).as_slice(), &suffix].concat());
    }
    keys.push([b"i:k:", entry.kind.as_bytes(), &[0], &suffix].concat());
    let lang = minga_protocol::lang::macrolanguage(&entry.lang);
    keys.push([b"i:l:", lang.as_bytes(), &[0], &suffix].concat());
    for tag in &entry.tags {
        keys.push([b"i:t:", tag.as_bytes(), &[0], &suffix].concat());
    }
    keys
}

/// The reconciliation digest of a withdrawn document.
pub const TOMBSTONE_DIGEST: [u8; 16] = [0xff; 16];

fn peer_seq_key(peer: &str, collection: &DocumentId) -> Vec<u8> {
    [b"q:", peer.as_bytes(), collection.as_bytes()].concat()
}

fn item_key(collection: &DocumentId, id: &DocumentId) -> Vec<u8> {
    [b"r:".as_slice(), collection.as_bytes(), id.as_bytes()].concat()
}

fn entry_digest(entry: &Entry) -> Result<[u8; 16], StoreError> {
    let heads = entry
        .heads
        .iter()
        .map(|h| {
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(h, &mut bytes).map_err(|_| corrupt("e:", "bad head"))?;
            Ok(bytes)
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(reconcile::heads_digest(&heads))
}

fn key(prefix: &[u8], id: &DocumentId) -> Vec<u8> {
    [prefix, id.as_bytes()].concat()
}

/// A change-log row's value: the document's id, then the [`SourceTag`] of the peer its change
/// came from, if it came from one.
fn log_row(value: &[u8]) -> Result<(DocumentId, Option<SourceTag>), StoreError> {
    let (id, source) = value.split_at(value.len().min(DocumentId::LEN));
    let source = match source.len() {
        0 => None,
        8 => Some(source.try_into().expect("8 bytes")),
        _ => return Err(corrupt("l:", "bad source")),
    };
    Ok((id_from(id)?, source))
}

fn id_from(bytes: &[u8]) -> Result<DocumentId, StoreError> {
    let bytes: [u8; DocumentId::LEN] = bytes
        .try_into()
        .map_err(|_| corrupt("n:", "id is not 16 bytes"))?;
    Ok(DocumentId::from_bytes(bytes))
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("views serialise to JSON")
}

fn corrupt(key: &str, reason: &str) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        reason: reason.to_owned(),
    }
}

fn corrupt_key(key: &[u8], reason: &str) -> StoreError {
    corrupt(&String::from_utf8_lossy(&key[..key.len().min(4)]), reason)
}

#[cfg(test)]
mod tests {
    use fs2::FileExt;

    use super::*;

    /// The store waits for a lock another `Db` holds, by its error kind, then lets sled open
    /// and report it: it neither opens a locked store nor waits forever.
    #[test]
    fn a_store_locked_throughout_is_reported_by_sled() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path(), 1 << 20).unwrap());
        let holder = std::fs::File::open(dir.path().join(SLED_LOCK_FILE)).unwrap();
        holder.lock_exclusive().unwrap();
        let refused = Store::open(dir.path(), 1 << 20).unwrap_err();
        assert!(
            matches!(refused, StoreError::Sled(sled::Error::Io(_))),
            "{refused}"
        );
        FileExt::unlock(&holder).unwrap();
        Store::open(dir.path(), 1 << 20).expect("opens once the lock is released");
    }
}

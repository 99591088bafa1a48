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
//! | `e:` id | the entry's JSON view, so reads and lists need no automerge load |
//! | `i:a:` inv id, `i:c:` coll inv id, `i:k:` kind 0 inv id, `i:t:` tag 0 inv id, `i:l:` lang 0 inv id | listing indexes |
//! | `c:` id, `k:` id, `n:` name | collection view, its entry count, name → id |
//! | `f:` id | followed collection |
//! | `t:` id | tombstone |
//! | `r:` coll id | reconciliation digest of a shareable document of the collection |
//! | `b:` peer | blocked peer |
//! | `h:` hash | a blob's record: size, verified prefix, complete, MIME type (`store/blobs`) |
//! | `u:` hash id | entry `id` references blob `hash`; the value is the size it declares |
//! | `g:` hash | a blob that lost its last reference, to be removed after the next flush |

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use minga_protocol::automerge::ChangeHash;
use minga_protocol::reconcile::{self, Item};
use minga_protocol::{Collection, DocumentId, Entry, Signature, Tombstone};
use serde::Serialize;

use crate::StoreError;

mod blobs;
pub use blobs::{BlobRecord, BlobRef};

/// The store format this code reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Handle to the store; cheap to clone, safe to read from any thread.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    /// Batches applied so far; a flush makes all of them durable.
    written: Arc<AtomicU64>,
    /// Batches known to be on disk: the `written` count a finished flush started from.
    durable: Arc<AtomicU64>,
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
#[derive(Debug, Clone, Serialize)]
pub struct EntryPage {
    pub entries: Vec<Entry>,
    pub next_cursor: Option<String>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
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

impl Store {
    /// Opens (or creates) the store under `dir`, checking its format version.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let config = sled::Config::new().path(dir).cache_capacity(cache_bytes);
        // A `Db` dropped in this process can hold its file lock a moment longer (sled's thread
        // pool finishes its writes), so reopening in-process retries briefly on that error.
        let mut retries = 0;
        let db = loop {
            match config.open() {
                Err(sled::Error::Io(e))
                    if retries < 200 && e.to_string().starts_with("could not acquire lock") =>
                {
                    retries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                opened => break opened?,
            }
        };
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
        Ok(Store {
            db,
            written: Arc::new(AtomicU64::new(0)),
            durable: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Makes every write applied so far durable (fsync). Concurrent writers share one flush.
    pub fn flush(&self) -> Result<(), StoreError> {
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

    // ---- reads ----

    pub fn clock(&self) -> Result<i64, StoreError> {
        Ok(self.get_u64(b"m:clock")?.map_or(0, |v| v as i64))
    }

    pub fn entry_count(&self) -> Result<u64, StoreError> {
        Ok(self.get_u64(b"m:entries")?.unwrap_or(0))
    }

    pub fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        let value = self.db.get(format!("m:set:{name}"))?;
        Ok(value.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    pub fn entry(&self, id: &DocumentId) -> Result<Option<Entry>, StoreError> {
        self.get_json(&key(b"e:", id))
    }

    /// The saved automerge document of an entry or collection.
    pub fn document(&self, id: &DocumentId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get(key(b"d:", id))?.map(|v| v.to_vec()))
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

    pub fn set_blocked(&self, peer: &str, blocked: bool) -> Result<u64, StoreError> {
        let mut batch = sled::Batch::default();
        let key = [b"b:", peer.as_bytes()].concat();
        if blocked {
            batch.insert(key, &[]);
        } else {
            batch.remove(key);
        }
        self.apply(batch)
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

    // ---- writes: each one atomic batch, durable after the next flush ----

    /// Stores a new or changed entry with the signatures of its new changes.
    pub fn put_entry(
        &self,
        entry: &Entry,
        document: &[u8],
        signatures: &[(ChangeHash, Signature)],
        clock: i64,
    ) -> Result<u64, StoreError> {
        let mut batch = sled::Batch::default();
        let old = self.entry(&entry.id)?;
        match &old {
            Some(old) => index_keys(old)
                .iter()
                .for_each(|k| batch.remove(k.as_slice())),
            None => {
                batch.insert(b"m:entries", &(self.entry_count()? + 1).to_be_bytes());
                if let Some(collection) = collection_of(entry) {
                    let count = self.get_u64(&key(b"k:", &collection))?.unwrap_or(0);
                    batch.insert(key(b"k:", &collection), &(count + 1).to_be_bytes());
                }
            }
        }
        index_keys(entry)
            .iter()
            .for_each(|k| batch.insert(k.as_slice(), &[]));
        if let Some(collection) = collection_of(entry) {
            // Only what may leave the node is ever reconciled with peers.
            let item = item_key(&collection, &entry.id);
            if entry.is_shareable() {
                batch.insert(item, &entry_digest(entry)?[..]);
            } else {
                batch.remove(item);
            }
        }
        self.reference_blobs(&mut batch, &entry.id, old.as_ref(), Some(entry))?;
        batch.insert(key(b"e:", &entry.id), json(entry));
        self.put_document(&mut batch, &entry.id, document, signatures, clock);
        self.apply(batch)
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
        let mut batch = sled::Batch::default();
        let digest = reconcile::heads_digest(heads);
        batch.insert(item_key(&collection.id, &collection.id), &digest[..]);
        if follow {
            batch.insert(key(b"f:", &collection.id), &[]);
        }
        batch.insert(
            [b"n:".as_slice(), collection.name.as_bytes()].concat(),
            &collection.id.as_bytes()[..],
        );
        batch.insert(
            key(b"c:", &collection.id),
            json(&Collection {
                entries: 0,
                ..collection.clone()
            }),
        );
        self.put_document(&mut batch, &collection.id, document, signatures, clock);
        self.apply(batch)
    }

    /// Records a tombstone and drops the entry, its signatures and its index rows.
    pub fn put_tombstone(&self, tombstone: &Tombstone, clock: i64) -> Result<u64, StoreError> {
        let id = &tombstone.entry;
        let mut batch = sled::Batch::default();
        if let Some(old) = self.entry(id)? {
            index_keys(&old)
                .iter()
                .for_each(|k| batch.remove(k.as_slice()));
            batch.insert(
                b"m:entries",
                &self.entry_count()?.saturating_sub(1).to_be_bytes(),
            );
            if let Some(collection) = collection_of(&old) {
                // A private or unconsented entry never leaves the node, not even as a tombstone.
                if old.is_shareable() {
                    batch.insert(item_key(&collection, id), &TOMBSTONE_DIGEST[..]);
                } else {
                    batch.remove(item_key(&collection, id));
                }
                let count = self.get_u64(&key(b"k:", &collection))?.unwrap_or(0);
                batch.insert(
                    key(b"k:", &collection),
                    &count.saturating_sub(1).to_be_bytes(),
                );
            }
            self.reference_blobs(&mut batch, id, Some(&old), None)?;
        }
        for item in self.db.scan_prefix(key(b"s:", id)).keys() {
            batch.remove(item?);
        }
        batch.remove(key(b"e:", id));
        batch.remove(key(b"d:", id));
        batch.insert(key(b"t:", id), json(tombstone));
        batch.insert(b"m:clock", &(clock as u64).to_be_bytes());
        self.apply(batch)
    }

    pub fn set_followed(&self, id: &DocumentId, followed: bool) -> Result<u64, StoreError> {
        let mut batch = sled::Batch::default();
        if followed {
            batch.insert(key(b"f:", id), &[]);
        } else {
            batch.remove(key(b"f:", id));
        }
        self.apply(batch)
    }

    pub fn set_setting(&self, name: &str, value: &str) -> Result<u64, StoreError> {
        let mut batch = sled::Batch::default();
        batch.insert(format!("m:set:{name}").as_bytes(), value.as_bytes());
        self.apply(batch)
    }

    fn put_document(
        &self,
        batch: &mut sled::Batch,
        id: &DocumentId,
        document: &[u8],
        signatures: &[(ChangeHash, Signature)],
        clock: i64,
    ) {
        batch.insert(key(b"d:", id), document);
        for (hash, signature) in signatures {
            batch.insert(
                [key(b"s:", id).as_slice(), &hash.0].concat(),
                &signature.0[..],
            );
        }
        batch.insert(b"m:clock", &(clock as u64).to_be_bytes());
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
        let Some(bytes) = self.db.get(key)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| corrupt_key(key, &e.to_string()))
    }
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
    if let Some(collection) = collection_of(entry) {
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

fn collection_of(entry: &Entry) -> Option<DocumentId> {
    entry.collection.parse().ok()
}

fn key(prefix: &[u8], id: &DocumentId) -> Vec<u8> {
    [prefix, id.as_bytes()].concat()
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

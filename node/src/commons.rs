//! The commons of one node: its keys, clock and store, and every operation that changes them.
//! The event loop owns one `Commons` while a node runs; the CLI opens its own when none does,
//! so both paths run exactly this code.

use minga_protocol::automerge::{ActorId, Automerge};
use minga_protocol::entry::{self, EntryPatch, NewEntry};
use minga_protocol::sync::{self, heads_bytes};
use minga_protocol::wire::Payload;
use minga_protocol::{
    AuthorId, Collection, DocKind, DocumentId, Entry, NewCollection, Refusal, Tombstone, collection,
};

use crate::clock::Clock;
use crate::datadir::{DataDir, DirLock};
use crate::keys::Keys;
use crate::queries::{parse_id, resolve_collection};
use crate::{BlobStore, Error, Store, StoreError};

/// The node's state: only this type writes the store.
#[derive(Debug)]
pub struct Commons {
    store: Store,
    /// Attachments; their index lives in `store`.
    blobs: BlobStore,
    keys: Keys,
    /// This run's automerge actor: author key ‖ a nonce fresh at every start.
    actor: ActorId,
    clock: Clock,
    /// Held for as long as the commons is open: one process per data dir.
    _lock: DirLock,
}

/// The result of a write, with the sequence number of the store batch that holds it: the write
/// may be acknowledged once the store's durable count reaches that number.
#[derive(Debug)]
pub struct Written<T> {
    pub value: T,
    pub batch: u64,
    /// The shareable document the write changed, to announce to peers once it is durable.
    pub changed: Option<Changed>,
}

/// A document changed: what peers are told (heads only, never content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub collection: DocumentId,
    pub id: DocumentId,
    pub kind: DocKind,
    pub heads: Vec<[u8; 32]>,
}

impl<T> Written<T> {
    fn new(value: T, batch: u64) -> Self {
        Written {
            value,
            batch,
            changed: None,
        }
    }

    fn announcing(mut self, changed: Option<Changed>) -> Self {
        self.changed = changed;
        self
    }
}

/// Setting that names this node's author when an entry names none.
const NAME_SETTING: &str = "name";

impl Commons {
    /// Opens the data dir (creating it on first use), taking its lock.
    pub fn open(dir: &DataDir, cache_bytes: u64) -> Result<Self, Error> {
        let lock = dir.lock()?;
        let keys = Keys::load_or_create(dir)?;
        let store = Store::open(&dir.store_dir(), cache_bytes)?;
        let mut nonce = [0u8; minga_protocol::signing::NONCE_LEN];
        getrandom::fill(&mut nonce)
            .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?;
        let actor = keys.author.actor(nonce);
        let clock = Clock::resume(store.clock()?);
        let blobs = BlobStore::open(&dir.blobs_dir(), store.clone())?;
        Ok(Commons {
            store,
            blobs,
            keys,
            actor,
            clock,
            _lock: lock,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn peer_id(&self) -> String {
        self.keys.peer_id()
    }

    /// The secret of the network key, for the libp2p identity.
    pub fn network_secret(&self) -> [u8; 32] {
        self.keys.network
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Makes every write so far durable, then removes the blobs that durably lost their last
    /// reference (a withdrawn or edited entry).
    pub fn flush(&self) -> Result<(), Error> {
        self.store.flush()?;
        if let Err(e) = self.blobs.collect_garbage() {
            tracing::error!("removing unreferenced blobs: {e}");
        }
        Ok(())
    }

    pub fn set_name(&mut self, name: &str) -> Result<Written<()>, Error> {
        let batch = self.store.set_setting(NAME_SETTING, name)?;
        Ok(Written::new((), batch))
    }

    pub fn create_collection(&mut self, new: &NewCollection) -> Result<Written<DocumentId>, Error> {
        if self.store.collection_by_name(&new.name)?.is_some() {
            return Err(Error::Conflict(format!(
                "a collection named {:?} exists",
                new.name
            )));
        }
        let now = self.clock.tick();
        let author = self.keys.author.id();
        let (id, doc) = collection::create(new, &author, self.actor.clone(), now)?;
        let signatures = self.keys.author.sign_changes_since(&id, &doc, &[]);
        let view = Collection::read(id, &doc);
        let heads = heads_bytes(&doc);
        // A node follows the collections it creates.
        let batch =
            self.store
                .put_collection(&view, &heads, &doc.save(), &signatures, now, true)?;
        let changed = Changed {
            collection: id,
            id,
            kind: DocKind::Collection,
            heads,
        };
        Ok(Written::new(id, batch).announcing(Some(changed)))
    }

    pub fn create_entry(&mut self, new: &NewEntry) -> Result<Written<DocumentId>, Error> {
        let valid = new.validate()?;
        let collection = resolve_collection(&self.store, &valid.collection)?;
        let now = self.clock.tick();
        let name = self.store.setting(NAME_SETTING)?.unwrap_or_default();
        let author = self.keys.author.id();
        let (id, doc) =
            entry::create(&valid, &collection, &author, &name, self.actor.clone(), now)?;
        let signatures = self.keys.author.sign_changes_since(&id, &doc, &[]);
        let view = Entry::read(id, &doc);
        let batch = self.store.put_entry(&view, &doc.save(), &signatures, now)?;
        Ok(Written::new(id, batch).announcing(changed_entry(&view, &doc)))
    }

    pub fn patch_entry(&mut self, id: &str, patch: &EntryPatch) -> Result<Written<Entry>, Error> {
        let id = parse_id(id)?;
        let mut doc = self.load_live_entry(&id)?;
        let before = doc.get_heads();
        let now = self.clock.tick();
        let changed = entry::apply_patch(&mut doc, id, patch, &self.keys.author.id(), now)?;
        let view = Entry::read(id, &doc);
        if changed.is_none() {
            return Ok(Written::new(view, self.store.applied_writes()));
        }
        let signatures = self.keys.author.sign_changes_since(&id, &doc, &before);
        let batch = self.store.put_entry(&view, &doc.save(), &signatures, now)?;
        let changed = changed_entry(&view, &doc);
        Ok(Written::new(view, batch).announcing(changed))
    }

    /// Signs a tombstone for an entry this node's author wrote, or whose collection it maintains.
    pub fn delete_entry(&mut self, id: &str, reason: &str) -> Result<Written<Tombstone>, Error> {
        let id = parse_id(id)?;
        if let Some(stone) = self.store.tombstone(&id)? {
            return Ok(Written::new(stone, self.store.applied_writes()));
        }
        let entry = crate::queries::entry(&self.store, &id)?;
        let me = self.keys.author.id();
        if !self.may_delete(&entry, &me)? {
            return Err(Error::Forbidden(format!(
                "only an author of {id} or a maintainer of its collection can delete it"
            )));
        }
        let stone = Tombstone::sign(&self.keys.author, id, reason);
        let batch = self.store.put_tombstone(&stone, self.clock.tick())?;
        Ok(Written::new(stone, batch).announcing(withdrawn(&entry)))
    }

    /// Whether `key` may sign a tombstone for `entry`: one of its authors, or a maintainer of
    /// its collection.
    fn may_delete(&self, entry: &Entry, key: &AuthorId) -> Result<bool, Error> {
        let hex = key.to_string();
        if entry.authors.iter().any(|a| a.key == hex) {
            return Ok(true);
        }
        Ok(match entry.collection.parse() {
            Ok(collection) => self
                .store
                .collection(&collection)?
                .is_some_and(|c| c.is_maintainer(key)),
            Err(_) => false,
        })
    }

    /// Verifies and applies what a peer sent for one document. Returns whether anything changed.
    ///
    /// Entries are kept only for collections this node follows (all of them in mirror mode);
    /// tombstones only when signed by an author of the entry or a maintainer of its collection.
    pub fn apply_remote(
        &mut self,
        id: DocumentId,
        kind: DocKind,
        payload: &Payload,
        mirror: bool,
    ) -> Result<Written<bool>, Error> {
        let unchanged = || Written::new(false, self.store.applied_writes());
        if self.store.tombstone(&id)?.is_some() {
            return Ok(unchanged());
        }
        if let Payload::Tombstone(stone) = payload {
            return self.apply_remote_tombstone(id, stone);
        }
        let held = match self.store.document(&id)? {
            Some(bytes) => Some(load(&id, &bytes)?),
            None => None,
        };
        let Some((doc, signatures)) = sync::apply_payload(id, kind, held.as_ref(), payload)
            .map_err(|e| Error::Rejected(e.to_string()))?
        else {
            return Ok(unchanged());
        };
        let now = self.clock.tick();
        match kind {
            DocKind::Entry => {
                let view = Entry::read(id, &doc);
                let collection: DocumentId = view.collection.parse()?;
                if !mirror && !self.store.is_followed(&collection)? {
                    return Ok(unchanged());
                }
                let batch = self.store.put_entry(&view, &doc.save(), &signatures, now)?;
                Ok(Written::new(true, batch).announcing(changed_entry(&view, &doc)))
            }
            DocKind::Collection => {
                if !mirror && !self.store.is_followed(&id)? {
                    return Ok(unchanged());
                }
                let view = Collection::read(id, &doc);
                if self
                    .store
                    .collection_by_name(&view.name)?
                    .is_some_and(|other| other != id)
                {
                    tracing::info!(%id, name = %view.name, "a held collection already has this name");
                }
                let heads = heads_bytes(&doc);
                let batch = self.store.put_collection(
                    &view,
                    &heads,
                    &doc.save(),
                    &signatures,
                    now,
                    true,
                )?;
                let changed = Changed {
                    collection: id,
                    id,
                    kind,
                    heads,
                };
                Ok(Written::new(true, batch).announcing(Some(changed)))
            }
        }
    }

    fn apply_remote_tombstone(
        &mut self,
        id: DocumentId,
        stone: &Tombstone,
    ) -> Result<Written<bool>, Error> {
        let (Some(signer), Some(entry)) = (stone.verified_signer(), self.store.entry(&id)?) else {
            // Unverifiable, or about an entry we do not hold: nothing to withdraw here.
            return Ok(Written::new(false, self.store.applied_writes()));
        };
        if stone.entry != id || !self.may_delete(&entry, &signer)? {
            return Err(Error::Rejected(format!(
                "a tombstone for {id} signed by {signer}, who may not delete it"
            )));
        }
        let batch = self.store.put_tombstone(stone, self.clock.tick())?;
        Ok(Written::new(true, batch).announcing(withdrawn(&entry)))
    }

    pub fn set_blocked(&mut self, peer: &str, blocked: bool) -> Result<Written<()>, Error> {
        let batch = self.store.set_blocked(peer, blocked)?;
        Ok(Written::new((), batch))
    }

    /// Follows (or stops following) a collection; ids never seen are fine.
    pub fn set_followed(&mut self, id: &str, followed: bool) -> Result<Written<()>, Error> {
        let id = parse_id(id)?;
        let batch = self.store.set_followed(&id, followed)?;
        Ok(Written::new((), batch))
    }

    /// The entry's document, ready for this node's actor to edit.
    fn load_live_entry(&self, id: &DocumentId) -> Result<Automerge, Error> {
        if self.store.tombstone(id)?.is_some() {
            return Err(Refusal::Tombstoned(id.to_string()).into());
        }
        let bytes = self
            .store
            .document(id)?
            .filter(|_| self.store.entry(id).ok().flatten().is_some())
            .ok_or_else(|| Error::NotFound(format!("no entry {id}")))?;
        Ok(load(id, &bytes)?.with_actor(self.actor.clone()))
    }
}

/// Loads a stored document.
pub fn load(id: &DocumentId, bytes: &[u8]) -> Result<Automerge, StoreError> {
    Automerge::load(bytes).map_err(|e| StoreError::Corrupt {
        key: format!("d:{id}"),
        reason: e.to_string(),
    })
}

/// What to announce for a withdrawn entry: its id with no heads.
fn withdrawn(entry: &Entry) -> Option<Changed> {
    Some(Changed {
        collection: entry.collection.parse().ok()?,
        id: entry.id,
        kind: DocKind::Entry,
        heads: Vec::new(),
    })
}

/// What to announce for a changed entry: nothing if it must not leave the node.
fn changed_entry(entry: &Entry, doc: &Automerge) -> Option<Changed> {
    if !entry.is_shareable() {
        return None;
    }
    Some(Changed {
        collection: entry.collection.parse().ok()?,
        id: entry.id,
        kind: DocKind::Entry,
        heads: heads_bytes(doc),
    })
}

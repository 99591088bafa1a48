//! The commons of one node: its keys, clock and store, and every operation that changes them.
//! The event loop owns one `Commons` while a node runs; the CLI opens its own when none does,
//! so both paths run exactly this code.

use minga_protocol::automerge::{ActorId, Automerge};
use minga_protocol::entry::{self, EntryPatch, NewEntry};
use minga_protocol::{
    Collection, DocumentId, Entry, NewCollection, Refusal, Tombstone, collection,
};

use crate::clock::Clock;
use crate::datadir::{DataDir, DirLock};
use crate::keys::Keys;
use crate::queries::{parse_id, resolve_collection};
use crate::{Error, Store, StoreError};

/// The node's state: only this type writes the store.
#[derive(Debug)]
pub struct Commons {
    store: Store,
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
        Ok(Commons {
            store,
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

    /// Makes every write so far durable.
    pub fn flush(&self) -> Result<(), Error> {
        Ok(self.store.flush()?)
    }

    pub fn set_name(&mut self, name: &str) -> Result<Written<()>, Error> {
        let batch = self.store.set_setting(NAME_SETTING, name)?;
        Ok(Written { value: (), batch })
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
        // A node follows the collections it creates.
        let batch = self
            .store
            .put_collection(&view, &doc.save(), &signatures, now, true)?;
        Ok(Written { value: id, batch })
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
        let batch = self
            .store
            .put_entry(&Entry::read(id, &doc), &doc.save(), &signatures, now)?;
        Ok(Written { value: id, batch })
    }

    pub fn patch_entry(&mut self, id: &str, patch: &EntryPatch) -> Result<Written<Entry>, Error> {
        let id = parse_id(id)?;
        let mut doc = self.load_live_entry(&id)?;
        let before = doc.get_heads();
        let now = self.clock.tick();
        let changed = entry::apply_patch(&mut doc, id, patch, &self.keys.author.id(), now)?;
        let view = Entry::read(id, &doc);
        if changed.is_none() {
            return Ok(Written {
                value: view,
                batch: self.store.applied_writes(),
            });
        }
        let signatures = self.keys.author.sign_changes_since(&id, &doc, &before);
        let batch = self.store.put_entry(&view, &doc.save(), &signatures, now)?;
        Ok(Written { value: view, batch })
    }

    /// Signs a tombstone for an entry this node's author wrote, or whose collection it maintains.
    pub fn delete_entry(&mut self, id: &str, reason: &str) -> Result<Written<Tombstone>, Error> {
        let id = parse_id(id)?;
        if let Some(stone) = self.store.tombstone(&id)? {
            return Ok(Written {
                value: stone,
                batch: self.store.applied_writes(),
            });
        }
        let entry = crate::queries::entry(&self.store, &id)?;
        let me = self.keys.author.id();
        let key = me.to_string();
        let is_author = entry.authors.iter().any(|a| a.key == key);
        let maintains = match entry.collection.parse() {
            Ok(collection) => self
                .store
                .collection(&collection)?
                .is_some_and(|c| c.is_maintainer(&me)),
            Err(_) => false,
        };
        if !is_author && !maintains {
            return Err(Error::Forbidden(format!(
                "only an author of {id} or a maintainer of its collection can delete it"
            )));
        }
        let stone = Tombstone::sign(&self.keys.author, id, reason);
        let batch = self.store.put_tombstone(&stone, self.clock.tick())?;
        Ok(Written {
            value: stone,
            batch,
        })
    }

    /// Follows (or stops following) a collection; ids never seen are fine.
    pub fn set_followed(&mut self, id: &str, followed: bool) -> Result<Written<()>, Error> {
        let id = parse_id(id)?;
        let batch = self.store.set_followed(&id, followed)?;
        Ok(Written { value: (), batch })
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
        let doc = Automerge::load(&bytes).map_err(|e| StoreError::Corrupt {
            key: format!("d:{id}"),
            reason: e.to_string(),
        })?;
        Ok(doc.with_actor(self.actor.clone()))
    }
}

//! The commons of one node: its keys, clock and store, and every operation that changes them.
//! The event loop owns one `Commons` while a node runs; the CLI opens its own when none does,
//! so both paths run exactly this code. Moving bundles runs here too, on the writer: `export`
//! (a consistent snapshot, since nothing writes meanwhile) and `import` (one all-or-nothing
//! write); the bundle format they stream is `crate::bundle`.

pub(crate) mod export;
pub(crate) mod import;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use minga_protocol::automerge::{ActorId, Automerge, ChangeHash};
use minga_protocol::entry::{self, EntryPatch, NewEntry};
use minga_protocol::sync::{self, heads_bytes};
use minga_protocol::wire::Payload;
use minga_protocol::{
    AuthorId, Collection, DocKind, DocumentId, Entry, NewCollection, Refusal, Signature, Tombstone,
    VerifyError, collection,
};

use crate::bundle::{ExportRequest, ExportSummary, ImportRequest, ImportSummary, Progress};
use crate::clock::Clock;
use crate::datadir::{DataDir, DirLock};
use crate::keys::Keys;
use crate::queries::resolve_collection;
use crate::store::{self, Reader, load};
use crate::{BlobStore, Error, Staged, Store, StoreError};

/// The node's state: only this type writes the store.
#[derive(Debug)]
pub struct Commons {
    store: Store,
    /// Attachments; their index lives in `store`.
    blobs: BlobStore,
    keys: Arc<Keys>,
    /// This run's automerge actor: author key ‖ a nonce fresh at every start.
    actor: ActorId,
    clock: Clock,
    /// The data dir's root, where imports check the free disk space.
    root: std::path::PathBuf,
    /// Held for as long as the commons is open: one process per data dir.
    _lock: DirLock,
}

/// The result of a write, with the sequence number of the store batch that holds it: the write
/// may be acknowledged once the store's durable count reaches that number.
#[derive(Debug)]
pub struct Written<T> {
    pub value: T,
    pub batch: u64,
    /// The shareable documents the write changed, to announce to peers once it is durable.
    pub changed: Vec<Changed>,
}

/// A document changed: what peers are told (heads only, never content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub collection: DocumentId,
    pub id: DocumentId,
    pub kind: DocKind,
    pub heads: Vec<[u8; 32]>,
    pub spread: Spread,
}

/// How peers learn of a durable change: a decision of the sync policy.
pub use minga_protocol::session::Spread;

impl<T> Written<T> {
    pub(crate) fn new(value: T, batch: u64) -> Self {
        Written {
            value,
            batch,
            changed: Vec::new(),
        }
    }

    pub(crate) fn announcing(mut self, changed: impl IntoIterator<Item = Changed>) -> Self {
        self.changed.extend(changed);
        self
    }
}

/// What staging a document from elsewhere did.
#[derive(Debug)]
pub(crate) enum Staging {
    Unchanged,
    /// Staged; announce this once durable (nothing for what must not leave the node).
    Changed(Option<Changed>),
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
        let blobs = BlobStore::open(&dir.blobs_dir(), store.blob_records())?;
        Ok(Commons {
            store,
            blobs,
            keys: Arc::new(keys),
            actor,
            clock,
            root: dir.root().to_path_buf(),
            _lock: lock,
        })
    }

    /// Read access to the store; only `Commons` writes it.
    pub fn store(&self) -> &Reader {
        &self.store
    }

    /// The data dir's root.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// Writes a bundle of the shareable part of the commons (see [`crate::bundle`]).
    pub fn export_bundle(
        &mut self,
        request: &ExportRequest,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<ExportSummary, Error> {
        let peer_id = self.peer_id();
        let node = export::Exporting {
            store: &self.store,
            author: &self.keys.author,
            peer_id: &peer_id,
            now: self.clock.tick(),
        };
        Ok(export::export(node, request, &self.blobs, progress)?)
    }

    /// Verifies a bundle and applies it in one batch (see [`crate::bundle`]).
    pub fn import_bundle(
        &mut self,
        request: &ImportRequest,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<Written<ImportSummary>, Error> {
        let blobs = self.blobs.clone();
        import::import(self, request, &blobs, progress)
    }

    pub fn peer_id(&self) -> String {
        self.keys.peer_id()
    }

    /// This node's author key vouching for its peer id (bytes), for peers that ask.
    pub fn vouch_for_peer(&self, peer: &[u8]) -> (AuthorId, Signature) {
        (self.keys.author.id(), self.keys.author.vouch_for_peer(peer))
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

    /// Brings the store back to a consistent state after the writer caught a panic (see
    /// [`Store::recover`]).
    pub fn recover(&self) -> Result<(), StoreError> {
        self.store.recover()
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
            spread: Spread::Announce,
        };
        Ok(Written::new(id, batch).announcing(Some(changed)))
    }

    pub fn create_entry(&mut self, new: &NewEntry) -> Result<Written<DocumentId>, Error> {
        let made = self.entry_maker().make(new)?;
        self.put_made(made)
    }

    /// What builds new entries off the writer, for this commons.
    pub fn entry_maker(&self) -> EntryMaker {
        EntryMaker {
            store: self.store.reader(),
            keys: Arc::clone(&self.keys),
            actor: self.actor.clone(),
            clock: self.clock.clone(),
        }
    }

    /// Stores an entry an [`EntryMaker`] of this commons built.
    pub fn put_made(&mut self, made: MadeEntry) -> Result<Written<DocumentId>, Error> {
        let MadeEntry {
            view,
            saved,
            signatures,
            changed,
        } = made;
        // The latest tick, not the entry's: entries built on other threads may arrive out of
        // the order they ticked in, and the persisted clock must never fall behind one.
        let batch = self
            .store
            .put_entry(&view, &saved, &signatures, self.clock.last())?;
        Ok(Written::new(view.id, batch).announcing(changed))
    }

    pub fn patch_entry(
        &mut self,
        id: &DocumentId,
        patch: &EntryPatch,
    ) -> Result<Written<Entry>, Error> {
        let id = *id;
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
    pub fn delete_entry(
        &mut self,
        id: &DocumentId,
        reason: &str,
    ) -> Result<Written<Tombstone>, Error> {
        let id = *id;
        if let Some(stone) = self.store.tombstone(&id)? {
            return Ok(Written::new(stone, self.store.applied_writes()));
        }
        let entry = crate::queries::entry(&self.store, &id, crate::queries::Visibility::All)?;
        let me = self.keys.author.id();
        if !self.may_delete(&Staged::default(), &entry, &me)? {
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
    fn may_delete(&self, staged: &Staged, entry: &Entry, key: &AuthorId) -> Result<bool, Error> {
        let hex = key.to_string();
        if entry.authors.iter().any(|a| a.key == hex) {
            return Ok(true);
        }
        Ok(match entry.collection_id() {
            Some(collection) => self
                .store
                .collection_in(staged, &collection)?
                .is_some_and(|c| c.is_maintainer(key)),
            None => false,
        })
    }

    /// Verifies and applies what the peer `from` sent for one document. Returns whether
    /// anything changed.
    ///
    /// Entries are kept only for collections this node follows (all of them in mirror mode);
    /// tombstones only when signed by an author of the entry or a maintainer of its collection.
    pub fn apply_remote(
        &mut self,
        id: DocumentId,
        kind: DocKind,
        payload: &Payload,
        mirror: bool,
        from: store::SourceTag,
        ahead: Option<Verified>,
    ) -> Result<Written<bool>, Error> {
        let mut staged = Staged::from_peer(from);
        match self.stage_remote(&mut staged, id, kind, payload, mirror, ahead)? {
            Staging::Unchanged => Ok(Written::new(false, self.store.applied_writes())),
            Staging::Changed(changed) => {
                let batch = self.store.apply_staged(staged)?;
                Ok(Written::new(true, batch).announcing(changed))
            }
        }
    }

    /// [`Self::apply_remote`] into `staged`, reading the store as `staged` leaves it: the one
    /// path by which documents from elsewhere (a peer, a bundle) enter the store. `ahead` is
    /// the payload already verified, used when no version of the document is held.
    pub(crate) fn stage_remote(
        &mut self,
        staged: &mut Staged,
        id: DocumentId,
        kind: DocKind,
        payload: &Payload,
        mirror: bool,
        ahead: Option<Verified>,
    ) -> Result<Staging, Error> {
        if self.store.tombstone_in(staged, &id)?.is_some() {
            return Ok(Staging::Unchanged);
        }
        if let Payload::Tombstone(stone) = payload {
            return self.stage_remote_tombstone(staged, id, stone);
        }
        if !mirror && !self.followed_before_loading(staged, id, kind)? {
            return Ok(Staging::Unchanged);
        }
        // No input is known to make automerge panic; tests stand one in with this id.
        #[cfg(test)]
        if id.as_bytes() == &tests::PANICKING_DOCUMENT {
            panic!("a document that panics, as third-party code on foreign bytes may");
        }
        let held = match self.store.document_in(staged, &id)? {
            Some(bytes) => Some(load(&id, &bytes)?),
            None => None,
        };
        let verified = match ahead {
            Some(Verified(verified)) if held.is_none() => verified,
            _ => sync::apply_payload(id, kind, held.as_ref(), payload).map(|applied| {
                applied.map(|(doc, signatures)| Gained {
                    doc,
                    signatures,
                    saved: None,
                })
            }),
        };
        let Some(Gained {
            doc,
            signatures,
            saved,
        }) = verified.map_err(|e| Error::Rejected(e.to_string()))?
        else {
            return Ok(Staging::Unchanged);
        };
        let saved = saved.unwrap_or_else(|| doc.save());
        if held
            .as_ref()
            .is_some_and(|held| !sender_holds_all(held, &doc))
        {
            // Our version has changes the sender may lack: it is news to the sender too.
            staged.forget_source();
        }
        let now = self.clock.tick();
        match kind {
            DocKind::Entry => {
                let view = Entry::read(id, &doc);
                let collection: DocumentId = view.collection.parse()?;
                if !mirror && !self.store.is_followed_in(staged, &collection)? {
                    return Ok(Staging::Unchanged);
                }
                self.store
                    .stage_entry(staged, &view, &saved, &signatures, now)?;
                Ok(Staging::Changed(changed_entry(&view, &doc)))
            }
            DocKind::Collection => {
                if !mirror && !self.store.is_followed_in(staged, &id)? {
                    return Ok(Staging::Unchanged);
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
                self.store
                    .stage_collection(staged, &view, &heads, &saved, &signatures, now)?;
                store::stage_followed(staged, &id, true);
                Ok(Staging::Changed(Some(Changed {
                    collection: id,
                    id,
                    kind,
                    heads,
                    spread: Spread::Announce,
                })))
            }
        }
    }

    /// Whether a document from elsewhere belongs to a collection followed here, judged before
    /// automerge sees its bytes: a collection is its own, a held entry's is stored (and fixed
    /// at creation). A new entry's collection is known only once its payload is loaded, within
    /// the inflation and row budgets; the check after loading judges it.
    fn followed_before_loading(
        &self,
        staged: &Staged,
        id: DocumentId,
        kind: DocKind,
    ) -> Result<bool, Error> {
        let collection = match kind {
            DocKind::Collection => id,
            DocKind::Entry => match self.store.entry_in(staged, &id)? {
                Some(held) => held.collection.parse()?,
                None => return Ok(true),
            },
        };
        Ok(self.store.is_followed_in(staged, &collection)?)
    }

    fn stage_remote_tombstone(
        &mut self,
        staged: &mut Staged,
        id: DocumentId,
        stone: &Tombstone,
    ) -> Result<Staging, Error> {
        let (Some(signer), Some(entry)) =
            (stone.verified_signer(), self.store.entry_in(staged, &id)?)
        else {
            // Unverifiable, or about an entry we do not hold: nothing to withdraw here.
            return Ok(Staging::Unchanged);
        };
        if stone.entry != id || !self.may_delete(staged, &entry, &signer)? {
            return Err(Error::Rejected(format!(
                "a tombstone for {id} signed by {signer}, who may not delete it"
            )));
        }
        self.store
            .stage_tombstone(staged, stone, self.clock.tick())?;
        Ok(Staging::Changed(withdrawn(&entry)))
    }

    /// Blocks (or unblocks) a peer, hiding the content of `author` if it vouched for one.
    pub fn set_blocked(
        &mut self,
        peer: &str,
        blocked: bool,
        author: Option<AuthorId>,
    ) -> Result<Written<()>, Error> {
        let batch = self.store.set_blocked(peer, blocked, author)?;
        Ok(Written::new((), batch))
    }

    /// Records a peer's change-log position for a collection.
    pub fn set_peer_seq(
        &mut self,
        peer: &str,
        collection: &DocumentId,
        seq: u64,
    ) -> Result<Written<()>, Error> {
        let batch = self.store.set_peer_seq(peer, collection, seq)?;
        Ok(Written::new((), batch))
    }

    /// Follows (or stops following) a collection; ids never seen are fine.
    pub fn set_followed(&mut self, id: &DocumentId, followed: bool) -> Result<Written<()>, Error> {
        let batch = self.store.set_followed(id, followed)?;
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

/// Builds a new entry's document, signatures and view before the writer: the heavy part of
/// creating one (automerge's text ops, signing, saving), which depends on nothing the writer
/// owns but a tick of the shared clock, so it runs on any thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EntryMaker {
    store: Reader,
    keys: Arc<Keys>,
    actor: ActorId,
    clock: Clock,
}

/// A new entry ready to store ([`Commons::put_made`]).
#[derive(Debug)]
pub struct MadeEntry {
    view: Entry,
    saved: Vec<u8>,
    signatures: Vec<(ChangeHash, Signature)>,
    changed: Option<Changed>,
}

impl EntryMaker {
    pub fn make(&self, new: &NewEntry) -> Result<MadeEntry, Error> {
        let valid = new.validate()?;
        let collection = resolve_collection(&self.store, &valid.collection)?;
        let now = self.clock.tick();
        let name = self.store.setting(NAME_SETTING)?.unwrap_or_default();
        let author = self.keys.author.id();
        let (id, doc) =
            entry::create(&valid, &collection, &author, &name, self.actor.clone(), now)?;
        let signatures = self.keys.author.sign_changes_since(&id, &doc, &[]);
        let view = Entry::read(id, &doc);
        Ok(MadeEntry {
            saved: doc.save(),
            changed: changed_entry(&view, &doc),
            view,
            signatures,
        })
    }
}

/// A document from elsewhere verified against an empty one, and saved: the heavy part of
/// [`Commons::stage_remote`] for a document not held, which a bundle import runs ahead on
/// several threads. Staging still decides whether it is kept.
#[derive(Debug)]
pub struct Verified(Result<Option<Gained>, VerifyError>);

impl Verified {
    pub(crate) fn new(id: DocumentId, kind: DocKind, payload: &Payload) -> Verified {
        Verified(sync::apply_payload(id, kind, None, payload).map(|applied| {
            applied.map(|(doc, signatures)| Gained {
                saved: Some(doc.save()),
                doc,
                signatures,
            })
        }))
    }

    /// Each document given in `docs` verified on as many threads as there are cores, each
    /// taking the next when done with its last; `None` stays `None` (a document not to verify
    /// ahead).
    pub(crate) fn ahead(docs: &[Option<(DocumentId, DocKind, &Payload)>]) -> Vec<Option<Verified>> {
        let next = AtomicUsize::new(0);
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut verified: Vec<Option<Verified>> = docs.iter().map(|_| None).collect();
        std::thread::scope(|scope| {
            let threads: Vec<_> = (0..workers.min(docs.len()))
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(doc) = docs.get(i) else { break done };
                            if let Some((id, kind, payload)) = doc {
                                done.push((i, Verified::new(*id, *kind, payload)));
                            }
                        }
                    })
                })
                .collect();
            for thread in threads {
                for (i, one) in thread.join().expect("a verifying thread panicked") {
                    verified[i] = Some(one);
                }
            }
        });
        verified
    }
}

/// A document that gained changes from a payload.
#[derive(Debug)]
struct Gained {
    doc: Automerge,
    /// The hash and signature of each change it gained.
    signatures: Vec<(ChangeHash, Signature)>,
    /// Its bytes, when saved already.
    saved: Option<Vec<u8>>,
}

/// Whether the peer whose changes turned `held` into `merged` holds all of `merged`: true when
/// none of `held`'s heads is still a head, since then each was an ancestor of a change the
/// peer sent, and a peer holds every ancestor of its changes.
fn sender_holds_all(held: &Automerge, merged: &Automerge) -> bool {
    let heads = merged.get_heads();
    held.get_heads().iter().all(|h| !heads.contains(h))
}

/// What to announce for a withdrawn entry: its id with no heads.
fn withdrawn(entry: &Entry) -> Option<Changed> {
    Some(Changed {
        collection: entry.collection_id()?,
        id: entry.id,
        kind: DocKind::Entry,
        heads: Vec::new(),
        spread: Spread::Announce,
    })
}

/// What to announce for a changed entry: nothing if it must not leave the node.
fn changed_entry(entry: &Entry, doc: &Automerge) -> Option<Changed> {
    if !entry.is_shareable() {
        return None;
    }
    Some(Changed {
        collection: entry.collection_id()?,
        id: entry.id,
        kind: DocKind::Entry,
        heads: heads_bytes(doc),
        spread: Spread::Announce,
    })
}

#[cfg(test)]
pub(crate) mod tests;

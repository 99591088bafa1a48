//! The one thread that writes: it owns the [`Commons`], takes commands from a bounded channel,
//! and group-commits. It applies every command waiting in the channel, flushes the store once,
//! and only then replies, so no write is acknowledged before it is on disk.
//!
//! The writer is supervised: a panic while handling one command (third-party code on foreign
//! bytes: automerge, image decoding) is caught, the store brought back to a consistent state,
//! and that command alone answered with an error; the loop goes on serving.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use minga_protocol::entry::{EntryPatch, NewEntry};
use minga_protocol::wire::Payload;
use minga_protocol::{AuthorId, DocKind, DocumentId, Entry, NewCollection, Tombstone};
use tokio::sync::{mpsc, oneshot};

use crate::bundle::{
    ExportRequest, ExportSummary, ImportError, ImportRequest, ImportSummary, ProgressFn,
};
use crate::commons::{Changed, EntryMaker, MadeEntry, Spread, Verified, Written};
use crate::store::SourceTag;
use crate::{Commons, Error, StoreError};

/// Commands waiting for the event loop; senders wait when it is full.
const COMMAND_QUEUE: usize = 1024;

/// Most commands applied before one flush.
const MAX_GROUP: usize = 256;

type Reply<T> = oneshot::Sender<Result<Written<T>, Error>>;

/// A request to change the commons.
enum Command {
    CreateCollection(NewCollection, Reply<DocumentId>),
    PutEntry(Box<MadeEntry>, Reply<DocumentId>),
    PatchEntry(DocumentId, Box<EntryPatch>, Reply<Entry>),
    DeleteEntry(DocumentId, String, Reply<Tombstone>),
    SetFollowed(DocumentId, bool, Reply<()>),
    SetBlocked(String, bool, Option<AuthorId>, Reply<()>),
    SetPeerSeq(String, DocumentId, u64, Reply<()>),
    ApplyRemote(Box<RemoteWork>, Reply<bool>),
    Export(Box<ExportRequest>, ProgressFn, Reply<ExportSummary>),
    Import(Box<ImportRequest>, ProgressFn, Reply<ImportSummary>),
}

/// A document from a peer: what it sent, verified ahead off the writer if new here.
struct RemoteWork {
    id: DocumentId,
    kind: DocKind,
    payload: Payload,
    spread: Spread,
    from: SourceTag,
    ahead: Option<Verified>,
}

/// A reply that waits for the group's flush.
type Pending = Box<dyn FnOnce(&Result<(), String>) + Send>;

/// Cheap, cloneable access to the event loop.
#[derive(Debug, Clone)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
    /// New entries to build off the writer, on the builder threads.
    builds: mpsc::Sender<Build>,
}

/// A new entry to build, and where its result goes.
type Build = (Box<NewEntry>, oneshot::Sender<Result<MadeEntry, Error>>);

/// What the event loop tells the rest of the node.
#[derive(Debug, Clone, Default)]
pub struct Outlets {
    /// Durable changes of shareable documents, for the network to announce. When the queue is
    /// full an announcement is dropped: periodic reconciliation still carries the change.
    pub changes: Option<mpsc::Sender<Changed>>,
    /// Keep entries of every collection, followed or not (`--mirror`).
    pub mirror: bool,
    /// Told the durable change-log position after every flush, so search follows the store.
    pub indexer: Option<crate::search::indexer::Wake>,
}

/// Starts the event loop on its own thread. It ends, flushing, when every handle is dropped,
/// and gives the commons back.
pub fn spawn(commons: Commons, outlets: Outlets) -> (Handle, std::thread::JoinHandle<Commons>) {
    let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
    let entries = commons.entry_maker();
    let thread = std::thread::Builder::new()
        .name("minga-event-loop".into())
        .spawn(move || run(commons, receiver, outlets))
        .expect("spawning the event loop thread");
    let (builds, build_queue) = mpsc::channel(COMMAND_QUEUE);
    let build_queue = Arc::new(Mutex::new(build_queue));
    for _ in 0..std::thread::available_parallelism().map_or(1, |n| n.get()) {
        let (entries, queue) = (entries.clone(), Arc::clone(&build_queue));
        std::thread::Builder::new()
            .name("minga-entry-builder".into())
            .spawn(move || build(&entries, &queue))
            .expect("spawning an entry builder thread");
    }
    (Handle { commands, builds }, thread)
}

/// Builds new entries until every handle is gone. One builder per core, a fixed set: each
/// thread keeps its own allocator pages, and a pool that grows and rotates its threads (tokio's
/// blocking pool) doubled the node's memory.
fn build(entries: &EntryMaker, queue: &Mutex<mpsc::Receiver<Build>>) {
    loop {
        let next = queue.lock().expect("builder queue lock").blocking_recv();
        let Some((new, reply)) = next else { return };
        let made = catch_unwind(AssertUnwindSafe(|| entries.make(&new)))
            .unwrap_or_else(|_| Err(Error::Internal("building an entry panicked".into())));
        let _ = reply.send(made);
    }
}

impl Handle {
    pub async fn create_collection(&self, new: NewCollection) -> Result<DocumentId, Error> {
        self.request(|reply| Command::CreateCollection(new, reply))
            .await
            .map(|w| w.value)
    }

    pub async fn create_entry(&self, new: NewEntry) -> Result<DocumentId, Error> {
        self.create_entry_acked(new).await.map(|w| w.value)
    }

    /// [`Self::create_entry`], with the store batch that holds the entry.
    pub async fn create_entry_acked(&self, new: NewEntry) -> Result<Written<DocumentId>, Error> {
        // Built on a builder thread, so the writer's heaviest part uses the other cores.
        let (reply, made) = oneshot::channel();
        self.builds
            .send((Box::new(new), reply))
            .await
            .map_err(|_| Error::ShuttingDown)?;
        let made = made.await.map_err(|_| Error::ShuttingDown)??;
        self.request(|reply| Command::PutEntry(Box::new(made), reply))
            .await
    }

    pub async fn patch_entry(&self, id: DocumentId, patch: EntryPatch) -> Result<Entry, Error> {
        self.request(|reply| Command::PatchEntry(id, Box::new(patch), reply))
            .await
            .map(|w| w.value)
    }

    pub async fn delete_entry(&self, id: DocumentId, reason: String) -> Result<Tombstone, Error> {
        self.request(|reply| Command::DeleteEntry(id, reason, reply))
            .await
            .map(|w| w.value)
    }

    pub async fn set_followed(&self, id: DocumentId, followed: bool) -> Result<(), Error> {
        self.request(|reply| Command::SetFollowed(id, followed, reply))
            .await
            .map(|w| w.value)
    }

    /// Blocks (or unblocks) a peer; `author`, the key it vouched for, has its content hidden.
    pub async fn set_blocked(
        &self,
        peer: String,
        blocked: bool,
        author: Option<AuthorId>,
    ) -> Result<(), Error> {
        self.request(|reply| Command::SetBlocked(peer, blocked, author, reply))
            .await
            .map(|w| w.value)
    }

    /// Records a peer's change-log position for a collection.
    pub async fn set_peer_seq(
        &self,
        peer: String,
        collection: DocumentId,
        seq: u64,
    ) -> Result<(), Error> {
        self.request(|reply| Command::SetPeerSeq(peer, collection, seq, reply))
            .await
            .map(|w| w.value)
    }

    /// Verifies and applies the payload the peer `from` sent for one document; answers whether
    /// it changed.
    pub async fn apply_remote(
        &self,
        id: DocumentId,
        kind: DocKind,
        payload: Payload,
        spread: Spread,
        from: SourceTag,
        ahead: Option<Verified>,
    ) -> Result<bool, Error> {
        let work = Box::new(RemoteWork {
            id,
            kind,
            payload,
            spread,
            from,
            ahead,
        });
        self.request(|reply| Command::ApplyRemote(work, reply))
            .await
            .map(|w| w.value)
    }

    /// Writes a bundle. It runs on the writer, so it is a consistent snapshot (writes wait).
    pub async fn export_bundle(
        &self,
        request: ExportRequest,
        progress: ProgressFn,
    ) -> Result<ExportSummary, Error> {
        self.request(|reply| Command::Export(Box::new(request), progress, reply))
            .await
            .map(|w| w.value)
    }

    /// Verifies and imports a bundle in one batch; its documents are announced once durable.
    pub async fn import_bundle(
        &self,
        request: ImportRequest,
        progress: ProgressFn,
    ) -> Result<ImportSummary, Error> {
        self.request(|reply| Command::Import(Box::new(request), progress, reply))
            .await
            .map(|w| w.value)
    }

    async fn request<T>(
        &self,
        command: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<Written<T>, Error> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| Error::ShuttingDown)?;
        answer.await.map_err(|_| Error::ShuttingDown)?
    }
}

fn run(mut commons: Commons, mut commands: mpsc::Receiver<Command>, outlets: Outlets) -> Commons {
    let mut pending: Vec<Pending> = Vec::with_capacity(MAX_GROUP);
    let mut changed: Vec<Changed> = Vec::new();
    while let Some(first) = commands.blocking_recv() {
        let mut next = Some(first);
        while let Some(command) = next.take() {
            let (reply, change) = execute(&mut commons, command, outlets.mirror);
            pending.push(reply);
            changed.extend(change);
            if pending.len() < MAX_GROUP {
                next = commands.try_recv().ok();
            }
        }
        let flushed = commons.flush().map_err(|e| {
            tracing::error!("flushing the store failed: {e}");
            e.to_string()
        });
        for reply in pending.drain(..) {
            reply(&flushed);
        }
        if let (Ok(()), Some(indexer)) = (&flushed, &outlets.indexer) {
            // On the writer, right after its flush, the logged position is durable.
            match commons.store().logged_seq() {
                Ok(durable) => indexer.durable(durable),
                Err(e) => tracing::error!("reading the change-log position: {e}"),
            }
        }
        if let (Ok(()), Some(outlet)) = (&flushed, &outlets.changes) {
            for change in changed.drain(..) {
                if outlet.try_send(change).is_err() {
                    tracing::debug!("announcement queue full; reconciliation will carry it");
                }
            }
        }
        changed.clear();
    }
    if let Err(e) = commons.flush() {
        tracing::error!("final flush failed: {e}");
    }
    commons
}

fn execute(commons: &mut Commons, command: Command, mirror: bool) -> (Pending, Vec<Changed>) {
    let internal = Error::Internal;
    match command {
        Command::CreateCollection(new, reply) => after_flush(
            supervised(commons, internal, |c| c.create_collection(&new)),
            reply,
        ),
        Command::PutEntry(made, reply) => {
            after_flush(supervised(commons, internal, |c| c.put_made(*made)), reply)
        }
        Command::PatchEntry(id, patch, reply) => after_flush(
            supervised(commons, internal, |c| c.patch_entry(&id, &patch)),
            reply,
        ),
        Command::DeleteEntry(id, reason, reply) => after_flush(
            supervised(commons, internal, |c| c.delete_entry(&id, &reason)),
            reply,
        ),
        Command::SetFollowed(id, followed, reply) => after_flush(
            supervised(commons, internal, |c| c.set_followed(&id, followed)),
            reply,
        ),
        Command::SetBlocked(peer, blocked, author, reply) => after_flush(
            supervised(commons, internal, |c| c.set_blocked(&peer, blocked, author)),
            reply,
        ),
        Command::SetPeerSeq(peer, collection, seq, reply) => after_flush(
            supervised(commons, internal, |c| {
                c.set_peer_seq(&peer, &collection, seq)
            }),
            reply,
        ),
        Command::ApplyRemote(work, reply) => {
            let RemoteWork {
                id,
                kind,
                payload,
                spread,
                from,
                ahead,
            } = *work;
            // A document that panics is refused like any bad one: its peer is dropped.
            let refused = |message| Error::Rejected(format!("handling it panicked: {message}"));
            let mut result = supervised(commons, refused, |c| {
                c.apply_remote(id, kind, &payload, mirror, from, ahead)
            });
            if let Ok(written) = &mut result {
                written.changed.iter_mut().for_each(|c| c.spread = spread);
            }
            after_flush(result, reply)
        }
        Command::Export(request, mut progress, reply) => {
            let exported = supervised(commons, internal, |c| {
                c.export_bundle(&request, &mut progress)
                    .map(|summary| Written::new(summary, c.store().applied_writes()))
            });
            after_flush(exported, reply)
        }
        Command::Import(request, mut progress, reply) => {
            let refused = |message| Error::Import(ImportError::Panicked(message));
            let imported = supervised(commons, refused, |c| {
                c.import_bundle(&request, &mut progress)
            });
            after_flush(imported, reply)
        }
    }
}

/// Runs one command's `work`, catching a panic: the store is then brought back to a
/// consistent state (its batches are atomic; an interrupted import's journal is dropped) and
/// the command answered with `panicked(message)`.
fn supervised<T>(
    commons: &mut Commons,
    panicked: impl FnOnce(String) -> Error,
    work: impl FnOnce(&mut Commons) -> Result<Written<T>, Error>,
) -> Result<Written<T>, Error> {
    match catch_unwind(AssertUnwindSafe(|| work(&mut *commons))) {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            tracing::error!("the writer caught a panic and goes on: {message}");
            if let Err(e) = commons.recover() {
                tracing::error!("recovering the store after a panic: {e}");
            }
            Err(panicked(message))
        }
    }
}

/// Holds a result until the group's flush: a failed flush turns every success into an error.
fn after_flush<T: Send + 'static>(
    result: Result<Written<T>, Error>,
    reply: Reply<T>,
) -> (Pending, Vec<Changed>) {
    let changed = result
        .as_ref()
        .map(|w| w.changed.clone())
        .unwrap_or_default();
    let pending: Pending = Box::new(move |flushed: &Result<(), String>| {
        let answer = match (result, flushed) {
            (Ok(_), Err(e)) => Err(Error::Store(StoreError::Io(std::io::Error::other(
                e.clone(),
            )))),
            (result, _) => result,
        };
        // The requester may have gone away (client disconnected); the write stands.
        let _ = reply.send(answer);
    });
    (pending, changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataDir;

    /// Regression guard for durable acknowledgements: every reply must come after a flush that
    /// covered the batch holding the write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_acknowledgement_precedes_its_flush() {
        let temp = tempfile::tempdir().unwrap();
        let mut commons = Commons::open(&DataDir::new(temp.path()), 8 << 20).unwrap();
        let new = NewCollection {
            name: "pruebas".into(),
            title: None,
            description: None,
            license: None,
        };
        commons.create_collection(&new).unwrap();
        let store = commons.store().clone();
        let (handle, thread) = spawn(commons, Outlets::default());
        let mut tasks = Vec::new();
        for i in 0..200 {
            let handle = handle.clone();
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let new: NewEntry = serde_json::from_value(serde_json::json!({
                    "collection": "pruebas", "kind": "practice", "title": format!("entrada {i}"),
                    "body": "texto", "license": "CC0-1.0"
                }))
                .unwrap();
                let written = handle.create_entry_acked(new).await.unwrap();
                assert!(
                    store.durable_writes() >= written.batch,
                    "batch {} acknowledged with only {} durable",
                    written.batch,
                    store.durable_writes()
                );
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        drop(handle);
        let commons = thread.join().unwrap();
        assert_eq!(commons.store().entry_count().unwrap(), 200);
    }

    /// A panic on a foreign document used to end the writer's thread, and every later command
    /// got `ShuttingDown` (503) until a restart.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_document_that_panics_is_refused_and_the_writer_goes_on() {
        let temp = tempfile::tempdir().unwrap();
        let commons = Commons::open(&DataDir::new(temp.path()), 8 << 20).unwrap();
        let store = commons.store().clone();
        let (handle, thread) = spawn(commons, Outlets::default());
        let panicking = DocumentId::from_bytes(crate::commons::tests::PANICKING_DOCUMENT);
        for _ in 0..2 {
            let applied = handle
                .apply_remote(
                    panicking,
                    DocKind::Entry,
                    Payload::Changes(Vec::new()),
                    Spread::Quietly,
                    crate::store::source_tag("peer"),
                    None,
                )
                .await;
            let error = applied.expect_err("a document that panics is refused");
            assert!(
                matches!(error, Error::Rejected(_)),
                "refused as a bad document, so its peer is dropped: {error:?}"
            );
        }
        let new = NewCollection {
            name: "sigue".into(),
            title: None,
            description: None,
            license: None,
        };
        let id = handle
            .create_collection(new)
            .await
            .expect("the writer still serves");
        assert!(store.collection(&id).unwrap().is_some());
        assert!(
            store.document(&panicking).unwrap().is_none(),
            "nothing of it stored"
        );
        drop(handle);
        thread.join().expect("the writer's thread ends normally");
    }
}

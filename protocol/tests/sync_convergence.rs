//! Proves, sans IO, that reconciliation plus the sync core's offers, answers and follow-ups (the
//! exchange `node/src/network/exchange.rs` runs) converge: whatever the edits and however a lossy
//! network drops, duplicates or reorders messages, a few lossless rounds leave every replica with
//! the same signed history. Run over automerge documents and over the simulator's model
//! documents, since the core is generic over both.

use std::collections::{BTreeMap, BTreeSet};

use minga_protocol::automerge::{ActorId, Automerge};
use minga_protocol::entry::{self, EntryPatch};
use minga_protocol::fixtures::{self, NOW, collection_id};
use minga_protocol::model::ModelDoc;
use minga_protocol::reconcile::{self, Item, ItemSet};
use minga_protocol::sync::{self, Held, SignedDoc, SyncDocument};
use minga_protocol::wire::{self, MAX_MESSAGE_BYTES, Offer, Payload, Request, Response, WireKind};
use minga_protocol::{AuthorId, AuthorKey, DocKind, DocumentId, Entry, VerifyError};
use proptest::prelude::*;

/// Lossless rounds allowed after the random phase; one should be enough.
const MAX_ROUNDS: usize = 6;

/// Follow-ups the node sends after the first sync request (`Purpose::Sync(round)`, round < 2).
const MAX_SYNC_ROUND: u8 = 2;

const WORDS: [&str; 8] = [
    "roya", "sombra", "café", "milpa", "agua", "semilla", "tierra", "maíz",
];

// ---------------------------------------------------------------------------------------------
// Generated histories

#[derive(Debug, Clone)]
struct Patch {
    title: Option<String>,
    body: Option<String>,
    tags: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy)]
enum Fate {
    Deliver,
    Drop,
    /// Delivered now, and a copy stays in flight.
    Duplicate,
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        replica: usize,
        title: String,
        body: String,
        tags: Vec<String>,
    },
    Edit {
        replica: usize,
        entry: usize,
        patch: Patch,
    },
    /// `from` starts reconciling the collection with `to`.
    Reconcile { from: usize, to: usize },
    /// The message at `pick` (modulo what is in flight) meets its fate: any message may go next,
    /// so messages are reordered.
    Deliver { pick: usize, fate: Fate },
}

fn words(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(WORDS.to_vec()), 1..=max)
        .prop_map(|w| w.join(" "))
}

/// Short bodies, and long ones so that automerge compresses some changes.
fn body() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => words(6),
        1 => words(80),
        1 => Just(String::new()),
    ]
}

fn tags() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(proptest::sample::select(WORDS.to_vec()), 0..4)
        .prop_map(|t| t.into_iter().map(String::from).collect())
}

fn patch() -> impl Strategy<Value = Patch> {
    (
        proptest::option::of(words(3)),
        proptest::option::of(body()),
        proptest::option::of(tags()),
    )
        .prop_map(|(title, body, tags)| Patch { title, body, tags })
}

fn create() -> impl Strategy<Value = Op> {
    (any::<usize>(), words(3), body(), tags()).prop_map(|(replica, title, body, tags)| Op::Create {
        replica,
        title,
        body,
        tags,
    })
}

fn edit() -> impl Strategy<Value = Op> {
    (any::<usize>(), any::<usize>(), patch()).prop_map(|(replica, entry, patch)| Op::Edit {
        replica,
        entry,
        patch,
    })
}

fn op() -> impl Strategy<Value = Op> {
    let fate = prop_oneof![
        6 => Just(Fate::Deliver),
        1 => Just(Fate::Drop),
        1 => Just(Fate::Duplicate),
    ];
    prop_oneof![
        1 => create(),
        3 => edit(),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(from, to)| Op::Reconcile { from, to }),
        8 => (any::<usize>(), fate).prop_map(|(pick, fate)| Op::Deliver { pick, fate }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Documents

/// A document kind the sync core runs over, with the edits a replica makes to it.
trait Doc: SyncDocument + Clone {
    fn create(
        replica: &Replica,
        nonce: u64,
        title: &str,
        body: &str,
        tags: &[String],
    ) -> (DocumentId, Self);
    /// `None` when the edit is refused or changes nothing.
    fn edit(&self, id: DocumentId, replica: &Replica, now: i64, patch: &Patch) -> Option<Self>;
    /// Hashes of every change held.
    fn change_hashes(&self) -> BTreeSet<[u8; 32]>;
    /// Panics unless every change carries its author's valid signature.
    fn check_signed(&self, id: DocumentId);
    /// Asserts that two replicas' copies are the same document.
    fn assert_same(&self, other: &Self, id: DocumentId) -> Result<(), TestCaseError>;
}

impl Doc for SignedDoc {
    fn create(
        replica: &Replica,
        nonce: u64,
        title: &str,
        body: &str,
        tags: &[String],
    ) -> (DocumentId, Self) {
        let new = fixtures::new_entry(&collection_id(), title, body, tags);
        let by = fixtures::Maker {
            key: &replica.key,
            name: "Ana",
            actor: replica.actor.clone(),
            now: NOW + i64::try_from(nonce).expect("small"),
        };
        fixtures::signed_genesis(&new, &collection_id(), by)
    }

    fn edit(&self, id: DocumentId, replica: &Replica, now: i64, patch: &Patch) -> Option<Self> {
        let mut doc = Automerge::load(&self.doc.save())
            .expect("a held document loads")
            .with_actor(replica.actor.clone());
        let before = doc.get_heads();
        let patch = EntryPatch {
            title: patch.title.clone(),
            body: patch.body.clone(),
            tags: patch.tags.clone(),
            ..EntryPatch::default()
        };
        // A merge of concurrent edits may leave a state a further patch cannot fix (say, an
        // empty title); the node refuses such a patch and keeps the document, and so do we.
        let Ok(Some(_)) = entry::apply_patch(&mut doc, id, &patch, &replica.key.id(), now) else {
            return None;
        };
        let mut signatures = self.signatures.clone();
        signatures.extend(replica.key.sign_changes_since(&id, &doc, &before));
        Some(SignedDoc { doc, signatures })
    }

    fn change_hashes(&self) -> BTreeSet<[u8; 32]> {
        self.doc
            .get_changes_meta(&[])
            .iter()
            .map(|m| m.hash.0)
            .collect()
    }

    fn check_signed(&self, id: DocumentId) {
        for meta in self.doc.get_changes_meta(&[]) {
            let signature = self
                .signatures
                .get(&meta.hash)
                .unwrap_or_else(|| panic!("{id}: change {} is unsigned", meta.hash));
            let author = AuthorId::of_actor(&meta.actor).expect("a Minga actor");
            assert!(
                author.verify_change(&id, &meta.hash, signature),
                "{id}: change {} has a bad signature",
                meta.hash
            );
        }
    }

    fn assert_same(&self, other: &Self, id: DocumentId) -> Result<(), TestCaseError> {
        prop_assert_eq!(self.heads(), other.heads());
        prop_assert_eq!(Entry::read(id, &self.doc), Entry::read(id, &other.doc));
        prop_assert_eq!(&self.signatures, &other.signatures);
        Ok(())
    }
}

impl Doc for ModelDoc {
    fn create(
        replica: &Replica,
        nonce: u64,
        title: &str,
        body: &str,
        _tags: &[String],
    ) -> (DocumentId, Self) {
        ModelDoc::create(&replica.key, nonce, size(title) + size(body))
    }

    fn edit(&self, id: DocumentId, replica: &Replica, _now: i64, patch: &Patch) -> Option<Self> {
        let mut doc = self.clone();
        let bytes = patch.title.as_deref().map_or(0, size) + patch.body.as_deref().map_or(0, size);
        ModelDoc::edit(&mut doc, id, &replica.key, bytes);
        Some(doc)
    }

    fn change_hashes(&self) -> BTreeSet<[u8; 32]> {
        self.changes().map(|(hash, _)| hash.0).collect()
    }

    fn check_signed(&self, id: DocumentId) {
        // Re-applying the whole document runs every check a received one passes.
        let whole = self.payload_for(&[]);
        let again = ModelDoc::apply(id, DocKind::Entry, None, &whole);
        assert!(matches!(again, Ok(Some(_))), "{id}: {again:?}");
    }

    fn assert_same(&self, other: &Self, _id: DocumentId) -> Result<(), TestCaseError> {
        prop_assert_eq!(self.heads(), other.heads());
        prop_assert_eq!(self.change_hashes(), other.change_hashes());
        Ok(())
    }
}

fn size(text: &str) -> u32 {
    u32::try_from(text.len()).expect("short text")
}

// ---------------------------------------------------------------------------------------------
// Replicas

struct Replica {
    key: AuthorKey,
    actor: ActorId,
}

impl Replica {
    fn new(index: usize) -> Self {
        let byte = u8::try_from(index).expect("few replicas") + 1;
        let key = AuthorKey::from_bytes(&[byte; 32]);
        let actor = key.actor([byte; 16]);
        Self { key, actor }
    }
}

/// Everything the simulation holds, and every change ever made, by document.
struct World<D> {
    replicas: Vec<Replica>,
    docs: Vec<BTreeMap<[u8; 16], D>>,
    made: BTreeMap<[u8; 16], BTreeSet<[u8; 32]>>,
    /// Entries in order of creation, so edits can name them by index.
    order: Vec<[u8; 16]>,
    now: i64,
    /// Messages are neither lost nor reordered any more: every payload must apply.
    lossless: bool,
}

impl<D: Doc> World<D> {
    fn new(replicas: usize) -> Self {
        Self {
            replicas: (0..replicas).map(Replica::new).collect(),
            docs: (0..replicas).map(|_| BTreeMap::new()).collect(),
            made: BTreeMap::new(),
            order: Vec::new(),
            now: NOW,
            lossless: false,
        }
    }

    fn tick(&mut self) -> i64 {
        self.now += 1;
        self.now
    }

    /// The reconciled set of the collection.
    fn items(&self, replica: usize) -> ItemSet {
        ItemSet::new(
            self.docs[replica]
                .iter()
                .map(|(id, held)| Item {
                    id: *id,
                    digest: reconcile::heads_digest(&held.heads()),
                })
                .collect(),
        )
    }

    /// Keeps a document, checking that every one of its changes carries a valid signature.
    fn hold(&mut self, replica: usize, id: [u8; 16], held: D) {
        held.check_signed(DocumentId::from_bytes(id));
        self.docs[replica].insert(id, held);
    }

    /// What `replica` may tell a peer of `id`.
    fn held(&self, replica: usize, id: &[u8; 16]) -> Held<D> {
        match self.docs[replica].get(id) {
            Some(doc) => Held::Doc(doc.clone()),
            None => Held::Absent,
        }
    }

    fn create(&mut self, replica: usize, title: &str, body: &str, tags: &[String]) {
        let nonce = u64::try_from(self.tick() - NOW).expect("time moves on");
        let (id, doc) = D::create(&self.replicas[replica], nonce, title, body, tags);
        self.made
            .entry(*id.as_bytes())
            .or_default()
            .extend(doc.change_hashes());
        self.hold(replica, *id.as_bytes(), doc);
        self.order.push(*id.as_bytes());
    }

    fn edit(&mut self, replica: usize, entry: usize, patch: &Patch) {
        let now = self.tick();
        let held_ids: Vec<[u8; 16]> = self
            .order
            .iter()
            .filter(|id| self.docs[replica].contains_key(*id))
            .copied()
            .collect();
        if held_ids.is_empty() {
            return;
        }
        let id = held_ids[entry % held_ids.len()];
        let document = DocumentId::from_bytes(id);
        let Some(doc) = self.docs[replica][&id].edit(document, &self.replicas[replica], now, patch)
        else {
            return;
        };
        self.made.entry(id).or_default().extend(doc.change_hashes());
        self.hold(replica, id, doc);
    }

    /// Verifies and applies what a peer sent. Honest payloads are never refused; a `Changes`
    /// payload may lack dependencies that travelled in a lost message.
    fn apply(&mut self, replica: usize, offer: &Offer) {
        assert_eq!(offer.kind, WireKind::Entry, "only entries are synced here");
        let held = self.docs[replica].get(&offer.id);
        let outcome = D::apply(
            DocumentId::from_bytes(offer.id),
            DocKind::from(offer.kind),
            held,
            &offer.payload,
        );
        match outcome {
            Ok(None) => {}
            Ok(Some(doc)) => self.hold(replica, offer.id, doc),
            // Allowed while messages are lost: later exchanges send the lost changes again.
            Err(VerifyError::MissingDependencies(_))
                if !self.lossless && matches!(offer.payload, Payload::Changes(_)) => {}
            Err(e) => panic!("an honest payload was refused: {e}"),
        }
    }

    // -----------------------------------------------------------------------------------------
    // The exchange of `node/src/network/exchange.rs`, one message at a time.

    /// Offers for the documents reconciliation found differing.
    fn offers(&self, replica: usize, step: &reconcile::Step) -> Vec<Offer> {
        step.differing
            .iter()
            .map(|id| {
                let they_lack = step.they_lack.contains(id);
                sync::offer(*id, WireKind::Entry, &self.held(replica, id), they_lack)
            })
            .collect()
    }

    /// Applies an offer and answers with our heads and what the offerer lacks.
    fn answer(&mut self, replica: usize, offer: Offer) -> Offer {
        self.apply(replica, &offer);
        sync::answer(&offer, &self.held(replica, &offer.id), false)
    }

    /// Applies answers; returns the last offers for what the peer still lacks.
    fn on_answers(&mut self, replica: usize, answers: Vec<Offer>) -> Vec<Offer> {
        answers
            .into_iter()
            .filter_map(|answer| {
                self.apply(replica, &answer);
                sync::follow_up(&answer, &self.held(replica, &answer.id))
            })
            .collect()
    }

    /// Handles one message; returns the messages it causes.
    fn deliver(&mut self, message: Message) -> Vec<Message> {
        let Message {
            from,
            to,
            purpose,
            body,
        } = message;
        let mut out = Vec::new();
        match body {
            Body::Request(bytes) => {
                let request: Request =
                    wire::decode(&bytes, MAX_MESSAGE_BYTES).expect("an honest request decodes");
                let response = match request {
                    Request::Reconcile { collection, parts } => {
                        assert_eq!(collection, *collection_id().as_bytes());
                        let items = self.items(to);
                        let step = reconcile::respond(&items, &parts).expect("honest ranges");
                        let offers = self.offers(to, &step);
                        if !offers.is_empty() {
                            out.push(Message::request(to, from, Purpose::Sync(0), offers));
                        }
                        Response::Reconcile { parts: step.reply }
                    }
                    Request::Sync { offers } => Response::Sync {
                        answers: offers.into_iter().map(|o| self.answer(to, o)).collect(),
                    },
                    Request::Operator | Request::Since { .. } => {
                        panic!("the simulation reconciles in full and never asks who runs a node")
                    }
                };
                out.insert(0, Message::response(to, from, purpose, &response));
            }
            Body::Response(bytes) => {
                let response: Response =
                    wire::decode(&bytes, MAX_MESSAGE_BYTES).expect("an honest response decodes");
                match (purpose, response) {
                    (Purpose::Reconcile, Response::Reconcile { parts }) => {
                        if !parts.is_empty() {
                            let items = self.items(to);
                            let step = reconcile::respond(&items, &parts).expect("honest ranges");
                            let offers = self.offers(to, &step);
                            if !offers.is_empty() {
                                out.push(Message::request(to, from, Purpose::Sync(0), offers));
                            }
                            if !step.reply.is_empty() {
                                let request = Request::Reconcile {
                                    collection: *collection_id().as_bytes(),
                                    parts: step.reply,
                                };
                                out.push(Message::encode(to, from, Purpose::Reconcile, &request));
                            }
                        }
                    }
                    (Purpose::Sync(round), Response::Sync { answers }) => {
                        let follow_up = self.on_answers(to, answers);
                        if !follow_up.is_empty() && round < MAX_SYNC_ROUND {
                            out.push(Message::request(
                                to,
                                from,
                                Purpose::Sync(round + 1),
                                follow_up,
                            ));
                        }
                    }
                    (purpose, response) => {
                        panic!("{response:?} does not answer a {purpose:?} request")
                    }
                }
            }
        }
        out
    }

    fn reconcile(&self, from: usize, to: usize) -> Message {
        let request = Request::Reconcile {
            collection: *collection_id().as_bytes(),
            parts: reconcile::initiate(&self.items(from)),
        };
        Message::encode(from, to, Purpose::Reconcile, &request)
    }

    /// Whether every replica holds every change ever made, and so the same documents.
    fn converged(&self) -> bool {
        self.docs.iter().all(|docs| {
            docs.len() == self.made.len()
                && self.made.iter().all(|(id, made)| {
                    docs.get(id)
                        .is_some_and(|held| held.change_hashes() == *made)
                })
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The network

/// What a request was for, kept by its sender like the node's `Purpose` (not on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Reconcile,
    Sync(u8),
}

#[derive(Debug, Clone)]
enum Body {
    Request(Vec<u8>),
    Response(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Message {
    from: usize,
    to: usize,
    purpose: Purpose,
    body: Body,
}

impl Message {
    fn encode(from: usize, to: usize, purpose: Purpose, request: &Request) -> Self {
        Self {
            from,
            to,
            purpose,
            body: Body::Request(wire::encode(request)),
        }
    }

    fn request(from: usize, to: usize, purpose: Purpose, offers: Vec<Offer>) -> Self {
        Self::encode(from, to, purpose, &Request::Sync { offers })
    }

    fn response(from: usize, to: usize, purpose: Purpose, response: &Response) -> Self {
        Self {
            from,
            to,
            purpose,
            body: Body::Response(wire::encode(response)),
        }
    }
}

/// Runs one lossless round: every pair reconciles and syncs, messages delivered in order.
fn lossless_round<D: Doc>(world: &mut World<D>, queue: &mut Vec<Message>) {
    let n = world.replicas.len();
    for a in 0..n {
        for b in a + 1..n {
            queue.push(world.reconcile(a, b));
            deliver_all(world, queue);
        }
    }
}

fn deliver_all<D: Doc>(world: &mut World<D>, queue: &mut Vec<Message>) {
    let mut sent = 0;
    while !queue.is_empty() {
        let message = queue.remove(0);
        queue.extend(world.deliver(message));
        sent += 1;
        assert!(sent < 10_000, "the exchange does not terminate");
    }
}

fn check<D: Doc>(
    replicas: usize,
    creates: Vec<Op>,
    ops: Vec<Op>,
    finale: Vec<Op>,
) -> Result<(), TestCaseError> {
    let mut world = World::<D>::new(replicas);
    let mut queue: Vec<Message> = Vec::new();
    for op in creates.iter().chain(&ops) {
        match op {
            Op::Create {
                replica,
                title,
                body,
                tags,
            } => world.create(replica % replicas, title, body, tags),
            Op::Edit {
                replica,
                entry,
                patch,
            } => world.edit(replica % replicas, *entry, patch),
            Op::Reconcile { from, to } => {
                let (from, to) = (from % replicas, to % replicas);
                if from != to {
                    queue.push(world.reconcile(from, to));
                }
            }
            Op::Deliver { pick, fate } => {
                if queue.is_empty() {
                    continue;
                }
                let message = queue.remove(pick % queue.len());
                match fate {
                    Fate::Drop => {}
                    Fate::Deliver => queue.extend(world.deliver(message)),
                    Fate::Duplicate => {
                        queue.push(message.clone());
                        queue.extend(world.deliver(message));
                    }
                }
            }
        }
    }
    // Whatever is still in flight arrives, late, before the lossless rounds.
    deliver_all(&mut world, &mut queue);
    // Concurrent edits nobody has seen yet, so the lossless rounds have work in both directions.
    for op in &finale {
        if let Op::Edit {
            replica,
            entry,
            patch,
        } = op
        {
            world.edit(replica % replicas, *entry, patch);
        }
    }
    world.lossless = true;

    let mut rounds = 0;
    while !world.converged() {
        prop_assert!(
            rounds < MAX_ROUNDS,
            "not converged after {MAX_ROUNDS} lossless rounds"
        );
        lossless_round(&mut world, &mut queue);
        rounds += 1;
    }
    // The exchange brings a pair level in one go, so one round of every pair is enough.
    prop_assert!(rounds <= 1, "converging took {rounds} lossless rounds");

    for (id, held) in &world.docs[0] {
        for other in &world.docs[1..] {
            held.assert_same(&other[id], DocumentId::from_bytes(*id))?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn replicas_converge_over_a_lossy_network(
        replicas in 2usize..=3,
        creates in proptest::collection::vec(create(), 1..20),
        ops in proptest::collection::vec(op(), 0..60),
        finale in proptest::collection::vec(edit(), 0..8),
    ) {
        check::<SignedDoc>(replicas, creates, ops, finale)?;
    }

    #[test]
    fn model_replicas_converge_over_a_lossy_network(
        replicas in 2usize..=3,
        creates in proptest::collection::vec(create(), 1..20),
        ops in proptest::collection::vec(op(), 0..60),
        finale in proptest::collection::vec(edit(), 0..8),
    ) {
        check::<ModelDoc>(replicas, creates, ops, finale)?;
    }
}

//! The documents a simulated node holds: the sync core's [`SyncDocument`] plus what the
//! simulator needs around it (making updates, listing changes, counting what a payload carries,
//! and forging invalid payloads for hostile nodes), for real automerge entries and for the
//! lightweight `ModelDoc`.

use minga_protocol::automerge::{ActorId, Change};
use minga_protocol::entry::{self, EntryPatch, NewEntry};
use minga_protocol::model::{ModelChange, ModelDoc};
use minga_protocol::sync::{SignedDoc, SyncDocument};
use minga_protocol::wire::{self, Payload, SignedBytes};
use minga_protocol::{AuthorKey, DocumentId};

use crate::rng::SimRng;

/// The collection every simulated entry belongs to.
pub fn collection_id() -> DocumentId {
    DocumentId::from_bytes([7; DocumentId::LEN])
}

/// Who makes a change: an author key and the actor nonce of this node's run.
#[derive(Debug)]
pub struct Author {
    pub key: AuthorKey,
    pub nonce: [u8; 16],
}

impl Author {
    /// The author of node `node` in the run seeded `seed`: derived, never stored per node.
    pub fn of_node(seed: u64, node: u32) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key("minga simulation author 1");
        hasher.update(&seed.to_le_bytes());
        hasher.update(&node.to_le_bytes());
        let bytes = *hasher.finalize().as_bytes();
        let mut nonce = [0u8; 16];
        nonce.copy_from_slice(&bytes[16..]);
        Self {
            key: AuthorKey::from_bytes(&bytes),
            nonce,
        }
    }
}

/// The kinds of invalid bytes a hostile node sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attack {
    BadSignature,
    ForeignActor,
    TransplantedGenesis,
    Equivocation,
    Garbage,
}

impl Attack {
    pub fn name(self) -> &'static str {
        match self {
            Attack::BadSignature => "bad signature",
            Attack::ForeignActor => "foreign actor",
            Attack::TransplantedGenesis => "transplanted genesis",
            Attack::Equivocation => "equivocation",
            Attack::Garbage => "garbage",
        }
    }
}

/// A document kind the simulator runs.
pub trait SimDoc: SyncDocument + Clone + std::fmt::Debug + 'static {
    const NAME: &'static str;

    /// A new entry by `author` with about `size` bytes of content; `nonce` keeps ids distinct.
    fn create(author: &Author, nonce: u64, size: u64, rng: &mut SimRng) -> (DocumentId, Self);

    /// An edit of about `size` bytes by `author` on top of this document.
    fn edit(&self, id: DocumentId, author: &Author, size: u64, rng: &mut SimRng) -> Self;

    /// Every change held: its hash and its size in bytes.
    fn changes(&self) -> Vec<([u8; 32], u64)>;

    /// The hashes of every change held (cheaper than [`SimDoc::changes`] for automerge, which
    /// encodes a change to know its size).
    fn change_hashes(&self) -> Vec<[u8; 32]>;

    /// The hashes of the changes a payload carries, and the bytes it stands for beyond its
    /// encoding (a model change's `size`; nothing for real changes, whose bytes are encoded).
    fn carried(payload: &Payload) -> (Vec<[u8; 32]>, u64);

    /// Invalid payloads a hostile `author` builds against document `id` (held as `self`).
    fn forgeries(
        &self,
        id: DocumentId,
        author: &Author,
        rng: &mut SimRng,
    ) -> Vec<(Attack, Payload)>;
}

/// Random words, `size` bytes or a little more.
fn text(rng: &mut SimRng, size: u64) -> String {
    const WORDS: [&str; 12] = [
        "roya", "sombra", "café", "milpa", "agua", "semilla", "tierra", "maíz", "quinua", "papa",
        "chakra", "minga",
    ];
    let mut out = String::with_capacity(size as usize + 8);
    while (out.len() as u64) < size {
        out.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
        out.push(if rng.chance(0.1) { '\n' } else { ' ' });
    }
    out
}

/// Random bytes that are not a change.
fn garbage(rng: &mut SimRng) -> Payload {
    let len = rng.between(8, 200) as usize;
    let change = (0..len).map(|_| rng.word() as u8).collect();
    Payload::Changes(vec![SignedBytes {
        change,
        signature: rng.bytes::<64>().to_vec(),
    }])
}

fn signed(change: &Change, key: &AuthorKey, id: &DocumentId) -> SignedBytes {
    SignedBytes {
        change: change.raw_bytes().to_vec(),
        signature: key.sign_change(id, &change.hash()).0.to_vec(),
    }
}

/// `held` edited by `actor` with a new body: the change it made.
fn patched(
    held: &SignedDoc,
    id: DocumentId,
    actor: ActorId,
    key: &AuthorKey,
    body: String,
) -> Change {
    let mut doc = held.doc.fork().with_actor(actor);
    let before = doc.get_heads();
    let patch = EntryPatch {
        body: Some(body),
        ..EntryPatch::default()
    };
    entry::apply_patch(&mut doc, id, &patch, &key.id(), 0)
        .expect("a body edit is valid")
        .expect("the body changed");
    doc.get_changes(&before).pop().expect("one change").clone()
}

fn body(held: &SignedDoc, id: DocumentId) -> String {
    minga_protocol::Entry::read(id, &held.doc).body
}

impl SimDoc for SignedDoc {
    const NAME: &'static str = "automerge";

    fn create(author: &Author, nonce: u64, size: u64, rng: &mut SimRng) -> (DocumentId, Self) {
        let new = NewEntry {
            collection: collection_id().to_string(),
            kind: "practice".into(),
            title: text(rng, 24).trim().to_string(),
            body: text(rng, size),
            license: "CC-BY-SA-4.0".into(),
            lang: Some("qu".into()),
            tags: vec!["simulation".into()],
            subjects: Vec::new(),
            place: None,
            authors: Vec::new(),
            consent: Vec::new(),
            private: false,
            attachments: Vec::new(),
        };
        let valid = new.validate().expect("generated entries are valid");
        let now = i64::try_from(nonce).expect("small nonce");
        let (id, doc) = entry::create(
            &valid,
            &collection_id(),
            &author.key.id(),
            "Ana",
            author.key.actor(author.nonce),
            now,
        )
        .expect("generated entries are created");
        let signatures = author
            .key
            .sign_changes_since(&id, &doc, &[])
            .into_iter()
            .collect();
        (id, SignedDoc { doc, signatures })
    }

    fn edit(&self, id: DocumentId, author: &Author, size: u64, rng: &mut SimRng) -> Self {
        let mut doc = self.doc.fork().with_actor(author.key.actor(author.nonce));
        let before = doc.get_heads();
        let mut body = body(self, id);
        body.push_str(&text(rng, size));
        let patch = EntryPatch {
            body: Some(body),
            ..EntryPatch::default()
        };
        entry::apply_patch(&mut doc, id, &patch, &author.key.id(), 0)
            .expect("an appended body is valid")
            .expect("the body changed");
        let mut signatures = self.signatures.clone();
        signatures.extend(author.key.sign_changes_since(&id, &doc, &before));
        SignedDoc { doc, signatures }
    }

    fn changes(&self) -> Vec<([u8; 32], u64)> {
        self.doc
            .get_changes(&[])
            .iter()
            .map(|c| (c.hash().0, c.raw_bytes().len() as u64))
            .collect()
    }

    fn change_hashes(&self) -> Vec<[u8; 32]> {
        self.doc
            .get_changes_meta(&[])
            .iter()
            .map(|m| m.hash.0)
            .collect()
    }

    fn carried(payload: &Payload) -> (Vec<[u8; 32]>, u64) {
        let hashes = match payload {
            Payload::Whole { signatures, .. } => signatures.iter().map(|s| s.hash).collect(),
            Payload::Changes(changes) => changes
                .iter()
                .filter_map(|c| Change::from_bytes(c.change.clone()).ok())
                .map(|c| c.hash().0)
                .collect(),
            Payload::Nothing | Payload::Tombstone(_) => Vec::new(),
        };
        (hashes, 0)
    }

    fn forgeries(
        &self,
        id: DocumentId,
        author: &Author,
        rng: &mut SimRng,
    ) -> Vec<(Attack, Payload)> {
        let key = &author.key;
        let actor = key.actor(author.nonce);
        let body = body(self, id);
        let mut bad = signed(
            &patched(self, id, actor.clone(), key, format!("{body} forged")),
            key,
            &id,
        );
        bad.signature[0] ^= 1;
        // An actor that is not `key ‖ nonce`, signed by the key all the same.
        let foreign = signed(
            &patched(
                self,
                id,
                ActorId::from(rng.bytes::<20>()),
                key,
                format!("{body} x"),
            ),
            key,
            &id,
        );
        // The genesis of another entry, sent as a change of this one.
        let (other, other_doc) = SignedDoc::create(author, rng.word() >> 20, 64, rng);
        let transplanted = signed(&other_doc.doc.get_changes(&[])[0].clone(), key, &id);
        debug_assert_ne!(other, id);
        // Two different changes with one actor and sequence number, both validly signed.
        let first = signed(
            &patched(self, id, actor.clone(), key, format!("{body} one")),
            key,
            &id,
        );
        let second = signed(
            &patched(self, id, actor, key, format!("{body} two")),
            key,
            &id,
        );
        vec![
            (Attack::BadSignature, Payload::Changes(vec![bad])),
            (Attack::ForeignActor, Payload::Changes(vec![foreign])),
            (
                Attack::TransplantedGenesis,
                Payload::Changes(vec![transplanted]),
            ),
            (Attack::Equivocation, Payload::Changes(vec![first, second])),
            (Attack::Garbage, garbage(rng)),
        ]
    }
}

fn model_change(bytes: &[u8]) -> Option<ModelChange> {
    wire::decode(bytes, wire::MAX_MESSAGE_BYTES).ok()
}

impl SimDoc for ModelDoc {
    const NAME: &'static str = "model";

    fn create(author: &Author, nonce: u64, size: u64, _rng: &mut SimRng) -> (DocumentId, Self) {
        ModelDoc::create(&author.key, nonce, size as u32)
    }

    fn edit(&self, id: DocumentId, author: &Author, size: u64, _rng: &mut SimRng) -> Self {
        let mut doc = self.clone();
        ModelDoc::edit(&mut doc, id, &author.key, size as u32);
        doc
    }

    fn changes(&self) -> Vec<([u8; 32], u64)> {
        ModelDoc::changes(self)
            .map(|(hash, size)| (hash.0, u64::from(size)))
            .collect()
    }

    fn change_hashes(&self) -> Vec<[u8; 32]> {
        ModelDoc::changes(self).map(|(hash, _)| hash.0).collect()
    }

    fn carried(payload: &Payload) -> (Vec<[u8; 32]>, u64) {
        let changes: Vec<ModelChange> = match payload {
            Payload::Whole { document, .. } => {
                wire::decode(document, wire::MAX_MESSAGE_BYTES).unwrap_or_default()
            }
            Payload::Changes(changes) => changes
                .iter()
                .filter_map(|c| model_change(&c.change))
                .collect(),
            Payload::Nothing | Payload::Tombstone(_) => Vec::new(),
        };
        let size = changes.iter().map(|c| u64::from(c.size)).sum();
        (changes.iter().map(|c| c.hash().0).collect(), size)
    }

    fn forgeries(
        &self,
        id: DocumentId,
        author: &Author,
        rng: &mut SimRng,
    ) -> Vec<(Attack, Payload)> {
        let last = |doc: &ModelDoc| -> SignedBytes {
            let Payload::Changes(mut changes) = doc.payload_for(&self.heads()) else {
                unreachable!("an edit adds one change");
            };
            changes.pop().expect("one change")
        };
        let mut edited = self.clone();
        ModelDoc::edit(&mut edited, id, &author.key, 100);
        let mut bad = last(&edited);
        bad.signature[0] ^= 1;
        // A change naming another author, signed by the hostile key.
        let mut change: ModelChange = model_change(&last(&edited).change).expect("decodes");
        change.author = rng.bytes::<32>();
        let foreign = SignedBytes {
            signature: author.key.sign_change(&id, &change.hash()).0.to_vec(),
            change: change.encode(),
        };
        let (_, other) = ModelDoc::create(&author.key, rng.word(), 64);
        // The model has no sequence numbers per author, so it has no equivocation rule: that
        // attack runs over automerge only.
        vec![
            (Attack::BadSignature, Payload::Changes(vec![bad])),
            (Attack::ForeignActor, Payload::Changes(vec![foreign])),
            (Attack::TransplantedGenesis, other.payload_for(&[])),
            (Attack::Garbage, garbage(rng)),
        ]
    }
}

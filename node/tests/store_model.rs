//! Model-based test of the sled `Store`: random writes, flushes and reopens, checked after every
//! step against a plain in-memory model, so prefixed keys, counters, listing indexes and
//! reconciliation sets cannot drift from what was written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use minga_node::store::{Cursor, ListQuery, Store, TOMBSTONE_DIGEST};
use minga_protocol::automerge::ChangeHash;
use minga_protocol::entry::{Attachment, Author, Consent, Place};
use minga_protocol::reconcile::heads_digest;
use minga_protocol::{AuthorKey, Collection, DocumentId, Entry, Signature, Tombstone};
use proptest::prelude::*;

/// Entry ids the operations draw from.
const ENTRIES: usize = 6;
/// Collection ids: the first two are put before any operation, the third only by `PutCollection`.
const COLLECTIONS: usize = 3;
const CACHE_BYTES: u64 = 1 << 20;

const KINDS: [&str; 3] = ["practice", "history", "resource"];
const LANGS: [&str; 4] = ["es", "qug", "en", "es-EC"];
const TAGS: [&str; 5] = ["maize", "water", "a", "ab", "song"];
const SETTINGS: [&str; 3] = ["name", "n", "name-2"];
const COLLECTION_NAMES: [&str; COLLECTIONS] = ["zumbahua", "agua", "minga"];

/// Entry ids whose raw-byte order differs from their index order; two share a first byte.
fn entry_id(i: usize) -> DocumentId {
    const FIRST: [u8; ENTRIES] = [0x80, 0x00, 0xff, 0x7f, 0x01, 0x80];
    let mut bytes = [0xa5; 16];
    bytes[0] = FIRST[i];
    bytes[15] = i as u8;
    DocumentId::from_bytes(bytes)
}

fn entry_index(id: &DocumentId) -> usize {
    (0..ENTRIES)
        .find(|&i| entry_id(i) == *id)
        .expect("an entry id")
}

fn collection_id(c: usize) -> DocumentId {
    DocumentId::from_bytes([0xc0 + c as u8; 16])
}

/// `collection` is a fixed field of an entry, so each id keeps one collection.
fn collection_of(i: usize) -> usize {
    i % COLLECTIONS
}

/// Ids followed or unfollowed: entries, collections and one id never written.
fn any_id(i: usize) -> DocumentId {
    match i {
        i if i < ENTRIES => entry_id(i),
        i if i < ENTRIES + COLLECTIONS => collection_id(i - ENTRIES),
        _ => DocumentId::from_bytes([0x42; 16]),
    }
}

type Sigs = Vec<([u8; 32], [u8; 64])>;

#[derive(Debug, Clone)]
enum Op {
    PutEntry {
        entry: Box<Entry>,
        doc: Vec<u8>,
        sigs: Sigs,
        clock: i64,
    },
    PutCollection {
        collection: Collection,
        heads: Vec<[u8; 32]>,
        doc: Vec<u8>,
        sigs: Sigs,
        clock: i64,
        follow: bool,
    },
    PutTombstone {
        tombstone: Tombstone,
        clock: i64,
    },
    SetFollowed {
        id: DocumentId,
        followed: bool,
    },
    SetSetting {
        name: &'static str,
        value: String,
    },
    Flush,
    Reopen,
}

/// The filters of one listing, walked page by page.
#[derive(Debug, Clone)]
struct Query {
    collection: Option<usize>,
    kind: Option<&'static str>,
    tag: Option<&'static str>,
    lang: Option<&'static str>,
    limit: usize,
}

fn updated() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => prop::sample::select(vec![i64::MIN, -1, 0, 1, 2, 1_700_000_000_000, i64::MAX]),
        1 => any::<i64>(),
    ]
}

fn sigs() -> impl Strategy<Value = Sigs> {
    // Few hashes, so a later put often re-signs a hash already stored.
    prop::collection::vec((0u8..5, any::<u8>()), 0..=3)
        .prop_map(|v| v.into_iter().map(|(h, s)| ([h; 32], [s; 64])).collect())
}

fn heads() -> impl Strategy<Value = Vec<[u8; 32]>> {
    prop::collection::vec(any::<u8>().prop_map(|b| [b; 32]), 0..3)
}

fn doc_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..24)
}

fn clock() -> impl Strategy<Value = i64> {
    prop_oneof![0i64..1000, any::<i64>()]
}

fn place() -> impl Strategy<Value = Option<Place>> {
    prop::option::of(prop::sample::select(vec![
        Place {
            name: "Otavalo".into(),
            lat: Some(0.2346),
            lon: Some(-78.2625),
        },
        Place {
            name: "Saraguro".into(),
            lat: None,
            lon: None,
        },
    ]))
}

fn entry(i: usize) -> impl Strategy<Value = Entry> {
    (
        (
            prop::sample::select(KINDS.to_vec()),
            prop::sample::select(LANGS.to_vec()),
            prop::sample::subsequence(TAGS.to_vec(), 0..=3),
            updated(),
            any::<i64>(),
        ),
        (
            "\\PC{0,10}",
            "\\PC{0,24}",
            // Sorted lowercase hex change hashes, as `Entry::heads` holds them.
            prop::collection::btree_set("[0-9a-f]{64}", 0..3),
            prop::collection::vec("[a-z]{1,6}", 0..2),
            place(),
            any::<bool>(),
            // An attachment and a consent; a history is shareable only with consent given.
            prop::option::of((
                "[a-z]{1,6}",
                prop::sample::select(vec!["given", "refused", "pending"]),
            )),
        ),
    )
        .prop_map(move |((kind, lang, tags, updated, created), rest)| {
            let (title, body, heads, subjects, place, private, extra) = rest;
            Entry {
                id: entry_id(i),
                heads: heads.into_iter().collect(),
                schema: "minga/entry/1".into(),
                kind: kind.into(),
                collection: collection_id(collection_of(i)).to_string(),
                license: "CC-BY-SA-4.0".into(),
                title,
                body,
                lang: lang.into(),
                tags: tags.into_iter().map(String::from).collect(),
                subjects,
                place,
                authors: vec![Author {
                    name: "Rosa".into(),
                    key: "ab".repeat(32),
                }],
                created,
                updated,
                attachments: extra
                    .iter()
                    .map(|(name, _)| Attachment {
                        hash: "00".repeat(32),
                        name: name.clone(),
                        mime: "image/png".into(),
                        size: 7,
                    })
                    .collect(),
                consent: extra
                    .iter()
                    .map(|(name, status)| Consent {
                        name: name.clone(),
                        status: (*status).into(),
                        how: String::new(),
                        date: String::new(),
                    })
                    .collect(),
                private,
            }
        })
}

fn collection(c: usize) -> impl Strategy<Value = Collection> {
    ("\\PC{0,10}", any::<u64>(), 0usize..3).prop_map(move |(title, entries, maintainers)| {
        Collection {
            id: collection_id(c),
            name: COLLECTION_NAMES[c].into(),
            title,
            description: "a collection".into(),
            license: "CC-BY-SA-4.0".into(),
            maintainers: (0..maintainers)
                .map(|m| format!("{m:02x}").repeat(32))
                .collect(),
            // The store ignores this and counts entries itself.
            entries,
        }
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..ENTRIES)
            .prop_flat_map(|i| (entry(i), doc_bytes(), sigs(), clock()))
            .prop_map(|(entry, doc, sigs, clock)| Op::PutEntry {
                entry: Box::new(entry),
                doc,
                sigs,
                clock,
            }),
        2 => (0..COLLECTIONS)
            .prop_flat_map(|c| {
                (collection(c), heads(), doc_bytes(), sigs(), clock(), any::<bool>())
            })
            .prop_map(|(collection, heads, doc, sigs, clock, follow)| Op::PutCollection {
                collection,
                heads,
                doc,
                sigs,
                clock,
                follow,
            }),
        2 => (0..ENTRIES, 1u8..4, "\\PC{0,12}", clock()).prop_map(|(i, key, reason, clock)| {
            let key = AuthorKey::from_bytes(&[key; 32]);
            Op::PutTombstone {
                tombstone: Tombstone::sign(&key, entry_id(i), &reason),
                clock,
            }
        }),
        2 => (0..ENTRIES + COLLECTIONS + 1, any::<bool>())
            .prop_map(|(i, followed)| Op::SetFollowed { id: any_id(i), followed }),
        1 => (prop::sample::select(SETTINGS.to_vec()), "\\PC{0,8}")
            .prop_map(|(name, value)| Op::SetSetting { name, value }),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
    ]
}

fn query() -> impl Strategy<Value = Query> {
    (
        prop::option::of(0..COLLECTIONS),
        prop::option::of(prop::sample::select(vec![
            "practice", "history", "resource", "pract",
        ])),
        prop::option::of(prop::sample::select(vec![
            "maize", "water", "a", "ab", "song", "abc",
        ])),
        prop::option::of(prop::sample::select(vec![
            "es", "qu", "qug", "qvi", "en", "es-EC", "ES", "es_EC", "und",
        ])),
        1usize..=7,
    )
        .prop_map(|(collection, kind, tag, lang, limit)| Query {
            collection,
            kind,
            tag,
            lang,
            limit,
        })
}

/// What the store should hold.
#[derive(Debug, Default)]
struct Model {
    entries: BTreeMap<DocumentId, Entry>,
    documents: BTreeMap<DocumentId, Vec<u8>>,
    signatures: BTreeMap<DocumentId, BTreeMap<[u8; 32], [u8; 64]>>,
    /// Collection views as put (their `entries` is counted on read).
    collections: BTreeMap<DocumentId, Collection>,
    tombstones: BTreeMap<DocumentId, Tombstone>,
    /// Reconciliation sets: collection → document id bytes → digest.
    items: BTreeMap<DocumentId, BTreeMap<[u8; 16], [u8; 16]>>,
    followed: BTreeSet<DocumentId>,
    settings: BTreeMap<String, String>,
    clock: i64,
    /// Batches applied and made durable since the store was (re)opened.
    applied: u64,
    durable: u64,
}

impl Model {
    fn put_document(&mut self, id: DocumentId, doc: &[u8], sigs: &Sigs, clock: i64) {
        self.documents.insert(id, doc.to_vec());
        let stored = self.signatures.entry(id).or_default();
        for (hash, sig) in sigs {
            stored.insert(*hash, *sig);
        }
        self.clock = clock;
    }

    fn set_item(&mut self, collection: DocumentId, id: DocumentId, digest: Option<[u8; 16]>) {
        let set = self.items.entry(collection).or_default();
        match digest {
            Some(digest) => set.insert(*id.as_bytes(), digest),
            None => set.remove(id.as_bytes()),
        };
    }

    fn count_in(&self, collection: &DocumentId) -> u64 {
        let text = collection.to_string();
        self.entries
            .values()
            .filter(|e| e.collection == text)
            .count() as u64
    }

    fn collection(&self, id: &DocumentId) -> Option<Collection> {
        self.collections.get(id).map(|c| Collection {
            entries: self.count_in(id),
            ..c.clone()
        })
    }

    /// Matching live entries, `updated` descending then id bytes ascending.
    fn list(&self, query: &Query) -> Vec<Entry> {
        let mut found: Vec<Entry> = self
            .entries
            .values()
            .filter(|e| {
                query
                    .collection
                    .is_none_or(|c| e.collection == collection_id(c).to_string())
                    && query.kind.is_none_or(|k| e.kind == k)
                    && query.tag.is_none_or(|t| e.tags.iter().any(|x| x == t))
                    && query
                        .lang
                        .is_none_or(|l| minga_protocol::lang::matches(l, &e.lang))
            })
            .cloned()
            .collect();
        found.sort_by(|a, b| {
            b.updated
                .cmp(&a.updated)
                .then_with(|| a.id.as_bytes().cmp(b.id.as_bytes()))
        });
        found
    }
}

fn sigs_of(sigs: &Sigs) -> Vec<(ChangeHash, Signature)> {
    sigs.iter()
        .map(|(h, s)| (ChangeHash(*h), Signature(*s)))
        .collect()
}

fn open(dir: &Path) -> Store {
    Store::open(dir, CACHE_BYTES).expect("open the store")
}

/// Applies one operation (other than `Reopen`) to the store and the model.
fn apply(store: &Store, model: &mut Model, op: &Op) {
    let batch = match op {
        Op::PutEntry {
            entry,
            doc,
            sigs,
            clock,
        } => {
            // Callers never put an entry that has a tombstone: its id is refused for good.
            if model.tombstones.contains_key(&entry.id) {
                return;
            }
            let batch = store
                .put_entry(entry, doc, &sigs_of(sigs), *clock)
                .expect("put_entry");
            // Only a shareable entry is in its collection's reconciliation set.
            let shareable = !entry.private
                && (entry.kind != "history" || entry.consent.iter().all(|c| c.status == "given"));
            let digest = shareable.then(|| {
                let heads: Vec<[u8; 32]> = entry
                    .heads
                    .iter()
                    .map(|h| hex::decode(h).unwrap().try_into().unwrap())
                    .collect();
                heads_digest(&heads)
            });
            let collection = collection_id(collection_of(entry_index(&entry.id)));
            model.set_item(collection, entry.id, digest);
            model.entries.insert(entry.id, (**entry).clone());
            model.put_document(entry.id, doc, sigs, *clock);
            batch
        }
        Op::PutCollection {
            collection,
            heads,
            doc,
            sigs,
            clock,
            follow,
        } => {
            let batch = store
                .put_collection(collection, heads, doc, &sigs_of(sigs), *clock, *follow)
                .expect("put_collection");
            model.collections.insert(collection.id, collection.clone());
            model.set_item(collection.id, collection.id, Some(heads_digest(heads)));
            if *follow {
                model.followed.insert(collection.id);
            }
            model.put_document(collection.id, doc, sigs, *clock);
            batch
        }
        Op::PutTombstone { tombstone, clock } => {
            let batch = store
                .put_tombstone(tombstone, *clock)
                .expect("put_tombstone");
            let id = tombstone.entry;
            // Withdrawing a shareable entry marks it withdrawn in the reconciliation set; a
            // private or unconsented one never leaves the node, not even as a tombstone; a
            // tombstone for an entry never held adds no item.
            if let Some(old) = model.entries.remove(&id) {
                let collection = collection_id(collection_of(entry_index(&id)));
                let digest = old.is_shareable().then_some(TOMBSTONE_DIGEST);
                model.set_item(collection, id, digest);
            }
            model.documents.remove(&id);
            model.signatures.remove(&id);
            model.tombstones.insert(id, tombstone.clone());
            model.clock = *clock;
            batch
        }
        Op::SetFollowed { id, followed } => {
            let batch = store.set_followed(id, *followed).expect("set_followed");
            if *followed {
                model.followed.insert(*id);
            } else {
                model.followed.remove(id);
            }
            batch
        }
        Op::SetSetting { name, value } => {
            let batch = store.set_setting(name, value).expect("set_setting");
            model.settings.insert((*name).to_owned(), value.clone());
            batch
        }
        Op::Flush => {
            store.flush().expect("flush");
            model.durable = model.applied;
            return;
        }
        Op::Reopen => unreachable!("the caller owns the store and reopens it"),
    };
    model.applied += 1;
    assert_eq!(batch, model.applied, "batch number of {op:?}");
}

/// Walks every page of `query` and compares with the model.
fn check_list(store: &Store, model: &Model, query: &Query) {
    let expected = model.list(query);
    let mut got = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(
            pages <= expected.len() + 1,
            "listing does not end: {query:?}"
        );
        let page = store
            .list(&ListQuery {
                collection: query.collection.map(collection_id),
                kind: query.kind.map(String::from),
                tag: query.tag.map(String::from),
                lang: query.lang.map(String::from),
                limit: query.limit,
                cursor,
            })
            .expect("list");
        assert!(
            page.entries.len() <= query.limit,
            "page over limit: {query:?}"
        );
        let full = page.entries.len() == query.limit;
        got.extend(page.entries);
        match page.next_cursor {
            None => break,
            Some(text) => {
                assert!(full, "a cursor after a short page: {query:?}");
                let parsed = Cursor::parse(&text).expect("next_cursor parses");
                assert_eq!(parsed.to_string(), text);
                cursor = Some(parsed);
            }
        }
    }
    assert_eq!(got, expected, "listing {query:?}");
    assert_eq!(
        pages,
        expected.len().div_ceil(query.limit).max(1),
        "pages of {query:?} (a next_cursor must mean more entries)"
    );
}

/// Compares every read of the store with the model.
fn check(store: &Store, model: &Model, query: &Query) {
    for i in 0..ENTRIES {
        let id = entry_id(i);
        assert_eq!(store.entry(&id).unwrap(), model.entries.get(&id).cloned());
        assert_eq!(
            store.tombstone(&id).unwrap(),
            model.tombstones.get(&id).cloned()
        );
    }
    let ids = (0..ENTRIES)
        .map(entry_id)
        .chain((0..COLLECTIONS).map(collection_id));
    for id in ids {
        assert_eq!(
            store.document(&id).unwrap(),
            model.documents.get(&id).cloned()
        );
        let sigs: Vec<([u8; 32], [u8; 64])> = store
            .signatures(&id)
            .unwrap()
            .into_iter()
            .map(|(h, s)| (h.0, s.0))
            .collect();
        let expected: Vec<_> = model
            .signatures
            .get(&id)
            .map(|m| m.iter().map(|(h, s)| (*h, *s)).collect())
            .unwrap_or_default();
        assert_eq!(sigs, expected, "signatures of {id}");
    }
    assert_eq!(store.entry_count().unwrap(), model.entries.len() as u64);
    for (c, name) in COLLECTION_NAMES.into_iter().enumerate() {
        let id = collection_id(c);
        let items: Vec<([u8; 16], [u8; 16])> = store
            .items(&id)
            .unwrap()
            .into_iter()
            .map(|item| (item.id, item.digest))
            .collect();
        let expected: Vec<_> = model
            .items
            .get(&id)
            .map(|set| set.iter().map(|(i, d)| (*i, *d)).collect())
            .unwrap_or_default();
        assert_eq!(items, expected, "reconciliation set of {id}");
        // Built on the first check, then kept current by the writes between checks.
        let cached = store.reconcile_set(&id).unwrap();
        let cached: Vec<_> = cached.items().iter().map(|i| (i.id, i.digest)).collect();
        assert_eq!(cached, expected, "cached reconciliation set of {id}");
        // The change log lists every row of the set once, oldest change first.
        let (mut logged, complete) = store.changed_since(&id, 0, usize::MAX, None).unwrap();
        assert!(complete);
        logged.sort();
        let logged: Vec<_> = logged.iter().map(|i| (i.id, i.digest)).collect();
        assert_eq!(logged, expected, "change log of {id}");
        let (latest, _) = store
            .changed_since(&id, store.seq(), usize::MAX, None)
            .unwrap();
        assert!(latest.is_empty(), "nothing changed after the last position");
        assert_eq!(store.collection(&id).unwrap(), model.collection(&id));
        let by_name = store.collection_by_name(name).unwrap();
        assert_eq!(by_name, model.collections.contains_key(&id).then_some(id));
    }
    let mut expected: Vec<Collection> = model
        .collections
        .keys()
        .filter_map(|id| model.collection(id))
        .collect();
    expected.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(store.collections().unwrap(), expected);
    for i in 0..ENTRIES + COLLECTIONS + 1 {
        let id = any_id(i);
        assert_eq!(
            store.is_followed(&id).unwrap(),
            model.followed.contains(&id)
        );
    }
    for name in SETTINGS {
        assert_eq!(
            store.setting(name).unwrap(),
            model.settings.get(name).cloned()
        );
    }
    assert_eq!(store.clock().unwrap(), model.clock);
    assert_eq!(store.applied_writes(), model.applied);
    assert_eq!(store.durable_writes(), model.durable);
    check_list(store, model, query);
    let everything = Query {
        collection: None,
        kind: None,
        tag: None,
        lang: None,
        limit: 500,
    };
    check_list(store, model, &everything);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn store_agrees_with_model(
        steps in prop::collection::vec((op(), query()), 1..40),
        first in (collection(0), collection(1)),
    ) {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("store");
        let mut store = open(&dir);
        let mut model = Model::default();
        for setup in [first.0, first.1] {
            let put = Op::PutCollection {
                collection: setup,
                heads: vec![],
                doc: vec![1],
                sigs: vec![],
                clock: 0,
                follow: false,
            };
            apply(&store, &mut model, &put);
        }
        for (op, query) in &steps {
            if let Op::Reopen = op {
                // This is the only handle: dropping it drops the sled::Db before the reopen.
                drop(store);
                store = open(&dir);
                model.applied = 0;
                model.durable = 0;
            } else {
                apply(&store, &mut model, op);
            }
            check(&store, &model, query);
        }
    }
}

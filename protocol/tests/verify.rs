//! Property tests of `verify::verify_and_apply`: every valid signed history is accepted in any
//! order, and every forgery, alteration, transplant, relicensing, equivocation or unauthorised
//! collection edit is rejected, so a mirror can relay work but never change it.

use std::collections::BTreeMap;

use minga_protocol::automerge::transaction::{Transactable, Transaction};
use minga_protocol::automerge::{ActorId, Automerge, ChangeHash, ROOT, ReadDoc};
use minga_protocol::collection;
use minga_protocol::entry::{self, EntryPatch, NewEntry};
use minga_protocol::fixtures::{self, NOW, collection_id};
use minga_protocol::verify::{self, DocKind, SignedChange, VerifyError};
use minga_protocol::{AuthorKey, DocumentId, Entry, NewCollection, Signature};
use proptest::prelude::*;

fn new_entry(title: &str, body: &str, tags: &[String]) -> NewEntry {
    fixtures::new_entry(&collection_id(), title, body, tags)
}

/// Creates an entry's genesis with `key`; returns its id and document.
fn create(key: &AuthorKey, actor: ActorId, new: &NewEntry) -> (DocumentId, Automerge) {
    let by = fixtures::Maker {
        key,
        name: "Ana",
        actor,
        now: NOW,
    };
    fixtures::genesis(new, &collection_id(), by)
}

/// Edits `doc` with a patch that changes its title, so every call makes one change.
fn retitle(doc: &mut Automerge, id: DocumentId, key: &AuthorKey, title: &str) -> ChangeHash {
    let patch = EntryPatch {
        title: Some(title.into()),
        ..EntryPatch::default()
    };
    entry::apply_patch(doc, id, &patch, &key.id(), NOW + 1)
        .expect("valid patch")
        .expect("the title changed")
}

/// Commits one raw transaction written by `write`.
fn commit(doc: &mut Automerge, write: impl FnOnce(&mut Transaction<'_>)) -> ChangeHash {
    let mut tx = doc.transaction();
    write(&mut tx);
    tx.commit().0.expect("the transaction has operations")
}

/// Every change of `doc` not in `since`, with the signature of whichever key owns its actor.
fn signed(
    id: DocumentId,
    doc: &Automerge,
    since: &[ChangeHash],
    keys: &[&AuthorKey],
) -> Vec<SignedChange> {
    let signatures: BTreeMap<ChangeHash, Signature> = keys
        .iter()
        .flat_map(|key| {
            let author = key.id();
            let owned: Vec<ChangeHash> = doc
                .get_changes_meta(since)
                .iter()
                .filter(|meta| meta.actor.to_bytes().starts_with(author.as_bytes()))
                .map(|meta| meta.hash)
                .collect();
            key.sign_changes_since(&id, doc, since)
                .into_iter()
                .filter(move |(hash, _)| owned.contains(hash))
        })
        .collect();
    doc.get_changes(since)
        .into_iter()
        .map(|change| {
            let signature = signatures[&change.hash()];
            SignedChange { change, signature }
        })
        .collect()
}

/// Re-decodes changes from their bytes, as a receiver would.
fn from_wire(changes: &[SignedChange]) -> Vec<SignedChange> {
    changes
        .iter()
        .map(|s| SignedChange::decode(s.change.raw_bytes().to_vec(), s.signature).expect("decode"))
        .collect()
}

/// A deterministic Fisher–Yates shuffle driven by `seed`.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

fn sorted_heads(doc: &Automerge) -> Vec<ChangeHash> {
    let mut heads = doc.get_heads();
    heads.sort();
    heads
}

fn verify_entry(
    id: DocumentId,
    held: &Automerge,
    incoming: Vec<SignedChange>,
) -> Result<Automerge, VerifyError> {
    verify::verify_and_apply(id, DocKind::Entry, held, incoming)
}

fn title() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9áñü][a-zA-Z0-9 áñü.,]{0,40}"
}

fn body() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 áñü.,#*\n-]{0,200}"
}

fn tags() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[a-z]{1,10}", 0..6)
}

fn patch() -> impl Strategy<Value = EntryPatch> {
    (
        prop::option::of(title()),
        prop::option::of(body()),
        prop::option::of(tags()),
    )
        .prop_map(|(title, body, tags)| EntryPatch {
            title,
            body,
            tags,
            ..EntryPatch::default()
        })
}

/// An edit: whether the second author makes it, whether that author first merges the other's
/// work, and the patch.
fn edits() -> impl Strategy<Value = Vec<(bool, bool, EntryPatch)>> {
    prop::collection::vec((any::<bool>(), any::<bool>(), patch()), 0..5)
}

/// A generated history: an entry created by one author and edited by two.
struct History {
    id: DocumentId,
    doc: Automerge,
    first: AuthorKey,
    second: AuthorKey,
}

impl History {
    fn keys(&self) -> [&AuthorKey; 2] {
        [&self.first, &self.second]
    }
}

/// What a [`History`] is built from; this, not the documents, is what a failure shows.
#[derive(Clone, Debug)]
struct Spec {
    seeds: ([u8; 32], [u8; 32]),
    nonces: ([u8; 16], [u8; 16]),
    title: String,
    body: String,
    tags: Vec<String>,
    edits: Vec<(bool, bool, EntryPatch)>,
}

impl Spec {
    fn build(&self) -> History {
        let first = AuthorKey::from_bytes(&self.seeds.0);
        let second = AuthorKey::from_bytes(&self.seeds.1);
        let new = new_entry(&self.title, &self.body, &self.tags);
        let (id, genesis) = create(&first, first.actor(self.nonces.0), &new);
        let mut replicas = [
            genesis.clone(),
            genesis.with_actor(second.actor(self.nonces.1)),
        ];
        for (by_second, merge, patch) in &self.edits {
            let (mine, other) = if *by_second { (1, 0) } else { (0, 1) };
            if *merge {
                let mut theirs = replicas[other].clone();
                replicas[mine].merge(&mut theirs).expect("merge");
            }
            let key = if *by_second { &second } else { &first };
            // Concurrent retitles merge character by character and can leave no title at all
            // (each side deleted what the other kept); the next edit must then give one, as
            // the node asks a user to.
            let mut patch = patch.clone();
            if Entry::read(id, &replicas[mine]).title.trim().is_empty() {
                patch.title.get_or_insert_with(|| "Tras la fusión".into());
            }
            entry::apply_patch(&mut replicas[mine], id, &patch, &key.id(), NOW + 1)
                .expect("generated patches are valid");
        }
        let [mut doc, mut other] = replicas;
        doc.merge(&mut other).expect("merge");
        History {
            id,
            doc,
            first,
            second,
        }
    }
}

fn history() -> impl Strategy<Value = Spec> {
    (
        any::<([u8; 32], [u8; 32])>(),
        any::<([u8; 16], [u8; 16])>(),
        title(),
        body(),
        tags(),
        edits(),
    )
        .prop_map(|(seeds, nonces, title, body, tags, edits)| Spec {
            seeds,
            nonces,
            title,
            body,
            tags,
            edits,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// 1. Any valid signed history verifies in any order, at once or in two steps.
    #[test]
    fn valid_histories_verify(spec in history(), seed in any::<u64>(), cut in any::<prop::sample::Index>()) {
        let history = spec.build();
        let History { id, doc, .. } = &history;
        let all = signed(*id, doc, &[], &history.keys());

        let mut shuffled = from_wire(&all);
        shuffle(&mut shuffled, seed);
        let result = verify_entry(*id, &Automerge::new(), shuffled).expect("a valid history verifies");
        prop_assert_eq!(sorted_heads(&result), sorted_heads(doc));
        prop_assert_eq!(Entry::read(*id, &result), Entry::read(*id, doc));

        // Incrementally: a causally closed prefix first, then the rest against what is held.
        let cut = 1 + cut.index(all.len());
        let mut prefix = from_wire(&all[..cut]);
        let mut rest = from_wire(&all[cut..]);
        shuffle(&mut prefix, seed);
        shuffle(&mut rest, seed.rotate_left(7));
        let held = verify_entry(*id, &Automerge::new(), prefix).expect("the prefix verifies");
        let result = verify_entry(*id, &held, rest.clone()).expect("the rest verifies");
        prop_assert_eq!(sorted_heads(&result), sorted_heads(doc));

        // Changes already held are skipped, so re-sending everything is harmless.
        let again = verify_entry(*id, &result, from_wire(&all)).expect("re-sending verifies");
        prop_assert_eq!(sorted_heads(&again), sorted_heads(doc));
    }

    /// 2. A single flipped byte anywhere in a change never gets through.
    #[test]
    fn flipped_bytes_are_rejected(
        spec in history(),
        which in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let history = spec.build();
        let History { id, doc, .. } = &history;
        let all = signed(*id, doc, &[], &history.keys());
        let which = which.index(all.len());
        let mut bytes = all[which].change.raw_bytes().to_vec();
        let at = at.index(bytes.len());
        bytes[at] ^= mask;
        let Ok(corrupt) = SignedChange::decode(bytes, all[which].signature) else {
            return Ok(());
        };
        let mut incoming = from_wire(&all);
        incoming[which] = corrupt;
        let verdict = verify_entry(*id, &Automerge::new(), incoming);
        prop_assert!(verdict.is_err(), "byte {} of change {} flipped by {:#04x} was accepted", at, which, mask);
    }

    /// 3. A change signed by a key other than its actor's is rejected.
    #[test]
    fn swapped_keys_are_rejected(spec in history(), which in any::<prop::sample::Index>()) {
        let history = spec.build();
        let History { id, doc, first, second } = &history;
        let mut all = signed(*id, doc, &[], &history.keys());
        let which = which.index(all.len());
        let hash = all[which].change.hash();
        let owner = all[which].change.actor_id().to_bytes()[..32].to_vec();
        let impostor = if owner == first.id().as_bytes() { second } else { first };
        all[which].signature = impostor.sign_change(id, &hash);
        prop_assert_eq!(
            verify_entry(*id, &Automerge::new(), all).err(),
            Some(VerifyError::BadSignature { hash })
        );
    }

    /// 4. A change whose actor is not `author key ‖ 16-byte nonce` is rejected, whoever signs.
    #[test]
    fn foreign_actors_are_rejected(
        seed in any::<[u8; 32]>(),
        actor in prop::collection::vec(any::<u8>(), 1..=64).prop_filter("not a Minga actor", |a| a.len() != 48),
        title in title(),
    ) {
        let key = AuthorKey::from_bytes(&seed);
        let (id, doc) = create(&key, ActorId::from(actor), &new_entry(&title, "", &[]));
        let change = doc.get_changes(&[]).remove(0);
        let hash = change.hash();
        let signature = key.sign_change(&id, &hash);
        prop_assert_eq!(
            verify_entry(id, &Automerge::new(), vec![SignedChange { change, signature }]).err(),
            Some(VerifyError::ForeignActor { hash })
        );
    }

    /// 5. A genesis cannot be moved to another id, neither re-signed nor with its signature.
    #[test]
    fn transplanted_genesis_is_rejected(
        seed in any::<[u8; 32]>(),
        nonce in any::<[u8; 16]>(),
        titles in (title(), title()),
    ) {
        let key = AuthorKey::from_bytes(&seed);
        let (a, doc_a) = create(&key, key.actor(nonce), &new_entry(&titles.0, "a", &[]));
        let (b, doc_b) = create(&key, key.actor(nonce), &new_entry(&titles.1, "b", &[]));
        prop_assume!(a != b);
        let genesis = doc_a.get_changes(&[]).remove(0);
        let hash = genesis.hash();

        // Re-signed by the same key for B: the id does not certify it.
        let resigned = SignedChange { change: genesis.clone(), signature: key.sign_change(&b, &hash) };
        let not_genesis = Some(VerifyError::NotGenesis { hash, document: b });
        prop_assert_eq!(verify_entry(b, &Automerge::new(), vec![resigned.clone()]).err(), not_genesis.clone());
        prop_assert_eq!(verify_entry(b, &doc_b, vec![resigned]).err(), not_genesis);

        // With A's own signature: it binds A's id, not B's.
        let original = SignedChange { change: genesis, signature: key.sign_change(&a, &hash) };
        prop_assert!(!key.id().verify_change(&b, &hash, &original.signature));
        prop_assert_eq!(
            verify_entry(b, &doc_b, vec![original.clone()]).err(),
            Some(VerifyError::BadSignature { hash })
        );
        prop_assert!(verify_entry(a, &Automerge::new(), vec![original]).is_ok());
    }

    /// 6. No change after the genesis writes a fixed field, even to an open licence or the same
    /// value.
    #[test]
    fn fixed_fields_cannot_change(
        spec in history(),
        field in prop::sample::select(vec!["license", "kind", "collection", "schema"]),
        same in any::<bool>(),
        delete in any::<bool>(),
        license in prop::sample::select(minga_protocol::license::OPEN_LICENSES.to_vec()),
    ) {
        let History { id, mut doc, first, second } = spec.build();
        let heads = doc.get_heads();
        let held = verify_entry(id, &Automerge::new(), signed(id, &doc, &[], &[&first, &second]))
            .expect("the history verifies");
        let current = Entry::read(id, &doc);
        let value = match (field, same) {
            // Another open licence: writing the current one again would be no change at all.
            ("license", false) => minga_protocol::license::OPEN_LICENSES
                .iter()
                .find(|l| **l != current.license)
                .filter(|_| license == current.license)
                .map_or(license, |other| other)
                .to_string(),
            ("license", true) => current.license,
            ("kind", false) => "resource".to_owned(),
            ("kind", true) => current.kind,
            ("collection", false) => DocumentId::from_bytes([3; DocumentId::LEN]).to_string(),
            ("collection", true) => current.collection,
            (_, false) => "minga/entry/2".to_owned(),
            (_, true) => current.schema,
        };
        doc.set_actor(first.actor([0xee; 16]));
        let hash = commit(&mut doc, |tx| {
            if delete {
                tx.delete(ROOT, field).expect("delete");
            } else {
                if same {
                    // automerge drops a put of the value already there: write another first.
                    tx.put(ROOT, field, "placeholder").expect("put");
                }
                tx.put(ROOT, field, value).expect("put");
            }
        });
        let edit = signed(id, &doc, &heads, &[&first]);
        prop_assert_eq!(
            verify_entry(id, &held, edit).err(),
            Some(VerifyError::ImmutableField { hash, field: field.to_owned() })
        );
    }

    /// 7. Two different changes with one actor and sequence number are an equivocation, in one
    /// batch or one after the other.
    #[test]
    fn equivocation_is_rejected(
        seed in any::<[u8; 32]>(),
        nonce in any::<[u8; 16]>(),
        title in title(),
        edits in (title(), title()),
    ) {
        let key = AuthorKey::from_bytes(&seed);
        let actor = key.actor(nonce);
        let (id, genesis) = create(&key, actor.clone(), &new_entry(&title, "", &[]));
        let mut one = genesis.clone();
        let mut two = genesis.fork();
        two.set_actor(actor.clone());
        let first = retitle(&mut one, id, &key, &format!("{} uno", edits.0));
        let second = retitle(&mut two, id, &key, &format!("{} dos", edits.1));
        let base = signed(id, &genesis, &[], &[&key]);
        let heads = genesis.get_heads();
        let one = signed(id, &one, &heads, &[&key]);
        let two = signed(id, &two, &heads, &[&key]);
        let proof = |first, second| {
            Some(VerifyError::Equivocation(verify::Equivocation { actor: actor.clone(), seq: 2, first, second }))
        };

        let batch = [base.clone(), one.clone(), two.clone()].concat();
        prop_assert_eq!(verify_entry(id, &Automerge::new(), batch).err(), proof(first, second));

        let held = verify_entry(id, &Automerge::new(), [base, one].concat()).expect("one edit verifies");
        prop_assert_eq!(verify_entry(id, &held, two).err(), proof(first, second));
    }

    /// 8. Only a collection's maintainers may change it.
    #[test]
    fn only_maintainers_change_collections(
        seeds in any::<([u8; 32], [u8; 32])>(),
        nonces in any::<([u8; 16], [u8; 16])>(),
        name in "[a-z][a-z0-9_-]{0,20}",
        titles in (title(), title()),
    ) {
        let owner = AuthorKey::from_bytes(&seeds.0);
        let stranger = AuthorKey::from_bytes(&seeds.1);
        prop_assume!(owner.id() != stranger.id());
        let new = NewCollection { name, title: None, description: None, license: None };
        let (id, genesis) = collection::create(&new, &owner.id(), owner.actor(nonces.0), NOW).expect("create");
        let verify = |held: &Automerge, incoming| verify::verify_and_apply(id, DocKind::Collection, held, incoming);
        let held = verify(&Automerge::new(), signed(id, &genesis, &[], &[&owner])).expect("genesis verifies");
        let heads = genesis.get_heads();

        // The stranger retitles it: refused.
        let mut theirs = genesis.clone().with_actor(stranger.actor(nonces.1));
        let hash = commit(&mut theirs, |tx| tx.put(ROOT, "title", titles.1.as_str()).expect("put"));
        prop_assert_eq!(
            verify(&held, signed(id, &theirs, &heads, &[&stranger])).err(),
            Some(VerifyError::NotMaintainer { hash, author: stranger.id() })
        );

        // The maintainer retitles it and adds the stranger: accepted.
        let mut mine = genesis.clone();
        commit(&mut mine, |tx| {
            tx.put(ROOT, "title", titles.0.as_str()).expect("put");
            let list = tx.get(ROOT, "maintainers").expect("get").expect("maintainers").1;
            tx.insert(&list, 1, stranger.id().to_string()).expect("insert");
        });
        let held = verify(&held, signed(id, &mine, &heads, &[&owner])).expect("a maintainer's edit verifies");
        prop_assert_eq!(sorted_heads(&held), sorted_heads(&mine));

        // Now a maintainer, the stranger may edit on top of that (in a new run: a fresh nonce,
        // since reusing the actor of the refused edit would be an equivocation).
        let since = mine.get_heads();
        let mut fresh = nonces.1;
        fresh[0] ^= 1;
        mine.set_actor(stranger.actor(fresh));
        commit(&mut mine, |tx| tx.put(ROOT, "description", "semillas nativas").expect("put"));
        let held = verify(&held, signed(id, &mine, &since, &[&stranger])).expect("a new maintainer's edit verifies");
        prop_assert_eq!(sorted_heads(&held), sorted_heads(&mine));

        // But the stranger's edit made before being added is still refused.
        let late = verify(&held, signed(id, &theirs, &heads, &[&stranger]));
        prop_assert!(matches!(late, Err(VerifyError::NotMaintainer { .. })), "{:?}", late);
    }
}

fn refusal_code(new: &NewEntry) -> &'static str {
    new.validate().expect_err("refused").code()
}

fn valid_new_entry() -> NewEntry {
    let entry = new_entry("Semillas de quinua", "Cómo guardarlas.", &["quinua".into()]);
    entry.validate().expect("the base entry is valid");
    entry
}

#[test]
fn non_open_licences_are_refused() {
    let mut new = valid_new_entry();
    new.license = "CC-BY-NC-4.0".into();
    assert_eq!(refusal_code(&new), "license_not_open");
}

#[test]
fn unknown_kinds_are_refused() {
    let mut new = valid_new_entry();
    new.kind = "advert".into();
    assert_eq!(refusal_code(&new), "invalid_kind");
}

#[test]
fn empty_titles_are_refused() {
    for title in ["", "   \n\t"] {
        let mut new = valid_new_entry();
        new.title = title.into();
        assert_eq!(refusal_code(&new), "empty_title");
    }
}

#[test]
fn too_many_tags_are_refused() {
    let mut new = valid_new_entry();
    new.tags = (0..32).map(|i| format!("tag{i}")).collect();
    new.validate().expect("32 tags are allowed");
    new.tags.push("tag32".into());
    assert_eq!(refusal_code(&new), "too_many_tags");
}

#[test]
fn oversized_bodies_are_refused() {
    let mut new = valid_new_entry();
    new.body = "a".repeat(300 * 1024);
    assert_eq!(refusal_code(&new), "too_large");
    assert!(new.validate().expect_err("refused").is_size());
}

/// The exhaustive form of `flipped_bytes_are_rejected` for one small history: every byte of
/// every change, each bit.
#[test]
fn every_flipped_byte_is_rejected() {
    let key = AuthorKey::from_bytes(&[1; 32]);
    let (id, mut doc) = create(&key, key.actor([2; 16]), &valid_new_entry());
    retitle(&mut doc, id, &key, "Semillas de maíz");
    let all = signed(id, &doc, &[], &[&key]);
    let mut accepted = Vec::new();
    for which in 0..all.len() {
        let bytes = all[which].change.raw_bytes();
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut bytes = bytes.to_vec();
                bytes[at] ^= 1 << bit;
                let Ok(corrupt) = SignedChange::decode(bytes, all[which].signature) else {
                    continue;
                };
                let mut incoming = from_wire(&all);
                incoming[which] = corrupt;
                if verify_entry(id, &Automerge::new(), incoming).is_ok() {
                    accepted.push((which, at, bit));
                }
            }
        }
    }
    assert_eq!(accepted, [], "(change, byte, bit) flips that were accepted");
}

/// Changes may travel deflate-compressed (`Change::bytes`); those verify like the raw form.
#[test]
fn compressed_changes_verify() {
    let key = AuthorKey::from_bytes(&[3; 32]);
    let mut new = valid_new_entry();
    new.body = "Se siembra en luna nueva. ".repeat(200);
    let (id, doc) = create(&key, key.actor([4; 16]), &new);
    let mut change = doc.get_changes(&[]).remove(0);
    let compressed = change.bytes().into_owned();
    assert!(
        compressed.len() < change.raw_bytes().len(),
        "the change compresses"
    );
    let signature = key.sign_change(&id, &change.hash());
    let decoded = SignedChange::decode(compressed, signature).expect("decode");
    let result = verify_entry(id, &Automerge::new(), vec![decoded]).expect("verifies");
    assert_eq!(sorted_heads(&result), sorted_heads(&doc));
}

//! What the change log tells a peer: not what that peer sent.

use minga_protocol::wire::{HashSignature, Payload};
use minga_protocol::{DocKind, DocumentId, NewCollection};
use serde_json::json;

use super::*;
use crate::DataDir;
use crate::store::source_tag;

/// A document id whose handling panics (see `Commons::stage_remote`), for the supervised
/// writer's tests.
pub(crate) const PANICKING_DOCUMENT: [u8; 16] = [0xee; 16];

fn open(dir: &std::path::Path) -> Commons {
    Commons::open(&DataDir::new(dir), 8 << 20).unwrap()
}

/// What a peer sends for a document the receiver lacks: all of it.
fn whole(commons: &Commons, id: &DocumentId) -> Payload {
    let store = commons.store();
    Payload::Whole {
        document: store.document(id).unwrap().unwrap(),
        signatures: store
            .signatures(id)
            .unwrap()
            .into_iter()
            .map(|(hash, signature)| HashSignature {
                hash: hash.0,
                signature: signature.0.to_vec(),
            })
            .collect(),
    }
}

#[test]
fn a_change_log_answer_leaves_out_what_the_asker_sent() {
    let temp = tempfile::tempdir().unwrap();
    let mut a = open(&temp.path().join("a"));
    let named: NewCollection = serde_json::from_value(json!({"name": "huerta"})).unwrap();
    let collection = a.create_collection(&named).unwrap().value;
    let new = serde_json::from_value(json!({"collection": collection.to_string(),
        "kind": "practice", "title": "Abono", "body": "Compost de hojas.",
        "license": "CC0-1.0"}))
    .unwrap();
    let entry = a.create_entry(&new).unwrap().value;

    let mut b = open(&temp.path().join("b"));
    let (peer_a, peer_c) = (source_tag("peer-a"), source_tag("peer-c"));
    let mirror = true;
    for (id, kind) in [(collection, DocKind::Collection), (entry, DocKind::Entry)] {
        let changed = b
            .apply_remote(id, kind, &whole(&a, &id), mirror, peer_a, None)
            .unwrap();
        assert!(changed.value);
    }
    let listed = |b: &Commons, asker| {
        let (items, complete) = b.store().changed_since(&collection, 0, 100, asker).unwrap();
        assert!(complete);
        items.into_iter().map(|i| i.id).collect::<Vec<_>>()
    };
    assert!(listed(&b, Some(peer_a)).is_empty(), "a holds what it sent");
    assert_eq!(listed(&b, Some(peer_c)).len(), 2, "c is told of both");

    let patch = minga_protocol::entry::EntryPatch {
        body: Some("Compost de hojas y ceniza.".into()),
        ..Default::default()
    };
    b.patch_entry(&entry, &patch).unwrap();
    assert_eq!(
        listed(&b, Some(peer_a)),
        vec![*entry.as_bytes()],
        "a local edit is news to a"
    );

    // a edits too, concurrently: merged with b's edit, the version b holds is news to a
    // although a sent the last change.
    let patch = minga_protocol::entry::EntryPatch {
        title: Some("Abono de hojas".into()),
        ..Default::default()
    };
    a.patch_entry(&entry, &patch).unwrap();
    let changed = b
        .apply_remote(
            entry,
            DocKind::Entry,
            &whole(&a, &entry),
            mirror,
            peer_a,
            None,
        )
        .unwrap();
    assert!(changed.value);
    assert_eq!(listed(&b, Some(peer_a)), vec![*entry.as_bytes()]);
}

/// A document of a collection not followed is refused before automerge reads its bytes: here
/// bytes that would not even load are refused as unwanted, not as malformed.
#[test]
fn documents_of_collections_not_followed_are_refused_before_loading() {
    let temp = tempfile::tempdir().unwrap();
    let mut a = open(&temp.path().join("a"));
    let named: NewCollection = serde_json::from_value(json!({"name": "huerta"})).unwrap();
    let collection = a.create_collection(&named).unwrap().value;
    let new = serde_json::from_value(json!({"collection": collection.to_string(),
        "kind": "practice", "title": "Abono", "body": "Compost de hojas.",
        "license": "CC0-1.0"}))
    .unwrap();
    let entry = a.create_entry(&new).unwrap().value;

    let mut b = open(&temp.path().join("b"));
    let peer_a = source_tag("peer-a");
    for (id, kind) in [(collection, DocKind::Collection), (entry, DocKind::Entry)] {
        b.apply_remote(id, kind, &whole(&a, &id), true, peer_a, None)
            .unwrap();
    }
    b.set_followed(&collection, false).unwrap();

    let garbage = Payload::Whole {
        document: vec![0x85, 0x6f, 0x4a, 0x83, 0xff],
        signatures: Vec::new(),
    };
    for (id, kind) in [(collection, DocKind::Collection), (entry, DocKind::Entry)] {
        let changed = b
            .apply_remote(id, kind, &garbage, false, peer_a, None)
            .unwrap();
        assert!(!changed.value, "{kind:?} of a collection not followed");
    }
    b.set_followed(&collection, true).unwrap();
    assert!(
        matches!(
            b.apply_remote(entry, DocKind::Entry, &garbage, false, peer_a, None),
            Err(Error::Rejected(_))
        ),
        "followed again, the same bytes are loaded and refused as malformed"
    );
}

/// Documents verified ahead, on every core, come back in order: the good ones are kept as
/// verified, the bad one is refused as the writer would refuse it.
#[test]
fn documents_verified_ahead_are_kept_or_refused_in_order() {
    let temp = tempfile::tempdir().unwrap();
    let mut a = open(&temp.path().join("a"));
    let named: NewCollection = serde_json::from_value(json!({"name": "huerta"})).unwrap();
    let collection = a.create_collection(&named).unwrap().value;
    let mut docs = vec![(collection, DocKind::Collection)];
    for title in ["Abono", "Riego", "Semillas"] {
        let new = serde_json::from_value(json!({"collection": collection.to_string(),
            "kind": "practice", "title": title, "body": "Compost de hojas.",
            "license": "CC0-1.0"}))
        .unwrap();
        docs.push((a.create_entry(&new).unwrap().value, DocKind::Entry));
    }
    let garbage = Payload::Whole {
        document: vec![0x85, 0x6f, 0x4a, 0x83, 0xff],
        signatures: Vec::new(),
    };
    let mut payloads: Vec<Payload> = docs.iter().map(|(id, _)| whole(&a, id)).collect();
    payloads[2] = garbage;
    let listed: Vec<_> = docs
        .iter()
        .zip(&payloads)
        .map(|((id, kind), payload)| Some((*id, *kind, payload)))
        .collect();
    let ahead: Vec<Verified> = Verified::ahead(&listed)
        .into_iter()
        .map(|one| one.expect("every document given is verified"))
        .collect();
    assert_eq!(ahead.len(), docs.len());

    let mut b = open(&temp.path().join("b"));
    let peer_a = source_tag("peer-a");
    for (((id, kind), payload), verified) in docs.iter().zip(&payloads).zip(ahead) {
        let applied = b.apply_remote(*id, *kind, payload, true, peer_a, Some(verified));
        if *id == docs[2].0 {
            assert!(matches!(applied, Err(Error::Rejected(_))), "{applied:?}");
        } else {
            assert!(applied.unwrap().value, "{kind:?} {id} kept");
        }
    }
    assert!(b.store().entry(&docs[1].0).unwrap().is_some());
    assert!(b.store().entry(&docs[2].0).unwrap().is_none());
    assert!(b.store().entry(&docs[3].0).unwrap().is_some());
}

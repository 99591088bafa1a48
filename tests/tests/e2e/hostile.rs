//! A hostile peer sends real bytes through the node's real network and verification paths:
//! nothing forged is stored, the peer is dropped every time, and honest sync goes on.

use minga_protocol::automerge::{ActorId, Automerge};
use minga_protocol::entry::{self, EntryPatch, NewEntry};
use minga_protocol::fixtures;
use minga_protocol::wire::{HashSignature, Offer, Payload, Request, SignedBytes, WireKind};
use minga_protocol::{AuthorKey, DocumentId};
use minga_tests::hostile::{Hostile, Outcome};
use minga_tests::{Node, wait_until};
use serde_json::json;

fn genuine(
    actor: ActorId,
    collection: &DocumentId,
    key: &AuthorKey,
    title: &str,
) -> (DocumentId, Automerge) {
    let new = NewEntry {
        license: "CC0-1.0".into(),
        lang: None,
        ..fixtures::new_entry(collection, title, "Texto original.", &[])
    };
    let by = fixtures::Maker {
        key,
        name: "Hostil",
        actor,
        now: 1,
    };
    fixtures::genesis(&new, collection, by)
}

fn whole(id: DocumentId, doc: &Automerge, key: &AuthorKey, signed_as: DocumentId) -> Request {
    let signatures = key
        .sign_changes_since(&signed_as, doc, &[])
        .into_iter()
        .map(|(hash, sig)| HashSignature {
            hash: hash.0,
            signature: sig.0.to_vec(),
        })
        .collect();
    offer(
        id,
        Payload::Whole {
            document: doc.save(),
            signatures,
        },
    )
}

fn offer(id: DocumentId, payload: Payload) -> Request {
    Request::Sync {
        offers: vec![Offer {
            id: *id.as_bytes(),
            kind: WireKind::Entry,
            heads: Vec::new(),
            payload,
        }],
    }
}

fn stored(node: &Node, id: &DocumentId) -> bool {
    node.get(&format!("/api/v1/entries/{id}")).0 == 200
}

#[test]
fn forged_and_broken_messages_store_nothing_and_drop_the_peer() {
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let node = Node::start(dirs[0].path());
    let collection: DocumentId = node.post("/api/v1/collections", r#"{"name": "c"}"#).1["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let addr = node.p2p_addr();
    let mut hostile = Hostile::new();
    let key = AuthorKey::from_bytes(&[42; 32]);
    let other = AuthorKey::from_bytes(&[43; 32]);

    // A bad signature.
    let (id, doc) = genuine(key.actor([1; 16]), &collection, &key, "Firma rota");
    let Request::Sync { mut offers } = whole(id, &doc, &key, id) else {
        unreachable!()
    };
    if let Payload::Whole { signatures, .. } = &mut offers[0].payload {
        signatures[0].signature[5] ^= 1;
    }
    assert_eq!(
        hostile.send(&addr, Hostile::frame(&Request::Sync { offers })),
        Outcome::Dropped
    );
    assert!(!stored(&node, &id));

    // A change signed by a key that is not its actor's.
    let (id, doc) = genuine(key.actor([2; 16]), &collection, &key, "Llave ajena");
    assert_eq!(
        hostile.send(&addr, Hostile::frame(&whole(id, &doc, &other, id))),
        Outcome::Dropped
    );
    assert!(!stored(&node, &id));

    // A foreign actor: not an author key followed by a nonce.
    let (id, doc) = genuine(ActorId::from([9u8; 16]), &collection, &key, "Actor ajeno");
    assert_eq!(
        hostile.send(&addr, Hostile::frame(&whole(id, &doc, &key, id))),
        Outcome::Dropped
    );
    assert!(!stored(&node, &id));

    // A genesis change transplanted into another entry's id, signed for that id.
    let (x, x_doc) = genuine(key.actor([3; 16]), &collection, &key, "Original");
    let (y, _) = genuine(key.actor([4; 16]), &collection, &key, "Víctima");
    assert_eq!(
        hostile.send(&addr, Hostile::frame(&whole(y, &x_doc, &key, y))),
        Outcome::Dropped
    );
    assert!(!stored(&node, &y) && !stored(&node, &x));

    // An equivocating pair: two different changes with one actor and sequence number.
    let (id, doc) = genuine(key.actor([5; 16]), &collection, &key, "Equívoco");
    assert!(matches!(
        hostile.send(&addr, Hostile::frame(&whole(id, &doc, &key, id))),
        Outcome::Answered(_)
    ));
    assert!(stored(&node, &id), "the honest first version is kept");
    let edit = |body: &str| {
        let mut fork = doc.fork().with_actor(key.actor([6; 16]));
        let before = fork.get_heads();
        let patch = EntryPatch {
            body: Some(body.into()),
            ..EntryPatch::default()
        };
        entry::apply_patch(&mut fork, id, &patch, &key.id(), 2).unwrap();
        let change = fork.get_changes(&before).pop().unwrap();
        let signature = key.sign_change(&id, &change.hash());
        offer(
            id,
            Payload::Changes(vec![SignedBytes {
                change: change.raw_bytes().to_vec(),
                signature: signature.0.to_vec(),
            }]),
        )
    };
    assert!(matches!(
        hostile.send(&addr, Hostile::frame(&edit("Primera versión."))),
        Outcome::Answered(_)
    ));
    assert_eq!(
        hostile.send(&addr, Hostile::frame(&edit("Otra versión."))),
        Outcome::Dropped
    );
    let kept = node.get(&format!("/api/v1/entries/{id}")).1;
    assert_eq!(kept["body"], "Primera versión.");

    // An oversized frame, and garbage.
    let oversized = [[0x7f, 0xff, 0xff, 0xff].as_slice(), &[0u8; 1000]].concat();
    assert_eq!(hostile.send(&addr, oversized), Outcome::Dropped);
    let garbage = [
        [0, 0, 0, 24].as_slice(),
        &[0xde, 0xad, 0xbe, 0xef].repeat(6),
    ]
    .concat();
    assert_eq!(hostile.send(&addr, garbage), Outcome::Dropped);

    let metrics = node.send("GET", "/metrics", None);
    assert_eq!(metrics.0, 200);

    // Honest sync goes on.
    let honest = Node::start_with(dirs[1].path(), &["--bootstrap", &addr]);
    assert_eq!(
        honest
            .post(&format!("/api/v1/collections/{collection}/follow"), "")
            .0,
        200
    );
    let new = json!({"collection": collection.to_string(), "kind": "practice", "title": "Honesta",
                     "body": "Sigue.", "license": "CC0-1.0"});
    let honest_id = node.post("/api/v1/entries", &new.to_string()).1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_until(60, "honest sync", || {
        honest.get(&format!("/api/v1/entries/{honest_id}")).0 == 200
    });
}

/// Decodes a framed response the harness peer received.
fn response(outcome: Outcome) -> minga_protocol::wire::Response {
    let Outcome::Answered(bytes) = outcome else {
        panic!("the node dropped an honest request")
    };
    minga_protocol::wire::decode(&bytes[4..], minga_protocol::wire::MAX_MESSAGE_BYTES).unwrap()
}

#[test]
fn private_entries_and_unconsented_histories_never_cross_the_wire() {
    use minga_protocol::reconcile::{self, RangeBody};
    use minga_protocol::wire::Response;

    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let collection = node.post("/api/v1/collections", r#"{"name": "c"}"#).1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let post = |fields: serde_json::Value| {
        let mut new = json!({"collection": collection, "kind": "practice", "title": "t",
                             "body": "b", "license": "CC0-1.0"});
        new.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        let id: DocumentId = node.post("/api/v1/entries", &new.to_string()).1["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        id
    };
    let private = post(json!({"private": true}));
    let unconsented =
        post(json!({"kind": "history", "consent": [{"name": "Doña Rosa", "status": "refused"}]}));
    let public = post(json!({"title": "Pública"}));
    let collection: DocumentId = collection.parse().unwrap();
    let addr = node.p2p_addr();
    let mut peer = Hostile::new();

    // Reconciling from an empty set: the node lists what it would share.
    let ask = Request::Reconcile {
        collection: *collection.as_bytes(),
        parts: reconcile::initiate(&reconcile::ItemSet::default()),
    };
    let Response::Reconcile { parts } = response(peer.send(&addr, Hostile::frame(&ask))) else {
        panic!()
    };
    let listed: Vec<[u8; 16]> = parts
        .iter()
        .flat_map(|p| match &p.body {
            RangeBody::Items(items) => items.iter().map(|i| i.id).collect(),
            _ => Vec::new(),
        })
        .collect();
    assert!(listed.contains(public.as_bytes()) && listed.contains(collection.as_bytes()));
    assert!(!listed.contains(private.as_bytes()) && !listed.contains(unconsented.as_bytes()));

    // Asking for them by id gets nothing; asking for the public one gets it whole.
    let ask = |id: DocumentId| offer(id, Payload::Nothing);
    for hidden in [private, unconsented] {
        let Response::Sync { answers } = response(peer.send(&addr, Hostile::frame(&ask(hidden))))
        else {
            panic!()
        };
        assert_eq!(
            (answers[0].heads.len(), &answers[0].payload),
            (0, &Payload::Nothing)
        );
    }
    let Response::Sync { answers } = response(peer.send(&addr, Hostile::frame(&ask(public))))
    else {
        panic!()
    };
    assert!(matches!(answers[0].payload, Payload::Whole { .. }));
}

/// Lists longer than any honest node sends are malformed messages: a reconciliation range of
/// thousands of items (once compared quadratically on the node's runtime), more offers than a
/// batch holds, items out of order. The peer is dropped each time and the node goes on
/// answering.
#[test]
fn oversized_and_unordered_lists_drop_the_peer() {
    use minga_protocol::limits::{MAX_RANGE_ITEMS, MAX_SYNC_OFFERS};
    use minga_protocol::reconcile::{self, Item, RangeBody, RangePart};
    use minga_protocol::wire::Response;

    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let collection: DocumentId = node.post("/api/v1/collections", r#"{"name": "c"}"#).1["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let addr = node.p2p_addr();
    let mut peer = Hostile::new();
    let items = |n: u32| -> Vec<Item> {
        (0..n)
            .map(|i| {
                let mut id = [0u8; 16];
                id[..4].copy_from_slice(&i.to_be_bytes());
                Item {
                    id,
                    digest: [1; 16],
                }
            })
            .collect()
    };
    let reconcile = |items: Vec<Item>| Request::Reconcile {
        collection: *collection.as_bytes(),
        parts: vec![RangePart {
            upper: None,
            body: RangeBody::Items(items),
        }],
    };

    let huge = reconcile(items(20_000));
    assert_eq!(peer.send(&addr, Hostile::frame(&huge)), Outcome::Dropped);
    let mut unordered = items(3);
    unordered.reverse();
    assert_eq!(
        peer.send(&addr, Hostile::frame(&reconcile(unordered))),
        Outcome::Dropped
    );
    let Request::Sync { offers } = offer(collection, Payload::Nothing) else {
        unreachable!()
    };
    let too_many = Request::Sync {
        offers: vec![offers[0].clone(); MAX_SYNC_OFFERS + 1],
    };
    assert_eq!(
        peer.send(&addr, Hostile::frame(&too_many)),
        Outcome::Dropped
    );

    // A range as long as an honest node may send is answered.
    let honest = reconcile(items(MAX_RANGE_ITEMS as u32));
    assert!(matches!(
        response(peer.send(&addr, Hostile::frame(&honest))),
        Response::Reconcile { .. }
    ));
    let ask = Request::Reconcile {
        collection: *collection.as_bytes(),
        parts: reconcile::initiate(&reconcile::ItemSet::default()),
    };
    assert!(matches!(
        response(peer.send(&addr, Hostile::frame(&ask))),
        Response::Reconcile { .. }
    ));
}

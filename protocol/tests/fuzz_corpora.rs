//! Replays every committed fuzz corpus (`fuzz/corpus/<target>/`) through the same entry points
//! the fuzz targets call, so `cargo test` on the stable toolchain catches a regression on any
//! input a fuzzer once kept. `write_seeds` (ignored) writes the real messages the corpora start
//! from: `cargo test -p minga-protocol --test fuzz_corpora -- --ignored write_seeds`.

use std::fs;
use std::path::PathBuf;

use minga_protocol::automerge::ActorId;
use minga_protocol::blob::{BlobHash, BlobRequest, BlobResponseHead};
use minga_protocol::bundle::{
    self, DocumentState, Exporter, FORMAT_VERSION, Manifest, PartHeader, Section, SectionKind,
};
use minga_protocol::fixtures::{self, NOW, collection_id};
use minga_protocol::fuzzing::TARGETS;
use minga_protocol::sync::{self, SignedDoc};
use minga_protocol::wire::{
    self, Announcement, Catalogue, CatalogueItem, Offer, Request, Response, WireKind,
};
use minga_protocol::{AuthorKey, DocumentId, Tombstone};

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

#[test]
fn every_corpus_replays_without_a_panic() {
    for (target, run) in TARGETS {
        let dir = corpus(target);
        let files: Vec<_> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
            .map(|f| f.expect("corpus entry").path())
            .collect();
        assert!(!files.is_empty(), "corpus of {target} is empty");
        for file in files {
            let bytes = fs::read(&file).expect("corpus file");
            run(&bytes);
        }
    }
}

fn signed_entry(key: &AuthorKey, title: &str) -> (DocumentId, SignedDoc) {
    let body = "Se siembra **maíz** con frijol y calabaza.\n\n- agua\n- sombra";
    let new = fixtures::new_entry(&collection_id(), title, body, &["milpa".into()]);
    let by = fixtures::Maker {
        key,
        name: "Ana",
        actor: ActorId::from(vec![7u8; 16]),
        now: NOW,
    };
    fixtures::signed_genesis(&new, &collection_id(), by)
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = corpus(target);
    fs::create_dir_all(&dir).expect("corpus dir");
    fs::write(dir.join(name), bytes).expect("seed");
}

#[test]
#[ignore = "writes the seed corpora; run by hand"]
fn write_seeds() {
    let key = AuthorKey::from_bytes(&[3; 32]);
    let (id, signed) = signed_entry(&key, "Milpa de temporal");
    let whole = sync::payload_for(&signed, &[], || signed.doc.save());
    let changes = sync::payload_for(&signed, &[[0; 32]], || signed.doc.save());
    let stone = Tombstone::sign(&key, id, "retirado por la familia");
    let offer = |payload| Offer {
        id: *id.as_bytes(),
        kind: WireKind::Entry,
        heads: sync::heads_bytes(&signed.doc),
        payload,
    };
    let sync_requests = [
        (
            "whole",
            Request::Sync {
                offers: vec![offer(whole)],
            },
        ),
        (
            "changes",
            Request::Sync {
                offers: vec![offer(changes)],
            },
        ),
        (
            "tombstone",
            Request::Sync {
                offers: vec![offer(wire::Payload::Tombstone(stone.clone()))],
            },
        ),
    ];
    for (name, request) in &sync_requests {
        write("sync_payload", name, &wire::encode(request));
        write(
            "wire",
            &format!("request-{name}"),
            &[[0].as_slice(), &wire::encode(request)].concat(),
        );
    }
    let collection = [9; 16];
    let messages: Vec<(&str, u8, Vec<u8>)> = vec![
        ("operator", 0, wire::encode(&Request::Operator)),
        (
            "since",
            0,
            wire::encode(&Request::Since {
                collection,
                since: 42,
            }),
        ),
        (
            "refused",
            1,
            wire::encode(&Response::Refused {
                reason: "busy".into(),
            }),
        ),
        (
            "announcement",
            2,
            wire::encode(&Announcement {
                collection,
                id: *id.as_bytes(),
                kind: WireKind::Entry,
                heads: sync::heads_bytes(&signed.doc),
            }),
        ),
        (
            "catalogue",
            3,
            wire::encode(&Catalogue {
                collections: vec![CatalogueItem {
                    id: collection,
                    name: "cafe".into(),
                    title: "Café de sombra".into(),
                }],
            }),
        ),
        (
            "blob-request",
            4,
            wire::encode(&BlobRequest {
                hash: BlobHash::of(b"minga"),
                start: 0,
                len: 1024,
            }),
        ),
        (
            "blob-head",
            5,
            wire::encode(&BlobResponseHead::Range {
                size: 4096,
                encoded_len: 4200,
            }),
        ),
    ];
    for (name, kind, bytes) in messages {
        write("wire", name, &[[kind].as_slice(), &bytes].concat());
    }
    write("tombstone", "signed", &wire::encode(&stone));

    let manifest = Manifest {
        format: FORMAT_VERSION,
        node: Exporter {
            peer_id: "12D3KooW".into(),
            author: key.id().to_string(),
        },
        created: 1_700_000_000_000,
        collections: vec![DocumentId::from_bytes(collection)],
        since: None,
        documents: vec![DocumentState {
            id,
            kind: SectionKind::Entry,
            heads: Vec::new(),
        }],
        tombstones: Vec::new(),
        sections: vec![Section {
            kind: SectionKind::Entry,
            id: id.to_string(),
            size: 10,
            hash: "00".repeat(32),
        }],
    };
    let (manifest, signature) = manifest.sign(&key);
    let header = PartHeader {
        format: FORMAT_VERSION,
        index: 1,
        count: 1,
        bundle: bundle::bundle_id(&manifest),
    };
    let bytes = [
        header.encode().as_slice(),
        &u32::try_from(manifest.len()).expect("small").to_le_bytes(),
        &manifest,
        &signature.0,
    ]
    .concat();
    write("bundle_manifest", "minimal", &bytes);
}

//! Entry points for the fuzz targets and for the test that replays their corpora: each takes
//! untrusted bytes and runs the real decoder as the node runs it, so a fuzzer reaches exactly
//! the code a peer or a bundle reaches. An `Err` is a correct answer; only a panic, an abort
//! or an allocation past the fuzzer's limit is a finding. Not an API: hidden from the docs.

use crate::blob::{BlobRequest, BlobResponseHead};
use crate::bundle::{self, Manifest, PART_HEADER_LEN, PartHeader};
use crate::sync;
use crate::wire::{
    self, Announcement, Catalogue, MAX_GOSSIP_BYTES, MAX_MESSAGE_BYTES, Payload, Request, Response,
};
use crate::{DocKind, DocumentId, Signature, Tombstone};

/// A fuzz target: its name (the directory of its corpus) and its entry point.
pub type Target = (&'static str, fn(&[u8]));

/// Every target of this crate, by corpus name.
pub const TARGETS: &[Target] = &[
    ("wire", wire),
    ("sync_payload", sync_payload),
    ("bundle_manifest", bundle_manifest),
    ("tombstone", tombstone),
];

/// The `init` of every fuzz target. libfuzzer-sys's panic hook aborts on every panic, even one
/// the code catches on purpose (automerge's, contained by `verify::contained`); this puts the
/// default hook back, which prints the panic and lets it unwind. A panic that escapes a target
/// still ends the run: libfuzzer-sys turns an entry point that unwinds into an abort.
pub fn let_caught_panics_unwind() {
    drop(std::panic::take_hook());
}

/// Every message a peer sends as one value: `/minga/sync/1` requests and responses, gossip
/// announcements and catalogues, and the heads of `/minga/blob/1`. The first byte picks the
/// message type, the rest is the message.
pub fn wire(data: &[u8]) {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    match kind % 6 {
        0 => drop(wire::decode::<Request>(bytes, MAX_MESSAGE_BYTES)),
        1 => drop(wire::decode::<Response>(bytes, MAX_MESSAGE_BYTES)),
        2 => drop(wire::decode::<Announcement>(bytes, MAX_GOSSIP_BYTES)),
        3 => {
            // The catalogue is decoded, then each item's strings are shown to the operator.
            if let Ok(catalogue) = wire::decode::<Catalogue>(bytes, MAX_GOSSIP_BYTES) {
                for item in catalogue.collections {
                    drop(DocumentId::from_bytes(item.id).to_string());
                }
            }
        }
        // The blob codec checks its own, smaller header length before it decodes.
        4 => {
            if let Ok(request) = wire::decode::<BlobRequest>(bytes, bytes.len()) {
                request.is_valid();
            }
        }
        _ => drop(wire::decode::<BlobResponseHead>(bytes, bytes.len())),
    }
}

/// A `/minga/sync/1` request as the node handles it: every offer's payload is verified and
/// applied to nothing held (the case of a document first heard of): automerge change and
/// document loading, signature and schema checks.
pub fn sync_payload(data: &[u8]) {
    let Ok(Request::Sync { offers }) = wire::decode::<Request>(data, MAX_MESSAGE_BYTES) else {
        return;
    };
    for offer in offers {
        let id = DocumentId::from_bytes(offer.id);
        if let Payload::Tombstone(stone) = &offer.payload {
            stone.verified_signer();
        }
        drop(sync::apply_payload(
            id,
            DocKind::from(offer.kind),
            None,
            &offer.payload,
        ));
    }
}

/// The head of a bundle as the importer reads it: the part header, the manifest's length
/// (`u32`, little-endian), the manifest, its signature; then the manifest is opened.
pub fn bundle_manifest(data: &[u8]) {
    let Some((header, rest)) = data.split_first_chunk::<PART_HEADER_LEN>() else {
        return;
    };
    let Ok(header) = PartHeader::decode(header) else {
        return;
    };
    drop(header.check_follows(&header, 1));
    let Some((length, rest)) = rest.split_first_chunk::<4>() else {
        return;
    };
    let length = u32::from_le_bytes(*length);
    if length > bundle::MAX_MANIFEST_BYTES {
        return;
    }
    let Some((manifest, rest)) = rest.split_at_checked(length as usize) else {
        return;
    };
    let Some(signature) = rest.first_chunk::<{ bundle::SIGNATURE_LEN }>() else {
        return;
    };
    if let Ok(manifest) = Manifest::open(header.format, manifest, &Signature(*signature)) {
        manifest.data_bytes();
    }
    // Most inputs fail the signature; the parser behind it is reached directly too.
    drop(bundle::upgrade(header.format, manifest));
}

/// A tombstone as a peer sends it (in a sync payload) and as its signature is checked.
pub fn tombstone(data: &[u8]) {
    if let Ok(stone) = wire::decode::<Tombstone>(data, MAX_MESSAGE_BYTES) {
        stone.verified_signer();
    }
}

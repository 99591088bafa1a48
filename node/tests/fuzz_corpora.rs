//! Replays every committed corpus of the node's fuzz targets (`fuzz/corpus/<target>/`) through
//! the entry points the targets call, so `cargo test` on the stable toolchain catches a
//! regression on any input a fuzzer once kept. `write_seeds` (ignored) writes the real inputs
//! the corpora start from: `cargo test -p minga-node --test fuzz_corpora -- --ignored
//! write_seeds` (after the protocol's, whose sync messages it frames).

use std::fs::{self, File};
use std::io::Cursor as ImageCursor;
use std::path::PathBuf;

use futures::executor::block_on;
use futures::io::Cursor;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ColorType, ImageEncoder};
use libp2p::request_response::Codec;
use minga_node::blobs::verified;
use minga_node::bundle::ExportRequest;
use minga_node::fuzzing::{MULTIPART_BOUNDARY, TARGETS, bao_blob};
use minga_node::network::blob_codec::{BLOB_PROTOCOL, BlobCodec, BlobReply};
use minga_node::network::codec::{Inbound, SYNC_PROTOCOL, SyncCodec};
use minga_node::{Commons, DataDir};
use minga_protocol::NewCollection;
use minga_protocol::blob::{BlobRequest, BlobResponseHead, CHUNK_GROUP_BYTES};
use minga_protocol::bundle::{PART_HEADER_LEN, SIGNATURE_LEN};
use minga_protocol::entry::NewEntry;
use minga_protocol::wire::{self, MAX_MESSAGE_BYTES, Request, Response};

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

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = corpus(target);
    fs::create_dir_all(&dir).expect("corpus dir");
    fs::write(dir.join(name), bytes).expect("seed");
}

/// `kind ‖ bytes`, the shape of the targets that pick a mode by their first byte.
fn with_kind(kind: u8, bytes: &[u8]) -> Vec<u8> {
    [[kind].as_slice(), bytes].concat()
}

/// How many of the protocol's sync messages [`sync_frame_seeds`] frames of each kind.
const FRAMED_SEEDS: usize = 16;

/// The protocol's `wire` corpus's sync requests and responses that decode, written by the
/// codec as frames.
fn sync_frame_seeds() {
    let mut codec = SyncCodec;
    let mut files: Vec<_> = fs::read_dir(corpus("wire"))
        .expect("the protocol's wire corpus")
        .map(|file| file.expect("wire input").path())
        .collect();
    files.sort();
    let (mut requests, mut responses) = (0, 0);
    for path in files {
        let bytes = fs::read(&path).unwrap();
        let Some((&kind, message)) = bytes.split_first() else {
            continue;
        };
        let mut io = Cursor::new(Vec::new());
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        match kind % 6 {
            0 if requests < FRAMED_SEEDS => {
                let Ok(request) = wire::decode::<Request>(message, MAX_MESSAGE_BYTES) else {
                    continue;
                };
                block_on(codec.write_request(&SYNC_PROTOCOL, &mut io, Inbound::Valid(request)))
                    .unwrap();
                write("sync_frame", &name, &with_kind(0, &io.into_inner()));
                requests += 1;
            }
            1 if responses < FRAMED_SEEDS => {
                let Ok(response) = wire::decode::<Response>(message, MAX_MESSAGE_BYTES) else {
                    continue;
                };
                block_on(codec.write_response(&SYNC_PROTOCOL, &mut io, response)).unwrap();
                write("sync_frame", &name, &with_kind(1, &io.into_inner()));
                responses += 1;
            }
            _ => {}
        }
    }
    assert!(requests > 0 && responses > 0, "no sync message to frame");
}

/// The real encoding of `start..start + len` of [`bao_blob`].
fn bao_encoding(start: u64, len: u64) -> Vec<u8> {
    let (bytes, hash) = bao_blob();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("data"), bytes).unwrap();
    let outboard = File::options()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(dir.path().join("outboard"))
        .unwrap();
    let data = File::open(dir.path().join("data")).unwrap();
    let size = bytes.len() as u64;
    assert_eq!(
        &verified::compute_outboard(&data, size, &outboard).unwrap(),
        hash
    );
    let data = File::open(dir.path().join("data")).unwrap();
    verified::encode_range(hash, size, &data, &outboard, start, len).unwrap()
}

fn blob_seeds() {
    let (bytes, hash) = bao_blob();
    let size = bytes.len() as u64;
    let mut codec = BlobCodec;
    let mut io = Cursor::new(Vec::new());
    let request = BlobRequest {
        hash: *hash,
        start: 0,
        len: size,
    };
    block_on(codec.write_request(&BLOB_PROTOCOL, &mut io, request)).unwrap();
    write("blob_frame", "request", &with_kind(0, &io.into_inner()));
    let encoded = bao_encoding(3 * CHUNK_GROUP_BYTES, size - 3 * CHUNK_GROUP_BYTES);
    let reply = BlobReply {
        head: BlobResponseHead::Range {
            size,
            encoded_len: encoded.len() as u64,
        },
        encoded: encoded.clone(),
    };
    let mut io = Cursor::new(Vec::new());
    block_on(codec.write_response(&BLOB_PROTOCOL, &mut io, reply)).unwrap();
    write("blob_frame", "range", &with_kind(1, &io.into_inner()));
    write("bao_range", "from-group-3", &with_kind(6, &encoded));
    write("bao_range", "whole", &with_kind(0, &bao_encoding(0, size)));
    let start = 5 * CHUNK_GROUP_BYTES;
    let claimed = [
        size.to_le_bytes().as_slice(),
        &start.to_le_bytes(),
        &bao_encoding(start, size - start),
    ]
    .concat();
    write("bao_range", "claimed-size", &with_kind(1, &claimed));
}

/// A commons with a collection, entries in Markdown and a deleted one, exported as a bundle.
fn bundle_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let mut commons = Commons::open(&DataDir::new(dir.path()), 8 << 20).unwrap();
    commons
        .create_collection(&NewCollection {
            name: "huerta".into(),
            title: Some("Huerta familiar".into()),
            description: None,
            license: None,
        })
        .unwrap();
    let mut ids = Vec::new();
    for (title, body) in [
        (
            "Abono verde",
            "Sembrar *vicia* y avena; incorporar en flor.",
        ),
        (
            "Biol",
            "1. Estiércol fresco\n2. Agua\n\n| día | paso |\n|---|---|\n| 1 | mezclar |",
        ),
        ("Error", "duplicado"),
    ] {
        let new: NewEntry = serde_json::from_value(serde_json::json!({
            "collection": "huerta", "kind": "practice", "title": title, "body": body,
            "license": "CC0-1.0", "lang": "es", "tags": ["suelo"]
        }))
        .unwrap();
        ids.push(commons.create_entry(&new).unwrap().value);
    }
    commons.delete_entry(&ids[2], "duplicado").unwrap();
    commons.flush().unwrap();
    let out = dir.path().join("huerta.minga");
    let request = ExportRequest {
        all: true,
        out: out.clone(),
        ..ExportRequest::default()
    };
    commons.export_bundle(&request, &mut |_| {}).unwrap();
    let bundle = fs::read(&out).unwrap();
    write("bundle_file", "exported", &bundle);
    let inspected = minga_node::bundle::inspect(&out).unwrap();
    write(
        "bundle_file",
        "inspect-json",
        &serde_json::to_vec(&inspected).unwrap(),
    );
    // The manifest's length, the manifest and the sections, without header and signature.
    let length = u32::from_le_bytes(bundle[PART_HEADER_LEN..][..4].try_into().unwrap()) as usize;
    let manifest = &bundle[PART_HEADER_LEN + 4..][..length];
    let body = &bundle[PART_HEADER_LEN + 4 + length + SIGNATURE_LEN..];
    write(
        "bundle_import",
        "exported",
        &[
            &bundle[PART_HEADER_LEN..PART_HEADER_LEN + 4],
            manifest,
            body,
        ]
        .concat(),
    );
    let collection = inspected.manifest.collections[0];
    write(
        "list_params",
        "entries",
        format!("collection={collection}&kind=practice&tag=suelo&lang=es&limit=20").as_bytes(),
    );
    write(
        "list_params",
        "cursor",
        format!("limit=1&cursor={}", "0a".repeat(24)).as_bytes(),
    );
    write(
        "list_params",
        "search",
        b"q=abono+verde%20ma%C3%ADz&place=Loja&cursor=20&collection=huerta",
    );
}

fn request_seeds() {
    for (name, size, value) in [
        ("first-bytes", 1000u64, "bytes=0-99"),
        ("suffix", 1000, "bytes=-500"),
        ("open", 1000, "bytes=100-"),
        ("several", 1000, " bytes=0-0, 5-9"),
        ("past-end", 10, "bytes=5-1000"),
    ] {
        write(
            "http_range",
            name,
            &[size.to_le_bytes().as_slice(), value.as_bytes()].concat(),
        );
    }
    let boundary = MULTIPART_BOUNDARY;
    let field = |name: &str, value: &str| {
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
    };
    let body = [
        field("csrf", "5f2b9c"),
        field("collection", "huerta"),
        field("title", "Milpa de temporal"),
        field("body", "Se siembra **maíz** con frijol."),
        field("tags", "milpa, maíz"),
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; \
             filename=\"C:\\fotos\\milpa.txt\"\r\nContent-Type: text/plain\r\n\r\nsurcos\r\n"
        ),
        format!("--{boundary}--\r\n"),
    ]
    .concat();
    write("multipart", "entry", &with_kind(0, body.as_bytes()));
    write(
        "multipart",
        "urlencoded",
        &with_kind(
            1,
            b"csrf=5f2b9c&title=Milpa+de+temporal&body=Se+siembra%0A%0A-+ma%C3%ADz",
        ),
    );
}

fn markdown_seeds() {
    let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../demo/sample-commons.json");
    let sample: serde_json::Value = serde_json::from_slice(&fs::read(sample).unwrap()).unwrap();
    for (i, entry) in sample["entries"].as_array().unwrap().iter().enumerate() {
        write(
            "markdown",
            &format!("sample-{i:02}"),
            entry["body"].as_str().unwrap().as_bytes(),
        );
    }
    write(
        "markdown",
        "hostile",
        b"<script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror=alert(1)>\n\n| a |\n|---|\n| ~~b~~ |",
    );
}

fn thumbnail_seeds() {
    let (width, height) = (24u32, 16u32);
    let pixels: Vec<u8> = (0..width * height * 3)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(&pixels, width, height, ColorType::Rgb8)
        .unwrap();
    write("thumbnail", "png", &with_kind(1, &png));
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(ImageCursor::new(&mut jpeg), 80)
        .encode(&pixels, width, height, ColorType::Rgb8)
        .unwrap();
    write("thumbnail", "jpeg", &with_kind(0, &jpeg));
}

#[test]
#[ignore = "writes the seed corpora; run by hand"]
fn write_seeds() {
    sync_frame_seeds();
    blob_seeds();
    bundle_seeds();
    request_seeds();
    markdown_seeds();
    thumbnail_seeds();
}

//! Entry points for the fuzz targets of the node's decoders and for the test that replays their
//! corpora, the node's half of `minga_protocol::fuzzing`: each takes untrusted bytes and runs
//! the node's real decoder on them as a peer, a bundle or an HTTP client reaches it. An `Err` is
//! a correct answer; only a panic, an abort or an allocation past the fuzzer's limit is a
//! finding. The targets that need a store share one scratch data dir per process. Not an API:
//! hidden from the docs.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock, PoisonError};

use axum::body::Body;
use axum::extract::{FromRequest, Multipart};
use axum::http::{HeaderValue, Request, header};
use futures::executor::block_on;
use libp2p::request_response::Codec;
use minga_protocol::bundle::{self, FORMAT_VERSION, PartHeader};
use minga_protocol::{AuthorKey, BlobHash};

use crate::blobs::{thumbnail, verified};
use crate::bundle::ImportRequest;
use crate::http::MAX_REQUEST_BYTES;
use crate::network::blob_codec::{BLOB_PROTOCOL, BlobCodec};
use crate::network::blobs::RANGE_BYTES;
use crate::network::codec::{SYNC_PROTOCOL, SyncCodec};
use crate::queries::{self, ListParams, Visibility};
use crate::search::DEFAULT_WRITER_BYTES;
use crate::web::{forms, markdown, pages};
use crate::{Commons, DataDir, SearchIndex};

/// A fuzz target: its name (the directory of its corpus) and its entry point.
pub type Target = (&'static str, fn(&[u8]));

/// Every target of this crate, by corpus name.
pub const TARGETS: &[Target] = &[
    ("sync_frame", sync_frame),
    ("blob_frame", blob_frame),
    ("bundle_file", bundle_file),
    ("bundle_import", bundle_import),
    ("bao_range", bao_range),
    ("http_range", http_range),
    ("multipart", multipart),
    ("list_params", list_params),
    ("markdown", markdown),
    ("thumbnail", thumbnail),
];

/// A `/minga/sync/1` stream as the codec reads it: a length-prefixed request (first byte even)
/// or response (odd).
pub fn sync_frame(data: &[u8]) {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    let mut io = futures::io::Cursor::new(bytes);
    let mut codec = SyncCodec;
    if kind % 2 == 0 {
        drop(block_on(codec.read_request(&SYNC_PROTOCOL, &mut io)));
    } else {
        drop(block_on(codec.read_response(&SYNC_PROTOCOL, &mut io)));
    }
}

/// A `/minga/blob/1` stream as the codec reads it: a request (first byte even), or a response's
/// header and the encoding it announces (odd).
pub fn blob_frame(data: &[u8]) {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    let mut io = futures::io::Cursor::new(bytes);
    let mut codec = BlobCodec;
    if kind % 2 == 0 {
        if let Ok(request) = block_on(codec.read_request(&BLOB_PROTOCOL, &mut io)) {
            request.is_valid();
        }
    } else {
        drop(block_on(codec.read_response(&BLOB_PROTOCOL, &mut io)));
    }
}

/// The data dir the targets that need a node share: a commons (store, keys, blobs) and a
/// search index over its store. One per process, under the system's temporary directory.
struct Scratch {
    dir: PathBuf,
    commons: Mutex<Commons>,
    search: SearchIndex,
}

fn scratch() -> &'static Scratch {
    static SCRATCH: OnceLock<Scratch> = OnceLock::new();
    SCRATCH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("minga-fuzz-{}", std::process::id()));
        let data = DataDir::new(&dir);
        let commons = Commons::open(&data, 8 << 20).expect("a scratch commons");
        let search = SearchIndex::open(&data.search_dir(), DEFAULT_WRITER_BYTES, commons.store())
            .expect("a scratch search index");
        Scratch {
            dir,
            commons: Mutex::new(commons),
            search,
        }
    })
}

/// Writes `bytes` as the file `name` of the scratch dir, for the readers that take a path.
fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch().dir.join(name);
    std::fs::write(&path, bytes).expect("writing a scratch file");
    path
}

/// A file given to `minga bundle import` or `inspect`, or as `--since`: part header, manifest
/// length, manifest, signature; or, not starting with the bundle magic, the JSON of `minga
/// bundle inspect --json`.
pub fn bundle_file(data: &[u8]) {
    let path = scratch_file("given.bundle", data);
    drop(crate::bundle::read_manifest(&path));
}

/// The key the hostile exporter of [`bundle_import`] signs with.
fn exporter_key() -> AuthorKey {
    AuthorKey::from_bytes(&[0x5a; 32])
}

/// A bundle whose manifest is signed and whose sections' hashes are right, as any author can
/// make one, imported into the scratch commons: section reading, payload decoding, the
/// verification of every change and the staged write. The input is the manifest's length
/// (`u32`, little-endian), its JSON and the sections' bytes; the target plays the exporter,
/// fixing each section's hash, the author and the signature, which a fuzzer cannot forge.
pub fn bundle_import(data: &[u8]) {
    let Some((length, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let Some((manifest, body)) = rest.split_at_checked(u32::from_le_bytes(*length) as usize) else {
        return;
    };
    let Ok(mut manifest) = bundle::upgrade(FORMAT_VERSION, manifest) else {
        return;
    };
    let key = exporter_key();
    manifest.format = FORMAT_VERSION;
    manifest.node.author = key.id().to_string();
    let mut at = 0usize;
    for section in &mut manifest.sections {
        let end = usize::try_from(section.size)
            .map_or(body.len(), |size| at.saturating_add(size).min(body.len()));
        section.hash = blake3::hash(&body[at..end]).to_hex().to_string();
        at = end;
    }
    let (manifest, signature) = manifest.sign(&key);
    let Ok(length) = u32::try_from(manifest.len()) else {
        return;
    };
    let header = PartHeader {
        format: FORMAT_VERSION,
        index: 1,
        count: 1,
        bundle: bundle::bundle_id(&manifest),
    };
    let file = [
        header.encode().as_slice(),
        &length.to_le_bytes(),
        &manifest,
        &signature.0,
        body,
    ]
    .concat();
    let request = ImportRequest {
        file: scratch_file("signed.bundle", &file),
        assume_free_bytes: Some(u64::MAX),
    };
    let mut commons = scratch()
        .commons
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    drop(commons.import_bundle(&request, &mut |_| {}));
}

/// The blob whose hash [`bao_range`] verifies against: a few chunk groups of varied bytes.
pub fn bao_blob() -> &'static (Vec<u8>, BlobHash) {
    static BLOB: OnceLock<(Vec<u8>, BlobHash)> = OnceLock::new();
    BLOB.get_or_init(|| {
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 1000) as u8).collect();
        let hash = BlobHash::of(&bytes);
        (bytes, hash)
    })
}

/// A peer's bao encoding of a range of [`bao_blob`], decoded as a download does. The first
/// byte, even, picks the range's first chunk group (the rest is the encoding); odd, the next
/// 16 bytes give the size and start the node believes (`u64`, little-endian), as an entry's
/// metadata may claim any size. Whatever verifies must be the blob's bytes.
pub fn bao_range(data: &[u8]) {
    let (blob, hash) = bao_blob();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let real = blob.len() as u64;
    let (size, start, encoded) = if mode % 2 == 0 {
        let groups = real.div_ceil(minga_protocol::blob::CHUNK_GROUP_BYTES);
        let start = u64::from(mode / 2) % groups * minga_protocol::blob::CHUNK_GROUP_BYTES;
        (real, start, rest)
    } else {
        let Some((size, rest)) = rest.split_first_chunk::<8>() else {
            return;
        };
        let Some((start, rest)) = rest.split_first_chunk::<8>() else {
            return;
        };
        let (size, start) = (u64::from_le_bytes(*size), u64::from_le_bytes(*start));
        // The node asks only for ranges that start inside the blob.
        if start >= size {
            return;
        }
        (size, start, rest)
    };
    let len = RANGE_BYTES.min(size - start);
    if let Ok(pieces) = verified::decode_range(hash, size, start, len, encoded) {
        for piece in pieces {
            let at = usize::try_from(piece.offset).expect("a verified offset is in the blob");
            assert_eq!(
                blob.get(at..at + piece.data.len()),
                Some(piece.data.as_slice()),
                "bytes at {at} verified but are not the blob's"
            );
        }
    }
}

/// An HTTP `Range` header on a blob download: the first 8 bytes are the blob's size
/// (`u64`, little-endian), the rest the header's value. A range answered lies in the blob.
pub fn http_range(data: &[u8]) {
    let Some((size, value)) = data.split_first_chunk::<8>() else {
        return;
    };
    let size = u64::from_le_bytes(*size);
    let Ok(value) = HeaderValue::from_bytes(value) else {
        return;
    };
    let Ok(text) = value.to_str() else {
        return;
    };
    if let Some((start, end)) = crate::api::blobs::parse_range(text, size) {
        assert!(
            start < end && end <= size,
            "{text:?} of {size}: {start}..{end}"
        );
    }
}

/// The boundary of the multipart bodies [`multipart`] reads.
pub const MULTIPART_BOUNDARY: &str = "----mingaFormBoundary7MA4YWxkTrZu0gW";

/// A posted entry form, as `web/forms.rs` reads one before anything is stored: the first byte,
/// even, makes the rest a `multipart/form-data` body (fields through axum's extractor, text
/// capped at [`MAX_REQUEST_BYTES`], file names cut to their last path piece); odd, a
/// URL-encoded body.
pub fn multipart(data: &[u8]) {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    if kind % 2 == 1 {
        drop(serde_urlencoded::from_bytes::<Vec<(String, String)>>(body));
        return;
    }
    let request = Request::builder()
        .method("POST")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={MULTIPART_BOUNDARY}"),
        )
        .body(Body::from(body.to_vec()))
        .expect("a request");
    block_on(async {
        let Ok(mut parts) = Multipart::from_request(request, &()).await else {
            return;
        };
        let mut text_bytes = 0;
        while let Ok(Some(mut field)) = parts.next_field().await {
            drop(field.name().map(str::to_owned));
            let file = field.file_name().map(forms::file_name);
            while let Ok(Some(chunk)) = field.chunk().await {
                text_bytes += chunk.len();
                if file.is_none() && text_bytes > MAX_REQUEST_BYTES {
                    return;
                }
            }
        }
    });
}

/// The query string of `GET /api/v1/entries` (and the web pages' lists), parsed as the API
/// parses it and run against the scratch store and search index: limit, cursor, collection,
/// and with `q`, the search query.
pub fn list_params(data: &[u8]) {
    let Ok(params) = serde_urlencoded::from_bytes::<ListParams>(data) else {
        return;
    };
    let scratch = scratch();
    let store = scratch
        .commons
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .store()
        .clone();
    drop(queries::list_entries(
        &store,
        Some(&scratch.search),
        &params,
        Visibility::Shareable,
    ));
}

/// An entry's body rendered as a page shows it; no script ever comes out.
pub fn markdown(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let html = markdown::render(text);
    assert!(!html.to_ascii_lowercase().contains("<script"), "{html}");
}

/// The image types a thumbnail is made of, picked by the input's first byte.
const IMAGE_MIMES: [&str; 3] = ["image/jpeg", "image/png", "image/webp"];

/// An attached image's thumbnail as the web pages ask for it: the header's size checked against
/// the pixel budget, then decoded under `image::Limits` and scaled.
pub fn thumbnail(data: &[u8]) {
    let Some((&kind, image)) = data.split_first() else {
        return;
    };
    let mime = IMAGE_MIMES[usize::from(kind) % IMAGE_MIMES.len()];
    let format = thumbnail::format_of(mime).expect("a supported image type");
    drop(thumbnail::make_contained(
        Cursor::new(image),
        format,
        &BlobHash::of(image),
        pages::Size::Small.pixels(),
    ));
}

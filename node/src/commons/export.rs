//! Writing a bundle: list the shareable documents of the chosen collections, leave out what the
//! receiver holds (`--since`), hash every section into the manifest, sign it, then stream the
//! sections into part files. Two passes over the store, so nothing but the manifest is held in
//! memory; both run under the store's single writer, so they see the same state.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::PathBuf;

use minga_protocol::automerge::ChangeHash;
use minga_protocol::bundle::{
    self, DocumentState, Exporter, MAX_PART_BYTES, Manifest, PART_HEADER_LEN, PartHeader, Section,
    SectionKind,
};
use minga_protocol::sync::{self, SignedDoc};
use minga_protocol::wire::{self, HashSignature, Payload};
use minga_protocol::{AuthorKey, DocumentId};

use crate::bundle::blobs::{self, BlobHash, BundleBlobs};
use crate::bundle::parts::{self, PartWriter};
use crate::bundle::{ExportError, ExportRequest, ExportSummary, Phase, Progress, section_id};
use crate::queries::resolve_collection;
use crate::store::{Reader, TOMBSTONE_DIGEST, load};

/// Smallest part size accepted (tests split tiny bundles; real ones use 2 GiB).
const MIN_PART_BYTES: u64 = 4096;

/// Where a section's bytes come from.
enum Source {
    Document {
        id: DocumentId,
        /// The receiver's heads, when `--since` says it holds the document.
        theirs: Option<Vec<[u8; 32]>>,
    },
    Tombstone(DocumentId),
    Blob(BlobHash),
}

/// The node exporting: its keys, names and state.
#[derive(Debug, Clone, Copy)]
pub struct Exporting<'a> {
    pub store: &'a Reader,
    pub author: &'a AuthorKey,
    pub peer_id: &'a str,
    /// The node's clock, recorded in the manifest.
    pub now: i64,
}

/// Writes the bundle `request` asks for.
pub fn export(
    node: Exporting<'_>,
    request: &ExportRequest,
    blob_store: &dyn BundleBlobs,
    progress: &mut dyn FnMut(&Progress),
) -> Result<ExportSummary, ExportError> {
    let part_bytes = request.part_bytes.unwrap_or(MAX_PART_BYTES);
    if !(MIN_PART_BYTES..=MAX_PART_BYTES).contains(&part_bytes) {
        return Err(ExportError::PartSize {
            min: MIN_PART_BYTES,
            max: MAX_PART_BYTES,
        });
    }
    let store = node.store;
    let collections = select(store, request)?;
    let since = match &request.since {
        Some(path) => Some(
            crate::bundle::read_manifest(path).map_err(|e| ExportError::Since {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?,
        ),
        None => None,
    };
    let theirs: BTreeMap<DocumentId, &Vec<String>> = since
        .iter()
        .map(|(m, _)| m)
        .flat_map(|m| m.documents.iter().map(|d| (d.id, &d.heads)))
        .collect();
    let their_tombstones: BTreeSet<DocumentId> = since
        .iter()
        .map(|(m, _)| m)
        .flat_map(|m| m.tombstones.iter().copied())
        .collect();
    let their_blobs: BTreeSet<&str> = since
        .iter()
        .map(|(m, _)| m)
        .flat_map(|m| m.sections.iter())
        .filter(|s| s.kind == SectionKind::Blob)
        .map(|s| s.id.as_str())
        .collect();

    // Pass 1: what is in scope, what the receiver lacks, and each section's hash.
    let mut summary = ExportSummary {
        collections: collections.len() as u64,
        ..ExportSummary::default()
    };
    let mut documents = Vec::new();
    let mut tombstones = Vec::new();
    let mut planned: Vec<(Section, Source)> = Vec::new();
    let mut blob_sections: BTreeMap<BlobHash, u64> = BTreeMap::new();
    let mut planning = Progress::default();
    for collection in &collections {
        for item in store.items(collection)? {
            let id = DocumentId::from_bytes(item.id);
            let kind = if id == *collection {
                SectionKind::Collection
            } else if item.digest == TOMBSTONE_DIGEST {
                if store.tombstone(&id)?.is_some() {
                    tombstones.push(id);
                    if !their_tombstones.contains(&id) {
                        planned.push((
                            hashed(SectionKind::Tombstone, &id, &tombstone_payload(store, &id)?),
                            Source::Tombstone(id),
                        ));
                    }
                }
                continue;
            } else {
                SectionKind::Entry
            };
            let Some(heads) = shareable_heads(store, &id, kind)? else {
                continue;
            };
            let their_heads = theirs.get(&id).map(|h| decode_heads(h));
            documents.push(DocumentState {
                id,
                kind,
                heads: heads.clone(),
            });
            if theirs.get(&id).is_some_and(|h| **h == heads) {
                summary.unchanged += 1;
                continue;
            }
            let Some(payload) = document_payload(store, &id, their_heads.as_deref())? else {
                summary.unchanged += 1;
                continue;
            };
            planned.push((
                hashed(kind, &id, &payload),
                Source::Document {
                    id,
                    theirs: their_heads,
                },
            ));
            if kind == SectionKind::Entry && !request.no_blobs {
                let entry = store.entry(&id)?.expect("shareable_heads found the entry");
                for (hash, _) in blobs::of_entry(&entry) {
                    if their_blobs.contains(hex::encode(hash).as_str()) {
                        continue;
                    }
                    match blob_store
                        .size(&hash)
                        .map_err(|e| ExportError::io(&request.out, e))?
                    {
                        Some(size) => {
                            blob_sections.insert(hash, size);
                        }
                        None => summary.blobs_missing += 1,
                    }
                }
            }
            planning.items += 1;
            if planning.items.is_multiple_of(256) {
                progress(&planning);
            }
        }
    }
    for (hash, size) in &blob_sections {
        let hex = hex::encode(hash);
        planned.push((
            Section {
                kind: SectionKind::Blob,
                id: hex.clone(),
                size: *size,
                hash: hex,
            },
            Source::Blob(*hash),
        ));
    }
    planned.sort_by_key(|(section, _)| section.kind);

    let manifest = Manifest {
        format: bundle::FORMAT_VERSION,
        node: Exporter {
            peer_id: node.peer_id.to_owned(),
            author: node.author.id().to_string(),
        },
        created: node.now,
        collections,
        since: since.as_ref().map(|(_, id)| id.clone()),
        documents,
        tombstones,
        sections: planned.iter().map(|(s, _)| s.clone()).collect(),
    };
    let (manifest_bytes, signature) = manifest.sign(node.author);
    let data_bytes = manifest.data_bytes();
    let body = 4 + manifest_bytes.len() as u64 + bundle::SIGNATURE_LEN as u64 + data_bytes;
    let header = PartHeader {
        format: bundle::FORMAT_VERSION,
        index: 1,
        count: u32::try_from(parts::part_count(body, part_bytes)).map_err(|_| {
            ExportError::PartSize {
                min: MIN_PART_BYTES,
                max: MAX_PART_BYTES,
            }
        })?,
        bundle: bundle::bundle_id(&manifest_bytes),
    };

    // Pass 2: write.
    let mut writer = PartWriter::new(&request.out, header, part_bytes);
    let written = write_sections(
        &mut writer,
        store,
        blob_store,
        &manifest_bytes,
        &signature.0,
        &planned,
        data_bytes,
        progress,
    );
    if let Err(error) = written {
        parts::remove_all(&writer.written);
        return Err(error);
    }
    let paths = writer
        .finish()
        .map_err(|e| ExportError::io(&request.out, e))?;
    for (section, _) in &planned {
        match section.kind {
            SectionKind::Collection => {}
            SectionKind::Entry => summary.entries += 1,
            SectionKind::Tombstone => summary.tombstones += 1,
            SectionKind::Blob => summary.blobs += 1,
        }
    }
    summary.bundle = hex::encode(header.bundle);
    summary.parts = paths.iter().map(|p| p.display().to_string()).collect();
    summary.bytes_written = body + PART_HEADER_LEN as u64 * u64::from(header.count);
    Ok(summary)
}

/// The collections a request names, sorted.
fn select(store: &Reader, request: &ExportRequest) -> Result<Vec<DocumentId>, ExportError> {
    let mut ids = BTreeSet::new();
    if request.all {
        ids.extend(store.collections()?.into_iter().map(|c| c.id));
    }
    for name in &request.collections {
        ids.insert(
            resolve_collection(store, name).map_err(|e| ExportError::Select(e.to_string()))?,
        );
    }
    if ids.is_empty() && !request.all {
        return Err(ExportError::Select(
            "name a collection (--collection) or export everything (--all)".into(),
        ));
    }
    Ok(ids.into_iter().collect())
}

/// The heads of a document that may leave the node; `None` for anything private or unconsented
/// (never in the reconciliation set, but checked again here: an export is a copy of the data).
fn shareable_heads(
    store: &Reader,
    id: &DocumentId,
    kind: SectionKind,
) -> Result<Option<Vec<String>>, ExportError> {
    if kind == SectionKind::Entry {
        return Ok(store
            .entry(id)?
            .filter(|e| e.is_shareable())
            .map(|e| e.heads));
    }
    let Some(bytes) = store.document(id)? else {
        return Ok(None);
    };
    let doc = load(id, &bytes)?;
    Ok(Some(
        sync::heads_bytes(&doc).iter().map(hex::encode).collect(),
    ))
}

fn decode_heads(heads: &[String]) -> Vec<[u8; 32]> {
    heads
        .iter()
        .filter_map(|h| {
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(h, &mut bytes).ok()?;
            Some(bytes)
        })
        .collect()
}

/// What the receiver lacks of a document: all of it, or the changes after `theirs`.
fn document_payload(
    store: &Reader,
    id: &DocumentId,
    theirs: Option<&[[u8; 32]]>,
) -> Result<Option<Payload>, ExportError> {
    let Some(document) = store.document(id)? else {
        return Ok(None);
    };
    let signatures = store.signatures(id)?;
    let Some(theirs) = theirs.filter(|t| !t.is_empty()) else {
        return Ok(Some(Payload::Whole {
            document,
            signatures: signatures
                .iter()
                .map(|(hash, sig)| HashSignature {
                    hash: hash.0,
                    signature: sig.0.to_vec(),
                })
                .collect(),
        }));
    };
    let held = SignedDoc {
        doc: load(id, &document)?,
        signatures: signatures.into_iter().collect::<BTreeMap<ChangeHash, _>>(),
    };
    Ok(
        match sync::payload_for(&held, theirs, || document.clone()) {
            Payload::Nothing => None,
            payload => Some(payload),
        },
    )
}

fn tombstone_payload(store: &Reader, id: &DocumentId) -> Result<Payload, ExportError> {
    let stone = store.tombstone(id)?.expect("listed as a tombstone");
    Ok(Payload::Tombstone(stone))
}

fn hashed(kind: SectionKind, id: &DocumentId, payload: &Payload) -> Section {
    let bytes = wire::encode(payload);
    Section {
        kind,
        id: section_id(id),
        size: bytes.len() as u64,
        hash: blake3::hash(&bytes).to_hex().to_string(),
    }
}

#[allow(clippy::too_many_arguments)]
fn write_sections(
    writer: &mut PartWriter,
    store: &Reader,
    blob_store: &dyn BundleBlobs,
    manifest: &[u8],
    signature: &[u8; 64],
    planned: &[(Section, Source)],
    data_bytes: u64,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(), ExportError> {
    let out = PathBuf::from("bundle");
    let io = |e| ExportError::io(&out, e);
    writer
        .write_all(&(manifest.len() as u32).to_le_bytes())
        .map_err(io)?;
    writer.write_all(manifest).map_err(io)?;
    writer.write_all(signature).map_err(io)?;
    let mut done = Progress {
        phase: Phase::Writing,
        items_total: planned.len() as u64,
        bytes_total: data_bytes,
        ..Progress::default()
    };
    for (section, source) in planned {
        let mut hasher = blake3::Hasher::new();
        let mut length = 0u64;
        let mut put = |bytes: &[u8], writer: &mut PartWriter| -> Result<(), ExportError> {
            hasher.update(bytes);
            length += bytes.len() as u64;
            writer.write_all(bytes).map_err(io)
        };
        match source {
            Source::Document { id, theirs } => {
                let payload = document_payload(store, id, theirs.as_deref())?
                    .ok_or_else(|| changed_during_export(section))?;
                put(&wire::encode(&payload), writer)?;
            }
            Source::Tombstone(id) => put(&wire::encode(&tombstone_payload(store, id)?), writer)?,
            Source::Blob(hash) => {
                let mut reader = blob_store.open(hash).map_err(io)?;
                let mut chunk = vec![0u8; 1 << 20];
                loop {
                    let n = reader.read(&mut chunk).map_err(io)?;
                    if n == 0 {
                        break;
                    }
                    put(&chunk[..n], writer)?;
                    done.bytes += n as u64;
                    progress(&done);
                }
            }
        }
        if length != section.size || hasher.finalize().to_hex().as_str() != section.hash {
            return Err(changed_during_export(section));
        }
        if !matches!(source, Source::Blob(_)) {
            done.bytes += length;
        }
        done.items += 1;
        if done.items.is_multiple_of(64) || done.items == done.items_total {
            progress(&done);
        }
    }
    Ok(())
}

fn changed_during_export(section: &Section) -> ExportError {
    ExportError::Io {
        path: section.id.clone(),
        source: std::io::Error::other("it changed while the bundle was written"),
    }
}

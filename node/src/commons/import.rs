//! Reading a bundle: the part headers and the manifest signature are checked first, the disk's
//! room is estimated from the manifest, then each section is checked against its hash before
//! it is trusted and each document goes through [`Commons::stage_remote`], the path network
//! sync takes, into one staged write; new documents are verified ahead, a batch at a time, on
//! every core. That write spills to the store's journal as it grows,
//! so memory stays flat, and is applied only if the whole bundle passed: a refused bundle
//! changes nothing.

use std::io::Read;
use std::path::Path;

use minga_protocol::bundle::{Manifest, Section, SectionKind};
use minga_protocol::wire::{self, Payload};
use minga_protocol::{DocKind, DocumentId};

use super::{Changed, Staging, Verified, Written};
use crate::bundle::blobs::BundleBlobs;
use crate::bundle::open;
use crate::bundle::parts::PartReader;
use crate::bundle::{ImportError, ImportRequest, ImportSummary, Inspected, Phase, Progress, space};
use crate::store::stage_followed;
use crate::{Commons, Error, Staged};

/// A blob the bundle carries and the blob store lacks: its section, hash and size.
type WantedBlob = (usize, [u8; 32], u64);

/// Imports a bundle into `commons`, all or nothing; see the module doc for the order of checks.
pub fn import(
    commons: &mut Commons,
    request: &ImportRequest,
    blob_store: &dyn BundleBlobs,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Written<ImportSummary>, Error> {
    let (reader, inspected) = open(&request.file)?;
    let manifest = &inspected.manifest;
    for who in [&manifest.node.peer_id, &manifest.node.author] {
        if commons.store.is_blocked(who)? {
            return Err(ImportError::Blocked(who.clone()).into());
        }
    }
    let wanted = wanted_blobs(manifest, blob_store, &request.file)?;
    let blob_bytes = wanted.iter().map(|(_, _, size)| size).sum();
    let document_bytes = manifest
        .sections
        .iter()
        .filter(|section| section.kind != SectionKind::Blob)
        .map(|section| section.size)
        .sum::<u64>();
    // Room on disk, estimated from the manifest before the first byte is written...
    let staged_estimate = document_bytes.saturating_mul(space::STAGED_PER_DOCUMENT_BYTE);
    ensure_room(commons, request, staged_estimate, blob_bytes)?;

    let mut staged = Staged::default();
    let mut summary = ImportSummary {
        bundle: inspected.bundle.clone(),
        exporter: manifest.node.peer_id.clone(),
        blobs_skipped: if blob_store.keeps_blobs() {
            0
        } else {
            manifest
                .sections
                .iter()
                .filter(|s| s.kind == SectionKind::Blob)
                .count() as u64
        },
        ..ImportSummary::default()
    };
    let mut applying = Progress {
        phase: Phase::Applying,
        items_total: wanted.len() as u64 + 1,
        bytes_total: blob_bytes,
        ..Progress::default()
    };
    let checked = stage_sections(
        commons,
        reader,
        &inspected,
        &mut staged,
        &mut summary,
        progress,
    )
    .and_then(|changed| {
        // ...and again from what was staged, before the store or the blobs are touched.
        ensure_room(commons, request, staged.bytes(), blob_bytes)?;
        if !wanted.is_empty() {
            summary.blobs_added = copy_blobs(&request.file, &inspected, &wanted, blob_store)?;
            applying.items = wanted.len() as u64;
            applying.bytes = blob_bytes;
            progress(&applying);
        }
        Ok(changed)
    });
    let changed = match checked {
        Ok(changed) => changed,
        Err(error) => {
            commons.store.discard_staged(staged)?;
            return Err(error);
        }
    };
    let batch = if staged.bytes() == 0 {
        // Importing a bundle twice writes nothing.
        commons.store.applied_writes()
    } else {
        commons.store.apply_staged(staged)?
    };
    applying.items = applying.items_total;
    progress(&applying);
    Ok(Written::new(summary, batch).announcing(changed))
}

/// Documents read before they are verified together, on every core...
const BATCH_DOCUMENTS: usize = 64;
/// ...or fewer, once their bytes pass this.
const BATCH_BYTES: usize = 8 * 1024 * 1024;

/// Pass 1: every section against its hash, each document then staged through the verification
/// network sync uses (blobs are only hashed here); returns what to announce.
fn stage_sections(
    commons: &mut Commons,
    mut reader: PartReader,
    inspected: &Inspected,
    staged: &mut Staged,
    summary: &mut ImportSummary,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Vec<Changed>, Error> {
    let manifest = &inspected.manifest;
    for collection in &manifest.collections {
        if !commons.store().is_followed(collection)? {
            stage_followed(staged, collection, true);
        }
    }
    let mut stager = Stager {
        commons,
        staged,
        summary,
        changed: Vec::new(),
        verifying: Progress {
            phase: Phase::Verifying,
            items_total: manifest.sections.len() as u64,
            bytes_total: inspected.data_bytes,
            ..Progress::default()
        },
        batch: Vec::new(),
        batch_bytes: 0,
    };
    for (index, section) in manifest.sections.iter().enumerate() {
        let what = || format!("section {index} ({:?} {})", section.kind, section.id);
        let mut hasher = blake3::Hasher::new();
        let mut bytes = Vec::new();
        let keep = section.kind != SectionKind::Blob;
        reader.stream(section.size, &what, |chunk| {
            hasher.update(chunk);
            if keep {
                bytes.extend_from_slice(chunk);
            }
            stager.verifying.bytes += chunk.len() as u64;
            if !keep {
                progress(&stager.verifying);
            }
            Ok(())
        })?;
        if hasher.finalize().to_hex().as_str() != section.hash {
            return Err(ImportError::HashMismatch {
                index,
                kind: section.kind,
                id: section.id.clone(),
            }
            .into());
        }
        if section.kind == SectionKind::Blob {
            if blob_hash(section).is_none() {
                return Err(rejected(index, section, "a blob's id must be its hash".into()).into());
            }
            stager.verifying.items += 1;
            continue;
        }
        let id: DocumentId = section
            .id
            .parse()
            .map_err(|e: minga_protocol::IdError| rejected(index, section, e.to_string()))?;
        let payload: Payload = wire::decode(&bytes, wire::MAX_MESSAGE_BYTES)
            .map_err(|e| rejected(index, section, e.to_string()))?;
        if matches!(payload, Payload::Tombstone(_)) != (section.kind == SectionKind::Tombstone) {
            return Err(rejected(index, section, "its content is not of its kind".into()).into());
        }
        stager.batch_bytes += bytes.len();
        stager.batch.push(Unverified {
            index,
            section,
            id,
            payload,
        });
        if stager.batch.len() == BATCH_DOCUMENTS || stager.batch_bytes >= BATCH_BYTES {
            stager.flush(progress)?;
        }
    }
    stager.flush(progress)?;
    stager.summary.bytes_read = reader.position;
    reader.finish()?;
    progress(&stager.verifying);
    Ok(stager.changed)
}

/// A document section read and checked against its hash, not yet verified.
struct Unverified<'m> {
    index: usize,
    section: &'m Section,
    id: DocumentId,
    payload: Payload,
}

/// Pass 1's state: the staged write and the documents read since the last batch was staged.
struct Stager<'a, 'm> {
    commons: &'a mut Commons,
    staged: &'a mut Staged,
    summary: &'a mut ImportSummary,
    changed: Vec<Changed>,
    verifying: Progress,
    batch: Vec<Unverified<'m>>,
    batch_bytes: usize,
}

impl Stager<'_, '_> {
    /// Verifies the batch's documents that are new here on every core, then stages the whole
    /// batch in order (documents held already are verified against what is held, there).
    fn flush(&mut self, progress: &mut dyn FnMut(&Progress)) -> Result<(), Error> {
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let mut fresh = Vec::with_capacity(batch.len());
        for read in &batch {
            fresh.push(
                self.commons
                    .store
                    .document_in(self.staged, &read.id)?
                    .is_none(),
            );
        }
        let mut ahead = verify_ahead(&batch, &fresh).into_iter();
        for read in batch {
            let verified = ahead.next().flatten();
            self.stage(&read, verified).map_err(|e| match e {
                Error::Rejected(reason) | Error::Forbidden(reason) => {
                    rejected(read.index, read.section, reason).into()
                }
                other => other,
            })?;
            self.commons.store.spill_if_large(self.staged)?;
            self.verifying.items += 1;
            if self.verifying.items.is_multiple_of(64) {
                progress(&self.verifying);
            }
        }
        Ok(())
    }

    /// Stages one document and counts what it did in the summary.
    fn stage(&mut self, read: &Unverified<'_>, ahead: Option<Verified>) -> Result<(), Error> {
        let kind = read.section.kind;
        let held = self
            .commons
            .store()
            .document_in(self.staged, &read.id)?
            .is_some();
        let staging = self.commons.stage_remote(
            self.staged,
            read.id,
            doc_kind(kind),
            &read.payload,
            false,
            ahead,
        )?;
        let counts = match kind {
            SectionKind::Collection => &mut self.summary.collections,
            _ => &mut self.summary.entries,
        };
        match (staging, kind) {
            (Staging::Unchanged, SectionKind::Tombstone) => {}
            (Staging::Changed(announce), SectionKind::Tombstone) => {
                self.summary.tombstones_applied += 1;
                self.changed.extend(announce);
            }
            (Staging::Unchanged, _) => counts.unchanged += 1,
            (Staging::Changed(announce), _) => {
                if held {
                    counts.updated += 1;
                } else {
                    counts.new += 1;
                }
                self.changed.extend(announce);
            }
        }
        Ok(())
    }
}

/// Each document of `batch` marked `fresh` verified against an empty one, on every core.
fn verify_ahead(batch: &[Unverified<'_>], fresh: &[bool]) -> Vec<Option<Verified>> {
    let docs: Vec<_> = batch
        .iter()
        .zip(fresh)
        .map(|(read, fresh)| fresh.then(|| (read.id, doc_kind(read.section.kind), &read.payload)))
        .collect();
    Verified::ahead(&docs)
}

/// The kind of document a section holds.
fn doc_kind(kind: SectionKind) -> DocKind {
    match kind {
        SectionKind::Collection => DocKind::Collection,
        _ => DocKind::Entry,
    }
}

/// A section refused for `reason`.
fn rejected(index: usize, section: &Section, reason: String) -> ImportError {
    ImportError::Rejected {
        index,
        kind: section.kind,
        id: section.id.clone(),
        reason,
    }
}

/// A blob section's hash, if its id is the hex of its hash as it must be.
fn blob_hash(section: &Section) -> Option<[u8; 32]> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(&section.id, &mut hash).ok()?;
    (section.id == section.hash).then_some(hash)
}

/// The blobs of the bundle the blob store lacks (none if it keeps no blobs).
fn wanted_blobs(
    manifest: &Manifest,
    blob_store: &dyn BundleBlobs,
    file: &Path,
) -> Result<Vec<WantedBlob>, ImportError> {
    if !blob_store.keeps_blobs() {
        return Ok(Vec::new());
    }
    let mut wanted = Vec::new();
    for (index, section) in manifest.sections.iter().enumerate() {
        if section.kind != SectionKind::Blob {
            continue;
        }
        // A malformed id is refused when its section is read.
        let Some(hash) = blob_hash(section) else {
            continue;
        };
        let held = blob_store
            .size(&hash)
            .map_err(|e| ImportError::io(file, e))?;
        if held.is_none() && !wanted.iter().any(|(_, h, _)| *h == hash) {
            wanted.push((index, hash, section.size));
        }
    }
    Ok(wanted)
}

/// Refuses an import needing more room than the disk has.
fn ensure_room(
    commons: &Commons,
    request: &ImportRequest,
    staged_bytes: u64,
    blob_bytes: u64,
) -> Result<(), ImportError> {
    let required = space::required(staged_bytes, blob_bytes);
    let available = match request.assume_free_bytes {
        Some(free) => free,
        None => space::available(commons.root()).map_err(|e| ImportError::io(commons.root(), e))?,
    };
    if space::fits(required, available) {
        Ok(())
    } else {
        Err(ImportError::NoSpace {
            required,
            available,
        })
    }
}

/// Pass 2: the wanted blobs, re-read from the bundle and handed to the blob store, which checks
/// each against its hash as it keeps it.
fn copy_blobs(
    path: &Path,
    inspected: &Inspected,
    wanted: &[WantedBlob],
    blob_store: &dyn BundleBlobs,
) -> Result<u64, ImportError> {
    let (mut reader, _) = open(path)?;
    let mut next = wanted.iter().peekable();
    for (index, section) in inspected.manifest.sections.iter().enumerate() {
        let what = || format!("section {index}");
        match next.peek() {
            Some((wanted_index, hash, size)) if *wanted_index == index => {
                let mut blob = SectionRead {
                    reader: &mut reader,
                    left: *size,
                };
                blob_store
                    .put(hash, *size, &mut blob)
                    .map_err(|e| ImportError::io(path, e))?;
                next.next();
            }
            _ => reader.stream(section.size, &what, |_| Ok(()))?,
        }
    }
    Ok(wanted.len() as u64)
}

/// One section of a bundle as a reader.
struct SectionRead<'a> {
    reader: &'a mut PartReader,
    left: u64,
}

impl Read for SectionRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        self.reader
            .fill(&mut buf[..n], &|| "a blob".into())
            .map_err(std::io::Error::other)?;
        self.left -= n as u64;
        Ok(n)
    }
}

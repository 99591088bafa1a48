//! Sneakernet bundles on disk: the shareable part of the commons as a signed, hashed,
//! splittable bundle. This module is the format on files: the requests and summaries, the
//! errors, part files (`parts`), reading and verifying a manifest (`manifest`, also
//! `minga bundle inspect`), the disk-space decision (`space`) and the seam to the blob store
//! (`blobs`). The format itself (manifest, part headers) is sans-IO in
//! [`minga_protocol::bundle`]. Exporting and importing run on the store's writer, as
//! `commons/export` and `commons/import`:
//!
//! ```text
//!  export: Store ─► sections (postcard Payloads, blobs) ─► PartWriter ─► FILE | FILE.001 …
//!  import: FILE ─► PartReader (part headers) ─► manifest signature ─► section hashes
//!          ─► Commons::stage_remote (verify every change) ─► disk check ─► one sled batch
//! ```
//!
//! Both run where the store's writer runs (the event loop, or the CLI holding the data dir),
//! so an export is a consistent snapshot and an import is one atomic write.

pub mod blobs;
mod manifest;
pub mod parts;
pub mod space;

use std::path::{Path, PathBuf};

use minga_protocol::DocumentId;
use minga_protocol::bundle::{BundleError, SectionKind};
use serde::{Deserialize, Serialize};

use crate::StoreError;

pub(crate) use manifest::open;
pub use manifest::{Inspected, inspect, read_manifest};

/// What to export.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExportRequest {
    /// Collections by id or name; empty with `all`.
    #[serde(default)]
    pub collections: Vec<String>,
    /// Every collection this node holds.
    #[serde(default)]
    pub all: bool,
    /// Where to write (`FILE`, or `FILE.001`, … when split). Absolute when sent to a node.
    pub out: PathBuf,
    /// Leave attachments' blobs out.
    #[serde(default)]
    pub no_blobs: bool,
    /// A bundle (or a manifest from `minga bundle inspect --json`) the receiver holds:
    /// export only what it lacks.
    #[serde(default)]
    pub since: Option<PathBuf>,
    /// Largest part file; [`minga_protocol::bundle::MAX_PART_BYTES`] when absent.
    #[serde(default)]
    pub part_bytes: Option<u64>,
}

/// How to import.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImportRequest {
    /// The bundle (`FILE` or `FILE.001`). Absolute when sent to a node.
    pub file: PathBuf,
    /// Pretend the disk has this many bytes free (tests of the disk-space refusal).
    #[serde(default)]
    pub assume_free_bytes: Option<u64>,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportSummary {
    /// Hex id of the bundle (BLAKE3 of its manifest).
    pub bundle: String,
    pub parts: Vec<String>,
    pub collections: u64,
    pub entries: u64,
    pub tombstones: u64,
    pub blobs: u64,
    /// Documents left out because the receiver holds them (`--since`).
    pub unchanged: u64,
    /// Attachments whose blob this node does not hold, so not carried.
    pub blobs_missing: u64,
    pub bytes_written: u64,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSummary {
    pub bundle: String,
    /// Peer id of the node that exported it.
    pub exporter: String,
    pub entries: Counts,
    pub collections: Counts,
    pub tombstones_applied: u64,
    pub blobs_added: u64,
    /// Blobs carried but not kept: this node has no blob store yet.
    pub blobs_skipped: u64,
    pub bytes_read: u64,
}

/// Documents by what importing them did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub new: u64,
    pub updated: u64,
    pub unchanged: u64,
}

/// How far an export or import has got, for a progress bar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub phase: Phase,
    pub items: u64,
    pub items_total: u64,
    pub bytes: u64,
    pub bytes_total: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Export: listing and hashing what goes in.
    #[default]
    Planning,
    /// Export: writing the parts.
    Writing,
    /// Import: checking hashes and signatures.
    Verifying,
    /// Import: writing blobs and the store batch.
    Applying,
}

/// Where progress goes; called often, so it must be cheap.
pub type ProgressFn = Box<dyn FnMut(&Progress) + Send>;

/// Why a bundle could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Select(String),
    #[error("writing {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("--since {path}: {reason}")]
    Since { path: String, reason: String },
    #[error("the part size must be at least {min} bytes and at most {max}")]
    PartSize { min: u64, max: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a bundle was refused. Nothing was written when one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Format(#[from] BundleError),
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("no bundle at {0} (nor its first part {0}.001)")]
    NoBundle(String),
    #[error("part {index} is missing ({path} not found)")]
    MissingPart { index: u32, path: String },
    #[error("the bundle is truncated: part {part} ends inside {what}")]
    Truncated { part: u32, what: String },
    #[error("unexpected bytes after the last section (part {part}): the bundle is damaged")]
    TrailingData { part: u32 },
    #[error(
        "section {index} ({kind:?} {id}) does not match its hash in the manifest: the bundle is damaged or was altered"
    )]
    HashMismatch {
        index: usize,
        kind: SectionKind,
        id: String,
    },
    #[error("section {index} ({kind:?} {id}) is refused: {reason}")]
    Rejected {
        index: usize,
        kind: SectionKind,
        id: String,
        reason: String,
    },
    #[error("the bundle was exported by {0}, which this node blocks")]
    Blocked(String),
    #[error(
        "not enough disk space: importing needs about {required} bytes and {available} are free; nothing was written"
    )]
    NoSpace { required: u64, available: u64 },
    #[error("reading the bundle panicked ({0}); nothing was written")]
    Panicked(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ImportError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        ImportError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

impl ExportError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        ExportError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// The section kind of a document id in a bundle.
pub(crate) fn section_id(id: &DocumentId) -> String {
    id.to_string()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod corpus;

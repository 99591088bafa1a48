//! Reading a bundle's manifest: the part headers, the manifest and its signature, checked
//! before anything else is read (by `minga bundle inspect`, by an import, and by an export's
//! `--since`).

use std::io::Read;
use std::path::Path;

use minga_protocol::Signature;
use minga_protocol::bundle::{self, BundleError, MAGIC, MAX_MANIFEST_BYTES, Manifest};
use serde::{Deserialize, Serialize};

use super::ImportError;
use super::parts::{self, PartReader};

/// A bundle's manifest, verified, as `minga bundle inspect` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Inspected {
    /// Hex id of the bundle: BLAKE3 of its manifest bytes.
    pub bundle: String,
    pub parts: u32,
    /// Bytes of all sections.
    pub data_bytes: u64,
    pub manifest: Manifest,
}

/// Opens a bundle and verifies its manifest, leaving the reader at the first section.
pub(crate) fn open(path: &Path) -> Result<(PartReader, Inspected), ImportError> {
    let mut reader = PartReader::open(path)?;
    let mut length = [0u8; 4];
    reader.fill(&mut length, &|| "the manifest length".into())?;
    let length = u32::from_le_bytes(length);
    if length > MAX_MANIFEST_BYTES {
        return Err(BundleError::ManifestTooLarge { size: length }.into());
    }
    // Held as it is read: a bundle that claims a large manifest and ends early costs no more
    // than the bytes it has.
    let mut bytes = Vec::new();
    reader.stream(u64::from(length), &|| "the manifest".into(), |read| {
        bytes.extend_from_slice(read);
        Ok(())
    })?;
    let mut signature = [0u8; bundle::SIGNATURE_LEN];
    reader.fill(&mut signature, &|| "the manifest signature".into())?;
    let header = *reader.header();
    let manifest = Manifest::open(header.format, &bytes, &Signature(signature))?;
    if bundle::bundle_id(&bytes) != header.bundle {
        return Err(BundleError::ForeignPart { index: 1 }.into());
    }
    let inspected = Inspected {
        bundle: hex::encode(header.bundle),
        parts: header.count,
        data_bytes: manifest.data_bytes(),
        manifest,
    };
    Ok((reader, inspected))
}

/// The verified manifest of a bundle, without importing it.
pub fn inspect(path: &Path) -> Result<Inspected, ImportError> {
    open(path).map(|(_, inspected)| inspected)
}

/// What a receiver holds, from a bundle it imported or from the JSON of
/// `minga bundle inspect --json` (for `--since`): the manifest and the bundle's id.
pub fn read_manifest(path: &Path) -> Result<(Manifest, String), ImportError> {
    let mut magic = [0u8; MAGIC.len()];
    let is_bundle = parts::open_nofollow(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == MAGIC;
    if is_bundle || !path.exists() {
        let (_, inspected) = open(path)?;
        return Ok((inspected.manifest, inspected.bundle));
    }
    let text = std::fs::read(path).map_err(|source| ImportError::io(path, source))?;
    let inspected: Inspected = serde_json::from_slice(&text).map_err(|e| {
        BundleError::BadManifest(format!(
            "neither a bundle nor the JSON of `minga bundle inspect --json`: {e}"
        ))
    })?;
    Ok((inspected.manifest, inspected.bundle))
}

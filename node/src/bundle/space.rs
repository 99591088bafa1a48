//! The disk-space decision of an import, made before anything is written: a stick full of
//! photos must not fill the info-centre's disk halfway through and leave the node unable to run.

use std::path::Path;

/// sled writes a batch to its log and later to its pages, and keeps old pages until it
/// compacts, and a large import passes through the store's journal first: budget this many
/// bytes on disk per byte staged.
pub const STORE_OVERHEAD: u64 = 4;

/// Bytes staged per byte of a bundle's document sections, for the estimate made from the
/// manifest before anything is read: a document is stored with its JSON view, signatures and
/// index rows beside it (measured on generated practices: see docs/benchmarks.md).
pub const STAGED_PER_DOCUMENT_BYTE: u64 = 3;

/// Room left free after an import, for the node to keep running.
pub const HEADROOM_BYTES: u64 = 64 << 20;

/// Bytes an import needs: the staged store writes with sled's overhead, the blobs it keeps,
/// and headroom.
pub fn required(staged_bytes: u64, blob_bytes: u64) -> u64 {
    staged_bytes
        .saturating_mul(STORE_OVERHEAD)
        .saturating_add(blob_bytes)
        .saturating_add(HEADROOM_BYTES)
}

/// Bytes free for an unprivileged process on the filesystem holding `path` (statvfs).
pub fn available(path: &Path) -> std::io::Result<u64> {
    fs2::available_space(path)
}

/// Whether an import needing `required` bytes fits in `available`.
pub fn fits(required: u64, available: u64) -> bool {
    required <= available
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_does_not_fit_with_headroom() {
        let need = required(1 << 20, 10 << 20);
        assert_eq!(
            need,
            STORE_OVERHEAD * (1 << 20) + (10 << 20) + HEADROOM_BYTES
        );
        assert!(fits(need, need));
        assert!(!fits(need, need - 1));
        assert!(!fits(required(u64::MAX, 1), u64::MAX - 1), "no overflow");
        assert!(available(Path::new(".")).unwrap() > 0);
    }
}

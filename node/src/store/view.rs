//! How an entry's read view (`e:` rows) is kept on disk: JSON, deflated. The body is most of a
//! view and the saved document holds it again, so the view is compressed rather than kept
//! twice in the clear (5,000 entries: 3,434 → see docs/benchmarks.md, issue 17). Rows written
//! before views were compressed are plain JSON and still read.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use minga_protocol::Entry;
use minga_protocol::limits::MAX_DOCUMENT_BYTES;

use super::{StoreError, corrupt_key};

/// The first byte of a deflated view. A plain JSON view starts with `{`.
const DEFLATED: u8 = 1;

/// A view inflates to at most this: an entry's document is at most [`MAX_DOCUMENT_BYTES`]
/// and its view holds the same text, escaped into JSON (at most 6 bytes a character).
const MAX_VIEW_BYTES: u64 = 6 * MAX_DOCUMENT_BYTES as u64;

/// The bytes an `e:` row holds for `entry`.
pub(super) fn encode(entry: &Entry) -> Vec<u8> {
    let mut out = DeflateEncoder::new(vec![DEFLATED], Compression::fast());
    serde_json::to_writer(&mut out, entry).expect("views serialise to JSON");
    out.flush().expect("writing to memory");
    out.finish().expect("writing to memory")
}

/// The entry an `e:` row at `key` holds.
pub(super) fn decode(
    key: &[u8],
    bytes: Option<impl AsRef<[u8]>>,
) -> Result<Option<Entry>, StoreError> {
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    let corrupt = |reason: String| corrupt_key(key, &reason);
    match bytes.as_ref() {
        [DEFLATED, deflated @ ..] => {
            let mut json = Vec::with_capacity(deflated.len() * 3);
            DeflateDecoder::new(deflated)
                .take(MAX_VIEW_BYTES + 1)
                .read_to_end(&mut json)
                .map_err(|e| corrupt(e.to_string()))?;
            if json.len() as u64 > MAX_VIEW_BYTES {
                return Err(corrupt("the view inflates past its bound".into()));
            }
            serde_json::from_slice(&json).map_err(|e| corrupt(e.to_string()))
        }
        plain => serde_json::from_slice(plain).map_err(|e| corrupt(e.to_string())),
    }
    .map(Some)
}

#[cfg(test)]
mod tests {
    use minga_protocol::DocumentId;
    use minga_protocol::automerge::ChangeHash;

    use super::*;

    fn entry() -> Entry {
        let id = DocumentId::of_genesis(&ChangeHash([7; 32])).to_string();
        serde_json::from_value(serde_json::json!({
            "id": id,
            "heads": [],
            "schema": "minga/entry/1",
            "kind": "practice",
            "collection": id,
            "license": "CC-BY-4.0",
            "title": "Roya del café",
            "body": "Se poda y se abona. ".repeat(100),
            "lang": "es",
            "tags": ["café"],
            "subjects": [],
            "place": null,
            "authors": [],
            "created": 1,
            "updated": 2,
            "attachments": [],
            "consent": [],
            "private": false
        }))
        .expect("a valid view")
    }

    #[test]
    fn a_view_reads_back_as_written_and_smaller_than_its_json() {
        let entry = entry();
        let bytes = encode(&entry);
        assert!(bytes.len() < serde_json::to_vec(&entry).unwrap().len() / 4);
        assert_eq!(decode(b"e:", Some(&bytes)).unwrap(), Some(entry));
    }

    #[test]
    fn a_plain_json_view_from_before_still_reads() {
        let entry = entry();
        let bytes = serde_json::to_vec(&entry).unwrap();
        assert_eq!(decode(b"e:", Some(&bytes)).unwrap(), Some(entry));
    }

    #[test]
    fn a_damaged_view_is_reported_corrupt() {
        let mut bytes = encode(&entry());
        bytes.truncate(bytes.len() / 2);
        assert!(matches!(
            decode(b"e:", Some(&bytes)),
            Err(StoreError::Corrupt { .. })
        ));
    }
}

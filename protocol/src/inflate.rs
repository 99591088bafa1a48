//! automerge inflates the DEFLATE-compressed parts of what it loads (compressed change chunks,
//! the compressed columns of documents and bundles) with no bound, before any checksum or
//! signature is checked: a 1 MB payload could become gigabytes. [`Budget::admit`] walks the
//! chunk framing first and inflates each compressed part into a fixed buffer, only counting, so
//! bytes from elsewhere that would inflate past [`MAX_INFLATED_BYTES`] (or hold more than
//! [`MAX_PAYLOAD_CHUNKS`] chunks) are refused before automerge allocates anything for them.
//!
//! The walk follows automerge's storage format (a chunk is magic ‖ checksum ‖ type ‖ LEB128
//! length ‖ data; documents and bundles describe their columns, each with a deflate bit, before
//! the column data) and is at least as strict as automerge's own parser: what it cannot frame
//! is refused, so nothing it passes over unread is inflated by automerge.
//!
//! Columns are run-length encoded, so a few bytes may also declare billions of operations that
//! automerge would then walk one by one on the writer's thread. The walk counts each column's
//! rows from its runs without expanding them, and refuses a payload whose chunks describe more
//! than [`MAX_PAYLOAD_ROWS`].

use std::io::Read;

use crate::VerifyError;
use crate::limits::{MAX_INFLATED_BYTES, MAX_PAYLOAD_CHUNKS, MAX_PAYLOAD_ROWS};

/// The first four bytes of every chunk.
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
/// Chunk types.
const DOCUMENT: u8 = 0;
const CHANGE: u8 = 1;
const COMPRESSED_CHANGE: u8 = 2;
const BUNDLE: u8 = 3;
/// The bit of a column specification saying its data is deflated.
const DEFLATE_BIT: u32 = 0b1000;
/// The bits of a column specification giving its type, and the types whose encoding is not
/// run-length of LEB128 numbers.
const TYPE_BITS: u32 = 0b0111;
const BOOLEAN: u32 = 4;
const STRING: u32 = 5;
const VALUE_RAW: u32 = 7;
/// Bytes of a change hash.
const HASH_LEN: usize = 32;
/// The buffer inflated output goes through (and is dropped from).
const INFLATE_BUFFER: usize = 16 * 1024;

/// What the payload being checked has used so far: every part of one payload is admitted
/// through one budget.
#[derive(Debug, Default)]
pub struct Budget {
    inflated: usize,
    chunks: usize,
    rows: u64,
}

impl Budget {
    /// A fresh budget, for one payload.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes the compressed parts admitted so far inflate to.
    pub fn inflated(&self) -> usize {
        self.inflated
    }

    /// Checks that `bytes` (automerge chunks, as `Automerge::load` or `Change::from_bytes`
    /// take them) frame correctly and that their compressed parts fit in what is left of the
    /// budget.
    pub fn admit(&mut self, bytes: &[u8]) -> Result<(), VerifyError> {
        let mut input = Input(bytes);
        while !input.0.is_empty() {
            self.chunks += 1;
            if self.chunks > MAX_PAYLOAD_CHUNKS {
                return Err(VerifyError::TooManyChunks);
            }
            if input.take(MAGIC.len())? != MAGIC {
                return Err(malformed(
                    "a chunk does not start with automerge's magic bytes",
                ));
            }
            input.take(4)?; // checksum
            let kind = input.take(1)?[0];
            let len = input.length()?;
            let mut data = Input(input.take(len)?);
            match kind {
                CHANGE => self.change(data)?,
                COMPRESSED_CHANGE => {
                    let inflated = self.inflate(data.0)?;
                    self.change(Input(&inflated))?;
                }
                DOCUMENT => {
                    data.skip_actors()?;
                    data.skip_hashes()?;
                    let changes = data.columns()?;
                    let ops = data.columns()?;
                    self.column_data(&mut data, &changes)?;
                    self.column_data(&mut data, &ops)?;
                }
                BUNDLE => {
                    data.skip_hashes()?;
                    data.skip_actors()?;
                    let changes = data.columns()?;
                    self.column_data(&mut data, &changes)?;
                    let ops = data.columns()?;
                    self.column_data(&mut data, &ops)?;
                }
                other => return Err(malformed(&format!("unknown chunk type {other}"))),
            }
        }
        Ok(())
    }

    /// The body of a change chunk: its header fields, then its (never deflated) op columns.
    fn change(&mut self, mut data: Input<'_>) -> Result<(), VerifyError> {
        data.skip_hashes()?; // dependencies
        let actor = data.length()?;
        data.take(actor)?;
        data.skip_leb128()?; // sequence number
        data.skip_leb128()?; // first op counter
        data.skip_leb128()?; // timestamp
        let message = data.length()?;
        data.take(message)?;
        data.skip_actors()?; // other actors
        let ops = data.columns()?;
        self.column_data(&mut data, &ops)
    }

    /// Takes the data of `columns` from `data`, inflating the deflated ones, and counts the rows
    /// of the longest against the budget.
    fn column_data(&mut self, data: &mut Input<'_>, columns: &[Column]) -> Result<(), VerifyError> {
        let mut rows = 0;
        for column in columns {
            let part = data.take(column.len)?;
            let column_rows = if column.deflated {
                let inflated = self.inflate(part)?;
                column.rows(&inflated)?
            } else {
                column.rows(part)?
            };
            rows = rows.max(column_rows);
        }
        self.rows = self.rows.saturating_add(rows);
        if self.rows > MAX_PAYLOAD_ROWS {
            return Err(VerifyError::TooManyRows);
        }
        Ok(())
    }

    /// Inflates `deflated`, counting against the budget, which bounds what is returned.
    fn inflate(&mut self, deflated: &[u8]) -> Result<Vec<u8>, VerifyError> {
        let mut decoder = flate2::bufread::DeflateDecoder::new(deflated);
        let mut inflated = Vec::new();
        let mut buffer = vec![0u8; INFLATE_BUFFER];
        loop {
            let n = decoder
                .read(&mut buffer)
                .map_err(|e| malformed(&format!("a compressed part does not inflate: {e}")))?;
            if n == 0 {
                return Ok(inflated);
            }
            self.inflated += n;
            if self.inflated > MAX_INFLATED_BYTES {
                return Err(VerifyError::Inflates);
            }
            inflated.extend_from_slice(&buffer[..n]);
        }
    }
}

/// One column's description: its type, whether its data is deflated, and its length as stored.
struct Column {
    kind: u32,
    deflated: bool,
    len: usize,
}

impl Column {
    /// How many rows the column's (inflated) data describes, read from its runs without
    /// expanding them: a boolean column is a list of run lengths; raw values are counted by
    /// their metadata column; every other type is run-length encoded (a positive count and one
    /// value repeated, a negative count and that many literal values, or zero and a count of
    /// nulls).
    fn rows(&self, data: &[u8]) -> Result<u64, VerifyError> {
        let mut data = Input(data);
        let mut rows = 0u64;
        let count = |rows: u64, n: u64| rows.checked_add(n).ok_or(VerifyError::TooManyRows);
        match self.kind {
            VALUE_RAW => {}
            BOOLEAN => {
                while !data.0.is_empty() {
                    rows = count(rows, data.leb128()?)?;
                }
            }
            _ => {
                while !data.0.is_empty() {
                    let run = data.signed_leb128()?;
                    if run > 0 {
                        rows = count(rows, run.unsigned_abs())?;
                        data.skip_value(self.kind)?;
                    } else if run < 0 {
                        for _ in 0..run.unsigned_abs() {
                            data.skip_value(self.kind)?;
                        }
                        rows = count(rows, run.unsigned_abs())?;
                    } else {
                        rows = count(rows, data.leb128()?)?;
                    }
                }
            }
        }
        Ok(rows)
    }
}

/// Bytes not yet read.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], VerifyError> {
        if n > self.0.len() {
            return Err(malformed("a chunk ends early"));
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }

    /// An unsigned LEB128 number, refused where automerge's parser refuses it.
    fn leb128(&mut self) -> Result<u64, VerifyError> {
        let mut value = 0u64;
        let mut shift = 0u32;
        loop {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                if (shift > 64 && byte > 1) || (shift > 7 && byte == 0) {
                    return Err(malformed("a LEB128 number is overlong or too large"));
                }
                return Ok(value);
            }
            if shift > 64 {
                return Err(malformed("a LEB128 number is too large"));
            }
        }
    }

    /// A LEB128 number whose value is not needed (signed or not).
    fn skip_leb128(&mut self) -> Result<(), VerifyError> {
        for _ in 0..10 {
            if self.take(1)?[0] & 0x80 == 0 {
                return Ok(());
            }
        }
        Err(malformed("a LEB128 number is too long"))
    }

    /// A signed LEB128 number.
    fn signed_leb128(&mut self) -> Result<i64, VerifyError> {
        let mut value = 0i64;
        let mut shift = 0u32;
        loop {
            let byte = self.take(1)?[0];
            if shift >= 64 {
                return Err(malformed("a LEB128 number is too large"));
            }
            value |= i64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                if shift < 64 && byte & 0x40 != 0 {
                    value |= -1i64 << shift;
                }
                return Ok(value);
            }
        }
    }

    /// One value of a run-length encoded column of this type: a string, or a number.
    fn skip_value(&mut self, kind: u32) -> Result<(), VerifyError> {
        if kind == STRING {
            let len = self.length()?;
            self.take(len).map(drop)
        } else {
            self.skip_leb128()
        }
    }

    fn length(&mut self) -> Result<usize, VerifyError> {
        usize::try_from(self.leb128()?).map_err(|_| malformed("a length is too large"))
    }

    /// A count-prefixed list of length-prefixed actor ids.
    fn skip_actors(&mut self) -> Result<(), VerifyError> {
        for _ in 0..self.leb128()? {
            let len = self.length()?;
            self.take(len)?;
        }
        Ok(())
    }

    /// A count-prefixed list of change hashes.
    fn skip_hashes(&mut self) -> Result<(), VerifyError> {
        for _ in 0..self.leb128()? {
            self.take(HASH_LEN)?;
        }
        Ok(())
    }

    /// A count-prefixed list of column specifications and lengths.
    fn columns(&mut self) -> Result<Vec<Column>, VerifyError> {
        let mut columns = Vec::new();
        for _ in 0..self.leb128()? {
            let spec = u32::try_from(self.leb128()?)
                .map_err(|_| malformed("a column specification is too large"))?;
            let len = self.length()?;
            columns.push(Column {
                kind: spec & TYPE_BITS,
                deflated: spec & DEFLATE_BIT != 0,
                len,
            });
        }
        Ok(columns)
    }
}

fn malformed(what: &str) -> VerifyError {
    VerifyError::Malformed(what.to_owned())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use automerge::{Automerge, ObjType, ROOT, transaction::Transactable};
    use proptest::prelude::*;

    use super::*;

    /// 64 MiB of zeros, deflated (about 64 KiB).
    fn bomb() -> Vec<u8> {
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..64 {
            encoder.write_all(&zeros).unwrap();
        }
        encoder.finish().unwrap()
    }

    fn leb128(out: &mut Vec<u8>, mut value: u64) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn chunk(kind: u8, data: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend([0; 4]);
        out.push(kind);
        leb128(&mut out, data.len() as u64);
        out.extend(data);
        out
    }

    #[test]
    fn a_compressed_change_that_inflates_past_the_budget_is_refused() {
        let bytes = chunk(COMPRESSED_CHANGE, &bomb());
        assert_eq!(Budget::new().admit(&bytes), Err(VerifyError::Inflates));
    }

    #[test]
    fn a_document_column_that_inflates_past_the_budget_is_refused() {
        let deflated = bomb();
        let mut data = vec![0, 0]; // no actors, no heads
        leb128(&mut data, 1); // one change column...
        leb128(&mut data, (1 << 4) | u64::from(DEFLATE_BIT)); // ...deflated...
        leb128(&mut data, deflated.len() as u64); // ...this long
        data.push(0); // no op columns
        data.extend(&deflated);
        let bytes = chunk(DOCUMENT, &data);
        assert_eq!(Budget::new().admit(&bytes), Err(VerifyError::Inflates));
    }

    /// The path every payload from a peer or a bundle takes: refused before automerge
    /// inflates anything (it used to inflate the 64 MiB, then fail to parse it).
    #[test]
    fn a_payload_that_inflates_past_the_budget_is_refused() {
        use crate::wire::{HashSignature, Payload, SignedBytes};
        use crate::{DocKind, DocumentId};
        let change = chunk(COMPRESSED_CHANGE, &bomb());
        let id = DocumentId::from_bytes([1; 16]);
        let payload = Payload::Changes(vec![SignedBytes {
            change,
            signature: vec![0; 64],
        }]);
        let applied = crate::sync::apply_payload(id, DocKind::Entry, None, &payload);
        assert_eq!(applied.err(), Some(VerifyError::Inflates));

        let mut data = vec![0, 0];
        leb128(&mut data, 0); // no change columns
        let deflated = bomb();
        leb128(&mut data, 1);
        leb128(&mut data, (2 << 4) | u64::from(DEFLATE_BIT));
        leb128(&mut data, deflated.len() as u64);
        data.extend(&deflated);
        let payload = Payload::Whole {
            document: chunk(DOCUMENT, &data),
            signatures: vec![HashSignature {
                hash: [0; 32],
                signature: vec![0; 64],
            }],
        };
        let applied = crate::sync::apply_payload(id, DocKind::Entry, None, &payload);
        assert_eq!(applied.err(), Some(VerifyError::Inflates));
    }

    #[test]
    fn the_budget_is_shared_by_the_parts_of_one_payload() {
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder
            .write_all(&vec![0u8; MAX_INFLATED_BYTES / 2 + 1])
            .unwrap();
        let half = chunk(COMPRESSED_CHANGE, &encoder.finish().unwrap());
        let mut budget = Budget::new();
        budget.admit(&half).expect("half the budget");
        assert_eq!(budget.admit(&half), Err(VerifyError::Inflates));
    }

    #[test]
    fn too_many_chunks_are_refused() {
        // No dependencies, no actor, sequence 0, first op 1, time 0, no message, no other
        // actors, no columns.
        let empty = chunk(CHANGE, &[0, 0, 0, 1, 0, 0, 0, 0]);
        let bytes = empty.repeat(MAX_PAYLOAD_CHUNKS + 1);
        assert_eq!(Budget::new().admit(&bytes), Err(VerifyError::TooManyChunks));
    }

    /// Signed LEB128, as automerge writes run counts.
    fn signed_leb128(out: &mut Vec<u8>, mut value: i64) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if (value == 0 && byte & 0x40 == 0) || (value == -1 && byte & 0x40 != 0) {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    /// Eleven bytes of column data that declare 2^40 operations: automerge would walk every
    /// one of them while decoding the change, before any signature is checked.
    #[test]
    fn a_change_whose_runs_declare_too_many_operations_is_refused() {
        let mut column = Vec::new();
        signed_leb128(&mut column, 1 << 40); // a run of 2^40 copies...
        leb128(&mut column, 1); // ...of one value
        let mut data = vec![0, 0, 0, 1, 0, 0, 0]; // the change's header fields
        leb128(&mut data, 1); // one op column...
        leb128(&mut data, (1 << 4) | 2); // ...of integers...
        leb128(&mut data, column.len() as u64); // ...this long
        data.extend(&column);
        let bytes = chunk(CHANGE, &data);
        assert_eq!(Budget::new().admit(&bytes), Err(VerifyError::TooManyRows));

        // Literal runs and runs of nulls count the same; a boolean column is its run lengths.
        for (kind, column) in [
            (
                2,
                [vec![0x00], vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x20]].concat(),
            ),
            (4, vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x20]),
        ] {
            let mut data = vec![0, 0, 0, 1, 0, 0, 0, 1];
            leb128(&mut data, (1 << 4) | kind);
            leb128(&mut data, column.len() as u64);
            data.extend(&column);
            let bytes = chunk(CHANGE, &data);
            assert_eq!(Budget::new().admit(&bytes), Err(VerifyError::TooManyRows));
        }
    }

    #[test]
    fn the_rows_of_a_real_change_are_counted_from_its_runs() {
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        let list = tx.put_object(ROOT, "list", ObjType::List).unwrap();
        for i in 0..5000 {
            tx.insert(&list, i, ()).unwrap();
        }
        tx.commit();
        let change = doc.get_changes(&[]).remove(0);
        let mut budget = Budget::new();
        budget.admit(change.raw_bytes()).expect("a real change");
        assert_eq!(budget.rows, 5001, "the list and its 5,000 elements");
        let mut budget = Budget::new();
        budget.admit(&doc.save()).expect("a real document");
        assert_eq!(budget.rows, 5001 + 1, "its operations, and its one change");
    }

    /// A document large enough that automerge deflates its columns, and its changes.
    fn big_document() -> Automerge {
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        let text = tx.put_object(ROOT, "body", ObjType::Text).unwrap();
        for i in 0..400 {
            tx.splice_text(&text, 0, 0, &format!("Se siembra en luna nueva {i}. "))
                .unwrap();
        }
        tx.commit();
        doc
    }

    #[test]
    fn what_automerge_saves_is_admitted_and_loads() {
        let doc = big_document();
        let saved = doc.save();
        let mut budget = Budget::new();
        budget.admit(&saved).expect("a saved document is admitted");
        assert!(
            budget.inflated() > 0,
            "the saved document has deflated columns"
        );
        Automerge::load(&saved).expect("and loads");
        assert!(Budget::new().admit(&doc.save_nocompress()).is_ok());

        let mut change = doc.get_changes(&[]).remove(0);
        let compressed = change.bytes().into_owned();
        assert!(compressed.len() < change.raw_bytes().len(), "compressed");
        let mut budget = Budget::new();
        budget.admit(&compressed).expect("a compressed change");
        assert!(budget.inflated() > 0);
        Budget::new()
            .admit(change.raw_bytes())
            .expect("an uncompressed change");
        Budget::new().admit(&[]).expect("nothing at all");
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Budget::new().admit(&bytes);
            let mut framed = MAGIC.to_vec();
            framed.extend(&bytes);
            let _ = Budget::new().admit(&framed);
        }
    }
}

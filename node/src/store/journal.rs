//! A large staged write spilled to a tree of its own, so an import of any size runs in bounded
//! memory and still lands all or nothing: the rows collect in the journal while the import is
//! verified, a commit mark makes them count, and they are then moved into the store in small
//! batches. A crash before the mark leaves the store as it was (the journal is dropped at
//! open); a crash after it is finished at open by moving the journal again (every row holds
//! its final value, so moving one twice is harmless).

use sled::{Batch, Tree};

use super::Staged;
use super::StoreError;

/// The journal tree's name.
pub(super) const TREE: &[u8] = b"journal";

/// Staged rows kept in memory before they are spilled to the journal (small in unit tests, so
/// every import test goes through the journal).
pub(super) const SPILL_BYTES: u64 = if cfg!(test) { 16 << 10 } else { 1 << 20 };

/// Rows moved from the journal into the store per batch. sled keeps every node version a batch
/// replaces until the batch ends (one epoch guard), so memory follows the batch: an import of
/// 10,000 entries peaked at 415 MiB with 4 MiB batches, 175 MiB with 256 KiB.
const MOVE_BYTES: usize = 256 << 10;

/// The commit mark: its key sorts before every row's (all of them start with a letter).
const COMMITTED: &[u8] = &[0];

/// A journal row's value: a set row's value follows `SET`; a removal is `REMOVED` alone.
const SET: u8 = 1;
const REMOVED: u8 = 0;

/// Moves `staged`'s in-memory rows to the journal.
pub(super) fn spill(journal: &Tree, staged: &mut Staged) -> Result<(), StoreError> {
    let mut batch = Batch::default();
    for (key, value) in std::mem::take(&mut staged.pending) {
        batch.insert(key, encode(value.as_deref()));
    }
    journal.apply_batch(batch)?;
    staged.spilled_bytes = staged.bytes;
    Ok(())
}

/// A row as the journal has it: `None` if it holds nothing for `key`, `Some(None)` if it
/// removes the row.
pub(super) fn get(journal: &Tree, key: &[u8]) -> Result<Option<Option<Vec<u8>>>, StoreError> {
    journal
        .get(key)?
        .map(|value| decode(key, &value))
        .transpose()
}

/// A staged row: its key and new value, `None` for a removal.
pub(super) type Row = (Vec<u8>, Option<Vec<u8>>);

/// The journal's rows under `prefix`.
pub(super) fn scan(journal: &Tree, prefix: &[u8]) -> Result<Vec<Row>, StoreError> {
    journal
        .scan_prefix(prefix)
        .map(|row| {
            let (key, value) = row?;
            let value = decode(&key, &value)?;
            Ok((key.to_vec(), value))
        })
        .collect()
}

/// Marks the journal committed and makes the mark durable.
pub(super) fn commit(db: &sled::Db, journal: &Tree) -> Result<(), StoreError> {
    journal.insert(COMMITTED, &[])?;
    db.flush()?;
    Ok(())
}

/// Whether a journal was committed but not yet moved into the store.
pub(super) fn is_committed(journal: &Tree) -> Result<bool, StoreError> {
    Ok(journal.contains_key(COMMITTED)?)
}

/// Moves a committed journal's rows into the store, `apply` writing each batch; returns the
/// last batch's number (0 if none).
pub(super) fn replay(
    journal: &Tree,
    mut apply: impl FnMut(Batch) -> Result<u64, StoreError>,
) -> Result<u64, StoreError> {
    let mut last = 0;
    let mut batch = Batch::default();
    let mut bytes = 0;
    for row in journal.iter() {
        let (key, value) = row?;
        if key == COMMITTED {
            continue;
        }
        bytes += key.len() + value.len();
        match decode(&key, &value)? {
            Some(value) => batch.insert(key, value),
            None => batch.remove(key),
        }
        if bytes >= MOVE_BYTES {
            last = apply(std::mem::take(&mut batch))?;
            bytes = 0;
        }
    }
    if bytes > 0 {
        last = apply(batch)?;
    }
    Ok(last)
}

/// Empties the journal (after a replay made durable, or to drop an uncommitted one).
pub(super) fn clear(db: &sled::Db, journal: &Tree) -> Result<(), StoreError> {
    if !journal.is_empty() {
        journal.clear()?;
        db.flush()?;
    }
    Ok(())
}

fn encode(value: Option<&[u8]>) -> Vec<u8> {
    match value {
        Some(value) => [&[SET], value].concat(),
        None => vec![REMOVED],
    }
}

fn decode(key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    match value.split_first() {
        Some((&SET, value)) => Ok(Some(value.to_vec())),
        Some((&REMOVED, [])) => Ok(None),
        _ => Err(super::corrupt_key(key, "not a journal row")),
    }
}

#[cfg(test)]
mod tests {
    use minga_protocol::DocumentId;

    use super::*;
    use crate::Store;
    use crate::store::stage_followed;

    fn ids() -> Vec<DocumentId> {
        (0..3u8).map(|i| DocumentId::from_bytes([i; 16])).collect()
    }

    /// Stages following three collections, the first two spilled, as an import cut short
    /// would leave them; `committed` says whether the cut came after the commit mark.
    fn cut_short(dir: &std::path::Path, committed: bool) {
        let store = Store::open(dir, 1 << 20).unwrap();
        let mut staged = Staged::default();
        let ids = ids();
        stage_followed(&mut staged, &ids[0], true);
        stage_followed(&mut staged, &ids[1], true);
        spill(&store.journal, &mut staged).unwrap();
        stage_followed(&mut staged, &ids[2], true);
        assert!(
            store.is_followed_in(&staged, &ids[0]).unwrap(),
            "spilled rows are read"
        );
        assert!(
            !store.is_followed(&ids[0]).unwrap(),
            "and not yet in the store"
        );
        if committed {
            spill(&store.journal, &mut staged).unwrap();
            commit(&store.db, &store.journal).unwrap();
        }
        store.flush().unwrap();
    }

    #[test]
    fn a_journal_cut_short_before_its_commit_is_dropped_at_open() {
        let temp = tempfile::tempdir().unwrap();
        cut_short(temp.path(), false);
        let store = Store::open(temp.path(), 1 << 20).unwrap();
        for id in ids() {
            assert!(!store.is_followed(&id).unwrap());
        }
        assert!(store.journal.is_empty());
    }

    #[test]
    fn a_committed_journal_cut_short_is_moved_in_at_open() {
        let temp = tempfile::tempdir().unwrap();
        cut_short(temp.path(), true);
        let store = Store::open(temp.path(), 1 << 20).unwrap();
        for id in ids() {
            assert!(store.is_followed(&id).unwrap());
        }
        assert!(store.journal.is_empty());
    }

    #[test]
    fn spilled_writes_apply_all_or_nothing() {
        let temp = tempfile::tempdir().unwrap();
        let store = Store::open(temp.path(), 1 << 20).unwrap();
        let ids = ids();
        let mut staged = Staged::default();
        stage_followed(&mut staged, &ids[0], true);
        spill(&store.journal, &mut staged).unwrap();
        store.discard_staged(staged).unwrap();
        assert!(store.journal.is_empty() && !store.is_followed(&ids[0]).unwrap());

        let mut staged = Staged::default();
        stage_followed(&mut staged, &ids[0], true);
        spill(&store.journal, &mut staged).unwrap();
        stage_followed(&mut staged, &ids[1], true);
        stage_followed(&mut staged, &ids[0], false);
        store.apply_staged(staged).unwrap();
        assert!(!store.is_followed(&ids[0]).unwrap(), "a later removal wins");
        assert!(store.is_followed(&ids[1]).unwrap());
        assert!(store.journal.is_empty());
    }

    #[test]
    fn a_row_that_is_not_a_journal_row_is_corruption() {
        assert!(decode(b"f:x", &[]).is_err());
        assert!(decode(b"f:x", &[REMOVED, 1]).is_err());
        assert_eq!(decode(b"f:x", &encode(None)).unwrap(), None);
        assert_eq!(
            decode(b"f:x", &encode(Some(b"v"))).unwrap(),
            Some(b"v".to_vec())
        );
    }
}

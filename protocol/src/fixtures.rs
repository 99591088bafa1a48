//! Test fixtures shared by the unit and integration tests of every crate: the signed genesis
//! of an entry, made once here instead of by hand in each test. Not part of the protocol;
//! hidden from the documentation.

use automerge::{ActorId, Automerge};

use crate::entry::{self, NewEntry};
use crate::sync::SignedDoc;
use crate::{AuthorKey, DocumentId};

/// The time fixtures are created at (milliseconds since the epoch).
pub const NOW: i64 = 1_700_000_000_000;

/// The collection fixture entries belong to.
pub fn collection_id() -> DocumentId {
    DocumentId::from_bytes([9; DocumentId::LEN])
}

/// A valid new entry of `collection`: a practice in Spanish under CC-BY-4.0, with `tags`.
pub fn new_entry(collection: &DocumentId, title: &str, body: &str, tags: &[String]) -> NewEntry {
    NewEntry {
        collection: collection.to_string(),
        kind: "practice".into(),
        title: title.into(),
        body: body.into(),
        license: "CC-BY-4.0".into(),
        lang: Some("es".into()),
        tags: tags.to_vec(),
        subjects: Vec::new(),
        place: None,
        authors: Vec::new(),
        consent: Vec::new(),
        private: false,
        attachments: Vec::new(),
    }
}

/// Who makes a fixture's genesis change, and when.
#[derive(Debug, Clone)]
pub struct Maker<'a> {
    pub key: &'a AuthorKey,
    /// The author's name when the entry names none.
    pub name: &'a str,
    pub actor: ActorId,
    pub now: i64,
}

/// The genesis of `new` in `collection`, as [`entry::create`] makes it; panics on an invalid
/// entry (fixtures are valid).
pub fn genesis(new: &NewEntry, collection: &DocumentId, by: Maker<'_>) -> (DocumentId, Automerge) {
    let valid = new.validate().expect("a fixture entry is valid");
    entry::create(&valid, collection, &by.key.id(), by.name, by.actor, by.now)
        .expect("a fixture entry is created")
}

/// [`genesis`] with the signature of its change: what a node holds and sends.
pub fn signed_genesis(
    new: &NewEntry,
    collection: &DocumentId,
    by: Maker<'_>,
) -> (DocumentId, SignedDoc) {
    let key = by.key;
    let (id, doc) = genesis(new, collection, by);
    let signatures = key.sign_changes_since(&id, &doc, &[]).into_iter().collect();
    (id, SignedDoc { doc, signatures })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Entry;

    #[test]
    fn a_signed_genesis_reads_back_as_its_entry_with_one_signature() {
        let key = AuthorKey::from_bytes(&[1; 32]);
        let new = new_entry(&collection_id(), "Milpa", "maíz", &["milpa".into()]);
        let by = Maker {
            key: &key,
            name: "Ana",
            actor: key.actor([2; 16]),
            now: NOW,
        };
        let (id, signed) = signed_genesis(&new, &collection_id(), by);
        let entry = Entry::read(id, &signed.doc);
        assert_eq!(entry.title, "Milpa");
        assert_eq!(entry.collection_id(), Some(collection_id()));
        assert_eq!(signed.signatures.len(), 1);
    }
}

//! An entry's history read from its automerge changes: who (the signing key) changed which
//! fields, and when by the writing node's clock. The change graph already holds all of it, so
//! nothing extra is stored or sent; each change is compared with the state it was made on.

use automerge::{Automerge, ChangeHash};
use serde::{Deserialize, Serialize};

use crate::entry::Entry;
use crate::id::DocumentId;
use crate::signing::AuthorId;

/// Changes shown at most, newest first: a page stays small whatever an entry went through.
pub const MAX_REVISIONS: usize = 200;

/// One change of an entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    /// The change hash, lowercase hex.
    pub hash: String,
    /// Unix milliseconds from the writing node's clock (informative only: never used to order).
    pub time: i64,
    /// The signing key (lowercase hex) that made the change.
    pub key: String,
    /// The name that key gave itself in the entry's authors, if any.
    pub name: Option<String>,
    /// The fields this change set, in the entry's field order; `created` for the first change.
    pub fields: Vec<String>,
}

/// The history of an entry's document, newest first (at most [`MAX_REVISIONS`]); changes
/// concurrent with each other keep the document's causal order, so none is listed before its
/// dependencies are.
pub fn history(id: DocumentId, doc: &Automerge) -> Vec<Revision> {
    let latest = Entry::read(id, doc);
    let changes = doc.get_changes(&[]);
    let skip = changes.len().saturating_sub(MAX_REVISIONS);
    let mut revisions: Vec<Revision> = changes
        .iter()
        .skip(skip)
        .map(|change| {
            let key = AuthorId::of_actor(change.actor_id())
                .map(|author| author.to_string())
                .unwrap_or_else(|| hex::encode(change.actor_id().to_bytes()));
            let name = latest
                .authors
                .iter()
                .find(|a| a.key == key)
                .map(|a| a.name.clone());
            let fields = if change.deps().is_empty() {
                vec!["created".to_owned()]
            } else {
                changed_fields(
                    &state_at(id, doc, change.deps()),
                    &state_at(id, doc, &[change.hash()]),
                )
            };
            Revision {
                hash: change.hash().to_string(),
                time: change.timestamp(),
                key,
                name,
                fields,
            }
        })
        .collect();
    revisions.reverse();
    revisions
}

/// The entry as it was at `heads`.
fn state_at(id: DocumentId, doc: &Automerge, heads: &[ChangeHash]) -> Entry {
    match doc.fork_at(heads) {
        Ok(fork) => Entry::read(id, &fork),
        // The heads come from the document's own changes, so they are always there.
        Err(_) => Entry::read(id, doc),
    }
}

/// The user-visible fields that differ between two states of an entry.
fn changed_fields(before: &Entry, after: &Entry) -> Vec<String> {
    let differs = [
        ("title", before.title != after.title),
        ("body", before.body != after.body),
        ("lang", before.lang != after.lang),
        ("tags", before.tags != after.tags),
        ("subjects", before.subjects != after.subjects),
        ("place", before.place != after.place),
        ("authors", before.authors != after.authors),
        ("attachments", before.attachments != after.attachments),
        ("consent", before.consent != after.consent),
        ("private", before.private != after.private),
    ];
    differs
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(field, _)| field.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{self, EntryPatch};
    use crate::fixtures;
    use crate::signing::AuthorKey;

    #[test]
    fn history_names_each_change_its_author_time_and_fields() {
        let ana = AuthorKey::from_bytes(&[1; 32]);
        let collection = DocumentId::from_bytes([2; 16]);
        let new = fixtures::new_entry(&collection, "Cacao", "uno", &[]);
        let by = fixtures::Maker {
            key: &ana,
            name: "Ana",
            actor: ana.actor([3; 16]),
            now: 1_000,
        };
        let (id, mut doc) = fixtures::genesis(&new, &collection, by);
        let patch = EntryPatch {
            body: Some("dos".into()),
            tags: Some(vec!["cacao".into()]),
            ..EntryPatch::default()
        };
        entry::apply_patch(&mut doc, id, &patch, &ana.id(), 2_000).unwrap();
        let revisions = history(id, &doc);
        assert_eq!(revisions.len(), 2);
        assert_eq!(revisions[0].fields, ["body", "tags"]);
        assert_eq!(revisions[0].time, 2_000);
        assert_eq!(revisions[1].fields, ["created"]);
        assert_eq!(revisions[1].time, 1_000);
        assert_eq!(revisions[1].key, ana.id().to_string());
        assert_eq!(revisions[1].name.as_deref(), Some("Ana"));
    }
}

//! Collections: named sets of entries with a default licence and the keys allowed to change them.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, ROOT};
use serde::{Deserialize, Serialize};

use crate::doc;
use crate::limits::MAX_SHORT_TEXT;
use crate::{AuthorId, DocumentId, Refusal};

/// The `schema` of every collection document.
pub const COLLECTION_SCHEMA: &str = "minga/collection/1";

/// Root fields written once, by the genesis change, and never again.
pub const FIXED_FIELDS: [&str; 2] = ["schema", "name"];

/// The licence of a collection created without one.
pub const DEFAULT_LICENSE: &str = "CC-BY-SA-4.0";

/// Longest collection name, in characters.
const MAX_NAME_CHARS: usize = 64;

/// The body of `POST /api/v1/collections`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewCollection {
    pub name: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub license: Option<String>,
}

/// A collection as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Collection {
    pub id: DocumentId,
    pub name: String,
    pub title: String,
    pub description: String,
    pub license: String,
    /// Hex author keys allowed to change the collection.
    pub maintainers: Vec<String>,
    /// Entries this node holds in the collection (filled in by the node).
    #[serde(default)]
    pub entries: u64,
}

impl NewCollection {
    fn validate(&self) -> Result<(), Refusal> {
        check_name(&self.name)?;
        if let Some(license) = &self.license {
            crate::license::check_open(license)?;
        }
        for (field, text) in [("title", &self.title), ("description", &self.description)] {
            if text.as_ref().is_some_and(|t| t.len() > MAX_SHORT_TEXT * 4) {
                return Err(Refusal::InvalidField {
                    field,
                    reason: "too long".into(),
                });
            }
        }
        Ok(())
    }
}

/// Builds the genesis change of a new collection maintained by `author`.
pub fn create(
    new: &NewCollection,
    author: &AuthorId,
    actor: ActorId,
    now: i64,
) -> Result<(DocumentId, Automerge), Refusal> {
    new.validate()?;
    let mut doc = Automerge::new().with_actor(actor);
    let mut tx = doc.transaction();
    let written = (|| {
        tx.put(ROOT, "schema", COLLECTION_SCHEMA)?;
        tx.put(ROOT, "name", new.name.as_str())?;
        tx.put(ROOT, "title", new.title.as_deref().unwrap_or(&new.name))?;
        tx.put(
            ROOT,
            "description",
            new.description.as_deref().unwrap_or(""),
        )?;
        tx.put(
            ROOT,
            "license",
            new.license.as_deref().unwrap_or(DEFAULT_LICENSE),
        )?;
        doc::put_strings(&mut tx, &ROOT, "maintainers", &[author.to_string()])?;
        tx.put(ROOT, "created", now)
    })();
    written.expect("writing to a fresh document cannot fail");
    let (hash, _) = tx.commit_with(CommitOptions::default().with_time(now));
    let id = DocumentId::of_genesis(&hash.expect("the genesis transaction has operations"));
    Ok((id, doc))
}

impl Collection {
    /// Reads a collection from its document; missing fields read as empty.
    pub fn read(id: DocumentId, doc: &Automerge) -> Collection {
        let text = |key| doc::string(doc, &ROOT, key).unwrap_or_default();
        Collection {
            id,
            name: text("name"),
            title: text("title"),
            description: text("description"),
            license: text("license"),
            maintainers: doc::strings(doc, &ROOT, "maintainers"),
            entries: 0,
        }
    }

    /// The rules every state of a collection must satisfy.
    pub fn check(doc: &Automerge) -> Result<(), Refusal> {
        let schema = doc::string(doc, &ROOT, "schema").unwrap_or_default();
        if schema != COLLECTION_SCHEMA {
            return Err(Refusal::InvalidField {
                field: "schema",
                reason: format!("expected {COLLECTION_SCHEMA:?}, found {schema:?}"),
            });
        }
        check_name(&doc::string(doc, &ROOT, "name").unwrap_or_default())?;
        crate::license::check_open(&doc::string(doc, &ROOT, "license").unwrap_or_default())
    }

    pub fn is_maintainer(&self, author: &AuthorId) -> bool {
        let hex = author.to_string();
        self.maintainers.contains(&hex)
    }
}

/// Names are short slugs: lower-case letters, digits, `-` and `_`.
fn check_name(name: &str) -> Result<(), Refusal> {
    let chars = name.chars().count();
    let slug = name
        .chars()
        .all(|c| c.is_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if chars == 0 || chars > MAX_NAME_CHARS || !slug {
        return Err(Refusal::InvalidField {
            field: "name",
            reason: format!(
                "{name:?}: a name has 1 to {MAX_NAME_CHARS} lower-case letters, digits, - or _"
            ),
        });
    }
    Ok(())
}

//! Entries: one automerge document per practice, history or resource.
//!
//! [`NewEntry`] and [`EntryPatch`] are what users send; [`create`] and [`apply_patch`] turn them
//! into signed-ready automerge changes; [`Entry`] is the read view, which is also the JSON shape
//! of the API. Fields this version does not know are never touched, so they survive edits.

use std::str::FromStr;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, ChangeHash, ObjType, ROOT};
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::doc;
use crate::limits::{MAX_BODY_BYTES, MAX_LIST_ITEMS, MAX_SHORT_TEXT, MAX_TAGS, MAX_TITLE_CHARS};
use crate::{AuthorId, DocumentId, Refusal};

type AmResult = Result<(), automerge::AutomergeError>;

/// The `schema` of every entry document.
pub const ENTRY_SCHEMA: &str = "minga/entry/1";

/// Root fields written once, by the genesis change, and never again.
pub const FIXED_FIELDS: [&str; 4] = ["schema", "kind", "collection", "license"];

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Practice,
    History,
    Resource,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Practice => "practice",
            Kind::History => "history",
            Kind::Resource => "resource",
        }
    }
}

impl FromStr for Kind {
    type Err = Refusal;

    fn from_str(text: &str) -> Result<Self, Refusal> {
        match text {
            "practice" => Ok(Kind::Practice),
            "history" => Ok(Kind::History),
            "resource" => Ok(Kind::Resource),
            other => Err(Refusal::InvalidKind(other.to_owned())),
        }
    }
}

/// Where an entry comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Place {
    pub name: String,
    #[serde(default)]
    pub lat: Option<f64>,
    #[serde(default)]
    pub lon: Option<f64>,
}

/// `place` as users send it: a name, or an object.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PlaceInput {
    Name(String),
    Place(Place),
}

/// A name claimed by the key that added it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    pub name: String,
    pub key: String,
}

impl Author {
    /// How an attribution credits this author: the name, else the start of the key, so an
    /// author who gave no name is still credited (and told apart from another).
    pub fn credit(&self) -> String {
        match self.name.trim() {
            "" => format!("key {}", self.key.get(..8).unwrap_or(&self.key)),
            name => name.to_owned(),
        }
    }
}

/// `authors` items as users send them: a name or `{name}`; the node fills in the key.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AuthorInput {
    Name(String),
    Named { name: String },
}

impl AuthorInput {
    fn name(&self) -> &str {
        match self {
            AuthorInput::Name(name) | AuthorInput::Named { name } => name,
        }
    }
}

/// A file attached to an entry, addressed by its BLAKE3 hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub hash: String,
    pub name: String,
    pub mime: String,
    pub size: u64,
}

impl Attachment {
    /// The blob the attachment names; `None` when its hash is not one (a document read as
    /// stored, before any policy).
    pub fn blob_hash(&self) -> Option<crate::BlobHash> {
        self.hash.parse().ok()
    }
}

/// The consent of one person named in a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub name: String,
    pub status: String,
    #[serde(default)]
    pub how: String,
    #[serde(default)]
    pub date: String,
}

/// The accepted consent statuses.
pub const CONSENT_STATUSES: [&str; 3] = ["given", "refused", "pending"];

/// The body of `POST /api/v1/entries`, before validation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewEntry {
    /// A collection id, or the name of a collection this node holds.
    pub collection: String,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub license: String,
    #[serde(default)]
    pub lang: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub subjects: Vec<String>,
    #[serde(default)]
    pub place: Option<PlaceInput>,
    #[serde(default)]
    pub authors: Vec<AuthorInput>,
    #[serde(default)]
    pub consent: Vec<Consent>,
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
}

/// The body of `PATCH /api/v1/entries/{id}`: each field present replaces the current one.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EntryPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subjects: Option<Vec<String>>,
    /// A name, an object, or `null` to remove the place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authors: Option<Vec<AuthorInput>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<Vec<Consent>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<Attachment>>,
    /// Fixed fields: present only to be refused when they differ from the entry's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
}

/// An entry as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub id: DocumentId,
    /// Sorted lowercase hex change hashes.
    pub heads: Vec<String>,
    pub schema: String,
    pub kind: String,
    pub collection: String,
    pub license: String,
    pub title: String,
    pub body: String,
    pub lang: String,
    pub tags: Vec<String>,
    pub subjects: Vec<String>,
    pub place: Option<Place>,
    pub authors: Vec<Author>,
    pub created: i64,
    pub updated: i64,
    pub attachments: Vec<Attachment>,
    pub consent: Vec<Consent>,
    pub private: bool,
}

/// A validated [`NewEntry`]: text normalised, lists cleaned, kind parsed.
#[derive(Clone, Debug)]
pub struct ValidEntry {
    pub collection: String,
    pub kind: Kind,
    pub title: String,
    pub body: String,
    pub license: String,
    pub lang: String,
    pub tags: Vec<String>,
    pub subjects: Vec<String>,
    pub place: Option<Place>,
    pub authors: Vec<String>,
    pub consent: Vec<Consent>,
    pub private: bool,
    pub attachments: Vec<Attachment>,
}

impl NewEntry {
    /// Applies every rule that needs no store, in the order users meet them.
    pub fn validate(&self) -> Result<ValidEntry, Refusal> {
        let kind: Kind = self.kind.parse()?;
        crate::license::check_open(&self.license)?;
        let title = check_title(&self.title)?;
        let body = check_body(&self.body)?;
        let valid = ValidEntry {
            collection: self.collection.trim().to_owned(),
            kind,
            title,
            body,
            license: self.license.clone(),
            lang: check_lang(self.lang.as_deref().unwrap_or("und"))?,
            tags: check_tags(&self.tags)?,
            subjects: check_list("subjects", &self.subjects)?,
            place: self.place.clone().map(check_place).transpose()?,
            authors: check_authors(&self.authors)?,
            consent: check_consent(&self.consent)?,
            private: self.private,
            attachments: check_attachments(&self.attachments)?,
        };
        Ok(valid)
    }
}

/// Builds the genesis change of a new entry. Returns the document and its id.
///
/// `default_author` names the author when the request names none.
pub fn create(
    entry: &ValidEntry,
    collection: &DocumentId,
    author: &AuthorId,
    default_author: &str,
    actor: ActorId,
    now: i64,
) -> Result<(DocumentId, Automerge), Refusal> {
    let mut doc = Automerge::new().with_actor(actor);
    let mut tx = doc.transaction();
    let key = author.to_string();
    let authors: Vec<Author> = if entry.authors.is_empty() {
        vec![Author {
            name: default_author.to_owned(),
            key,
        }]
    } else {
        entry
            .authors
            .iter()
            .map(|name| Author {
                name: name.clone(),
                key: key.clone(),
            })
            .collect()
    };
    let written = (|| {
        tx.put(ROOT, "schema", ENTRY_SCHEMA)?;
        tx.put(ROOT, "kind", entry.kind.as_str())?;
        tx.put(ROOT, "collection", collection.to_string())?;
        tx.put(ROOT, "license", entry.license.as_str())?;
        doc::put_text(&mut tx, &ROOT, "title", &entry.title)?;
        doc::put_text(&mut tx, &ROOT, "body", &entry.body)?;
        tx.put(ROOT, "lang", entry.lang.as_str())?;
        doc::put_strings(&mut tx, &ROOT, "tags", &entry.tags)?;
        doc::put_strings(&mut tx, &ROOT, "subjects", &entry.subjects)?;
        if let Some(place) = &entry.place {
            put_place(&mut tx, Some(place))?;
        }
        put_authors(&mut tx, &authors)?;
        tx.put(ROOT, "created", now)?;
        tx.put(ROOT, "updated", now)?;
        put_attachments(&mut tx, &entry.attachments)?;
        put_consent(&mut tx, &entry.consent)?;
        tx.put(ROOT, "private", entry.private)
    })();
    written.expect("writing to a fresh document cannot fail");
    let (hash, _) = tx.commit_with(CommitOptions::default().with_time(now));
    let id = DocumentId::of_genesis(&hash.expect("the genesis transaction has operations"));
    let created = Entry::read(id, &doc);
    created.check()?;
    check_saved_size(&doc)?;
    Ok((id, doc))
}

/// Applies a patch as one change. Returns the change hash (`None` if nothing changed).
///
/// On a refusal the document may hold the rejected change: callers work on a copy.
pub fn apply_patch(
    doc: &mut Automerge,
    id: DocumentId,
    patch: &EntryPatch,
    author: &AuthorId,
    now: i64,
) -> Result<Option<ChangeHash>, Refusal> {
    let current = Entry::read(id, doc);
    for (field, value, held) in [
        ("collection", &patch.collection, &current.collection),
        ("kind", &patch.kind, &current.kind),
        ("license", &patch.license, &current.license),
        ("schema", &patch.schema, &current.schema),
    ] {
        if value
            .as_ref()
            .is_some_and(|v| v.as_str() != Some(held.as_str()))
        {
            return Err(Refusal::ImmutableField(field.to_owned()));
        }
    }
    let title = patch.title.as_deref().map(check_title).transpose()?;
    let body = patch.body.as_deref().map(check_body).transpose()?;
    let lang = patch.lang.as_deref().map(check_lang).transpose()?;
    let tags = patch.tags.as_deref().map(check_tags).transpose()?;
    let subjects = patch
        .subjects
        .as_deref()
        .map(|s| check_list("subjects", s))
        .transpose()?;
    let place = match &patch.place {
        None => None,
        Some(serde_json::Value::Null) => Some(None),
        Some(value) => {
            let input = serde_json::from_value::<PlaceInput>(value.clone()).map_err(|e| {
                Refusal::InvalidField {
                    field: "place",
                    reason: e.to_string(),
                }
            })?;
            Some(Some(check_place(input)?))
        }
    };
    let authors = patch.authors.as_deref().map(check_authors).transpose()?;
    let consent = patch.consent.as_deref().map(check_consent).transpose()?;
    let attachments = patch
        .attachments
        .as_deref()
        .map(check_attachments)
        .transpose()?;

    let key = author.to_string();
    let mut tx = doc.transaction();
    let written = (|| {
        if let Some(title) = &title {
            doc::update_text(&mut tx, &ROOT, "title", title)?;
        }
        if let Some(body) = &body {
            doc::update_text(&mut tx, &ROOT, "body", body)?;
        }
        if let Some(lang) = &lang {
            tx.put(ROOT, "lang", lang.as_str())?;
        }
        if let Some(tags) = &tags {
            doc::put_strings(&mut tx, &ROOT, "tags", tags)?;
        }
        if let Some(subjects) = &subjects {
            doc::put_strings(&mut tx, &ROOT, "subjects", subjects)?;
        }
        if let Some(place) = &place {
            put_place(&mut tx, place.as_ref())?;
        }
        if let Some(names) = &authors {
            let authors: Vec<Author> = names
                .iter()
                .map(|name| Author {
                    name: name.clone(),
                    key: key.clone(),
                })
                .collect();
            put_authors(&mut tx, &authors)?;
        }
        if let Some(consent) = &consent {
            put_consent(&mut tx, consent)?;
        }
        if let Some(private) = patch.private {
            tx.put(ROOT, "private", private)?;
        }
        if let Some(attachments) = &attachments {
            put_attachments(&mut tx, attachments)?;
        }
        Ok::<_, automerge::AutomergeError>(())
    })();
    written.expect("writing fields of an entry cannot fail");
    if tx.pending_ops() == 0 {
        tx.rollback();
        return Ok(None);
    }
    tx.put(ROOT, "updated", now)
        .expect("writing fields of an entry cannot fail");
    let (hash, _) = tx.commit_with(CommitOptions::default().with_time(now));
    Entry::read(id, doc).check()?;
    check_saved_size(doc)?;
    Ok(hash)
}

impl Entry {
    /// The collection the entry belongs to; `None` when its document names none, or something
    /// that is not an id (a document read as stored, before any policy).
    pub fn collection_id(&self) -> Option<DocumentId> {
        self.collection.parse().ok()
    }

    /// Reads an entry from its document; missing or mistyped fields read as empty.
    pub fn read(id: DocumentId, doc: &Automerge) -> Entry {
        let text = |key| doc::string(doc, &ROOT, key).unwrap_or_default();
        let mut heads: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
        heads.sort();
        let place = doc::object(doc, &ROOT, "place", ObjType::Map).map(|obj| Place {
            name: doc::string(doc, &obj, "name").unwrap_or_default(),
            lat: doc::float(doc, &obj, "lat"),
            lon: doc::float(doc, &obj, "lon"),
        });
        let field = |obj, key| doc::string(doc, obj, key).unwrap_or_default();
        Entry {
            id,
            heads,
            schema: text("schema"),
            kind: text("kind"),
            collection: text("collection"),
            license: text("license"),
            title: text("title"),
            body: text("body"),
            lang: text("lang"),
            tags: doc::strings(doc, &ROOT, "tags"),
            subjects: doc::strings(doc, &ROOT, "subjects"),
            place,
            authors: doc::maps(doc, &ROOT, "authors")
                .iter()
                .map(|a| Author {
                    name: field(a, "name"),
                    key: field(a, "key"),
                })
                .collect(),
            created: doc::int(doc, &ROOT, "created").unwrap_or(0),
            updated: doc::int(doc, &ROOT, "updated").unwrap_or(0),
            attachments: doc::maps(doc, &ROOT, "attachments")
                .iter()
                .map(|a| Attachment {
                    hash: field(a, "hash"),
                    name: field(a, "name"),
                    mime: field(a, "mime"),
                    size: doc::int(doc, a, "size")
                        .and_then(|s| u64::try_from(s).ok())
                        .unwrap_or(0),
                })
                .collect(),
            consent: doc::maps(doc, &ROOT, "consent")
                .iter()
                .map(|c| Consent {
                    name: field(c, "name"),
                    status: field(c, "status"),
                    how: field(c, "how"),
                    date: field(c, "date"),
                })
                .collect(),
            private: doc::boolean(doc, &ROOT, "private").unwrap_or(false),
        }
    }

    /// The rules every state of an entry must satisfy, whoever wrote it.
    pub fn check(&self) -> Result<(), Refusal> {
        if self.schema != ENTRY_SCHEMA {
            return Err(Refusal::InvalidField {
                field: "schema",
                reason: format!("expected {ENTRY_SCHEMA:?}, found {:?}", self.schema),
            });
        }
        self.kind.parse::<Kind>()?;
        crate::license::check_open(&self.license)?;
        self.collection
            .parse::<DocumentId>()
            .map_err(|e| Refusal::InvalidField {
                field: "collection",
                reason: e.to_string(),
            })?;
        check_title(&self.title)?;
        check_body(&self.body)?;
        if self.tags.len() > MAX_TAGS {
            return Err(Refusal::TooManyTags(self.tags.len()));
        }
        Ok(())
    }

    /// Whether the entry may leave this node: not private, and for a history, every named
    /// person has given consent.
    pub fn is_shareable(&self) -> bool {
        !self.private
            && (self.kind != Kind::History.as_str()
                || self.consent.iter().all(|c| c.status == "given"))
    }
}

fn check_saved_size(doc: &Automerge) -> Result<(), Refusal> {
    let size = doc.save().len();
    if size > crate::limits::MAX_DOCUMENT_BYTES {
        return Err(Refusal::DocumentTooLarge(size));
    }
    Ok(())
}

fn check_title(title: &str) -> Result<String, Refusal> {
    let title: String = title.trim().nfc().collect();
    if title.is_empty() {
        return Err(Refusal::EmptyTitle);
    }
    let chars = title.chars().count();
    if chars > MAX_TITLE_CHARS {
        return Err(Refusal::TitleTooLong(chars));
    }
    Ok(title)
}

fn check_body(body: &str) -> Result<String, Refusal> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Refusal::BodyTooLarge(body.len()));
    }
    Ok(body.nfc().collect())
}

fn check_lang(lang: &str) -> Result<String, Refusal> {
    let lang = lang.trim();
    if !crate::lang::is_well_formed(lang) {
        return Err(Refusal::InvalidField {
            field: "lang",
            reason: format!("{lang:?} is not a BCP 47 language tag such as es, qug or en"),
        });
    }
    Ok(lang.to_owned())
}

fn check_short(field: &'static str, text: &str) -> Result<String, Refusal> {
    let text: String = text.trim().nfc().collect();
    if text.len() > MAX_SHORT_TEXT {
        return Err(Refusal::InvalidField {
            field,
            reason: format!("longer than {MAX_SHORT_TEXT} bytes"),
        });
    }
    Ok(text)
}

/// Trims, drops empty items and duplicates (keeping the first), and bounds the count.
fn check_list(field: &'static str, items: &[String]) -> Result<Vec<String>, Refusal> {
    if items.len() > MAX_LIST_ITEMS {
        return Err(Refusal::InvalidField {
            field,
            reason: format!("more than {MAX_LIST_ITEMS} items"),
        });
    }
    let mut cleaned: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let item = check_short(field, item)?;
        if !item.is_empty() && !cleaned.contains(&item) {
            cleaned.push(item);
        }
    }
    Ok(cleaned)
}

fn check_tags(tags: &[String]) -> Result<Vec<String>, Refusal> {
    let tags = check_list("tags", tags)?;
    if tags.len() > MAX_TAGS {
        return Err(Refusal::TooManyTags(tags.len()));
    }
    Ok(tags)
}

fn check_place(input: PlaceInput) -> Result<Place, Refusal> {
    let place = match input {
        PlaceInput::Name(name) => Place {
            name,
            lat: None,
            lon: None,
        },
        PlaceInput::Place(place) => place,
    };
    let in_range = |v: Option<f64>, max: f64| v.is_none_or(|v| v.is_finite() && v.abs() <= max);
    if !in_range(place.lat, 90.0) || !in_range(place.lon, 180.0) {
        return Err(Refusal::InvalidField {
            field: "place",
            reason: "lat must be within ±90 and lon within ±180".into(),
        });
    }
    Ok(Place {
        name: check_short("place", &place.name)?,
        ..place
    })
}

fn check_authors(authors: &[AuthorInput]) -> Result<Vec<String>, Refusal> {
    let names: Vec<String> = authors.iter().map(|a| a.name().to_owned()).collect();
    check_list("authors", &names)
}

fn check_consent(consent: &[Consent]) -> Result<Vec<Consent>, Refusal> {
    if consent.len() > MAX_LIST_ITEMS {
        return Err(Refusal::ConsentMissing(format!(
            "more than {MAX_LIST_ITEMS} people"
        )));
    }
    consent
        .iter()
        .map(|c| {
            let name = check_short("consent", &c.name)?;
            if name.is_empty() {
                return Err(Refusal::ConsentMissing(
                    "every named person needs a name".into(),
                ));
            }
            if !CONSENT_STATUSES.contains(&c.status.as_str()) {
                return Err(Refusal::ConsentMissing(format!(
                    "{name}: status must be given, refused or pending, not {:?}",
                    c.status
                )));
            }
            Ok(Consent {
                name,
                status: c.status.clone(),
                how: check_short("consent", &c.how)?,
                date: check_short("consent", &c.date)?,
            })
        })
        .collect()
}

fn check_attachments(attachments: &[Attachment]) -> Result<Vec<Attachment>, Refusal> {
    if attachments.len() > MAX_LIST_ITEMS {
        return Err(Refusal::InvalidField {
            field: "attachments",
            reason: format!("more than {MAX_LIST_ITEMS} items"),
        });
    }
    for attachment in attachments {
        let is_hash = attachment.hash.len() == 64
            && attachment
                .hash
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
        if !is_hash {
            return Err(Refusal::InvalidField {
                field: "attachments",
                reason: format!("{:?} is not a lowercase hex BLAKE3 hash", attachment.hash),
            });
        }
        check_short("attachments", &attachment.name)?;
        check_short("attachments", &attachment.mime)?;
    }
    Ok(attachments.to_vec())
}

fn put_place<T: Transactable>(tx: &mut T, place: Option<&Place>) -> AmResult {
    let Some(place) = place else {
        return tx.delete(ROOT, "place");
    };
    let map = tx.put_object(ROOT, "place", ObjType::Map)?;
    tx.put(&map, "name", place.name.as_str())?;
    if let Some(lat) = place.lat {
        tx.put(&map, "lat", lat)?;
    }
    if let Some(lon) = place.lon {
        tx.put(&map, "lon", lon)?;
    }
    Ok(())
}

fn put_authors<T: Transactable>(tx: &mut T, authors: &[Author]) -> AmResult {
    doc::put_maps(tx, &ROOT, "authors", authors, |tx, map, author| {
        tx.put(map, "name", author.name.as_str())?;
        tx.put(map, "key", author.key.as_str())
    })
}

fn put_attachments<T: Transactable>(tx: &mut T, items: &[Attachment]) -> AmResult {
    doc::put_maps(tx, &ROOT, "attachments", items, |tx, map, a| {
        tx.put(map, "hash", a.hash.as_str())?;
        tx.put(map, "name", a.name.as_str())?;
        tx.put(map, "mime", a.mime.as_str())?;
        tx.put(map, "size", a.size)
    })
}

fn put_consent<T: Transactable>(tx: &mut T, consent: &[Consent]) -> AmResult {
    doc::put_maps(tx, &ROOT, "consent", consent, |tx, map, c| {
        tx.put(map, "name", c.name.as_str())?;
        tx.put(map, "status", c.status.as_str())?;
        tx.put(map, "how", c.how.as_str())?;
        tx.put(map, "date", c.date.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuthorKey;
    use automerge::ReadDoc;

    #[test]
    fn an_author_without_a_name_is_credited_by_key() {
        let named = Author {
            name: "Rosa".into(),
            key: "ab12cd34ef56".into(),
        };
        assert_eq!(named.credit(), "Rosa");
        let unnamed = Author {
            name: " ".into(),
            ..named
        };
        assert_eq!(unnamed.credit(), "key ab12cd34");
    }

    fn new_entry() -> NewEntry {
        serde_json::from_value(serde_json::json!({
            "collection": "c", "kind": "practice", "title": "Roya", "body": "Sombra.",
            "license": "CC0-1.0", "lang": "es", "tags": ["café"]
        }))
        .unwrap()
    }

    #[test]
    fn fields_written_by_newer_versions_survive_edits() {
        let key = AuthorKey::from_bytes(&[1; 32]);
        let collection = DocumentId::from_bytes([2; 16]);
        let valid = new_entry().validate().unwrap();
        let (id, mut doc) =
            create(&valid, &collection, &key.id(), "Ana", key.actor([3; 16]), 1).unwrap();
        let mut tx = doc.transaction();
        tx.put(ROOT, "future_field", "kept").unwrap();
        tx.commit();
        let patch = EntryPatch {
            body: Some("Sombra regulada.".into()),
            ..EntryPatch::default()
        };
        apply_patch(&mut doc, id, &patch, &key.id(), 2).unwrap();
        assert_eq!(
            doc::string(&doc, &ROOT, "future_field").as_deref(),
            Some("kept")
        );
        assert_eq!(Entry::read(id, &doc).body, "Sombra regulada.");
        assert!(doc.get(ROOT, "future_field").unwrap().is_some());
    }

    #[test]
    fn concurrent_body_edits_merge() {
        let key = AuthorKey::from_bytes(&[1; 32]);
        let valid = new_entry().validate().unwrap();
        let collection = DocumentId::from_bytes([2; 16]);
        let (id, mut ours) =
            create(&valid, &collection, &key.id(), "", key.actor([3; 16]), 1).unwrap();
        let mut theirs = ours.fork().with_actor(key.actor([4; 16]));
        let prepend = EntryPatch {
            body: Some("Antes. Sombra.".into()),
            ..EntryPatch::default()
        };
        let append = EntryPatch {
            body: Some("Sombra. Después.".into()),
            ..EntryPatch::default()
        };
        apply_patch(&mut ours, id, &prepend, &key.id(), 2).unwrap();
        apply_patch(&mut theirs, id, &append, &key.id(), 2).unwrap();
        ours.merge(&mut theirs).unwrap();
        assert_eq!(Entry::read(id, &ours).body, "Antes. Sombra. Después.");
    }

    #[test]
    fn text_is_stored_in_nfc() {
        let mut new = new_entry();
        new.title = "Cafe\u{301}".into();
        assert_eq!(new.validate().unwrap().title, "Café");
    }
}

//! Read operations shared by the HTTP API and the offline CLI: they parse user input the same
//! way and answer with the same shapes.

use std::collections::BTreeSet;

use minga_protocol::history::Revision;
use minga_protocol::{BlobHash, Collection, DocumentId, Entry};
use serde::{Deserialize, Serialize};

use crate::search::{SearchQuery, Snippet};
use crate::store::{Cursor, EntryPage, ListQuery, Reader};
use crate::{BlobStore, Error, SearchIndex};

/// Largest page of a listing.
pub const MAX_LIMIT: usize = 500;
/// Page size when none is asked for.
pub const DEFAULT_LIMIT: usize = 50;
/// Deepest a search can page: the index collects `offset + limit` hits to answer a page, so
/// the offset is what sizes that allocation. No one reads 10,000 hits; a narrower query helps.
pub const MAX_SEARCH_OFFSET: usize = 10_000;

/// What a reader may see of what this node holds. Private entries and histories without every
/// named person's consent never leave the node ([`Entry::is_shareable`]); on the node itself
/// they are shown only to its own users. The API decides which a request gets, in one place:
/// `http::access::Access::visibility`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Everything held: the CLI, every client of a loopback-only node, a LAN client with a
    /// credential (token, contributor code or session).
    All,
    /// Only what may leave the node: an anonymous reader on the LAN, and every export.
    Shareable,
}

impl Visibility {
    /// Whether the reader may see this entry.
    pub fn shows(self, entry: &Entry) -> bool {
        self == Visibility::All || entry.is_shareable()
    }

    /// Whether the reader may see this blob: for [`Visibility::Shareable`], only the files of
    /// entries that may leave the node.
    pub fn shows_blob(self, store: &Reader, hash: &BlobHash) -> Result<bool, Error> {
        Ok(self == Visibility::All || store.is_blob_shareable(hash)?)
    }
}

/// The query string of `GET /api/v1/entries`, as text.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ListParams {
    pub collection: Option<String>,
    pub kind: Option<String>,
    pub tag: Option<String>,
    pub lang: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
    /// Full-text search: hits ordered by relevance instead of entries by time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// The place's name (accents and case ignored); a filter of searches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
}

/// An answer of `GET /api/v1/entries`: a page of entries, or of search hits. Read back, a
/// page whose entries carry a score and a snippet is one of hits (so `Hits` is tried first).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Listing {
    Hits(HitPage),
    Entries(EntryPage),
}

/// A page of search hits, best first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HitPage {
    pub entries: Vec<Hit>,
    pub next_cursor: Option<String>,
}

/// An entry found by a search: the entry's fields, its score and a snippet of its body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hit {
    #[serde(flatten)]
    pub entry: Entry,
    pub score: f32,
    pub snippet: Snippet,
}

/// `GET /api/v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub peer_id: String,
    pub version: String,
    pub collections: u64,
    pub entries: u64,
    pub peers: u64,
    /// Peer-to-peer listen addresses, each ending in `/p2p/<peer id>`.
    pub listen: Vec<String>,
    /// Bytes sent and received on the peer-to-peer wire since start, counted at the transport.
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Attachments held and being fetched.
    pub blobs: BlobFigures,
}

/// The blob part of the status.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BlobFigures {
    /// Complete blobs and their bytes.
    pub complete: u64,
    pub bytes: u64,
    /// Blobs partly fetched, their total size and the verified bytes of them on disk.
    pub partial: u64,
    pub partial_size: u64,
    pub partial_have: u64,
    /// Ranges from peers refused for failing verification since start.
    pub rejected_ranges: u64,
}

/// What the network contributes to the status (nothing when no node runs).
#[derive(Debug, Clone, Default)]
pub struct NetworkFigures {
    pub peers: u64,
    pub listen: Vec<String>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// `GET /api/v1/collections`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CollectionList {
    pub collections: Vec<Collection>,
}

pub fn parse_id(text: &str) -> Result<DocumentId, Error> {
    Ok(text.trim().parse()?)
}

/// A collection given by id, or by the name of one this node holds.
pub fn resolve_collection(store: &Reader, text: &str) -> Result<DocumentId, Error> {
    if let Ok(id) = text.parse::<DocumentId>() {
        if store.collection(&id)?.is_some() {
            return Ok(id);
        }
        return Err(Error::NotFound(format!(
            "this node holds no collection {id}"
        )));
    }
    store
        .collection_by_name(text)?
        .ok_or_else(|| Error::NotFound(format!("this node holds no collection named {text:?}")))
}

/// An entry by id; deleted entries, and those the reader may not see, are not found.
pub fn entry(store: &Reader, id: &DocumentId, visibility: Visibility) -> Result<Entry, Error> {
    if let Some(stone) = store.tombstone(id)? {
        return Err(Error::NotFound(format!(
            "entry {id} was deleted: {}",
            stone.reason
        )));
    }
    let hidden = store.hidden_authors()?;
    store
        .entry(id)?
        .filter(|entry| shown(entry, &hidden, visibility))
        .ok_or_else(|| Error::NotFound(format!("no entry {id}")))
}

/// Whether the entry is listed: not by a hidden author, and visible to the reader.
fn shown(entry: &Entry, hidden: &BTreeSet<String>, visibility: Visibility) -> bool {
    visibility.shows(entry) && !by_hidden_author(entry, hidden)
}

/// Whether a blocked peer's author wrote the entry: such entries are hidden here, though kept
/// and synced, so no replica's change graph gets a hole.
fn by_hidden_author(entry: &Entry, hidden: &BTreeSet<String>) -> bool {
    entry.authors.iter().any(|a| hidden.contains(&a.key))
}

/// `GET /api/v1/entries/{id}/history`: an entry's changes, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct History {
    pub changes: Vec<Revision>,
}

/// The entry and its history, read from the stored document; hidden or deleted entries are not
/// found, as with [`entry`].
pub fn history(
    store: &Reader,
    id: &DocumentId,
    visibility: Visibility,
) -> Result<(Entry, History), Error> {
    let entry = entry(store, id, visibility)?;
    let bytes = store
        .document(&entry.id)?
        .ok_or_else(|| Error::NotFound(format!("no entry {}", entry.id)))?;
    let doc = crate::store::load(&entry.id, &bytes)?;
    let changes = minga_protocol::history::history(entry.id, &doc);
    Ok((entry, History { changes }))
}

/// Entries newest first, or, with `q`, the search hits for it by relevance. `search` is needed
/// only for `q` (the CLI opens the index only then). Entries the reader may not see are left
/// out, so a page can be shorter than its limit.
pub fn list_entries(
    store: &Reader,
    search: Option<&SearchIndex>,
    params: &ListParams,
    visibility: Visibility,
) -> Result<Listing, Error> {
    let limit = limit(params)?;
    let collection = match params.collection.as_deref() {
        None | Some("") => None,
        Some(text) => Some(match text.parse::<DocumentId>() {
            Ok(id) => id,
            Err(_) => match store.collection_by_name(text)? {
                Some(id) => id,
                None => return Err(parse_id(text).unwrap_err()),
            },
        }),
    };
    if let Some(text) = non_empty(&params.q) {
        let search = search.ok_or_else(|| Error::BadRequest("search is not available".into()))?;
        let found = search_entries(store, search, params, text, collection, limit, visibility)?;
        return Ok(Listing::Hits(found));
    }
    if non_empty(&params.place).is_some() {
        return Err(Error::BadRequest(
            "place= filters a search: give q= with it".into(),
        ));
    }
    let cursor = match params.cursor.as_deref() {
        None | Some("") => None,
        Some(text) => Some(Cursor::parse(text).ok_or_else(|| bad_cursor(text))?),
    };
    let query = ListQuery {
        collection,
        kind: non_empty(&params.kind),
        tag: non_empty(&params.tag),
        lang: non_empty(&params.lang),
        limit,
        cursor,
    };
    let mut page = store.list(&query)?;
    let hidden = store.hidden_authors()?;
    page.entries
        .retain(|entry| shown(entry, &hidden, visibility));
    Ok(Listing::Entries(page))
}

fn search_entries(
    store: &Reader,
    search: &SearchIndex,
    params: &ListParams,
    text: String,
    collection: Option<DocumentId>,
    limit: usize,
    visibility: Visibility,
) -> Result<HitPage, Error> {
    if !SearchIndex::has_words(&text) {
        return Err(Error::BadRequest(format!(
            "the query {text:?} has no words to search for"
        )));
    }
    // A search's cursor is how many hits came before the next page.
    let offset = search_offset(params.cursor.as_deref())?;
    let query = SearchQuery {
        text,
        kind: non_empty(&params.kind),
        tag: non_empty(&params.tag),
        lang: non_empty(&params.lang),
        place: non_empty(&params.place),
        collection: collection.map(|id| id.to_string()),
        offset,
        limit,
    };
    let results = search.search(&query)?;
    let hidden = store.hidden_authors()?;
    let mut entries = Vec::with_capacity(results.hits.len());
    for found in &results.hits {
        // The store is the truth: an id the index still holds but the store no longer shows
        // (deleted a moment ago, by a blocked author) is left out.
        if store.tombstone(&found.id)?.is_some() {
            continue;
        }
        let Some(entry) = store.entry(&found.id)? else {
            continue;
        };
        if !shown(&entry, &hidden, visibility) {
            continue;
        }
        let snippet = results.snippet(&entry);
        entries.push(Hit {
            entry,
            score: found.score,
            snippet,
        });
    }
    Ok(HitPage {
        entries,
        next_cursor: Some(offset + results.hits.len())
            .filter(|next| results.more && *next <= MAX_SEARCH_OFFSET)
            .map(|next| next.to_string()),
    })
}

/// A search's cursor: how many hits came before the page, at most [`MAX_SEARCH_OFFSET`].
fn search_offset(cursor: Option<&str>) -> Result<usize, Error> {
    match cursor {
        None | Some("") => Ok(0),
        Some(text) => {
            let offset = text.parse::<usize>().map_err(|_| bad_cursor(text))?;
            if offset > MAX_SEARCH_OFFSET {
                return Err(Error::BadRequest(format!(
                    "a search pages at most {MAX_SEARCH_OFFSET} hits deep, not {offset}: \
                     narrow the query"
                )));
            }
            Ok(offset)
        }
    }
}

fn limit(params: &ListParams) -> Result<usize, Error> {
    match params.limit.as_deref() {
        None | Some("") => Ok(DEFAULT_LIMIT),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| Error::BadRequest(format!("limit must be 1 to {MAX_LIMIT}"))),
    }
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value.clone().filter(|s| !s.trim().is_empty())
}

fn bad_cursor(text: &str) -> Error {
    Error::BadRequest(format!("{text:?} is not a cursor from next_cursor"))
}

pub fn list_collections(store: &Reader) -> Result<CollectionList, Error> {
    Ok(CollectionList {
        collections: store.collections()?,
    })
}

pub fn status(
    store: &Reader,
    peer_id: &str,
    network: NetworkFigures,
    blobs: &BlobStore,
) -> Result<Status, Error> {
    let (rejected_ranges, live_have) = {
        let progress = blobs.progress();
        let live: u64 = progress.downloads.values().map(|d| d.have).sum();
        (progress.rejected_ranges, live)
    };
    let mut figures = BlobFigures {
        rejected_ranges,
        ..BlobFigures::default()
    };
    for (_, record) in store.blobs()? {
        if record.complete {
            figures.complete += 1;
            figures.bytes += record.size;
        } else {
            figures.partial += 1;
            figures.partial_size += record.size;
            figures.partial_have += record.have;
        }
    }
    // The store records a download's prefix every few MiB; the fetcher knows it to the range.
    figures.partial_have = figures.partial_have.max(live_have);
    Ok(Status {
        peer_id: peer_id.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        collections: store.collections()?.len() as u64,
        entries: store.entry_count()?,
        peers: network.peers,
        listen: network.listen,
        bytes_sent: network.bytes_sent,
        bytes_received: network.bytes_received,
        blobs: figures,
    })
}

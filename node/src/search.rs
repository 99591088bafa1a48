//! Full-text search: a tantivy index under `<data dir>/search/`, derived from the store and
//! rebuilt from it whenever it is missing, corrupt, of another schema version, or ahead of the
//! store. The index records (as its commit payload) the change-log position it has indexed up
//! to; [`indexer`] keeps it following the store from there, off the writer thread.
//!
//! Hits carry only ids and scores: the entries shown are read from the store, so a stale index
//! can at worst rank an entry oddly, never show a deleted or hidden one.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use minga_protocol::{DocumentId, Entry};
use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::snippet::SnippetGenerator;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::store::{Reader, StoreError};

pub mod indexer;
mod schema;

pub use schema::fold;
use schema::{Fields, Lang, Part, SCHEMA_VERSION};

/// The writer's memory budget when none is configured: tantivy's minimum, enough for a Pi.
pub const DEFAULT_WRITER_BYTES: usize = 16 << 20;

/// The least budget tantivy accepts.
pub const MIN_WRITER_BYTES: usize = 15_000_000;

/// Longest snippet, in characters.
const SNIPPET_CHARS: usize = 180;

/// Why the index could not be opened, updated or searched.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("search index: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the search writer needs at least {MIN_WRITER_BYTES} bytes, not {0}")]
    WriterMemory(usize),
}

/// What to look for, and where.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// The words, as typed.
    pub text: String,
    pub kind: Option<String>,
    pub tag: Option<String>,
    pub lang: Option<String>,
    pub place: Option<String>,
    /// A collection id (bs58).
    pub collection: Option<String>,
    pub offset: usize,
    pub limit: usize,
}

/// A ranked hit: the entry's id and how well it matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub id: DocumentId,
    pub score: f32,
}

/// A passage of an entry's body around the words found, with those words marked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snippet {
    pub text: String,
    /// `[start, end)` character offsets into `text` of the matched words.
    pub highlights: Vec<[usize; 2]>,
}

/// A page of hits, and what is needed to cut snippets for them.
pub struct Results {
    pub hits: Vec<Found>,
    /// Whether more hits follow this page.
    pub more: bool,
    snippets: Vec<(Lang, SnippetGenerator)>,
}

impl Results {
    /// The passage of `entry`'s body that best matches the query (its beginning when only the
    /// title or labels matched).
    pub fn snippet(&self, entry: &Entry) -> Snippet {
        let lang = Lang::of(&entry.lang);
        let found = self
            .snippets
            .iter()
            .find(|(l, _)| *l == lang)
            .map(|(_, generator)| generator.snippet(&entry.body))
            .filter(|s| !s.is_empty());
        match found {
            Some(snippet) => {
                let fragment = snippet.fragment();
                let chars = |byte: usize| fragment[..byte].chars().count();
                Snippet {
                    text: fragment.to_owned(),
                    highlights: snippet
                        .highlighted()
                        .iter()
                        .map(|r| [chars(r.start), chars(r.end)])
                        .collect(),
                }
            }
            None => Snippet {
                text: beginning(&entry.body, SNIPPET_CHARS),
                highlights: Vec::new(),
            },
        }
    }
}

impl std::fmt::Debug for Results {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Results")
            .field("hits", &self.hits)
            .field("more", &self.more)
            .finish_non_exhaustive()
    }
}

/// The search index of one data dir.
pub struct SearchIndex {
    reader: IndexReader,
    fields: Fields,
    /// The one writer; only the indexer (or the CLI holding the data dir) takes it.
    writer: Mutex<IndexWriter>,
    /// The change-log position (`m:seq`) everything up to which is indexed.
    indexed: AtomicU64,
    dir: PathBuf,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("dir", &self.dir)
            .field("indexed", &self.indexed)
            .finish_non_exhaustive()
    }
}

impl SearchIndex {
    /// Opens the index in `dir`, or builds an empty one there when it is missing, unreadable,
    /// of another schema version, or claims more than `store` holds (a store restored from an
    /// older backup). Call [`Self::catch_up`] next.
    pub fn open(dir: &Path, writer_bytes: usize, store: &Reader) -> Result<Self, SearchError> {
        if writer_bytes < MIN_WRITER_BYTES {
            return Err(SearchError::WriterMemory(writer_bytes));
        }
        match Self::open_existing(dir, writer_bytes) {
            Ok(index) if index.indexed() <= store.logged_seq()? => return Ok(index),
            Ok(index) => tracing::warn!(
                "the search index is ahead of the store ({} > {}); rebuilding it",
                index.indexed(),
                store.logged_seq()?
            ),
            Err(e) if dir.exists() => tracing::warn!("rebuilding the search index: {e}"),
            Err(_) => tracing::info!("building the search index"),
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
        let fields = Fields::new();
        let index = Index::builder()
            .schema(fields.schema.clone())
            .tokenizers(schema::tokenizers())
            .create_in_dir(dir)?;
        Self::assemble(index, fields, 0, writer_bytes, dir)
    }

    fn open_existing(dir: &Path, writer_bytes: usize) -> Result<Self, SearchError> {
        let mut index = Index::open_in_dir(dir)?;
        let fields = Fields::new();
        if index.schema() != fields.schema {
            return Err(corrupt("its fields differ from this version's"));
        }
        index.set_tokenizers(schema::tokenizers());
        let payload = index.load_metas()?.payload.unwrap_or_default();
        let indexed = parse_payload(&payload)
            .ok_or_else(|| corrupt(&format!("unknown position {payload:?}")))?;
        let opened = Self::assemble(index, fields, indexed, writer_bytes, dir)?;
        // Touch every segment once, so a damaged file fails here and not in a search.
        let searcher = opened.reader.searcher();
        searcher.search(&tantivy::query::AllQuery, &tantivy::collector::Count)?;
        Ok(opened)
    }

    fn assemble(
        index: Index,
        fields: Fields,
        indexed: u64,
        writer_bytes: usize,
        dir: &Path,
    ) -> Result<Self, SearchError> {
        let writer = index.writer_with_num_threads(1, writer_bytes)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(SearchIndex {
            reader,
            fields,
            writer: Mutex::new(writer),
            indexed: AtomicU64::new(indexed),
            dir: dir.to_path_buf(),
        })
    }

    /// The change-log position indexed so far.
    pub fn indexed(&self) -> u64 {
        self.indexed.load(Ordering::SeqCst)
    }

    /// Indexes every change the store logged after [`Self::indexed`] up to `upto` (a durable
    /// position), commits, and makes the result searchable. Returns how many ids it touched.
    pub fn catch_up(&self, store: &Reader, upto: u64) -> Result<usize, SearchError> {
        let mut writer = self.writer.lock().expect("search writer lock");
        let from = self.indexed();
        if upto <= from {
            return Ok(0);
        }
        let mut touched = 0;
        for (seq, id) in store.log_since(from)? {
            if seq > upto {
                // Not durable yet: the next catch-up takes it.
                continue;
            }
            touched += 1;
            let text = id.to_string();
            writer.delete_term(Term::from_field_text(self.fields.id, &text));
            if store.tombstone(&id)?.is_some() {
                continue;
            }
            if let Some(entry) = store.entry(&id)? {
                writer.add_document(self.fields.document(&entry))?;
            }
        }
        let mut commit = writer.prepare_commit()?;
        commit.set_payload(&payload(upto));
        commit.commit()?;
        self.reader.reload()?;
        self.indexed.store(upto, Ordering::SeqCst);
        Ok(touched)
    }

    /// Ranked ids matching the query and filters.
    pub fn search(&self, query: &SearchQuery) -> Result<Results, SearchError> {
        let words = self.words(&query.text);
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, Box::new(words))];
        let filters = [
            (self.fields.kind, query.kind.clone()),
            (self.fields.tag, query.tag.as_deref().map(str::to_lowercase)),
            (
                self.fields.lang,
                query.lang.as_deref().map(schema::lang_filter),
            ),
            (self.fields.place, query.place.as_deref().map(fold)),
            (self.fields.collection, query.collection.clone()),
        ];
        for (field, value) in filters {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                let term = TermQuery::new(
                    Term::from_field_text(field, &value),
                    IndexRecordOption::Basic,
                );
                clauses.push((
                    Occur::Must,
                    Box::new(ConstScoreQuery::new(Box::new(term), 0.0)),
                ));
            }
        }
        let query_all = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let top = TopDocs::with_limit(query.limit + 1)
            .and_offset(query.offset)
            .order_by_score();
        let mut ranked = searcher.search(&query_all, &top)?;
        let more = ranked.len() > query.limit;
        ranked.truncate(query.limit);
        let mut hits = Vec::with_capacity(ranked.len());
        for (score, address) in ranked {
            let doc: TantivyDocument = searcher.doc(address)?;
            let id = doc
                .get_first(self.fields.id)
                .and_then(|v| v.as_str())
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| corrupt("a document without an id"))?;
            hits.push(Found { id, score });
        }
        let mut snippets = Vec::new();
        for lang in Lang::ALL {
            let mut generator = SnippetGenerator::create(
                &searcher,
                &query_all,
                self.fields.text(lang, Part::Body),
            )?;
            generator.set_max_num_chars(SNIPPET_CHARS);
            snippets.push((lang, generator));
        }
        Ok(Results {
            hits,
            more,
            snippets,
        })
    }

    /// Whether the text has any word an analyzer keeps.
    pub fn has_words(text: &str) -> bool {
        Lang::ALL
            .into_iter()
            .any(|lang| !tokens(lang, text).is_empty())
    }

    /// Any of the words, in any language's fields, each analysed as that language's fields are.
    fn words(&self, text: &str) -> BooleanQuery {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for lang in Lang::ALL {
            let words = tokens(lang, text);
            for part in Part::ALL {
                let field = self.fields.text(lang, part);
                for word in &words {
                    let term = TermQuery::new(
                        Term::from_field_text(field, word),
                        IndexRecordOption::WithFreqs,
                    );
                    clauses.push((
                        Occur::Should,
                        Box::new(BoostQuery::new(Box::new(term), part.boost())),
                    ));
                }
            }
        }
        BooleanQuery::new(clauses)
    }

    /// Bytes the index takes on disk.
    pub fn disk_bytes(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// How many entries the index holds.
    pub fn documents(&self) -> u64 {
        self.reader.searcher().num_docs()
    }
}

/// The distinct words of `text` as a language's analyzer makes them.
fn tokens(lang: Lang, text: &str) -> Vec<String> {
    let mut analyzer = schema::analyzer(lang);
    let mut stream = analyzer.token_stream(text);
    let mut words = Vec::new();
    while let Some(token) = stream.next() {
        if !words.contains(&token.text) {
            words.push(token.text.clone());
        }
    }
    words
}

fn payload(indexed: u64) -> String {
    format!("minga-search/{SCHEMA_VERSION}:{indexed}")
}

fn parse_payload(text: &str) -> Option<u64> {
    let rest = text.strip_prefix(&format!("minga-search/{SCHEMA_VERSION}:"))?;
    rest.parse().ok()
}

fn corrupt(reason: &str) -> SearchError {
    SearchError::Index(tantivy::TantivyError::InvalidArgument(reason.to_owned()))
}

/// The first `max` characters of `text`, cut at a word boundary.
fn beginning(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let cut: String = flat.chars().take(max).collect();
    match cut.rfind(' ') {
        Some(space) => format!("{}…", &cut[..space]),
        None => format!("{cut}…"),
    }
}

#[cfg(test)]
mod tests;

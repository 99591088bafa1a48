//! Relevance over the sample commons, and the index's life: following, deletions, catching up
//! after a stop, rebuilding when damaged.

use std::path::Path;

use minga_protocol::entry::NewEntry;
use serde_json::Value;

use super::*;
use crate::queries::{self, Hit, ListParams, Listing, Visibility};
use crate::{Commons, DataDir};

fn demo(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../demo")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A commons holding the sample, and its caught-up index.
fn sample() -> (tempfile::TempDir, Commons, SearchIndex) {
    let temp = tempfile::tempdir().unwrap();
    let mut commons = Commons::open(&DataDir::new(temp.path()), 8 << 20).unwrap();
    let sample = demo("sample-commons.json");
    for collection in sample["collections"].as_array().unwrap() {
        commons
            .create_collection(&serde_json::from_value(collection.clone()).unwrap())
            .unwrap();
    }
    for entry in sample["entries"].as_array().unwrap() {
        let new: NewEntry = serde_json::from_value(entry.clone()).unwrap();
        commons.create_entry(&new).unwrap();
    }
    commons.flush().unwrap();
    let index = open(&commons, temp.path());
    (temp, commons, index)
}

fn open(commons: &Commons, root: &Path) -> SearchIndex {
    let store = commons.store();
    let index = SearchIndex::open(
        &DataDir::new(root).search_dir(),
        DEFAULT_WRITER_BYTES,
        store,
    )
    .unwrap();
    index.catch_up(store, store.logged_seq().unwrap()).unwrap();
    index
}

fn search(commons: &Commons, index: &SearchIndex, params: ListParams) -> Vec<Hit> {
    match queries::list_entries(commons.store(), Some(index), &params, Visibility::All).unwrap() {
        Listing::Hits(page) => page.entries,
        Listing::Entries(_) => panic!("a search answered with a listing"),
    }
}

fn titles(commons: &Commons, index: &SearchIndex, q: &str) -> Vec<String> {
    let params = ListParams {
        q: Some(q.into()),
        ..ListParams::default()
    };
    search(commons, index, params)
        .into_iter()
        .map(|hit| hit.entry.title)
        .collect()
}

#[test]
fn every_shared_query_ranks_its_entry_first() {
    let (_temp, commons, index) = sample();
    let queries = demo("search-queries.json");
    let mut failures = Vec::new();
    for case in queries["queries"].as_array().unwrap() {
        let q = case["q"].as_str().unwrap();
        let first = case["first"].as_str().unwrap();
        let found = titles(&commons, &index, q);
        if found.first().map(String::as_str) != Some(first) {
            failures.push(format!(
                "{q:?}: wanted {first:?}, got {:?}",
                &found[..found.len().min(3)]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn accents_case_and_stems_do_not_matter() {
    let (_temp, commons, index) = sample();
    let cacao = "Fermentación del cacao fino de aroma en cajones escalonados";
    for q in ["fermentacion", "FERMENTACIÓN", "fermentados cajon"] {
        assert_eq!(titles(&commons, &index, q)[0], cacao, "{q}");
    }
    // Kichwa is folded (ñ → n) but not stemmed.
    assert_eq!(
        titles(&commons, &index, "nukanchik")[0],
        "Ñukanchik llaktapak ñawpa kawsay"
    );
    // English is stemmed as English.
    assert_eq!(
        titles(&commons, &index, "pruned blackberries")[0],
        "Pruning Andean blackberry (mora) for steady harvests"
    );
}

#[test]
fn snippets_mark_the_words_found() {
    let (_temp, commons, index) = sample();
    let params = ListParams {
        q: Some("saponina espuma".into()),
        ..ListParams::default()
    };
    let hit = &search(&commons, &index, params)[0];
    let text: Vec<char> = hit.snippet.text.chars().collect();
    assert!(!hit.snippet.highlights.is_empty());
    for [start, end] in &hit.snippet.highlights {
        let word: String = text[*start..*end].iter().collect::<String>().to_lowercase();
        assert!(["saponina", "espuma"].contains(&word.as_str()), "{word}");
    }
    assert!(hit.score > 0.0);
}

#[test]
fn filters_narrow_a_search() {
    let (_temp, commons, index) = sample();
    let with = |f: fn(&mut ListParams)| {
        let mut params = ListParams {
            q: Some("agua papa cacao".into()),
            ..ListParams::default()
        };
        f(&mut params);
        search(&commons, &index, params)
    };
    let kichwa = with(|p| p.lang = Some("qu".into()));
    assert!(!kichwa.is_empty());
    assert!(kichwa.iter().all(|h| h.entry.lang == "qu"));
    let history = with(|p| p.kind = Some("history".into()));
    assert!(!history.is_empty());
    assert!(history.iter().all(|h| h.entry.kind == "history"));
    let rios = with(|p| p.place = Some("los rios".into()));
    assert_eq!(rios.len(), 1);
    assert_eq!(rios[0].entry.place.as_ref().unwrap().name, "Los Ríos");
    let tagged = with(|p| p.tag = Some("Riego".into()));
    assert!(
        tagged
            .iter()
            .all(|h| h.entry.tags.contains(&"riego".to_owned()))
    );
    assert_eq!(tagged.len(), 1);
    let collection = with(|p| p.collection = Some("memoria-local".into()));
    assert!(!collection.is_empty());
    assert!(collection.iter().all(|h| h.entry.kind == "history"));
}

#[test]
fn pages_of_hits_follow_their_cursor() {
    let (_temp, commons, index) = sample();
    let params = |cursor: Option<String>| ListParams {
        q: Some("de la".into()),
        limit: Some("3".into()),
        cursor,
        ..ListParams::default()
    };
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let Listing::Hits(page) = queries::list_entries(
            commons.store(),
            Some(&index),
            &params(cursor),
            Visibility::All,
        )
        .unwrap() else {
            panic!("not hits")
        };
        seen.extend(page.entries.into_iter().map(|h| h.entry.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let distinct: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len());
    assert!(seen.len() > 3);
}

#[test]
fn bad_searches_are_refused_clearly() {
    let (_temp, commons, index) = sample();
    for (q, cursor) in [("¿?¡!", None), ("cacao", Some("abc"))] {
        let params = ListParams {
            q: Some(q.into()),
            cursor: cursor.map(Into::into),
            ..ListParams::default()
        };
        let error = queries::list_entries(commons.store(), Some(&index), &params, Visibility::All)
            .unwrap_err();
        assert_eq!(error.status(), 400, "{q}: {error}");
    }
}

#[test]
fn a_search_pages_no_deeper_than_the_offset_bound() {
    let (_temp, commons, index) = sample();
    let params = |cursor: String| ListParams {
        q: Some("cacao".into()),
        cursor: Some(cursor),
        ..ListParams::default()
    };
    // Once asked the index for this many hits, and the allocation aborted the process.
    let deep = params("100000000000000000".into());
    let error =
        queries::list_entries(commons.store(), Some(&index), &deep, Visibility::All).unwrap_err();
    assert_eq!(error.status(), 400, "{error}");
    assert!(error.to_string().contains("at most"), "{error}");
    let beyond = params((queries::MAX_SEARCH_OFFSET + 1).to_string());
    let error =
        queries::list_entries(commons.store(), Some(&index), &beyond, Visibility::All).unwrap_err();
    assert_eq!(error.status(), 400, "{error}");
    // The deepest page allowed answers, empty.
    let deepest = params(queries::MAX_SEARCH_OFFSET.to_string());
    match queries::list_entries(commons.store(), Some(&index), &deepest, Visibility::All) {
        Ok(Listing::Hits(page)) => assert!(page.entries.is_empty() && page.next_cursor.is_none()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_index_follows_edits_and_deletions() {
    let (temp, mut commons, index) = sample();
    let roya = "Manejo de la roya del café con sombra y variedades tolerantes";
    let id = search(
        &commons,
        &index,
        ListParams {
            q: Some("roya".into()),
            ..ListParams::default()
        },
    )[0]
    .entry
    .id;
    let patch =
        serde_json::from_value(serde_json::json!({"title": "Manejo del ojo de gallo"})).unwrap();
    commons.patch_entry(&id, &patch).unwrap();
    commons.flush().unwrap();
    index
        .catch_up(commons.store(), commons.store().logged_seq().unwrap())
        .unwrap();
    assert_eq!(
        titles(&commons, &index, "gallo")[0],
        "Manejo del ojo de gallo"
    );
    assert!(!titles(&commons, &index, "roya tolerantes").contains(&roya.to_owned()));

    commons.delete_entry(&id, "prueba").unwrap();
    commons.flush().unwrap();
    index
        .catch_up(commons.store(), commons.store().logged_seq().unwrap())
        .unwrap();
    assert!(titles(&commons, &index, "gallo").is_empty());
    assert_eq!(index.documents(), 19);
    drop(temp);
}

#[test]
fn writes_made_while_stopped_are_caught_up() {
    let (temp, mut commons, index) = sample();
    drop(index);
    let new: NewEntry = serde_json::from_value(serde_json::json!({
        "collection": "practicas-andinas", "kind": "practice", "lang": "es",
        "title": "Injertos de aguacate", "body": "Injertar en vivero.", "license": "CC0-1.0"
    }))
    .unwrap();
    commons.create_entry(&new).unwrap();
    commons.flush().unwrap();
    let index = open(&commons, temp.path());
    assert_eq!(
        titles(&commons, &index, "injerto")[0],
        "Injertos de aguacate"
    );
}

#[test]
fn a_damaged_or_missing_index_is_rebuilt() {
    let (temp, commons, index) = sample();
    drop(index);
    let dir = DataDir::new(temp.path()).search_dir();
    std::fs::write(dir.join("meta.json"), b"{not json").unwrap();
    let index = open(&commons, temp.path());
    assert_eq!(index.documents(), 20);
    assert_eq!(titles(&commons, &index, "bocashi").len(), 1);
    drop(index);
    std::fs::remove_dir_all(&dir).unwrap();
    let index = open(&commons, temp.path());
    assert_eq!(index.documents(), 20);
}

/// Search latency over the sample plus generated entries, and the index's size. Run with
/// `MINGA_BENCH_ENTRIES=10000 cargo test --release -p minga-node --lib search_latency -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark; prints figures"]
fn search_latency() {
    let extra: usize = std::env::var("MINGA_BENCH_ENTRIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    let (temp, mut commons, index) = sample();
    drop(index);
    let words = [
        "papa", "maíz", "riego", "abono", "semilla", "suelo", "helada", "plaga", "cosecha",
        "mercado", "agua", "chakra", "ganado", "leche", "queso", "árbol", "sombra", "lluvia",
    ];
    let started = std::time::Instant::now();
    for i in 0..extra {
        let pick = |k: usize| words[(i * 7 + k * 13) % words.len()];
        let body: String = (0..120).map(&pick).collect::<Vec<_>>().join(" ");
        let new: NewEntry = serde_json::from_value(serde_json::json!({
            "collection": "practicas-andinas", "kind": "practice", "lang": "es",
            "title": format!("Práctica {i}: {} y {}", pick(1), pick(2)), "body": body,
            "license": "CC0-1.0", "tags": [pick(3)]
        }))
        .unwrap();
        commons.create_entry(&new).unwrap();
    }
    commons.flush().unwrap();
    let created = started.elapsed();
    let started = std::time::Instant::now();
    let index = open(&commons, temp.path());
    let indexed = started.elapsed();
    let queries = demo("search-queries.json");
    let mut times = Vec::new();
    for _ in 0..20 {
        for case in queries["queries"].as_array().unwrap() {
            let params = ListParams {
                q: Some(case["q"].as_str().unwrap().into()),
                limit: Some("20".into()),
                ..ListParams::default()
            };
            let started = std::time::Instant::now();
            queries::list_entries(commons.store(), Some(&index), &params, Visibility::All).unwrap();
            times.push(started.elapsed());
        }
    }
    times.sort();
    let at = |p: usize| times[(times.len() * p / 100).min(times.len() - 1)];
    println!(
        "entries {} | created in {created:?} | indexed from scratch in {indexed:?} | index {} KiB | \
         search (20 hits, entries and snippets) p50 {:?} p95 {:?} max {:?} over {} queries",
        extra + 20,
        index.disk_bytes() / 1024,
        at(50),
        at(95),
        times[times.len() - 1],
        times.len()
    );
}

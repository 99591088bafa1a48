//! Bundles between two commons in one process: what goes in, what comes out, and what a
//! second import, a `--since` export and a split into parts do.

use std::path::Path;

use minga_protocol::NewCollection;
use minga_protocol::entry::{EntryPatch, NewEntry};
use serde_json::json;

use super::*;
use crate::{Commons, DataDir};

fn open(dir: &Path) -> Commons {
    Commons::open(&DataDir::new(dir), 8 << 20).unwrap()
}

fn add(commons: &mut Commons, fields: serde_json::Value) -> DocumentId {
    let mut new = json!({"collection": "huerta", "kind": "practice", "title": "Abono",
                         "body": "Compost de hojas.", "license": "CC0-1.0"});
    new.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    let new: NewEntry = serde_json::from_value(new).unwrap();
    commons.create_entry(&new).unwrap().value
}

/// A commons with a collection, two shareable entries, a private one, an unconsented
/// history and a deleted entry. Returns (collection, shareable, hidden) ids.
fn populated(commons: &mut Commons) -> (DocumentId, Vec<DocumentId>, Vec<DocumentId>) {
    let collection = commons
        .create_collection(&NewCollection {
            name: "huerta".into(),
            title: None,
            description: None,
            license: None,
        })
        .unwrap()
        .value;
    let shared = vec![
        add(commons, json!({"title": "Abono verde"})),
        add(
            commons,
            json!({"title": "Biol", "body": varied_text(20_000)}),
        ),
    ];
    let hidden = vec![
        add(
            commons,
            json!({"title": "Receta de la abuela", "private": true}),
        ),
        add(
            commons,
            json!({"kind": "history", "title": "La minga de 1970",
                   "consent": [{"name": "Rosa", "status": "pending"}]}),
        ),
    ];
    let gone = add(commons, json!({"title": "Error"}));
    commons.delete_entry(&gone, "duplicado").unwrap();
    commons.flush().unwrap();
    (collection, shared, hidden)
}

/// Text that compresses poorly, so documents are large enough to split.
fn varied_text(len: usize) -> String {
    let mut state = 0x2545_f491_u32;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            char::from(b'a' + (state % 26) as u8)
        })
        .collect()
}

fn export_all(commons: &mut Commons, out: &Path, since: Option<&Path>) -> ExportSummary {
    let request = ExportRequest {
        all: true,
        out: out.to_path_buf(),
        since: since.map(Path::to_path_buf),
        ..ExportRequest::default()
    };
    commons.export_bundle(&request, &mut |_| {}).unwrap()
}

fn import(commons: &mut Commons, file: &Path) -> Result<ImportSummary, crate::Error> {
    let request = ImportRequest {
        file: file.to_path_buf(),
        assume_free_bytes: None,
    };
    let summary = commons.import_bundle(&request, &mut |_| {});
    assert!(
        commons.store().journal_is_empty(),
        "spilled rows are moved in or dropped"
    );
    let summary = summary?.value;
    commons.flush().unwrap();
    Ok(summary)
}

#[test]
fn an_import_equals_a_sync_and_carries_nothing_private() {
    let temp = tempfile::tempdir().unwrap();
    let mut a = open(&temp.path().join("a"));
    let (collection, shared, hidden) = populated(&mut a);
    let file = temp.path().join("huerta.minga");
    let exported = export_all(&mut a, &file, None);
    assert_eq!((exported.entries, exported.tombstones), (2, 1));

    let bytes = std::fs::read(&file).unwrap();
    for id in &hidden {
        let text = id.to_string();
        assert!(
            !bytes.windows(text.len()).any(|w| w == text.as_bytes())
                && !bytes.windows(16).any(|w| w == id.as_bytes()),
            "the bundle names the hidden entry {id}"
        );
    }

    let mut b = open(&temp.path().join("b"));
    let summary = import(&mut b, &file).unwrap();
    assert_eq!(summary.entries.new, 2);
    assert_eq!(summary.collections.new, 1);
    assert_eq!(
        a.store().items(&collection).unwrap().len(),
        4,
        "collection, two entries, one tombstone"
    );
    let a_items = a.store().items(&collection).unwrap();
    let b_items = b.store().items(&collection).unwrap();
    assert_eq!(
        a_items
            .iter()
            .filter(|i| i.digest != crate::store::TOMBSTONE_DIGEST)
            .count(),
        b_items.len(),
        "B never held the deleted entry, so it keeps no tombstone for it"
    );
    for id in &shared {
        assert_eq!(a.store().entry(id).unwrap(), b.store().entry(id).unwrap());
        assert_eq!(
            a.store().signatures(id).unwrap(),
            b.store().signatures(id).unwrap()
        );
    }
    assert!(b.store().is_followed(&collection).unwrap());

    let writes = b.store().applied_writes();
    let again = import(&mut b, &file).unwrap();
    assert_eq!(again.entries.unchanged, 2);
    assert_eq!(
        b.store().applied_writes(),
        writes,
        "a second import writes nothing"
    );
}

#[test]
fn since_carries_only_what_the_receiver_lacks_and_both_converge() {
    let temp = tempfile::tempdir().unwrap();
    let mut a = open(&temp.path().join("a"));
    let (collection, shared, _) = populated(&mut a);
    let first = temp.path().join("first.minga");
    export_all(&mut a, &first, None);

    let mut b = open(&temp.path().join("b"));
    import(&mut b, &first).unwrap();
    let patch = EntryPatch {
        body: Some("Compost de hojas y ceniza.".into()),
        ..EntryPatch::default()
    };
    b.patch_entry(&shared[0], &patch).unwrap();
    let back = temp.path().join("back.minga");
    let delta = export_all(&mut b, &back, Some(&first));
    assert_eq!((delta.entries, delta.unchanged), (1, 2), "one edited entry");

    let summary = import(&mut a, &back).unwrap();
    assert_eq!(summary.entries.updated, 1);
    assert_eq!(
        a.store().entry(&shared[0]).unwrap(),
        b.store().entry(&shared[0]).unwrap()
    );
    let live = |c: &Commons| {
        c.store()
            .items(&collection)
            .unwrap()
            .into_iter()
            .filter(|i| i.digest != crate::store::TOMBSTONE_DIGEST)
            .collect::<Vec<_>>()
    };
    assert_eq!(live(&a), live(&b));
}

#[test]
fn small_parts_split_and_read_back() {
    let temp = tempfile::tempdir().unwrap();
    let mut a = open(&temp.path().join("a"));
    populated(&mut a);
    let out = temp.path().join("split.minga");
    let request = ExportRequest {
        all: true,
        out: out.clone(),
        part_bytes: Some(4096),
        ..ExportRequest::default()
    };
    let summary = a.export_bundle(&request, &mut |_| {}).unwrap();
    assert!(summary.parts.len() >= 2, "{:?}", summary.parts);
    assert!(summary.parts[0].ends_with("split.minga.001"));
    for part in &summary.parts {
        assert!(std::fs::metadata(part).unwrap().len() <= 4096);
    }
    let mut b = open(&temp.path().join("b"));
    let first = temp.path().join("split.minga.001");
    assert_eq!(import(&mut b, &first).unwrap().entries.new, 2);
}

#[test]
fn a_full_disk_is_refused_before_anything_is_written() {
    let temp = tempfile::tempdir().unwrap();
    let mut a = open(&temp.path().join("a"));
    populated(&mut a);
    let file = temp.path().join("b.minga");
    export_all(&mut a, &file, None);
    let mut b = open(&temp.path().join("b"));
    let writes = b.store().applied_writes();
    let request = ImportRequest {
        file,
        assume_free_bytes: Some(1 << 20),
    };
    let error = b.import_bundle(&request, &mut |_| {}).unwrap_err();
    assert!(
        matches!(error, crate::Error::Import(ImportError::NoSpace { .. })),
        "{error}"
    );
    assert_eq!(b.store().applied_writes(), writes);
    assert_eq!(b.store().entry_count().unwrap(), 0);
}

/// Export and import throughput and bundle size for `MINGA_BENCH_ENTRIES` entries (default
/// 10,000); figures in docs/benchmarks.md. Run with
/// `cargo test --release -p minga-node --lib bundle::tests::throughput -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark; run by hand"]
fn throughput() {
    let count: usize = std::env::var("MINGA_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let temp = tempfile::tempdir().unwrap();
    let mut a = open(&temp.path().join("a"));
    populated(&mut a);
    let mut carried = 0u64;
    for i in 0..count {
        let body = varied_text(1000);
        carried += body.len() as u64;
        add(
            &mut a,
            json!({"title": format!("Práctica {i}"), "body": body}),
        );
    }
    a.flush().unwrap();
    let file = temp.path().join("all.minga");
    let started = std::time::Instant::now();
    let exported = export_all(&mut a, &file, None);
    let export_secs = started.elapsed().as_secs_f64();
    let mut b = open(&temp.path().join("b"));
    let started = std::time::Instant::now();
    let imported = import(&mut b, &file).unwrap();
    let import_secs = started.elapsed().as_secs_f64();
    let mb = exported.bytes_written as f64 / 1e6;
    println!(
        "entries {} | bundle {:.1} MB, {:.0} bytes/entry, {:.2}x the body text | export {:.2} s ({:.1} MB/s, {:.0} entries/s) | import {:.2} s ({:.1} MB/s, {:.0} entries/s)",
        imported.entries.new,
        mb,
        exported.bytes_written as f64 / exported.entries as f64,
        exported.bytes_written as f64 / carried as f64,
        export_secs,
        mb / export_secs,
        exported.entries as f64 / export_secs,
        import_secs,
        mb / import_secs,
        imported.entries.new as f64 / import_secs,
    );
}

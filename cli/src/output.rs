//! Text output for people; `--json` prints the API's JSON instead. Both read the API's typed
//! views, so a renamed field fails to compile here.

use minga_node::bundle::{ExportSummary, ImportSummary, Inspected};
use minga_node::queries::{CollectionList, HitPage, Listing, Status};
use minga_node::store::EntryPage;
use minga_node::views::PeerList;
use minga_protocol::Entry;
use minga_protocol::bundle::SectionKind;
use minga_protocol::entry::Author;
use serde::Serialize;

use crate::backend::Answer;

/// Prints the answer of a command: JSON, or its text.
pub fn print<T: Serialize + ?Sized>(value: &T, json: bool, text: impl Fn(&T) -> String) {
    if json {
        println!(
            "{}",
            serde_json::to_string(value).expect("views serialise to JSON")
        );
    } else {
        let text = text(value);
        if !text.is_empty() {
            println!("{text}");
        }
    }
}

/// The text of an API operation's answer.
pub fn answer(answer: &Answer) -> String {
    match answer {
        Answer::Status(status) => self::status(status),
        Answer::Peers(list) => peers(list),
        Answer::Collections(list) => collections(list),
        // The new id, alone on its line.
        Answer::Created(created) => created.id.to_string(),
        Answer::Edited(entry) => entry.id.to_string(),
        Answer::Entries(Listing::Entries(page)) => entry_list(page),
        Answer::Entries(Listing::Hits(page)) => hits(page),
        Answer::Entry(entry) => self::entry(entry),
        Answer::Exported(summary) => exported(summary),
        Answer::Imported(summary) => imported(summary),
        Answer::Blocked(_) | Answer::Followed(_) | Answer::Deleted(_) => String::new(),
    }
}

fn entry_line(entry: &Entry) -> String {
    format!(
        "{}  {:<8}  {:<5}  {}",
        entry.id, entry.kind, entry.lang, entry.title
    )
}

fn more(next_cursor: Option<&str>) -> Option<String> {
    next_cursor.map(|cursor| format!("(more: --cursor {cursor})"))
}

fn entry_list(page: &EntryPage) -> String {
    let mut lines: Vec<String> = page.entries.iter().map(entry_line).collect();
    lines.extend(more(page.next_cursor.as_deref()));
    lines.join("\n")
}

/// Search hits: each entry's line, then its snippet with the matched words in «».
fn hits(page: &HitPage) -> String {
    let mut lines = Vec::new();
    for hit in &page.entries {
        lines.push(entry_line(&hit.entry));
        let text: Vec<char> = hit.snippet.text.chars().collect();
        let mut marked = String::new();
        let mut at = 0;
        for &[start, end] in &hit.snippet.highlights {
            if start < at || end > text.len() || start > end {
                continue;
            }
            marked.extend(&text[at..start]);
            marked.push('«');
            marked.extend(&text[start..end]);
            marked.push('»');
            at = end;
        }
        marked.extend(&text[at..]);
        lines.push(format!("    {}", marked.replace('\n', " ")));
    }
    lines.extend(more(page.next_cursor.as_deref()));
    lines.join("\n")
}

fn entry(entry: &Entry) -> String {
    let authors: Vec<String> = entry.authors.iter().map(Author::credit).collect();
    let mut text = format!("{}\n", entry.title);
    for (label, value) in [
        ("id", entry.id.to_string()),
        ("kind", entry.kind.clone()),
        ("collection", entry.collection.clone()),
        ("license", entry.license.clone()),
        ("lang", entry.lang.clone()),
        ("tags", entry.tags.join(", ")),
        (
            "place",
            entry
                .place
                .as_ref()
                .map(|p| p.name.clone())
                .unwrap_or_default(),
        ),
        ("authors", authors.join(", ")),
        ("private", entry.private.to_string()),
        ("heads", entry.heads.join(" ")),
    ] {
        if !value.is_empty() {
            text.push_str(&format!("{label}: {value}\n"));
        }
    }
    text.push('\n');
    text.push_str(&entry.body);
    text
}

fn collections(list: &CollectionList) -> String {
    list.collections
        .iter()
        .map(|c| format!("{}  {}  {} entries  {}", c.id, c.name, c.entries, c.title))
        .collect::<Vec<_>>()
        .join("\n")
}

fn peers(list: &PeerList) -> String {
    list.peers
        .iter()
        .map(|p| {
            format!(
                "{}  {}  sent {} B, received {} B",
                p.peer_id,
                p.addresses.join(" "),
                p.bytes_sent,
                p.bytes_received
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn status(status: &Status) -> String {
    let mut text = [
        ("peer_id", status.peer_id.clone()),
        ("version", status.version.clone()),
        ("collections", status.collections.to_string()),
        ("entries", status.entries.to_string()),
        ("peers", status.peers.to_string()),
        ("bytes_sent", status.bytes_sent.to_string()),
        ("bytes_received", status.bytes_received.to_string()),
    ]
    .iter()
    .map(|(key, value)| format!("{key}: {value}"))
    .collect::<Vec<_>>()
    .join("\n");
    for address in &status.listen {
        text.push_str(&format!("\nlisten: {address}"));
    }
    text
}

fn exported(summary: &ExportSummary) -> String {
    let mut text = format!(
        "exported {} collection(s): {} entries, {} tombstones, {} blobs; {} unchanged left out\n\
         {} bytes in {} part(s): {}\nbundle {}",
        summary.collections,
        summary.entries,
        summary.tombstones,
        summary.blobs,
        summary.unchanged,
        summary.bytes_written,
        summary.parts.len(),
        summary.parts.join(" "),
        summary.bundle,
    );
    if summary.blobs_missing > 0 {
        text.push_str(&format!(
            "\n{} attachment(s) not carried: this node does not hold their blobs",
            summary.blobs_missing
        ));
    }
    text
}

fn imported(summary: &ImportSummary) -> String {
    let (entries, collections) = (&summary.entries, &summary.collections);
    let mut text = format!(
        "entries: {} new, {} updated, {} unchanged\n\
         collections: {} new, {} updated, {} unchanged\n\
         tombstones applied: {}\nblobs added: {}\nbytes read: {}",
        entries.new,
        entries.updated,
        entries.unchanged,
        collections.new,
        collections.updated,
        collections.unchanged,
        summary.tombstones_applied,
        summary.blobs_added,
        summary.bytes_read,
    );
    if summary.blobs_skipped > 0 {
        text.push_str(&format!(
            "\n{} blob(s) not kept: this node has no blob store yet",
            summary.blobs_skipped
        ));
    }
    text
}

/// `minga bundle inspect`: the manifest of a bundle.
pub fn inspected(inspected: &Inspected) -> String {
    let manifest = &inspected.manifest;
    let of_kind = |kind| manifest.sections.iter().filter(|s| s.kind == kind).count();
    let collections: Vec<String> = manifest.collections.iter().map(|c| c.to_string()).collect();
    let mut text = format!(
        "bundle {} (format {}, {} part(s), {} bytes of sections)\n\
         exported by {} (author key {})\n\
         collections: {}\n\
         carries: {} collection(s), {} entries, {} tombstones, {} blobs\n\
         describes: {} document(s), {} tombstone(s)",
        inspected.bundle,
        manifest.format,
        inspected.parts,
        inspected.data_bytes,
        manifest.node.peer_id,
        manifest.node.author,
        collections.join(" "),
        of_kind(SectionKind::Collection),
        of_kind(SectionKind::Entry),
        of_kind(SectionKind::Tombstone),
        of_kind(SectionKind::Blob),
        manifest.documents.len(),
        manifest.tombstones.len(),
    );
    if let Some(since) = &manifest.since {
        text.push_str(&format!("\nonly what the holder of bundle {since} lacks"));
    }
    for section in &manifest.sections {
        let kind = match section.kind {
            SectionKind::Collection => "collection",
            SectionKind::Entry => "entry",
            SectionKind::Tombstone => "tombstone",
            SectionKind::Blob => "blob",
        };
        text.push_str(&format!(
            "\n  {:<10} {}  {} bytes",
            kind, section.id, section.size
        ));
    }
    text
}

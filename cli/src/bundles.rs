//! `minga export`, `minga import` and `minga bundle inspect`: the librarian's commands. Export
//! and import run where the store's writer is (the running node, or this process), with a
//! progress bar on a terminal and a summary at the end.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use minga_node::DataDir;
use minga_node::bundle::{self, ExportRequest, ImportRequest, Phase, Progress};
use serde_json::Value;

use crate::backend::{Backend, Op};
use crate::output;

/// `minga export`.
pub fn export(dir: &DataDir, mut request: ExportRequest, json: bool) -> anyhow::Result<()> {
    request.out = absolute(&request.out)?;
    request.since = request.since.as_deref().map(absolute).transpose()?;
    let summary = run(dir, Op::Export(request))?;
    output::print(&summary, json, export_text);
    Ok(())
}

/// `minga import`.
pub fn import(dir: &DataDir, mut request: ImportRequest, json: bool) -> anyhow::Result<()> {
    request.file = absolute(&request.file)?;
    let summary = run(dir, Op::Import(request))?;
    output::print(&summary, json, import_text);
    Ok(())
}

/// `minga bundle inspect`: the verified manifest, without touching any store.
pub fn inspect(file: &Path, json: bool) -> anyhow::Result<()> {
    let inspected = bundle::inspect(file)?;
    let value = serde_json::to_value(&inspected).context("encoding the manifest")?;
    output::print(&value, json, inspect_text);
    Ok(())
}

fn run(dir: &DataDir, op: Op) -> anyhow::Result<Value> {
    let bar = Bar::new();
    let mut backend = Backend::connect(dir)?;
    if matches!(backend, Backend::Remote { .. }) {
        // The node does the work; its progress is not streamed back, so show that it runs.
        bar.spinner();
    }
    let answer = backend.run_with_progress(op, &mut |progress| bar.update(progress));
    bar.finish();
    answer
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

/// A progress bar on stderr, drawn only on a terminal.
struct Bar(Option<ProgressBar>);

impl Bar {
    fn new() -> Self {
        if !std::io::stderr().is_terminal() {
            return Bar(None);
        }
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:12} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}) {prefix}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        Bar(Some(bar))
    }

    fn spinner(&self) {
        if let Some(bar) = &self.0 {
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("a template"),
            );
            bar.set_message("the node is working");
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
        }
    }

    fn update(&self, progress: &Progress) {
        let Some(bar) = &self.0 else {
            return;
        };
        let phase = match progress.phase {
            Phase::Planning => "planning",
            Phase::Writing => "writing",
            Phase::Verifying => "verifying",
            Phase::Applying => "applying",
        };
        bar.set_message(phase);
        bar.set_length(progress.bytes_total);
        bar.set_position(progress.bytes);
        bar.set_prefix(format!(
            "{}/{} sections",
            progress.items, progress.items_total
        ));
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

fn export_text(summary: &Value) -> String {
    let n = |key: &str| summary[key].as_u64().unwrap_or(0);
    let parts: Vec<&str> = summary["parts"]
        .as_array()
        .map(|p| p.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut text = format!(
        "exported {} collection(s): {} entries, {} tombstones, {} blobs; {} unchanged left out\n\
         {} bytes in {} part(s): {}\nbundle {}",
        n("collections"),
        n("entries"),
        n("tombstones"),
        n("blobs"),
        n("unchanged"),
        n("bytes_written"),
        parts.len(),
        parts.join(" "),
        summary["bundle"].as_str().unwrap_or_default(),
    );
    if n("blobs_missing") > 0 {
        text.push_str(&format!(
            "\n{} attachment(s) not carried: this node does not hold their blobs",
            n("blobs_missing")
        ));
    }
    text
}

fn import_text(summary: &Value) -> String {
    let count = |kind: &str, what: &str| summary[kind][what].as_u64().unwrap_or(0);
    let n = |key: &str| summary[key].as_u64().unwrap_or(0);
    let mut text = format!(
        "entries: {} new, {} updated, {} unchanged\n\
         collections: {} new, {} updated, {} unchanged\n\
         tombstones applied: {}\nblobs added: {}\nbytes read: {}",
        count("entries", "new"),
        count("entries", "updated"),
        count("entries", "unchanged"),
        count("collections", "new"),
        count("collections", "updated"),
        count("collections", "unchanged"),
        n("tombstones_applied"),
        n("blobs_added"),
        n("bytes_read"),
    );
    if n("blobs_skipped") > 0 {
        text.push_str(&format!(
            "\n{} blob(s) not kept: this node has no blob store yet",
            n("blobs_skipped")
        ));
    }
    text
}

fn inspect_text(inspected: &Value) -> String {
    let manifest = &inspected["manifest"];
    let sections = manifest["sections"].as_array().cloned().unwrap_or_default();
    let of_kind = |kind: &str| sections.iter().filter(|s| s["kind"] == kind).count();
    let mut text = format!(
        "bundle {} (format {}, {} part(s), {} bytes of sections)\n\
         exported by {} (author key {})\n\
         collections: {}\n\
         carries: {} collection(s), {} entries, {} tombstones, {} blobs\n\
         describes: {} document(s), {} tombstone(s)",
        inspected["bundle"].as_str().unwrap_or_default(),
        manifest["format"],
        inspected["parts"],
        inspected["data_bytes"],
        manifest["node"]["peer_id"].as_str().unwrap_or_default(),
        manifest["node"]["author"].as_str().unwrap_or_default(),
        output::strings(&manifest["collections"]).join(" "),
        of_kind("collection"),
        of_kind("entry"),
        of_kind("tombstone"),
        of_kind("blob"),
        manifest["documents"].as_array().map_or(0, Vec::len),
        manifest["tombstones"].as_array().map_or(0, Vec::len),
    );
    if let Some(since) = manifest["since"].as_str() {
        text.push_str(&format!("\nonly what the holder of bundle {since} lacks"));
    }
    for section in &sections {
        text.push_str(&format!(
            "\n  {:<10} {}  {} bytes",
            section["kind"].as_str().unwrap_or_default(),
            section["id"].as_str().unwrap_or_default(),
            section["size"]
        ));
    }
    text
}

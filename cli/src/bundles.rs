//! `minga export`, `minga import` and `minga bundle inspect`: the librarian's commands. Export
//! and import run where the store's writer is (the running node, or this process), with a
//! progress bar on a terminal and a summary at the end.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use minga_node::bundle::{self, ExportRequest, ImportRequest, Phase, Progress};

use crate::backend::{Answer, Backend, Op};
use crate::output;

/// `minga export`.
pub fn export(backend: &mut Backend, mut request: ExportRequest, json: bool) -> anyhow::Result<()> {
    request.out = absolute(&request.out)?;
    request.since = request.since.as_deref().map(absolute).transpose()?;
    let summary = run(backend, Op::Export(request))?;
    output::print(&summary, json, output::answer);
    Ok(())
}

/// `minga import`.
pub fn import(backend: &mut Backend, mut request: ImportRequest, json: bool) -> anyhow::Result<()> {
    request.file = absolute(&request.file)?;
    let summary = run(backend, Op::Import(request))?;
    output::print(&summary, json, output::answer);
    Ok(())
}

/// `minga bundle inspect`: the verified manifest, without touching any store.
pub fn inspect(file: &Path, json: bool) -> anyhow::Result<()> {
    let inspected = bundle::inspect(file)?;
    output::print(&inspected, json, output::inspected);
    Ok(())
}

fn run(backend: &mut Backend, op: Op) -> anyhow::Result<Answer> {
    let bar = Bar::new();
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

//! The node's layers, read from its imports: each top-level module of `node/src` may use only
//! modules of the layers below its own, so the import graph has no cycles and a reader can
//! take the modules bottom-up. The test reads the sources (`crate::…` paths, and the
//! re-exports of `lib.rs` they go through); test-only code (`#[cfg(test)]` modules) may use
//! any layer to set up its fixtures and is not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, bottom first. A module may import from the layers before its own only.
const LAYERS: &[&[&str]] = &[
    // Storage and the small pieces with no policy of their own.
    &["store", "clock", "serve", "views"],
    &["datadir", "blobs", "search"],
    &["keys", "bundle"],
    // The error every operation answers, with its HTTP status.
    &["error"],
    // Reads shared by the API, the pages and the offline CLI.
    &["queries"],
    // The one writer: every write operation, export and import.
    &["commons"],
    &["event_loop"],
    &["network"],
    // What the API and the pages share, and the node's figures that `/metrics` reads.
    &["http", "metrics"],
    &["api", "web"],
    // What the node runs on, with the network's settings among them.
    &["config"],
    // The node, and the fuzz targets' entry points into the decoders of every layer.
    &["node", "fuzzing"],
];

#[test]
fn imports_go_down_the_layers_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = fs::read_to_string(src.join("lib.rs")).unwrap();
    let modules = top_level_modules(&lib);
    let layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(layer, names)| names.iter().map(move |name| (*name, layer)))
        .collect();
    let unplaced: Vec<_> = modules
        .iter()
        .filter(|m| !layer_of.contains_key(m.as_str()))
        .collect();
    assert!(unplaced.is_empty(), "modules in no layer: {unplaced:?}");
    let reexports = reexports(&lib);
    let mut wrong = Vec::new();
    for module in &modules {
        for file in module_files(&src, module) {
            let text = without_test_code(&fs::read_to_string(&file).unwrap());
            for (line, name) in crate_paths(&text) {
                let target = reexports.get(&name).unwrap_or(&name);
                let (Some(&from), Some(&to)) =
                    (layer_of.get(module.as_str()), layer_of.get(target.as_str()))
                else {
                    continue;
                };
                if target != module && to >= from {
                    let file = file.strip_prefix(&src).unwrap().display();
                    wrong.push(format!("{file}:{line}: {module} uses {target}"));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that go up or across the layers:\n{}",
        wrong.join("\n")
    );
}

/// The modules `lib.rs` declares.
fn top_level_modules(lib: &str) -> Vec<String> {
    lib.lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line
                .strip_prefix("pub mod ")
                .or_else(|| line.strip_prefix("mod "))?;
            Some(rest.trim_end_matches(';').to_string())
        })
        .collect()
}

/// Names `lib.rs` re-exports (`pub use store::{Store, …};`), with the module they come from.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for line in lib.lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let rest = rest.trim_end_matches(';');
        let Some((module, items)) = rest.split_once("::") else {
            continue;
        };
        let items = items.trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',') {
            let name = item.trim().rsplit("::").next().unwrap_or("").to_string();
            names.insert(name, module.to_string());
        }
    }
    names
}

/// `src/<module>.rs` and every file under `src/<module>/`, less the files of test-only modules.
fn module_files(src: &Path, module: &str) -> Vec<PathBuf> {
    let mut files = vec![src.join(format!("{module}.rs"))];
    let mut dirs = vec![src.join(module)];
    while let Some(dir) = dirs.pop() {
        let Ok(read) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in read {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let test_only: BTreeSet<PathBuf> = files
        .iter()
        .flat_map(|file| {
            let text = fs::read_to_string(file).unwrap();
            let dir = file.with_extension("");
            test_modules(&text)
                .into_iter()
                .map(move |name| dir.join(format!("{name}.rs")))
        })
        .collect();
    files.retain(|f| {
        !test_only
            .iter()
            .any(|t| f == t || f.starts_with(t.with_extension("")))
    });
    files.sort();
    files
}

/// The modules a file declares under `#[cfg(test)]` as files of their own (`mod tests;`).
fn test_modules(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut cfg_test = false;
    for line in text.lines().map(str::trim) {
        if line == "#[cfg(test)]" {
            cfg_test = true;
            continue;
        }
        if cfg_test && let Some(name) = module_declaration(line) {
            names.push(name.trim_end_matches(';').to_string());
        }
        if !line.starts_with("#[") {
            cfg_test = false;
        }
    }
    names
}

/// The name of `mod x;` (with any visibility), if the line declares a module in a file.
fn module_declaration(line: &str) -> Option<&str> {
    let at = line.find("mod ")?;
    let name = line[at + 4..].strip_suffix(';')?;
    let before = line[..at].trim();
    (before.is_empty() || before.starts_with("pub")).then_some(name)
}

/// The text less comment lines and inline `#[cfg(test)] mod … { … }` blocks (blanked, so line
/// numbers stay right).
fn without_test_code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut cfg_test = false;
    let mut depth: Option<i32> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(open) = depth.as_mut() {
            *open += braces(trimmed);
            if *open <= 0 {
                depth = None;
            }
            out.push('\n');
            continue;
        }
        if trimmed == "#[cfg(test)]" {
            cfg_test = true;
        } else if cfg_test && trimmed.contains("mod ") && trimmed.ends_with('{') {
            depth = Some(braces(trimmed));
            cfg_test = false;
            out.push('\n');
            continue;
        } else if !trimmed.starts_with("#[") {
            cfg_test = false;
        }
        if !trimmed.starts_with("//") {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

fn braces(line: &str) -> i32 {
    line.chars()
        .map(|c| match c {
            '{' => 1,
            '}' => -1,
            _ => 0,
        })
        .sum()
}

/// The first segment after every `crate::` (each of a `crate::{a, b::c}` group), by line.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        let line = text[..at].matches('\n').count() + 1;
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        items.push(std::mem::take(&mut item));
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            items.push(item);
            found.extend(items.iter().map(|i| (line, first_segment(i.trim()))));
        } else {
            found.push((line, first_segment(rest)));
        }
    }
    found.retain(|(_, name)| !name.is_empty());
    found
}

fn first_segment(path: &str) -> String {
    path.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

//! Loads the sample commons (`demo/sample-commons.json`, CC0) into a running node through its
//! API: the collections first, then the entries, naming collections by the ids the node gave.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::Api;

/// What a load created.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Collection name → id.
    pub collections: BTreeMap<String, String>,
    /// Entry title → id.
    pub entries: BTreeMap<String, String>,
}

/// The sample commons shipped in `demo/`.
pub fn sample() -> Value {
    load_json("sample-commons.json")
}

/// A JSON file shipped in `demo/` (the sample commons, the relevance queries).
pub fn load_json(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../demo")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("demo/{name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("demo/{name}: {e}"))
}

/// Creates the sample's collections and entries on the node behind `api`.
pub fn load(api: &Api, sample: &Value) -> anyhow::Result<Loaded> {
    let mut loaded = Loaded::default();
    for collection in sample["collections"].as_array().context("no collections")? {
        let (status, answer) = api.post("/api/v1/collections", &collection.to_string());
        if status != 201 {
            bail!(
                "creating collection {}: {status} {answer}",
                collection["name"]
            );
        }
        let name = collection["name"]
            .as_str()
            .context("collection without name")?;
        loaded.collections.insert(name.to_owned(), id(&answer)?);
    }
    for entry in sample["entries"].as_array().context("no entries")? {
        let mut entry = entry.clone();
        let name = entry["collection"]
            .as_str()
            .context("entry without collection")?;
        entry["collection"] = Value::String(loaded.collections[name].clone());
        let (status, answer) = api.post("/api/v1/entries", &entry.to_string());
        if status != 201 {
            bail!("creating entry {}: {status} {answer}", entry["title"]);
        }
        let title = entry["title"].as_str().context("entry without title")?;
        loaded.entries.insert(title.to_owned(), id(&answer)?);
    }
    Ok(loaded)
}

fn id(answer: &Value) -> anyhow::Result<String> {
    Ok(answer["id"]
        .as_str()
        .context("answer without id")?
        .to_owned())
}

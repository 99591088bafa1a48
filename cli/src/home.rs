//! Which data dir, or which node, a command works on. `init` and `node` create a data dir; every
//! other command needs one that already holds a node, so a mistyped or missing `MINGA_HOME`
//! fails with the places looked in instead of opening a new, empty store with fresh keys.

use std::path::{Path, PathBuf};

use anyhow::bail;
use minga_node::DataDir;

/// The data dir of the node the Debian package runs as a service (`packaging/debian`).
pub const SERVICE_HOME: &str = "/var/lib/minga";

/// The data dir `init` and `node` use: the one named, else the user's.
pub fn to_create(named: Option<&Path>) -> DataDir {
    DataDir::new(named.map_or_else(DataDir::default_root, Path::to_path_buf))
}

/// The data dir of an existing node: the one named, else the user's, else the service's (read
/// through the `minga` group, or as root).
pub fn existing(named: Option<&Path>) -> anyhow::Result<DataDir> {
    let looked: Vec<PathBuf> = match named {
        Some(dir) => vec![dir.to_path_buf()],
        None => vec![DataDir::default_root(), PathBuf::from(SERVICE_HOME)],
    };
    if let Some(dir) = looked.iter().map(DataDir::new).find(DataDir::holds_node) {
        return Ok(dir);
    }
    let places: Vec<String> = looked.iter().map(|p| p.display().to_string()).collect();
    bail!(
        "no Minga node here: looked in {}; `minga init` creates one, --data-dir (MINGA_HOME) \
         names another, --node (MINGA_NODE) talks to a running node by its URL",
        places.join(" and ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_dir_without_a_node_is_refused_and_left_uncreated() {
        let scratch = tempfile::tempdir().expect("scratch dir");
        let named = scratch.path().join("typo");
        let error = existing(Some(&named)).expect_err("no node there");
        assert!(error.to_string().contains(&named.display().to_string()));
        assert!(!named.exists(), "looking must not create the dir");
    }

    #[test]
    fn a_named_dir_holding_a_node_is_used() {
        let scratch = tempfile::tempdir().expect("scratch dir");
        let dir = to_create(Some(scratch.path()));
        minga_node::keys::Keys::load_or_create(&dir).expect("keys");
        assert_eq!(
            existing(Some(scratch.path())).expect("found").root(),
            scratch.path()
        );
    }
}

//! The data dir: keys, the store, `api.addr`, and the lock that lets one process at a time own it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use fs2::FileExt;

use crate::StoreError;

/// A node's data dir.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

/// Exclusive ownership of a data dir, released when dropped (or when the process dies).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `$XDG_DATA_HOME/minga`, else `~/.local/share/minga`, else `./minga-data`.
    pub fn default_root() -> PathBuf {
        if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(data).join("minga");
        }
        match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".local/share/minga"),
            None => PathBuf::from("minga-data"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directory (mode 0700) if it does not exist.
    pub fn create(&self) -> io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
    }

    /// Takes the data dir for this process, or fails clearly if another process holds it.
    pub fn lock(&self) -> Result<DirLock, StoreError> {
        self.create()?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join("LOCK"))?;
        file.try_lock_exclusive()
            .map_err(|_| StoreError::Locked(self.root.display().to_string()))?;
        Ok(DirLock { _file: file })
    }

    /// Whether a node was made here (`minga init` or `minga node`): its author key exists.
    pub fn holds_node(&self) -> bool {
        self.author_key_file().exists()
    }

    pub fn store_dir(&self) -> PathBuf {
        self.root.join("store")
    }

    /// Attachments' files (see `crate::blobs`).
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// The full-text index, derived from the store (deleting it is safe: it is rebuilt).
    pub fn search_dir(&self) -> PathBuf {
        self.root.join("search")
    }

    /// Where the API exports bundles to and imports them from, by default (see
    /// `crate::http::bundle_dirs`).
    pub fn bundles_dir(&self) -> PathBuf {
        self.root.join("bundles")
    }

    pub fn api_addr_file(&self) -> PathBuf {
        self.root.join("api.addr")
    }

    pub fn author_key_file(&self) -> PathBuf {
        self.root.join("author.key")
    }

    pub fn network_key_file(&self) -> PathBuf {
        self.root.join("network.key")
    }

    /// The token local clients (the CLI) write with when the API is open to the LAN.
    pub fn api_token_file(&self) -> PathBuf {
        self.root.join("api.token")
    }

    /// The API token, created (mode 0600) on first use.
    pub fn api_token(&self) -> io::Result<String> {
        if let Some(token) = self.read_api_token() {
            return Ok(token);
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
        let token = hex::encode(bytes);
        write_atomic(&self.api_token_file(), token.as_bytes(), 0o600)?;
        Ok(token)
    }

    /// The API token, if a node has made one.
    pub fn read_api_token(&self) -> Option<String> {
        let text = fs::read_to_string(self.api_token_file()).ok()?;
        Some(text.trim().to_owned()).filter(|t| !t.is_empty())
    }

    /// The API address a running node wrote, if any (it may be stale after `kill -9`).
    pub fn read_api_addr(&self) -> Option<String> {
        let text = fs::read_to_string(self.api_addr_file()).ok()?;
        Some(text.trim().to_owned()).filter(|t| !t.is_empty())
    }
}

/// Writes `bytes` to `path` atomically and durably: temp file, fsync, rename, fsync of the dir.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.tmp"));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(mode)
        .open(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp, path)?;
    File::open(dir)?.sync_all()
}

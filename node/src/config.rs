//! The configuration a node runs on, validated from the command line by the CLI.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::DataDir;

/// Everything `minga node` needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where keys, the store and `api.addr` live.
    pub data_dir: DataDir,
    /// Address of the HTTP API; port 0 picks a free port (written to `api.addr`).
    pub api: SocketAddr,
    /// sled's page cache, in bytes. Small by default so a Raspberry Pi keeps memory for others.
    pub cache_bytes: u64,
}

/// Default peer-to-peer addresses: TCP and QUIC on port 4747.
pub const DEFAULT_LISTEN: [&str; 2] = ["/ip4/0.0.0.0/tcp/4747", "/ip4/0.0.0.0/udp/4747/quic-v1"];

/// Default API address: loopback only.
pub const DEFAULT_API: &str = "127.0.0.1:7878";

/// Default sled cache: 64 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// What the HTTP side serves beyond the store's reads and writes.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The search index writer's memory budget in bytes (at least tantivy's 15 MB).
    pub search_writer_bytes: usize,
    /// The code LAN contributors give to write (`--contributor-code`); with none, only this
    /// machine writes.
    pub contributor_code: Option<String>,
    /// Host names the API answers to beyond loopback, its own address and this machine's
    /// name (`api_hosts` in config.toml, `--api-host`): e.g. `minga.local`.
    pub hosts: Vec<String>,
    /// Directories the API may export bundles to and import them from, beyond
    /// `<data dir>/bundles/` (`bundle_dirs` in config.toml, `--bundle-dir`): e.g. the mount
    /// point of a removable drive.
    pub bundle_dirs: Vec<PathBuf>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            search_writer_bytes: crate::search::DEFAULT_WRITER_BYTES,
            contributor_code: None,
            hosts: Vec::new(),
            bundle_dirs: Vec::new(),
        }
    }
}

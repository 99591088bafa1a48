//! The configuration a node runs on, validated from the command line and `config.toml` by
//! the CLI: one [`NodeConfig`] holds every setting. The resources it names are opened by the
//! caller and handed to [`crate::node::run`]: the commons (from `data_dir`, with
//! `cache_bytes`) and the API's listener (tests bind port 0).

use std::path::PathBuf;

use crate::network::NetworkConfig;
use crate::{Commons, DataDir, Error};

/// Everything `minga node` runs on.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where keys, the store, the search index and `api.addr` live.
    pub data_dir: DataDir,
    /// sled's page cache, in bytes. Small by default so a Raspberry Pi keeps memory for others.
    pub cache_bytes: u64,
    /// The peer-to-peer side, with the blob limits and budgets.
    pub network: NetworkConfig,
    /// The HTTP side.
    pub web: WebConfig,
}

impl NodeConfig {
    /// Opens (and locks) the commons of `data_dir` with this page cache, for [`crate::node::run`].
    pub fn open_commons(&self) -> Result<Commons, Error> {
        Commons::open(&self.data_dir, self.cache_bytes)
    }
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

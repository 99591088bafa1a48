//! `config.toml` in the data dir: the node's options, for operators who start it as a service.
//! Options given on the command line win; lists (`bootstrap`) are joined.
//!
//! ```toml
//! api = "127.0.0.1:7878"
//! listen = ["/ip4/0.0.0.0/tcp/4747"]
//! bootstrap = ["/ip4/203.0.113.7/tcp/4747/p2p/12D3KooW…"]
//! mdns = true
//! mirror = false
//! relay = false
//! cache_mb = 64
//! search_writer_mb = 16
//! contributor_code = "a phrase the operator tells contributors"
//! max_blob_mb = 2048
//! blob_budget_mb = 4096
//! blob_rate_kib = 0
//! api_hosts = ["minga.local"]
//! bundle_dirs = ["/media/usb"]
//! ```

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use minga_node::network::Multiaddr;
use serde::Deserialize;

/// The file's options; every one may be left out.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Address of the HTTP API.
    pub api: Option<SocketAddr>,
    /// Peer-to-peer listen addresses.
    #[serde(default)]
    pub listen: Vec<String>,
    /// Peers to dial at start and redial.
    #[serde(default)]
    pub bootstrap: Vec<String>,
    /// Find peers on the LAN (default true).
    pub mdns: Option<bool>,
    /// Follow every collection heard of.
    pub mirror: Option<bool>,
    /// Relay for nodes behind NAT.
    pub relay: Option<bool>,
    /// sled's cache in MiB.
    pub cache_mb: Option<u64>,
    /// The code LAN contributors write with.
    pub contributor_code: Option<String>,
    /// The search index writer's memory in MiB.
    pub search_writer_mb: Option<usize>,
    /// Largest attachment in MiB.
    pub max_blob_mb: Option<u64>,
    /// MiB of attachments fetched for held entries.
    pub blob_budget_mb: Option<u64>,
    /// KiB per second of attachments fetched; 0 for no limit.
    pub blob_rate_kib: Option<u64>,
    /// Host names the API answers to beyond loopback, its addresses and the machine's name.
    #[serde(default)]
    pub api_hosts: Vec<String>,
    /// Directories the API may use for bundles beyond `<data dir>/bundles/`.
    #[serde(default)]
    pub bundle_dirs: Vec<std::path::PathBuf>,
}

/// Parses the file's addresses.
pub fn addresses(list: &[String]) -> anyhow::Result<Vec<Multiaddr>> {
    list.iter()
        .map(|a| {
            a.parse()
                .with_context(|| format!("config.toml: {a:?} is not a multiaddr"))
        })
        .collect()
}

impl ConfigFile {
    /// sled's page cache for any process opening the store: the flag's MiB, else the file's,
    /// else the default.
    pub fn cache_bytes(&self, flag_mb: Option<u64>) -> u64 {
        flag_mb
            .or(self.cache_mb)
            .map_or(minga_node::config::DEFAULT_CACHE_BYTES, |mb| mb << 20)
    }
}

/// Reads `config.toml` from the data dir; a missing file is an empty configuration.
pub fn load(data_dir: &Path) -> anyhow::Result<ConfigFile> {
    let path = data_dir.join("config.toml");
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_option_and_refuses_unknown_ones() {
        let dir = tempfile_dir();
        std::fs::write(
            dir.join("config.toml"),
            "api = \"127.0.0.1:9000\"\nlisten = [\"/ip4/0.0.0.0/tcp/5000\"]\nmdns = false\nmirror = true\ncache_mb = 16\n",
        )
        .unwrap();
        let config = load(&dir).unwrap();
        assert_eq!(config.api, Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(config.listen.len(), 1);
        assert_eq!(
            (config.mdns, config.mirror, config.cache_mb),
            (Some(false), Some(true), Some(16))
        );
        std::fs::write(dir.join("config.toml"), "colour = \"blue\"\n").unwrap();
        assert!(load(&dir).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("minga-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

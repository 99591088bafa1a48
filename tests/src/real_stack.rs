//! Whole Minga nodes in one process, connected over libp2p's memory transport: each is the
//! node's own `node::run` (store, event loop, search indexer, network task, HTTP API), so the
//! real-stack scenarios check the simulator's model against the real swarm, not against a
//! second implementation of the protocol.

pub mod partition;
pub mod updates;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use libp2p::Multiaddr;
use minga_node::config::WebConfig;
use minga_node::network::NetworkConfig;
use minga_node::network::link_model::LinkModel;
use minga_node::{BlobLimits, Commons, DataDir, Store};
use minga_simulations::scenario::Links;
use tokio::sync::oneshot;

use crate::content::Rng;
use crate::measure::wait_for;
use crate::{Api, measure};

/// The memory transport's ports are global to the process: each cluster takes its own range.
static NEXT_MEMORY_PORT: AtomicU64 = AtomicU64::new(1);

/// What a cluster is made of.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Nodes to start.
    pub nodes: usize,
    /// Peers each node dials (its bootstrap list), drawn from the seed: about twice as many
    /// connections per node, as in the simulator's overlay.
    pub dials: usize,
    /// Seed of the topology.
    pub seed: u64,
    /// sled's page cache per node, bytes.
    pub cache_bytes: u64,
    /// The search index writer's budget per node, bytes (at least tantivy's minimum).
    pub search_writer_bytes: usize,
    /// The scenario's links (latency range, uplink), applied to the memory transport; `None`
    /// hands bytes over at once. Each node's received bytes wait a latency drawn from the
    /// range (so a link's two directions differ, where the model draws one per link); loss is
    /// not modelled, as over TCP, where a lost segment is sent again.
    pub links: Option<Links>,
    /// Where the nodes' data dirs go (the system's temporary dir if `None`). Hundreds of nodes
    /// on one disk queue behind each other's fsyncs, which nodes on their own machines do not:
    /// a tmpfs takes that out.
    pub data_parent: Option<PathBuf>,
}

impl ClusterConfig {
    /// `nodes` nodes dialling `dials` random peers each, with small caches.
    pub fn new(nodes: usize, dials: usize, seed: u64) -> ClusterConfig {
        ClusterConfig {
            nodes,
            dials,
            seed,
            cache_bytes: 4 << 20,
            search_writer_bytes: minga_node::search::MIN_WRITER_BYTES,
            links: None,
            data_parent: None,
        }
    }
}

/// Running nodes and the runtime their tasks run on.
pub struct Cluster {
    pub nodes: Vec<LocalNode>,
    /// Taken on drop to shut the nodes' tasks down without waiting on them forever.
    runtime: Option<tokio::runtime::Runtime>,
}

/// One whole node of a cluster.
pub struct LocalNode {
    pub api: Api,
    /// The node's store, read directly (as the node's own HTTP handlers do) to see what it holds.
    pub store: Store,
    /// `/memory/N/p2p/<peer id>`
    pub addr: Multiaddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), minga_node::Error>>>,
    /// Removed when the node is dropped.
    _dir: tempfile::TempDir,
}

impl LocalNode {
    /// The node's libp2p peer id, as the API names peers.
    pub fn peer_id(&self) -> String {
        self.addr
            .iter()
            .find_map(|p| match p {
                libp2p::multiaddr::Protocol::P2p(peer) => Some(peer.to_string()),
                _ => None,
            })
            .expect("a node's address ends in its peer id")
    }
}

impl std::ops::Deref for LocalNode {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Cluster {
    /// Opens every node's data dir, then starts each one listening on its memory address and
    /// dialling its share of the seeded random topology.
    pub fn start(config: &ClusterConfig) -> Result<Cluster> {
        ensure!(
            config.nodes > config.dials,
            "{} nodes cannot each dial {} others",
            config.nodes,
            config.dials
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the tokio runtime")?;
        let base = NEXT_MEMORY_PORT.fetch_add(config.nodes as u64, Ordering::Relaxed);
        let mut opened = Vec::with_capacity(config.nodes);
        for i in 0..config.nodes {
            let mut dir = tempfile::Builder::new();
            dir.prefix("minga-real-");
            let dir = match &config.data_parent {
                Some(parent) => dir.tempdir_in(parent)?,
                None => dir.tempdir()?,
            };
            let data = DataDir::new(dir.path());
            let commons = Commons::open(&data, config.cache_bytes)
                .with_context(|| format!("opening node {i}"))?;
            let port = base + i as u64;
            let addr: Multiaddr = format!("/memory/{port}/p2p/{}", commons.peer_id()).parse()?;
            opened.push((dir, data, commons, port, addr));
        }
        let addrs: Vec<Multiaddr> = opened.iter().map(|o| o.4.clone()).collect();
        let dials = random_dials(config.nodes, config.dials, config.seed);
        let mut rng = Rng::new(config.seed, 0x0000_11A4);
        let mut nodes = Vec::with_capacity(config.nodes);
        for ((dir, data, commons, port, addr), dials) in opened.into_iter().zip(dials) {
            let memory_link = config
                .links
                .as_ref()
                .map(|links| link_model(links, &mut rng));
            let network = NetworkConfig {
                listen: vec![format!("/memory/{port}").parse()?],
                bootstrap: dials.iter().map(|&j| addrs[j].clone()).collect(),
                mdns: false,
                relay: false,
                mirror: false,
                blobs: BlobLimits::default(),
                memory_link,
            };
            let web = WebConfig {
                search_writer_bytes: config.search_writer_bytes,
                contributor_code: None,
            };
            let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
            let api = Api::new(format!("http://{}", listener.local_addr()?));
            let store = commons.store().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let task = runtime.spawn(async move {
                let shutdown = async {
                    let _ = stopped.await;
                };
                minga_node::node::run(commons, &data, listener, network, web, shutdown).await
            });
            nodes.push(LocalNode {
                api,
                store,
                addr,
                stop: Some(stop),
                task: Some(task),
                _dir: dir,
            });
        }
        Ok(Cluster {
            nodes,
            runtime: Some(runtime),
        })
    }

    /// Waits until every node is connected to at least one peer.
    pub fn wait_connected(&self, timeout: Duration) -> Result<()> {
        let alone = || -> Result<usize> {
            let mut alone = 0;
            for node in &self.nodes {
                let (status, body) = node.get("/api/v1/status");
                ensure!(status == 200, "status answered {status}");
                alone += usize::from(body["peers"].as_u64().unwrap_or(0) == 0);
            }
            Ok(alone)
        };
        wait_for(
            timeout,
            "every node to have a peer",
            Duration::from_millis(200),
            || Ok(alone()? == 0),
            || Ok(format!("{} nodes without a peer", alone()?)),
        )
    }

    /// Creates a collection on the first node, has every other node follow it, and waits
    /// until every node holds it (an entry can only be written into a collection held).
    pub fn shared_collection(&self, name: &str) -> Result<String> {
        let first = self.nodes.first().context("an empty cluster")?;
        let collection = measure::create_collection(first, name)?;
        for node in &self.nodes[1..] {
            measure::follow(node, &collection)?;
        }
        let id: minga_protocol::DocumentId = collection.parse()?;
        let lacking = || -> Result<usize> {
            let mut lacking = 0;
            for node in &self.nodes {
                lacking += usize::from(node.store.collection(&id)?.is_none());
            }
            Ok(lacking)
        };
        wait_for(
            Duration::from_secs(180),
            "every node to hold the collection",
            Duration::from_millis(200),
            || Ok(lacking()? == 0),
            || Ok(format!("{} nodes without the collection", lacking()?)),
        )?;
        Ok(collection)
    }

    /// Stops every node and waits for each to flush and end.
    pub fn stop(mut self) -> Result<()> {
        let runtime = self.runtime.take().context("the runtime is gone")?;
        for node in &mut self.nodes {
            if let Some(stop) = node.stop.take() {
                let _ = stop.send(());
            }
        }
        let mut failed = Vec::new();
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if let Some(task) = node.task.take() {
                match runtime.block_on(task) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => failed.push(format!("node {i}: {e}")),
                    Err(e) => failed.push(format!("node {i}: {e}")),
                }
            }
        }
        runtime.shutdown_timeout(Duration::from_secs(10));
        match failed.is_empty() {
            true => Ok(()),
            false => Err(anyhow!("nodes failed: {}", failed.join("; "))),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(10));
        }
    }
}

/// For each of `nodes` nodes, `dials` distinct other nodes to dial, drawn from `seed`.
/// One node's link: a latency drawn uniformly from the scenario's range, and its uplink.
fn link_model(links: &Links, rng: &mut Rng) -> LinkModel {
    let [low, high] = links.latency_ms;
    let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    LinkModel {
        latency: Duration::from_secs_f64((low + unit * (high - low)) / 1000.0),
        uplink_bytes_per_s: (links.uplink_kbps * 1000.0 / 8.0) as u64,
    }
}

fn random_dials(nodes: usize, dials: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = Rng::new(seed, 0x000D_1A15);
    (0..nodes)
        .map(|i| {
            let mut chosen = Vec::with_capacity(dials);
            while chosen.len() < dials {
                let j = rng.range(0, nodes - 1);
                if j != i && !chosen.contains(&j) {
                    chosen.push(j);
                }
            }
            chosen
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::random_dials;

    #[test]
    fn every_node_dials_distinct_others() {
        for (i, dials) in random_dials(30, 4, 7).iter().enumerate() {
            assert_eq!(dials.len(), 4);
            assert!(!dials.contains(&i));
            let mut sorted = dials.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), 4);
        }
    }
}

//! Whole Minga nodes in one process, connected over libp2p's memory transport: each is the
//! node's own `node::run` (store, event loop, search indexer, network task, HTTP API), so the
//! real-stack scenarios check the simulator's model against the real swarm, not against a
//! second implementation of the protocol.
//!
//! A node can be stopped and started again on its data dir ([`Cluster::stop_node`],
//! [`Cluster::restart_node`]), as churn needs: same identity (its keys are in the data dir),
//! same listen address and bootstrap list.

pub mod churn;
pub mod partition;
pub mod updates;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use libp2p::Multiaddr;
use minga_node::config::{NodeConfig, WebConfig};
use minga_node::network::NetworkConfig;
use minga_node::network::link_model::LinkModel;
use minga_node::store::Reader;
use minga_node::{BlobLimits, Commons, DataDir};
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
    /// The node's HTTP API (a new port each time the node starts).
    pub api: Api,
    /// The node's store while it runs, read directly (as the node's own HTTP handlers do) to
    /// see what it holds; `None` while it is stopped, because sled locks its dir and the node
    /// could not open it again while this handle lives.
    store: Option<Reader>,
    /// `/memory/N/p2p/<peer id>`
    pub addr: Multiaddr,
    /// What starting the node again takes.
    /// Its data dir and configuration, kept to start it again the same way.
    launch: NodeConfig,
    stop: Option<oneshot::Sender<()>>,
    task: Option<NodeTask>,
    /// Removed when the node is dropped.
    _dir: tempfile::TempDir,
}

type NodeTask = tokio::task::JoinHandle<Result<(), minga_node::Error>>;

/// A started node's handles.
struct Started {
    api: Api,
    store: Reader,
    stop: oneshot::Sender<()>,
    task: NodeTask,
}

impl LocalNode {
    /// Whether the node is running (not stopped by churn).
    pub fn online(&self) -> bool {
        self.store.is_some()
    }

    /// The running node's store.
    pub fn store(&self) -> Result<&Reader> {
        self.store
            .as_ref()
            .with_context(|| format!("node {} is stopped", self.peer_id()))
    }

    fn run(&mut self, started: Started) {
        self.api = started.api;
        self.store = Some(started.store);
        self.stop = Some(started.stop);
        self.task = Some(started.task);
    }

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
            let launch = NodeConfig {
                data_dir: data,
                cache_bytes: config.cache_bytes,
                network: NetworkConfig {
                    listen: vec![format!("/memory/{port}").parse()?],
                    bootstrap: dials.iter().map(|&j| addrs[j].clone()).collect(),
                    mdns: false,
                    relay: false,
                    mirror: false,
                    blobs: BlobLimits::default(),
                    memory_link,
                },
                web: WebConfig {
                    search_writer_bytes: config.search_writer_bytes,
                    ..WebConfig::default()
                },
            };
            let started = spawn(&runtime, commons, &launch)?;
            nodes.push(LocalNode {
                api: started.api,
                store: Some(started.store),
                addr,
                launch,
                stop: Some(started.stop),
                task: Some(started.task),
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
                lacking += usize::from(node.store()?.collection(&id)?.is_none());
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

    /// Stops node `i` cleanly, as [`Cluster::stop`] does every node (its API stops, the
    /// network task ends, the event loop flushes and releases the data dir), and drops the
    /// runner's store handle, so the dir can be opened again. Its peers see the connections
    /// close. Not an abort: the node's event loop and indexer run on threads of their own and
    /// hold the store, so an aborted task would leave the dir locked.
    pub fn stop_node(&mut self, i: usize) -> Result<()> {
        let runtime = self.runtime.as_ref().context("the runtime is gone")?;
        let node = &mut self.nodes[i];
        ensure!(node.online(), "node {i} is already stopped");
        node.store = None;
        if let Some(stop) = node.stop.take() {
            let _ = stop.send(());
        }
        let task = node.task.take().context("a running node's task")?;
        join(runtime, task).with_context(|| format!("stopping node {i}"))
    }

    /// Starts node `i` again on its data dir, with the same identity, listen address and
    /// bootstrap list; its peers redial it by their own backoff, and it dials its bootstrap
    /// peers at once.
    pub fn restart_node(&mut self, i: usize) -> Result<()> {
        let runtime = self.runtime.as_ref().context("the runtime is gone")?;
        let node = &mut self.nodes[i];
        ensure!(!node.online(), "node {i} is running");
        // The first runs on a churned node found its memory port still taken just after the
        // stop (the network failed to start), and then the store still locked by the failed
        // start's event loop; trying again for a while gives both time to go.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let started = node
                .launch
                .open_commons()
                .with_context(|| format!("reopening node {i}"))
                .and_then(|commons| {
                    node.run(spawn(runtime, commons, &node.launch)?);
                    wait_serving(runtime, node)
                });
            match started {
                Ok(()) => return Ok(()),
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("  node {i} did not start ({e:#}); trying again");
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => return Err(e.context(format!("restarting node {i}"))),
            }
        }
    }

    /// Stops every running node and waits for each to flush and end.
    pub fn stop(mut self) -> Result<()> {
        let runtime = self.runtime.take().context("the runtime is gone")?;
        for node in &mut self.nodes {
            if let Some(stop) = node.stop.take() {
                let _ = stop.send(());
            }
        }
        let mut failed = Vec::new();
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if let Some(task) = node.task.take()
                && let Err(e) = join(&runtime, task)
            {
                failed.push(format!("node {i}: {e}"));
            }
        }
        runtime.shutdown_timeout(Duration::from_secs(10));
        match failed.is_empty() {
            true => Ok(()),
            false => Err(anyhow!("nodes failed: {}", failed.join("; "))),
        }
    }
}

/// Starts `node::run` for an opened data dir, with its API on a fresh local port.
fn spawn(
    runtime: &tokio::runtime::Runtime,
    commons: Commons,
    launch: &NodeConfig,
) -> Result<Started> {
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let api = Api::new(format!("http://{}", listener.local_addr()?));
    let store = commons.store().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let config = launch.clone();
    let task = runtime.spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        minga_node::node::run(commons, config, listener, shutdown).await
    });
    Ok(Started {
        api,
        store,
        stop,
        task,
    })
}

/// Waits until a started node answers on its API (it opens its search index and starts its
/// network first), or for the error that ended it.
fn wait_serving(runtime: &tokio::runtime::Runtime, node: &mut LocalNode) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if node.task.as_ref().is_some_and(|t| t.is_finished()) {
            node.store = None;
            let task = node.task.take().context("the node's task")?;
            join(runtime, task)?;
            return Err(anyhow!("the node ended at once"));
        }
        if node.get("/api/v1/status").0 == 200 {
            return Ok(());
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "the node did not serve within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for a node's task to end; its error or panic if it failed.
fn join(runtime: &tokio::runtime::Runtime, task: NodeTask) -> Result<()> {
    match runtime.block_on(task) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(anyhow!("{e}")),
        Err(e) => Err(anyhow!("{e}")),
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(10));
        }
    }
}

/// One node's link: a latency drawn uniformly from the scenario's range, and its uplink.
fn link_model(links: &Links, rng: &mut Rng) -> LinkModel {
    let [low, high] = links.latency_ms;
    let unit = unit(rng);
    LinkModel {
        latency: Duration::from_secs_f64((low + unit * (high - low)) / 1000.0),
        uplink_bytes_per_s: (links.uplink_kbps * 1000.0 / 8.0) as u64,
    }
}

/// A uniform draw in [0, 1) with 53 bits, as the simulator's.
fn unit(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// For each of `nodes` nodes, `dials` distinct other nodes to dial, drawn from `seed`.
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

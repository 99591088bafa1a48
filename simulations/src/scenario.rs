//! Scenarios are data: a TOML file names the network, the workload and the faults of a run, so
//! a new situation needs a file, not code. Every field has a default fit for a small LAN.

use std::path::Path;

use serde::Deserialize;

/// Why a scenario file cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("invalid scenario: {0}")]
    Invalid(String),
}

/// Which document the sync core runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocChoice {
    /// Real signed automerge entries (up to about 1,000 nodes).
    Automerge,
    /// `ModelDoc`: signed stand-ins whose edit sizes are counted, not allocated.
    Model,
}

/// One simulated run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// Number of nodes.
    pub nodes: u32,
    pub doc: DocChoice,
    /// The seed used when the command line gives none.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Simulated seconds to run.
    pub duration_s: f64,
    #[serde(default)]
    pub links: Links,
    #[serde(default)]
    pub overlay: Overlay,
    #[serde(default)]
    pub workload: Workload,
    #[serde(default)]
    pub sync: Sync,
    #[serde(default)]
    pub churn: Option<Churn>,
    #[serde(default)]
    pub partitions: Vec<Partition>,
    #[serde(default)]
    pub bundle: Option<Bundle>,
    #[serde(default)]
    pub hostile: Option<Hostile>,
}

fn default_seed() -> u64 {
    1
}

/// The links between connected nodes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Links {
    /// One-way latency, drawn per link uniformly in this range (milliseconds).
    pub latency_ms: [f64; 2],
    /// Each node's uplink (kilobits per second); messages queue behind each other on it.
    pub uplink_kbps: f64,
    /// Probability that one message is lost.
    pub loss: f64,
}

impl Default for Links {
    fn default() -> Self {
        Self {
            latency_ms: [0.5, 2.0],
            uplink_kbps: 100_000.0,
            loss: 0.0,
        }
    }
}

/// The gossip overlay (gossipsub's parameters).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Overlay {
    /// Connections per node (the peers gossipsub can choose a mesh from).
    pub connections: u32,
    /// Mesh degree D, and the bounds that trigger grafting and pruning.
    pub d: u32,
    pub d_lo: u32,
    pub d_hi: u32,
    /// Non-mesh peers told IHAVE at each heartbeat.
    pub d_lazy: u32,
    pub heartbeat_ms: f64,
    /// Heartbeats whose messages are advertised by IHAVE.
    pub history_gossip: u32,
    /// A node's own announcements go to every connected peer, not only its mesh.
    pub flood_publish: bool,
}

impl Default for Overlay {
    fn default() -> Self {
        Self {
            connections: 10,
            d: 6,
            d_lo: 5,
            d_hi: 12,
            d_lazy: 6,
            heartbeat_ms: 1000.0,
            // The node's setting (`network/behaviour.rs`), not gossipsub's default of 3.
            history_gossip: 1,
            flood_publish: true,
        }
    }
}

/// The updates made during the run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Workload {
    /// Entries every node holds when the run starts (the commons so far).
    pub preload: u32,
    /// New entries made during the run.
    pub entries: u32,
    /// Edits of entries made during the run.
    pub edits: u32,
    /// Updates are spread uniformly over `[start_s, start_s + spread_s]`.
    pub start_s: f64,
    pub spread_s: f64,
    /// Size of a new entry's body, bytes.
    pub entry_bytes: [u64; 2],
    /// Size of an edit, bytes.
    pub edit_bytes: [u64; 2],
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            preload: 10,
            entries: 10,
            edits: 10,
            start_s: 5.0,
            spread_s: 60.0,
            entry_bytes: [512, 5120],
            edit_bytes: [20, 400],
        }
    }
}

/// Pull sync and periodic reconciliation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sync {
    /// Every connected pair reconciles this often (the smaller node starts it).
    pub reconcile_s: f64,
    /// A pull not answered in this time may be asked again.
    pub request_timeout_s: f64,
}

impl Default for Sync {
    fn default() -> Self {
        Self {
            reconcile_s: 30.0,
            request_timeout_s: 10.0,
        }
    }
}

/// Nodes going offline and coming back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Churn {
    /// Fraction of nodes that churn.
    pub fraction: f64,
    pub mean_online_s: f64,
    pub mean_offline_s: f64,
    /// Churn stops here so the run can show whether everyone catches up.
    pub until_s: f64,
}

/// A group of nodes cut off from the rest for a while.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// Fraction of nodes in the cut-off group (the first ones of a seeded shuffle).
    pub fraction: f64,
    pub start_s: f64,
    pub end_s: f64,
    /// Extra connections each member dials inside its group: a region is connected within
    /// itself more than across (default none).
    #[serde(default)]
    pub local_links: u32,
}

/// A sneakernet bundle: a snapshot of a node outside the first partition's group, imported in
/// bulk at one node inside it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub at_s: f64,
}

/// Nodes that send invalid bytes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hostile {
    pub fraction: f64,
    /// Each hostile node attacks one connected peer this often.
    pub attack_every_s: f64,
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    pub fn parse(text: &str, path: &str) -> Result<Self, ScenarioError> {
        let scenario: Scenario = toml::from_str(text).map_err(|source| ScenarioError::Parse {
            path: path.to_string(),
            source,
        })?;
        scenario.validate()?;
        Ok(scenario)
    }

    fn validate(&self) -> Result<(), ScenarioError> {
        let fail = |m: &str| Err(ScenarioError::Invalid(m.to_string()));
        let o = &self.overlay;
        if self.nodes < 2 {
            return fail("at least 2 nodes");
        }
        if !(o.d_lo <= o.d && o.d <= o.d_hi) {
            return fail("overlay needs d_lo <= d <= d_hi");
        }
        if o.connections == 0 || o.connections >= self.nodes {
            return fail("overlay.connections must be in 1..nodes");
        }
        if !(0.0..1.0).contains(&self.links.loss) {
            return fail("links.loss must be in [0, 1)");
        }
        if self.links.uplink_kbps <= 0.0 || o.heartbeat_ms <= 0.0 || self.sync.reconcile_s <= 0.0 {
            return fail("rates and periods must be positive");
        }
        if self.workload.entries == 0 && self.workload.preload == 0 {
            return fail("a workload needs entries to edit");
        }
        if self.bundle.is_some() && self.partitions.is_empty() {
            return fail("a bundle crosses the first partition; add one");
        }
        Ok(())
    }
}

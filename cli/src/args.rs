//! The command line, as clap parses it: raw values, validated by the commands that use them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use minga_node::network::Multiaddr;

/// Minga: a peer-to-peer knowledge commons.
#[derive(Debug, Parser)]
#[command(name = "minga", version, about)]
pub struct Cli {
    /// The node's data dir (keys, store, api.addr). Unset: the user's
    /// (`$XDG_DATA_HOME/minga`), else the packaged service's (`/var/lib/minga`).
    #[arg(long, global = true, env = "MINGA_HOME")]
    pub data_dir: Option<PathBuf>,
    /// Talk to the node whose API is at this URL (e.g. `http://192.168.1.20:7878`) instead of
    /// finding one through a data dir. Writes to a node on the LAN need its token, read from
    /// the `MINGA_API_TOKEN` environment variable.
    #[arg(long, global = true, env = "MINGA_NODE", value_name = "URL")]
    pub node: Option<String>,
    /// Print the JSON of the matching API route instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create keys and store; print the peer id.
    Init {
        /// The name used as author when an entry names none.
        #[arg(long)]
        name: Option<String>,
    },
    /// Run a node: the store, the network and the HTTP API.
    Node(NodeArgs),
    /// Create and list collections.
    #[command(subcommand)]
    Collection(CollectionCommand),
    /// Follow a collection (ids this node has never seen are fine).
    Follow { collection: String },
    /// Stop following a collection.
    Unfollow { collection: String },
    /// Add an entry; prints its id.
    Add(AddArgs),
    /// Edit an entry: each option given replaces that field.
    Edit(EditArgs),
    /// Delete an entry by signing a tombstone.
    Delete {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List entries, newest first.
    List(ListArgs),
    /// Show one entry.
    Show { id: String },
    /// Search entries by words (Spanish, Kichwa or English; accents and case ignored), best
    /// first, with the passage that matched.
    Search(SearchArgs),
    /// The node's status.
    Status,
    /// Connected peers.
    Peers,
    /// Refuse a peer's connections.
    Block { peer: String },
    /// Accept a blocked peer again.
    Unblock { peer: String },
    /// Back up or restore the author key.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Add and fetch attachments' files (blobs).
    #[command(subcommand)]
    Blob(BlobCommand),
    /// Write a verified bundle of collections, to carry on a USB stick.
    Export(ExportArgs),
    /// Verify a bundle and import it in one transaction.
    Import(ImportArgs),
    /// Look at bundles without importing them.
    #[command(subcommand)]
    Bundle(BundleCommand),
}

#[derive(Debug, Args)]
#[group(id = "scope", required = true, multiple = true)]
pub struct ScopeArgs {
    /// A collection to export, by id or name (repeatable).
    #[arg(long = "collection", group = "scope")]
    pub collections: Vec<String>,
    /// Every collection this node holds.
    #[arg(long, group = "scope", conflicts_with = "collections")]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// The bundle to write: FILE, or FILE.001, FILE.002, … when it needs several parts.
    #[arg(long)]
    pub out: PathBuf,
    /// Leave attachments' blobs out.
    #[arg(long)]
    pub no_blobs: bool,
    /// A bundle (or the JSON of `minga bundle inspect --json`) the receiver already imported:
    /// export only what it lacks.
    #[arg(long, value_name = "BUNDLE_OR_MANIFEST")]
    pub since: Option<PathBuf>,
    /// Largest part file in bytes (default 2 GiB; smaller for tests).
    #[arg(long, hide = true)]
    pub part_size: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The bundle: FILE, or the first part FILE.001.
    pub file: PathBuf,
    /// Pretend the disk has this many bytes free (tests of the disk-space refusal).
    #[arg(long, hide = true)]
    pub assume_free_bytes: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Verify a bundle's manifest and print it, without importing.
    Inspect { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum BlobCommand {
    /// Add a file; prints its hash.
    Add { file: PathBuf },
    /// Write a blob to a file.
    Get {
        hash: String,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The name credited on entries written here that name no author (a person's or the
    /// centre's). Asked on a terminal when a new data dir is made without it.
    #[arg(long)]
    pub name: Option<String>,
    /// Address of the HTTP API (port 0 picks a free one; see api.addr in the data dir).
    /// [default: 127.0.0.1:7878, or `api` in config.toml]
    #[arg(long)]
    pub api: Option<SocketAddr>,
    /// Peer-to-peer listen address (repeatable); default TCP and QUIC on port 4747.
    #[arg(long = "listen")]
    pub listen: Vec<Multiaddr>,
    /// A peer to connect to at start and whenever the connection drops (repeatable).
    #[arg(long = "bootstrap")]
    pub bootstrap: Vec<Multiaddr>,
    /// Do not look for peers on the LAN.
    #[arg(long)]
    pub no_mdns: bool,
    /// Follow every collection heard of on the network.
    #[arg(long)]
    pub mirror: bool,
    /// Relay connections for nodes behind NAT.
    #[arg(long)]
    pub relay: bool,
    /// sled's cache size in MiB.
    /// [default: 64, or `cache_mb` in config.toml]
    #[arg(long)]
    pub cache_mb: Option<u64>,
    /// The code contributors on the LAN give to write (with `--api` beyond loopback).
    /// [default: `contributor_code` in config.toml; none: only this machine writes]
    #[arg(long, env = "MINGA_CONTRIBUTOR_CODE", hide_env_values = true)]
    pub contributor_code: Option<String>,
    /// Memory of the search index's writer in MiB (at least 15).
    /// [default: 16, or `search_writer_mb` in config.toml]
    #[arg(long)]
    pub search_writer_mb: Option<usize>,
    /// Largest attachment accepted or fetched, in MiB.
    /// [default: 2048, or `max_blob_mb` in config.toml]
    #[arg(long)]
    pub max_blob_mb: Option<u64>,
    /// Total MiB of attachments fetched for held entries, smallest first (a mirror fetches all).
    /// [default: 4096, or `blob_budget_mb` in config.toml]
    #[arg(long)]
    pub blob_budget_mb: Option<u64>,
    /// Most KiB per second of attachments fetched from peers; 0 for no limit.
    /// [default: 0, or `blob_rate_kib` in config.toml]
    #[arg(long)]
    pub blob_rate_kib: Option<u64>,
    /// A host name the API answers to besides loopback, its own addresses and this machine's
    /// name (repeatable), e.g. minga.local. [also `api_hosts` in config.toml]
    #[arg(long = "api-host")]
    pub api_hosts: Vec<String>,
    /// A directory the API may export bundles to and import them from besides
    /// <data dir>/bundles/ (repeatable), e.g. a USB drive's mount point.
    /// [also `bundle_dirs` in config.toml]
    #[arg(long = "bundle-dir")]
    pub bundle_dirs: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum CollectionCommand {
    /// Create a collection; prints its id.
    Create {
        name: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Default licence of the collection (SPDX id).
        #[arg(long)]
        license: Option<String>,
    },
    /// List the collections this node holds.
    List {
        /// Collections heard of on the network instead.
        #[arg(long)]
        available: bool,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Collection id, or the name of a collection this node holds.
    #[arg(long)]
    pub collection: String,
    /// practice, history or resource.
    #[arg(long)]
    pub kind: String,
    #[arg(long)]
    pub title: String,
    #[command(flatten)]
    pub body: BodyArgs,
    /// SPDX licence id, e.g. CC-BY-SA-4.0.
    #[arg(long)]
    pub license: String,
    /// BCP 47 language tag: es, qug, en, es-EC…
    #[arg(long)]
    pub lang: Option<String>,
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    #[arg(long)]
    pub place: Option<String>,
    #[arg(long = "author")]
    pub authors: Vec<String>,
    /// Keep the entry on this node only.
    #[arg(long)]
    pub private: bool,
    /// Attach a file (repeatable): added as a blob, listed in the entry's attachments.
    #[arg(long = "attach")]
    pub attach: Vec<PathBuf>,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct BodyArgs {
    /// The body, in Markdown.
    #[arg(long)]
    pub body: Option<String>,
    /// Read the body from a file.
    #[arg(long)]
    pub body_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    pub id: String,
    #[arg(long)]
    pub title: Option<String>,
    #[arg(long, conflicts_with = "body_file")]
    pub body: Option<String>,
    #[arg(long)]
    pub body_file: Option<PathBuf>,
    /// Replace the tags with these.
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    #[arg(long)]
    pub lang: Option<String>,
    #[arg(long)]
    pub place: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub collection: Option<String>,
    #[arg(long)]
    pub kind: Option<String>,
    #[arg(long)]
    pub lang: Option<String>,
    #[arg(long)]
    pub tag: Option<String>,
    #[arg(long)]
    pub limit: Option<usize>,
    /// Continue a listing from its next_cursor.
    #[arg(long)]
    pub cursor: Option<String>,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The words to look for.
    #[arg(required = true, num_args = 1..)]
    pub query: Vec<String>,
    #[command(flatten)]
    pub filters: ListArgs,
    /// Only entries from this place (accents and case ignored).
    #[arg(long)]
    pub place: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Print the author key (secret!) for a backup, or write it to a file.
    Export {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Replace this node's author key with a backed-up one (the node must be stopped).
    Import { file: PathBuf },
}

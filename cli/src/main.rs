//! The `minga` command: runs a node, or talks to one (or to the store, when no node runs).

mod args;
mod backend;
mod blob;
mod bundles;
mod config_file;
mod home;
mod output;

use std::fs;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use minga_node::config::{DEFAULT_API, DEFAULT_LISTEN, NodeConfig, WebConfig};
use minga_node::network::NetworkConfig;
use minga_node::queries::ListParams;
use minga_node::{BlobLimits, Commons, DataDir, keys};
use minga_protocol::NewCollection;
use minga_protocol::entry::{EntryPatch, NewEntry, PlaceInput};
use serde_json::Value;

use args::{BlobCommand, BundleCommand, Cli, CollectionCommand, Command, KeyCommand, NodeArgs};
use backend::{Backend, Op};

/// The node returns freed memory to the system; glibc's malloc kept a burst's buffers resident in
/// its per-thread arenas (docs/soak.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Node(_)) {
        "info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let named = cli.data_dir.as_deref();
    let json = cli.json;
    let connect = || match cli.node.as_deref() {
        Some(url) => Ok(Backend::remote(url, std::env::var("MINGA_API_TOKEN").ok())),
        None => Backend::connect(&home::existing(named)?),
    };
    match cli.command {
        Command::Init { name } => init(&home::to_create(named), name.as_deref(), json),
        Command::Node(args) => node(home::to_create(named), args),
        Command::Key(KeyCommand::Export { out }) => {
            let exported = keys::export_author(&home::existing(named)?)?;
            match out {
                Some(path) => minga_node::datadir::write_atomic(&path, exported.as_bytes(), 0o600)
                    .with_context(|| format!("writing {}", path.display())),
                None => {
                    print!("{exported}");
                    Ok(())
                }
            }
        }
        Command::Key(KeyCommand::Import { file }) => {
            // Restoring a backed-up key is how a node's identity moves to a new data dir.
            let dir = home::to_create(named);
            let _lock = dir.lock()?;
            let text =
                fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let id = keys::import_author(&dir, &text, &file)?;
            output::print(&serde_json::json!({"author": id.to_string()}), json, |v| {
                v["author"].as_str().unwrap_or_default().to_owned()
            });
            Ok(())
        }
        Command::Export(args) => {
            let request = minga_node::bundle::ExportRequest {
                collections: args.scope.collections,
                all: args.scope.all,
                out: args.out,
                no_blobs: args.no_blobs,
                since: args.since,
                part_bytes: args.part_size,
            };
            bundles::export(&mut connect()?, request, json)
        }
        Command::Import(args) => {
            let request = minga_node::bundle::ImportRequest {
                file: args.file,
                assume_free_bytes: args.assume_free_bytes,
            };
            bundles::import(&mut connect()?, request, json)
        }
        Command::Bundle(BundleCommand::Inspect { file }) => bundles::inspect(&file, json),
        Command::Blob(BlobCommand::Add { file }) => {
            let answer = blob::add(&mut connect()?, &file)?;
            output::print(&answer, json, |added| added.hash.to_string());
            Ok(())
        }
        Command::Blob(BlobCommand::Get { hash, out }) => {
            let answer = blob::get(&mut connect()?, &hash, &out)?;
            output::print(&answer, json, |_| String::new());
            Ok(())
        }
        command => {
            let mut backend = connect()?;
            let op = operation(command, &mut backend)?;
            let answer = backend.run(op)?;
            output::print(&answer, json, output::answer);
            Ok(())
        }
    }
}

/// The API operation of a command.
fn operation(command: Command, backend: &mut Backend) -> anyhow::Result<Op> {
    Ok(match command {
        Command::Status => Op::Status,
        Command::Peers => Op::Peers,
        Command::Block { peer } => Op::Block { peer, block: true },
        Command::Unblock { peer } => Op::Block { peer, block: false },
        Command::Collection(CollectionCommand::Create {
            name,
            title,
            description,
            license,
        }) => Op::CreateCollection(NewCollection {
            name,
            title,
            description,
            license,
        }),
        Command::Collection(CollectionCommand::List { available }) => {
            Op::ListCollections { available }
        }
        Command::Follow { collection } => Op::Follow {
            id: collection,
            follow: true,
        },
        Command::Unfollow { collection } => Op::Follow {
            id: collection,
            follow: false,
        },
        Command::Add(add) => {
            let body = read_body(add.body.body, add.body.body_file.as_deref())?.unwrap_or_default();
            let attachments = blob::attach(backend, &add.attach)?;
            let new = NewEntry {
                collection: add.collection,
                kind: add.kind,
                title: add.title,
                body,
                license: add.license,
                lang: add.lang,
                tags: add.tags,
                subjects: Vec::new(),
                place: add.place.map(PlaceInput::Name),
                authors: add
                    .authors
                    .into_iter()
                    .map(minga_protocol::entry::AuthorInput::Name)
                    .collect(),
                consent: Vec::new(),
                private: add.private,
                attachments,
            };
            Op::Add(Box::new(new))
        }
        Command::Edit(edit) => {
            let patch = EntryPatch {
                title: edit.title,
                body: read_body(edit.body, edit.body_file.as_deref())?,
                lang: edit.lang,
                tags: (!edit.tags.is_empty()).then_some(edit.tags),
                place: edit.place.map(Value::String),
                ..EntryPatch::default()
            };
            Op::Edit {
                id: edit.id,
                patch: Box::new(patch),
            }
        }
        Command::Delete { id, reason } => Op::Delete { id, reason },
        Command::List(list) => Op::List(list_params(list)),
        Command::Search(search) => {
            let params = ListParams {
                q: Some(search.query.join(" ")),
                place: search.place,
                ..list_params(search.filters)
            };
            Op::List(params)
        }
        Command::Show { id } => Op::Show { id },
        Command::Init { .. }
        | Command::Node(_)
        | Command::Key(_)
        | Command::Export(_)
        | Command::Import(_)
        | Command::Bundle(_)
        | Command::Blob(_) => {
            unreachable!("handled before the API operations")
        }
    })
}

fn list_params(list: args::ListArgs) -> ListParams {
    ListParams {
        collection: list.collection,
        kind: list.kind,
        tag: list.tag,
        lang: list.lang,
        limit: list.limit.map(|l| l.to_string()),
        cursor: list.cursor,
        q: None,
        place: None,
    }
}

fn read_body(
    body: Option<String>,
    file: Option<&std::path::Path>,
) -> anyhow::Result<Option<String>> {
    match file {
        Some(path) => fs::read_to_string(path)
            .map(Some)
            .with_context(|| format!("reading the body from {}", path.display())),
        None => Ok(body),
    }
}

fn init(dir: &DataDir, name: Option<&str>, json: bool) -> anyhow::Result<()> {
    let mut commons = Commons::open(dir, config_file::load(dir.root())?.cache_bytes(None))?;
    if let Some(name) = name {
        commons.set_name(name)?;
    }
    commons.flush()?;
    let peer_id = commons.peer_id();
    output::print(&serde_json::json!({"peer_id": peer_id}), json, |_| {
        peer_id.clone()
    });
    Ok(())
}

fn node(dir: DataDir, args: NodeArgs) -> anyhow::Result<()> {
    let file = config_file::load(dir.root())?;
    let api = args
        .api
        .or(file.api)
        .unwrap_or_else(|| DEFAULT_API.parse().expect("default API"));
    let contributor_code = args
        .contributor_code
        .clone()
        .or(file.contributor_code.clone());
    if !api.ip().is_loopback() && contributor_code.is_none() {
        tracing::warn!(
            "--api {api} without --contributor-code: the LAN can read, only this machine (with api.token) can write"
        );
    }
    let blobs = blob_limits(&args, &file);
    let listen = match (args.listen.is_empty(), file.listen.is_empty()) {
        (false, _) => args.listen,
        (true, false) => config_file::addresses(&file.listen)?,
        (true, true) => DEFAULT_LISTEN
            .iter()
            .map(|a| a.parse().expect("default address"))
            .collect(),
    };
    let mut bootstrap = args.bootstrap;
    bootstrap.extend(config_file::addresses(&file.bootstrap)?);
    let network = NetworkConfig {
        listen,
        bootstrap,
        mdns: !args.no_mdns && file.mdns.unwrap_or(true),
        relay: args.relay || file.relay.unwrap_or(false),
        mirror: args.mirror || file.mirror.unwrap_or(false),
        blobs,
        memory_link: None,
    };
    let web = WebConfig {
        search_writer_bytes: args
            .search_writer_mb
            .or(file.search_writer_mb)
            .map_or(WebConfig::default().search_writer_bytes, |mb| mb << 20),
        contributor_code,
        hosts: [args.api_hosts, file.api_hosts.clone()].concat(),
        bundle_dirs: [args.bundle_dirs, file.bundle_dirs.clone()].concat(),
    };
    if web.search_writer_bytes < minga_node::search::MIN_WRITER_BYTES {
        anyhow::bail!("--search-writer-mb must be at least 15");
    }
    let name = args.name.clone().or_else(|| {
        let fresh = !dir.holds_node();
        fresh.then(ask_name).flatten()
    });
    let config = NodeConfig {
        data_dir: dir,
        cache_bytes: file.cache_bytes(args.cache_mb),
        network,
        web,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut commons = config.open_commons()?;
        if let Some(name) = name {
            commons.set_name(&name)?;
            commons.flush()?;
        }
        let listener = tokio::net::TcpListener::bind(api)
            .await
            .with_context(|| format!("listening for the API on {api}"))?;
        minga_node::node::run(commons, config, listener, shutdown_signal()).await?;
        tracing::info!("stopped cleanly");
        Ok(())
    })
}

/// On a terminal, the name a new node credits its entries with; `None` when skipped or when no
/// one is at the keyboard (a service).
fn ask_name() -> Option<String> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return None;
    }
    eprint!(
        "A new node. The name credited on what is written here (yours or the centre's; Enter to skip): "
    );
    std::io::stderr().flush().ok()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok()?;
    Some(line.trim().to_owned()).filter(|name| !name.is_empty())
}

/// The blob options: command line, then config.toml, then the defaults.
fn blob_limits(args: &NodeArgs, file: &config_file::ConfigFile) -> BlobLimits {
    let defaults = BlobLimits::default();
    BlobLimits {
        max_blob_bytes: args
            .max_blob_mb
            .or(file.max_blob_mb)
            .map_or(defaults.max_blob_bytes, |mb| mb << 20),
        fetch_budget: args
            .blob_budget_mb
            .or(file.blob_budget_mb)
            .map_or(defaults.fetch_budget, |mb| mb << 20),
        fetch_rate: args
            .blob_rate_kib
            .or(file.blob_rate_kib)
            .map_or(defaults.fetch_rate, |kib| kib << 10),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The error and its causes on one line.
fn one_line(error: &anyhow::Error) -> String {
    error
        .chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}

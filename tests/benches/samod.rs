//! Side-by-side benchmark of Minga against samod (the Rust automerge-repo), in one run, on the
//! same seeded entries: (a) first sync of N entries to an empty peer, (b) catch-up after 100
//! edits and 100 new entries, (c) confirming an unchanged set of M entries over a fresh
//! connection. Issue 7 asks for the ratios Minga ÷ samod of bytes on the wire, round trips,
//! wall time and peak memory.
//!
//! ```text
//! cargo bench -p minga-tests --bench samod -- [--entries N] [--unchanged M] [--seed S]
//!     [--clients C] [--only ab|c]
//! ```
//!
//! - **Minga**: two real `minga node` processes on loopback TCP (Noise, Yamux, gossipsub,
//!   `/minga/sync/1`); entries go in through A's HTTP API. Bytes are B's transport counters
//!   (`GET /api/v1/status`), everything libp2p puts on the socket; round trips are the
//!   requests both nodes sent on `/minga/sync/1` (`minga_sync_requests_sent_total` of
//!   `/metrics`), each answered by one response. For (c), A's data dir (its `store/`) is copied
//!   to B while A is stopped, so both hold the same 10,000 entries; B then starts with its own
//!   keys and connects.
//! - **samod**: two `samod::Repo`s (in-memory storage, default share policy: announce to
//!   everyone) in a child process of this benchmark, so its peak memory is its own; B dials A
//!   over loopback TCP with samod's length-delimited framing. Bytes and messages are counted
//!   at A's socket (both directions); round trips are messages ÷ 2 (every automerge-repo
//!   message is answered by at most one). The documents are the very automerge documents
//!   Minga builds (`minga_protocol::entry::create` and `entry::apply_patch`) from the same
//!   generator, so both sides sync the same content. For (c), B's storage is a copy of A's and
//!   B loads every document before connecting.
//! - Each side is level when the receiver holds everything (Minga: B's entry count and the
//!   edited bodies; samod: `they_have_our_changes` — and for (c) `we_have_their_changes` — of
//!   every document on A's connection); bytes are also read once the connection has been
//!   quiet for 2 s.
//!
//! Prints progress on stderr and a Markdown table on stdout.

use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use futures::future::{BoxFuture, join_all};
use minga_protocol::automerge::Automerge;
use minga_protocol::signing::NONCE_LEN;
use minga_protocol::{AuthorKey, DocumentId, EntryPatch, NewEntry, entry};
use minga_tests::content;
use minga_tests::measure::{
    create_collection, create_entries, entries_on, follow, listen_addr, secs, sync_requests,
    wait_for, wait_quiet, wire,
};
use minga_tests::procfs::{load_average, peak_rss};
use minga_tests::{Node, minga_bin};
use samod::storage::{InMemoryStorage, Storage, StorageKey};
use samod::{BackoffConfig, ConnectionId, ConnectionState, DialError, DocHandle, Repo, Transport};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

const USAGE: &str =
    "usage: samod [--entries N] [--unchanged M] [--seed S] [--clients C] [--only ab|c]

  --entries N    entries of the first sync, (a) and (b) (default 1000)
  --unchanged M  entries both sides hold in (c) (default 10000)
  --seed S       seed of the content generator (default 1)
  --clients C    client threads creating Minga's entries (default 8)
  --only ab|c    run only (a)+(b) or only (c)";

/// Entries edited, and entries added, while B is away.
const EDITS: usize = 100;
const ADDITIONS: usize = 100;
/// How long a connection must carry no byte to count as quiet.
const QUIET: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct Args {
    entries: usize,
    unchanged: usize,
    seed: u64,
    clients: usize,
    only: Option<String>,
}

fn parse_args(raw: &[String]) -> Result<Args> {
    let mut args = Args {
        entries: 1000,
        unchanged: 10_000,
        seed: 1,
        clients: 8,
        only: None,
    };
    let mut it = raw.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            // What `cargo bench` passes to every bench target.
            "--bench" => continue,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => {}
        }
        let value = it
            .next()
            .with_context(|| format!("{arg} needs a value\n{USAGE}"))?;
        match arg.as_str() {
            "--entries" => args.entries = value.parse()?,
            "--unchanged" => args.unchanged = value.parse()?,
            "--seed" => args.seed = value.parse()?,
            "--clients" => args.clients = value.parse()?,
            "--only" => args.only = Some(value.clone()),
            _ => bail!("unknown argument {arg:?}\n{USAGE}"),
        }
    }
    ensure!(
        args.entries >= EDITS && args.unchanged > 0 && args.clients > 0,
        "--entries must be at least {EDITS}, --unchanged and --clients positive"
    );
    Ok(args)
}

/// One side's figures for one scenario.
#[derive(Debug, Clone, Copy)]
struct Figures {
    /// Bytes on the wire (both directions) when the receiver was level.
    bytes: u64,
    /// … and once the connection had been quiet for [`QUIET`].
    bytes_quiet: u64,
    /// Request–response exchanges (Minga) or messages ÷ 2 (samod).
    round_trips: f64,
    /// Messages (samod only: frames on the socket).
    messages: Option<u64>,
    /// From the receiver's start (Minga: B's spawn; samod: B's dial) until it was level.
    wall: Duration,
    /// Peak resident memory of the pair: both nodes' VmHWM (Minga), the process holding both
    /// repos (samod).
    peak_rss: u64,
}

impl Figures {
    fn to_json(self) -> Value {
        json!({
            "bytes": self.bytes,
            "bytes_quiet": self.bytes_quiet,
            "round_trips": self.round_trips,
            "messages": self.messages,
            "wall_s": secs(self.wall),
            "peak_rss": self.peak_rss,
        })
    }

    fn from_json(value: &Value) -> Result<Figures> {
        let number = |field: &str| {
            value[field]
                .as_f64()
                .with_context(|| format!("{field} in the samod worker's answer"))
        };
        Ok(Figures {
            bytes: number("bytes")? as u64,
            bytes_quiet: number("bytes_quiet")? as u64,
            round_trips: number("round_trips")?,
            messages: value["messages"].as_u64(),
            wall: Duration::from_secs_f64(number("wall_s")?),
            peak_rss: number("peak_rss")? as u64,
        })
    }
}

fn main() -> Result<()> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.first().map(String::as_str) == Some("--samod-worker") {
        let scenario = raw
            .get(1)
            .context("--samod-worker needs a scenario")?
            .clone();
        let args = parse_args(&raw[2..])?;
        return samod_worker(&scenario, &args);
    }
    let args = parse_args(&raw)?;
    eprintln!("minga binary: {}", minga_bin().display());
    eprintln!("load average at start: {}", load_average());
    let started = Instant::now();
    let mut rows = Vec::new();
    if args.only.as_deref() != Some("c") {
        eprintln!("== (a) + (b), Minga ==");
        let [a, b] = minga_first_sync_and_catch_up(&args)?;
        eprintln!("== (a) + (b), samod ==");
        let samod = run_worker("ab", &args)?;
        rows.push((
            format!("(a) first sync of {} entries", args.entries),
            a,
            Figures::from_json(&samod["a"])?,
            1.0,
        ));
        rows.push((
            format!("(b) catch-up: {EDITS} edits + {ADDITIONS} new entries"),
            b,
            Figures::from_json(&samod["b"])?,
            1.0,
        ));
    }
    if args.only.as_deref() != Some("ab") {
        eprintln!("== (c), Minga ==");
        let c = minga_unchanged(&args)?;
        eprintln!("== (c), samod ==");
        let samod = run_worker("c", &args)?;
        rows.push((
            format!("(c) confirming {} unchanged entries", args.unchanged),
            c,
            Figures::from_json(&samod["c"])?,
            0.5,
        ));
    }
    eprintln!(
        "load average at the end: {} ({:.0} s in all)",
        load_average(),
        secs(started.elapsed())
    );
    print_table(&rows);
    Ok(())
}

fn print_table(rows: &[(String, Figures, Figures, f64)]) {
    println!(
        "| scenario | measure | Minga | samod | Minga ÷ samod | goal |\n|---|---|---|---|---|---|"
    );
    for (name, minga, samod, goal) in rows {
        let ratio = |m: f64, s: f64| if s > 0.0 { m / s } else { f64::NAN };
        let verdict = |r: f64| if r <= *goal { "met" } else { "missed" };
        let bytes = ratio(minga.bytes as f64, samod.bytes as f64);
        println!(
            "| {name} | bytes on the wire, at level | {} | {} | **{bytes:.3}** | ≤ {goal} ({}) |",
            minga.bytes,
            samod.bytes,
            verdict(bytes)
        );
        let quiet = ratio(minga.bytes_quiet as f64, samod.bytes_quiet as f64);
        println!(
            "| | bytes once quiet for 2 s | {} | {} | {quiet:.3} | |",
            minga.bytes_quiet, samod.bytes_quiet
        );
        let trips = ratio(minga.round_trips, samod.round_trips);
        println!(
            "| | round trips | {} | {} ({} messages) | **{trips:.3}** | ≤ {goal} ({}) |",
            minga.round_trips,
            samod.round_trips,
            samod.messages.unwrap_or(0),
            verdict(trips)
        );
        println!(
            "| | wall time until level | {:.2} s | {:.2} s | {:.2} | |",
            secs(minga.wall),
            secs(samod.wall),
            ratio(secs(minga.wall), secs(samod.wall))
        );
        println!(
            "| | peak RSS of the pair | {:.0} MiB | {:.0} MiB | {:.2} | |",
            mib(minga.peak_rss),
            mib(samod.peak_rss),
            ratio(minga.peak_rss as f64, samod.peak_rss as f64)
        );
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

// ---- Minga: real processes ----

fn minga_first_sync_and_catch_up(args: &Args) -> Result<[Figures; 2]> {
    let n = args.entries;
    let dirs = [tempdir("a")?, tempdir("b")?];
    let a = Node::start(dirs[0].path());
    let collection = create_collection(&a, "side-by-side")?;
    eprintln!("creating {n} entries with their edit sessions on A …");
    let ids = create_entries(&a.api, &collection, args.seed, args.clients, true, 0..n)?;

    let a_requests = sync_requests(&a)?;
    let spawned = Instant::now();
    let b = Node::start_with(dirs[1].path(), &["--bootstrap", &a.p2p_addr()]);
    follow(&b, &collection)?;
    wait_for(
        Duration::from_secs(120 + n as u64 / 2),
        &format!("{n} entries on B"),
        Duration::from_millis(20),
        || Ok(entries_on(&b)? == n as u64),
        || Ok(format!("{} entries on B", entries_on(&b)?)),
    )?;
    let wall = spawned.elapsed();
    let at_level = wire(&b)?.total();
    let (quiet, _) = wait_quiet(QUIET, || Ok(wire(&b)?.total()))?;
    let first = Figures {
        bytes: at_level,
        bytes_quiet: quiet,
        round_trips: (sync_requests(&a)? - a_requests + sync_requests(&b)?) as f64,
        messages: None,
        wall,
        peak_rss: peak_rss(a.pid())? + peak_rss(b.pid())?,
    };
    eprintln!("  Minga (a): {first:?}");

    let b_listen = listen_addr(&b);
    let mut b = b;
    ensure!(b.stop(), "B did not exit cleanly on SIGTERM");
    drop(b);
    eprintln!("B is down: {EDITS} edits and {ADDITIONS} new entries on A …");
    let mut edited = Vec::with_capacity(EDITS);
    for k in 0..EDITS {
        let id = &ids[k * n / EDITS];
        let (status, current) = a.get(&format!("/api/v1/entries/{id}"));
        ensure!(status == 200, "GET {id} on A answered {status}: {current}");
        let body = current["body"].as_str().context("a body")?;
        let patch = json!({ "body": content::small_edit(args.seed, k as u64, body) });
        let (status, answer) = a.patch(&format!("/api/v1/entries/{id}"), &patch.to_string());
        ensure!(status == 200, "PATCH {id} answered {status}: {answer}");
        edited.push((id.clone(), answer["body"].clone()));
    }
    create_entries(
        &a.api,
        &collection,
        args.seed,
        args.clients,
        true,
        n..n + ADDITIONS,
    )?;

    let a_requests = sync_requests(&a)?;
    let restarted = Instant::now();
    let b = Node::start_with(
        dirs[1].path(),
        &["--listen", &b_listen, "--bootstrap", &a.p2p_addr()],
    );
    wait_for(
        Duration::from_secs(300),
        "B level with A after its downtime",
        Duration::from_millis(20),
        || {
            if entries_on(&b)? != (n + ADDITIONS) as u64 {
                return Ok(false);
            }
            edited.retain(|(id, body)| b.get(&format!("/api/v1/entries/{id}")).1["body"] != *body);
            Ok(edited.is_empty())
        },
        || Ok(format!("{} entries on B", entries_on(&b)?)),
    )?;
    let wall = restarted.elapsed();
    let at_level = wire(&b)?.total();
    let (quiet, _) = wait_quiet(QUIET, || Ok(wire(&b)?.total()))?;
    let catch_up = Figures {
        bytes: at_level,
        bytes_quiet: quiet,
        round_trips: (sync_requests(&a)? - a_requests + sync_requests(&b)?) as f64,
        messages: None,
        wall,
        peak_rss: peak_rss(a.pid())? + peak_rss(b.pid())?,
    };
    eprintln!("  Minga (b): {catch_up:?}");
    Ok([first, catch_up])
}

fn minga_unchanged(args: &Args) -> Result<Figures> {
    let m = args.unchanged;
    let dirs = [tempdir("a")?, tempdir("b")?];
    let mut a = Node::start(dirs[0].path());
    let collection = create_collection(&a, "unchanged")?;
    eprintln!("creating {m} entries with their edit sessions on A …");
    create_entries(&a.api, &collection, args.seed, args.clients, true, 0..m)?;
    ensure!(a.stop(), "A did not exit cleanly on SIGTERM");
    drop(a);
    eprintln!("copying A's store to B …");
    copy_dir(&dirs[0].path().join("store"), &dirs[1].path().join("store"))?;

    let a = Node::start(dirs[0].path());
    let spawned = Instant::now();
    let b = Node::start_with(dirs[1].path(), &["--bootstrap", &a.p2p_addr()]);
    ensure!(
        entries_on(&b)? == m as u64,
        "B does not hold the copied entries"
    );
    // Level from the start: what counts is what it costs to find that out.
    wait_for(
        Duration::from_secs(60),
        "B connected to A",
        Duration::from_millis(20),
        || Ok(b.get("/api/v1/status").1["peers"].as_u64() == Some(1)),
        || Ok("not connected yet".into()),
    )?;
    let (quiet, last_byte) = wait_quiet(QUIET, || Ok(wire(&b)?.total()))?;
    let round_trips = sync_requests(&a)? + sync_requests(&b)?;
    ensure!(round_trips > 0, "the nodes never compared their sets");
    let figures = Figures {
        bytes: quiet,
        bytes_quiet: quiet,
        round_trips: round_trips as f64,
        messages: None,
        // Until the last byte of the comparison.
        wall: last_byte.duration_since(spawned),
        peak_rss: peak_rss(a.pid())? + peak_rss(b.pid())?,
    };
    ensure!(
        entries_on(&b)? == m as u64 && entries_on(&a)? == m as u64,
        "an unchanged set changed"
    );
    eprintln!("  Minga (c): {figures:?}");
    Ok(figures)
}

/// Copies a directory tree (a stopped node's sled store).
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for item in std::fs::read_dir(from)? {
        let item = item?;
        let target = to.join(item.file_name());
        if item.file_type()?.is_dir() {
            copy_dir(&item.path(), &target)?;
        } else {
            std::fs::copy(item.path(), &target)
                .with_context(|| format!("copying {}", item.path().display()))?;
        }
    }
    Ok(())
}

fn tempdir(name: &str) -> Result<tempfile::TempDir> {
    Ok(tempfile::Builder::new()
        .prefix(&format!("minga-samod-bench-{name}-"))
        .tempdir()?)
}

// ---- samod: a child process holding both repos ----

/// Runs this benchmark again as a samod worker and reads its figures (one JSON line).
fn run_worker(scenario: &str, args: &Args) -> Result<Value> {
    let exe = std::env::current_exe()?;
    let output = std::process::Command::new(exe)
        .args(["--samod-worker", scenario])
        .args(["--entries", &args.entries.to_string()])
        .args(["--unchanged", &args.unchanged.to_string()])
        .args(["--seed", &args.seed.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()?;
    ensure!(
        output.status.success(),
        "the samod worker failed: {}",
        output.status
    );
    let text = String::from_utf8(output.stdout)?;
    let line = text
        .lines()
        .last()
        .context("no answer from the samod worker")?;
    Ok(serde_json::from_str(line)?)
}

fn samod_worker(scenario: &str, args: &Args) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let answer = runtime.block_on(async {
        match scenario {
            "ab" => samod_first_sync_and_catch_up(args).await,
            "c" => samod_unchanged(args).await,
            other => bail!("unknown samod scenario {other:?}"),
        }
    })?;
    println!("{answer}");
    Ok(())
}

/// Builds practice `i` of the run as the automerge document a Minga node makes of it, with its
/// later edit sessions as separate changes.
struct Documents {
    key: AuthorKey,
    collection: DocumentId,
    seed: u64,
    now: i64,
}

impl Documents {
    fn new(seed: u64) -> Documents {
        Documents {
            key: AuthorKey::from_bytes(&[7; 32]),
            collection: DocumentId::from_bytes([1; DocumentId::LEN]),
            seed,
            now: 1_700_000_000_000,
        }
    }

    fn practice(&self, i: usize) -> Result<(DocumentId, Automerge, String)> {
        let new = content::practice(self.seed, i as u64, &self.collection.to_string());
        let mut body = new["body"].as_str().context("a body")?.to_owned();
        let new: NewEntry = serde_json::from_value(new)?;
        let valid = new.validate().map_err(|e| anyhow!("{e}"))?;
        let (id, mut doc) = entry::create(
            &valid,
            &self.collection,
            &self.key.id(),
            "",
            self.key.actor([0; NONCE_LEN]),
            self.now,
        )
        .map_err(|e| anyhow!("{e}"))?;
        for later in content::later_sessions(self.seed, i as u64, &body) {
            self.edit(&mut doc, id, &later)?;
            body = later;
        }
        Ok((id, doc, body))
    }

    fn edit(&self, doc: &mut Automerge, id: DocumentId, body: &str) -> Result<()> {
        let patch = EntryPatch {
            body: Some(body.to_owned()),
            ..EntryPatch::default()
        };
        entry::apply_patch(doc, id, &patch, &self.key.id(), self.now + 60_000)
            .map_err(|e| anyhow!("{e}"))?;
        Ok(())
    }
}

/// A held document: samod's handle, Minga's id for the same document, its current body.
struct Held {
    handle: DocHandle,
    id: DocumentId,
    body: String,
}

async fn create_on(
    repo: &Repo,
    docs: &Documents,
    range: std::ops::Range<usize>,
) -> Result<Vec<Held>> {
    let mut held = Vec::with_capacity(range.len());
    for i in range {
        let (id, doc, body) = docs.practice(i)?;
        let handle = repo.create(doc).await.map_err(|e| anyhow!("{e}"))?;
        held.push(Held { handle, id, body });
    }
    Ok(held)
}

async fn samod_first_sync_and_catch_up(args: &Args) -> Result<Value> {
    let n = args.entries;
    let docs = Documents::new(args.seed);
    let repo_a = Repo::build_tokio().load().await;
    let repo_b = Repo::build_tokio().load().await;
    eprintln!("creating {n} documents with their edit sessions in samod repo A …");
    let mut held = create_on(&repo_a, &docs, 0..n).await?;
    let (addr, counter) = listen(&repo_a).await?;

    let before = counter.snapshot();
    let started = Instant::now();
    let dialer = repo_b
        .dial(BackoffConfig::default(), Arc::new(LoopbackDialer { addr }))
        .map_err(|e| anyhow!("{e}"))?;
    dialer.established().await.map_err(|e| anyhow!("{e:?}"))?;
    let conn = connection_of(&repo_a).await?;
    level(join_all(
        held.iter().map(|h| h.handle.they_have_our_changes(conn)),
    ))
    .await?;
    let first = counter.figures(before, started.elapsed()).await;
    check_level(&repo_b, &held).await?;
    eprintln!("  samod (a): {first:?}");

    dialer.close();
    wait_disconnected(&repo_a).await;
    eprintln!("B is away: {EDITS} edits and {ADDITIONS} new documents in A …");
    for k in 0..EDITS {
        let h = &mut held[k * n / EDITS];
        let body = content::small_edit(args.seed, k as u64, &h.body);
        let id = h.id;
        h.handle.with_document(|doc| docs.edit(doc, id, &body))?;
        h.body = body;
    }
    held.extend(create_on(&repo_a, &docs, n..n + ADDITIONS).await?);

    let before = counter.snapshot();
    let started = Instant::now();
    let dialer = repo_b
        .dial(BackoffConfig::default(), Arc::new(LoopbackDialer { addr }))
        .map_err(|e| anyhow!("{e}"))?;
    dialer.established().await.map_err(|e| anyhow!("{e:?}"))?;
    let conn = connection_of(&repo_a).await?;
    level(join_all(
        held.iter().map(|h| h.handle.they_have_our_changes(conn)),
    ))
    .await?;
    let catch_up = counter.figures(before, started.elapsed()).await;
    check_level(&repo_b, &held).await?;
    eprintln!("  samod (b): {catch_up:?}");
    Ok(json!({ "a": first.to_json(), "b": catch_up.to_json() }))
}

async fn samod_unchanged(args: &Args) -> Result<Value> {
    let m = args.unchanged;
    let docs = Documents::new(args.seed);
    let storage_a = InMemoryStorage::new();
    let repo_a = Repo::build_tokio()
        .with_storage(storage_a.clone())
        .load()
        .await;
    eprintln!("creating {m} documents with their edit sessions in samod repo A …");
    let held = create_on(&repo_a, &docs, 0..m).await?;
    eprintln!("copying A's storage to B and loading every document …");
    let storage_b = InMemoryStorage::new();
    let everything = StorageKey::from_parts(Vec::<String>::new()).map_err(|e| anyhow!("{e:?}"))?;
    for (key, value) in storage_a.load_range(everything).await {
        // B keeps its own storage id, as a second repo would.
        if key != StorageKey::storage_id_path() {
            storage_b.put(key, value).await;
        }
    }
    let repo_b = Repo::build_tokio().with_storage(storage_b).load().await;
    // All at once: one `find` at a time took more than 30 minutes for 10,000 documents.
    let found = join_all(
        held.iter()
            .map(|h| repo_b.find(h.handle.document_id().clone())),
    )
    .await;
    for document in found {
        document
            .map_err(|e| anyhow!("{e}"))?
            .context("a copied document missing in B")?;
    }
    let (addr, counter) = listen(&repo_a).await?;

    let before = counter.snapshot();
    let started = Instant::now();
    let dialer = repo_b
        .dial(BackoffConfig::default(), Arc::new(LoopbackDialer { addr }))
        .map_err(|e| anyhow!("{e}"))?;
    dialer.established().await.map_err(|e| anyhow!("{e:?}"))?;
    let conn = connection_of(&repo_a).await?;
    level(join_all(held.iter().map(|h| {
        let ours = h.handle.they_have_our_changes(conn);
        let theirs = h.handle.we_have_their_changes(conn);
        async move {
            ours.await;
            theirs.await;
        }
    })))
    .await?;
    let figures = counter.figures(before, started.elapsed()).await;
    check_level(&repo_b, &held).await?;
    eprintln!("  samod (c): {figures:?}");
    Ok(json!({ "c": figures.to_json() }))
}

/// Waits for the pair to be level, for at most an hour.
async fn level<T>(done: impl Future<Output = T>) -> Result<()> {
    tokio::time::timeout(Duration::from_secs(3600), done)
        .await
        .map(|_| ())
        .map_err(|_| anyhow!("samod's repos were not level after an hour"))
}

/// Every document of A is in B with the same heads.
async fn check_level(repo_b: &Repo, held: &[Held]) -> Result<()> {
    for h in held {
        let theirs = repo_b
            .find(h.handle.document_id().clone())
            .await
            .map_err(|e| anyhow!("{e}"))?
            .context("a document missing in B")?;
        let ours = h.handle.with_document(|d| d.get_heads());
        ensure!(
            theirs.with_document(|d| d.get_heads()) == ours,
            "B's heads differ from A's"
        );
    }
    Ok(())
}

/// A's one established connection.
async fn connection_of(repo: &Repo) -> Result<ConnectionId> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (connections, _) = repo.connected_peers();
        if let Some(c) = connections
            .iter()
            .find(|c| matches!(c.state, ConnectionState::Connected { .. }))
        {
            return Ok(c.id);
        }
        ensure!(Instant::now() < deadline, "A never saw B connect");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn wait_disconnected(repo: &Repo) {
    while !repo.connected_peers().0.is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Listens on a free loopback port and hands every connection to `repo`, counted.
async fn listen(repo: &Repo) -> Result<(SocketAddr, Arc<Counter>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = repo
        .make_acceptor(samod::Url::parse(&format!("tcp://{addr}"))?)
        .map_err(|e| anyhow!("{e}"))?;
    let counter = Arc::new(Counter::default());
    let counted = Arc::clone(&counter);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let io = Counted {
                io: stream,
                counter: Arc::clone(&counted),
                inbound: Frames::default(),
                outbound: Frames::default(),
            };
            if acceptor.accept(Transport::from_tokio_io(io)).is_err() {
                return;
            }
        }
    });
    Ok((addr, counter))
}

/// B's way to A: loopback TCP with Nagle off, as on A's side and in libp2p's TCP transport.
struct LoopbackDialer {
    addr: SocketAddr,
}

impl samod::Dialer for LoopbackDialer {
    type Error = std::io::Error;

    fn url(&self) -> samod::Url {
        samod::Url::parse(&format!("tcp://{}", self.addr)).expect("a tcp URL of a socket address")
    }

    fn connect(&self) -> BoxFuture<'static, Result<Transport, DialError<std::io::Error>>> {
        let addr = self.addr;
        Box::pin(async move {
            let stream = TcpStream::connect(addr)
                .await
                .map_err(DialError::transient)?;
            stream.set_nodelay(true).map_err(DialError::transient)?;
            Ok(Transport::from_tokio_io(stream))
        })
    }
}

/// Bytes and length-delimited frames (samod's messages) through A's sockets.
#[derive(Default)]
struct Counter {
    bytes: AtomicU64,
    frames: AtomicU64,
}

impl Counter {
    fn snapshot(&self) -> (u64, u64) {
        (
            self.bytes.load(Ordering::Relaxed),
            self.frames.load(Ordering::Relaxed),
        )
    }

    /// The figures since `before`, level now, then once the connection is quiet.
    async fn figures(&self, before: (u64, u64), wall: Duration) -> Figures {
        let at_level = self.snapshot();
        let quiet = tokio::task::block_in_place(|| {
            wait_quiet(QUIET, || Ok(self.bytes.load(Ordering::Relaxed)))
        })
        .map_or(at_level.0, |(bytes, _)| bytes);
        let frames = self.snapshot().1 - before.1;
        Figures {
            bytes: at_level.0 - before.0,
            bytes_quiet: quiet - before.0,
            round_trips: frames as f64 / 2.0,
            messages: Some(frames),
            wall,
            peak_rss: peak_rss(std::process::id()).unwrap_or(0),
        }
    }
}

/// Follows a stream of length-delimited frames (4-byte big-endian length, then the payload,
/// as samod's `LengthDelimitedCodec` writes them) and counts the frames that end.
#[derive(Default)]
struct Frames {
    header: [u8; 4],
    have: usize,
    left: u64,
}

impl Frames {
    fn feed(&mut self, mut bytes: &[u8]) -> u64 {
        let mut ended = 0;
        while !bytes.is_empty() {
            if self.have < 4 {
                let take = (4 - self.have).min(bytes.len());
                self.header[self.have..self.have + take].copy_from_slice(&bytes[..take]);
                self.have += take;
                bytes = &bytes[take..];
                if self.have == 4 {
                    self.left = u64::from(u32::from_be_bytes(self.header));
                }
            } else {
                let take = self.left.min(bytes.len() as u64);
                self.left -= take;
                bytes = &bytes[take as usize..];
            }
            if self.have == 4 && self.left == 0 {
                ended += 1;
                self.have = 0;
            }
        }
        ended
    }
}

/// A TCP stream that counts what passes through it.
struct Counted {
    io: TcpStream,
    counter: Arc<Counter>,
    inbound: Frames,
    outbound: Frames,
}

impl Counted {
    fn count(&self, bytes: &[u8], frames: u64) {
        self.counter
            .bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.counter.frames.fetch_add(frames, Ordering::Relaxed);
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let poll = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            let new = &buf.filled()[before..];
            let frames = this.inbound.feed(new);
            this.count(new, frames);
        }
        poll
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = poll {
            let frames = this.outbound.feed(&buf[..written]);
            this.count(&buf[..written], frames);
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

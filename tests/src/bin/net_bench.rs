//! Network benchmark of real `minga node` processes on loopback: full sync and catch-up bytes
//! against the size of the data, an unchanged reconciliation, latency across a line of three
//! nodes, and idle traffic.
//!
//! ```text
//! cargo run -p minga-tests --release --bin net_bench -- [--entries N] [--seed S]
//!     [--clients C] [--idle-secs T] [--keep]
//! ```
//!
//! Bytes are the nodes' own transport counters (`bytes_sent` / `bytes_received` of
//! `GET /api/v1/status`): everything libp2p puts on the wire, Noise, Yamux, identify,
//! gossipsub, Kademlia and ping included. The floor of each transfer is rebuilt locally with
//! `minga_protocol::entry`: the same entries and patches as automerge documents and changes,
//! written by a local key (only the actor id, the author key and the timestamps differ from the
//! node's, a few bytes per document). Prints progress on stderr and a Markdown table on stdout.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use minga_protocol::automerge::Automerge;
use minga_protocol::signing::NONCE_LEN;
use minga_protocol::{AuthorKey, DocumentId, EntryPatch, NewEntry, entry};
use minga_tests::content::{self, practice};
use minga_tests::measure::{
    create_collection, create_entries, entries_on, follow, kb, listen_addr, mb, mib, secs, settle,
    wait_for, wire,
};
use minga_tests::procfs::{cpu_time, load_average, peak_rss};
use minga_tests::{Node, minga_bin};
use serde_json::{Value, json};

/// How long B stays up and level before the catch-up's downtime: past the first periodic
/// check of both nodes.
const LEVEL_FOR: Duration = Duration::from_secs(35);

const USAGE: &str =
    "usage: net_bench [--entries N] [--seed S] [--clients C] [--idle-secs T] [--keep]

  --entries N    entries in the collection B syncs (default 10000)
  --seed S       seed of the content generator (default 1)
  --clients C    client threads creating the entries (default 8)
  --idle-secs T  length of the idle-traffic window (default 120)
  --keep         keep the nodes' data dirs and logs (node.log; MINGA_TEST_LOG sets RUST_LOG)";

/// Entries edited, and entries added, while B is down.
const EDITS: usize = 100;
const ADDITIONS: usize = 100;
/// Entries sent A → C across the line.
const LATENCY_SAMPLES: usize = 20;
/// The idle node's peers, and the collections it and they follow.
const IDLE_PEERS: usize = 3;
const IDLE_COLLECTIONS: usize = 5;
const IDLE_ENTRIES_EACH: usize = 20;

struct Args {
    entries: usize,
    seed: u64,
    clients: usize,
    idle: Duration,
    keep: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        entries: 10_000,
        seed: 1,
        clients: 8,
        idle: Duration::from_secs(120),
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        if arg == "--keep" {
            args.keep = true;
            continue;
        }
        let (flag, value) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), value.to_owned()),
            None => {
                let value = it
                    .next()
                    .with_context(|| format!("{arg} needs a value\n{USAGE}"))?;
                (arg, value)
            }
        };
        let number: u64 = value
            .parse()
            .with_context(|| format!("{flag}: not a number: {value:?}"))?;
        match flag.as_str() {
            "--entries" => args.entries = usize::try_from(number)?,
            "--seed" => args.seed = number,
            "--clients" => args.clients = usize::try_from(number)?,
            "--idle-secs" => args.idle = Duration::from_secs(number),
            _ => bail!("unknown argument {flag:?}\n{USAGE}"),
        }
    }
    ensure!(
        args.entries >= EDITS && args.clients > 0 && !args.idle.is_zero(),
        "--entries must be at least {EDITS}, --clients and --idle-secs positive"
    );
    Ok(args)
}

/// The rows of the final table: what, figure, goal or reference.
#[derive(Default)]
struct Table(Vec<[String; 3]>);

impl Table {
    fn row(&mut self, what: &str, figure: String, reference: &str) {
        eprintln!("  {what}: {figure}");
        self.0.push([what.to_owned(), figure, reference.to_owned()]);
    }

    fn print(&self) {
        println!("| measure | figure | goal / reference |\n|---|---|---|");
        for [what, figure, reference] in &self.0 {
            println!("| {what} | {figure} | {reference} |");
        }
    }
}

fn main() -> Result<()> {
    let args = parse_args()?;
    eprintln!("building/locating the minga binary …");
    eprintln!("minga binary: {}", minga_bin().display());
    eprintln!("load average at start: {}", load_average());
    let mut table = Table::default();
    let started = Instant::now();
    catch_up(&args, &mut table)?;
    latency(&args, &mut table)?;
    idle(&args, &mut table)?;
    eprintln!(
        "load average at the end: {} ({:.0} s in all)",
        load_average(),
        started.elapsed().as_secs_f64()
    );
    table.print();
    Ok(())
}

// ---- 1 and 2: full sync, catch-up, unchanged reconciliation ----

fn catch_up(args: &Args, table: &mut Table) -> Result<()> {
    let n = args.entries;
    let dirs = [tempdir(args, "a")?, tempdir(args, "b")?];
    let a = Node::start(dirs[0].path());
    let collection = create_collection(&a, "grande")?;

    eprintln!(
        "creating {n} entries on A from {} client threads …",
        args.clients
    );
    let written = Instant::now();
    let ids = create_entries(&a.api, &collection, args.seed, args.clients, false, 0..n)?;
    let write_time = written.elapsed();
    table.row(
        "entries in the collection (bodies 0.5–5 KiB)",
        format!("{n} (created through the API in {:.0} s)", secs(write_time)),
        "",
    );

    eprintln!("rebuilding the {n} documents locally for the floor …");
    let floor = Floor::new(&collection)?;
    let mut whole_floor = 0;
    for i in 0..n {
        whole_floor += floor.saved_size(&practice(args.seed, i as u64, &collection))?;
    }

    // ---- full sync to an empty peer ----
    eprintln!("B follows the collection and syncs from scratch …");
    let a_cpu = cpu_time(a.pid())?;
    let spawned = Instant::now();
    let mut b = Node::start_with(dirs[1].path(), &["--bootstrap", &a.p2p_addr()]);
    follow(&b, &collection)?;
    let followed = spawned.elapsed();
    let mut first = None;
    wait_for(
        Duration::from_secs(60 + n as u64 / 2),
        &format!("{n} entries on B"),
        Duration::from_millis(100),
        || {
            let held = entries_on(&b)?;
            if held > 0 && first.is_none() {
                first = Some(spawned.elapsed());
            }
            Ok(held == n as u64)
        },
        || Ok(format!("{} entries on B", entries_on(&b)?)),
    )?;
    let full_time = spawned.elapsed();
    let full_wire = wire(&b)?;
    let a_cpu = cpu_time(a.pid())? - a_cpu;
    let b_cpu = cpu_time(b.pid())?;
    table.row(
        &format!("full sync of {n} entries to an empty peer: time"),
        format!(
            "{:.1} s from B's spawn ({:.0} entries/s)",
            secs(full_time),
            n as f64 / secs(full_time)
        ),
        "samod 7.6 s for 1,000, 931 s for 10,000",
    );
    table.row(
        "full sync: B's first entry",
        format!(
            "{:.1} s from B's spawn (follow answered at {:.1} s)",
            secs(first.unwrap_or(full_time)),
            secs(followed)
        ),
        "",
    );
    table.row(
        "full sync: CPU (user + system), A / B",
        format!(
            "{:.1} s / {:.1} s in {:.1} s of wall time on 2 cores",
            secs(a_cpu),
            secs(b_cpu),
            secs(full_time)
        ),
        "",
    );
    table.row(
        "full sync: bytes on B's wire (sent + received)",
        format!(
            "{} ({} sent, {} received); {:.2} × the floor",
            mb(full_wire.total()),
            mb(full_wire.sent),
            mb(full_wire.received),
            full_wire.total() as f64 / whole_floor as f64
        ),
        "≤ 1.05 × floor; samod 1.39 ×, automerge-repo 1.35 ×",
    );
    table.row(
        "full sync floor: the saved documents, rebuilt locally",
        format!(
            "{} ({:.0} B per entry)",
            mb(whole_floor as u64),
            whole_floor as f64 / n as f64
        ),
        "",
    );
    table.row(
        "peak RSS during the full sync (VmHWM): A / B",
        format!("{} / {}", mib(peak_rss(a.pid())?), mib(peak_rss(b.pid())?)),
        "samod 538 MiB, automerge-repo ~1 GiB (on 10,000 identical entries)",
    );

    // ---- catch-up after downtime ----
    // B stays up, level, past one periodic check (30 s) before it goes down, as a node does
    // between two trips: each side's position in the other's change log is then current. A
    // node stopped sooner is told back, on reconnecting, the ids it received (33 B each).
    eprintln!(
        "B level; waiting {} s past a periodic check …",
        LEVEL_FOR.as_secs()
    );
    std::thread::sleep(LEVEL_FOR);
    let b_listen = listen_addr(&b);
    ensure!(b.stop(), "B did not exit cleanly on SIGTERM");
    drop(b);
    eprintln!("B is down: {EDITS} edits and {ADDITIONS} new entries on A …");
    let mut edit_floor = 0;
    let mut edit_json = 0;
    let mut edited: Vec<(String, String)> = Vec::with_capacity(EDITS);
    for k in 0..EDITS {
        let i = k * n / EDITS;
        let id = &ids[i];
        let (status, current) = a.get(&format!("/api/v1/entries/{id}"));
        ensure!(status == 200, "GET {id} on A answered {status}: {current}");
        let body = current["body"].as_str().context("a body")?;
        let new_body = content::small_edit(args.seed, k as u64, body);
        let patch = json!({ "body": new_body }).to_string();
        edit_json += patch.len();
        let (status, answer) = a.patch(&format!("/api/v1/entries/{id}"), &patch);
        ensure!(status == 200, "PATCH {id} answered {status}: {answer}");
        let body = answer["body"].as_str().context("the patched body")?;
        edited.push((id.clone(), body.to_owned()));
        edit_floor += floor.edit_size(&practice(args.seed, i as u64, &collection), &new_body)?;
    }
    let added = create_entries(
        &a.api,
        &collection,
        args.seed,
        args.clients,
        false,
        n..n + ADDITIONS,
    )?;
    let mut added_floor = 0;
    let mut added_json = 0;
    for i in n..n + ADDITIONS {
        let new = practice(args.seed, i as u64, &collection);
        added_json += new.to_string().len();
        added_floor += floor.saved_size(&new)?;
    }
    let missing_floor = (edit_floor + added_floor) as u64;

    eprintln!("restarting B on {b_listen} …");
    let restarted = Instant::now();
    let b = Node::start_with(
        dirs[1].path(),
        &["--listen", &b_listen, "--bootstrap", &a.p2p_addr()],
    );
    let api_up = restarted.elapsed();
    let mut pending: Vec<&(String, String)> = edited.iter().collect();
    wait_for(
        Duration::from_secs(300),
        "B level with A after its downtime",
        Duration::from_millis(20),
        || {
            if entries_on(&b)? != (n + ADDITIONS) as u64 {
                return Ok(false);
            }
            pending.retain(|(id, body)| {
                let (status, held) = b.get(&format!("/api/v1/entries/{id}"));
                !(status == 200 && held["body"].as_str() == Some(body.as_str()))
            });
            Ok(pending.is_empty())
        },
        || Ok(format!("{} entries on B", entries_on(&b)?)),
    )?;
    let level_time = restarted.elapsed();
    for id in &added {
        ensure!(
            b.get(&format!("/api/v1/entries/{id}")).0 == 200,
            "new entry {id} missing on B"
        );
    }
    let at_level = wire(&b)?;
    settle();
    let settled = wire(&b)?;
    let changed = EDITS + ADDITIONS;
    table.row(
        "catch-up after downtime: time until B is level",
        format!(
            "{:.2} s from B's spawn (its API answered after {:.2} s)",
            secs(level_time),
            secs(api_up)
        ),
        "samod 1.7 s, automerge-repo 2.7 s",
    );
    table.row(
        &format!("catch-up: bytes on B's wire, {EDITS} edits + {ADDITIONS} new entries"),
        format!(
            "{} ({} sent, {} received) at level; {} two seconds later",
            kb(at_level.total()),
            kb(at_level.sent),
            kb(at_level.received),
            kb(settled.total())
        ),
        "samod 404 KB, automerge-repo 392 KB",
    );
    table.row(
        "catch-up: bytes per changed entry",
        format!("{:.0} B", at_level.total() as f64 / changed as f64),
        "",
    );
    table.row(
        "catch-up floor: missing changes, rebuilt locally",
        format!(
            "{} (new documents {}, edit changes {}: {:.0} B each)",
            kb(missing_floor),
            kb(added_floor as u64),
            kb(edit_floor as u64),
            edit_floor as f64 / EDITS as f64
        ),
        "219 KB on the ANCHORS workload",
    );
    table.row(
        "catch-up bytes ÷ missing change bytes",
        format!("{:.2}", at_level.total() as f64 / missing_floor as f64),
        "≤ 1.3 (ANCHORS: ≤ 1.15); samod 1.84, automerge-repo 1.79",
    );
    table.row(
        "JSON bodies of the 200 writes (reference)",
        format!(
            "{} (PATCH {}, POST {})",
            kb((edit_json + added_json) as u64),
            kb(edit_json as u64),
            kb(added_json as u64)
        ),
        "",
    );

    // ---- an unchanged collection ----
    let entries = n + ADDITIONS;
    let mut costs = Vec::new();
    for _ in 0..3 {
        let before = wire(&b)?;
        follow(&b, &collection)?;
        std::thread::sleep(Duration::from_secs(3));
        costs.push(wire(&b)?.total() - before.total());
    }
    let before = wire(&b)?;
    std::thread::sleep(Duration::from_secs(3));
    let background = wire(&b)?.total() - before.total();
    costs.sort_unstable();
    table.row(
        &format!("unchanged collection of {entries} entries: one reconciliation (follow again)"),
        format!(
            "{} B (3 tries: {}; 3 s without one: {background} B)",
            costs[0],
            costs
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "< 1 KiB in 1 round trip; samod 3.64 MB, automerge-repo 3.25 MB",
    );

    // A fresh connection over the same unchanged data: everything libp2p sets up, plus the
    // reconciliation on connect.
    let mut b = b;
    ensure!(b.stop(), "B did not exit cleanly on SIGTERM");
    drop(b);
    let b = Node::start_with(
        dirs[1].path(),
        &["--listen", &b_listen, "--bootstrap", &a.p2p_addr()],
    );
    wait_for(
        Duration::from_secs(30),
        "B connected to A again",
        Duration::from_millis(20),
        || Ok(b.get("/api/v1/status").1["peers"].as_u64() == Some(1)),
        || Ok("B not connected yet".into()),
    )?;
    std::thread::sleep(Duration::from_secs(5));
    let fresh = wire(&b)?;
    table.row(
        "unchanged collection, fresh connection: B's first 5 s",
        format!(
            "{} B ({} sent, {} received), libp2p set-up included",
            fresh.total(),
            fresh.sent,
            fresh.received
        ),
        "floor 64 B; samod 3.64 MB in 324 s",
    );
    drop(b);
    drop(a);
    Ok(())
}

// ---- 3: latency across a line ----

fn latency(args: &Args, table: &mut Table) -> Result<()> {
    eprintln!("latency: a line A – B – C …");
    let dirs = [
        tempdir(args, "la")?,
        tempdir(args, "lb")?,
        tempdir(args, "lc")?,
    ];
    let b = Node::start(dirs[1].path());
    let a = Node::start_with(dirs[0].path(), &["--bootstrap", &b.p2p_addr()]);
    let c = Node::start_with(dirs[2].path(), &["--bootstrap", &b.p2p_addr()]);
    let collection = create_collection(&a, "linea")?;
    follow(&b, &collection)?;
    follow(&c, &collection)?;
    // A first entry lets the collection reach C and the gossip meshes form.
    let warm = create_entries(
        &a.api,
        &collection,
        args.seed,
        args.clients,
        false,
        1_000_000..1_000_001,
    )?;
    wait_for(
        Duration::from_secs(120),
        "the first entry on C",
        Duration::from_millis(50),
        || Ok(c.get(&format!("/api/v1/entries/{}", warm[0])).0 == 200),
        || Ok("not yet".into()),
    )?;
    settle();
    let mut writes = Vec::new();
    let mut spread = Vec::new();
    for k in 0..LATENCY_SAMPLES {
        let new = practice(args.seed, 2_000_000 + k as u64, &collection).to_string();
        let sent = Instant::now();
        let (status, answer) = a.post("/api/v1/entries", &new);
        ensure!(status == 201, "POST on A answered {status}: {answer}");
        let durable = Instant::now();
        let id = answer["id"].as_str().context("the new id")?.to_owned();
        let path = format!("/api/v1/entries/{id}");
        wait_for(
            Duration::from_secs(60),
            "the entry on C",
            Duration::from_millis(10),
            || Ok(c.get(&path).0 == 200),
            || Ok("not yet".into()),
        )?;
        let arrived = Instant::now();
        writes.push(durable - sent);
        spread.push(arrived - durable);
        std::thread::sleep(Duration::from_millis(200));
    }
    spread.sort_unstable();
    writes.sort_unstable();
    table.row(
        &format!("latency A → B → C, {LATENCY_SAMPLES} entries: A's 201 to C's 200"),
        format!(
            "median {:.0} ms, p90 {:.0} ms, max {:.0} ms (polled every 10 ms)",
            ms(percentile(&spread, 0.5)),
            ms(percentile(&spread, 0.9)),
            ms(percentile(&spread, 1.0))
        ),
        "",
    );
    table.row(
        "latency: the write on A (POST to 201, durable)",
        format!(
            "median {:.0} ms, p90 {:.0} ms",
            ms(percentile(&writes, 0.5)),
            ms(percentile(&writes, 0.9))
        ),
        "",
    );
    Ok(())
}

// ---- 4: idle traffic ----

fn idle(args: &Args, table: &mut Table) -> Result<()> {
    eprintln!("idle: a node with {IDLE_PEERS} peers and {IDLE_COLLECTIONS} followed collections …");
    let hub_dir = tempdir(args, "hub")?;
    let hub = Node::start(hub_dir.path());
    let mut collections = Vec::new();
    for c in 0..IDLE_COLLECTIONS {
        let id = create_collection(&hub, &format!("idle-{c}"))?;
        let first = 3_000_000 + (c * IDLE_ENTRIES_EACH) as u64;
        create_entries(
            &hub.api,
            &id,
            args.seed,
            args.clients,
            false,
            first as usize..first as usize + IDLE_ENTRIES_EACH,
        )?;
        collections.push(id);
    }
    let hub_addr = hub.p2p_addr();
    let mut peer_dirs = Vec::new();
    let mut peers = Vec::new();
    for p in 0..IDLE_PEERS {
        let dir = tempdir(args, &format!("peer{p}"))?;
        let peer = Node::start_with(dir.path(), &["--bootstrap", &hub_addr]);
        for id in &collections {
            follow(&peer, id)?;
        }
        peer_dirs.push(dir);
        peers.push(peer);
    }
    let total = (IDLE_COLLECTIONS * IDLE_ENTRIES_EACH) as u64;
    wait_for(
        Duration::from_secs(120),
        "every peer level with the hub",
        Duration::from_millis(100),
        || {
            for peer in &peers {
                if entries_on(peer)? != total {
                    return Ok(false);
                }
            }
            Ok(true)
        },
        || Ok("syncing".into()),
    )?;
    // Past the first reconciliation and catalogue rounds.
    std::thread::sleep(Duration::from_secs(10));
    let connected = hub.get("/api/v1/status").1["peers"].as_u64().unwrap_or(0);
    eprintln!("measuring {:.0} s of idle traffic …", secs(args.idle));
    let before = wire(&hub)?;
    let window = Instant::now();
    std::thread::sleep(args.idle);
    let after = wire(&hub)?;
    let minutes = secs(window.elapsed()) / 60.0;
    let per_minute = |bytes: u64| bytes as f64 / minutes;
    let (sent, received) = (after.sent - before.sent, after.received - before.received);
    table.row(
        &format!(
            "idle traffic: node with {connected} peers and {IDLE_COLLECTIONS} followed collections"
        ),
        format!(
            "{:.1} KB/min ({:.1} sent, {:.1} received; {:.0} s window)",
            per_minute(sent + received) / 1000.0,
            per_minute(sent) / 1000.0,
            per_minute(received) / 1000.0,
            secs(args.idle)
        ),
        "",
    );
    table.row(
        "idle traffic per peer",
        format!(
            "{:.1} KB/min",
            per_minute(sent + received) / 1000.0 / connected.max(1) as f64
        ),
        "",
    );
    drop(peers);
    drop(peer_dirs);
    Ok(())
}

// ---- nodes and the API ----

fn tempdir(args: &Args, name: &str) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("minga-net-bench-{name}-"))
        .disable_cleanup(args.keep)
        .tempdir()?;
    if args.keep {
        eprintln!("  data dir kept: {}", dir.path().display());
    }
    Ok(dir)
}

// ---- the floor: the same documents and changes, built locally ----

/// Builds entries and patches as the node does, with a local key.
struct Floor {
    key: AuthorKey,
    collection: DocumentId,
    now: i64,
}

impl Floor {
    fn new(collection: &str) -> Result<Floor> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis();
        Ok(Floor {
            key: AuthorKey::from_bytes(&[7; 32]),
            collection: collection
                .parse()
                .map_err(|e| anyhow!("collection id {collection}: {e}"))?,
            now: i64::try_from(now)?,
        })
    }

    fn document(&self, new: &Value) -> Result<(DocumentId, Automerge)> {
        let new: NewEntry = serde_json::from_value(new.clone())?;
        let valid = new.validate().map_err(|e| anyhow!("{e}"))?;
        entry::create(
            &valid,
            &self.collection,
            &self.key.id(),
            "",
            self.key.actor([0; NONCE_LEN]),
            self.now,
        )
        .map_err(|e| anyhow!("{e}"))
    }

    /// Bytes of the saved document: what a peer that holds nothing of it lacks.
    fn saved_size(&self, new: &Value) -> Result<usize> {
        Ok(self.document(new)?.1.save().len())
    }

    /// Bytes of the change that sets the body of `new`'s document to `body`.
    fn edit_size(&self, new: &Value, body: &str) -> Result<usize> {
        let (id, mut doc) = self.document(new)?;
        let before = doc.get_heads();
        let patch = EntryPatch {
            body: Some(body.to_owned()),
            ..EntryPatch::default()
        };
        entry::apply_patch(&mut doc, id, &patch, &self.key.id(), self.now + 60_000)
            .map_err(|e| anyhow!("{e}"))?;
        Ok(doc
            .get_changes(&before)
            .iter()
            .map(|c| c.raw_bytes().len())
            .sum())
    }
}

// ---- figures ----

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

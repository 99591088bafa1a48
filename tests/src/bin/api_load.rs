//! Load benchmark of one real `minga node` through its HTTP API: durable entry writes from
//! concurrent clients, store size per entry, resident memory, and cold start with a full store.
//!
//! ```text
//! cargo run -p minga-tests --release --bin api_load -- [--entries N] [--clients C] [--seed S]
//!     [--node-arg ARG]...
//! ```
//!
//! Prints progress on stderr and a Markdown table of the figures on stdout.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use minga_tests::content::practice;
use minga_tests::flags::flag_values;
use minga_tests::procfs::clock_ticks;
use minga_tests::{Node, minga_bin};

const USAGE: &str = "usage: api_load [--entries N] [--clients C] [--seed S] [--node-arg ARG]...

  --entries N     entries to create (default 10000)
  --clients C     concurrent client threads (default 8)
  --seed S        seed of the content generator (default 1)
  --node-arg ARG  one more argument for `minga node`, e.g. --node-arg=--cache-mb=16";

struct Args {
    entries: usize,
    clients: usize,
    seed: u64,
    node_args: Vec<String>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        entries: 10_000,
        clients: 8,
        seed: 1,
        node_args: Vec::new(),
    };
    for (flag, value) in flag_values(USAGE)? {
        let number = || -> Result<u64> {
            value
                .parse()
                .with_context(|| format!("{flag}: not a number: {value:?}"))
        };
        match flag.as_str() {
            "--entries" => args.entries = usize::try_from(number()?)?,
            "--clients" => args.clients = usize::try_from(number()?)?,
            "--seed" => args.seed = number()?,
            "--node-arg" => args.node_args.push(value.clone()),
            _ => bail!("unknown argument {flag:?}\n{USAGE}"),
        }
    }
    ensure!(
        args.entries > 0 && args.clients > 0,
        "--entries and --clients must be positive"
    );
    Ok(args)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    eprintln!("building/locating the minga binary …");
    let bin = minga_bin();
    eprintln!("minga binary: {}", bin.display());

    let tmp = tempfile::Builder::new()
        .prefix("minga-api-load-")
        .tempdir()?;
    let dir = tmp.path();
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |name: &str, value: String| rows.push((name.to_owned(), value));

    // ---- writes ----
    let node_args: Vec<&str> = args.node_args.iter().map(String::as_str).collect();
    let mut node = Node::start_with(dir, &node_args);
    let (status, body) = node.post("/api/v1/collections", r#"{"name":"bench"}"#);
    ensure!(
        status == 201,
        "creating the collection answered {status}: {body}"
    );
    let collection = body["id"]
        .as_str()
        .context("collection id in the answer")?
        .to_owned();

    eprintln!(
        "creating {} entries from {} clients (data dir {}) …",
        args.entries,
        args.clients,
        dir.display()
    );
    let ticks = clock_ticks();
    let node_cpu_before = cpu(node.pid(), ticks)?;
    let own_cpu_before = cpu(std::process::id(), ticks)?;
    let load = write_load(&node.base, node.pid(), &collection, &args)?;
    let node_cpu = cpu(node.pid(), ticks)?.since(&node_cpu_before);
    let own_cpu = cpu(std::process::id(), ticks)?.since(&own_cpu_before);
    let (status, body) = node.get("/api/v1/status");
    ensure!(
        status == 200,
        "status after the load answered {status}: {body}"
    );
    ensure!(
        body["entries"].as_u64() == Some(args.entries as u64),
        "status counts {} entries, expected {}",
        body["entries"],
        args.entries
    );
    let rss_loaded = rss(node.pid())?;
    let store_loaded = disk_usage(&dir.join("store"))?;

    let n = args.entries as f64;
    row("entries", args.entries.to_string());
    row("client threads", args.clients.to_string());
    if !args.node_args.is_empty() {
        row("extra `minga node` arguments", args.node_args.join(" "));
    }
    row(
        "mean body size",
        format!("{:.0} B", load.body_bytes as f64 / n),
    );
    row(
        "write throughput (201 = durable)",
        format!("{:.0} entries/s", n / secs(load.wall)),
    );
    row(
        "write latency p50",
        format!("{:.1} ms", ms(percentile(&load.latencies, 0.50))),
    );
    row(
        "write latency p99",
        format!("{:.1} ms", ms(percentile(&load.latencies, 0.99))),
    );
    row(
        "write latency max",
        format!("{:.1} ms", ms(percentile(&load.latencies, 1.0))),
    );
    row(
        "node CPU per entry (all threads)",
        format!("{:.2} ms", ms(node_cpu.process) / n),
    );
    if let Some(event_loop) = node_cpu.event_loop {
        row(
            "event-loop thread busy (CPU / wall)",
            format!("{:.0} %", 100.0 * secs(event_loop) / secs(load.wall)),
        );
    }
    row(
        "benchmark clients' CPU per entry",
        format!("{:.2} ms", ms(own_cpu.process) / n),
    );
    row("store on disk after load (du)", mib(store_loaded.allocated));
    row(
        "store per entry after load",
        format!("{:.1} KiB", store_loaded.allocated as f64 / n / 1024.0),
    );
    row("node RSS after load", rss_loaded.show());
    row("node peak RSS during load (VmHWM)", mib(rss_loaded.hwm));

    // ---- cold start ----
    eprintln!("stopping the node (SIGTERM) …");
    let stopped = Instant::now();
    ensure!(node.stop(), "the node did not exit cleanly on SIGTERM");
    let stop_time = stopped.elapsed();
    drop(node);
    let store_rest = disk_usage(&dir.join("store"))?;
    row(
        "clean stop (SIGTERM to exit)",
        format!("{:.0} ms", ms(stop_time)),
    );
    row(
        "store per entry at rest (du after stop)",
        format!(
            "{:.1} KiB ({})",
            store_rest.allocated as f64 / n / 1024.0,
            mib(store_rest.allocated)
        ),
    );

    let usage = minga_node::Store::open(&dir.join("store"), 8 << 20)
        .context("opening the stopped node's store")?
        .usage()?;
    let logical: u64 = usage.by_prefix.values().map(|rows| rows.bytes).sum();
    row(
        "store: sled's size on disk, ÷ its rows' bytes",
        format!(
            "{} ({:.2} ×)",
            mib(usage.on_disk),
            usage.on_disk as f64 / logical.max(1) as f64
        ),
    );
    for (prefix, rows) in &usage.by_prefix {
        row(
            &format!("store rows `{prefix}`: count, bytes per entry"),
            format!("{}, {:.0} B", rows.count, rows.bytes as f64 / n),
        );
    }

    eprintln!("cold start …");
    let spawned = Instant::now();
    let node = Node::start_with(dir, &node_args);
    let ready = spawned.elapsed();
    let rss_started = rss(node.pid())?;
    let listed = Instant::now();
    let (status, body) = node.get("/api/v1/entries");
    let list_time = listed.elapsed();
    ensure!(
        status == 200,
        "listing the first page answered {status}: {body}"
    );
    let page = body["entries"].as_array().map_or(0, Vec::len);
    let rss_listed = rss(node.pid())?;
    row(
        "cold start: spawn to status 200",
        format!("{:.0} ms", ms(ready)),
    );
    row("node RSS right after start", rss_started.show());
    row(
        "first page (GET /api/v1/entries)",
        format!("{:.0} ms, {page} entries", ms(list_time)),
    );
    row("node RSS after first page", rss_listed.show());
    drop(node);

    println!("| measure | value |\n|---|---|");
    for (name, value) in &rows {
        println!("| {name} | {value} |");
    }
    Ok(())
}

/// What the write phase measured.
struct Load {
    wall: Duration,
    latencies: Vec<Duration>,
    body_bytes: usize,
}

/// Creates `args.entries` entries through `POST /api/v1/entries` from `args.clients` threads;
/// each thread takes the next entry number from a shared counter. Every tenth of the way it
/// logs progress and the node's (process `pid`) resident memory.
fn write_load(base: &str, pid: u32, collection: &str, args: &Args) -> Result<Load> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(120))
        .max_idle_connections_per_host(args.clients)
        .build();
    let next = AtomicUsize::new(0);
    let url = format!("{base}/api/v1/entries");
    let progress_step = (args.entries / 10).max(1);
    let started = Instant::now();
    let results: Vec<Result<(Vec<Duration>, usize)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..args.clients)
            .map(|_| {
                scope.spawn(|| -> Result<(Vec<Duration>, usize)> {
                    let mut latencies = Vec::with_capacity(args.entries / args.clients + 1);
                    let mut body_bytes = 0;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= args.entries {
                            return Ok((latencies, body_bytes));
                        }
                        let practice = practice(args.seed, i as u64, collection);
                        body_bytes += practice["body"].as_str().map_or(0, str::len);
                        let payload = practice.to_string();
                        let sent = Instant::now();
                        let answer = agent
                            .post(&url)
                            .set("Content-Type", "application/json")
                            .send_string(&payload);
                        let latency = sent.elapsed();
                        match answer {
                            Ok(r) if r.status() == 201 => {}
                            Ok(r) | Err(ureq::Error::Status(_, r)) => {
                                let status = r.status();
                                let text = r.into_string().unwrap_or_default();
                                bail!("entry {i}: POST answered {status}: {text}");
                            }
                            Err(e) => bail!("entry {i}: POST {url} failed: {e}"),
                        }
                        latencies.push(latency);
                        // Crossed a tenth of the run (no `is_multiple_of`: MSRV 1.85).
                        if (i + 1) / progress_step > i / progress_step {
                            eprintln!(
                                "  {} entries, {:.0} s, node RSS {}",
                                i + 1,
                                started.elapsed().as_secs_f64(),
                                rss(pid).map_or_else(|e| e.to_string(), |m| m.show())
                            );
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a client thread panicked")))
            })
            .collect()
    });
    let wall = started.elapsed();
    let mut load = Load {
        wall,
        latencies: Vec::with_capacity(args.entries),
        body_bytes: 0,
    };
    for result in results {
        let (latencies, body_bytes) = result?;
        load.latencies.extend(latencies);
        load.body_bytes += body_bytes;
    }
    load.latencies.sort_unstable();
    Ok(load)
}

// ---- measurements ----

struct Memory {
    /// VmRSS, bytes.
    rss: u64,
    /// RssAnon: the heap and other anonymous memory, bytes.
    anon: u64,
    /// VmHWM (peak resident set), bytes.
    hwm: u64,
}

impl Memory {
    fn show(&self) -> String {
        format!("{} (anon {})", mib(self.rss), mib(self.anon))
    }
}

/// Resident memory of a process, from `/proc/PID/status`.
fn rss(pid: u32) -> Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .with_context(|| format!("no {name} in {path}"))?;
        let kib: u64 = line
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .with_context(|| format!("parsing {name}{line}"))?;
        Ok(kib * 1024)
    };
    Ok(Memory {
        rss: field("VmRSS:")?,
        anon: field("RssAnon:")?,
        hwm: field("VmHWM:")?,
    })
}

/// CPU time (user + system) of a process, and of its event-loop thread when it has one.
struct Cpu {
    process: Duration,
    event_loop: Option<Duration>,
}

impl Cpu {
    fn since(&self, before: &Cpu) -> Cpu {
        Cpu {
            process: self.process.saturating_sub(before.process),
            event_loop: self
                .event_loop
                .map(|now| now.saturating_sub(before.event_loop.unwrap_or_default())),
        }
    }
}

/// utime + stime of a `/proc/.../stat` file.
fn stat_cpu(path: &Path, ticks: f64) -> Result<Duration> {
    let stat =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    // Fields after the command name, which may hold spaces and ends at the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> Result<f64> {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .with_context(|| format!("field {} of {}", i + 3, path.display()))
    };
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    Ok(Duration::from_secs_f64((tick(11)? + tick(12)?) / ticks))
}

fn cpu(pid: u32, ticks: f64) -> Result<Cpu> {
    let proc_dir = Path::new("/proc").join(pid.to_string());
    let process = stat_cpu(&proc_dir.join("stat"), ticks)?;
    let mut event_loop = None;
    for task in std::fs::read_dir(proc_dir.join("task"))?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        // The kernel keeps 15 bytes of a thread's name: "minga-event-loo".
        if comm.starts_with("minga-event") {
            event_loop = Some(stat_cpu(&task.path().join("stat"), ticks)?);
        }
    }
    Ok(Cpu {
        process,
        event_loop,
    })
}

struct DiskUsage {
    /// Blocks allocated, in bytes, as `du` counts them.
    allocated: u64,
}

/// Space a directory tree takes on disk (`du -s`, in bytes).
fn disk_usage(path: &Path) -> Result<DiskUsage> {
    use std::os::unix::fs::MetadataExt;
    let mut usage = DiskUsage { allocated: 0 };
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for item in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let item = item?;
            let meta = item.metadata()?;
            usage.allocated += meta.blocks() * 512;
            if meta.is_dir() {
                stack.push(item.path());
            }
        }
    }
    Ok(usage)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

//! `real_sim`: runs a simulator scenario's workload on whole nodes in one process, over
//! libp2p's memory transport, and reports what the simulator reports (how fast updates spread,
//! bytes per node per update, convergence), so the model can be checked against the node.
//!
//! Uses from the scenario: `nodes`, `seed`, `overlay.connections` (each node dials half as
//! many peers), and the workload's `preload`, `entries`, `edits`, `start_s`, `spread_s`. Links
//! are the memory transport's (no latency, bandwidth limit or loss), or with `--links` the
//! scenario's latency and uplink (`--links scenario`; not its loss); no churn, no partitions.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use minga_simulations::Scenario;
use minga_tests::content::Rng;
use minga_tests::measure::{self, Wire, secs};
use minga_tests::procfs;
use minga_tests::real_stack::updates::{self, Update};
use minga_tests::real_stack::{Cluster, ClusterConfig, LocalNode};

const USAGE: &str = "usage: real_sim --scenario FILE [--seed N] [--nodes N] [--spread-s S] \
[--cache-mb MB] [--search-writer-mb MB] [--timeout-s S] [--data-in DIR] [--out DIR] [--links memory|scenario]";

/// Seconds after an update at which the fraction of nodes holding it is reported.
const FRACTION_AT: [f64; 6] = [0.25, 0.5, 1.0, 2.0, 5.0, 30.0];

struct Options {
    scenario: Scenario,
    seed: u64,
    cache_mb: u64,
    search_writer_mb: usize,
    /// How long after the last update every node must hold everything.
    timeout: Duration,
    out: Option<PathBuf>,
    /// Parent of the nodes' data dirs.
    data_in: Option<PathBuf>,
    /// Run on the scenario's latency and uplinks rather than the memory transport's.
    scenario_links: bool,
}

fn options() -> Result<Options> {
    let mut path = None;
    let (mut seed, mut nodes, mut spread, mut out, mut data_in) = (None, None, None, None, None);
    let (mut cache_mb, mut search_writer_mb, mut timeout_s) = (4, 15, 300);
    let mut scenario_links = false;
    for (flag, value) in minga_tests::flags::flag_values(USAGE)? {
        match flag.as_str() {
            "--scenario" => path = Some(PathBuf::from(value)),
            "--seed" => seed = Some(value.parse()?),
            "--nodes" => nodes = Some(value.parse()?),
            "--spread-s" => spread = Some(value.parse()?),
            "--cache-mb" => cache_mb = value.parse()?,
            "--search-writer-mb" => search_writer_mb = value.parse()?,
            "--timeout-s" => timeout_s = value.parse()?,
            "--out" => out = Some(PathBuf::from(value)),
            "--data-in" => data_in = Some(PathBuf::from(value)),
            "--links" => {
                scenario_links = match value.as_str() {
                    "scenario" => true,
                    "memory" => false,
                    _ => bail!("--links is memory or scenario\n{USAGE}"),
                }
            }
            _ => bail!("unknown flag {flag}\n{USAGE}"),
        }
    }
    let path = path.with_context(|| format!("--scenario is required\n{USAGE}"))?;
    let mut scenario = Scenario::load(&path)?;
    if let Some(nodes) = nodes {
        scenario.nodes = nodes;
    }
    if let Some(spread) = spread {
        scenario.workload.spread_s = spread;
    }
    if scenario.churn.is_some() || !scenario.partitions.is_empty() {
        eprintln!("note: churn and partitions are not run on the real stack; ignored");
    }
    Ok(Options {
        seed: seed.unwrap_or(scenario.seed),
        scenario,
        cache_mb,
        search_writer_mb,
        timeout: Duration::from_secs(timeout_s),
        out,
        data_in,
        scenario_links,
    })
}

fn main() -> Result<()> {
    let options = options()?;
    let sc = &options.scenario;
    let seed = options.seed;
    let n = sc.nodes as usize;
    let started = Instant::now();
    eprintln!("{} on the real stack: {n} nodes, seed {seed}", sc.name);
    if options.scenario_links {
        let [low, high] = sc.links.latency_ms;
        eprintln!(
            "  links: {low}–{high} ms, {} kbit/s uplinks (loss not modelled)",
            sc.links.uplink_kbps
        );
    }
    let config = ClusterConfig {
        cache_bytes: options.cache_mb << 20,
        search_writer_bytes: options.search_writer_mb << 20,
        data_parent: options.data_in.clone(),
        links: options.scenario_links.then(|| sc.links.clone()),
        ..ClusterConfig::new(n, (sc.overlay.connections / 2).max(1) as usize, seed)
    };
    let pid = std::process::id();
    let cluster = Cluster::start(&config)?;
    cluster.wait_connected(Duration::from_secs(120))?;
    let rss_started = procfs::rss(pid)?;
    eprintln!(
        "  started and connected in {:.1} s, RSS {}",
        secs(started.elapsed()),
        measure::mib(rss_started)
    );
    let nodes = &cluster.nodes;
    let collection = cluster.shared_collection(&sc.name)?;

    let mut preload = Vec::new();
    for i in 0..u64::from(sc.workload.preload) {
        preload.push(Update::create(nodes, 0, &collection, seed, i)?);
    }
    let preloading = Instant::now();
    updates::wait_all_held(nodes, &mut preload, options.timeout)?;
    eprintln!(
        "  {} preloaded entries everywhere after {:.1} s",
        preload.len(),
        secs(preloading.elapsed())
    );
    measure::settle();

    // Background traffic (gossipsub heartbeats, ping, identify, periodic checks) while idle.
    let idle_window = Duration::from_secs(10);
    let idle_before = wires(nodes)?;
    std::thread::sleep(idle_window);
    let baseline = wires(nodes)?;
    let idle_received = received(&idle_before, &baseline) as f64 / n as f64 / secs(idle_window);

    let cpu_before = procfs::cpu_time(pid)?;
    let mut made = run_workload(&options, nodes, &collection, &preload)?;
    let converged_at = Instant::now();
    measure::settle();
    let after = wires(nodes)?;
    let cpu = procfs::cpu_time(pid)? - cpu_before;
    let differing = updates::differing_heads(nodes, &made)?;
    let rss_end = procfs::rss(pid)?;
    let peak = procfs::peak_rss(pid)?;
    updates::poll(nodes, &mut made)?;

    let summary = Summary {
        options: &options,
        updates: &made,
        received: received(&baseline, &after),
        sent: sent(&baseline, &after),
        idle_received,
        identical: differing.is_empty(),
        last_update_to_converged: converged_at
            - made.iter().map(|u| u.made).max().unwrap_or(converged_at),
        rss_started,
        rss_end,
        peak,
        cpu,
        wall: started.elapsed(),
    };
    summary.print();
    if let Some(dir) = &options.out {
        summary.write(dir)?;
    }
    cluster.stop()?;
    ensure!(
        differing.is_empty(),
        "entries differ between nodes: {differing:?}"
    );
    Ok(())
}

/// Makes the scenario's entries and edits on random nodes at their times (uniform over the
/// spread, like the simulator), polling who holds what meanwhile; then waits for convergence.
fn run_workload(
    options: &Options,
    nodes: &[LocalNode],
    collection: &str,
    preload: &[Update],
) -> Result<Vec<Update>> {
    let w = &options.scenario.workload;
    let mut rng = Rng::new(options.seed, 0x3A11);
    let total = (w.entries + w.edits) as usize;
    let mut edits: Vec<bool> = (0..total).map(|i| i >= w.entries as usize).collect();
    for i in (1..total).rev() {
        edits.swap(i, rng.range(0, i));
    }
    let mut times: Vec<f64> = (0..total)
        .map(|_| w.start_s + w.spread_s * rng.range(0, 1_000_000) as f64 / 1e6)
        .collect();
    times.sort_by(f64::total_cmp);
    let mut editable: Vec<_> = preload.iter().map(|u| u.entry).collect();
    let mut made: Vec<Update> = Vec::with_capacity(total);
    let began = Instant::now();
    let mut last_progress = Instant::now();
    for (k, (edit, at)) in edits.into_iter().zip(times).enumerate() {
        while secs(began.elapsed()) < at {
            updates::poll(nodes, &mut made)?;
            std::thread::sleep(Duration::from_millis(20));
        }
        let update = if edit && !editable.is_empty() {
            // As in the simulator, an edit is made on a node that holds the entry.
            let entry = editable[rng.range(0, editable.len() - 1)];
            let holders: Vec<usize> = (0..nodes.len())
                .filter(|&i| matches!(nodes[i].store.entry(&entry), Ok(Some(_))))
                .collect();
            let origin = holders[rng.range(0, holders.len() - 1)];
            Update::edit(nodes, origin, entry, options.seed, k as u64)?
        } else {
            let origin = rng.range(0, nodes.len() - 1);
            let i = u64::from(w.preload) + k as u64;
            Update::create(nodes, origin, collection, options.seed, i)?
        };
        if !update.edit {
            editable.push(update.entry);
        }
        made.push(update);
        if last_progress.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "  {:.0} s: {} updates made",
                secs(began.elapsed()),
                made.len()
            );
            last_progress = Instant::now();
        }
    }
    if let Err(e) = updates::wait_all_held(nodes, &mut made, options.timeout) {
        // An overloaded network is a result too: report what was held by then.
        eprintln!("  {e}; reporting what every node held by then");
    }
    Ok(made)
}

fn wires(nodes: &[LocalNode]) -> Result<Vec<Wire>> {
    nodes.iter().map(|node| measure::wire(node)).collect()
}

fn received(before: &[Wire], after: &[Wire]) -> u64 {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| a.received - b.received)
        .sum()
}

fn sent(before: &[Wire], after: &[Wire]) -> u64 {
    before.iter().zip(after).map(|(b, a)| a.sent - b.sent).sum()
}

/// The run's figures, in the simulator's terms.
struct Summary<'a> {
    options: &'a Options,
    updates: &'a [Update],
    /// Bytes all nodes received and sent from the first update to convergence.
    received: u64,
    sent: u64,
    /// Bytes received per node per second while idle.
    idle_received: f64,
    identical: bool,
    last_update_to_converged: Duration,
    rss_started: u64,
    rss_end: u64,
    peak: u64,
    /// CPU time of the whole process from the first update to convergence.
    cpu: Duration,
    wall: Duration,
}

impl Summary<'_> {
    fn mean(&self, of: impl Fn(&Update) -> Option<f64>) -> String {
        let values: Vec<f64> = self.updates.iter().filter_map(of).collect();
        match values.is_empty() {
            true => "—".into(),
            false => format!("{:.2}", values.iter().sum::<f64>() / values.len() as f64),
        }
    }

    fn print(&self) {
        let sc = &self.options.scenario;
        let n = sc.nodes as f64;
        let u = self.updates.len() as f64;
        let missed: usize = self
            .updates
            .iter()
            .map(|up| up.held_after.len() - up.holders())
            .sum();
        let text: usize = self.updates.iter().map(|up| up.text_bytes).sum();
        println!(
            "scenario {} seed {} nodes {}",
            sc.name, self.options.seed, sc.nodes
        );
        println!(
            "updates {} (missed node-updates {missed})",
            self.updates.len()
        );
        println!(
            "identical heads {}",
            if self.identical { "yes" } else { "NO" }
        );
        for fraction in [0.5, 0.99, 1.0] {
            let mean = self.mean(|up| up.time_to(fraction).map(secs));
            println!("t{:.0} mean (s) {mean}", fraction * 100.0);
        }
        let worst = self
            .updates
            .iter()
            .filter_map(|up| up.time_to(1.0))
            .max()
            .unwrap_or_default();
        println!("t100 max (s) {:.2}", secs(worst));
        for at in FRACTION_AT {
            let after = Duration::from_secs_f64(at);
            let mean = self.mean(|up| Some(100.0 * up.fraction_at(after)));
            println!("held after {at} s (% of nodes, mean) {mean}");
        }
        println!(
            "last update -> converged (s) {:.2}",
            secs(self.last_update_to_converged)
        );
        println!("mean text per update (B) {:.0}", text as f64 / u);
        println!("B recv / node / update {:.0}", self.received as f64 / n / u);
        println!("B sent / node / update {:.0}", self.sent as f64 / n / u);
        println!("idle B recv / node / s {:.0}", self.idle_received);
        println!(
            "RSS started {} ({} / node), end {}, peak {}",
            measure::mib(self.rss_started),
            measure::kb(self.rss_started / sc.nodes as u64),
            measure::mib(self.rss_end),
            measure::mib(self.peak)
        );
        println!(
            "CPU from first update to converged (s) {:.1}, per update per node (ms) {:.2}",
            secs(self.cpu),
            1000.0 * secs(self.cpu) / u / n
        );
        println!("wall time (s) {:.0}", secs(self.wall));
    }

    /// `updates.csv`: one row per update, as the simulator's.
    fn write(&self, dir: &std::path::Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut csv = std::fs::File::create(dir.join("updates.csv"))?;
        let fractions: Vec<String> = FRACTION_AT.iter().map(|at| format!("held_{at}s")).collect();
        writeln!(
            csv,
            "update,edit,origin,text_bytes,t50_s,t99_s,t100_s,holders,{}",
            fractions.join(",")
        )?;
        for (i, up) in self.updates.iter().enumerate() {
            let t = |f: f64| {
                up.time_to(f)
                    .map_or(String::new(), |d| format!("{:.3}", secs(d)))
            };
            let held: Vec<String> = FRACTION_AT
                .iter()
                .map(|at| format!("{:.3}", up.fraction_at(Duration::from_secs_f64(*at))))
                .collect();
            writeln!(
                csv,
                "{i},{},{},{},{},{},{},{},{}",
                up.edit,
                up.origin,
                up.text_bytes,
                t(0.5),
                t(0.99),
                t(1.0),
                up.holders(),
                held.join(",")
            )?;
        }
        eprintln!("wrote {}", dir.join("updates.csv").display());
        Ok(())
    }
}

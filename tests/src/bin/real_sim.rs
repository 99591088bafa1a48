//! `real_sim`: runs a simulator scenario's workload on whole nodes in one process, over
//! libp2p's memory transport, and reports what the simulator reports (how fast updates spread,
//! bytes per node per update, convergence), so the model can be checked against the node.
//!
//! Uses from the scenario: `nodes`, `seed`, `overlay.connections` (each node dials half as
//! many peers), the workload's `preload`, `entries`, `edits`, `start_s`, `spread_s`, and
//! `[[partitions]]` (`fraction`, `start_s`, `end_s`; one at a time, no `local_links`): at
//! `start_s` every node of the cut-off group blocks every node outside it and the reverse,
//! through the node's API, and at `end_s` unblocks them. Links are the memory transport's (no
//! latency, bandwidth limit or loss), or with `--links scenario` the scenario's latency and
//! uplinks (not its loss). `[churn]` (`fraction`, `mean_online_s`, `mean_offline_s`,
//! `until_s`) stops and restarts nodes on the simulator's schedule (`real_stack::churn`): a
//! node going offline is shut down cleanly and its store handle released, and comes back as
//! `node::run` on the same data dir, address and bootstrap list; updates are made only on
//! running nodes. Churn and partitions are not run together (a partition is made through the
//! API of every node).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use minga_simulations::Scenario;
use minga_tests::content::Rng;
use minga_tests::measure::{self, Wire, secs};
use minga_tests::procfs;
use minga_tests::real_stack::churn::{self, Absence, CatchUp};
use minga_tests::real_stack::partition::Split;
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
    ensure!(
        scenario.churn.is_none() || scenario.partitions.is_empty(),
        "churn and partitions are not run together on the real stack"
    );
    check_partitions(&scenario)?;
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

/// The partitions the real stack can make: one at a time (a node is on one side or the other)
/// and without `local_links` (the topology is fixed when the nodes start).
fn check_partitions(sc: &Scenario) -> Result<()> {
    let mut spans: Vec<(f64, f64)> = Vec::new();
    for p in &sc.partitions {
        ensure!(
            p.local_links == 0,
            "partitions with local_links are not run on the real stack"
        );
        ensure!(p.start_s < p.end_s, "a partition ends after it starts");
        ensure!(
            spans.iter().all(|&(s, e)| p.end_s <= s || e <= p.start_s),
            "overlapping partitions are not run on the real stack"
        );
        spans.push((p.start_s, p.end_s));
    }
    Ok(())
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
    let mut cluster = Cluster::start(&config)?;
    cluster.wait_connected(Duration::from_secs(120))?;
    let rss_started = procfs::rss(pid)?;
    eprintln!(
        "  started and connected in {:.1} s, RSS {}",
        secs(started.elapsed()),
        measure::mib(rss_started)
    );
    let collection = cluster.shared_collection(&sc.name)?;
    let nodes = &cluster.nodes;

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
    let mut run = run_workload(&options, &mut cluster, &collection, &preload)?;
    let nodes = &cluster.nodes;
    let converged_at = everywhere_at(&run.updates).unwrap_or_else(Instant::now);
    measure::settle();
    let after = wires(nodes)?;
    let cpu = procfs::cpu_time(pid)? - cpu_before;
    let touched: Vec<Update> = preload.iter().chain(&run.updates).cloned().collect();
    let differing = updates::differing_heads(nodes, &touched)?;
    let rss_end = procfs::rss(pid)?;
    let peak = procfs::peak_rss(pid)?;
    updates::poll(nodes, &mut run.updates)?;

    let heal = run.partitions.last_heal().map(|(at, wires)| Heal {
        first_crossed: first_crossed(&run).map(|t| t.saturating_duration_since(at)),
        to_converged: everywhere_at(&run.updates).map(|t| t.saturating_duration_since(at)),
        received: received(wires, &after),
    });
    let summary = Summary {
        options: &options,
        run: &run,
        received: received(&baseline, &after),
        sent: sent(&baseline, &after),
        idle_received,
        identical: differing.is_empty(),
        last_update_to_converged: converged_at.saturating_duration_since(
            run.updates
                .iter()
                .map(|u| u.made)
                .max()
                .unwrap_or(converged_at),
        ),
        heal,
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

/// When every node held every update (`None` while some node lacks one).
fn everywhere_at(updates: &[Update]) -> Option<Instant> {
    updates
        .iter()
        .map(Update::everywhere_at)
        .collect::<Option<Vec<_>>>()?
        .into_iter()
        .max()
}

/// When the first update made during a partition reached a node on the other side: after
/// the heal, the first sign that links across are back.
fn first_crossed(run: &Run) -> Option<Instant> {
    let p = &run.partitions;
    let crossings = run.updates.iter().zip(&run.during).flat_map(|(u, during)| {
        let held = u.held_after.iter().enumerate();
        held.filter_map(move |(node, t)| {
            let across = during.is_some_and(|d| p.splits[d].apart(u.origin, node));
            t.filter(|_| across).map(|t| u.made + t)
        })
    });
    crossings.min()
}

/// One thing the runner does at a time of the scenario.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// The scenario's `k`th update: an edit or a new entry.
    Update { k: usize, edit: bool },
    /// Partition `i` starts.
    Cut(usize),
    /// Partition `i` ends.
    Heal(usize),
    /// Node `i` goes offline.
    Down(usize),
    /// Node `i` comes back.
    Up(usize),
}

/// The scenario's steps in time order: its entries and edits at uniform random times over the
/// spread (like the simulator), and each partition's start and end. Answers the random stream
/// too, which goes on to pick the updates' nodes.
fn timeline(options: &Options) -> (Vec<(f64, Step)>, Rng) {
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
    let mut steps: Vec<(f64, Step)> = times
        .into_iter()
        .zip(edits)
        .enumerate()
        .map(|(k, (at, edit))| (at, Step::Update { k, edit }))
        .collect();
    for (i, p) in options.scenario.partitions.iter().enumerate() {
        steps.push((p.start_s, Step::Cut(i)));
        steps.push((p.end_s, Step::Heal(i)));
    }
    if let Some(c) = &options.scenario.churn {
        let nodes = options.scenario.nodes as usize;
        for spell in churn::schedule(nodes, c, options.seed) {
            steps.push((spell.down_s, Step::Down(spell.node)));
            steps.push((spell.up_s, Step::Up(spell.node)));
        }
    }
    // Stable: at equal times the updates go first, then the cuts and heals in order.
    steps.sort_by(|a, b| a.0.total_cmp(&b.0));
    (steps, rng)
}

/// The run's partitions: which nodes each cuts off, which is in force, and what was seen at
/// each heal.
struct Partitions {
    splits: Vec<Split>,
    active: Option<usize>,
    /// When each partition healed, and every node's byte counters then.
    healed: Vec<Option<(Instant, Vec<Wire>)>>,
    /// For each partition, the nodes left without a link on their own side.
    alone: Vec<Vec<usize>>,
}

impl Partitions {
    fn new(options: &Options) -> Partitions {
        let sc = &options.scenario;
        let splits: Vec<Split> = (sc.partitions.iter().enumerate())
            .map(|(i, p)| Split::seeded(sc.nodes as usize, p.fraction, options.seed, i))
            .collect();
        Partitions {
            healed: vec![None; splits.len()],
            alone: vec![Vec::new(); splits.len()],
            splits,
            active: None,
        }
    }

    /// Whether to poll `node` for `update` now: not across the partition in force.
    fn watch(&self, update: &Update, node: usize) -> bool {
        self.active
            .is_none_or(|p| !self.splits[p].apart(update.origin, node))
    }

    /// Whether an update made on `origin` while partition `p` was in force could reach `node`
    /// before the heal: on the same side, and not left alone there (any node if `p` is none).
    fn reachable(&self, p: Option<usize>, origin: usize, node: usize) -> bool {
        p.is_none_or(|p| !self.splits[p].apart(origin, node) && !self.alone[p].contains(&node))
    }

    /// Whether `node` was alone on its side of partition `p`.
    fn alone(&self, p: Option<usize>, node: usize) -> bool {
        p.is_some_and(|p| self.alone[p].contains(&node))
    }

    /// Cuts partition `i` and notes which nodes it leaves alone on their side.
    fn cut(&mut self, i: usize, nodes: &[LocalNode]) -> Result<()> {
        let started = Instant::now();
        self.splits[i].cut(nodes, Duration::from_secs(60))?;
        self.active = Some(i);
        self.alone[i] = self.splits[i].alone(nodes)?;
        eprintln!(
            "  partition {i}: {} of {} nodes cut off; no link crosses after {:.1} s",
            self.splits[i].cut_off(),
            nodes.len(),
            secs(started.elapsed())
        );
        Ok(())
    }

    /// Checks that the partition held (no link across, no update made during it on the other
    /// side), then unblocks. The heal's time is taken before the unblocking starts.
    fn heal(
        &mut self,
        i: usize,
        nodes: &[LocalNode],
        made: &mut [Update],
        during: &[Option<usize>],
    ) -> Result<()> {
        let split = &self.splits[i];
        let across = split.links_across(nodes)?;
        ensure!(
            across == 0,
            "partition {i}: {across} links crossed it before the heal"
        );
        updates::poll(nodes, made)?;
        let made_during = made.iter().zip(during).filter(|(_, d)| **d == Some(i));
        let leaks = split.leaks(made_during.map(|(u, _)| u));
        ensure!(
            leaks == 0,
            "partition {i}: {leaks} node-updates crossed it before the heal"
        );
        let at = Instant::now();
        self.healed[i] = Some((at, wires(nodes)?));
        split.heal(nodes)?;
        self.active = None;
        eprintln!(
            "  partition {i} healed (no link crossed it, no update leaked); unblocked in {:.1} s",
            secs(at.elapsed())
        );
        Ok(())
    }

    /// The last heal, if any.
    fn last_heal(&self) -> Option<(Instant, &[Wire])> {
        let healed = self.healed.iter().flatten();
        healed
            .max_by_key(|h| h.0)
            .map(|(at, wires)| (*at, wires.as_slice()))
    }
}

/// What the workload made, and the partitions it ran through.
struct Run {
    /// When the workload's clock started (the scenario's time 0).
    began: Instant,
    updates: Vec<Update>,
    /// For each update, the partition in force when it was made.
    during: Vec<Option<usize>>,
    partitions: Partitions,
    /// Every offline spell, in the order they began.
    absences: Vec<Absence>,
    /// How long each stop and each restart took (the call, not the reconnection).
    stopping: Vec<Duration>,
    starting: Vec<Duration>,
}

impl Run {
    /// Stops node `i` and notes when.
    fn down(&mut self, cluster: &mut Cluster, i: usize) -> Result<()> {
        let down = Instant::now();
        cluster.stop_node(i)?;
        self.stopping.push(down.elapsed());
        self.absences.push(Absence {
            node: i,
            down,
            up: None,
        });
        Ok(())
    }

    /// Starts node `i` again and notes when.
    fn up(&mut self, cluster: &mut Cluster, i: usize) -> Result<()> {
        let up = Instant::now();
        cluster.restart_node(i)?;
        self.starting.push(up.elapsed());
        let absence = self.absences.iter_mut().rev().find(|a| a.node == i);
        absence.context("a node back that never left")?.up = Some(up);
        Ok(())
    }
}

/// Makes the scenario's entries and edits on random nodes at their times (uniform over the
/// spread, like the simulator), its partitions and its churn, polling who holds what
/// meanwhile; then waits for convergence.
fn run_workload(
    options: &Options,
    cluster: &mut Cluster,
    collection: &str,
    preload: &[Update],
) -> Result<Run> {
    let (steps, mut rng) = timeline(options);
    let mut editable: Vec<_> = preload.iter().map(|u| u.entry).collect();
    let mut run = Run {
        began: Instant::now(),
        updates: Vec::new(),
        during: Vec::new(),
        partitions: Partitions::new(options),
        absences: Vec::new(),
        stopping: Vec::new(),
        starting: Vec::new(),
    };
    let began = run.began;
    let mut last_progress = Instant::now();
    for (at, step) in steps {
        let nodes = &cluster.nodes;
        while secs(began.elapsed()) < at {
            let p = &run.partitions;
            updates::poll_where(nodes, &mut run.updates, |u, i| p.watch(u, i))?;
            std::thread::sleep(Duration::from_millis(20));
        }
        let (k, edit) = match step {
            Step::Update { k, edit } => (k, edit),
            Step::Cut(i) => {
                run.partitions.cut(i, nodes)?;
                continue;
            }
            Step::Heal(i) => {
                run.partitions
                    .heal(i, nodes, &mut run.updates, &run.during)?;
                continue;
            }
            Step::Down(i) => {
                run.down(cluster, i)?;
                continue;
            }
            Step::Up(i) => {
                run.up(cluster, i)?;
                continue;
            }
        };
        let update = make_update(options, nodes, collection, &mut rng, &editable, k, edit)?;
        if !update.edit {
            editable.push(update.entry);
        }
        run.updates.push(update);
        run.during.push(run.partitions.active);
        if last_progress.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "  {:.0} s: {} updates made",
                secs(began.elapsed()),
                run.updates.len()
            );
            last_progress = Instant::now();
        }
    }
    if let Err(e) = updates::wait_all_held(&cluster.nodes, &mut run.updates, options.timeout) {
        // An overloaded network is a result too: report what was held by then.
        eprintln!("  {e}; reporting what every node held by then");
    }
    Ok(run)
}

/// Update `k`: an edit on a random running node holding a random existing entry (as in the
/// simulator), or a new entry on a random running node; an edit whose entry no running node
/// holds is made a new entry (the simulator skips it).
fn make_update(
    options: &Options,
    nodes: &[LocalNode],
    collection: &str,
    rng: &mut Rng,
    editable: &[minga_protocol::DocumentId],
    k: usize,
    edit: bool,
) -> Result<Update> {
    if edit && !editable.is_empty() {
        let entry = editable[rng.range(0, editable.len() - 1)];
        let holders: Vec<usize> = (0..nodes.len())
            .filter(|&i| matches!(nodes[i].store().map(|s| s.entry(&entry)), Ok(Ok(Some(_)))))
            .collect();
        if !holders.is_empty() {
            let origin = holders[rng.range(0, holders.len() - 1)];
            return Update::edit(nodes, origin, entry, options.seed, k as u64);
        }
    }
    let online: Vec<usize> = (0..nodes.len()).filter(|&i| nodes[i].online()).collect();
    let origin = online[rng.range(0, online.len() - 1)];
    let i = u64::from(options.scenario.workload.preload) + k as u64;
    Update::create(nodes, origin, collection, options.seed, i)
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

/// The last heal's figures.
struct Heal {
    /// From the heal until an update made during the partition first reached the other side.
    first_crossed: Option<Duration>,
    /// From the heal until every node held every update (`None` if they never did).
    to_converged: Option<Duration>,
    /// Bytes all nodes received from the heal to the end.
    received: u64,
}

/// The run's figures, in the simulator's terms.
struct Summary<'a> {
    options: &'a Options,
    run: &'a Run,
    /// Bytes all nodes received and sent from the first update to convergence.
    received: u64,
    sent: u64,
    /// Bytes received per node per second while idle.
    idle_received: f64,
    identical: bool,
    last_update_to_converged: Duration,
    heal: Option<Heal>,
    rss_started: u64,
    rss_end: u64,
    peak: u64,
    /// CPU time of the whole process from the first update to convergence.
    cpu: Duration,
    wall: Duration,
}

/// Which updates a block of figures covers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Made {
    /// While every link was up: spread over all nodes.
    Connected,
    /// During a partition: spread over the nodes of the origin's side it could reach.
    Apart,
    /// During a partition, on a node alone on its side: spread over all nodes (it left the
    /// node only after the heal).
    Alone,
}

impl Summary<'_> {
    /// The nodes an update's spread is measured over: its side while a partition was in force.
    fn side(&self, u: usize) -> impl Fn(usize) -> bool + '_ {
        let (origin, during) = (self.run.updates[u].origin, self.run.during[u]);
        let everywhere = self.made(u) == Made::Alone;
        move |node| everywhere || self.run.partitions.reachable(during, origin, node)
    }

    fn made(&self, u: usize) -> Made {
        let (origin, during) = (self.run.updates[u].origin, self.run.during[u]);
        match during {
            None => Made::Connected,
            Some(_) if self.run.partitions.alone(during, origin) => Made::Alone,
            Some(_) => Made::Apart,
        }
    }

    /// The mean over the updates `made` so, `—` if none.
    fn mean(&self, made: Made, of: impl Fn(usize) -> Option<f64>) -> String {
        let values: Vec<f64> = (0..self.run.updates.len())
            .filter(|&u| self.made(u) == made)
            .filter_map(of)
            .collect();
        mean_of(&values)
    }

    /// Percent of the nodes `side` picks holding update `u` `after` it was made.
    fn percent_at(&self, u: usize, after: Duration) -> f64 {
        let side = self.side(u);
        let held = &self.run.updates[u].held_after;
        let among: Vec<_> = (0..held.len()).filter(|&i| side(i)).collect();
        let within = among
            .iter()
            .filter(|&&i| held[i].is_some_and(|t| t <= after));
        100.0 * within.count() as f64 / among.len() as f64
    }

    fn print_spread(&self, made: Made) {
        let updates = &self.run.updates;
        let count = (0..updates.len()).filter(|&u| self.made(u) == made).count();
        match made {
            Made::Connected => {
                println!("updates made with every link up {count} (spread over all nodes)")
            }
            Made::Apart => println!(
                "updates made during a partition {count} (spread over the nodes of the origin's side that had a link there; the rest got them after the heal)"
            ),
            Made::Alone => println!(
                "updates made during a partition on a node alone on its side {count} (spread over all nodes: they left that node only after the heal)"
            ),
        }
        if count == 0 {
            return;
        }
        for fraction in [0.5, 0.99, 1.0] {
            let mean = self.mean(made, |u| {
                updates[u].time_to_among(fraction, self.side(u)).map(secs)
            });
            println!("  t{:.0} mean (s) {mean}", fraction * 100.0);
        }
        let worst = (0..updates.len())
            .filter(|&u| self.made(u) == made)
            .filter_map(|u| updates[u].time_to_among(1.0, self.side(u)))
            .max()
            .unwrap_or_default();
        println!("  t100 max (s) {:.2}", secs(worst));
        if made != Made::Connected {
            let after_heal = self.mean(made, |u| self.heal_to_everywhere(u));
            println!("  heal -> every node held it, mean (s) {after_heal}");
        }
        for at in FRACTION_AT {
            let after = Duration::from_secs_f64(at);
            let mean = self.mean(made, |u| Some(self.percent_at(u, after)));
            println!("  held after {at} s (% of those nodes, mean) {mean}");
        }
    }

    fn print_heal(&self, heal: &Heal) {
        let sc = &self.options.scenario;
        let period = sc.sync.reconcile_s;
        if let Some(t) = heal.first_crossed {
            println!(
                "heal -> first update across (s) {:.2} (the nodes redial their bootstrap peers with a backoff of up to 30 s)",
                secs(t)
            );
        }
        match heal.to_converged {
            Some(t) => println!(
                "heal -> every node held every update (s) {:.2} ({:.2} reconciliation periods of {period} s; goal <= 3)",
                secs(t),
                secs(t) / period
            ),
            None => println!("heal -> every node held every update: NOT within the timeout"),
        }
        println!(
            "partition checks: no link crossed it and no update made during it reached the other side before the heal"
        );
        println!(
            "B recv / node from the heal to the end {:.0}",
            heal.received as f64 / f64::from(sc.nodes)
        );
    }

    fn print(&self) {
        let sc = &self.options.scenario;
        let n = sc.nodes as f64;
        let updates = &self.run.updates;
        let u = updates.len() as f64;
        let missed: usize = updates
            .iter()
            .map(|up| up.held_after.len() - up.holders())
            .sum();
        let text: usize = updates.iter().map(|up| up.text_bytes).sum();
        println!(
            "scenario {} seed {} nodes {}",
            sc.name, self.options.seed, sc.nodes
        );
        for (i, p) in sc.partitions.iter().enumerate() {
            println!(
                "partition {i}: {} of {} nodes cut off from {} s to {} s (every node of each side blocks every node of the other through the API)",
                self.run.partitions.splits[i].cut_off(),
                sc.nodes,
                p.start_s,
                p.end_s
            );
            println!(
                "  nodes left without a link on their own side (alone until the heal): {:?}",
                self.run.partitions.alone[i]
            );
        }
        println!("updates {} (missed node-updates {missed})", updates.len());
        println!(
            "identical heads {}",
            if self.identical { "yes" } else { "NO" }
        );
        self.print_spread(Made::Connected);
        if !sc.partitions.is_empty() {
            self.print_spread(Made::Apart);
            self.print_spread(Made::Alone);
        }
        if let Some(heal) = &self.heal {
            self.print_heal(heal);
        }
        if let Some(churn) = &sc.churn {
            self.print_churn(churn);
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

    fn print_churn(&self, churn: &minga_simulations::scenario::Churn) {
        let run = self.run;
        let mut churned: Vec<usize> = run.absences.iter().map(|a| a.node).collect();
        churned.sort_unstable();
        churned.dedup();
        println!(
            "churn: {} nodes ({} of {}), {} offline spells until {} s (online / offline means {} s / {} s); a spell is a clean stop and a restart on the same data dir",
            churned.len(),
            churn.fraction,
            self.options.scenario.nodes,
            run.absences.len(),
            churn.until_s,
            churn.mean_online_s,
            churn.mean_offline_s
        );
        let away: Vec<f64> = (run.absences.iter())
            .filter_map(|a| a.up.map(|up| secs(up - a.down)))
            .collect();
        println!("  offline (s) mean {}", mean_of(&away));
        let calls = |d: &[Duration]| mean_of(&d.iter().map(|d| secs(*d)).collect::<Vec<_>>());
        println!(
            "  stop call (s) mean {}, restart call (s) mean {}",
            calls(&run.stopping),
            calls(&run.starting)
        );
        let catch_ups: Vec<CatchUp> = (run.absences.iter())
            .map(|a| a.catch_up(&run.updates))
            .collect();
        let after: Vec<f64> = (catch_ups.iter())
            .filter_map(|c| match c {
                CatchUp::After(d) => Some(secs(*d)),
                _ => None,
            })
            .collect();
        let count = |want: CatchUp| catch_ups.iter().filter(|c| **c == want).count();
        println!(
            "  returns with updates made while away {} (none made during {}; never caught up {})",
            after.len(),
            count(CatchUp::Nothing),
            count(CatchUp::Not)
        );
        let worst = after.iter().copied().fold(0.0, f64::max);
        println!(
            "  restart -> held every update made while away (s) mean {}, max {worst:.2}",
            mean_of(&after)
        );
        let missed: Vec<f64> = (run.absences.iter())
            .map(|a| run.updates.iter().filter(|u| a.missed(u)).count() as f64)
            .collect();
        println!("  updates made during a spell, mean {}", mean_of(&missed));
    }

    /// Seconds from the heal of the partition update `u` was made in until every node held
    /// it; `None` for an update made with every link up, or never held everywhere.
    fn heal_to_everywhere(&self, u: usize) -> Option<f64> {
        let (at, _) = self.run.during[u].and_then(|p| self.run.partitions.healed[p].as_ref())?;
        let everywhere = self.run.updates[u].everywhere_at()?;
        Some(secs(everywhere.saturating_duration_since(*at)))
    }

    /// `updates.csv`: one row per update, as the simulator's. The times and fractions are over
    /// the nodes `spread_over` says: `side` for an update made during a partition (`partition`
    /// names it; the nodes of the origin's side that had a link there), `all` otherwise;
    /// `everywhere_s` is when the last node of all held it, after it was made;
    /// `heal_to_everywhere_s` the same from the heal, for an update made during a partition.
    fn write(&self, dir: &std::path::Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut csv = std::fs::File::create(dir.join("updates.csv"))?;
        let fractions: Vec<String> = FRACTION_AT.iter().map(|at| format!("held_{at}s")).collect();
        writeln!(
            csv,
            "update,made_s,edit,origin,partition,spread_over,text_bytes,t50_s,t99_s,t100_s,everywhere_s,heal_to_everywhere_s,holders,{}",
            fractions.join(",")
        )?;
        for (i, up) in self.run.updates.iter().enumerate() {
            let t = |f: f64| {
                up.time_to_among(f, self.side(i))
                    .map_or(String::new(), |d| format!("{:.3}", secs(d)))
            };
            let held: Vec<String> = FRACTION_AT
                .iter()
                .map(|at| {
                    format!(
                        "{:.3}",
                        self.percent_at(i, Duration::from_secs_f64(*at)) / 100.0
                    )
                })
                .collect();
            writeln!(
                csv,
                "{i},{:.3},{},{},{},{},{},{},{},{},{},{},{},{}",
                secs(up.made - self.run.began),
                up.edit,
                up.origin,
                self.run.during[i].map_or(String::new(), |p| p.to_string()),
                match self.made(i) {
                    Made::Apart => "side",
                    Made::Connected | Made::Alone => "all",
                },
                up.text_bytes,
                t(0.5),
                t(0.99),
                t(1.0),
                t_all(up),
                self.heal_to_everywhere(i)
                    .map_or(String::new(), |t| format!("{t:.3}")),
                up.holders(),
                held.join(",")
            )?;
        }
        eprintln!("wrote {}", dir.join("updates.csv").display());
        Ok(())
    }
}

/// The mean, to two decimals, `—` if there is nothing.
fn mean_of(values: &[f64]) -> String {
    match values.is_empty() {
        true => "—".into(),
        false => format!("{:.2}", values.iter().sum::<f64>() / values.len() as f64),
    }
}

/// Seconds from an update until the last node held it, empty if some node never did.
fn t_all(update: &Update) -> String {
    update
        .time_to(1.0)
        .map_or(String::new(), |d| format!("{:.3}", secs(d)))
}

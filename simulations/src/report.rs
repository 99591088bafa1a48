//! What a run found, derived from its metrics once it ends: a summary (the same text for the
//! same seed and scenario, bit for bit), a CSV row per update, a CSV row per node, and the
//! figures `docs/simulations.md` tabulates.

use std::fmt::Write as _;
use std::path::Path;

use crate::doc::SimDoc;
use crate::metrics::{Class, NEVER, NO_HOPS, UpdateStats, time_to_fraction};
use crate::sim::Sim;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("writing {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("drawing {path}: {message}")]
    Plot { path: String, message: String },
}

/// One update's spread.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateRow {
    pub doc: u32,
    pub edit: bool,
    pub size: u64,
    pub origin: u32,
    pub made_s: f64,
    /// Seconds after it was made until 50%, 99% and all nodes held it.
    pub t50: Option<f64>,
    pub t99: Option<f64>,
    pub t100: Option<f64>,
    pub holders: u32,
    pub max_hops: u8,
    pub duplicates: u64,
}

/// The figures of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    pub nodes: u32,
    pub doc: &'static str,
    pub duration_s: f64,
    pub reconcile_s: f64,
    pub updates: Vec<UpdateRow>,
    pub skipped_updates: u64,
    /// Pairs (honest node online at the end, update) not held at the end.
    pub missed: u64,
    pub identical_heads: bool,
    pub mean_update_bytes: f64,
    /// Bytes received per node per update, in total and by class.
    pub received_per_node_update: f64,
    pub class_per_node_update: [f64; 4],
    pub duplicate_announcements_per_node_update: f64,
    pub duplicate_changes_per_node_update: f64,
    /// Hops of every (node, update) held, the origin excluded.
    pub hop_histogram: Vec<u64>,
    pub within_10_hops: f64,
    pub hops_p99: u8,
    /// Seconds from the last heal until every node held every update; `None` if never.
    pub heal_convergence_s: Option<f64>,
    pub healed: bool,
    pub invalid_stored: u64,
    pub rejected: Vec<(String, u64)>,
    pub dropped_peers: u64,
    pub missing_dependencies: u64,
    /// Documents pulled from change-log listings on reconnecting, and listings that waited
    /// for a pull of the same document from another peer.
    pub listed_pulls: u64,
    pub listings_waited: u64,
    pub bundle_bytes: u64,
    /// Updates the bundle brought into the cut-off region, and the seconds from its import
    /// until every node of the region held them (`None`: not before the run ended).
    pub bundle_updates: usize,
    pub bundle_spread_s: Option<f64>,
    pub messages: u64,
    pub lost: u64,
    pub events: u64,
    pub versions: usize,
    pub bytes_sent: Vec<u64>,
    pub bytes_received: Vec<u64>,
    pub hostile: Vec<bool>,
    /// Mean fraction of nodes holding an update, by seconds since it was made.
    pub spread: Vec<(f64, f64)>,
}

/// The time after `made` by which `fraction` of the honest nodes held the update.
fn time_to(held: &[u32], honest: &[bool], made_ms: u64, fraction: f64) -> Option<f64> {
    let n = honest.iter().filter(|h| **h).count();
    let times: Vec<u32> = held
        .iter()
        .zip(honest)
        .filter(|(t, h)| **h && **t != NEVER)
        .map(|(t, _)| *t)
        .collect();
    let at = time_to_fraction(times, n, fraction)?;
    Some((u64::from(at).saturating_sub(made_ms)) as f64 / 1000.0)
}

fn row(u: &UpdateStats, honest: &[bool]) -> UpdateRow {
    let made_ms = u.made_at / 1000;
    UpdateRow {
        doc: u.doc,
        edit: u.edit,
        size: u.size,
        origin: u.origin,
        made_s: u.made_at as f64 / 1e6,
        t50: time_to(&u.held_ms, honest, made_ms, 0.5),
        t99: time_to(&u.held_ms, honest, made_ms, 0.99),
        t100: time_to(&u.held_ms, honest, made_ms, 1.0),
        holders: u.held_ms.iter().filter(|t| **t != NEVER).count() as u32,
        max_hops: u
            .hops
            .iter()
            .copied()
            .filter(|h| *h != NO_HOPS)
            .max()
            .unwrap_or(0),
        duplicates: u.duplicates,
    }
}

impl Report {
    pub fn of<D: SimDoc>(sim: &Sim<D>) -> Self {
        let m = &sim.metrics;
        let n = sim.scenario.nodes as usize;
        // Hostile nodes are dropped by their peers and miss updates: figures count honest ones.
        let honest: Vec<bool> = (0..n as u32).map(|i| !sim.is_hostile(i)).collect();
        let updates: Vec<UpdateRow> = m.updates.iter().map(|u| row(u, &honest)).collect();
        let count = updates.len().max(1) as f64;
        let per = (n as f64) * count;
        let received: u64 = m.received.iter().sum();
        let mut hop_histogram = vec![0u64; 64];
        for u in &m.updates {
            for &h in &u.hops {
                if h != NO_HOPS && h > 0 {
                    hop_histogram[usize::from(h).min(63)] += 1;
                }
            }
        }
        while hop_histogram.len() > 1 && hop_histogram.last() == Some(&0) {
            hop_histogram.pop();
        }
        let total_hops: u64 = hop_histogram.iter().sum();
        let within: u64 = hop_histogram.iter().take(11).sum();
        let mut cumulative = 0;
        let p99 = hop_histogram
            .iter()
            .position(|c| {
                cumulative += c;
                cumulative as f64 >= 0.99 * total_hops as f64
            })
            .unwrap_or(0) as u8;
        let missed = m
            .updates
            .iter()
            .map(|u| {
                (0..n)
                    .filter(|i| honest[*i] && sim.net.online[*i] && u.held_ms[*i] == NEVER)
                    .count() as u64
            })
            .sum();
        let heal_convergence_s = sim.healed_at.and_then(|healed| {
            let healed_ms = healed / 1000;
            let mut last = healed_ms;
            for u in &m.updates {
                for (&t, _) in u.held_ms.iter().zip(&honest).filter(|(_, h)| **h) {
                    if t == NEVER {
                        return None;
                    }
                    last = last.max(u64::from(t));
                }
            }
            Some((last - healed_ms) as f64 / 1000.0)
        });
        let duplicates: u64 = m.updates.iter().map(|u| u.duplicates).sum();
        Report {
            scenario: sim.scenario.name.clone(),
            seed: sim.seed,
            nodes: sim.scenario.nodes,
            doc: D::NAME,
            duration_s: sim.scenario.duration_s,
            reconcile_s: sim.scenario.sync.reconcile_s,
            spread: spread(&m.updates, n, sim.scenario.duration_s),
            skipped_updates: m.skipped_updates,
            missed,
            identical_heads: sim.identical_heads(),
            mean_update_bytes: m.updates.iter().map(|u| u.size as f64).sum::<f64>() / count,
            received_per_node_update: received as f64 / per,
            class_per_node_update: [Class::Gossip, Class::Reconcile, Class::Sync, Class::Attack]
                .map(|c| m.traffic[c as usize] as f64 / per),
            duplicate_announcements_per_node_update: m.duplicate_announcements as f64 / per,
            duplicate_changes_per_node_update: duplicates as f64 / per,
            within_10_hops: if total_hops == 0 {
                1.0
            } else {
                within as f64 / total_hops as f64
            },
            hops_p99: p99,
            hop_histogram,
            heal_convergence_s,
            healed: sim.healed_at.is_some(),
            invalid_stored: m.invalid_stored,
            rejected: m
                .rejected
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            dropped_peers: m.dropped_peers,
            missing_dependencies: m.missing_dependencies,
            listed_pulls: m.listed_pulls,
            listings_waited: m.listings_waited,
            bundle_bytes: m.bundle_bytes,
            bundle_updates: m.bundle.as_ref().map_or(0, |(_, u)| u.len()),
            bundle_spread_s: m.bundle.as_ref().and_then(|(at, carried)| {
                let at_ms = at / 1000;
                let mut last = at_ms;
                for &u in carried {
                    let held = &m.updates[u as usize].held_ms;
                    for i in (0..n).filter(|i| sim.net.in_group(*i as u32, 0) && honest[*i]) {
                        if held[i] == NEVER {
                            return None;
                        }
                        last = last.max(u64::from(held[i]));
                    }
                }
                Some((last - at_ms) as f64 / 1000.0)
            }),
            messages: m.messages,
            lost: m.lost,
            events: m.events,
            versions: sim.versions(),
            bytes_sent: m.sent.clone(),
            bytes_received: m.received.clone(),
            hostile: (0..n as u32).map(|i| sim.is_hostile(i)).collect(),
            updates,
        }
    }

    /// Mean of an optional per-update time, over the updates that reached it.
    fn mean(&self, pick: impl Fn(&UpdateRow) -> Option<f64>) -> Option<f64> {
        let times: Vec<f64> = self.updates.iter().filter_map(pick).collect();
        (!times.is_empty()).then(|| times.iter().sum::<f64>() / times.len() as f64)
    }

    fn reached(&self, pick: impl Fn(&UpdateRow) -> Option<f64>) -> usize {
        self.updates.iter().filter(|u| pick(u).is_some()).count()
    }

    /// The summary, printed after every run.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let opt = |v: Option<f64>| v.map_or("never".to_string(), |v| format!("{v:.2} s"));
        let _ = writeln!(s, "scenario {} — seed {}", self.scenario, self.seed);
        let _ = writeln!(
            s,
            "nodes {}, documents {}, {} simulated seconds, {} events, {} messages ({} lost)",
            self.nodes, self.doc, self.duration_s, self.events, self.messages, self.lost
        );
        let _ = writeln!(
            s,
            "updates {} (skipped {}), mean size {:.0} B",
            self.updates.len(),
            self.skipped_updates,
            self.mean_update_bytes
        );
        let _ = writeln!(
            s,
            "missed at the end by online nodes: {}; identical heads everywhere: {}",
            self.missed, self.identical_heads
        );
        let _ = writeln!(
            s,
            "time to 50% / 99% / 100% of nodes (mean): {} / {} / {} ({} of {} updates reached all)",
            opt(self.mean(|u| u.t50)),
            opt(self.mean(|u| u.t99)),
            opt(self.mean(|u| u.t100)),
            self.reached(|u| u.t100),
            self.updates.len()
        );
        let _ = writeln!(
            s,
            "hops: p99 {}, max {}, within 10 hops {:.2}%",
            self.hops_p99,
            self.hop_histogram.len().saturating_sub(1),
            100.0 * self.within_10_hops
        );
        let [gossip, rec, sync, attack] = self.class_per_node_update;
        let _ = writeln!(
            s,
            "bytes received per node per update: {:.0} (gossip {:.0}, reconciliation {:.0}, sync {:.0}, attacks {:.0}); goal ≤ {:.0}",
            self.received_per_node_update,
            gossip,
            rec,
            sync,
            attack,
            1.2 * self.mean_update_bytes + 1024.0
        );
        let _ = writeln!(
            s,
            "duplicates per node per update: announcements {:.2}, changes {:.3}",
            self.duplicate_announcements_per_node_update, self.duplicate_changes_per_node_update
        );
        if self.healed {
            let periods = self.heal_convergence_s.map(|t| t / self.reconcile_s);
            let _ = writeln!(
                s,
                "convergence after the heal: {} ({} reconciliation periods)",
                opt(self.heal_convergence_s),
                periods.map_or("-".into(), |p| format!("{p:.2}"))
            );
        }
        if self.listed_pulls + self.listings_waited > 0 {
            let _ = writeln!(
                s,
                "catch-up on reconnecting: {} documents pulled from change-log listings, {} listings waited for a pull from another peer",
                self.listed_pulls, self.listings_waited
            );
        }
        if self.bundle_bytes > 0 {
            let _ = writeln!(
                s,
                "bundle imported: {} B, {} updates new to the region, all its nodes held them {} after the import",
                self.bundle_bytes,
                self.bundle_updates,
                opt(self.bundle_spread_s)
            );
        }
        let _ = writeln!(
            s,
            "invalid changes stored: {}; peers dropped: {}; payloads short of lost dependencies: {}",
            self.invalid_stored, self.dropped_peers, self.missing_dependencies
        );
        for (reason, count) in &self.rejected {
            let _ = writeln!(s, "  refused ({reason}): {count}");
        }
        let _ = writeln!(s, "document versions held in memory: {}", self.versions);
        s
    }

    pub fn updates_csv(&self) -> String {
        let mut s = String::from(
            "update,doc,edit,size_bytes,origin,made_s,t50_s,t99_s,t100_s,holders,max_hops,duplicates\n",
        );
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.3}"));
        for (i, u) in self.updates.iter().enumerate() {
            let _ = writeln!(
                s,
                "{i},{},{},{},{},{:.3},{},{},{},{},{},{}",
                u.doc,
                u.edit,
                u.size,
                u.origin,
                u.made_s,
                opt(u.t50),
                opt(u.t99),
                opt(u.t100),
                u.holders,
                u.max_hops,
                u.duplicates
            );
        }
        s
    }

    pub fn nodes_csv(&self) -> String {
        let mut s = String::from("node,hostile,bytes_sent,bytes_received\n");
        for i in 0..self.bytes_sent.len() {
            let _ = writeln!(
                s,
                "{i},{},{},{}",
                self.hostile[i], self.bytes_sent[i], self.bytes_received[i]
            );
        }
        s
    }

    /// Writes the summary, both CSVs and the plots into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), ReportError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| ReportError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        for (name, text) in [
            ("summary.txt", self.summary()),
            ("updates.csv", self.updates_csv()),
            ("nodes.csv", self.nodes_csv()),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(io(&path))?;
        }
        crate::plot::all(self, dir)
    }
}

/// Mean fraction of nodes holding an update, sampled over the seconds after it was made.
fn spread(updates: &[UpdateStats], n: usize, duration_s: f64) -> Vec<(f64, f64)> {
    if updates.is_empty() {
        return Vec::new();
    }
    let horizon_ms = updates
        .iter()
        .flat_map(|u| {
            let made = u.made_at / 1000;
            u.held_ms
                .iter()
                .filter(|t| **t != NEVER)
                .map(move |t| u64::from(*t).saturating_sub(made))
        })
        .max()
        .unwrap_or(0)
        .clamp(1000, (duration_s * 1000.0) as u64);
    let steps = 200u64;
    let mut sorted: Vec<(u64, Vec<u64>)> = updates
        .iter()
        .map(|u| {
            let made = u.made_at / 1000;
            let mut t: Vec<u64> = u
                .held_ms
                .iter()
                .filter(|t| **t != NEVER)
                .map(|t| u64::from(*t).saturating_sub(made))
                .collect();
            t.sort_unstable();
            (made, t)
        })
        .collect();
    sorted.sort_by_key(|(made, _)| *made);
    (0..=steps)
        .map(|i| {
            let at = horizon_ms * i / steps;
            let mean = sorted
                .iter()
                .map(|(_, t)| t.partition_point(|x| *x <= at) as f64 / n as f64)
                .sum::<f64>()
                / sorted.len() as f64;
            (at as f64 / 1000.0, mean)
        })
        .collect()
}

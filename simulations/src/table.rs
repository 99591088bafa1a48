//! The summary table of `docs/simulations.md`: rewritten between two marker lines, so the
//! prose around it stays as written.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use minga_simulations::Report;

const BEGIN: &str = "<!-- BEGIN GENERATED TABLE -->";
const END: &str = "<!-- END GENERATED TABLE -->";

fn secs(v: Option<f64>) -> String {
    v.map_or("never".into(), |v| format!("{v:.1}"))
}

fn mean(
    report: &Report,
    pick: impl Fn(&minga_simulations::report::UpdateRow) -> Option<f64>,
) -> Option<f64> {
    let v: Vec<f64> = report.updates.iter().filter_map(pick).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

pub fn table(reports: &[Report]) -> String {
    let mut s = String::from(
        "| scenario | seed | nodes | docs | updates | missed | identical heads | t99 mean (s) | t100 mean (s) | hops p99 | ≤ 10 hops | B recv / node / update | goal B | dup ann. / node / update | heal → converged (s) | bundle → region (s) | invalid stored | refused |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        let refused: u64 = r.rejected.iter().map(|(_, c)| c).sum();
        let heal = if r.healed {
            match r.heal_convergence_s {
                Some(t) => format!("{t:.1} ({:.2} periods)", t / r.reconcile_s),
                None => "never".into(),
            }
        } else {
            "—".into()
        };
        let bundle = if r.bundle_bytes > 0 {
            format!("{} ({} updates)", secs(r.bundle_spread_s), r.bundle_updates)
        } else {
            "—".into()
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1}% | {:.0} | {:.0} | {:.2} | {} | {} | {} | {} |",
            r.scenario,
            r.seed,
            r.nodes,
            r.doc,
            r.updates.len(),
            r.missed,
            if r.identical_heads { "yes" } else { "no" },
            secs(mean(r, |u| u.t99)),
            secs(mean(r, |u| u.t100)),
            r.hops_p99,
            100.0 * r.within_10_hops,
            r.received_per_node_update,
            1.2 * r.mean_update_bytes + 1024.0,
            r.duplicate_announcements_per_node_update,
            heal,
            bundle,
            r.invalid_stored,
            refused
        );
    }
    s
}

/// Replaces the table between the markers of `doc`.
pub fn rewrite(doc: &Path, reports: &[Report]) -> Result<()> {
    let text =
        std::fs::read_to_string(doc).with_context(|| format!("reading {}", doc.display()))?;
    let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        bail!("{} lacks the lines {BEGIN} and {END}", doc.display());
    };
    let mut out = String::new();
    out.push_str(&text[..begin + BEGIN.len()]);
    out.push('\n');
    out.push_str(&table(reports));
    out.push_str(&text[end..]);
    std::fs::write(doc, out).with_context(|| format!("writing {}", doc.display()))
}

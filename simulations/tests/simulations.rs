//! Fast checks of the simulator on shrunken versions of the shipped scenarios (seconds each in
//! a debug build): runs are reproducible from their seed, honest replicas converge to identical
//! heads, and hostile bytes never get stored.

use std::path::Path;

use minga_simulations::{Report, Scenario, run};

/// A shipped scenario, shrunk so a debug build runs it in seconds.
fn small(name: &str, nodes: u32) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    let mut scenario = Scenario::load(&path).expect("shipped scenarios load");
    scenario.nodes = nodes;
    scenario.overlay.connections = scenario.overlay.connections.min(nodes - 1);
    scenario.workload.preload = 4;
    scenario.workload.entries = 4;
    scenario.workload.edits = 6;
    scenario
}

fn check_converged(report: &Report) {
    assert!(report.updates.len() >= 8, "{}", report.summary());
    assert_eq!(report.missed, 0, "{}", report.summary());
    assert!(report.identical_heads, "{}", report.summary());
    assert_eq!(report.invalid_stored, 0, "{}", report.summary());
}

#[test]
fn one_seed_gives_one_report_and_another_seed_another() {
    let scenario = small("village-lan", 10);
    let first = run(&scenario, 11);
    let again = run(&scenario, 11);
    assert_eq!(first, again);
    assert_eq!(first.summary(), again.summary());
    assert_eq!(first.updates_csv(), again.updates_csv());
    assert!(first.summary().contains("seed 11"));
    let other = run(&scenario, 12);
    assert_ne!(first.updates_csv(), other.updates_csv());
}

#[test]
fn village_lan_converges_to_identical_heads() {
    check_converged(&run(&small("village-lan", 12), 1));
}

#[test]
fn partition_heal_converges_to_identical_heads() {
    let report = run(&small("partition-heal", 12), 2);
    check_converged(&report);
    assert!(report.healed);
    assert!(report.heal_convergence_s.is_some(), "{}", report.summary());
}

#[test]
fn hostile_nodes_get_nothing_stored() {
    let mut scenario = small("hostile", 20);
    // One hostile node in twenty, attacking often.
    scenario.hostile.as_mut().expect("hostile").attack_every_s = 2.0;
    let report = run(&scenario, 3);
    assert_eq!(report.invalid_stored, 0, "{}", report.summary());
    let refused: u64 = report.rejected.iter().map(|(_, c)| c).sum();
    assert!(
        refused > 0,
        "the hostile node attacked: {}",
        report.summary()
    );
    assert!(report.identical_heads, "{}", report.summary());
}

#[test]
fn the_model_document_runs_the_same_exchange() {
    let mut scenario = small("partition-heal", 16);
    scenario.doc = minga_simulations::DocChoice::Model;
    check_converged(&run(&scenario, 7));
}

#[test]
fn nodes_back_online_catch_up_from_change_logs_one_peer_per_document() {
    let mut scenario = small("province", 20);
    scenario.doc = minga_simulations::DocChoice::Model;
    scenario.duration_s = 600.0;
    scenario.workload.spread_s = 300.0;
    let churn = scenario.churn.as_mut().expect("province churns");
    churn.fraction = 0.3;
    churn.until_s = 400.0;
    let report = run(&scenario, 5);
    check_converged(&report);
    assert!(report.listed_pulls > 0, "{}", report.summary());
    assert!(report.listings_waited > 0, "{}", report.summary());
}

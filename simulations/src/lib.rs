//! Seeded, reproducible simulations of Minga's protocol core over a modelled network: the real
//! reconciliation, sync and verification code of `minga-protocol` runs on every simulated
//! node, messages are the real wire messages, and only the network (latency, bandwidth, loss,
//! churn, partitions), the gossip overlay and time are simulated.
//!
//! A run is [`run`]`(scenario, seed)`: the same pair gives the same [`Report`], bit for bit.

pub mod doc;
pub mod gossip;
pub mod metrics;
pub mod net;
mod plot;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod sim;

use minga_protocol::model::ModelDoc;
use minga_protocol::sync::SignedDoc;

pub use report::{Report, ReportError};
pub use scenario::{DocChoice, Scenario, ScenarioError};

/// Runs `scenario` with `seed` to its end and reports what happened.
pub fn run(scenario: &Scenario, seed: u64) -> Report {
    match scenario.doc {
        DocChoice::Automerge => run_with::<SignedDoc>(scenario, seed),
        DocChoice::Model => run_with::<ModelDoc>(scenario, seed),
    }
}

fn run_with<D: doc::SimDoc>(scenario: &Scenario, seed: u64) -> Report {
    let mut sim = sim::Sim::<D>::new(scenario.clone(), seed);
    sim.run();
    Report::of(&sim)
}

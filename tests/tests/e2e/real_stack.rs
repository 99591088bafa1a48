//! Whole nodes in this process over libp2p's memory transport (the seam the real-stack
//! simulations use), on modelled village links (a few milliseconds of latency, paced
//! uplinks): every node ends with the same heads of every entry written anywhere.

use std::time::Duration;

use minga_simulations::scenario::Links;
use minga_tests::real_stack::updates::{self, Update};
use minga_tests::real_stack::{Cluster, ClusterConfig};

#[test]
fn ten_nodes_over_the_memory_transport_converge_to_identical_heads() {
    let seed = 11;
    let config = ClusterConfig {
        links: Some(Links {
            latency_ms: [1.0, 8.0],
            uplink_kbps: 20_000.0,
            loss: 0.0,
        }),
        ..ClusterConfig::new(10, 2, seed)
    };
    let cluster = Cluster::start(&config).expect("starting 10 nodes");
    cluster
        .wait_connected(Duration::from_secs(60))
        .expect("every node connected");
    let nodes = &cluster.nodes;
    let collection = cluster.shared_collection("memoria").expect("a collection");
    let mut made = Vec::new();
    for i in 0..5 {
        let origin = (i * 3) % nodes.len();
        made.push(Update::create(nodes, origin, &collection, seed, i as u64).expect("an entry"));
    }
    // Edits on other nodes, each after the entry reached it.
    updates::wait_all_held(nodes, &mut made, Duration::from_secs(180)).expect("entries spread");
    for k in 0..5 {
        let entry = made[k].entry;
        let origin = (k * 7 + 1) % nodes.len();
        made.push(Update::edit(nodes, origin, entry, seed, k as u64).expect("an edit"));
    }
    updates::wait_all_held(nodes, &mut made, Duration::from_secs(180)).expect("edits spread");
    let differing = updates::differing_heads(nodes, &made).expect("reading heads");
    assert!(differing.is_empty(), "heads differ for {differing:?}");
    cluster.stop().expect("every node stops cleanly");
}

//! Whole nodes in this process over libp2p's memory transport (the seam the real-stack
//! simulations use): every node ends with the same heads of every entry written anywhere, on
//! modelled village links (a few milliseconds of latency, paced uplinks), after a partition
//! made through the nodes' own API heals, and after a node stopped and started again on its
//! data dir catches up.

use std::time::{Duration, Instant};

use minga_simulations::scenario::Links;
use minga_tests::real_stack::partition::Split;
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

/// Ten nodes cut into two halves through the nodes' block API each make an entry that
/// stays on its side; after the unblocking the nodes reconnect by themselves and end with the
/// same heads.
#[test]
fn halves_cut_apart_converge_after_the_heal() {
    let seed = 5;
    let cluster = Cluster::start(&ClusterConfig::new(10, 3, seed)).expect("starting 10 nodes");
    cluster
        .wait_connected(Duration::from_secs(60))
        .expect("every node connected");
    let nodes = &cluster.nodes;
    let collection = cluster.shared_collection("partida").expect("a collection");
    let split = Split::seeded(nodes.len(), 0.5, seed, 0);
    split
        .cut(nodes, Duration::from_secs(30))
        .expect("no link across the cut");
    let origins = [0, (1..nodes.len()).find(|&b| split.apart(0, b)).unwrap()];
    let mut made: Vec<Update> = (0..2)
        .map(|i| Update::create(nodes, origins[i], &collection, seed, i as u64).expect("an entry"))
        .collect();
    // Each entry reaches its own side (so gossip runs), and after a few more seconds still
    // none of the other.
    let on_own_side = |u: &Update| {
        u.time_to_among(1.0, |i| !split.apart(u.origin, i))
            .is_some()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        updates::poll(nodes, &mut made).expect("polling");
        if made.iter().all(on_own_side) {
            break;
        }
        let holders: Vec<usize> = made.iter().map(Update::holders).collect();
        assert!(
            Instant::now() < deadline,
            "entries not on their sides: {holders:?} holders"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    updates::poll(nodes, &mut made).expect("polling");
    assert_eq!(
        split.links_across(nodes).expect("peer lists"),
        0,
        "a link crossed the cut"
    );
    assert_eq!(split.leaks(&made), 0, "an entry crossed the cut");
    split.heal(nodes).expect("unblocking");
    updates::wait_all_held(nodes, &mut made, Duration::from_secs(120))
        .expect("entries spread after the heal");
    let differing = updates::differing_heads(nodes, &made).expect("reading heads");
    assert!(differing.is_empty(), "heads differ for {differing:?}");
    cluster.stop().expect("every node stops cleanly");
}

/// One of eight nodes is stopped, an entry is made elsewhere and reaches every running node;
/// the stopped node, started again on its data dir (same identity and address), gets it from
/// its peers and ends with the same heads. Its own entry made before the stop is still there.
#[test]
fn a_restarted_node_catches_up_to_identical_heads() {
    let seed = 8;
    let mut cluster = Cluster::start(&ClusterConfig::new(8, 2, seed)).expect("starting 8 nodes");
    cluster
        .wait_connected(Duration::from_secs(60))
        .expect("every node connected");
    let collection = cluster.shared_collection("volta").expect("a collection");
    let away = 5;
    let mut made =
        vec![Update::create(&cluster.nodes, away, &collection, seed, 0).expect("an entry")];
    updates::wait_all_held(&cluster.nodes, &mut made, Duration::from_secs(60))
        .expect("the first entry spread");
    cluster.stop_node(away).expect("a clean stop");
    assert!(!cluster.nodes[away].online());
    made.push(Update::create(&cluster.nodes, 2, &collection, seed, 1).expect("an entry"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while made[1].holders() < cluster.nodes.len() - 1 {
        assert!(
            Instant::now() < deadline,
            "the entry did not reach the running nodes"
        );
        updates::poll(&cluster.nodes, &mut made).expect("polling");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(made[1].held_after[away], None, "a stopped node was read");
    cluster
        .restart_node(away)
        .expect("a restart on the same data dir");
    let (status, body) = cluster.nodes[away].get("/api/v1/status");
    assert_eq!(status, 200);
    assert_eq!(
        body["peer_id"],
        cluster.nodes[away].peer_id(),
        "a new identity"
    );
    updates::wait_all_held(&cluster.nodes, &mut made, Duration::from_secs(120))
        .expect("the restarted node caught up");
    let differing = updates::differing_heads(&cluster.nodes, &made).expect("reading heads");
    assert!(differing.is_empty(), "heads differ for {differing:?}");
    cluster.stop().expect("every node stops cleanly");
}

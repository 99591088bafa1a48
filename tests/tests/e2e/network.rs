//! Nodes sharing the commons over real libp2p connections on loopback.

use minga_tests::{Node, wait_until};
use serde_json::{Value, json};

/// Starts a node that bootstraps from `peers`.
fn node_with(dir: &std::path::Path, peers: &[&Node]) -> Node {
    let addrs: Vec<String> = peers.iter().map(|p| p.p2p_addr()).collect();
    let mut args: Vec<&str> = Vec::new();
    for addr in &addrs {
        args.extend(["--bootstrap", addr]);
    }
    Node::start_with(dir, &args)
}

fn entry(node: &Node, id: &str) -> Option<Value> {
    let (status, entry) = node.get(&format!("/api/v1/entries/{id}"));
    (status == 200).then_some(entry)
}

fn create(node: &Node, collection: &str, title: &str, body: &str) -> String {
    let new = json!({"collection": collection, "kind": "practice", "title": title, "body": body,
                     "license": "CC-BY-SA-4.0", "lang": "es"});
    let (status, answer) = node.post("/api/v1/entries", &new.to_string());
    assert_eq!(status, 201, "{answer}");
    answer["id"].as_str().unwrap().to_owned()
}

/// The address a node listens on, without its peer id, to restart it on the same port.
fn listen_addr(node: &Node) -> String {
    let addr = node.p2p_addr();
    addr.split("/p2p/").next().unwrap().to_owned()
}

/// A line A – B – C where A and C know only B, all following one collection created on A.
struct Line {
    _dirs: Vec<tempfile::TempDir>,
    a: Node,
    b: Node,
    c: Node,
    collection: String,
}

fn line() -> Line {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let b = Node::start(dirs[1].path());
    let a = node_with(dirs[0].path(), &[&b]);
    let c = node_with(dirs[2].path(), &[&b]);
    let (status, answer) = a.post("/api/v1/collections", r#"{"name": "practicas"}"#);
    assert_eq!(status, 201, "{answer}");
    let collection = answer["id"].as_str().unwrap().to_owned();
    for node in [&b, &c] {
        let (status, _) = node.post(&format!("/api/v1/collections/{collection}/follow"), "");
        assert_eq!(status, 200);
    }
    Line {
        _dirs: dirs,
        a,
        b,
        c,
        collection,
    }
}

#[test]
fn an_entry_added_on_a_reaches_c_through_b() {
    let line = line();
    let id = create(
        &line.a,
        &line.collection,
        "Roya del café",
        "Sombra regulada.",
    );
    wait_until(60, "the entry on C", || entry(&line.c, &id).is_some());
    let on_a = entry(&line.a, &id).unwrap();
    let on_c = entry(&line.c, &id).unwrap();
    assert_eq!(
        on_a, on_c,
        "same heads, same content, same signatures' author"
    );
    wait_until(30, "the collection on C", || {
        line.c.get("/api/v1/collections").1["collections"][0]["name"] == "practicas"
    });
    // With every catch-up done, a second entry travels by gossip alone: B pulls it from A,
    // and only then forwards A's announcement to C, which pulls it from B.
    let forwarded = || {
        line.b
            .metric("minga_announcements_forwarded_total")
            .unwrap()
    };
    let before = forwarded();
    let second = create(&line.a, &line.collection, "Caldo bordelés", "Cobre y cal.");
    wait_until(60, "the second entry on C", || {
        entry(&line.c, &second).is_some()
    });
    assert!(
        forwarded() > before,
        "B forwarded A's announcement once it held the entry"
    );
    let (_, peers) = line.b.get("/api/v1/peers");
    assert_eq!(peers["peers"].as_array().unwrap().len(), 2);
    for peer in peers["peers"].as_array().unwrap() {
        // B synced with both: each peer's own traffic, on the wire of its messages.
        assert!(peer["bytes_sent"].as_u64().unwrap() > 0, "{peer}");
        assert!(peer["bytes_received"].as_u64().unwrap() > 0, "{peer}");
    }
    assert!(
        line.b.get("/api/v1/status").1["bytes_received"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn b_and_c_catch_up_after_b_was_down() {
    let mut line = line();
    let first = create(&line.a, &line.collection, "Biol", "Fermentar.");
    wait_until(60, "the first entry on C", || {
        entry(&line.c, &first).is_some()
    });
    let (b_dir, b_listen) = (line.b.dir.clone(), listen_addr(&line.b));
    line.b.stop();
    let second = create(&line.a, &line.collection, "Bocashi", "Voltear cada día.");
    let (status, _) = line.a.patch(
        &format!("/api/v1/entries/{first}"),
        r#"{"body": "Fermentar un mes."}"#,
    );
    assert_eq!(status, 200);
    line.b = Node::start_with(&b_dir, &["--listen", &b_listen]);
    let expected = entry(&line.a, &first).unwrap();
    wait_until(90, "B and C caught up", || {
        [&line.b, &line.c]
            .iter()
            .all(|n| entry(n, &second).is_some() && entry(n, &first).as_ref() == Some(&expected))
    });
}

#[test]
fn concurrent_edits_merge_with_nothing_lost() {
    let mut line = line();
    let id = create(&line.a, &line.collection, "Quinua", "Lavar la quinua.");
    wait_until(60, "the entry on C", || entry(&line.c, &id).is_some());
    let (b_dir, b_listen) = (line.b.dir.clone(), listen_addr(&line.b));
    line.b.stop();
    let path = format!("/api/v1/entries/{id}");
    assert_eq!(
        line.a
            .patch(&path, r#"{"body": "Remojar. Lavar la quinua."}"#)
            .0,
        200
    );
    assert_eq!(
        line.c
            .patch(&path, r#"{"body": "Lavar la quinua. Secar al sol."}"#)
            .0,
        200
    );
    line.b = Node::start_with(&b_dir, &["--listen", &b_listen]);
    wait_until(90, "identical heads everywhere", || {
        let all: Vec<Option<Value>> = [&line.a, &line.b, &line.c]
            .iter()
            .map(|n| entry(n, &id))
            .collect();
        all.iter().all(|e| e.is_some())
            && all
                .windows(2)
                .all(|w| w[0].as_ref().map(|e| &e["heads"]) == w[1].as_ref().map(|e| &e["heads"]))
    });
    for node in [&line.a, &line.b, &line.c] {
        assert_eq!(
            entry(node, &id).unwrap()["body"],
            "Remojar. Lavar la quinua. Secar al sol."
        );
    }
}

#[test]
fn private_entries_stay_home_and_tombstones_travel() {
    let line = line();
    let private = json!({"collection": line.collection, "kind": "practice", "title": "Privada",
                         "body": "Solo aquí.", "license": "CC0-1.0", "private": true});
    let private_id = line.a.post("/api/v1/entries", &private.to_string()).1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let history = json!({"collection": line.collection, "kind": "history", "title": "Don Manuel",
                         "body": "Su historia.", "license": "CC-BY-4.0",
                         "consent": [{"name": "Don Manuel", "status": "pending"}]});
    let history_id = line.a.post("/api/v1/entries", &history.to_string()).1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let public = create(&line.a, &line.collection, "Pública", "Para todos.");
    wait_until(60, "the public entry on C", || {
        entry(&line.c, &public).is_some()
    });
    assert!(entry(&line.b, &private_id).is_none());
    assert!(entry(&line.b, &history_id).is_none());
    assert!(entry(&line.c, &private_id).is_none());

    assert_eq!(line.a.delete(&format!("/api/v1/entries/{public}")).0, 200);
    wait_until(60, "the tombstone on B and C", || {
        entry(&line.b, &public).is_none() && entry(&line.c, &public).is_none()
    });
}

#[test]
fn two_thousand_entries_reach_a_fresh_node_and_a_second_look_is_cheap() {
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = Node::start(dirs[0].path());
    let collection = a.post("/api/v1/collections", r#"{"name": "grande"}"#).1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let api = a.api.clone();
            let collection = collection.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    let new = json!({"collection": collection, "kind": "practice",
                        "title": format!("Práctica {t}-{i}"), "body": "texto ".repeat(100),
                        "license": "CC0-1.0"});
                    assert_eq!(api.post("/api/v1/entries", &new.to_string()).0, 201);
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let b = node_with(dirs[1].path(), &[&a]);
    assert_eq!(
        b.post(&format!("/api/v1/collections/{collection}/follow"), "")
            .0,
        200
    );
    wait_until(240, "2,000 entries on B", || {
        b.get("/api/v1/status").1["entries"] == 2000
    });
    let bytes = |n: &Node| {
        let s = n.get("/api/v1/status").1;
        s["bytes_sent"].as_u64().unwrap() + s["bytes_received"].as_u64().unwrap()
    };
    // Let the first sync settle: the last batches, the reconciliation B offers its peers 2 to
    // 3 s after a catch-up burst, and the first periodic "what changed since" (every 30 s),
    // where B lists back the 2,000 entries it received to A, once. Then measure one
    // reconciliation of the unchanged set.
    std::thread::sleep(std::time::Duration::from_secs(32));
    let mut last = bytes(&b);
    wait_until(120, "the first sync to settle", || {
        std::thread::sleep(std::time::Duration::from_secs(4));
        let now = bytes(&b);
        std::mem::replace(&mut last, now) + 200 > now
    });
    // Following again reconciles the collection with every connected peer at once. A's
    // periodic listing of what changed on B may still fall into one window (the 2,000 entries
    // B received, listed back once, when A's check finds B idle): the cheapest of three counts.
    let costs: Vec<u64> = (0..3)
        .map(|_| {
            let before = bytes(&b);
            assert_eq!(
                b.post(&format!("/api/v1/collections/{collection}/follow"), "")
                    .0,
                200
            );
            std::thread::sleep(std::time::Duration::from_secs(3));
            bytes(&b) - before
        })
        .collect();
    let cost = costs.iter().min().copied().unwrap_or(u64::MAX);
    assert!(
        cost < 1024,
        "an unchanged reconciliation cost {cost} bytes (tries: {costs:?})"
    );
}

#[test]
fn a_node_behind_a_relay_is_reached_through_its_circuit_address() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let relay = Node::start_with(dirs[0].path(), &["--relay"]);
    let circuit = format!("{}/p2p-circuit", relay.p2p_addr());
    // A listens only through the relay: it has no address of its own to reach.
    let a = Node::start_with(dirs[1].path(), &["--listen", &circuit]);
    let a_circuit = a.p2p_addr();
    assert!(a_circuit.contains("/p2p-circuit/"), "{a_circuit}");
    let collection = a.post("/api/v1/collections", r#"{"name": "remota"}"#).1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = create(&a, &collection, "Desde lejos", "Por el relé.");
    let c = Node::start_with(dirs[2].path(), &["--bootstrap", &a_circuit]);
    assert_eq!(
        c.post(&format!("/api/v1/collections/{collection}/follow"), "")
            .0,
        200
    );
    wait_until(90, "the entry on C through the relay", || {
        entry(&c, &id).is_some()
    });
}

/// Blocking a peer refuses its connections and hides the entries of the author it vouched for;
/// they stay stored and synced (no hole in anyone's change graph) and show again on unblock.
#[test]
fn blocking_a_peer_hides_its_authors_content() {
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let b = Node::start(dirs[1].path());
    let a = node_with(dirs[0].path(), &[&b]);
    let (status, answer) = a.post("/api/v1/collections", r#"{"name": "practicas"}"#);
    assert_eq!(status, 201, "{answer}");
    let collection = answer["id"].as_str().unwrap().to_owned();
    let (status, _) = b.post(&format!("/api/v1/collections/{collection}/follow"), "");
    assert_eq!(status, 200);
    let theirs = create(&a, &collection, "Trampas de roya", "De A.");
    wait_until(60, "A's entry and collection on B", || {
        entry(&b, &theirs).is_some()
            && b.get("/api/v1/collections")
                .1
                .to_string()
                .contains(&collection)
    });
    let ours = create(&b, &collection, "Abono de B", "De B.");

    let (_, status) = a.get("/api/v1/status");
    let a_peer = status["peer_id"].as_str().unwrap().to_owned();
    let block = format!("/api/v1/peers/{a_peer}/block");
    let (code, answer) = b.post(&block, "");
    assert_eq!(code, 200, "{answer}");

    let listed = |node: &Node| -> Vec<String> {
        let (status, page) = node.get(&format!("/api/v1/entries?collection={collection}"));
        assert_eq!(status, 200, "{page}");
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(
        entry(&b, &theirs).is_none(),
        "a blocked author's entry is hidden"
    );
    assert_eq!(listed(&b), vec![ours.clone()]);
    wait_until(30, "B drops its connection to A", || {
        let (_, peers) = b.get("/api/v1/peers");
        !peers.to_string().contains(&a_peer)
    });

    let (code, _) = b.delete(&block);
    assert_eq!(code, 200);
    assert!(entry(&b, &theirs).is_some(), "kept all along, shown again");
    assert_eq!(listed(&b).len(), 2);
}

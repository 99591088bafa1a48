//! Search through real nodes: local writes within a second, a peer's entry and its tombstone
//! reaching the other node's index, the CLI searching a stopped node's store, and the q= errors.

use std::time::{Duration, Instant};

use minga_tests::{Node, cli_ok, node_dir, wait_until};
use serde_json::{Value, json};

fn hits(node: &Node, query: &str) -> Vec<Value> {
    let (status, page) = node.get(&format!("/api/v1/entries?{query}"));
    assert_eq!(status, 200, "{page}");
    page["entries"].as_array().cloned().unwrap_or_default()
}

fn titles(node: &Node, query: &str) -> Vec<String> {
    hits(node, query)
        .iter()
        .map(|h| h["title"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_local_entry_is_searchable_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let (status, _) = node.post("/api/v1/collections", r#"{"name": "practicas"}"#);
    assert_eq!(status, 201);
    let new = json!({"collection": "practicas", "kind": "practice", "lang": "es",
        "title": "Fermentación del cacao", "body": "Cinco días en cajones de madera.",
        "license": "CC0-1.0", "place": "Los Ríos", "tags": ["cacao"]});
    let (status, _) = node.post("/api/v1/entries", &new.to_string());
    assert_eq!(status, 201);
    let written = Instant::now();
    wait_until(5, "the entry in search", || {
        !titles(&node, "q=fermentacion").is_empty()
    });
    assert!(
        written.elapsed() < Duration::from_secs(1),
        "search lagged {:?}",
        written.elapsed()
    );
    let hit = &hits(&node, "q=cajon&place=los%20rios&lang=es&kind=practice")[0];
    assert_eq!(hit["title"], "Fermentación del cacao");
    assert!(hit["score"].as_f64().unwrap() > 0.0);
    assert!(hit["snippet"]["text"].as_str().unwrap().contains("cajones"));
    assert!(
        !hit["heads"].as_array().unwrap().is_empty(),
        "hits are whole entries"
    );
    // Bad input gets a clear 400.
    for query in ["q=%C2%BF%3F", "q=cacao&cursor=nope", "place=Loja"] {
        let (status, answer) = node.get(&format!("/api/v1/entries?{query}"));
        assert_eq!(status, 400, "{query}: {answer}");
        assert_eq!(answer["error"]["code"], "bad_request");
    }
}

#[test]
fn a_peers_entry_and_its_tombstone_reach_the_index() {
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let b = Node::start(dirs[1].path());
    let a = Node::start_with(dirs[0].path(), &["--bootstrap", &b.p2p_addr()]);
    let (status, answer) = a.post("/api/v1/collections", r#"{"name": "practicas"}"#);
    assert_eq!(status, 201);
    let collection = answer["id"].as_str().unwrap().to_owned();
    let (status, _) = b.post(&format!("/api/v1/collections/{collection}/follow"), "");
    assert_eq!(status, 200);
    let new = json!({"collection": collection, "kind": "practice", "lang": "qug",
        "title": "Papa muyukunata wakaychina", "body": "Muyukunata allichina.",
        "license": "CC0-1.0"});
    let (status, answer) = a.post("/api/v1/entries", &new.to_string());
    assert_eq!(status, 201);
    let id = answer["id"].as_str().unwrap().to_owned();
    wait_until(60, "A's entry in B's search", || {
        titles(&b, "q=wakaychina&lang=qu") == ["Papa muyukunata wakaychina"]
    });
    let (status, _) = a.delete(&format!("/api/v1/entries/{id}"));
    assert_eq!(status, 200);
    wait_until(60, "the tombstone on B", || {
        b.get(&format!("/api/v1/entries/{id}")).0 == 404
    });
    // The store and the index agree: the hit is gone from the index itself, not just hidden.
    wait_until(5, "the entry out of B's index", || {
        titles(&b, "q=wakaychina").is_empty()
    });
}

#[test]
fn the_cli_searches_a_stopped_node_after_catching_up() {
    let dir = node_dir();
    let path = dir.path();
    cli_ok(path, &["collection", "create", "practicas"]);
    cli_ok(
        path,
        &[
            "add",
            "--collection",
            "practicas",
            "--kind",
            "practice",
            "--title",
            "Biol casero",
            "--body",
            "Fertilizante foliar fermentado.",
            "--license",
            "CC0-1.0",
            "--lang",
            "es",
        ],
    );
    let text = cli_ok(path, &["search", "fermentacion"]);
    assert!(text.contains("Biol casero"), "{text}");
    assert!(text.contains("«fermentado»"), "{text}");
    // The same search through a running node, which catches up with what the CLI wrote.
    let node = Node::start(path);
    let json: Value = serde_json::from_str(&cli_ok(path, &["--json", "search", "foliar"])).unwrap();
    assert_eq!(json["entries"][0]["title"], "Biol casero");
    drop(node);
}

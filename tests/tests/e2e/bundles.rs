//! Sneakernet bundles between real nodes: an import equals a sync, two nodes converge through
//! bundles alone, and every damaged bundle of the corpus is refused without touching the store.

use std::path::{Path, PathBuf};

use minga_tests::{Node, cli, cli_ok, node_dir, wait_until};
use serde_json::{Value, json};

fn create(node: &Node, collection: &str, title: &str) -> String {
    let new = json!({"collection": collection, "kind": "practice", "title": title,
                     "body": format!("{title}: paso a paso."), "license": "CC-BY-SA-4.0",
                     "lang": "es"});
    let (status, answer) = node.post("/api/v1/entries", &new.to_string());
    assert_eq!(status, 201, "{answer}");
    answer["id"].as_str().unwrap().to_owned()
}

/// Every entry of a node, by id.
fn entries(node: &Node) -> Vec<Value> {
    let (status, page) = node.get("/api/v1/entries?limit=500");
    assert_eq!(status, 200);
    let mut all = page["entries"].as_array().unwrap().clone();
    all.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    all
}

/// Hashes of every file of a data dir's store, to show an import changed nothing.
fn store_snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.join("store")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn an_import_equals_a_sync_and_the_network_then_has_nothing_to_carry() {
    let (a_dir, b_dir, stick) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    // The stick is a bundle directory of both nodes, as a drive's mount point would be.
    let stick_dir = ["--bundle-dir", stick.path().to_str().unwrap()];
    let a = Node::start_with(a_dir.path(), &stick_dir);
    let (_, answer) = a.post("/api/v1/collections", r#"{"name": "semillas"}"#);
    let collection = answer["id"].as_str().unwrap().to_owned();
    for title in ["Quinua", "Chocho", "Amaranto"] {
        create(&a, &collection, title);
    }
    let first = create(&a, &collection, "Borrador");
    assert_eq!(a.delete(&format!("/api/v1/entries/{first}")).0, 200);
    let bundle = stick.path().join("semillas.minga");
    // Both through the running nodes' API.
    let exported: Value = serde_json::from_str(&cli_ok(
        a_dir.path(),
        &[
            "--json",
            "export",
            "--all",
            "--out",
            bundle.to_str().unwrap(),
        ],
    ))
    .unwrap();
    assert_eq!(exported["entries"], 3);
    assert_eq!(exported["tombstones"], 1);

    let mut b = Node::start_with(b_dir.path(), &stick_dir);
    let imported: Value = serde_json::from_str(&cli_ok(
        b_dir.path(),
        &["--json", "import", bundle.to_str().unwrap()],
    ))
    .unwrap();
    assert_eq!(imported["entries"]["new"], 3, "{imported}");
    assert_eq!(entries(&a), entries(&b), "same entries, heads and authors");

    // Connected, the two find nothing to bring level: no document changes on either side (the
    // only writes are each side's note of the other's change-log position).
    b.stop();
    let b = Node::start_with(b_dir.path(), &["--bootstrap", &a.p2p_addr()]);
    wait_until(30, "B connected to A", || {
        b.get("/api/v1/status").1["peers"].as_u64() == Some(1)
    });
    wait_until(30, "a reconciliation round", || {
        b.get("/api/v1/status").1["bytes_received"].as_u64() > Some(0)
            && a.get("/api/v1/status").1["bytes_received"].as_u64() > Some(0)
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(a.metric("minga_documents_received_total").unwrap(), 0);
    assert_eq!(b.metric("minga_documents_received_total").unwrap(), 0);
    assert_eq!(entries(&a), entries(&b));
}

#[test]
fn two_nodes_converge_through_bundles_alone() {
    let (a, b, stick) = (node_dir(), node_dir(), tempfile::tempdir().unwrap());
    let (a, b) = (a.path(), b.path());
    cli_ok(a, &["collection", "create", "historias"]);
    let id = cli_ok(
        a,
        &[
            "add",
            "--collection",
            "historias",
            "--kind",
            "practice",
            "--title",
            "Riego",
            "--body",
            "Por surcos.",
            "--license",
            "CC0-1.0",
        ],
    );
    let out = |name: &str| stick.path().join(name).to_str().unwrap().to_owned();
    cli_ok(
        a,
        &[
            "export",
            "--collection",
            "historias",
            "--out",
            &out("ida.minga"),
        ],
    );
    let summary = cli_ok(b, &["import", &out("ida.minga")]);
    assert!(summary.contains("entries: 1 new"), "{summary}");

    cli_ok(b, &["edit", &id, "--body", "Por surcos, al amanecer."]);
    let other = cli_ok(
        b,
        &[
            "add",
            "--collection",
            "historias",
            "--kind",
            "practice",
            "--title",
            "Heladas",
            "--body",
            "Humo.",
            "--license",
            "CC0-1.0",
        ],
    );
    let delta: Value = serde_json::from_str(&cli_ok(
        b,
        &[
            "--json",
            "export",
            "--all",
            "--since",
            &out("ida.minga"),
            "--out",
            &out("vuelta.minga"),
        ],
    ))
    .unwrap();
    assert_eq!(
        (delta["entries"].as_u64(), delta["unchanged"].as_u64()),
        (Some(2), Some(1))
    );
    let back: Value =
        serde_json::from_str(&cli_ok(a, &["--json", "import", &out("vuelta.minga")])).unwrap();
    assert_eq!(
        (
            back["entries"]["new"].as_u64(),
            back["entries"]["updated"].as_u64()
        ),
        (Some(1), Some(1))
    );

    for entry in [&id, &other] {
        assert_eq!(
            cli_ok(a, &["--json", "show", entry]),
            cli_ok(b, &["--json", "show", entry])
        );
    }
    let inspected = cli_ok(b, &["bundle", "inspect", &out("vuelta.minga")]);
    assert!(
        inspected.contains("only what the holder of bundle"),
        "{inspected}"
    );
}

#[test]
fn every_damaged_bundle_is_refused_and_the_store_is_unchanged() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/bundles");
    let expected = std::fs::read_to_string(corpus.join("EXPECTED")).unwrap();
    let dir = node_dir();
    cli_ok(dir.path(), &["collection", "create", "propia"]);
    // sled rewrites its files once on the first reopen after a write; settle that first.
    cli_ok(dir.path(), &["list"]);
    let before = store_snapshot(dir.path());
    let mut cases = 0;
    for line in expected.lines() {
        let (name, message) = line.split_once('\t').unwrap();
        let output = cli(dir.path(), &["import", corpus.join(name).to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
        assert!(
            stderr.starts_with(&format!("error: {message}")),
            "{name}: expected {message:?}, got {stderr}"
        );
        assert!(
            store_snapshot(dir.path()) == before,
            "{name} changed the store"
        );
        cases += 1;
    }
    assert!(cases >= 15, "the corpus lists {cases} cases");

    let output = cli(
        dir.path(),
        &[
            "import",
            "--assume-free-bytes",
            "1000",
            corpus.join("good.minga").to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: not enough disk space"),
        "{stderr}"
    );
    assert!(
        store_snapshot(dir.path()) == before,
        "a refused import changed the store"
    );

    let summary = cli_ok(
        dir.path(),
        &["import", corpus.join("good.minga").to_str().unwrap()],
    );
    assert!(summary.contains("entries: 1 new"), "{summary}");
    assert!(summary.contains("blobs added: 1"), "{summary}");
}

//! Power cuts: a node killed with SIGKILL at random moments never loses a write it acknowledged,
//! and its store opens cleanly every time; an import killed mid-way lands all or nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use minga_tests::{Node, cli_ok, node_dir};
use serde_json::json;

/// Cycles of write, kill -9, restart.
const CYCLES: usize = 20;
/// Concurrent writers per cycle.
const WRITERS: usize = 4;

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path());
    let (status, answer) = node.post("/api/v1/collections", r#"{"name": "crash"}"#);
    assert_eq!(status, 201, "{answer}");
    let mut acknowledged: Vec<String> = Vec::new();
    // A fixed-seed xorshift picks the kill moments: reproducible, yet spread out.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for cycle in 0..CYCLES {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let api = node.api.clone();
                let acked = Arc::clone(&acked);
                std::thread::spawn(move || {
                    for i in 0.. {
                        let body = json!({"collection": "crash", "kind": "practice",
                            "title": format!("ciclo {cycle} escritor {writer} n {i}"),
                            "body": "x".repeat(2000), "license": "CC0-1.0"});
                        match api.post("/api/v1/entries", &body.to_string()) {
                            (201, answer) => acked
                                .lock()
                                .unwrap()
                                .push(answer["id"].as_str().unwrap().to_owned()),
                            (0, _) => return, // the node is gone
                            (status, answer) => panic!("unexpected {status}: {answer}"),
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(30 + next() % 400));
        node.kill9();
        for writer in writers {
            writer.join().unwrap();
        }
        acknowledged.extend(acked.lock().unwrap().drain(..));

        node = Node::start(dir.path());
        for id in &acknowledged {
            let (status, entry) = node.get(&format!("/api/v1/entries/{id}"));
            assert_eq!(
                status, 200,
                "cycle {cycle}: acknowledged entry {id} lost: {entry}"
            );
        }
        let held = node.get("/api/v1/status").1["entries"].as_u64().unwrap();
        assert!(
            held >= acknowledged.len() as u64,
            "cycle {cycle}: count {held} went backwards"
        );
    }
    assert!(
        acknowledged.len() > CYCLES,
        "the test wrote too little to mean anything"
    );
}

/// Entries in the bundle the import-kill test carries: enough staged rows to spill to the
/// import journal (1 MiB) several times.
const CARRIED: u64 = 400;

/// The entries a stopped data dir holds, as `minga status` counts them.
fn entries_in(dir: &std::path::Path) -> u64 {
    let status: serde_json::Value =
        serde_json::from_str(&cli_ok(dir, &["--json", "status"])).unwrap();
    status["entries"].as_u64().unwrap()
}

#[test]
fn an_import_killed_mid_way_lands_all_or_nothing() {
    let source = tempfile::tempdir().unwrap();
    let mut node = Node::start(source.path());
    let (status, answer) = node.post("/api/v1/collections", r#"{"name": "viaje"}"#);
    assert_eq!(status, 201, "{answer}");
    for i in 0..CARRIED {
        let body = json!({"collection": "viaje", "kind": "practice",
            "title": format!("práctica {i}"), "body": "siembra y cosecha ".repeat(150),
            "license": "CC0-1.0"});
        assert_eq!(node.post("/api/v1/entries", &body.to_string()).0, 201);
    }
    assert!(node.stop(), "the source node stops cleanly");
    let stick = tempfile::tempdir().unwrap();
    let bundle = stick.path().join("viaje.minga");
    let bundle_arg = bundle.to_str().unwrap();
    cli_ok(source.path(), &["export", "--all", "--out", bundle_arg]);

    let target = node_dir();
    let started = std::time::Instant::now();
    cli_ok(target.path(), &["import", bundle_arg]);
    let whole = started.elapsed();
    assert_eq!(entries_in(target.path()), CARRIED);

    // Kill imports at moments spread over the time a whole one takes.
    for cut in 1..=4u32 {
        let target = node_dir();
        let mut import = std::process::Command::new(minga_tests::minga_bin())
            .arg("--data-dir")
            .arg(target.path())
            .args(["import", bundle_arg])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(whole * cut / 5);
        let _ = import.kill();
        let _ = import.wait();
        let held = entries_in(target.path());
        eprintln!("import killed at {cut}/5 of its time: {held} entries held");
        assert!(
            held == 0 || held == CARRIED,
            "cut {cut}: {held} of {CARRIED} entries landed"
        );
        cli_ok(target.path(), &["import", bundle_arg]);
        assert_eq!(
            entries_in(target.path()),
            CARRIED,
            "cut {cut}: imported again"
        );
    }
}

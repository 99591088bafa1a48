//! Power cuts: a node killed with SIGKILL at random moments never loses a write it acknowledged,
//! and its store opens cleanly every time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use minga_tests::Node;
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

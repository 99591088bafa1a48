//! Attachments between real nodes: verified transfer through a relaying node, resuming after
//! `kill -9`, a peer serving bad bytes, refused hashes, and the headers blobs are served with.

use std::path::Path;
use std::time::Instant;

use minga_tests::blob_peer::LyingBlobPeer;
use minga_tests::{Node, cli, cli_ok, random_bytes, wait_until};
use serde_json::{Value, json};

const MIB: u64 = 1024 * 1024;

fn node_with(dir: &Path, peers: &[&str], extra: &[&str]) -> Node {
    let mut args: Vec<&str> = Vec::new();
    for addr in peers {
        args.extend(["--bootstrap", addr]);
    }
    args.extend_from_slice(extra);
    Node::start_with(dir, &args)
}

/// [`minga_tests::entry_with_attachment`], checking the attachment the API shows. Returns
/// the collection id and the attachment's hash.
fn entry_with_attachment(node: &Node, file: &Path) -> (String, String) {
    let (collection, attachment) = minga_tests::entry_with_attachment(node, file).unwrap();
    assert_eq!(
        attachment["size"].as_u64(),
        std::fs::metadata(file).ok().map(|m| m.len())
    );
    assert!(!attachment["mime"].as_str().unwrap().is_empty());
    (collection, attachment["hash"].as_str().unwrap().to_owned())
}

fn follow(node: &Node, collection: &str) {
    let (status, _) = node.post(&format!("/api/v1/collections/{collection}/follow"), "");
    assert_eq!(status, 200);
}

/// The record of `hash` in `GET /api/v1/blobs`.
fn blob_record(node: &Node, hash: &str) -> Option<Value> {
    let (_, list) = node.get("/api/v1/blobs");
    list["blobs"]
        .as_array()?
        .iter()
        .find(|b| b["hash"] == hash)
        .cloned()
}

fn is_complete(node: &Node, hash: &str) -> bool {
    blob_record(node, hash).is_some_and(|b| b["complete"] == true)
}

/// The blob's bytes as the node serves them.
fn download(node: &Node, hash: &str) -> Vec<u8> {
    let response = ureq::get(&format!("{}/api/v1/blobs/{hash}", node.api.base))
        .call()
        .expect("the blob is served");
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes).unwrap();
    bytes
}

fn status(node: &Node) -> Value {
    node.get("/api/v1/status").1
}

#[test]
fn a_64_mib_attachment_on_a_reaches_c_through_b_byte_identical() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let content = random_bytes(64 * MIB, 64);
    let file = dirs[0].path().join("grabacion.bin");
    std::fs::write(&file, &content).unwrap();
    let b = Node::start(dirs[1].path());
    let b_addr = b.p2p_addr();
    let a = node_with(dirs[0].path(), &[&b_addr], &[]);
    let c = node_with(dirs[2].path(), &[&b_addr], &[]);
    let (collection, hash) = entry_with_attachment(&a, &file);
    let started = Instant::now();
    follow(&b, &collection);
    follow(&c, &collection);
    wait_until(240, "the blob complete on C", || is_complete(&c, &hash));
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("64 MiB A -> B -> C in {seconds:.1} s (entry sync and two hops)");
    assert!(download(&c, &hash) == content, "C serves the same bytes");
    // The operator sees whom the bytes came from: C's one peer, B, sent it the 64 MiB.
    let (_, peers) = c.get("/api/v1/peers");
    let from_b = &peers["peers"][0];
    assert_eq!(from_b["peer_id"], status(&b)["peer_id"]);
    assert!(from_b["bytes_received"].as_u64().unwrap() >= 64 * MIB);
    assert!(from_b["bytes_sent"].as_u64().unwrap() > 0);
    // And the CLI writes them out through the node.
    let out = dirs[2].path().join("copia.bin");
    cli_ok(
        &c.dir,
        &["blob", "get", &hash, "--out", out.to_str().unwrap()],
    );
    assert!(std::fs::read(&out).unwrap() == content);
}

#[test]
fn a_download_killed_halfway_resumes_from_its_verified_prefix() {
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let size = 64 * MIB;
    let content = random_bytes(size, 7);
    let file = dirs[0].path().join("audio.bin");
    std::fs::write(&file, &content).unwrap();
    let a = Node::start(dirs[0].path());
    let a_addr = a.p2p_addr();
    let (collection, hash) = entry_with_attachment(&a, &file);
    // 16 MiB/s, so "about half" lasts long enough to be caught.
    let slow = ["--blob-rate-kib", "16384"];
    let mut r = node_with(dirs[1].path(), &[&a_addr], &slow);
    let r_listen = r.p2p_addr();
    follow(&r, &collection);
    let mut received_before_kill = 0;
    wait_until(120, "half the blob on R", || {
        let status = status(&r);
        received_before_kill = status["bytes_received"].as_u64().unwrap_or(0);
        status["blobs"]["partial_have"].as_u64().unwrap_or(0) >= size / 2
    });
    r.kill9();
    assert!(
        !is_complete_offline(dirs[1].path(), &hash),
        "not complete at the kill"
    );
    let listen = r_listen.split("/p2p/").next().unwrap().to_owned();
    let r = node_with(dirs[1].path(), &[&a_addr], &["--listen", &listen]);
    wait_until(120, "the blob complete on R after the restart", || {
        is_complete(&r, &hash)
    });
    let received_after = status(&r)["bytes_received"].as_u64().unwrap();
    let total = received_before_kill + received_after;
    let ratio = total as f64 / size as f64;
    eprintln!(
        "resume: {received_before_kill} + {received_after} bytes received for {size}: {ratio:.3}x"
    );
    assert!(ratio < 1.6, "received {ratio:.2}x the blob's size");
    assert!(download(&r, &hash) == content);
}

/// Whether the stopped node's data dir holds the blob complete, through the offline CLI.
fn is_complete_offline(dir: &Path, hash: &str) -> bool {
    let out = dir.join("probe.bin");
    let ok = cli(dir, &["blob", "get", hash, "--out", out.to_str().unwrap()])
        .status
        .success();
    let _ = std::fs::remove_file(out);
    ok
}

#[test]
fn a_peer_serving_a_corrupted_chunk_is_caught_there_and_an_honest_peer_finishes() {
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let content = random_bytes(12 * MIB + 12345, 3);
    let file = dirs[0].path().join("libro.bin");
    std::fs::write(&file, &content).unwrap();
    let a = Node::start(dirs[0].path());
    let (collection, hash) = entry_with_attachment(&a, &file);
    let liar = LyingBlobPeer::start(&content);
    let n = node_with(dirs[1].path(), &[&a.p2p_addr(), &liar.addr], &[]);
    wait_until(60, "N connected to A and the liar", || {
        status(&n)["peers"].as_u64() == Some(2)
    });
    // The entry now arrives within a second of following: give both connections time to
    // settle their protocols first, or a request to the liar made too early marks it as
    // lacking the blob and A serves every range.
    std::thread::sleep(std::time::Duration::from_secs(3));
    follow(&n, &collection);
    wait_until(120, "the blob complete on N", || is_complete(&n, &hash));
    assert!(download(&n, &hash) == content, "nothing corrupt was kept");

    let (_, list) = n.get("/api/v1/blobs");
    let rejections = list["transfers"]["rejections"].as_array().unwrap();
    assert!(!rejections.is_empty(), "the bad range was noticed: {list}");
    let served = liar.served.lock().unwrap().clone();
    for rejection in rejections {
        assert_eq!(rejection["peer"], liar.peer_id.to_string());
        assert_eq!(rejection["hash"], hash);
        // The flipped byte is the range's last: caught at the chunk group holding it.
        let offset = rejection["offset"].as_u64().unwrap();
        let size = content.len() as u64;
        assert!(
            served.iter().any(|(start, len)| {
                let end = (start + len).min(size);
                offset == (end - 1) / 16384 * 16384
            }),
            "rejected at {offset}, the liar served {served:?}"
        );
    }
    let text = ureq::get(&format!("{}/metrics", n.api.base))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("minga_peers_dropped_total ") && !l.ends_with(" 0")),
        "the liar was dropped"
    );
}

#[test]
fn malformed_hashes_and_paths_are_refused_and_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let listing = |d: &Path| -> Vec<String> { walk(&d.join("blobs")) };
    let before = listing(dir.path());
    for bad in [
        // (A bare or %2e-encoded `..` never arrives: URL parsers resolve it before sending.)
        "..%2F..%2Fetc%2Fpasswd",
        "abc",
        &"z".repeat(64),
        &format!("{}%2F", "a".repeat(63)),
    ] {
        let (status, body) = node.get(&format!("/api/v1/blobs/{bad}"));
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "malformed_id");
    }
    let (status, _) = node.get(&format!("/api/v1/blobs/{}", "ab".repeat(32)));
    assert_eq!(status, 404, "well-formed and unknown");
    let out = dir.path().join("salida.bin");
    for bad in ["../../../../etc/passwd", "", &"0".repeat(63)] {
        let output = cli(
            dir.path(),
            &["blob", "get", bad, "--out", out.to_str().unwrap()],
        );
        assert_eq!(output.status.code(), Some(1), "{bad}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(!out.exists(), "nothing written for {bad:?}");
    }
    assert_eq!(listing(dir.path()), before, "the blob store is untouched");
}

fn walk(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            found.push(path.display().to_string());
            if path.is_dir() {
                found.extend(walk(&path));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn an_uploaded_html_file_is_served_as_a_sandboxed_download() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let html = "<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>";
    let (status, added) = node.post("/api/v1/blobs", html);
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["size"], json!(html.len()));
    assert_eq!(added["mime"], "text/html");
    let hash = added["hash"].as_str().unwrap();
    let response = ureq::get(&format!("{}/api/v1/blobs/{hash}", node.api.base))
        .call()
        .unwrap();
    assert_eq!(response.header("content-type"), Some("text/html"));
    assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    let csp = response.header("content-security-policy").unwrap();
    assert!(
        csp.contains("sandbox") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert!(
        response
            .header("content-disposition")
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(response.into_string().unwrap(), html);

    // A range, as audio players ask for.
    let response = ureq::get(&format!("{}/api/v1/blobs/{hash}", node.api.base))
        .set("Range", "bytes=2-9")
        .call()
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(
        response.header("content-range"),
        Some(format!("bytes 2-9/{}", html.len()).as_str())
    );
    assert!(response.header("x-content-type-options").is_some());
    assert_eq!(response.into_string().unwrap(), &html[2..10]);

    // Far over the configured limit: a clear 413, not a reset connection, and nothing kept.
    drop(node);
    let node = Node::start_with(dir.path(), &["--max-blob-mb", "1"]);
    let held = node.get("/api/v1/blobs").1["blobs"].clone();
    let big = "x".repeat(12 * MIB as usize);
    let (status, body) = node.post("/api/v1/blobs", &big);
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "too_large");
    assert_eq!(node.get("/api/v1/blobs").1["blobs"], held);
}

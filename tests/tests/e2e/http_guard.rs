//! The HTTP side against a hostile LAN and hostile web pages: requests naming another host
//! (DNS rebinding) change and reveal nothing, bundle routes stay inside the bundle directories
//! and need the operator, code guesses are throttled, and idle or slow connections neither
//! exhaust the node's file descriptors nor stay open.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use minga_tests::{Node, raw_http};
use serde_json::{Value, json};

const CODE: &str = "minga-2026";

fn create_entry(node: &Node, private: bool) -> String {
    let (status, _) = node.post("/api/v1/collections", r#"{"name": "semillas"}"#);
    assert!(status == 201 || status == 409 || status == 422, "{status}");
    let new = json!({"collection": "semillas", "kind": "practice", "title": "Quinua",
                     "body": "Lavar la saponina.", "license": "CC0-1.0", "private": private});
    let (status, answer) = node.post("/api/v1/entries", &new.to_string());
    assert_eq!(status, 201, "{answer}");
    answer["id"].as_str().unwrap().to_owned()
}

fn entry_count(node: &Node) -> usize {
    let (status, page) = node.get("/api/v1/entries?limit=500");
    assert_eq!(status, 200);
    page["entries"].as_array().unwrap().len()
}

#[test]
fn a_request_naming_another_host_is_misdirected_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let private = create_entry(&node, true);
    let port = node.addr().rsplit(':').next().unwrap().to_owned();
    let evil = format!("Host: evil.example:{port}\r\nOrigin: http://evil.example:{port}");
    let before = entry_count(&node);

    let new = json!({"collection": "semillas", "kind": "practice", "title": "Rebound",
                     "body": "x", "license": "CC0-1.0"})
    .to_string();
    let write =
        format!("POST /api/v1/entries HTTP/1.1\r\n{evil}\r\nContent-Type: application/json");
    let export = r#"{"all": true, "out": "rebound.minga"}"#;
    let export_request =
        format!("POST /api/v1/bundles/export HTTP/1.1\r\n{evil}\r\nContent-Type: application/json");
    let cases = [
        (write, new.as_str()),
        (export_request, export),
        (
            format!("GET /api/v1/entries/{private} HTTP/1.1\r\n{evil}"),
            "",
        ),
        (format!("GET /entries/{private} HTTP/1.1\r\n{evil}"), ""),
        (format!("GET / HTTP/1.1\r\n{evil}"), ""),
        (format!("GET /metrics HTTP/1.1\r\n{evil}"), ""),
    ];
    for (request, body) in &cases {
        let (status, _, answer) = raw_http(node.addr(), request, body);
        assert_eq!(status, 421, "{request}: {answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["error"]["code"], "misdirected", "{request}");
        assert!(!answer.to_string().contains("Quinua"));
    }
    // No Host at all is refused too.
    let (status, _, _) = raw_http(node.addr(), "GET /api/v1/status HTTP/1.1", "");
    assert!(status == 400 || status == 421, "{status}");

    assert_eq!(entry_count(&node), before);
    assert!(!dir.path().join("bundles/rebound.minga").exists());
    // The node's own names still work.
    for host in [node.addr().to_owned(), format!("localhost:{port}")] {
        let request = format!("GET /api/v1/entries/{private} HTTP/1.1\r\nHost: {host}");
        assert_eq!(raw_http(node.addr(), &request, "").0, 200, "{host}");
    }
}

#[test]
fn bundle_paths_stay_in_the_bundle_directories() {
    let (dir, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let node = Node::start(dir.path());
    create_entry(&node, false);
    let bundles = dir.path().join("bundles");
    assert!(bundles.is_dir(), "created at start");
    let export = |out: &str| {
        node.post(
            "/api/v1/bundles/export",
            &json!({"all": true, "out": out}).to_string(),
        )
    };

    // Escapes and paths elsewhere: 422, nothing written.
    let escaping = outside.path().join("escaped.minga");
    for out in [
        "../escaped.minga".to_owned(),
        "../../escaped.minga".to_owned(),
        escaping.to_str().unwrap().to_owned(),
        bundles
            .join("../escaped.minga")
            .to_str()
            .unwrap()
            .to_owned(),
    ] {
        let (status, answer) = export(&out);
        assert_eq!(status, 422, "{out}: {answer}");
        assert_eq!(answer["error"]["code"], "path_not_allowed", "{out}");
    }
    assert!(!escaping.exists() && !dir.path().join("escaped.minga").exists());

    // A symlink to a file elsewhere: refused both ways, the file unchanged.
    let target = outside.path().join("precious.txt");
    std::fs::write(&target, "keep me").unwrap();
    std::os::unix::fs::symlink(&target, bundles.join("link.minga")).unwrap();
    let (status, answer) = export("link.minga");
    assert_eq!(status, 422, "{answer}");
    let (status, answer) = node.post("/api/v1/bundles/import", r#"{"file": "link.minga"}"#);
    assert_eq!(status, 422, "{answer}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");

    // An existing file: 409, unchanged.
    std::fs::write(bundles.join("exists.minga"), "keep me too").unwrap();
    let (status, answer) = export("exists.minga");
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "conflict");
    assert_eq!(
        std::fs::read_to_string(bundles.join("exists.minga")).unwrap(),
        "keep me too"
    );

    // A relative path inside works both ways.
    let (status, answer) = export("fresh.minga");
    assert_eq!(status, 200, "{answer}");
    assert!(bundles.join("fresh.minga").is_file());
    let (status, answer) = node.post("/api/v1/bundles/import", r#"{"file": "fresh.minga"}"#);
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn bundle_routes_need_the_operators_token_not_a_contributor_code() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(
        dir.path(),
        &["--api", "0.0.0.0:0", "--contributor-code", CODE],
    );
    let contributor = node.api.clone().with_contributor_code(CODE);
    let (status, _) = contributor.post("/api/v1/collections", r#"{"name": "semillas"}"#);
    assert_eq!(status, 201, "the code writes entries");
    let export = r#"{"all": true, "out": "by-code.minga"}"#;
    let (status, answer) = contributor.post("/api/v1/bundles/export", export);
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["error"]["code"], "forbidden");
    assert!(!dir.path().join("bundles/by-code.minga").exists());

    let token = std::fs::read_to_string(dir.path().join("api.token")).unwrap();
    let request = format!(
        "POST /api/v1/bundles/export HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json",
        node.addr(),
        token.trim()
    );
    let (status, _, answer) = raw_http(node.addr(), &request, export);
    assert_eq!(status, 200, "{answer}");
    assert!(dir.path().join("bundles/by-code.minga").is_file());
}

#[test]
fn contributor_code_guesses_are_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(
        dir.path(),
        &["--api", "0.0.0.0:0", "--contributor-code", CODE],
    );
    let attempt = |code: &str| {
        let request = format!(
            "POST /api/v1/collections HTTP/1.1\r\nHost: {}\r\nX-Contributor-Code: {code}\r\nContent-Type: application/json",
            node.addr()
        );
        raw_http(node.addr(), &request, r#"{"name": "semillas"}"#)
    };
    let mut statuses = Vec::new();
    for n in 0..20 {
        let (status, head, body) = attempt(&format!("guess-{n}"));
        statuses.push(status);
        if status == 429 {
            assert!(body.contains("too_many_attempts"), "{body}");
            assert!(
                head.to_ascii_lowercase().contains("retry-after: "),
                "{head}"
            );
        }
    }
    assert_eq!(statuses[0], 403);
    assert_eq!(*statuses.last().unwrap(), 429, "{statuses:?}");
    // Even the right code waits now, and nothing was written.
    assert_eq!(attempt(CODE).0, 429);
    assert_eq!(node.get("/api/v1/collections").1["collections"], json!([]));
}

/// More idle connections than a service's 1,024 file descriptors from one client, and a few
/// that drip their headers: another client's request still gets its answer, and the server
/// closes the slow ones.
#[test]
fn idle_and_slow_connections_do_not_exhaust_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let addr: std::net::SocketAddr = node.addr().parse().unwrap();
    let idle: Vec<TcpStream> = (0..1100)
        .filter_map(|_| minga_tests::connect_from(minga_tests::OTHER_CLIENT, addr).ok())
        .collect();
    assert!(idle.len() > 1024, "only {} connected", idle.len());

    let dripping: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream
                    .write_all(b"GET /api/v1/status HTTP/1.1\r\nHost: localhost\r\n")
                    .unwrap();
                // A header line's byte a second, for at most two minutes: the server must
                // close the connection well before.
                let started = Instant::now();
                while started.elapsed() < Duration::from_secs(120) {
                    std::thread::sleep(Duration::from_secs(1));
                    if stream.write_all(b"X").is_err() {
                        return true;
                    }
                    stream.set_nonblocking(true).unwrap();
                    let mut byte = [0u8; 1];
                    let closed = match stream.read(&mut byte) {
                        Ok(_) => true,
                        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                    };
                    stream.set_nonblocking(false).unwrap();
                    if closed {
                        return true;
                    }
                }
                false
            })
        })
        .collect();

    let (status, answer) = node.get("/api/v1/status");
    assert_eq!(status, 200, "a normal request is served: {answer}");
    for slow in dripping {
        assert!(
            slow.join().unwrap(),
            "the server closed a slow-header connection"
        );
    }
    drop(idle);
    assert_eq!(node.get("/api/v1/status").0, 200);
}

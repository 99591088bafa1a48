//! Shared helpers for the end-to-end tests and load benchmarks: real `minga` processes, each
//! with its own data dir, talking HTTP on loopback ports chosen by the kernel.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod blob_peer;
pub mod cdp;
pub mod content;
pub mod demo;
pub mod flags;
pub mod hostile;
pub mod measure;
pub mod peer_swarm;
pub mod procfs;
pub mod real_stack;

/// The `minga` binary under test: `$MINGA_BIN`, or the workspace's, built once per test run in
/// the profile of the test binary itself. A debug build selects what the README's
/// `cargo test --workspace` selects, so the binary reuses that build's dependencies: `-p minga`
/// alone resolves features without the tests' dependencies and compiled 52 crates again.
pub fn minga_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("MINGA_BIN") {
            return PathBuf::from(bin);
        }
        let exe = std::env::current_exe().expect("the test binary's path");
        // target/<profile>/deps/<test> or target/<profile>/<bench>
        let profile_dir = exe
            .ancestors()
            .find(|dir| dir.join("deps").is_dir())
            .expect("the test binary lives under target/<profile>")
            .to_path_buf();
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "--bin", "minga"]);
        if release {
            build.args(["--release", "-p", "minga"]);
        } else {
            build.args(["--workspace", "--tests"]);
        }
        // Cargo sets the test's package variables (`CARGO_PKG_NAME`, ...) for this process, and
        // build scripts such as ring's rerun when one of them changes in cargo's environment:
        // left in, this build and the README's would rebuild ring and its dependents in turn.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("CARGO_PKG_")
                || key.starts_with("CARGO_MANIFEST_")
                || [
                    "CARGO_CRATE_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                ]
                .contains(&key.as_ref())
            {
                build.env_remove(key.as_ref());
            }
        }
        let status = build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo build for the minga binary");
        assert!(status.success(), "building the minga binary failed");
        profile_dir.join("minga")
    })
}

/// Runs one CLI command against a data dir.
pub fn cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(minga_bin())
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("MINGA_HOME")
        .output()
        .expect("running minga")
}

/// Creates the collection `archivo` on `node` and an entry in it with `file` attached through
/// the CLI; returns the collection id and the entry's attachment as the API shows it.
pub fn entry_with_attachment(node: &Node, file: &Path) -> anyhow::Result<(String, Value)> {
    use anyhow::{Context, ensure};
    let (status, answer) = node.post("/api/v1/collections", r#"{"name": "archivo"}"#);
    ensure!(
        status == 201,
        "creating a collection answered {status}: {answer}"
    );
    let collection = answer["id"].as_str().context("a collection id")?.to_owned();
    let id = cli_ok(
        &node.dir,
        &[
            "add",
            "--collection",
            &collection,
            "--kind",
            "resource",
            "--title",
            "Grabación",
            "--body",
            "Una historia del pueblo.",
            "--license",
            "CC-BY-4.0",
            "--attach",
            file.to_str().context("a UTF-8 path")?,
        ],
    );
    let (status, entry) = node.get(&format!("/api/v1/entries/{id}"));
    ensure!(
        status == 200,
        "reading the entry answered {status}: {entry}"
    );
    Ok((collection, entry["attachments"][0].clone()))
}

/// A data dir made by `minga init`: every command but `init` and `node` needs one.
pub fn node_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("data dir");
    cli_ok(dir.path(), &["init"]);
    dir
}

/// A CLI run's stdout, trimmed, asserting that it succeeded.
pub fn cli_ok(dir: &Path, args: &[&str]) -> String {
    let output = cli(dir, args);
    assert!(
        output.status.success(),
        "minga {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8 stdout")
        .trim()
        .to_owned()
}

/// A client of a node's HTTP API.
#[derive(Debug, Clone)]
pub struct Api {
    /// `http://HOST:PORT`
    pub base: String,
    agent: ureq::Agent,
    /// Sent as `X-Contributor-Code` with every request, for a node that listens on the LAN.
    code: Option<String>,
}

impl Api {
    pub fn new(base: impl Into<String>) -> Api {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .build();
        Api {
            base: base.into(),
            agent,
            code: None,
        }
    }

    /// The same client, writing with the operator's contributor code.
    pub fn with_contributor_code(mut self, code: &str) -> Api {
        self.code = Some(code.to_owned());
        self
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.send("POST", path, Some(body))
    }

    pub fn patch(&self, path: &str, body: &str) -> (u16, Value) {
        self.send("PATCH", path, Some(body))
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        self.send("DELETE", path, None)
    }

    /// A counter or gauge of the node's `/metrics`, by its full name (`..._total` for counters).
    pub fn metric(&self, name: &str) -> anyhow::Result<u64> {
        let text = self
            .agent
            .get(&format!("{}/metrics", self.base))
            .call()?
            .into_string()?;
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no metric {name} in /metrics"))
    }

    /// Sends a request; answers (status, JSON body or Null). Transport errors are status 0.
    pub fn send(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let mut request = self.agent.request(method, &format!("{}{path}", self.base));
        if let Some(code) = &self.code {
            request = request.set("X-Contributor-Code", code);
        }
        let response = match body {
            Some(body) => request
                .set("Content-Type", "application/json")
                .send_string(body),
            None => request.call(),
        };
        match response {
            Ok(r) | Err(ureq::Error::Status(_, r)) => {
                let status = r.status();
                let text = r.into_string().unwrap_or_default();
                (status, serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }
}

/// An HTTP/1.1 exchange written by hand, for what an HTTP client will not send (another `Host`,
/// none at all): `request` is everything up to the blank line ending the headers, without it;
/// `Connection: close` is added. Answers the status (0 when the server closed without one),
/// the response's head and its body.
pub fn raw_http(addr: &str, request: &str, body: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connecting to the node");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("a read timeout");
    let length = if body.is_empty() {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    let text = format!("{request}\r\n{length}Connection: close\r\n\r\n{body}");
    stream
        .write_all(text.as_bytes())
        .expect("sending the request");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// A running `minga node`.
pub struct Node {
    pub dir: PathBuf,
    pub api: Api,
    child: Child,
}

impl std::ops::Deref for Node {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

/// A LAN client other than the tests' own (127.0.0.1): connections from this source address
/// count against another client's share of the node's connections.
pub const OTHER_CLIENT: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 2);

/// A TCP connection to `addr` from `source` (any loopback address reaches a node on loopback).
pub fn connect_from(
    source: std::net::Ipv4Addr,
    addr: std::net::SocketAddr,
) -> std::io::Result<std::net::TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&std::net::SocketAddr::from((source, 0)).into())?;
    socket.connect_timeout(&addr.into(), Duration::from_secs(5))?;
    Ok(socket.into())
}

/// The soft open-file limit nodes run with: what systemd gives a service.
pub const NODE_NOFILE: u32 = 1024;

impl Node {
    /// `host:port` of the node's API.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// Starts a node on `dir` with the API and the peer-to-peer listener on free loopback ports,
    /// and mDNS off.
    pub fn start(dir: &Path) -> Node {
        Self::start_with(dir, &[])
    }

    pub fn start_with(dir: &Path, extra: &[&str]) -> Node {
        let mut args = vec!["--no-mdns"];
        args.extend_from_slice(extra);
        Self::spawn(dir, &args)
    }

    /// Starts a node with exactly these extra arguments (mDNS on unless `--no-mdns` is given).
    pub fn spawn(dir: &Path, extra: &[&str]) -> Node {
        let addr_file = dir.join("api.addr");
        let _ = std::fs::remove_file(&addr_file);
        // The node's log goes to node.log in its data dir, for a failing test to show.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("node.log"))
            .expect("opening node.log");
        let mut args = vec!["node"];
        if !extra.contains(&"--api") {
            args.extend(["--api", "127.0.0.1:0"]);
        }
        if !extra.contains(&"--listen") {
            args.extend(["--listen", "/ip4/127.0.0.1/tcp/0"]);
        }
        // Through the shell, which lowers the open-file limit to a service's and then becomes
        // the node (same pid).
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -Sn {NODE_NOFILE} && exec \"$0\" \"$@\""))
            .arg(minga_bin())
            .arg("--data-dir")
            .arg(dir)
            .args(args)
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("MINGA_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting minga node");
        let mut node = Node {
            dir: dir.to_path_buf(),
            api: Api::new(""),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(addr) = std::fs::read_to_string(&addr_file) {
                node.api = Api::new(format!("http://{}", addr.trim()));
                if node.get("/api/v1/status").0 == 200 {
                    return node;
                }
            }
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("minga node exited early with {status}");
            }
            assert!(Instant::now() < deadline, "minga node did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The node's libp2p peer id, as its status reports it.
    pub fn peer_id(&self) -> String {
        let (_, status) = self.get("/api/v1/status");
        status["peer_id"].as_str().expect("a peer id").to_owned()
    }

    /// The node's first peer-to-peer address, `/ip4/…/tcp/…/p2p/<peer id>`.
    pub fn p2p_addr(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, status) = self.get("/api/v1/status");
            if let Some(addr) = status["listen"].as_array().and_then(|l| l.first()) {
                return addr.as_str().expect("an address string").to_owned();
            }
            assert!(Instant::now() < deadline, "the node has no listen address");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a power cut would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit; returns whether it exited with status 0.
    pub fn stop(&mut self) -> bool {
        // The kill command keeps this crate free of unsafe code.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        self.child.wait().is_ok_and(|s| s.success())
    }
}

/// Polls `check` until it answers true, or panics after `seconds` with `what`.
pub fn wait_until(seconds: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A failing test shows the end of the node's log.
            let log = std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!(
                "--- {} node.log ---\n{}",
                self.dir.display(),
                tail.join("\n")
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deterministic incompressible bytes (xorshift64), as a reader of endless length: the same
/// seed gives the same bytes, so large test blobs need not be kept anywhere. The seed's lowest
/// bit is forced on, so seeds `2k` and `2k + 1` give the same bytes.
#[derive(Debug, Clone)]
pub struct RandomBytes {
    state: u64,
    /// Bytes of the current word not yet handed out.
    word: [u8; 8],
    used: usize,
}

impl RandomBytes {
    pub fn new(seed: u64) -> RandomBytes {
        RandomBytes {
            state: seed | 1,
            word: [0; 8],
            used: 8,
        }
    }
}

impl std::io::Read for RandomBytes {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        for byte in buf.iter_mut() {
            if self.used == 8 {
                self.state ^= self.state << 13;
                self.state ^= self.state >> 7;
                self.state ^= self.state << 17;
                self.word = self.state.to_le_bytes();
                self.used = 0;
            }
            *byte = self.word[self.used];
            self.used += 1;
        }
        Ok(buf.len())
    }
}

/// `size` bytes of [`RandomBytes`] from `seed`.
pub fn random_bytes(size: u64, seed: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(size as usize);
    std::io::Read::read_to_end(
        &mut std::io::Read::take(RandomBytes::new(seed), size),
        &mut bytes,
    )
    .expect("reading generated bytes");
    bytes
}

/// A `multipart/form-data` body of text fields then files `(field, file name, bytes)`, as a
/// browser sends the add and edit forms; answers the Content-Type and the body.
pub fn multipart(fields: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    const BOUNDARY: &str = "----mingaFormBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    for (name, file, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

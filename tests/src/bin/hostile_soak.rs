//! The hostile soak of issue 14: one node under attack from a libp2p peer and from HTTP clients
//! that cycle through every attack class, while an honest node keeps writing and syncing with
//! it. It reports the attacked node's memory, whether it ever stopped serving, how long honest
//! updates took to cross before and during the attacks, and whether anything invalid was
//! stored.
//!
//! ```text
//! cargo build --release -p minga -p minga-tests
//! ulimit -n 8192   # the attackers hold more connections than the node's 1,024 open files
//! MINGA_BIN=target/release/minga target/release/hostile_soak [--minutes 10] [--warmup-secs 60]
//! ```
//!
//! Progress on stderr, a Markdown table on stdout; exits non-zero when a goal is missed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use minga_protocol::reconcile::{DIGEST_LEN, Item, RangeBody, RangePart};
use minga_protocol::wire::{Offer, Payload, Request, SignedBytes, WireKind};
use minga_tests::flags::flag_values;
use minga_tests::hostile::{Hostile, Outcome};
use minga_tests::measure::{create_collection, follow};
use minga_tests::procfs::{RssSampler, peak_rss};
use minga_tests::{Api, Node, entry_with_attachment, wait_until};
use serde_json::json;

const USAGE: &str = "usage: hostile_soak [--minutes 10] [--warmup-secs 60]

  --minutes M      how long the attacks last (default 10)
  --warmup-secs S  honest traffic alone before the attacks, for the baseline (default 60)";

/// The goal of the issue: the attacked node's resident memory stays under this.
const RSS_GOAL: u64 = 300 * 1024 * 1024;
/// An honest write is made on each node this often.
const WRITE_EVERY: Duration = Duration::from_secs(2);
/// Idle connections the HTTP attacker holds open at once: more than a systemd service's
/// 1,024 open files.
const IDLE_CONNECTIONS: usize = 1_100;
/// Clients that send a header a byte at a time and never finish it.
const SLOW_HEADERS: usize = 60;

fn main() -> Result<()> {
    let mut minutes = 10u64;
    let mut warmup = 60u64;
    for (flag, value) in flag_values(USAGE)? {
        match flag.as_str() {
            "--minutes" => minutes = value.parse().context("--minutes")?,
            "--warmup-secs" => warmup = value.parse().context("--warmup-secs")?,
            _ => bail!("unknown argument {flag}\n{USAGE}"),
        }
    }
    let dirs = [tempfile::tempdir()?, tempfile::tempdir()?];
    let target = Node::start(dirs[0].path());
    let collection = create_collection(&target, "soak")?;
    let honest = Node::start_with(dirs[1].path(), &["--bootstrap", &target.p2p_addr()]);
    follow(&honest, &collection)?;
    wait_until(60, "the honest node holds the collection", || {
        honest
            .get("/api/v1/collections")
            .1
            .to_string()
            .contains(&collection)
    });
    let big_png = dirs[0].path().join("huge.png");
    std::fs::write(&big_png, huge_png())?;
    let (_, attachment) = entry_with_attachment(&target, &big_png)?;
    let png_hash = attachment["hash"]
        .as_str()
        .context("a blob hash")?
        .to_owned();

    let rss = RssSampler::start(&[target.pid()], Duration::from_millis(500));
    eprintln!("warm-up: {warmup} s of honest traffic alone");
    let stop = Arc::new(AtomicBool::new(false));
    let baseline = honest_traffic(
        &target,
        &honest,
        &collection,
        Duration::from_secs(warmup),
        &stop,
    );

    eprintln!("attacks: {minutes} min");
    let attacks = Attacks::default();
    let attack_for = Duration::from_secs(minutes * 60);
    let (during, serving) = std::thread::scope(|scope| {
        let addr = target.p2p_addr();
        let base = target.api.base.clone();
        let collection_id = collection.clone();
        let (stop_peer, stop_http, stop_conn) = (stop.clone(), stop.clone(), stop.clone());
        let attacks = &attacks;
        scope.spawn(move || peer_attacks(&addr, &collection_id, &stop_peer, attacks));
        scope.spawn(move || http_attacks(&base, &png_hash, &stop_http, attacks));
        let base = target.api.base.clone();
        scope.spawn(move || connection_attacks(&base, &stop_conn, attacks));
        let watch = scope.spawn(|| serving_checks(&target.api, &stop));
        let during = honest_traffic(&target, &honest, &collection, attack_for, &stop);
        stop.store(true, Ordering::Relaxed);
        (during, watch.join().expect("the serving watcher"))
    });
    let (samples, _) = rss.finish();
    let peak = peak_rss(target.pid()).unwrap_or(0);
    let max_sampled = samples.iter().map(|s| s.rss[0]).max().unwrap_or(0);

    let expected = baseline.written + during.written;
    let held = stored_entries(&target.api, &collection).unwrap_or(0);
    let report = Report {
        minutes,
        baseline,
        during,
        serving,
        max_sampled,
        peak,
        expected,
        held,
        attacks,
    };
    report.print();
    report.verdict()
}

/// What the honest nodes saw over one phase.
#[derive(Default)]
struct Honest {
    /// Entries written on either node.
    written: u64,
    /// Seconds from a write on one node until the other held it, both directions.
    crossings: Vec<f64>,
    /// Writes that did not cross within 60 s.
    missed: u64,
}

impl Honest {
    fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.crossings.clone();
        sorted.sort_by(f64::total_cmp);
        if sorted.is_empty() {
            return f64::NAN;
        }
        sorted[((sorted.len() - 1) as f64 * p).round() as usize]
    }
}

/// Writes an entry on each node in turn every [`WRITE_EVERY`] and times its arrival on the
/// other.
fn honest_traffic(
    target: &Node,
    honest: &Node,
    collection: &str,
    length: Duration,
    stop: &AtomicBool,
) -> Honest {
    let mut figures = Honest::default();
    let started = Instant::now();
    let mut turn = 0u64;
    while started.elapsed() < length && !stop.load(Ordering::Relaxed) {
        let (from, to) = if turn.is_multiple_of(2) {
            (target, honest)
        } else {
            (honest, target)
        };
        let new = json!({"collection": collection, "kind": "practice", "license": "CC0-1.0",
                         "title": format!("Práctica honesta {turn}"), "body": "Sigue llegando."});
        let (status, answer) = from.post("/api/v1/entries", &new.to_string());
        if status == 201
            && let Some(id) = answer["id"].as_str()
        {
            figures.written += 1;
            let written = Instant::now();
            let path = format!("/api/v1/entries/{id}");
            loop {
                if to.get(&path).0 == 200 {
                    figures.crossings.push(written.elapsed().as_secs_f64());
                    break;
                }
                if written.elapsed() > Duration::from_secs(60) {
                    figures.missed += 1;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        } else {
            eprintln!("an honest write answered {status}: {answer}");
        }
        turn += 1;
        std::thread::sleep(WRITE_EVERY.saturating_sub(Duration::from_millis(50)));
    }
    figures
}

/// Counts of what each attacker did.
#[derive(Default)]
struct Attacks {
    peer_rounds: AtomicU64,
    peer_answered_invalid: AtomicU64,
    peer_unreachable: AtomicU64,
    http_rounds: AtomicU64,
    http_unexpected: AtomicU64,
    connections_opened: AtomicU64,
}

/// The libp2p attacker: forged signatures, garbage and oversized frames, a decompression bomb, a
/// run-length bomb, an endless reconciliation, signed documents of a collection nobody asked for.
fn peer_attacks(addr: &str, collection: &str, stop: &AtomicBool, attacks: &Attacks) {
    let collection: minga_protocol::DocumentId = collection.parse().expect("a collection id");
    let bomb = compressed_change_bomb(1 << 30);
    let mut peer = Hostile::new();
    let frames: Vec<(&str, Vec<u8>)> = vec![
        (
            "decompression bomb",
            Hostile::frame(&changes([7; 16], bomb)),
        ),
        (
            "run-length bomb",
            Hostile::frame(&changes([9; 16], run_length_bomb(1 << 40))),
        ),
        (
            "forged change",
            Hostile::frame(&changes(
                [8; 16],
                vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 1, 0],
            )),
        ),
        (
            "endless reconciliation",
            Hostile::frame(&huge_reconcile(&collection)),
        ),
        (
            "oversized frame",
            [[0x7f, 0xff, 0xff, 0xff].as_slice(), &[0u8; 1000]].concat(),
        ),
        (
            "garbage",
            [
                [0, 0, 0, 24].as_slice(),
                &[0xde, 0xad, 0xbe, 0xef].repeat(6),
            ]
            .concat(),
        ),
    ];
    while !stop.load(Ordering::Relaxed) {
        for (what, frame) in &frames {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            // The harness peer panics when it cannot reach the node; a new one tries again.
            let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                peer.send(addr, frame.clone())
            }));
            let Ok(outcome) = sent else {
                attacks.peer_unreachable.fetch_add(1, Ordering::Relaxed);
                peer = Hostile::new();
                std::thread::sleep(Duration::from_secs(1));
                continue;
            };
            if let Outcome::Answered(bytes) = outcome
                && !bytes.is_empty()
                && !is_refusal(&bytes)
            {
                eprintln!("the node answered a {what} as if it were valid");
                attacks
                    .peer_answered_invalid
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        attacks.peer_rounds.fetch_add(1, Ordering::Relaxed);
    }
}

/// Whether a framed response is a refusal (or an empty reconciliation step).
fn is_refusal(bytes: &[u8]) -> bool {
    use minga_protocol::wire::{MAX_MESSAGE_BYTES, Response, decode};
    matches!(
        bytes
            .get(4..)
            .map(|body| decode::<Response>(body, MAX_MESSAGE_BYTES)),
        Some(Ok(Response::Refused { .. }))
    )
}

fn changes(id: [u8; 16], change: Vec<u8>) -> Request {
    Request::Sync {
        offers: vec![Offer {
            id,
            kind: WireKind::Entry,
            heads: Vec::new(),
            payload: Payload::Changes(vec![SignedBytes {
                change,
                signature: vec![0; 64],
            }]),
        }],
    }
}

/// An automerge compressed change chunk (type 2) whose DEFLATE body inflates to `inflated`
/// zero bytes; its checksum is wrong, which automerge only finds after inflating it.
fn compressed_change_bomb(inflated: usize) -> Vec<u8> {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..inflated / zeros.len() {
        encoder.write_all(&zeros).expect("deflating into memory");
    }
    let body = encoder.finish().expect("deflating into memory");
    [
        vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 2],
        leb128(body.len() as u64),
        body,
    ]
    .concat()
}

/// An uncompressed change chunk of a few dozen bytes whose run-length encoded columns declare
/// `rows` insertions into a list, each of them valid: automerge decodes one after another.
fn run_length_bomb(rows: i64) -> Vec<u8> {
    let run = |value: u64| [signed_leb128(rows), leb128(value)].concat();
    // (column id, column type, data): the op columns automerge writes for list insertions.
    let columns: [(u64, u64, Vec<u8>); 8] = [
        (0, 1, run(0)), // object: actor
        (0, 2, run(1)), // object: counter
        (
            1,
            1,
            [vec![0, 1], signed_leb128(rows - 1), vec![0]].concat(),
        ), // key: actor
        (
            1,
            3,
            [vec![0x7e, 0, 2], signed_leb128(rows - 2), vec![1]].concat(),
        ), // key: counter
        (3, 4, [vec![0], leb128(rows as u64)].concat()), // insert
        (4, 2, run(1)), // action: set
        (5, 6, run(0)), // value: null
        (7, 0, run(0)), // no predecessors
    ];
    // No dependencies, one actor byte, sequence 1, first op 2, time 0, no message, no others.
    let mut data = vec![0, 1, 0x78, 1, 2, 0, 0, 0];
    data.extend(leb128(columns.len() as u64));
    for (id, kind, column) in &columns {
        data.extend(leb128((id << 4) | kind));
        data.extend(leb128(column.len() as u64));
    }
    for (_, _, column) in &columns {
        data.extend(column);
    }
    [
        vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 1],
        leb128(data.len() as u64),
        data,
    ]
    .concat()
}

fn leb128(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn signed_leb128(mut value: i64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if (value == 0 && byte & 0x40 == 0) || (value == -1 && byte & 0x40 != 0) {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// A reconciliation step listing 500,000 items in one range.
fn huge_reconcile(collection: &minga_protocol::DocumentId) -> Request {
    let items = (0..500_000u32)
        .map(|i| {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&i.to_be_bytes());
            Item {
                id,
                digest: [1; DIGEST_LEN],
            }
        })
        .collect();
    Request::Reconcile {
        collection: *collection.as_bytes(),
        parts: vec![RangePart {
            upper: None,
            body: RangeBody::Items(items),
        }],
    }
}

/// The HTTP attacker: huge cursors, foreign `Host` headers, bundle paths outside the bundle
/// directory, oversized bodies, broken forms, concurrent thumbnails of a 9000×9000 image.
fn http_attacks(base: &str, png_hash: &str, stop: &AtomicBool, attacks: &Attacks) {
    let api = Api::new(base);
    let host = base.trim_start_matches("http://").to_owned();
    while !stop.load(Ordering::Relaxed) {
        let unexpected = |what: &str, status: u16, allowed: &[u16]| {
            if !allowed.contains(&status) {
                eprintln!("{what} answered {status}");
                attacks.http_unexpected.fetch_add(1, Ordering::Relaxed);
            }
        };
        let (status, _) = api.get("/api/v1/entries?q=cacao&cursor=100000000000000000");
        unexpected("a huge search cursor", status, &[400]);
        // A page answers the refusal in a page of its own, with the way back.
        let (status, _) = api.get("/search?q=cacao&cursor=100000000000000000");
        unexpected("a huge page cursor", status, &[200, 400]);
        let status = raw_status(
            &host,
            "POST /api/v1/bundles/export HTTP/1.1\r\nHost: evil.example\r\nOrigin: http://evil.example\r\nContent-Type: application/json\r\nContent-Length: 27\r\nConnection: close\r\n\r\n{\"all\":true,\"out\":\"x.mbx\"}",
        );
        unexpected("a rebinding write", status, &[421]);
        let (status, _) = api.post(
            "/api/v1/bundles/export",
            r#"{"all": true, "out": "/tmp/../etc/minga-soak.mbx"}"#,
        );
        unexpected("a bundle path outside the bundle directory", status, &[422]);
        let huge = "x".repeat(20 * 1024 * 1024);
        let (status, _) = api.post("/api/v1/entries", &huge);
        unexpected("a 20 MiB body", status, &[0, 413]);
        let status = raw_status(
            &host,
            "POST /entries/new HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=X\r\nContent-Length: 18\r\nConnection: close\r\n\r\n--X\r\nbroken\r\n--Y\r\n",
        );
        unexpected("a broken form", status, &[400, 403, 404, 422]);
        std::thread::scope(|scope| {
            for _ in 0..6 {
                scope.spawn(|| api.get(&format!("/thumbnails/640/{png_hash}")));
            }
        });
        attacks.http_rounds.fetch_add(1, Ordering::Relaxed);
    }
}

/// The connection attacker: more idle connections than a service's open-file limit, and
/// clients that never finish their headers, renewed every minute.
fn connection_attacks(base: &str, stop: &AtomicBool, attacks: &Attacks) {
    let addr: std::net::SocketAddr = base
        .trim_start_matches("http://")
        .parse()
        .expect("the node's address");
    while !stop.load(Ordering::Relaxed) {
        let mut held = Vec::new();
        for i in 0..IDLE_CONNECTIONS + SLOW_HEADERS {
            // From another address than the honest clients', as an attacker on the LAN.
            if let Ok(mut stream) = minga_tests::connect_from(minga_tests::OTHER_CLIENT, addr) {
                if i < SLOW_HEADERS {
                    let _ = stream.write_all(b"GET /api/v1/status HTTP/1.1\r\nX-Slow: ");
                }
                held.push(stream);
                attacks.connections_opened.fetch_add(1, Ordering::Relaxed);
            }
        }
        for _ in 0..60 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            for stream in held.iter_mut().take(SLOW_HEADERS) {
                let _ = stream.write_all(b"a");
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// One request written on a fresh connection; the status of its answer, or 0.
fn raw_status(addr: &str, request: &str) -> u16 {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return 0;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    if stream.write_all(request.as_bytes()).is_err() {
        return 0;
    }
    let mut head = [0u8; 12];
    match stream.read_exact(&mut head) {
        Ok(()) => std::str::from_utf8(&head[9..12])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        Err(_) => 0,
    }
}

/// Whether the node kept serving: `GET /api/v1/status` once a second on a fresh client. A
/// node that fails ten checks in a row is taken for dead, and the soak ends.
struct Serving {
    checks: u64,
    failures: u64,
}

fn serving_checks(api: &Api, stop: &AtomicBool) -> Serving {
    let mut serving = Serving {
        checks: 0,
        failures: 0,
    };
    let mut in_a_row = 0;
    while !stop.load(Ordering::Relaxed) {
        let fresh = Api::new(api.base.clone());
        serving.checks += 1;
        if fresh.get("/api/v1/status").0 == 200 {
            in_a_row = 0;
        } else {
            serving.failures += 1;
            in_a_row += 1;
            if in_a_row == 10 {
                eprintln!("the node has failed ten status checks in a row: ending the soak");
                stop.store(true, Ordering::Relaxed);
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    serving
}

/// Entries of the soak collection the node holds.
fn stored_entries(api: &Api, collection: &str) -> Result<u64> {
    let mut count = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/entries?collection={collection}&limit=500");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = api.get(&path);
        anyhow::ensure!(status == 200, "listing entries answered {status}");
        count += page["entries"].as_array().map_or(0, Vec::len) as u64;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(count),
        }
    }
}

/// A 9000×9000 grey PNG: a few hundred KB that decodes to 81 million pixels.
fn huge_png() -> Vec<u8> {
    let side = 9000u32;
    let image = image::GrayImage::from_pixel(side, side, image::Luma([128]));
    let mut bytes = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, image::ImageOutputFormat::Png)
        .expect("encoding a PNG into memory");
    bytes.into_inner()
}

struct Report {
    minutes: u64,
    baseline: Honest,
    during: Honest,
    serving: Serving,
    max_sampled: u64,
    peak: u64,
    expected: u64,
    held: u64,
    attacks: Attacks,
}

impl Report {
    fn print(&self) {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
        println!("| hostile soak, {} min | figure |", self.minutes);
        println!("|---|---|");
        println!(
            "| attacked node RSS, max sampled / peak (VmHWM) | {:.0} MiB / {:.0} MiB |",
            mib(self.max_sampled),
            mib(self.peak)
        );
        println!(
            "| status checks failed | {} of {} |",
            self.serving.failures, self.serving.checks
        );
        for (phase, honest) in [
            ("before attacks", &self.baseline),
            ("under attack", &self.during),
        ] {
            println!(
                "| honest updates {phase}: crossed, p50 / p99 / max, missed | {} in {:.2} / {:.2} / {:.2} s, {} missed |",
                honest.crossings.len(),
                honest.percentile(0.5),
                honest.percentile(0.99),
                honest.percentile(1.0),
                honest.missed
            );
        }
        println!(
            "| entries held / written on the node | {} / {} |",
            self.held, self.expected
        );
        println!(
            "| attack rounds: peer (unreachable), HTTP; connections opened | {} ({}), {}; {} |",
            count(&self.attacks.peer_rounds),
            count(&self.attacks.peer_unreachable),
            count(&self.attacks.http_rounds),
            count(&self.attacks.connections_opened)
        );
        println!(
            "| attacks answered as valid: peer, HTTP | {}, {} |",
            count(&self.attacks.peer_answered_invalid),
            count(&self.attacks.http_unexpected)
        );
    }

    fn verdict(&self) -> Result<()> {
        let mut missed = Vec::new();
        if self.peak >= RSS_GOAL {
            missed.push("RSS above 300 MiB");
        }
        if self.serving.failures > 0 {
            missed.push("the node stopped serving");
        }
        if self.during.missed > 0 {
            missed.push("honest updates missed");
        }
        if self.held != self.expected {
            missed.push("entries held differ from entries written");
        }
        if self.attacks.peer_answered_invalid.load(Ordering::Relaxed) > 0
            || self.attacks.http_unexpected.load(Ordering::Relaxed) > 0
        {
            missed.push("an attack was answered as valid");
        }
        if missed.is_empty() {
            Ok(())
        } else {
            bail!("goals missed: {}", missed.join(", "))
        }
    }
}

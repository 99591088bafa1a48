//! Helpers the network benchmarks share: a node's byte counters and round trips, entries
//! created through the API from client threads, polling with progress, and process figures
//! from `/proc`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde_json::json;

use crate::{Api, Node, content};

/// Sent and received bytes of a node's transport.
#[derive(Clone, Copy)]
pub struct Wire {
    pub sent: u64,
    pub received: u64,
}

impl Wire {
    pub fn total(self) -> u64 {
        self.sent + self.received
    }
}

pub fn wire(node: &Api) -> Result<Wire> {
    let (status, body) = node.get("/api/v1/status");
    ensure!(status == 200, "status answered {status}: {body}");
    Ok(Wire {
        sent: body["bytes_sent"].as_u64().context("bytes_sent")?,
        received: body["bytes_received"].as_u64().context("bytes_received")?,
    })
}

pub fn entries_on(node: &Api) -> Result<u64> {
    let (status, body) = node.get("/api/v1/status");
    ensure!(status == 200, "status answered {status}: {body}");
    body["entries"].as_u64().context("entries in the status")
}

pub fn create_collection(node: &Api, name: &str) -> Result<String> {
    let (status, body) = node.post("/api/v1/collections", &json!({ "name": name }).to_string());
    ensure!(
        status == 201,
        "creating a collection answered {status}: {body}"
    );
    Ok(body["id"].as_str().context("collection id")?.to_owned())
}

pub fn follow(node: &Api, collection: &str) -> Result<()> {
    let (status, body) = node.post(&format!("/api/v1/collections/{collection}/follow"), "");
    ensure!(status == 200, "follow answered {status}: {body}");
    Ok(())
}

/// The address a node listens on, without its peer id, to restart it on the same port.
pub fn listen_addr(node: &Node) -> String {
    let addr = node.p2p_addr();
    addr.split("/p2p/").next().unwrap_or(&addr).to_owned()
}

/// Polls `done` every `every` until it answers true, printing `progress` every 10 s.
pub fn wait_for(
    timeout: Duration,
    what: &str,
    every: Duration,
    mut done: impl FnMut() -> Result<bool>,
    mut progress: impl FnMut() -> Result<String>,
) -> Result<()> {
    let started = Instant::now();
    let mut shown = Instant::now();
    while !done()? {
        if started.elapsed() > timeout {
            bail!(
                "timed out after {:.0} s waiting for {what}: {}",
                secs(timeout),
                progress()?
            );
        }
        if shown.elapsed() >= Duration::from_secs(10) {
            eprintln!("  {:.0} s: {}", secs(started.elapsed()), progress()?);
            shown = Instant::now();
        }
        std::thread::sleep(every);
    }
    Ok(())
}

/// Lets the last exchanges finish.
pub fn settle() {
    std::thread::sleep(Duration::from_secs(2));
}

pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

pub fn kb(bytes: u64) -> String {
    format!("{:.1} KB", bytes as f64 / 1000.0)
}

pub fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1_000_000.0)
}

pub fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Creates practices number `range` of `seed` through `POST /api/v1/entries` from `clients`
/// threads, then, with `sessions`, PATCHes each one's later edit sessions
/// ([`content::later_sessions`]); answers their ids in order.
pub fn create_entries(
    api: &Api,
    collection: &str,
    seed: u64,
    clients: usize,
    sessions: bool,
    range: std::ops::Range<usize>,
) -> Result<Vec<String>> {
    let count = range.len();
    let ids = Mutex::new(vec![String::new(); count]);
    let next = AtomicUsize::new(0);
    let step = (count / 10).max(1);
    let started = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..clients.min(count))
            .map(|_| {
                let api = Api::new(api.base.clone());
                let (ids, next) = (&ids, &next);
                scope.spawn(move || -> Result<()> {
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= count {
                            return Ok(());
                        }
                        let i = (range.start + k) as u64;
                        let new = content::practice(seed, i, collection);
                        let (status, answer) = api.post("/api/v1/entries", &new.to_string());
                        ensure!(status == 201, "entry {i}: POST answered {status}: {answer}");
                        let id = answer["id"].as_str().context("the new id")?.to_owned();
                        if sessions {
                            let body = new["body"].as_str().context("a body")?;
                            for later in content::later_sessions(seed, i, body) {
                                let patch = json!({ "body": later }).to_string();
                                let path = format!("/api/v1/entries/{id}");
                                let (status, answer) = api.patch(&path, &patch);
                                ensure!(status == 200, "PATCH {id} answered {status}: {answer}");
                            }
                        }
                        ids.lock().map_err(|_| anyhow!("ids lock"))?[k] = id;
                        if count >= 1000 && (k + 1) % step == 0 {
                            eprintln!("  {} entries, {:.0} s", k + 1, secs(started.elapsed()));
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow!("a client thread panicked"))??;
        }
        Ok(())
    })?;
    ids.into_inner().map_err(|_| anyhow!("ids lock"))
}

/// Requests a node has sent on `/minga/sync/1` since it started (`/metrics`): each is answered
/// by one response, so this counts its round trips.
pub fn sync_requests(node: &Node) -> Result<u64> {
    node.metric("minga_sync_requests_sent_total")
}

/// Polls a byte counter every 100 ms until it has not moved for `quiet` (at most a minute);
/// answers its last value and when it last moved.
pub fn wait_quiet(
    quiet: Duration,
    mut read: impl FnMut() -> Result<u64>,
) -> Result<(u64, Instant)> {
    let started = Instant::now();
    let mut last = read()?;
    let mut since = Instant::now();
    while since.elapsed() < quiet && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
        let now = read()?;
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
    Ok((last, since))
}

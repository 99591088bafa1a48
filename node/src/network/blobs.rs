//! Blob transfer over `/minga/blob/1`: serving ranges of complete blobs, and fetching the
//! blobs of held entries (all of them on a mirror, else smallest first within the budget).
//!
//! A download asks connected peers for 1 MiB ranges, several at once and spread over peers;
//! each response is verified chunk group by chunk group against the blob's hash off the swarm
//! task before a byte is written. A peer whose bytes fail is dropped and not asked again; one
//! that lacks the blob is skipped for a while. The verified prefix is recorded every few MiB
//! (after an fsync), so a restart resumes from it.
//!
//! A download that no connected peer can serve (every one lacks the blob, or none is connected)
//! gives its slot up and waits, twice as long after each such attempt up to an hour, or until
//! a peer connects: attachments nobody holds never keep the others waiting.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::{PeerId, Swarm};
use minga_protocol::BlobHash;
use minga_protocol::blob::{BlobRequest, BlobResponseHead};
use tokio::sync::{Semaphore, mpsc};

use super::behaviour::Behaviour;
use super::blob_codec::BlobReply;
use crate::blobs::{Download, Rejection, verified};
use crate::{BlobLimits, BlobStore};

/// Bytes asked for in one request.
pub(crate) const RANGE_BYTES: u64 = 1024 * 1024;
/// Requests in flight per download, and per peer.
const MAX_IN_FLIGHT: usize = 8;
const MAX_PER_PEER: usize = 4;
/// Downloads at once.
const MAX_DOWNLOADS: usize = 2;
/// The verified prefix is recorded after this many new bytes.
const RECORD_EVERY: u64 = 4 * RANGE_BYTES;
/// A peer that lacks a blob is not asked for it again for this long.
const LACKING_FOR: Duration = Duration::from_secs(5);
/// Ranges being encoded for peers at once.
const MAX_SERVING: usize = 4;
/// Finished pieces of work waiting for the network task.
const DONE_QUEUE: usize = 64;

/// A download no peer could serve is not started again for this long, doubled after each
/// such attempt up to [`MAX_BACKOFF`]; a peer connecting ends the wait.
const FIRST_BACKOFF: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Missing blobs considered per plan, smallest first: only [`MAX_DOWNLOADS`] run at once.
const MAX_WANTED: usize = 1024;

/// How often downloads are planned and the rate allowance refilled.
pub const PLAN_EVERY: Duration = Duration::from_millis(250);

/// Results of blocking work, handed back to the network task.
#[derive(Debug)]
pub enum Done {
    /// A range encoded for the peer that asked for it.
    Served(PeerId, ResponseChannel<BlobReply>, BlobReply),
    Began(BlobHash, Result<u64, String>),
    Verified {
        hash: BlobHash,
        start: u64,
        peer: PeerId,
        outcome: Result<(), (u64, String)>,
    },
    Recorded(BlobHash),
    Finished(BlobHash, Result<(), String>),
}

/// One blob being fetched.
#[derive(Debug)]
struct Fetch {
    size: u64,
    /// Verified and written from the start.
    prefix: u64,
    /// The next range never asked for.
    next: u64,
    /// Ranges to ask for again (a peer lacked them, failed, or served bad bytes).
    retry: BTreeSet<u64>,
    /// Verified ranges beyond the prefix.
    done: BTreeSet<u64>,
    in_flight: usize,
    /// Ranges received and being verified.
    verifying: usize,
    per_peer: HashMap<PeerId, usize>,
    lacking: HashMap<PeerId, Instant>,
    recorded: u64,
    recording: bool,
    /// Set up (the partial file is open) and not yet finishing.
    ready: bool,
    finishing: bool,
}

impl Fetch {
    /// A download of `size` bytes not yet begun: its partial file is still being opened.
    fn new(size: u64) -> Fetch {
        Fetch {
            size,
            prefix: 0,
            next: 0,
            retry: BTreeSet::new(),
            done: BTreeSet::new(),
            in_flight: 0,
            verifying: 0,
            per_peer: HashMap::new(),
            lacking: HashMap::new(),
            recorded: 0,
            recording: false,
            ready: false,
            finishing: false,
        }
    }

    /// Whether the download is waiting on nothing and none of the connected peers can be asked
    /// (`askable`): then it gives its slot up.
    fn stalled(&self, askable: bool) -> bool {
        let to_ask = !self.retry.is_empty() || self.next < self.size;
        self.ready
            && !self.finishing
            && !self.recording
            && self.in_flight == 0
            && self.verifying == 0
            && to_ask
            && !askable
    }
}

/// A blob no peer could serve: how often that happened, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unavailable {
    attempts: u32,
    until: Instant,
}

impl Unavailable {
    /// After one more attempt that found no peer, at `now`.
    fn after(previous: Option<Unavailable>, now: Instant) -> Self {
        let attempts = previous.map_or(1, |p| p.attempts.saturating_add(1));
        let wait = FIRST_BACKOFF
            .saturating_mul(1 << (attempts - 1).min(16))
            .min(MAX_BACKOFF);
        Unavailable {
            attempts,
            until: now + wait,
        }
    }
}

/// The fetching and serving side of blobs; owned by the network task.
pub struct Fetcher {
    blobs: BlobStore,
    limits: BlobLimits,
    mirror: bool,
    fetches: HashMap<BlobHash, Fetch>,
    /// Wanted blobs no peer could serve, waiting before they are tried again.
    unavailable: HashMap<BlobHash, Unavailable>,
    requests: HashMap<OutboundRequestId, (BlobHash, u64, PeerId)>,
    /// Peers that served bytes that failed verification, not asked again this run.
    distrusted: HashSet<PeerId>,
    done_tx: mpsc::Sender<Done>,
    done_rx: mpsc::Receiver<Done>,
    serving: Arc<Semaphore>,
    /// Bytes that may be asked for now under the rate limit.
    allowance: u64,
    refilled: Instant,
}

impl Fetcher {
    pub fn new(blobs: BlobStore, limits: BlobLimits, mirror: bool) -> Self {
        let (done_tx, done_rx) = mpsc::channel(DONE_QUEUE);
        Fetcher {
            blobs,
            limits,
            mirror,
            fetches: HashMap::new(),
            unavailable: HashMap::new(),
            requests: HashMap::new(),
            distrusted: HashSet::new(),
            done_tx,
            done_rx,
            serving: Arc::new(Semaphore::new(MAX_SERVING)),
            allowance: 0,
            refilled: Instant::now(),
        }
    }

    /// The next finished piece of work.
    pub async fn next_done(&mut self) -> Option<Done> {
        self.done_rx.recv().await
    }

    /// Starts the downloads that are wanted and not running, and refills the rate allowance.
    pub fn plan(&mut self, swarm: &mut Swarm<Behaviour>) {
        let now = Instant::now();
        if self.limits.fetch_rate > 0 {
            let earned = self.limits.fetch_rate as f64 * (now - self.refilled).as_secs_f64();
            self.allowance = (self.allowance + earned as u64)
                .min(2 * RANGE_BYTES.max(self.limits.fetch_rate / 4));
        }
        self.refilled = now;
        match self.wanted() {
            Ok(wanted) => {
                // Downloads no longer wanted (the entry went) stop; their requests finish unheard.
                self.fetches
                    .retain(|hash, _| wanted.iter().any(|(h, _)| h == hash));
                for (hash, size) in wanted {
                    if self.fetches.len() >= MAX_DOWNLOADS {
                        break;
                    }
                    if self.fetches.contains_key(&hash) {
                        continue;
                    }
                    self.begin(hash, size);
                }
            }
            Err(e) => tracing::error!("planning blob downloads: {e}"),
        }
        let hashes: Vec<BlobHash> = self.fetches.keys().copied().collect();
        for hash in hashes {
            self.fill(&hash, swarm);
        }
        self.publish();
    }

    /// A peer connected: blobs no peer could serve are tried again at the next plan.
    pub fn peer_connected(&mut self) {
        let now = Instant::now();
        for unavailable in self.unavailable.values_mut() {
            unavailable.until = unavailable.until.min(now);
        }
    }

    /// Missing blobs of held entries, smallest first, within the budget unless a mirror, and
    /// at most [`MAX_WANTED`]; those waiting after no peer could serve them are left out (and
    /// forgotten once no longer missing).
    fn wanted(&mut self) -> Result<Vec<(BlobHash, u64)>, crate::StoreError> {
        let store = self.blobs.store();
        let mut held = 0u64;
        let mut missing = Vec::new();
        for blob in store.blob_refs()? {
            match store.blob(&blob.hash)? {
                Some(record) if record.complete => held += record.size,
                _ if blob.size <= self.limits.max_blob_bytes => {
                    missing.push((blob.size, blob.hash))
                }
                _ => {}
            }
        }
        missing.sort();
        let missing_hashes: HashSet<BlobHash> = missing.iter().map(|(_, h)| *h).collect();
        self.unavailable.retain(|h, _| missing_hashes.contains(h));
        let now = Instant::now();
        let mut wanted = Vec::new();
        for (size, hash) in missing {
            if !self.mirror && held + size > self.limits.fetch_budget || wanted.len() == MAX_WANTED
            {
                break;
            }
            held += size;
            if self.unavailable.get(&hash).is_none_or(|u| u.until <= now) {
                wanted.push((hash, size));
            }
        }
        Ok(wanted)
    }

    fn begin(&mut self, hash: BlobHash, size: u64) {
        self.fetches.insert(hash, Fetch::new(size));
        let blobs = self.blobs.clone();
        let done = self.done_tx.clone();
        tokio::task::spawn_blocking(move || {
            let began = blobs.begin_download(&hash, size).map_err(|e| e.to_string());
            let _ = done.blocking_send(Done::Began(hash, began));
        });
    }

    /// Sends requests for a download up to its limits.
    fn fill(&mut self, hash: &BlobHash, swarm: &mut Swarm<Behaviour>) {
        let connected: Vec<PeerId> = swarm.connected_peers().copied().collect();
        let rate_limited = self.limits.fetch_rate > 0;
        let Some(fetch) = self.fetches.get_mut(hash) else {
            return;
        };
        if !fetch.ready || fetch.finishing {
            return;
        }
        let now = Instant::now();
        fetch.lacking.retain(|_, since| now - *since < LACKING_FOR);
        while fetch.in_flight < MAX_IN_FLIGHT {
            let start = match fetch.retry.first().copied() {
                Some(start) => start,
                None if fetch.next < fetch.size => fetch.next,
                None => break,
            };
            let len = RANGE_BYTES.min(fetch.size - start);
            if rate_limited && self.allowance < len {
                break;
            }
            // The peer with the fewest of this download's requests: ranges spread over peers.
            let Some(peer) = connected
                .iter()
                .filter(|p| !self.distrusted.contains(p) && !fetch.lacking.contains_key(p))
                .filter(|p| fetch.per_peer.get(p).copied().unwrap_or(0) < MAX_PER_PEER)
                .min_by_key(|p| (fetch.per_peer.get(p).copied().unwrap_or(0), p.to_bytes()))
                .copied()
            else {
                break;
            };
            if fetch.retry.remove(&start) {
            } else {
                fetch.next += RANGE_BYTES;
            }
            if rate_limited {
                self.allowance -= len;
            }
            fetch.in_flight += 1;
            *fetch.per_peer.entry(peer).or_default() += 1;
            let request = BlobRequest {
                hash: *hash,
                start,
                len,
            };
            let id = swarm.behaviour_mut().blob.send_request(&peer, request);
            self.requests.insert(id, (*hash, start, peer));
        }
        let askable = connected
            .iter()
            .any(|p| !self.distrusted.contains(p) && !fetch.lacking.contains_key(p));
        if fetch.stalled(askable) {
            let previous = self.unavailable.get(hash).copied();
            let unavailable = Unavailable::after(previous, now);
            tracing::info!(
                %hash,
                attempts = unavailable.attempts,
                "no connected peer has this blob; its download waits {:?}",
                unavailable.until - now
            );
            self.unavailable.insert(*hash, unavailable);
            self.fetches.remove(hash);
            self.blobs.progress().downloads.remove(&hash.to_hex());
        }
    }

    /// Handles an event of the blob behaviour; returns the peers to drop, and why.
    pub fn on_event(
        &mut self,
        event: request_response::Event<BlobRequest, BlobReply>,
        swarm: &mut Swarm<Behaviour>,
    ) -> Vec<(PeerId, String)> {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => self.serve(peer, request, channel),
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some((hash, start)) = self.settle(&request_id) {
                    return self.on_reply(hash, start, peer, response, swarm);
                }
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some((hash, start)) = self.settle(&request_id) {
                    tracing::debug!(%peer, %hash, start, "blob request failed: {error}");
                    if let Some(fetch) = self.fetches.get_mut(&hash) {
                        fetch.retry.insert(start);
                        fetch.lacking.insert(peer, Instant::now());
                    }
                    if matches!(error, request_response::OutboundFailure::Io(ref e) if e.kind() == std::io::ErrorKind::InvalidData)
                    {
                        self.distrusted.insert(peer);
                        return vec![(peer, format!("malformed blob response: {error}"))];
                    }
                    self.fill(&hash, swarm);
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, "serving a blob range failed: {error}");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
        Vec::new()
    }

    /// A request finished: forget it and free its slots. Returns what it asked for.
    fn settle(&mut self, id: &OutboundRequestId) -> Option<(BlobHash, u64)> {
        let (hash, start, peer) = self.requests.remove(id)?;
        let fetch = self.fetches.get_mut(&hash)?;
        fetch.in_flight = fetch.in_flight.saturating_sub(1);
        if let Some(n) = fetch.per_peer.get_mut(&peer) {
            *n = n.saturating_sub(1);
        }
        Some((hash, start))
    }

    fn on_reply(
        &mut self,
        hash: BlobHash,
        start: u64,
        peer: PeerId,
        reply: BlobReply,
        swarm: &mut Swarm<Behaviour>,
    ) -> Vec<(PeerId, String)> {
        let Some(fetch) = self.fetches.get_mut(&hash) else {
            return Vec::new();
        };
        let size = fetch.size;
        match reply.head {
            BlobResponseHead::Range { size: theirs, .. } if theirs == size => {
                fetch.verifying += 1;
                let len = RANGE_BYTES.min(size - start);
                let blobs = self.blobs.clone();
                let done = self.done_tx.clone();
                tokio::task::spawn_blocking(move || {
                    let outcome =
                        match verified::decode_range(&hash, size, start, len, &reply.encoded) {
                            Ok(pieces) => blobs
                                .write_pieces(&hash, &pieces)
                                .map_err(|e| (start, format!("writing: {e}"))),
                            Err(bad) => Err((bad.offset, bad.reason)),
                        };
                    let _ = done.blocking_send(Done::Verified {
                        hash,
                        start,
                        peer,
                        outcome,
                    });
                });
                Vec::new()
            }
            head => {
                // Lacking the blob, refusing, or holding other bytes than the entry declares.
                tracing::debug!(%peer, %hash, ?head, "peer does not serve this blob");
                fetch.retry.insert(start);
                fetch.lacking.insert(peer, Instant::now());
                self.fill(&hash, swarm);
                Vec::new()
            }
        }
    }

    /// Acts on finished blocking work; returns the peers to drop, and why.
    pub fn on_done(&mut self, done: Done, swarm: &mut Swarm<Behaviour>) -> Vec<(PeerId, String)> {
        let mut drops = Vec::new();
        match done {
            Done::Served(_, channel, reply) => {
                let _ = swarm.behaviour_mut().blob.send_response(channel, reply);
            }
            Done::Began(hash, Ok(have)) => {
                if let Some(fetch) = self.fetches.get_mut(&hash) {
                    fetch.prefix = have;
                    fetch.recorded = have;
                    fetch.next = have;
                    fetch.ready = true;
                    self.after_progress(&hash);
                    self.fill(&hash, swarm);
                }
            }
            Done::Began(hash, Err(e)) => {
                tracing::error!(%hash, "starting a blob download: {e}");
                self.fetches.remove(&hash);
            }
            Done::Verified {
                hash,
                start,
                peer,
                outcome,
            } => {
                let Some(fetch) = self.fetches.get_mut(&hash) else {
                    return drops;
                };
                fetch.verifying = fetch.verifying.saturating_sub(1);
                match outcome {
                    Ok(()) => {
                        fetch.done.insert(start);
                        while fetch.done.remove(&fetch.prefix) {
                            fetch.prefix = (fetch.prefix + RANGE_BYTES).min(fetch.size);
                        }
                        self.after_progress(&hash);
                    }
                    Err((offset, reason)) => {
                        fetch.retry.insert(start);
                        if !reason.starts_with("writing") {
                            tracing::warn!(%peer, %hash, offset, "blob range failed verification: {reason}");
                            self.blobs.reject(Rejection {
                                hash: hash.to_hex(),
                                peer: peer.to_string(),
                                offset,
                                reason: reason.clone(),
                            });
                            self.distrusted.insert(peer);
                            drops.push((
                                peer,
                                format!(
                                    "blob {hash} failed verification at byte {offset}: {reason}"
                                ),
                            ));
                        } else {
                            tracing::error!(%hash, "{reason}");
                        }
                    }
                }
                self.fill(&hash, swarm);
            }
            Done::Recorded(hash) => {
                if let Some(fetch) = self.fetches.get_mut(&hash) {
                    fetch.recording = false;
                    self.after_progress(&hash);
                }
            }
            Done::Finished(hash, outcome) => {
                self.fetches.remove(&hash);
                self.blobs.progress().downloads.remove(&hash.to_hex());
                match outcome {
                    Ok(()) => tracing::info!(%hash, "blob fetched and verified"),
                    Err(e) => tracing::error!(%hash, "finishing a blob download: {e}"),
                }
            }
        }
        self.publish();
        drops
    }

    /// Records the prefix when enough is new, and finishes a download that is whole.
    fn after_progress(&mut self, hash: &BlobHash) {
        let Some(fetch) = self.fetches.get_mut(hash) else {
            return;
        };
        let whole = fetch.prefix == fetch.size;
        if fetch.finishing || fetch.recording {
            return;
        }
        let blobs = self.blobs.clone();
        let done = self.done_tx.clone();
        let (hash, prefix) = (*hash, fetch.prefix);
        if whole {
            fetch.finishing = true;
            tokio::task::spawn_blocking(move || {
                let outcome = blobs
                    .record_prefix(&hash, prefix)
                    .and_then(|()| blobs.finish_download(&hash))
                    .map_err(|e| e.to_string());
                let _ = done.blocking_send(Done::Finished(hash, outcome));
            });
        } else if prefix >= fetch.recorded + RECORD_EVERY {
            fetch.recording = true;
            fetch.recorded = prefix;
            tokio::task::spawn_blocking(move || {
                if let Err(e) = blobs.record_prefix(&hash, prefix) {
                    tracing::error!(%hash, "recording a download's progress: {e}");
                }
                let _ = done.blocking_send(Done::Recorded(hash));
            });
        }
    }

    /// Encodes the range a peer asked for off the swarm task.
    fn serve(&self, peer: PeerId, request: BlobRequest, channel: ResponseChannel<BlobReply>) {
        let blobs = self.blobs.clone();
        let done = self.done_tx.clone();
        let serving = Arc::clone(&self.serving);
        tokio::spawn(async move {
            let _permit = serving.acquire_owned().await;
            let reply = tokio::task::spawn_blocking(move || encode(&blobs, &request))
                .await
                .unwrap_or(BlobReply {
                    head: BlobResponseHead::Missing,
                    encoded: Vec::new(),
                });
            let _ = done.send(Done::Served(peer, channel, reply)).await;
        });
    }

    /// Shows the downloads in the progress the API reads.
    fn publish(&self) {
        let mut progress = self.blobs.progress();
        progress.downloads = self
            .fetches
            .iter()
            .map(|(hash, fetch)| {
                let download = Download {
                    size: fetch.size,
                    have: fetch.prefix,
                    peers: fetch
                        .per_peer
                        .iter()
                        .filter(|(_, n)| **n > 0)
                        .map(|(p, _)| p.to_string())
                        .collect(),
                };
                (hash.to_hex(), download)
            })
            .collect();
    }
}

/// The reply to a peer's request: the range's encoding, or why not. Only blobs a shareable
/// entry attaches are served, so a private entry's files stay home even for a peer that
/// learnt their hash.
pub fn encode(blobs: &BlobStore, request: &BlobRequest) -> BlobReply {
    match blobs.store().is_blob_shareable(&request.hash) {
        Ok(true) => encode_held(blobs, request),
        Ok(false) => refuse(BlobResponseHead::Missing),
        Err(e) => {
            tracing::error!("reading the blob references: {e}");
            refuse(BlobResponseHead::Missing)
        }
    }
}

/// The range's encoding of any complete blob held, whatever references it (test harnesses
/// serve blobs they hold with no entry).
pub fn encode_held(blobs: &BlobStore, request: &BlobRequest) -> BlobReply {
    if !request.is_valid() {
        return refuse(BlobResponseHead::Refused);
    }
    match blobs.complete(&request.hash) {
        Ok(Some(record)) if request.start >= record.size => refuse(BlobResponseHead::Refused),
        Ok(Some(_)) => match blobs.encode_range(&request.hash, request.start, request.len) {
            Ok(Some((size, encoded))) => BlobReply {
                head: BlobResponseHead::Range {
                    size,
                    encoded_len: encoded.len() as u64,
                },
                encoded,
            },
            Ok(None) => refuse(BlobResponseHead::Missing),
            Err(e) => {
                tracing::error!(hash = %request.hash, "encoding a blob range: {e}");
                refuse(BlobResponseHead::Missing)
            }
        },
        Ok(None) => refuse(BlobResponseHead::Missing),
        Err(e) => {
            tracing::error!("reading the blob index: {e}");
            refuse(BlobResponseHead::Missing)
        }
    }
}

fn refuse(head: BlobResponseHead) -> BlobReply {
    BlobReply {
        head,
        encoded: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use minga_protocol::NewCollection;
    use minga_protocol::entry::NewEntry;
    use serde_json::json;

    use super::*;
    use crate::{Commons, DataDir};

    /// A download whose partial file is open.
    fn fetch(size: u64) -> Fetch {
        Fetch {
            ready: true,
            ..Fetch::new(size)
        }
    }

    /// A download with nothing in flight and no peer to ask gives its slot up; one still
    /// waiting for a range, or with a peer left to ask, or whole, keeps it.
    #[test]
    fn a_download_no_peer_can_serve_is_stalled() {
        let waiting = fetch(3 * RANGE_BYTES);
        assert!(waiting.stalled(false));
        assert!(!waiting.stalled(true));
        let asking = Fetch {
            in_flight: 1,
            ..fetch(3 * RANGE_BYTES)
        };
        assert!(!asking.stalled(false));
        let verifying = Fetch {
            verifying: 1,
            ..fetch(3 * RANGE_BYTES)
        };
        assert!(!verifying.stalled(false));
        let whole = Fetch {
            next: RANGE_BYTES,
            prefix: RANGE_BYTES,
            ..fetch(RANGE_BYTES)
        };
        assert!(!whole.stalled(false));
    }

    /// Each attempt that finds no peer doubles the wait, up to the cap.
    #[test]
    fn attempts_back_off_exponentially_up_to_a_cap() {
        let now = Instant::now();
        let mut unavailable = None;
        let mut waits = Vec::new();
        for _ in 0..40 {
            let next = Unavailable::after(unavailable, now);
            waits.push(next.until - now);
            unavailable = Some(next);
        }
        assert_eq!(waits[0], FIRST_BACKOFF);
        assert_eq!(waits[1], 2 * FIRST_BACKOFF);
        assert_eq!(waits[2], 4 * FIRST_BACKOFF);
        assert!(waits.iter().all(|w| *w <= MAX_BACKOFF));
        assert_eq!(*waits.last().unwrap(), MAX_BACKOFF);
        assert_eq!(unavailable.unwrap().attempts, 40);
    }

    /// A peer that learnt a private entry's attachment hash gets nothing; a shared entry's
    /// attachment is served.
    #[test]
    fn only_attachments_of_shareable_entries_are_served() {
        let dir = tempfile::tempdir().unwrap();
        let mut commons = Commons::open(&DataDir::new(dir.path()), 8 << 20).unwrap();
        let new = NewCollection {
            name: "huerta".into(),
            title: None,
            description: None,
            license: None,
        };
        commons.create_collection(&new).unwrap();
        let mut attach = |text: &[u8], private: bool| {
            let added = commons.blobs().add_reader(text, 1 << 20, |_| {}).unwrap();
            let new: NewEntry = serde_json::from_value(json!({
                "collection": "huerta", "kind": "practice", "title": "Abono",
                "body": "Compost.", "license": "CC0-1.0", "private": private,
                "attachments": [{"hash": added.hash.to_hex(), "name": "a.txt",
                                 "mime": "text/plain", "size": added.size}]
            }))
            .unwrap();
            commons.create_entry(&new).unwrap();
            added.hash
        };
        let shared = attach(b"receta compartida", false);
        let private = attach(b"receta de la abuela", true);
        let ask = |hash| BlobRequest {
            hash,
            start: 0,
            len: 1 << 20,
        };
        let blobs = commons.blobs();
        assert!(matches!(
            encode(blobs, &ask(shared)).head,
            BlobResponseHead::Range { .. }
        ));
        assert!(matches!(
            encode(blobs, &ask(private)).head,
            BlobResponseHead::Missing
        ));
    }
}

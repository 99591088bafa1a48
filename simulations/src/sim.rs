//! The discrete-event simulator: nodes that hold documents, an event queue in simulated time,
//! and the handlers that run the real sync core on every message. Each node does what the
//! node's network task does: announce its own changes on gossip, pull what an announcement
//! says it lacks (`sync::offer` → `answer` → `follow_up`), reconcile every connection every
//! period (`reconcile::initiate`/`respond`), catch up on reconnecting by asking each peer's
//! change log what changed while it was away (`Request::Since`) and fetching each listed
//! document from one peer at a time, verify every payload before it keeps anything, and drop a
//! peer whose bytes fail verification. Messages are the real `wire` messages, encoded, so the
//! bytes counted are the bytes a node would send.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;

use minga_protocol::reconcile::{self, DIGEST_LEN, Item, ItemSet};
use minga_protocol::sync::{self, Held};
use minga_protocol::wire::{
    self, Announcement, MAX_MESSAGE_BYTES, MAX_SINCE_ITEMS, Offer, Payload, Request, Response,
    SINCE_UNKNOWN, WireKind,
};
use minga_protocol::{DocKind, DocumentId, VerifyError};

use crate::doc::{Attack, Author, SimDoc, collection_id};
use crate::gossip::{Gossip, GossipMsg};
use crate::metrics::{Class, Metrics, NEVER, NO_HOPS, UpdateStats};
use crate::net::{Micros, Net, Transit, micros};
use crate::rng::SimRng;
use crate::scenario::Scenario;

/// Sync rounds after the first request (the node's `Purpose::Sync(round)`, round < 2).
const MAX_SYNC_ROUND: u8 = 2;

/// How long an announcement waits for what it names before it is dropped unforwarded (the
/// node's `FORWARD_WITHIN`).
const FORWARD_WITHIN: Micros = 60_000_000;

/// A reconciliation is offered to every neighbour this long after a bundle import ends.
const QUIET_AFTER_S: f64 = 2.5;

/// What a request was for, kept by its sender (not on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Reconcile,
    Since,
    Sync(u8),
    /// Sent by a hostile node; whatever comes back is ignored.
    Attack,
}

#[derive(Debug)]
enum Msg {
    Request(Purpose, Vec<u8>),
    Response(Purpose, Vec<u8>),
    Gossip(GossipMsg),
}

#[derive(Debug)]
enum Event {
    Deliver {
        from: u32,
        to: u32,
        bytes: u64,
        msg: Msg,
    },
    Heartbeat(u32),
    Reconcile(u32),
    /// A node offers one reconciliation to every reachable connection.
    ReconcileAll(u32),
    /// A node back online and each of its peers ask each other what changed meanwhile.
    CatchUp(u32),
    Update(u32),
    Online(u32, bool),
    Partition(usize, bool),
    Bundle,
    Attack(u32),
}

/// An event due at `at`; `seq` keeps simultaneous events in the order they were scheduled.
#[derive(Debug)]
struct Scheduled {
    at: Micros,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed: the heap pops the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// One node's state: shared documents and the reconciliation set, so nodes that hold the same
/// versions share one copy.
#[derive(Debug)]
struct Node<D> {
    docs: Vec<Option<Arc<D>>>,
    items: Arc<ItemSet>,
    /// Documents being pulled, and until when the pull is awaited.
    pulling: Vec<(u32, Micros)>,
    /// Announcements (message, received from, when) waiting for what they name before being
    /// forwarded.
    awaiting: Vec<(u32, u32, Micros)>,
    /// The change log: documents in the order their held version changed (position = length).
    log: Vec<u32>,
    /// Change-log listings (document, listing peer, its digest there) waiting for a pull of
    /// the document from another peer, as the node's `fetching`.
    listed: Vec<(u32, u32, [u8; DIGEST_LEN])>,
}

impl<D> Node<D> {
    fn doc(&self, doc: u32) -> Option<&Arc<D>> {
        self.docs.get(doc as usize).and_then(Option::as_ref)
    }
}

/// Every document of the run, and every version any node holds, stored once.
#[derive(Debug)]
struct Registry<D> {
    ids: Vec<DocumentId>,
    index: BTreeMap<[u8; 16], u32>,
    versions: BTreeMap<(u32, [u8; 16]), Arc<D>>,
}

impl<D> Registry<D> {
    fn add(&mut self, id: DocumentId) -> u32 {
        let next = self.ids.len() as u32;
        *self.index.entry(*id.as_bytes()).or_insert_with(|| {
            self.ids.push(id);
            next
        })
    }
}

/// A hostile node's forged payloads: the attack, the document and the payload.
type Forged = Vec<(Attack, u32, Payload)>;

/// A planned update.
#[derive(Debug, Clone, Copy)]
struct Planned {
    edit: bool,
    size: u64,
}

/// A run in progress.
#[derive(Debug)]
pub struct Sim<D: SimDoc> {
    pub(crate) scenario: Scenario,
    pub(crate) seed: u64,
    rng: SimRng,
    /// Churn's own stream: when nodes come and go does not depend on the traffic, so two
    /// versions of the sync logic meet the same schedule.
    churn_rng: SimRng,
    pub(crate) now: Micros,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    pub(crate) net: Net,
    gossip: Gossip,
    nodes: Vec<Node<D>>,
    registry: Registry<D>,
    /// Where each node is in each peer's change log: (node, peer) → position.
    positions: BTreeMap<(u32, u32), u64>,
    /// Per announcement: the document and the heads it announced.
    announced: Vec<(u32, Vec<[u8; 32]>)>,
    /// A hostile node's forged payloads (attack, document, payload); `None` for honest nodes.
    hostile: Vec<Option<Arc<Forged>>>,
    plan: Vec<Planned>,
    /// Documents that exist so far (the ones an edit may pick).
    editable: Vec<u32>,
    pub(crate) metrics: Metrics,
    /// When the last partition healed.
    pub(crate) healed_at: Option<Micros>,
    end: Micros,
}

impl<D: SimDoc> Sim<D> {
    pub fn new(scenario: Scenario, seed: u64) -> Self {
        let mut rng = SimRng::new(seed);
        let n = scenario.nodes as usize;
        let net = Net::new(&scenario, &mut rng.fork());
        let gossip = Gossip::new(scenario.overlay.clone(), n);
        let end = micros(scenario.duration_s);
        let mut sim = Sim {
            churn_rng: rng.fork(),
            rng,
            seed,
            now: 0,
            queue: BinaryHeap::new(),
            seq: 0,
            net,
            gossip,
            nodes: Vec::with_capacity(n),
            registry: Registry {
                ids: Vec::new(),
                index: BTreeMap::new(),
                versions: BTreeMap::new(),
            },
            positions: BTreeMap::new(),
            announced: Vec::new(),
            hostile: vec![None; n],
            plan: Vec::new(),
            editable: Vec::new(),
            metrics: Metrics::new(n),
            healed_at: None,
            end,
            scenario,
        };
        sim.preload();
        sim.schedule_all();
        sim
    }

    /// The entries every node holds at the start, shared by all.
    fn preload(&mut self) {
        let n = self.scenario.nodes;
        let mut held = Vec::new();
        let mut items = Vec::new();
        let mut rng = self.rng.fork();
        for i in 0..self.scenario.workload.preload {
            let author = Author::of_node(self.seed, rng.below(u64::from(n)) as u32);
            let [lo, hi] = self.scenario.workload.entry_bytes;
            let (id, doc) = D::create(&author, u64::from(i), rng.between(lo, hi), &mut rng);
            let index = self.registry.add(id);
            self.metrics.preloaded.extend(doc.change_hashes());
            let digest = reconcile::heads_digest(&doc.heads());
            items.push(Item {
                id: *id.as_bytes(),
                digest,
            });
            let doc = Arc::new(doc);
            self.registry
                .versions
                .insert((index, digest), Arc::clone(&doc));
            held.push(Some(doc));
            self.editable.push(index);
        }
        let items = Arc::new(ItemSet::new(items));
        self.nodes = (0..n)
            .map(|_| Node {
                docs: held.clone(),
                items: Arc::clone(&items),
                pulling: Vec::new(),
                awaiting: Vec::new(),
                log: Vec::new(),
                listed: Vec::new(),
            })
            .collect();
    }

    fn schedule_all(&mut self) {
        let sc = self.scenario.clone();
        let n = sc.nodes;
        let mut rng = self.rng.fork();
        let heartbeat = micros(sc.overlay.heartbeat_ms / 1000.0);
        let period = micros(sc.sync.reconcile_s);
        for node in 0..n {
            self.at(rng.below(heartbeat), Event::Heartbeat(node));
            self.at(rng.below(period), Event::Reconcile(node));
        }
        // The workload: entries and edits at uniform times, edits only after some entries.
        let w = &sc.workload;
        let total = w.entries + w.edits;
        let mut kinds: Vec<bool> = (0..total).map(|i| i >= w.entries).collect();
        rng.shuffle(&mut kinds);
        let mut times: Vec<Micros> = (0..total)
            .map(|_| micros(w.start_s + rng.unit() * w.spread_s))
            .collect();
        times.sort_unstable();
        for (i, (edit, at)) in kinds.into_iter().zip(times).enumerate() {
            let [lo, hi] = if edit { w.edit_bytes } else { w.entry_bytes };
            self.plan.push(Planned {
                edit,
                size: rng.between(lo, hi),
            });
            self.at(at, Event::Update(i as u32));
        }
        if let Some(churn) = &sc.churn {
            let mut order: Vec<u32> = (0..n).collect();
            rng.shuffle(&mut order);
            let count = (f64::from(n) * churn.fraction).round() as usize;
            for node in &order[..count] {
                let at = micros(rng.exponential(churn.mean_online_s));
                if at < micros(churn.until_s) {
                    self.at(at, Event::Online(*node, false));
                }
            }
        }
        for (i, p) in sc.partitions.iter().enumerate().take(8) {
            self.at(micros(p.start_s), Event::Partition(i, true));
            self.at(micros(p.end_s), Event::Partition(i, false));
        }
        if let Some(bundle) = &sc.bundle {
            self.at(micros(bundle.at_s), Event::Bundle);
        }
        if let Some(hostile) = &sc.hostile {
            let mut order: Vec<u32> = (0..n).collect();
            rng.shuffle(&mut order);
            let count = (f64::from(n) * hostile.fraction).round() as usize;
            for &node in &order[..count] {
                let pool = self.forge(node, &mut rng);
                self.hostile[node as usize] = Some(Arc::new(pool));
                let every = micros(hostile.attack_every_s);
                self.at(rng.below(every.max(1)), Event::Attack(node));
            }
        }
    }

    /// A hostile node's forged payloads against two preloaded entries.
    fn forge(&self, node: u32, rng: &mut SimRng) -> Forged {
        let author = Author::of_node(self.seed, node);
        let mut pool = Vec::new();
        for &doc in self.editable.iter().take(2) {
            let held = self.nodes[node as usize].doc(doc).expect("preloaded");
            let id = self.registry.ids[doc as usize];
            for (attack, payload) in held.forgeries(id, &author, rng) {
                pool.push((attack, doc, payload));
            }
        }
        pool
    }

    fn at(&mut self, at: Micros, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at,
            seq: self.seq,
            event,
        });
    }

    fn after(&mut self, delay: Micros, event: Event) {
        self.at(self.now + delay, event);
    }

    /// Runs to the end of the scenario.
    pub fn run(&mut self) {
        while let Some(next) = self.queue.pop() {
            if next.at > self.end {
                break;
            }
            self.now = next.at;
            self.metrics.events += 1;
            self.handle(next.event);
        }
        self.now = self.end;
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Deliver {
                from,
                to,
                bytes,
                msg,
            } => self.deliver(from, to, bytes, msg),
            Event::Heartbeat(node) => {
                if self.net.online[node as usize] {
                    let out = self.gossip.heartbeat(node, &self.net, &mut self.rng);
                    for (to, g) in out {
                        self.send_gossip(node, to, g);
                    }
                    let now = self.now;
                    let expired: Vec<u32> = self.nodes[node as usize]
                        .pulling
                        .iter()
                        .filter(|(_, t)| *t <= now)
                        .map(|(d, _)| *d)
                        .collect();
                    for doc in expired {
                        self.pulled(node, doc);
                    }
                }
                let beat = micros(self.scenario.overlay.heartbeat_ms / 1000.0);
                self.after(beat, Event::Heartbeat(node));
            }
            Event::Reconcile(node) => {
                let peers: Vec<u32> = self.net.peers[node as usize]
                    .iter()
                    .copied()
                    .filter(|p| *p > node)
                    .collect();
                for peer in peers {
                    self.start_reconcile(node, peer);
                }
                self.after(
                    micros(self.scenario.sync.reconcile_s),
                    Event::Reconcile(node),
                );
            }
            Event::ReconcileAll(node) => {
                for peer in self.net.peers[node as usize].clone() {
                    self.start_reconcile(node, peer);
                }
            }
            Event::CatchUp(node) => {
                for peer in self.net.peers[node as usize].clone() {
                    self.ask_since(node, peer);
                    self.ask_since(peer, node);
                }
            }
            Event::Update(i) => self.update(i),
            Event::Online(node, online) => self.set_online(node, online),
            Event::Partition(i, active) => {
                self.net.set_partition(i, active);
                if !active {
                    self.healed_at = Some(self.now);
                    // Reconnected peers reconcile at once, the smaller id starting.
                    for a in 0..self.scenario.nodes {
                        let across: Vec<u32> = self.net.peers[a as usize]
                            .iter()
                            .copied()
                            .filter(|b| {
                                *b > a && self.net.in_group(a, i) != self.net.in_group(*b, i)
                            })
                            .collect();
                        for b in across {
                            self.start_reconcile(a, b);
                        }
                    }
                }
            }
            Event::Bundle => self.bundle(),
            Event::Attack(node) => self.attack(node),
        }
    }

    fn set_online(&mut self, node: u32, online: bool) {
        let Some(churn) = self.scenario.churn.clone() else {
            return;
        };
        let until = micros(churn.until_s);
        self.net.online[node as usize] = online;
        if online {
            self.after(0, Event::CatchUp(node));
            let next = self.now + micros(self.churn_rng.exponential(churn.mean_online_s));
            if next < until {
                self.at(next, Event::Online(node, false));
            }
        } else {
            // Listings waiting for a pull are forgotten, as the node forgets them on
            // disconnect.
            self.nodes[node as usize].listed.clear();
            let back = self.now + micros(self.churn_rng.exponential(churn.mean_offline_s));
            // Churn ends at `until`: everyone is back by then, so the end shows who caught up.
            self.at(back.min(until), Event::Online(node, true));
        }
    }

    // -----------------------------------------------------------------------------------------
    // Sending

    fn send(&mut self, from: u32, to: u32, msg: Msg, bytes: u64, class: Class) {
        if !self.net.reachable(from, to) {
            return;
        }
        self.metrics.sent[from as usize] += bytes;
        self.metrics.traffic[class as usize] += bytes;
        self.metrics.messages += 1;
        match self.net.transmit(self.now, from, to, bytes, &mut self.rng) {
            Transit::Lost => self.metrics.lost += 1,
            Transit::Arrives(at) => self.at(
                at,
                Event::Deliver {
                    from,
                    to,
                    bytes,
                    msg,
                },
            ),
        }
    }

    fn send_gossip(&mut self, from: u32, to: u32, message: GossipMsg) {
        let bytes = self.gossip.size(&message);
        self.send(from, to, Msg::Gossip(message), bytes, Class::Gossip);
    }

    fn class(purpose: Purpose) -> Class {
        match purpose {
            Purpose::Reconcile | Purpose::Since => Class::Reconcile,
            Purpose::Sync(_) => Class::Sync,
            Purpose::Attack => Class::Attack,
        }
    }

    /// Bytes model payloads stand for beyond their encoding.
    fn extra(offers: &[Offer]) -> u64 {
        offers.iter().map(|o| D::carried(&o.payload).1).sum()
    }

    fn request(&mut self, from: u32, to: u32, purpose: Purpose, request: &Request) {
        let extra = match request {
            Request::Sync { offers } => Self::extra(offers),
            _ => 0,
        };
        let bytes = wire::encode(request);
        let size = bytes.len() as u64 + extra;
        self.send(
            from,
            to,
            Msg::Request(purpose, bytes),
            size,
            Self::class(purpose),
        );
    }

    fn respond(&mut self, from: u32, to: u32, purpose: Purpose, response: &Response) {
        let extra = match response {
            Response::Sync { answers } => Self::extra(answers),
            _ => 0,
        };
        let bytes = wire::encode(response);
        let size = bytes.len() as u64 + extra;
        self.send(
            from,
            to,
            Msg::Response(purpose, bytes),
            size,
            Self::class(purpose),
        );
    }

    fn start_reconcile(&mut self, from: u32, to: u32) {
        if !self.net.reachable(from, to) {
            return;
        }
        let request = Request::Reconcile {
            collection: *collection_id().as_bytes(),
            parts: reconcile::initiate(&self.nodes[from as usize].items),
        };
        self.request(from, to, Purpose::Reconcile, &request);
        // The node asks each peer's change log every period, so it knows where it is in it
        // as of its last check; here the periodic reconciliation stands for that check.
        let theirs = self.nodes[to as usize].log.len() as u64;
        let ours = self.nodes[from as usize].log.len() as u64;
        self.positions.insert((from, to), theirs);
        self.positions.insert((to, from), ours);
    }

    /// Asks `to` what changed in its change log since `from` last asked; a pair with no
    /// position reconciles in full instead.
    fn ask_since(&mut self, from: u32, to: u32) {
        if !self.net.reachable(from, to) {
            return;
        }
        match self.positions.get(&(from, to)) {
            Some(&since) => {
                let request = Request::Since {
                    collection: *collection_id().as_bytes(),
                    since,
                };
                self.request(from, to, Purpose::Since, &request);
            }
            None => self.start_reconcile(from, to),
        }
    }

    /// The documents `node`'s change log lists after `since`, at their current digests, as
    /// the node's `Store::changed_since` (each document once).
    fn changed_since(&self, node: u32, since: u64) -> Response {
        let state = &self.nodes[node as usize];
        let seq = state.log.len() as u64;
        let start = if since == SINCE_UNKNOWN {
            state.log.len()
        } else {
            (since as usize).min(state.log.len())
        };
        let docs: BTreeSet<u32> = state.log[start..].iter().copied().collect();
        if docs.len() > MAX_SINCE_ITEMS {
            return Response::Since {
                seq,
                items: Vec::new(),
                complete: false,
            };
        }
        let items = docs
            .into_iter()
            .filter_map(|doc| {
                Some(Item {
                    id: *self.registry.ids[doc as usize].as_bytes(),
                    digest: self.digest(node, doc)?,
                })
            })
            .collect();
        Response::Since {
            seq,
            items,
            complete: true,
        }
    }

    /// Pulls each listed document that differs from `node`'s, unless it is being pulled from
    /// another peer already: then the listing waits for that pull (see [`Self::pulled`]).
    fn fetch_listed(&mut self, node: u32, from: u32, items: &[Item]) {
        for item in items {
            let Some(&doc) = self.registry.index.get(&item.id) else {
                continue;
            };
            if self.digest(node, doc) == Some(item.digest) {
                continue;
            }
            if self.is_pulling(node, doc) {
                self.metrics.listings_waited += 1;
                self.nodes[node as usize]
                    .listed
                    .push((doc, from, item.digest));
            } else {
                self.metrics.listed_pulls += 1;
                self.pull(node, from, doc);
            }
        }
    }

    fn digest(&self, node: u32, doc: u32) -> Option<[u8; DIGEST_LEN]> {
        let held = self.nodes[node as usize].doc(doc)?;
        Some(reconcile::heads_digest(&held.heads()))
    }

    fn is_pulling(&self, node: u32, doc: u32) -> bool {
        self.nodes[node as usize]
            .pulling
            .iter()
            .any(|(d, _)| *d == doc)
    }

    // -----------------------------------------------------------------------------------------
    // Receiving

    fn deliver(&mut self, from: u32, to: u32, bytes: u64, msg: Msg) {
        // A node that went offline, or a link cut meanwhile, loses what was in flight.
        if !self.net.reachable(to, from) {
            self.metrics.lost += 1;
            return;
        }
        self.metrics.received[to as usize] += bytes;
        match msg {
            Msg::Gossip(g) => self.on_gossip(from, to, g),
            Msg::Request(purpose, bytes) => self.on_request(from, to, purpose, &bytes),
            Msg::Response(purpose, bytes) => self.on_response(from, to, purpose, &bytes),
        }
    }

    fn on_gossip(&mut self, from: u32, to: u32, message: GossipMsg) {
        let received = self.gossip.receive(to, from, message);
        if received.duplicate {
            self.metrics.duplicate_announcements += 1;
        }
        for (peer, g) in received.send {
            self.send_gossip(to, peer, g);
        }
        let Some(m) = received.fresh else {
            return;
        };
        if self.holds(to, m) {
            return self.forward(to, from, m);
        }
        let doc = self.announced[m as usize].0;
        self.nodes[to as usize].awaiting.push((m, from, self.now));
        self.pull(to, from, doc);
    }

    /// Whether `node` holds every change announcement `m` names, as the node's `Store::holds`.
    fn holds(&self, node: u32, m: u32) -> bool {
        let (doc, heads) = &self.announced[m as usize];
        self.nodes[node as usize]
            .doc(*doc)
            .is_some_and(|held| heads.iter().all(|h| held.has_change(h)))
    }

    /// Pulls `doc` from `from` unless a pull of it is on its way already.
    fn pull(&mut self, to: u32, from: u32, doc: u32) {
        if self.is_pulling(to, doc) {
            return;
        }
        let timeout = micros(self.scenario.sync.request_timeout_s);
        self.nodes[to as usize]
            .pulling
            .push((doc, self.now + timeout));
        let offer = sync::offer(
            *self.registry.ids[doc as usize].as_bytes(),
            WireKind::Entry,
            &self.held(to, doc),
            false,
        );
        self.request(
            to,
            from,
            Purpose::Sync(0),
            &Request::Sync {
                offers: vec![offer],
            },
        );
    }

    fn forward(&mut self, node: u32, from: u32, m: u32) {
        for (peer, g) in self.gossip.forward(node, from, m, &self.net) {
            self.send_gossip(node, peer, g);
        }
    }

    /// A pull of `doc` ended (answered or timed out): the announcements of it whose changes
    /// are here go on, as the node's `forward_arrived`; those still waiting pull again from
    /// their sender, and are dropped after [`FORWARD_WITHIN`], as the node drops them. Then
    /// change-log listings of `doc` that still differ are pulled, one peer at a time.
    fn pulled(&mut self, node: u32, doc: u32) {
        self.pull_announced(node, doc);
        let listed = std::mem::take(&mut self.nodes[node as usize].listed);
        let (of_doc, mut others): (Vec<_>, Vec<_>) =
            listed.into_iter().partition(|&(d, _, _)| d == doc);
        let ours = self.digest(node, doc);
        for (d, peer, digest) in of_doc {
            if Some(digest) == ours {
                continue;
            }
            if self.is_pulling(node, doc) {
                others.push((d, peer, digest));
            } else {
                self.metrics.listed_pulls += 1;
                self.pull(node, peer, doc);
            }
        }
        self.nodes[node as usize].listed.extend(others);
    }

    fn pull_announced(&mut self, node: u32, doc: u32) {
        self.nodes[node as usize].pulling.retain(|(d, _)| *d != doc);
        self.forward_arrived(node, doc);
        let oldest = self.now.saturating_sub(FORWARD_WITHIN);
        let state = &mut self.nodes[node as usize];
        state.awaiting.retain(|&(_, _, since)| since >= oldest);
        let again = state
            .awaiting
            .iter()
            .find(|&&(m, _, _)| self.announced[m as usize].0 == doc)
            .map(|&(_, from, _)| from);
        if let Some(from) = again {
            self.pull(node, from, doc);
        }
    }

    /// Forwards the announcements of `doc` waiting at `node` whose changes it now holds.
    fn forward_arrived(&mut self, node: u32, doc: u32) {
        let waiting = std::mem::take(&mut self.nodes[node as usize].awaiting);
        let (arrived, waiting): (Vec<_>, Vec<_>) = waiting
            .into_iter()
            .partition(|&(m, _, _)| self.announced[m as usize].0 == doc && self.holds(node, m));
        self.nodes[node as usize].awaiting = waiting;
        for (m, from, _) in arrived {
            self.forward(node, from, m);
        }
    }

    fn on_request(&mut self, from: u32, to: u32, purpose: Purpose, bytes: &[u8]) {
        let Ok(request) = wire::decode::<Request>(bytes, MAX_MESSAGE_BYTES) else {
            return self.drop_peer(to, from, "undecodable message");
        };
        let response = match request {
            Request::Reconcile { parts, .. } => {
                let Ok(step) = reconcile::respond(&self.nodes[to as usize].items, &parts) else {
                    return self.drop_peer(to, from, "bad reconciliation ranges");
                };
                self.offer_differing(to, from, &step);
                Response::Reconcile { parts: step.reply }
            }
            Request::Sync { offers } => {
                let mut answers = Vec::with_capacity(offers.len());
                for offer in &offers {
                    if !self.apply(to, from, offer) {
                        return;
                    }
                    answers.push(sync::answer(offer, &self.held_id(to, &offer.id)));
                }
                self.falsify(to, &mut answers);
                Response::Sync { answers }
            }
            Request::Since { since, .. } => self.changed_since(to, since),
            Request::Operator => Response::Refused {
                reason: "not simulated".into(),
            },
        };
        self.respond(to, from, purpose, &response);
    }

    fn on_response(&mut self, from: u32, to: u32, purpose: Purpose, bytes: &[u8]) {
        let Ok(response) = wire::decode::<Response>(bytes, MAX_MESSAGE_BYTES) else {
            return self.drop_peer(to, from, "undecodable message");
        };
        match (purpose, response) {
            (Purpose::Reconcile, Response::Reconcile { parts }) => {
                if parts.is_empty() {
                    return;
                }
                let Ok(step) = reconcile::respond(&self.nodes[to as usize].items, &parts) else {
                    return self.drop_peer(to, from, "bad reconciliation ranges");
                };
                self.offer_differing(to, from, &step);
                if !step.reply.is_empty() {
                    let request = Request::Reconcile {
                        collection: *collection_id().as_bytes(),
                        parts: step.reply,
                    };
                    self.request(to, from, Purpose::Reconcile, &request);
                }
            }
            (
                Purpose::Since,
                Response::Since {
                    seq,
                    items,
                    complete,
                },
            ) => {
                self.positions.insert((to, from), seq);
                if complete {
                    self.fetch_listed(to, from, &items);
                } else {
                    self.start_reconcile(to, from);
                }
            }
            (Purpose::Sync(round), Response::Sync { answers }) => {
                let mut follow = Vec::new();
                for answer in &answers {
                    if !self.apply(to, from, answer) {
                        return;
                    }
                    if let Some(&doc) = self.registry.index.get(&answer.id) {
                        self.pulled(to, doc);
                    }
                    follow.extend(sync::follow_up(answer, &self.held_id(to, &answer.id)));
                }
                if !follow.is_empty() && round < MAX_SYNC_ROUND {
                    let request = Request::Sync { offers: follow };
                    self.request(to, from, Purpose::Sync(round + 1), &request);
                }
            }
            (Purpose::Attack, _) | (_, Response::Refused { .. }) => {}
            (_, _) => self.drop_peer(to, from, "response does not match its request"),
        }
    }

    /// Offers the documents a reconciliation step found differing.
    fn offer_differing(&mut self, from: u32, to: u32, step: &reconcile::Step) {
        if step.differing.is_empty() {
            return;
        }
        let offers: Vec<Offer> = step
            .differing
            .iter()
            .map(|id| {
                let they_lack = step.they_lack.binary_search(id).is_ok();
                sync::offer(*id, WireKind::Entry, &self.held_id(from, id), they_lack)
            })
            .collect();
        self.request(from, to, Purpose::Sync(0), &Request::Sync { offers });
    }

    fn held(&self, node: u32, doc: u32) -> Held<D> {
        match self.nodes[node as usize].doc(doc) {
            Some(d) => Held::Doc(D::clone(d)),
            None => Held::Nothing,
        }
    }

    fn held_id(&self, node: u32, id: &[u8; 16]) -> Held<D> {
        match self.registry.index.get(id) {
            Some(&doc) => self.held(node, doc),
            None => Held::Nothing,
        }
    }

    /// Verifies and applies a payload from `from`; false (and the peer dropped) when it fails
    /// verification.
    fn apply(&mut self, node: u32, from: u32, offer: &Offer) -> bool {
        let id = DocumentId::from_bytes(offer.id);
        let doc = self.registry.index.get(&offer.id).copied();
        let held = doc.and_then(|d| self.nodes[node as usize].doc(d).cloned());
        if let Some(held) = &held {
            for hash in D::carried(&offer.payload).0 {
                if held.has_change(&hash) {
                    self.metrics.duplicate(&hash);
                }
            }
        }
        match D::apply(
            id,
            DocKind::from(offer.kind),
            held.as_deref(),
            &offer.payload,
        ) {
            Ok(None) => true,
            Ok(Some(new)) => {
                let doc = doc.unwrap_or_else(|| self.registry.add(id));
                self.hold(node, doc, new, Some(from));
                true
            }
            Err(VerifyError::MissingDependencies(_)) => {
                self.metrics.missing_dependencies += 1;
                true
            }
            Err(e) => {
                self.drop_peer(node, from, refusal(&e));
                false
            }
        }
    }

    fn drop_peer(&mut self, node: u32, peer: u32, reason: &'static str) {
        self.metrics.reject(reason);
        self.metrics.dropped_peers += 1;
        self.net.block(node, peer);
    }

    /// Keeps a verified version of `doc` at `node`, sharing it with nodes that hold the same.
    fn hold(&mut self, node: u32, doc: u32, new: D, from: Option<u32>) {
        let old = self.nodes[node as usize].doc(doc).cloned();
        for hash in new.change_hashes() {
            if old.as_ref().is_none_or(|o| !o.has_change(&hash)) {
                self.metrics.gained(node, &hash, from, self.now);
            }
        }
        let digest = reconcile::heads_digest(&new.heads());
        let shared = Arc::clone(
            self.registry
                .versions
                .entry((doc, digest))
                .or_insert_with(|| Arc::new(new)),
        );
        let state = &mut self.nodes[node as usize];
        if state.docs.len() <= doc as usize {
            state.docs.resize(doc as usize + 1, None);
        }
        state.docs[doc as usize] = Some(shared);
        state.log.push(doc);
        Arc::make_mut(&mut state.items).upsert(Item {
            id: *self.registry.ids[doc as usize].as_bytes(),
            digest,
        });
        self.forward_arrived(node, doc);
    }

    // -----------------------------------------------------------------------------------------
    // The workload

    /// A random online honest node, preferably one that holds `doc`.
    fn pick_author(&mut self, doc: Option<u32>) -> Option<u32> {
        let n = u64::from(self.scenario.nodes);
        for _ in 0..64 {
            let node = self.rng.below(n) as u32;
            let holds = doc.is_none_or(|d| self.nodes[node as usize].doc(d).is_some());
            if self.net.online[node as usize] && self.hostile[node as usize].is_none() && holds {
                return Some(node);
            }
        }
        None
    }

    fn update(&mut self, i: u32) {
        let planned = self.plan[i as usize];
        let target = if planned.edit && !self.editable.is_empty() {
            let at = self.rng.below(self.editable.len() as u64) as usize;
            Some(self.editable[at])
        } else {
            None
        };
        let Some(node) = self.pick_author(target) else {
            self.metrics.skipped_updates += 1;
            return;
        };
        let author = Author::of_node(self.seed, node);
        let mut rng = self.rng.fork();
        let (doc, new, old) = match target {
            Some(doc) => {
                let held = Arc::clone(self.nodes[node as usize].doc(doc).expect("picked"));
                let id = self.registry.ids[doc as usize];
                (
                    doc,
                    held.edit(id, &author, planned.size, &mut rng),
                    Some(held),
                )
            }
            None => {
                let nonce = 1_000_000 + u64::from(i);
                let (id, new) = D::create(&author, nonce, planned.size, &mut rng);
                let doc = self.registry.add(id);
                self.editable.push(doc);
                (doc, new, None)
            }
        };
        for (hash, size) in new.changes() {
            if old.as_ref().is_none_or(|o| !o.has_change(&hash)) {
                let n = self.scenario.nodes as usize;
                let stats = UpdateStats {
                    doc,
                    edit: old.is_some(),
                    size,
                    origin: node,
                    made_at: self.now,
                    held_ms: vec![NEVER; n],
                    hops: vec![NO_HOPS; n],
                    duplicates: 0,
                };
                self.metrics.add_update(hash, stats);
            }
        }
        let heads = new.heads();
        self.hold(node, doc, new, None);
        self.announce(node, doc, heads);
    }

    fn announce(&mut self, node: u32, doc: u32, heads: Vec<[u8; 32]>) {
        let announcement = Announcement {
            collection: *collection_id().as_bytes(),
            id: *self.registry.ids[doc as usize].as_bytes(),
            kind: WireKind::Entry,
            heads,
        };
        let m = self
            .gossip
            .register(wire::encode(&announcement).len() as u64);
        self.announced.push((doc, announcement.heads));
        for (to, g) in self.gossip.publish(node, m, &self.net) {
            self.send_gossip(node, to, g);
        }
    }

    /// A sneakernet bundle: a node outside the first partition's group exports every document
    /// it holds; one node inside imports them through the same verification as sync.
    fn bundle(&mut self) {
        let n = self.scenario.nodes;
        let inside = |sim: &Self, a: u32| sim.net.in_group(a, 0) && sim.net.online[a as usize];
        let Some(source) =
            (0..n).find(|a| !self.net.in_group(*a, 0) && self.net.online[*a as usize])
        else {
            return;
        };
        let Some(dest) = (0..n).find(|a| inside(self, *a)) else {
            return;
        };
        let lacking: Vec<u32> = (0..self.metrics.updates.len() as u32)
            .filter(|u| self.metrics.updates[*u as usize].held_ms[dest as usize] == NEVER)
            .collect();
        for doc in 0..self.registry.ids.len() as u32 {
            let Some(theirs) = self.nodes[source as usize].doc(doc).cloned() else {
                continue;
            };
            let held = self.nodes[dest as usize].doc(doc).cloned();
            let payload = theirs.payload_for(&held.as_ref().map(|h| h.heads()).unwrap_or_default());
            self.metrics.bundle_bytes +=
                wire::encode(&payload).len() as u64 + D::carried(&payload).1;
            let id = self.registry.ids[doc as usize];
            match D::apply(id, DocKind::Entry, held.as_deref(), &payload) {
                Ok(Some(new)) => self.hold(dest, doc, new, Some(source)),
                Ok(None) => {}
                Err(e) => self.metrics.reject(refusal(&e)),
            }
        }
        let carried = lacking
            .into_iter()
            .filter(|u| self.metrics.updates[*u as usize].held_ms[dest as usize] != NEVER)
            .collect();
        self.metrics.bundle = Some((self.now, carried));
        self.after(micros(QUIET_AFTER_S), Event::ReconcileAll(dest));
    }

    // -----------------------------------------------------------------------------------------
    // Hostile nodes

    /// A hostile node sends one peer a forged payload, or bytes that are no message at all.
    fn attack(&mut self, node: u32) {
        let every = micros(
            self.scenario
                .hostile
                .as_ref()
                .map_or(60.0, |h| h.attack_every_s),
        );
        self.after(every.max(1), Event::Attack(node));
        let peers = self.net.reachable_peers(node);
        let Some(pool) = self.hostile[node as usize].clone() else {
            return;
        };
        if peers.is_empty() || pool.is_empty() {
            return;
        }
        let peer = peers[self.rng.below(peers.len() as u64) as usize];
        let (attack, doc, payload) = &pool[self.rng.below(pool.len() as u64) as usize];
        if *attack == Attack::Garbage && self.rng.chance(0.5) {
            let len = self.rng.between(1, 64) as usize;
            let junk: Vec<u8> = (0..len).map(|_| self.rng.word() as u8).collect();
            let size = junk.len() as u64;
            self.send(
                node,
                peer,
                Msg::Request(Purpose::Attack, junk),
                size,
                Class::Attack,
            );
            return;
        }
        let offer = Offer {
            id: *self.registry.ids[*doc as usize].as_bytes(),
            kind: WireKind::Entry,
            heads: Vec::new(),
            payload: payload.clone(),
        };
        let request = Request::Sync {
            offers: vec![offer],
        };
        self.request(node, peer, Purpose::Attack, &request);
    }

    /// A hostile node answers pulls of the entries it forged with forgeries.
    fn falsify(&mut self, node: u32, answers: &mut [Offer]) {
        let Some(pool) = self.hostile[node as usize].clone() else {
            return;
        };
        for answer in answers {
            let Some(&doc) = self.registry.index.get(&answer.id) else {
                continue;
            };
            let forged: Vec<&Payload> = pool
                .iter()
                .filter(|(_, d, _)| *d == doc)
                .map(|(_, _, p)| p)
                .collect();
            if !forged.is_empty() {
                let pick = self.rng.below(forged.len() as u64) as usize;
                answer.payload = forged[pick].clone();
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // The end state

    pub(crate) fn is_hostile(&self, node: u32) -> bool {
        self.hostile[node as usize].is_some()
    }

    /// Whether every honest node holds the same heads of every document.
    pub(crate) fn identical_heads(&self) -> bool {
        let honest: Vec<&Node<D>> = (0..self.scenario.nodes)
            .filter(|n| !self.is_hostile(*n))
            .map(|n| &self.nodes[n as usize])
            .collect();
        (0..self.registry.ids.len() as u32).all(|doc| {
            let first = honest[0].doc(doc).map(|d| d.heads());
            first.is_some()
                && honest
                    .iter()
                    .all(|n| n.doc(doc).map(|d| d.heads()) == first)
        })
    }

    /// Distinct document versions held across all nodes (what memory holds).
    pub(crate) fn versions(&self) -> usize {
        self.registry.versions.len()
    }
}

/// A short name for why a payload was refused.
fn refusal(error: &VerifyError) -> &'static str {
    match error {
        VerifyError::Malformed(_) => "malformed change",
        VerifyError::BadSignature { .. } => "bad signature",
        VerifyError::ForeignActor { .. } => "foreign actor",
        VerifyError::NotGenesis { .. } => "transplanted genesis",
        VerifyError::TooLarge { .. } => "too large",
        VerifyError::ImmutableField { .. } => "immutable field",
        VerifyError::NotMaintainer { .. } => "not a maintainer",
        VerifyError::Refused { .. } => "invalid document",
        VerifyError::Equivocation(_) => "equivocation",
        VerifyError::MissingDependencies(_) => "missing dependencies",
        VerifyError::Inflates => "inflates past the budget",
        VerifyError::TooManyChunks => "too many chunks",
        VerifyError::TooManyRows => "too many rows",
    }
}

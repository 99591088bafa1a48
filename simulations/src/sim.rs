//! The discrete-event simulator: nodes that hold documents, an event queue in simulated time,
//! and the handlers that run the real protocol on every message. Every node runs the node's
//! own sync policy, a [`Session`] from `minga_protocol::session`, fed with what happens to it
//! (connections, requests, responses, announcements, changes, ticks) and carried out here:
//! requests and announcements go over the modelled network, payloads are verified before
//! anything is kept (`sync::offer` → `answer` → `follow_up`), and a peer whose bytes fail
//! verification is dropped. Messages are the real `wire` messages, encoded, so the bytes
//! counted are the bytes a node would send.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;
use std::time::Duration;

use minga_protocol::reconcile::{self, DIGEST_LEN, Item, ItemSet};
use minga_protocol::session::{
    self, Input, Misbehaviour, Output, Purpose, Replica, Session, Spread, Then, ToSync,
};
use minga_protocol::sync::{self, Held};
use minga_protocol::wire::{
    self, Announcement, MAX_MESSAGE_BYTES, Offer, Payload, Request, Response, WireKind,
};
use minga_protocol::{DocKind, DocumentId, VerifyError};

use crate::doc::{Attack, Author, SimDoc, collection_id};
use crate::gossip::{Gossip, GossipMsg};
use crate::metrics::{Class, Metrics, NEVER, NO_HOPS, UpdateStats};
use crate::net::{Micros, Net, Transit, micros};
use crate::rng::SimRng;
use crate::scenario::Scenario;

/// A message on the wire. A request carries its purpose, kept by its sender (not on the wire);
/// `None` is a hostile node's, whose answer is ignored.
#[derive(Debug)]
enum Msg {
    Request(Option<Purpose>, Vec<u8>),
    Response(Option<Purpose>, Vec<u8>),
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
    /// A node's session asked to be woken.
    Tick(u32),
    /// A sync request of `node` to `peer` about these documents timed out.
    Failed {
        node: u32,
        peer: u32,
        ids: Vec<[u8; 16]>,
    },
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
    /// The change log: documents in the order their held version changed (position = length).
    log: Vec<u32>,
    /// The peer each document's held version came from (`None`: made or imported here), so a
    /// change listing leaves out what the asker brought, as the node's `Store::changed_since`.
    brought_by: Vec<Option<u32>>,
}

impl<D> Node<D> {
    fn doc(&self, doc: u32) -> Option<&Arc<D>> {
        self.docs.get(doc as usize).and_then(Option::as_ref)
    }
}

/// What a node's session reads of it: its documents, and its positions in its peers' logs.
struct View<'a, D> {
    node: &'a Node<D>,
    registry: &'a Registry<D>,
    /// Positions of this node, by peer.
    positions: &'a BTreeMap<(u32, u32), u64>,
    me: u32,
}

impl<D: SimDoc> View<'_, D> {
    fn digest_of(&self, doc: u32) -> Option<[u8; DIGEST_LEN]> {
        Some(reconcile::heads_digest(&self.node.doc(doc)?.heads()))
    }
}

/// A simulated node carries one collection, in full.
impl<D: SimDoc> Replica<u32> for View<'_, D> {
    fn followed(&self) -> Vec<DocumentId> {
        vec![collection_id()]
    }

    fn follows(&self, collection: &DocumentId) -> bool {
        *collection == collection_id()
    }

    fn carries(&self, collection: &DocumentId) -> bool {
        self.follows(collection)
    }

    fn pulls(&self, collection: &DocumentId) -> bool {
        self.follows(collection)
    }

    fn position(&self, peer: &u32, _: &DocumentId) -> Option<u64> {
        self.positions.get(&(self.me, *peer)).copied()
    }

    fn reconcile_set(&self, _: &DocumentId) -> Result<Arc<ItemSet>, String> {
        Ok(Arc::clone(&self.node.items))
    }

    fn digest(&self, _: &DocumentId, id: &DocumentId) -> Option<[u8; DIGEST_LEN]> {
        self.digest_of(*self.registry.index.get(id.as_bytes())?)
    }

    fn holds(&self, _: &DocumentId, id: &DocumentId, heads: &[[u8; 32]]) -> bool {
        self.registry
            .index
            .get(id.as_bytes())
            .and_then(|doc| self.node.doc(*doc))
            .is_some_and(|held| heads.iter().all(|h| held.has_change(h)))
    }

    fn log_position(&self) -> u64 {
        self.node.log.len() as u64
    }

    /// As the node's `Store::changed_since`: each document once, at its current digest, less
    /// those whose held version the asker brought.
    fn changed_since(
        &self,
        _: &DocumentId,
        since: u64,
        limit: usize,
        asker: &u32,
    ) -> Result<(Vec<Item>, bool), String> {
        let start = (since as usize).min(self.node.log.len());
        let docs: BTreeSet<u32> = self.node.log[start..]
            .iter()
            .copied()
            .filter(|doc| self.node.brought_by.get(*doc as usize) != Some(&Some(*asker)))
            .collect();
        if docs.len() > limit {
            return Ok((Vec::new(), false));
        }
        let items = docs
            .into_iter()
            .filter_map(|doc| {
                Some(Item {
                    id: *self.registry.ids[doc as usize].as_bytes(),
                    digest: self.digest_of(doc)?,
                })
            })
            .collect();
        Ok((items, true))
    }
}

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
    /// Every node's sync policy.
    sessions: Vec<Session<u32, u32>>,
    /// Announcements by message.
    announced: Vec<Announcement>,
    /// Messages by the document and heads they announce.
    messages: BTreeMap<([u8; 16], Vec<[u8; 32]>), u32>,
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
            sessions: Vec::with_capacity(n),
            announced: Vec::new(),
            messages: BTreeMap::new(),
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
                log: Vec::new(),
                brought_by: vec![None; held.len()],
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
            let first_check = rng.below(period);
            let config = session::Config {
                check_every: Duration::from_micros(period),
                first_check: Duration::from_micros(first_check),
            };
            let peers = self.net.peers[node as usize].iter().copied();
            self.sessions.push(Session::with_peers(node, config, peers));
            self.at(first_check, Event::Tick(node));
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
        for session in &self.sessions {
            self.metrics.listed_pulls += session.stats.listed_fetches;
            self.metrics.listings_waited += session.stats.listings_waited;
        }
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
                }
                let beat = micros(self.scenario.overlay.heartbeat_ms / 1000.0);
                self.after(beat, Event::Heartbeat(node));
            }
            Event::Tick(node) => {
                if self.net.online[node as usize] {
                    let busy = BTreeSet::new();
                    self.step(node, Input::Tick { busy });
                }
            }
            Event::Failed { node, peer, ids } => {
                if self.net.online[node as usize] {
                    let answered = false;
                    self.step(
                        node,
                        Input::Finished {
                            peer,
                            ids,
                            answered,
                        },
                    );
                }
            }
            Event::Update(i) => self.update(i),
            Event::Online(node, online) => self.set_online(node, online),
            Event::Partition(i, active) => {
                let links = self.links();
                self.net.set_partition(i, active);
                if !active {
                    self.healed_at = Some(self.now);
                }
                self.relink(links);
            }
            Event::Bundle => self.bundle(),
            Event::Attack(node) => self.attack(node),
        }
    }

    /// Every connection, and whether it is up.
    fn links(&self) -> Vec<(u32, u32, bool)> {
        (0..self.scenario.nodes)
            .flat_map(|a| {
                self.net.peers[a as usize]
                    .iter()
                    .filter(move |b| **b > a)
                    .map(move |b| (a, *b, self.net.reachable(a, *b)))
            })
            .collect()
    }

    /// Tells both ends of each connection (of those in `before`) that went down or came up.
    fn relink(&mut self, before: Vec<(u32, u32, bool)>) {
        for (a, b, was) in before {
            let is = self.net.reachable(a, b);
            if is != was {
                let (to_a, to_b) = if is {
                    (Input::Connected(b), Input::Connected(a))
                } else {
                    (Input::Disconnected(b), Input::Disconnected(a))
                };
                self.step(a, to_a);
                self.step(b, to_b);
            }
        }
    }

    fn set_online(&mut self, node: u32, online: bool) {
        let Some(churn) = self.scenario.churn.clone() else {
            return;
        };
        let until = micros(churn.until_s);
        let links = self.net.peers[node as usize]
            .iter()
            .map(|peer| (node, *peer, self.net.reachable(node, *peer)))
            .collect();
        self.net.online[node as usize] = online;
        self.relink(links);
        if online {
            let next = self.now + micros(self.churn_rng.exponential(churn.mean_online_s));
            if next < until {
                self.at(next, Event::Online(node, false));
            }
        } else {
            let back = self.now + micros(self.churn_rng.exponential(churn.mean_offline_s));
            // Churn ends at `until`: everyone is back by then, so the end shows who caught up.
            self.at(back.min(until), Event::Online(node, true));
        }
    }

    // -----------------------------------------------------------------------------------------
    // The session

    /// Feeds `node`'s session one input and carries out what it says.
    fn step(&mut self, node: u32, input: Input<u32, u32>) {
        self.step_answering(node, input, None);
    }

    /// [`Self::step`] for a request from `asker` sent for `purpose`, which responses answer.
    fn step_answering(
        &mut self,
        node: u32,
        input: Input<u32, u32>,
        asker: Option<(u32, Option<Purpose>)>,
    ) {
        let view = View {
            node: &self.nodes[node as usize],
            registry: &self.registry,
            positions: &self.positions,
            me: node,
        };
        let now = Duration::from_micros(self.now);
        let outputs = self.sessions[node as usize].handle(input, now, &view);
        for output in outputs {
            self.carry_out(node, output, asker);
        }
    }

    fn carry_out(
        &mut self,
        node: u32,
        output: Output<u32, u32>,
        asker: Option<(u32, Option<Purpose>)>,
    ) {
        match output {
            Output::Send {
                peer,
                request,
                purpose,
            } => self.request(node, peer, Some(purpose), &request),
            Output::Offer {
                peer,
                to_sync,
                spread,
            } => self.offer(node, peer, &to_sync, spread),
            Output::Respond(response) => {
                if let Some((to, purpose)) = asker {
                    self.respond(node, to, purpose, &response);
                }
            }
            Output::Apply {
                peer,
                payloads,
                then: Then::Answer { coming },
            } => {
                let mut answers = Vec::with_capacity(payloads.len());
                for offer in &payloads {
                    if !self.apply(node, peer, offer, Spread::Quietly) {
                        return;
                    }
                    let held = self.held_id(node, &offer.id);
                    answers.push(sync::answer(offer, &held, coming.contains(&offer.id)));
                }
                self.falsify(node, &mut answers);
                if let Some((to, purpose)) = asker {
                    self.respond(node, to, purpose, &Response::Sync { answers });
                }
            }
            Output::Apply {
                peer,
                payloads,
                then: Then::FollowUp { spread, next },
            } => {
                let mut follow = Vec::new();
                for answer in &payloads {
                    if !self.apply(node, peer, answer, spread) {
                        return;
                    }
                    follow.extend(sync::follow_up(answer, &self.held_id(node, &answer.id)));
                }
                if let Some(next) = next.filter(|_| !follow.is_empty()) {
                    let request = Request::Sync { offers: follow };
                    self.request(node, peer, Some(next), &request);
                }
                let ids = payloads.iter().map(|a| a.id).collect();
                let answered = true;
                self.step(
                    node,
                    Input::Finished {
                        peer,
                        ids,
                        answered,
                    },
                );
            }
            Output::SetPosition { peer, seq, .. } => {
                self.positions.insert((node, peer), seq);
            }
            Output::Publish(announcement) => self.publish(node, announcement),
            Output::Validate {
                message,
                source,
                accept,
            } => {
                if accept {
                    self.forward(node, source, message);
                }
            }
            Output::Forward { message, source } => self.forward(node, source, message),
            Output::Disconnect { peer, reason } => {
                let reason = match reason {
                    Misbehaviour::Ranges(_) => "bad reconciliation ranges",
                    Misbehaviour::Unanswered => "response does not match its request",
                };
                self.drop_peer(node, peer, reason);
            }
            Output::Wake(at) => self.at(at.as_micros() as Micros, Event::Tick(node)),
        }
    }

    /// Offers documents found differing, in one request.
    fn offer(&mut self, from: u32, to: u32, to_sync: &ToSync, spread: Spread) {
        let offers: Vec<Offer> = to_sync
            .ids
            .iter()
            .map(|id| {
                let they_lack = to_sync.they_lack.contains(id);
                sync::offer(*id, WireKind::Entry, &self.held_id(from, id), they_lack)
            })
            .collect();
        let purpose = Purpose::Sync { round: 0, spread };
        self.request(from, to, Some(purpose), &Request::Sync { offers });
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
            Transit::Lost => {
                self.metrics.lost += 1;
                self.lost(from, to, &msg);
            }
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

    /// A message from `from` to `to` was lost: if it was a sync request or its response, the
    /// requester learns it when the request times out, as a node does.
    fn lost(&mut self, from: u32, to: u32, msg: &Msg) {
        let (requester, peer, ids) = match msg {
            Msg::Request(Some(Purpose::Sync { .. }), bytes) => {
                match wire::decode::<Request>(bytes, MAX_MESSAGE_BYTES) {
                    Ok(Request::Sync { offers }) => (from, to, offers),
                    _ => return,
                }
            }
            Msg::Response(Some(Purpose::Sync { .. }), bytes) => {
                match wire::decode::<Response>(bytes, MAX_MESSAGE_BYTES) {
                    Ok(Response::Sync { answers }) => (to, from, answers),
                    _ => return,
                }
            }
            _ => return,
        };
        let ids = ids.iter().map(|o| o.id).collect();
        let timeout = micros(self.scenario.sync.request_timeout_s);
        self.after(
            timeout,
            Event::Failed {
                node: requester,
                peer,
                ids,
            },
        );
    }

    fn send_gossip(&mut self, from: u32, to: u32, message: GossipMsg) {
        let bytes = self.gossip.size(&message);
        self.send(from, to, Msg::Gossip(message), bytes, Class::Gossip);
    }

    fn class(purpose: Option<Purpose>) -> Class {
        match purpose {
            Some(Purpose::Reconcile(_) | Purpose::Since(_)) => Class::Reconcile,
            Some(Purpose::Sync { .. }) => Class::Sync,
            None => Class::Attack,
        }
    }

    /// Bytes model payloads stand for beyond their encoding.
    fn extra(offers: &[Offer]) -> u64 {
        offers.iter().map(|o| D::carried(&o.payload).1).sum()
    }

    fn request(&mut self, from: u32, to: u32, purpose: Option<Purpose>, request: &Request) {
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

    fn respond(&mut self, from: u32, to: u32, purpose: Option<Purpose>, response: &Response) {
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
        if let Some(m) = received.fresh {
            let announcement = self.announced[m as usize].clone();
            let input = Input::Announced {
                peer: from,
                message: m,
                announcement,
            };
            self.step(to, input);
        }
    }

    fn forward(&mut self, node: u32, from: u32, m: u32) {
        for (peer, g) in self.gossip.forward(node, from, m, &self.net) {
            self.send_gossip(node, peer, g);
        }
    }

    fn on_request(&mut self, from: u32, to: u32, purpose: Option<Purpose>, bytes: &[u8]) {
        let Ok(request) = wire::decode::<Request>(bytes, MAX_MESSAGE_BYTES) else {
            return self.drop_peer(to, from, "undecodable message");
        };
        if request == Request::Operator {
            let response = Response::Refused {
                reason: "not simulated".into(),
            };
            return self.respond(to, from, purpose, &response);
        }
        let input = Input::Request {
            peer: from,
            request,
        };
        self.step_answering(to, input, Some((from, purpose)));
    }

    fn on_response(&mut self, from: u32, to: u32, purpose: Option<Purpose>, bytes: &[u8]) {
        let Ok(response) = wire::decode::<Response>(bytes, MAX_MESSAGE_BYTES) else {
            return self.drop_peer(to, from, "undecodable message");
        };
        if let Some(purpose) = purpose {
            let input = Input::Response {
                peer: from,
                purpose,
                response,
            };
            self.step(to, input);
        }
    }

    fn held(&self, node: u32, doc: u32) -> Held<D> {
        match self.nodes[node as usize].doc(doc) {
            Some(d) => Held::Doc(D::clone(d)),
            None => Held::Absent,
        }
    }

    fn held_id(&self, node: u32, id: &[u8; 16]) -> Held<D> {
        match self.registry.index.get(id) {
            Some(&doc) => self.held(node, doc),
            None => Held::Absent,
        }
    }

    /// Verifies and applies a payload from `from`; false (and the peer dropped) when it fails
    /// verification.
    fn apply(&mut self, node: u32, from: u32, offer: &Offer, spread: Spread) -> bool {
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
                self.hold(node, doc, new, Some(from), spread);
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
        let was = self.net.reachable(node, peer);
        self.net.block(node, peer);
        if was {
            self.step(node, Input::Disconnected(peer));
            self.step(peer, Input::Disconnected(node));
        }
    }

    /// Keeps a verified version of `doc` at `node`, sharing it with nodes that hold the same,
    /// and tells the node's session.
    fn hold(&mut self, node: u32, doc: u32, new: D, from: Option<u32>, spread: Spread) {
        let old = self.nodes[node as usize].doc(doc).cloned();
        for hash in new.change_hashes() {
            if old.as_ref().is_none_or(|o| !o.has_change(&hash)) {
                self.metrics.gained(node, &hash, from, self.now);
            }
        }
        let heads = new.heads();
        let digest = reconcile::heads_digest(&heads);
        let shared = Arc::clone(
            self.registry
                .versions
                .entry((doc, digest))
                .or_insert_with(|| Arc::new(new)),
        );
        let state = &mut self.nodes[node as usize];
        if state.docs.len() <= doc as usize {
            state.docs.resize(doc as usize + 1, None);
            state.brought_by.resize(doc as usize + 1, None);
        }
        state.docs[doc as usize] = Some(shared);
        state.brought_by[doc as usize] = from;
        state.log.push(doc);
        Arc::make_mut(&mut state.items).upsert(Item {
            id: *self.registry.ids[doc as usize].as_bytes(),
            digest,
        });
        let announcement = Announcement {
            collection: *collection_id().as_bytes(),
            id: *self.registry.ids[doc as usize].as_bytes(),
            kind: WireKind::Entry,
            heads,
        };
        self.step(
            node,
            Input::Changed {
                announcement,
                spread,
            },
        );
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
        self.hold(node, doc, new, None, Spread::Announce);
    }

    /// Publishes an announcement on gossip. Messages are named by their content, as in
    /// gossipsub: one this node has seen already is not published again.
    fn publish(&mut self, node: u32, announcement: Announcement) {
        let key = (announcement.id, announcement.heads.clone());
        let m = match self.messages.get(&key) {
            Some(&m) if self.gossip.has_seen(node, m) => return,
            Some(&m) => m,
            None => {
                let m = self
                    .gossip
                    .register(wire::encode(&announcement).len() as u64);
                self.messages.insert(key, m);
                self.announced.push(announcement);
                m
            }
        };
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
                Ok(Some(new)) => self.hold(dest, doc, new, Some(source), Spread::Quietly),
                Ok(None) => {}
                Err(e) => self.metrics.reject(refusal(&e)),
            }
        }
        let carried = lacking
            .into_iter()
            .filter(|u| self.metrics.updates[*u as usize].held_ms[dest as usize] != NEVER)
            .collect();
        self.metrics.bundle = Some((self.now, carried));
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
            self.send(node, peer, Msg::Request(None, junk), size, Class::Attack);
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
        self.request(node, peer, None, &request);
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

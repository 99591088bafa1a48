//! The network: one task owns the libp2p swarm and keeps followed collections level with peers.
//!
//! ```text
//!  swarm events ─┐                        ┌─► spawned work: serve a request, act on a response
//!  changes ──────┼─► Network (one task) ──┤      (store reads; writes through the event loop)
//!  commands ─────┤   owns the Swarm       └─◄ work results: responses and requests to send
//!  timers ───────┘
//! ```
//!
//! The sync policy is not here: it is `minga_protocol::session`, which the simulator runs too.
//! This task is its plumbing: it feeds the session what the swarm, the event loop and the clock
//! bring (connections, requests, responses, announcements, durable changes, a tick a second)
//! and carries out what it says; what needs the store's documents or the writer (building
//! offers, applying payloads, saving change-log positions) runs as spawned work. Around it the
//! task keeps what is the network's own: dialling, the catalogue topic and mirroring, request
//! flow control per peer, blobs, and the operator check.
//! - A peer that sends a forged change or a malformed message is disconnected and counted.

mod behaviour;
pub mod blob_codec;
pub mod blobs;
pub mod codec;
mod exchange;
mod heard;
pub mod link_model;
mod replica;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
pub use libp2p::Multiaddr;
use libp2p::core::transport::ListenerId;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::{PeerId, Swarm, identify, identity, mdns};
use minga_protocol::limits::MAX_CATALOGUE_ITEMS;
use minga_protocol::session::{self, Input, Output, Session, Then, ToSync};
use minga_protocol::wire::{
    self, Announcement, Catalogue, CatalogueItem, MAX_GOSSIP_BYTES, Request, Response,
};
use minga_protocol::{AuthorId, Collection, DocumentId, Signature};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use self::behaviour::{Behaviour, BehaviourEvent};
use self::blobs::Fetcher;
use self::codec::Inbound;
use self::exchange::{Exchange, Misbehaved};
use self::heard::{FollowRate, Heard, MAX_MIRRORED};
use self::replica::View;
use crate::Handle;
use crate::commons::{Changed, Spread};
use crate::store::Reader;

/// How often a node tells the catalogue topic what it carries.
const CATALOGUE_EVERY: Duration = Duration::from_secs(30);
/// Longest wait between two dials of an unreachable bootstrap peer.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Collection topics: collections share a fixed set of gossipsub topics, so a mirror of
/// hundreds of collections stays far below gossipsub's limit of 100 topics per peer.
const TOPIC_SHARDS: u8 = 32;
/// Sync requests in flight to one peer; more wait in a queue. Peers accept 16 streams at once
/// per connection, theirs and ours (`behaviour::MAX_STREAMS`).
const MAX_IN_FLIGHT: usize = 8;
/// Requests waiting per peer; beyond this they are dropped and the next reconciliation retries.
const MAX_QUEUED: usize = 1024;
/// Spawned pieces of work running at once; more wait.
const MAX_WORK: usize = 16;

/// How the node joins the network.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Addresses to listen on (a `/p2p-circuit` address listens through a relay).
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start and redial when the connection drops.
    pub bootstrap: Vec<Multiaddr>,
    /// Find peers on the LAN with mDNS.
    pub mdns: bool,
    /// Serve as a relay for nodes behind NAT.
    pub relay: bool,
    /// Follow every collection heard of.
    pub mirror: bool,
    /// Blob size limit, fetch budget (ignored by a mirror, which fetches every blob) and rate.
    pub blobs: crate::BlobLimits,
    /// Simulations only: the latency and uplink of this node's `/memory/` connections (none:
    /// they hand bytes over at once).
    pub memory_link: Option<link_model::LinkModel>,
}

impl NetworkConfig {
    /// Whether an address is on libp2p's in-process memory transport (`/memory/N`), which the
    /// swarm then carries besides TCP and QUIC. Only simulations and tests use it.
    pub fn uses_memory_transport(&self) -> bool {
        self.listen
            .iter()
            .chain(&self.bootstrap)
            .any(|addr| matches!(addr.iter().next(), Some(Protocol::Memory(_))))
    }
}

/// What the API shows about the network.
#[derive(Debug, Default, Clone, Serialize)]
pub struct NetStatus {
    pub peer_id: String,
    /// Listen addresses, each ending in `/p2p/<peer id>`.
    pub listen: Vec<String>,
    pub peers: BTreeMap<String, PeerInfo>,
    /// Collections heard of on the catalogue topic.
    pub available: BTreeMap<String, Collection>,
    /// Peers dropped for forged changes or malformed messages.
    pub peers_dropped: u64,
    /// The author each peer vouched for, as it answered when asked.
    #[serde(skip)]
    pub operators: BTreeMap<String, AuthorId>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct PeerInfo {
    pub addresses: Vec<String>,
    /// Unix milliseconds of the last event from the peer.
    pub last_seen: i64,
    /// Bytes of Minga's own messages (sync and attachment ranges) sent to the peer since it
    /// connected: libp2p counts the wire per transport, not per peer.
    pub bytes_sent: u64,
    /// Bytes of Minga's own messages received from the peer since it connected.
    pub bytes_received: u64,
}

/// Cheap access to the network for the API.
#[derive(Clone)]
pub struct NetHandle {
    pub status: Arc<RwLock<NetStatus>>,
    pub registry: Arc<Mutex<Registry>>,
    commands: mpsc::Sender<NetCommand>,
}

impl std::fmt::Debug for NetHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetHandle").finish_non_exhaustive()
    }
}

/// Requests to the network task.
#[derive(Debug)]
pub enum NetCommand {
    /// A collection is now followed: subscribe and reconcile it.
    Followed(DocumentId),
    /// Refuse this peer from now on.
    Block(PeerId),
    /// This peer is welcome again: if it is a bootstrap peer, dial it at the next redial
    /// rather than after the backoff its refusals built up.
    Unblock(PeerId),
}

impl NetHandle {
    /// The author a peer vouched for, if it was asked while connected.
    pub fn operator_of(&self, peer: &str) -> Option<AuthorId> {
        let status = self.status.read().expect("status lock");
        status.operators.get(peer).copied()
    }

    pub async fn send(&self, command: NetCommand) {
        let _ = self.commands.send(command).await;
    }

    /// Total bytes (sent, received) on the wire, counted at the transport.
    pub fn bytes(&self) -> (u64, u64) {
        let mut text = String::new();
        if let Ok(registry) = self.registry.lock() {
            let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        }
        let mut sent = 0;
        let mut received = 0;
        for line in text
            .lines()
            .filter(|l| l.starts_with("libp2p_bandwidth_bytes_total{"))
        {
            let value: u64 = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if line.contains("direction=\"Outbound\"") {
                sent += value;
            } else if line.contains("direction=\"Inbound\"") {
                received += value;
            }
        }
        (sent, received)
    }

    pub fn metrics_text(&self) -> String {
        let mut text = String::new();
        if let Ok(registry) = self.registry.lock() {
            let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        }
        text
    }
}

/// Results of spawned work, handed back to the task that owns the swarm.
enum Work {
    Respond(
        PeerId,
        request_response::ResponseChannel<Response>,
        Response,
    ),
    Send(PeerId, Request, Purpose),
    Misbehaved(PeerId, String),
    /// A sync request's answers are applied (or failed to apply).
    Finished(PeerId, Vec<[u8; 16]>),
}

/// Why an outbound request was sent.
#[derive(Debug, Clone, Copy)]
enum Purpose {
    /// Which author the peer speaks for.
    Operator,
    /// The session's.
    Session(session::Purpose),
}

/// The network task.
pub struct Network {
    swarm: Swarm<Behaviour>,
    exchange: Exchange,
    config: NetworkConfig,
    status: Arc<RwLock<NetStatus>>,
    changes: mpsc::Receiver<Changed>,
    commands: mpsc::Receiver<NetCommand>,
    work_tx: mpsc::Sender<Work>,
    work_rx: mpsc::Receiver<Work>,
    /// Bounds spawned work.
    permits: Arc<tokio::sync::Semaphore>,
    /// What each request in flight was for, to whom it went, and the documents it offered.
    purposes: HashMap<OutboundRequestId, (PeerId, Purpose, Vec<[u8; 16]>)>,
    /// Requests per peer waiting for one in flight to finish.
    queued: HashMap<PeerId, VecDeque<(Request, Purpose)>>,
    /// Requests in flight per peer, at most [`MAX_IN_FLIGHT`].
    in_flight: HashMap<PeerId, usize>,
    /// Bootstrap addresses with their next dial time and current backoff.
    bootstrap: Vec<(Multiaddr, Instant, Duration)>,
    /// Topics subscribed to.
    topics: BTreeSet<u8>,
    /// The sync policy.
    session: Session<PeerId, gossipsub::MessageId>,
    /// The session's time is measured from here.
    started: Instant,
    /// What this node listens on, removed when it stops.
    listeners: Vec<ListenerId>,
    /// Blob downloads and uploads (`/minga/blob/1`).
    fetcher: Fetcher,
    /// Sync requests sent, for `/metrics` (benchmarks count round trips with it).
    requests_sent: Counter,
    /// Announcements forwarded once the change they name was pulled, for `/metrics`.
    forwarded: Counter,
    /// The collections heard of, bounded; `status.available` holds the same ids.
    heard: Heard,
    /// On a mirror: how many new follows each peer's catalogue gossip caused lately.
    follow_rate: FollowRate,
    /// On a mirror: it follows [`MAX_MIRRORED`] collections and follows no more by itself.
    mirror_full: bool,
}

/// Builds the swarm and starts listening; returns the task to run and its handle.
pub fn start(
    keypair: identity::Keypair,
    config: NetworkConfig,
    store: Reader,
    blobs: crate::BlobStore,
    handle: Handle,
    changes: mpsc::Receiver<Changed>,
    operator: (AuthorId, Signature),
) -> Result<(Network, NetHandle), Box<dyn std::error::Error + Send + Sync>> {
    let mut registry = Registry::default();
    let mut swarm = behaviour::build(keypair, &config, &mut registry)?;
    let received = Counter::default();
    registry.register(
        "minga_documents_received",
        "Documents changed by a peer's sync payload",
        received.clone(),
    );
    let requests_sent = Counter::default();
    registry.register(
        "minga_sync_requests_sent",
        "Requests sent on /minga/sync/1, each answered by one response: round trips begun",
        requests_sent.clone(),
    );
    let forwarded = Counter::default();
    registry.register(
        "minga_announcements_forwarded",
        "Announcements of changes pulled from a peer, forwarded once the change was here",
        forwarded.clone(),
    );
    let listeners = config
        .listen
        .iter()
        .map(|addr| swarm.listen_on(addr.clone()))
        .collect::<Result<_, _>>()?;
    let status = Arc::new(RwLock::new(NetStatus {
        peer_id: swarm.local_peer_id().to_string(),
        ..NetStatus::default()
    }));
    let (commands_tx, commands) = mpsc::channel(64);
    let (work_tx, work_rx) = mpsc::channel(256);
    let now = Instant::now();
    let local_peer = *swarm.local_peer_id();
    let fetcher = Fetcher::new(blobs, config.blobs, config.mirror);
    let network = Network {
        swarm,
        exchange: Exchange {
            store,
            handle,
            mirror: config.mirror,
            operator,
            received,
        },
        bootstrap: config
            .bootstrap
            .iter()
            .map(|a| (a.clone(), now, Duration::from_secs(1)))
            .collect(),
        config,
        status: Arc::clone(&status),
        changes,
        commands,
        work_tx,
        work_rx,
        permits: Arc::new(tokio::sync::Semaphore::new(MAX_WORK)),
        purposes: HashMap::new(),
        queued: HashMap::new(),
        in_flight: HashMap::new(),
        topics: BTreeSet::new(),
        session: Session::new(local_peer, session::Config::default()),
        started: now,
        listeners,
        fetcher,
        requests_sent,
        forwarded,
        heard: Heard::default(),
        follow_rate: FollowRate::default(),
        mirror_full: false,
    };
    let net = NetHandle {
        status,
        registry: Arc::new(Mutex::new(registry)),
        commands: commands_tx,
    };
    Ok((network, net))
}

impl Network {
    /// Runs until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        self.subscribe(&catalogue_topic());
        match self.exchange.store.followed() {
            Ok(followed) => followed.iter().for_each(|c| self.follow_topic(c)),
            Err(e) => tracing::error!("reading followed collections: {e}"),
        }
        if self.config.mirror {
            (0..TOPIC_SHARDS).for_each(|shard| self.subscribe_shard(shard));
        }
        let mut catalogue = tokio::time::interval(CATALOGUE_EVERY);
        let mut redial = tokio::time::interval(Duration::from_secs(1));
        let mut plan_blobs = tokio::time::interval(blobs::PLAN_EVERY);
        loop {
            tokio::select! {
                Some(done) = self.fetcher.next_done() => {
                    if let blobs::Done::Served(peer, _, reply) = &done {
                        self.traffic(peer, reply.encoded.len(), 0);
                    }
                    for (peer, reason) in self.fetcher.on_done(done, &mut self.swarm) {
                        self.drop_peer(peer, reason);
                    }
                }
                _ = plan_blobs.tick() => self.fetcher.plan(&mut self.swarm),
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some(change) = self.changes.recv() => self.announce(&change),
                Some(command) = self.commands.recv() => self.on_command(command),
                Some(work) = self.work_rx.recv() => self.on_work(work),
                _ = catalogue.tick() => self.publish_catalogue(),
                _ = redial.tick() => {
                    self.redial();
                    self.tick();
                }
                _ = shutdown.changed() => break,
            }
        }
        // Dropping a listener does not free a `/memory/` port (only removing it does), and a
        // node restarted in the same process listens on the same address again.
        for listener in std::mem::take(&mut self.listeners) {
            self.swarm.remove_listener(listener);
        }
    }

    fn on_command(&mut self, command: NetCommand) {
        match command {
            NetCommand::Followed(collection) => {
                self.follow_topic(&collection);
                self.step(Input::Followed(collection));
            }
            NetCommand::Block(peer) => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            NetCommand::Unblock(peer) => {
                let now = Instant::now();
                for (addr, next, backoff) in &mut self.bootstrap {
                    if peer_of(addr) == Some(peer) {
                        (*next, *backoff) = (now, Duration::from_secs(1));
                    }
                }
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                let full = address
                    .clone()
                    .with_p2p(*self.swarm.local_peer_id())
                    .unwrap_or_else(|a| a);
                tracing::info!("listening on {full}");
                self.status
                    .write()
                    .expect("status lock")
                    .listen
                    .push(full.to_string());
                if self.config.relay && !full.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
                    // A relay is reachable by definition: its reservations advertise these.
                    self.swarm.add_external_address(address);
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                if self
                    .exchange
                    .store
                    .is_blocked(&peer_id.to_string())
                    .unwrap_or(false)
                {
                    tracing::info!(%peer_id, "refusing a blocked peer");
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                let address = endpoint.get_remote_address().to_string();
                let mut status = self.status.write().expect("status lock");
                let info = status.peers.entry(peer_id.to_string()).or_default();
                if !info.addresses.contains(&address) {
                    info.addresses.push(address);
                }
                info.last_seen = now_ms();
                drop(status);
                if num_established.get() == 1 {
                    self.send(peer_id, Request::Operator, Purpose::Operator);
                    self.fetcher.peer_connected();
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.queued.remove(&peer_id);
                self.in_flight.remove(&peer_id);
                self.step(Input::Disconnected(peer_id));
                self.status
                    .write()
                    .expect("status lock")
                    .peers
                    .remove(&peer_id.to_string());
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            SwarmEvent::ListenerClosed {
                addresses, reason, ..
            } => {
                tracing::warn!(?addresses, "a listener closed: {reason:?}");
            }
            SwarmEvent::ListenerError { error, .. } => tracing::warn!("listener error: {error}"),
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(?peer_id, "dial failed: {error}");
            }
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                self.seen(&peer_id);
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
                if info.protocols.contains(&codec::SYNC_PROTOCOL) {
                    self.step(Input::Connected(peer_id));
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    if !self.swarm.is_connected(&peer) {
                        // Both nodes of a LAN discover each other at once and dial at once:
                        // from their listening ports, the two TCP dials would meet as one
                        // simultaneous open that both sides take as outbound, and both
                        // handshakes fail. A fresh port makes them two connections.
                        let dial = DialOpts::peer_id(peer)
                            .addresses(vec![addr])
                            .allocate_new_port()
                            .build();
                        let _ = self.swarm.dial(dial);
                    }
                }
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                if let Some(acceptance) = self.on_gossip(propagation_source, &message_id, &message)
                {
                    self.validated(&message_id, &propagation_source, acceptance);
                }
            }
            BehaviourEvent::Sync(request_response::Event::Message { peer, message, .. }) => {
                self.seen(&peer);
                match message {
                    request_response::Message::Request {
                        request: Inbound::Valid(request),
                        channel,
                        ..
                    } => {
                        self.traffic(&peer, 0, wire::encoded_len(&request));
                        self.serve(peer, request, channel);
                    }
                    request_response::Message::Request {
                        request: Inbound::Malformed(reason),
                        ..
                    } => self.drop_peer(peer, format!("malformed frame: {reason}")),
                    request_response::Message::Response {
                        request_id,
                        response,
                    } => {
                        self.traffic(&peer, 0, wire::encoded_len(&response));
                        if let Some((purpose, _)) = self.finished(&request_id) {
                            self.on_response(peer, purpose, response);
                        }
                    }
                }
            }
            BehaviourEvent::Sync(request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            }) => {
                if let Some((Purpose::Session(session::Purpose::Sync { .. }), ids)) =
                    self.finished(&request_id)
                {
                    let answered = false;
                    self.step(Input::Finished {
                        peer,
                        ids,
                        answered,
                    });
                }
                tracing::debug!(%peer, "sync request failed: {error}");
                if matches!(error, request_response::OutboundFailure::Io(ref e) if e.kind() == std::io::ErrorKind::InvalidData)
                {
                    self.drop_peer(peer, format!("malformed response: {error}"));
                }
            }
            BehaviourEvent::Blob(event) => {
                if let request_response::Event::Message {
                    peer,
                    message: request_response::Message::Response { response, .. },
                    ..
                } = &event
                {
                    self.traffic(peer, 0, response.encoded.len());
                }
                for (peer, reason) in self.fetcher.on_event(event, &mut self.swarm) {
                    self.drop_peer(peer, reason);
                }
            }
            BehaviourEvent::Sync(request_response::Event::InboundFailure {
                peer, error, ..
            }) => {
                tracing::debug!(%peer, "serving a sync request failed: {error}");
            }
            _ => {}
        }
    }

    /// Validates a gossip message, which gossipsub then forwards (or not); `None` holds an
    /// announcement back while what it names is pulled from the peer it came from.
    fn on_gossip(
        &mut self,
        source: PeerId,
        message_id: &gossipsub::MessageId,
        message: &gossipsub::Message,
    ) -> Option<MessageAcceptance> {
        if message.topic == catalogue_topic().hash() {
            let Ok(catalogue) = wire::decode::<Catalogue>(&message.data, MAX_GOSSIP_BYTES) else {
                return Some(MessageAcceptance::Reject);
            };
            self.heard(source, catalogue);
            return Some(MessageAcceptance::Accept);
        }
        let Ok(announcement) = wire::decode::<Announcement>(&message.data, MAX_GOSSIP_BYTES) else {
            return Some(MessageAcceptance::Reject);
        };
        self.step(Input::Announced {
            peer: source,
            message: message_id.clone(),
            announcement,
        });
        None
    }

    /// Gives gossipsub its verdict on a message it holds until validated: forward, drop, or
    /// drop and count against the sender.
    fn validated(
        &mut self,
        message: &gossipsub::MessageId,
        source: &PeerId,
        acceptance: MessageAcceptance,
    ) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(message, source, acceptance);
    }

    /// Records the collections a peer's catalogue names (its strings were bounded when
    /// decoded); a mirror follows those it does not, within [`MAX_MIRRORED`] and the peer's
    /// follow rate.
    fn heard(&mut self, source: PeerId, catalogue: Catalogue) {
        let mut heard = Vec::new();
        {
            let mut status = self.status.write().expect("status lock");
            for item in catalogue.collections {
                let id = DocumentId::from_bytes(item.id);
                if let Some(evicted) = self.heard.hear(id).evicted {
                    status.available.remove(&evicted.to_string());
                }
                heard.push(id);
                status.available.insert(
                    id.to_string(),
                    Collection {
                        id,
                        name: item.name,
                        title: item.title,
                        description: String::new(),
                        license: String::new(),
                        maintainers: Vec::new(),
                        entries: 0,
                    },
                );
            }
        }
        if self.config.mirror {
            self.mirror(source, heard);
        }
    }

    /// A mirror follows what it hears of: the event loop records it, and reconciliation with
    /// every peer fetches it. It follows at most [`MAX_MIRRORED`] collections by itself, and
    /// one peer's gossip makes it follow at most `heard::FOLLOWS_PER_PEER` a minute; the
    /// rest are followed when heard of again, once there is room.
    fn mirror(&mut self, source: PeerId, heard: Vec<DocumentId>) {
        let store = &self.exchange.store;
        let followed = match store.followed() {
            Ok(followed) => followed.len(),
            Err(e) => {
                tracing::error!("reading followed collections: {e}");
                return;
            }
        };
        let mut room = MAX_MIRRORED.saturating_sub(followed);
        let new: Vec<DocumentId> = heard
            .into_iter()
            .filter(|id| !store.is_followed(id).unwrap_or(true))
            .collect();
        let full = room < new.len();
        if full && !self.mirror_full {
            tracing::warn!(
                "this mirror follows {followed} collections; it follows at most {MAX_MIRRORED} \
                 by itself and follows no more it hears of"
            );
        }
        self.mirror_full = full || room == 0;
        let now = Instant::now();
        for id in new {
            if room == 0 {
                break;
            }
            if !self.follow_rate.allow(source, now) {
                tracing::debug!(%source, "new collections heard from this peer wait: rate limit");
                break;
            }
            room -= 1;
            let handle = self.exchange.handle.clone();
            tokio::spawn(async move {
                let _ = handle.set_followed(id, true).await;
            });
            self.step(Input::Followed(id));
        }
    }

    fn publish_catalogue(&mut self) {
        let Ok(collections) = self.exchange.store.collections() else {
            return;
        };
        if collections.is_empty() {
            return;
        }
        let catalogue = Catalogue {
            collections: collections
                .into_iter()
                .take(MAX_CATALOGUE_ITEMS)
                .map(|c| CatalogueItem {
                    id: *c.id.as_bytes(),
                    name: c.name,
                    title: c.title,
                })
                .collect(),
        };
        let _ = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(catalogue_topic(), wire::encode(&catalogue));
    }

    fn announce(&mut self, change: &Changed) {
        // A collection created or first received here is followed: listen on its topic too.
        self.follow_topic(&change.collection);
        let announcement = Announcement {
            collection: *change.collection.as_bytes(),
            id: *change.id.as_bytes(),
            kind: change.kind.into(),
            heads: change.heads.clone(),
        };
        let spread = change.spread;
        self.step(Input::Changed {
            announcement,
            spread,
        });
    }

    /// Feeds the session one input and carries out what it says.
    fn step(&mut self, input: Input<PeerId, gossipsub::MessageId>) {
        self.step_answering(input, None);
    }

    /// [`Self::step`] for a request, whose response goes to the peer's `channel`.
    fn step_answering(
        &mut self,
        input: Input<PeerId, gossipsub::MessageId>,
        mut channel: Option<(PeerId, request_response::ResponseChannel<Response>)>,
    ) {
        let view = View {
            store: &self.exchange.store,
            mirror: self.config.mirror,
            mirror_full: self.mirror_full,
        };
        let outputs = self.session.handle(input, self.started.elapsed(), &view);
        for output in outputs {
            self.carry_out(output, &mut channel);
        }
    }

    fn carry_out(
        &mut self,
        output: Output<PeerId, gossipsub::MessageId>,
        channel: &mut Option<(PeerId, request_response::ResponseChannel<Response>)>,
    ) {
        match output {
            Output::Send {
                peer,
                request,
                purpose,
            } => self.send(peer, request, Purpose::Session(purpose)),
            Output::Offer {
                peer,
                to_sync,
                spread,
            } => self.spawn(move |exchange, work| async move {
                send_offers(&exchange, &work, peer, &to_sync, spread).await;
            }),
            Output::Respond(response) => {
                if let Some((peer, channel)) = channel.take() {
                    self.respond(peer, channel, response);
                }
            }
            Output::Apply {
                peer,
                payloads,
                then: Then::Answer { coming },
            } => {
                let Some((_, channel)) = channel.take() else {
                    return;
                };
                self.spawn(move |exchange, work| async move {
                    let done = match exchange.answer_offers(peer, payloads, &coming).await {
                        Ok(answers) => Work::Respond(peer, channel, Response::Sync { answers }),
                        Err(Misbehaved(reason)) => Work::Misbehaved(peer, reason),
                    };
                    let _ = work.send(done).await;
                });
            }
            Output::Apply {
                peer,
                payloads,
                then: Then::FollowUp { spread, next },
            } => self.spawn(move |exchange, work| async move {
                let ids = payloads.iter().map(|a| a.id).collect();
                match exchange.on_answers(peer, payloads, spread).await {
                    Ok(follow_up) => {
                        if let (Some(request), Some(next)) = (follow_up, next) {
                            let next = Work::Send(peer, request, Purpose::Session(next));
                            let _ = work.send(next).await;
                        }
                    }
                    Err(Misbehaved(reason)) => {
                        let _ = work.send(Work::Misbehaved(peer, reason)).await;
                    }
                }
                let _ = work.send(Work::Finished(peer, ids)).await;
            }),
            Output::SetPosition {
                peer,
                collection,
                seq,
            } => {
                let handle = self.exchange.handle.clone();
                tokio::spawn(async move {
                    let _ = handle.set_peer_seq(peer.to_string(), collection, seq).await;
                });
            }
            Output::Publish(announcement) => {
                let collection = DocumentId::from_bytes(announcement.collection);
                let topic = shard_topic(shard_of(&collection));
                if let Err(e) = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(topic, wire::encode(&announcement))
                {
                    tracing::debug!("announcement not published: {e}");
                }
            }
            Output::Validate {
                message,
                source,
                accept,
            } => {
                let acceptance = if accept {
                    MessageAcceptance::Accept
                } else {
                    MessageAcceptance::Ignore
                };
                self.validated(&message, &source, acceptance);
            }
            Output::Forward { message, source } => {
                self.forwarded.inc();
                self.validated(&message, &source, MessageAcceptance::Accept);
            }
            Output::Disconnect { peer, reason } => self.drop_peer(peer, reason.to_string()),
            // The session is ticked every second, sooner than anything it waits for needs.
            Output::Wake(_) => {}
        }
    }

    /// Runs store reads and writes off the swarm task, at most [`MAX_WORK`] at once; results
    /// come back as [`Work`].
    fn spawn<F, Fut>(&self, job: F)
    where
        F: FnOnce(Exchange, mpsc::Sender<Work>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let exchange = self.exchange.clone();
        let work = self.work_tx.clone();
        let permits = Arc::clone(&self.permits);
        tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            job(exchange, work).await;
        });
    }

    /// A second passed: tell the session, with the peers still busy with requests (a check
    /// leaves them alone, as a second reconciliation would offer again what is on its way).
    fn tick(&mut self) {
        if self.config.mirror {
            // Announcements of collections not followed are pulled only while there is room.
            self.mirror_full = self
                .exchange
                .store
                .followed()
                .map_or(true, |f| f.len() >= MAX_MIRRORED);
        }
        let busy = self
            .in_flight
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(p, _)| *p)
            .chain(
                self.queued
                    .iter()
                    .filter(|(_, q)| !q.is_empty())
                    .map(|(p, _)| *p),
            )
            .collect();
        self.step(Input::Tick { busy });
    }

    /// Sends a request, or queues it while [`MAX_IN_FLIGHT`] are already on their way to the
    /// peer (which accepts only so many streams at once).
    fn send(&mut self, peer: PeerId, request: Request, purpose: Purpose) {
        let in_flight = self.in_flight.entry(peer).or_default();
        if *in_flight >= MAX_IN_FLIGHT {
            let queue = self.queued.entry(peer).or_default();
            if queue.len() < MAX_QUEUED {
                queue.push_back((request, purpose));
            } else {
                tracing::debug!(%peer, "sync queue full; the next reconciliation retries");
            }
            return;
        }
        *in_flight += 1;
        self.requests_sent.inc();
        self.traffic(&peer, wire::encoded_len(&request), 0);
        let offered = match &request {
            Request::Sync { offers } => offers.iter().map(|o| o.id).collect(),
            _ => Vec::new(),
        };
        let id = self
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, Inbound::Valid(request));
        self.purposes.insert(id, (peer, purpose, offered));
    }

    /// A request to `peer` finished: send the next one waiting. Returns what it was for and
    /// the documents it offered.
    fn finished(&mut self, request: &OutboundRequestId) -> Option<(Purpose, Vec<[u8; 16]>)> {
        let (peer, purpose, offered) = self.purposes.remove(request)?;
        if let Some(n) = self.in_flight.get_mut(&peer) {
            *n = n.saturating_sub(1);
        }
        if let Some((next, next_purpose)) = self.queued.get_mut(&peer).and_then(VecDeque::pop_front)
        {
            self.send(peer, next, next_purpose);
        }
        Some((purpose, offered))
    }

    /// Answers which author runs this node; hands every other request to the session.
    fn serve(
        &mut self,
        peer: PeerId,
        request: Request,
        channel: request_response::ResponseChannel<Response>,
    ) {
        if request == Request::Operator {
            let (author, signature) = self.exchange.operator;
            let response = Response::Operator {
                author: *author.as_bytes(),
                signature: signature.0.to_vec(),
            };
            self.respond(peer, channel, response);
            return;
        }
        self.step_answering(Input::Request { peer, request }, Some((peer, channel)));
    }

    fn on_response(&mut self, peer: PeerId, purpose: Purpose, response: Response) {
        match (purpose, response) {
            (Purpose::Operator, Response::Operator { author, signature }) => {
                let author = AuthorId::from_bytes(author);
                let vouched = Signature::try_from(signature.as_slice())
                    .is_ok_and(|sig| author.vouches_for_peer(&peer.to_bytes(), &sig));
                if vouched {
                    let mut status = self.status.write().expect("status lock");
                    status.operators.insert(peer.to_string(), author);
                } else {
                    self.drop_peer(
                        peer,
                        "vouched for by an author key that did not sign".into(),
                    );
                }
            }
            (Purpose::Operator, Response::Refused { reason }) => {
                tracing::debug!(%peer, "operator request refused: {reason}");
            }
            (Purpose::Operator, _) => {
                self.drop_peer(peer, "a response that does not answer the request".into());
            }
            (Purpose::Session(purpose), response) => self.step(Input::Response {
                peer,
                purpose,
                response,
            }),
        }
    }

    fn on_work(&mut self, work: Work) {
        match work {
            Work::Respond(peer, channel, response) => self.respond(peer, channel, response),
            Work::Send(peer, request, purpose) => self.send(peer, request, purpose),
            Work::Misbehaved(peer, reason) => self.drop_peer(peer, reason),
            Work::Finished(peer, ids) => {
                let answered = true;
                self.step(Input::Finished {
                    peer,
                    ids,
                    answered,
                });
            }
        }
    }

    fn drop_peer(&mut self, peer: PeerId, reason: String) {
        tracing::warn!(%peer, "dropping peer: {reason}");
        self.status.write().expect("status lock").peers_dropped += 1;
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    fn redial(&mut self) {
        let now = Instant::now();
        for i in 0..self.bootstrap.len() {
            let (addr, next, backoff) = self.bootstrap[i].clone();
            if peer_of(&addr).is_some_and(|p| self.swarm.is_connected(&p)) {
                self.bootstrap[i].2 = Duration::from_secs(1);
                continue;
            }
            if now < next {
                continue;
            }
            if let Err(e) = self.swarm.dial(addr.clone()) {
                tracing::debug!("dialling {addr}: {e}");
            }
            self.bootstrap[i].1 = now + backoff;
            self.bootstrap[i].2 = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn follow_topic(&mut self, collection: &DocumentId) {
        self.subscribe_shard(shard_of(collection));
    }

    fn subscribe_shard(&mut self, shard: u8) {
        if self.topics.insert(shard) {
            self.subscribe(&shard_topic(shard));
        }
    }

    fn subscribe(&mut self, topic: &IdentTopic) {
        if let Err(e) = self.swarm.behaviour_mut().gossipsub.subscribe(topic) {
            tracing::error!("subscribing to {topic}: {e}");
        }
    }

    fn respond(
        &mut self,
        peer: PeerId,
        channel: request_response::ResponseChannel<Response>,
        response: Response,
    ) {
        self.traffic(&peer, wire::encoded_len(&response), 0);
        let _ = self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, response);
    }

    /// Counts bytes of Minga's messages to and from a connected peer, for the operator.
    fn traffic(&self, peer: &PeerId, sent: usize, received: usize) {
        let mut status = self.status.write().expect("status lock");
        if let Some(info) = status.peers.get_mut(&peer.to_string()) {
            info.bytes_sent += sent as u64;
            info.bytes_received += received as u64;
        }
    }

    fn seen(&self, peer: &PeerId) {
        if let Some(info) = self
            .status
            .write()
            .expect("status lock")
            .peers
            .get_mut(&peer.to_string())
        {
            info.last_seen = now_ms();
        }
    }
}

/// The peer id an address ends in (`/p2p/<peer id>`), if it names one.
fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

fn shard_of(collection: &DocumentId) -> u8 {
    collection.as_bytes()[0] % TOPIC_SHARDS
}

fn shard_topic(shard: u8) -> IdentTopic {
    IdentTopic::new(format!("minga/collections/1/{shard}"))
}

fn catalogue_topic() -> IdentTopic {
    IdentTopic::new("minga/catalogue/1")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Offers the documents the session found differing, batch by batch: each is read from the
/// store only once the network took the previous one.
async fn send_offers(
    exchange: &Exchange,
    work: &mpsc::Sender<Work>,
    peer: PeerId,
    to_sync: &ToSync,
    spread: Spread,
) {
    for request in exchange.offer_batches(to_sync) {
        match request {
            Ok(request) => {
                let purpose = Purpose::Session(session::Purpose::Sync { round: 0, spread });
                if work.send(Work::Send(peer, request, purpose)).await.is_err() {
                    return;
                }
            }
            Err(e) => return tracing::error!("preparing sync offers: {e}"),
        }
    }
}

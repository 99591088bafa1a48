//! The sync policy, once, sans IO: one [`Session`] per node decides when to reconcile, when to
//! ask a peer's change log, how many rounds a sync takes, which peer a listed document is
//! fetched from, when an announcement is forwarded and when a catch-up stays quiet. The node's
//! network task and the simulator both feed it what happens ([`Input`]) and carry out what it
//! says ([`Output`]), so a simulated node decides exactly as a real one on the same inputs.
//!
//! Built after iroh-gossip's `proto::State`: `handle(input, now) -> outputs`. Time comes in as
//! `now`, a [`Duration`] since any fixed origin. What the session reads of the node's documents
//! (followed collections, the reconciliation set, a document's digest, the change log) comes
//! through [`Replica`]; applying payloads, encoding offers and writing positions are outputs the
//! caller carries out, because they need the documents themselves and, on the node, the writer.
//!
//! The policy:
//! - **On connecting** ([`Input::Connected`]) each side asks the other's change log what
//!   changed since its last answer (`Request::Since`), for every followed collection; where it
//!   never asked, it learns its position, and the side with the smaller peer id reconciles the
//!   collection in full.
//! - **Every [`Config::check_every`]** the side with the smaller id reconciles every collection
//!   with every idle peer: one fingerprint when both hold the same (20–40 bytes), the check that
//!   nothing was missed. The change log is asked on connecting only: a listing every period cost
//!   a province 200 bytes per node per update, and a stale position only lengthens the next
//!   reconnection's listing (`docs/simulations.md`).
//! - **A listed document is fetched once**: of several peers listing the same document, only
//!   the first is asked; the others' listings wait for that fetch and are fetched only if the
//!   document still differs once it landed or failed ([`FETCH_TIMEOUT`]).
//! - **Hold and forward**: an announcement of a change not held here is held back (not
//!   forwarded) while the change is pulled from the peer it came from, and forwarded once the
//!   change is here, or dropped after [`FORWARD_WITHIN`].
//! - **Quiet catch-up**: changes that came by reconciliation or a change listing are not
//!   announced one by one; [`QUIET_AFTER`] after the last of a burst, every neighbour is offered
//!   one reconciliation of the collection.
//! - **Whole documents only where nothing else brings them**: a document the peer holds no
//!   version of is sent whole at once only from a range of the collection the peer holds
//!   nothing of (a first sync); otherwise it is offered by its heads, since gossip or another
//!   neighbour is most likely bringing it, and the peer asks for it whole (`sync::answer`) only
//!   if it is still missing and not on its way from elsewhere. A province measured it: catch-up
//!   pushes were arriving twice (`docs/simulations.md`).
//! - **Rounds**: a sync takes at most [`MAX_SYNC_ROUND`] exchanges after the first offer.
//! - A document offered to a peer is not offered to it again until it answered
//!   ([`OFFER_TIMEOUT`]).
//! - A peer whose response does not answer its request, or whose ranges are malformed, is
//!   disconnected.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::DocumentId;
use crate::reconcile::{self, DIGEST_LEN, Item, ItemSet};
use crate::wire::{
    Announcement, MAX_SINCE_ITEMS, Offer, Payload, Request, Response, SINCE_UNKNOWN,
};

/// How often a node checks every collection it shares with each peer.
pub const CHECK_EVERY: Duration = Duration::from_secs(30);
/// Quiet time after the last change of a catch-up before neighbours are offered it.
pub const QUIET_AFTER: Duration = Duration::from_secs(2);
/// How long a held announcement waits for what it names before it is dropped unforwarded
/// (gossipsub keeps a message for validation about as long).
pub const FORWARD_WITHIN: Duration = Duration::from_secs(60);
/// Sync requests that may follow the first offer of a document (an answer, then a last offer).
pub const MAX_SYNC_ROUND: u8 = 2;
/// A fetch not finished in this long no longer holds back other peers' listings of its
/// document (a request times out after 120 s).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(120);
/// How long an unanswered offer keeps a document from being offered to the same peer again.
pub const OFFER_TIMEOUT: Duration = Duration::from_secs(120);
/// Most announcements held at once: beyond this a peer flooding announcements of changes it
/// does not have costs pulls, not memory.
pub const MAX_HELD: usize = 4096;
/// Most documents remembered as asked for whole at once: beyond this a peer flooding offers
/// costs answers, not memory.
pub const MAX_ASKED: usize = 4096;

/// How peers learn of a durable change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    /// Gossip its heads at once: a local write, or a change pulled on hearing of it.
    Announce,
    /// Part of a catch-up that may bring thousands of changes: rather than one announcement
    /// each, the neighbours are offered one reconciliation once the burst is over.
    Quietly,
}

/// Why a request was sent: kept by the sender next to the request and handed back with its
/// response (it is not on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Reconcile(DocumentId),
    /// What of a collection changed on the peer since we last asked.
    Since(DocumentId),
    /// A sync batch: how many exchanges for these documents preceded it, and how the changes
    /// it brings spread on.
    Sync {
        round: u8,
        spread: Spread,
    },
}

/// Documents to bring level with a peer, found differing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToSync {
    pub collection: DocumentId,
    pub ids: Vec<[u8; 16]>,
    /// Of `ids`, those the peer holds no version of: they are offered whole.
    pub they_lack: BTreeSet<[u8; 16]>,
}

/// What the session reads of the node's documents.
pub trait Replica<P> {
    /// The collections this node follows.
    fn followed(&self) -> Vec<DocumentId>;
    /// Whether this node follows `collection`.
    fn follows(&self, collection: &DocumentId) -> bool;
    /// Whether this node serves `collection` to peers (a mirror serves every one).
    fn carries(&self, collection: &DocumentId) -> bool;
    /// Whether announcements of `collection` are pulled (a mirror with room pulls all).
    fn pulls(&self, collection: &DocumentId) -> bool;
    /// Where this node is in `peer`'s change log of `collection`, if it ever asked.
    fn position(&self, peer: &P, collection: &DocumentId) -> Option<u64>;
    /// The reconciliation set of `collection`.
    fn reconcile_set(&self, collection: &DocumentId) -> Result<Arc<ItemSet>, String>;
    /// The digest of the heads of `id` held here in `collection`.
    fn digest(&self, collection: &DocumentId, id: &DocumentId) -> Option<[u8; DIGEST_LEN]>;
    /// Whether every change `heads` name is held here.
    fn holds(&self, collection: &DocumentId, id: &DocumentId, heads: &[[u8; 32]]) -> bool;
    /// The current end of this node's change log.
    fn log_position(&self) -> u64;
    /// Documents of `collection` whose version changed after log position `since`, at most
    /// `limit` (the flag says whether that was all), less those `asker` itself brought.
    fn changed_since(
        &self,
        collection: &DocumentId,
        since: u64,
        limit: usize,
        asker: &P,
    ) -> Result<(Vec<Item>, bool), String>;
}

/// What happened, fed to [`Session::handle`].
#[derive(Debug)]
pub enum Input<P, M> {
    /// A peer that speaks the sync protocol connected (again).
    Connected(P),
    /// The last connection to a peer closed.
    Disconnected(P),
    /// A collection is now followed: catch up on it with every peer.
    Followed(DocumentId),
    /// A peer's request. `Request::Operator` is not the session's; the caller answers it.
    Request { peer: P, request: Request },
    /// The response to a request sent for `purpose`.
    Response {
        peer: P,
        purpose: Purpose,
        response: Response,
    },
    /// A sync request to `peer` about these documents is over: answered and applied, or failed.
    Finished {
        peer: P,
        ids: Vec<[u8; 16]>,
        answered: bool,
    },
    /// An announcement heard on gossip from `peer`, as message `message`.
    Announced {
        peer: P,
        message: M,
        announcement: Announcement,
    },
    /// A change is durable here (written locally or applied from a peer).
    Changed {
        announcement: Announcement,
        spread: Spread,
    },
    /// Time passed; `busy` are the peers still working through requests, left out of the
    /// periodic check (a second reconciliation would offer again what is on its way).
    Tick { busy: BTreeSet<P> },
}

/// What the caller does.
#[derive(Debug, PartialEq)]
pub enum Output<P, M> {
    Send {
        peer: P,
        request: Request,
        purpose: Purpose,
    },
    /// Offer these documents to `peer` (`sync::offer` each, in batches), each batch sent with
    /// `Purpose::Sync { round: 0, spread }`.
    Offer {
        peer: P,
        to_sync: ToSync,
        spread: Spread,
    },
    /// The response to the [`Input::Request`] being handled.
    Respond(Response),
    /// Verify and apply the payloads `peer` sent, then do `then`.
    Apply {
        peer: P,
        payloads: Vec<Offer>,
        then: Then,
    },
    /// Remember `seq` as this node's position in `peer`'s change log of `collection`.
    SetPosition {
        peer: P,
        collection: DocumentId,
        seq: u64,
    },
    /// Announce a change on gossip.
    Publish(Announcement),
    /// Give gossip its verdict on a message heard.
    Validate {
        message: M,
        source: P,
        accept: bool,
    },
    /// A held announcement's change arrived: forward it now (accept it).
    Forward {
        message: M,
        source: P,
    },
    Disconnect {
        peer: P,
        reason: Misbehaviour,
    },
    /// Feed an [`Input::Tick`] at this time (or earlier).
    Wake(Duration),
}

/// Why a peer is disconnected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Misbehaviour {
    #[error("malformed reconciliation ranges: {0}")]
    Ranges(#[from] reconcile::ReconcileError),
    #[error("a response that does not answer the request")]
    Unanswered,
}

/// What follows applying payloads.
#[derive(Debug, PartialEq, Eq)]
pub enum Then {
    /// They came in a request: respond with `sync::answer` for each (applied with
    /// [`Spread::Quietly`]). Documents `coming` here from elsewhere already are not asked for.
    Answer { coming: BTreeSet<[u8; 16]> },
    /// They answered our request: offer what the peer still lacks (`sync::follow_up`) in a
    /// request for `next`, if any; apply with `spread`; then report [`Input::Finished`].
    FollowUp {
        spread: Spread,
        next: Option<Purpose>,
    },
}

/// Settings of the policy a caller may change (the simulator runs scenarios with their own
/// period); everything else is a constant above.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// The period of checks with each peer.
    pub check_every: Duration,
    /// When the first check is due.
    pub first_check: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            check_every: CHECK_EVERY,
            first_check: CHECK_EVERY,
        }
    }
}

/// Counts of what the session did, for metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Announcements forwarded once the change they name was pulled.
    pub forwarded: u64,
    /// Documents a change listing named and that were fetched from the listing peer.
    pub listed_fetches: u64,
    /// Listings held back because the document was being fetched from another peer.
    pub listings_waited: u64,
}

/// A listing of a document held back while it is fetched from another peer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Waiting<P> {
    /// The peer that listed it, to fetch from if it still differs.
    peer: P,
    collection: DocumentId,
    /// Its id and its digest at that peer.
    item: Item,
}

/// An announcement whose change is being pulled.
#[derive(Debug)]
struct HeldAnnouncement<P, M> {
    message: M,
    /// The peer it came from, which holds the change (it forwarded it) and is pulled from.
    source: P,
    collection: DocumentId,
    heads: Vec<[u8; 32]>,
    received: Duration,
}

/// One node's sync policy and what it remembers between events.
#[derive(Debug)]
pub struct Session<P, M> {
    me: P,
    config: Config,
    /// Connected peers, and the collections each asked us about on this connection (so it
    /// carries them) and whose position in its change log we made sure we know.
    peers: BTreeMap<P, BTreeSet<DocumentId>>,
    next_check: Duration,
    /// Collections a catch-up brought changes to, and when the burst counts as over.
    quiet: BTreeMap<DocumentId, Duration>,
    /// Documents on their way to a peer, and since when.
    offered: BTreeMap<(P, [u8; 16]), Duration>,
    /// Documents a listing named, being fetched from one peer, since when.
    fetching: BTreeMap<[u8; 16], (P, Duration)>,
    /// Listings waiting for those fetches.
    waiting: Vec<Waiting<P>>,
    /// Documents offered by their heads alone, from which peer first and since when.
    asked: BTreeMap<[u8; 16], (P, Duration)>,
    /// Held announcements by the document they name.
    held: BTreeMap<DocumentId, Vec<HeldAnnouncement<P, M>>>,
    held_count: usize,
    /// The earliest wake asked for and not yet passed.
    armed: Option<Duration>,
    /// The time of the input being handled.
    now: Duration,
    pub stats: Stats,
}

impl<P: Copy + Ord, M: Clone> Session<P, M> {
    /// The session of node `me`, with no peer yet.
    pub fn new(me: P, config: Config) -> Self {
        Session {
            me,
            config,
            peers: BTreeMap::new(),
            next_check: config.first_check,
            quiet: BTreeMap::new(),
            offered: BTreeMap::new(),
            fetching: BTreeMap::new(),
            waiting: Vec::new(),
            asked: BTreeMap::new(),
            held: BTreeMap::new(),
            held_count: 0,
            armed: None,
            now: Duration::ZERO,
            stats: Stats::default(),
        }
    }

    /// The session of a node already connected to `peers` when time begins (a simulation that
    /// starts in a steady state): they are known, not caught up with.
    pub fn with_peers(me: P, config: Config, peers: impl IntoIterator<Item = P>) -> Self {
        let mut session = Self::new(me, config);
        session.peers = peers.into_iter().map(|p| (p, BTreeSet::new())).collect();
        session
    }

    /// The connected peers.
    pub fn peers(&self) -> impl Iterator<Item = &P> {
        self.peers.keys()
    }

    /// Acts on one input at time `now`; returns what to do, in order.
    pub fn handle(
        &mut self,
        input: Input<P, M>,
        now: Duration,
        replica: &impl Replica<P>,
    ) -> Vec<Output<P, M>> {
        let mut out = Vec::new();
        self.now = now;
        match input {
            Input::Connected(peer) => {
                self.peers.entry(peer).or_default();
                for collection in replica.followed() {
                    self.catch_up(peer, collection, false, replica, &mut out);
                }
            }
            Input::Disconnected(peer) => {
                self.peers.remove(&peer);
                self.offered.retain(|(to, _), _| *to != peer);
                self.fetching.retain(|_, (from, _)| *from != peer);
                self.waiting.retain(|w| w.peer != peer);
                self.asked.retain(|_, (from, _)| *from != peer);
                self.fetch_unblocked(now, replica, &mut out);
            }
            Input::Followed(collection) => {
                let peers: Vec<P> = self.peers.keys().copied().collect();
                for peer in peers {
                    self.catch_up(peer, collection, true, replica, &mut out);
                }
            }
            Input::Request { peer, request } => self.serve(peer, request, replica, &mut out),
            Input::Response {
                peer,
                purpose,
                response,
            } => self.on_response(peer, purpose, response, now, replica, &mut out),
            Input::Finished {
                peer,
                ids,
                answered,
            } => {
                self.finished(peer, &ids, answered, now, replica, &mut out);
            }
            Input::Announced {
                peer,
                message,
                announcement,
            } => self.heard(peer, message, announcement, now, replica, &mut out),
            Input::Changed {
                announcement,
                spread,
            } => self.changed(announcement, spread, now, replica, &mut out),
            Input::Tick { busy } => self.tick(&busy, now, replica, &mut out),
        }
        self.arm(now, &mut out);
        out
    }

    /// Asks `peer` what of `collection` changed since we last asked. Where we never asked, we
    /// learn our position, and the side with the smaller peer id (or we, when `reconcile`)
    /// reconciles the collection in full; the periodic check finds what that misses.
    fn catch_up(
        &mut self,
        peer: P,
        collection: DocumentId,
        reconcile: bool,
        replica: &impl Replica<P>,
        out: &mut Vec<Output<P, M>>,
    ) {
        let known = replica.position(&peer, &collection);
        out.push(since(peer, collection, known.unwrap_or(SINCE_UNKNOWN)));
        if reconcile || (known.is_none() && self.me < peer) {
            self.reconcile(peer, collection, replica, out);
        }
    }

    fn reconcile(
        &self,
        peer: P,
        collection: DocumentId,
        replica: &impl Replica<P>,
        out: &mut Vec<Output<P, M>>,
    ) {
        // A set that cannot be read is not reconciled now; the next check tries again.
        if let Ok(set) = replica.reconcile_set(&collection) {
            out.push(Output::Send {
                peer,
                request: Request::Reconcile {
                    collection: *collection.as_bytes(),
                    parts: reconcile::initiate(&set),
                },
                purpose: Purpose::Reconcile(collection),
            });
        }
    }

    /// Answers a peer's request, or says how to.
    fn serve(
        &mut self,
        peer: P,
        request: Request,
        replica: &impl Replica<P>,
        out: &mut Vec<Output<P, M>>,
    ) {
        match request {
            Request::Reconcile { collection, parts } => {
                let collection = DocumentId::from_bytes(collection);
                self.place_at(peer, collection, replica, out);
                if !replica.carries(&collection) {
                    return out.push(refused("collection not carried"));
                }
                let set = match replica.reconcile_set(&collection) {
                    Ok(set) => set,
                    Err(e) => return out.push(refused(&e)),
                };
                match reconcile::respond(&set, &parts) {
                    Ok(mut step) => {
                        let parts = std::mem::take(&mut step.reply);
                        out.push(Output::Respond(Response::Reconcile { parts }));
                        self.offer(peer, differing(collection, step), Spread::Quietly, out);
                    }
                    Err(e) => out.push(Output::Disconnect {
                        peer,
                        reason: e.into(),
                    }),
                }
            }
            Request::Since { collection, since } => {
                let collection = DocumentId::from_bytes(collection);
                self.place_at(peer, collection, replica, out);
                if !replica.carries(&collection) {
                    return out.push(refused("collection not carried"));
                }
                // Read first: whatever changes later has a greater position, and is in the
                // next answer.
                let seq = replica.log_position();
                let listed = if since == SINCE_UNKNOWN {
                    Ok((Vec::new(), true))
                } else {
                    replica.changed_since(&collection, since, MAX_SINCE_ITEMS, &peer)
                };
                out.push(match listed {
                    // Too many to list: the asker reconciles instead, so it gets none of them.
                    Ok((_, false)) => Output::Respond(Response::Since {
                        seq,
                        items: Vec::new(),
                        complete: false,
                    }),
                    Ok((items, true)) => Output::Respond(Response::Since {
                        seq,
                        items,
                        complete: true,
                    }),
                    Err(e) => refused(&e),
                });
            }
            Request::Sync { offers } => {
                let coming = self.ask_once(peer, &offers);
                out.push(Output::Apply {
                    peer,
                    payloads: offers,
                    then: Then::Answer { coming },
                })
            }
            Request::Operator => {}
        }
    }

    /// Of the documents `peer` offers by their heads alone, those on their way here already (a
    /// held announcement's pull, a listing's fetch, or an earlier such offer from another peer
    /// that this node's answer asked for whole), which the answer does not ask for again. The
    /// others count as asked for from `peer` (the answer asks only for those not held).
    fn ask_once(&mut self, peer: P, offers: &[Offer]) -> BTreeSet<[u8; 16]> {
        let now = self.now;
        self.asked
            .retain(|_, (_, since)| now < *since + FETCH_TIMEOUT);
        let mut coming = BTreeSet::new();
        for offer in offers {
            if offer.payload != Payload::Nothing || offer.heads.is_empty() {
                continue;
            }
            let id = offer.id;
            let pulled = self.held.contains_key(&DocumentId::from_bytes(id));
            let fetched = self
                .fetching
                .get(&id)
                .is_some_and(|(_, since)| now < *since + FETCH_TIMEOUT);
            let asked = self.asked.get(&id).is_some_and(|(from, _)| *from != peer);
            if pulled || fetched || asked {
                coming.insert(id);
            } else if self.asked.len() < MAX_ASKED {
                self.asked.insert(id, (peer, now));
            }
        }
        coming
    }

    /// A peer asked about `collection`, so it carries it: if we follow it too and have no
    /// position in the peer's change log, learn it now, so that the next reconnection asks
    /// only what changed instead of reconciling in full.
    fn place_at(
        &mut self,
        peer: P,
        collection: DocumentId,
        replica: &impl Replica<P>,
        out: &mut Vec<Output<P, M>>,
    ) {
        let Some(placed) = self.peers.get_mut(&peer) else {
            return;
        };
        if placed.insert(collection)
            && replica.follows(&collection)
            && replica.position(&peer, &collection).is_none()
        {
            out.push(since(peer, collection, SINCE_UNKNOWN));
        }
    }

    fn on_response(
        &mut self,
        peer: P,
        purpose: Purpose,
        response: Response,
        now: Duration,
        replica: &impl Replica<P>,
        out: &mut Vec<Output<P, M>>,
    ) {
        match (purpose, response) {
            (Purpose::Reconcile(collection), Response::Reconcile { parts }) => {
                if parts.is_empty() {
                    return;
                }
                // A set that cannot be read is not reconciled now; the next check tries again.
                let Ok(set) = replica.reconcile_set(&collection) else {
                    return;
                };
                match reconcile::respond(&set, &parts) {
                    Ok(mut step) => {
                        if !step.reply.is_empty() {
                            out.push(Output::Send {
                                peer,
                                request: Request::Reconcile {
                                    collection: *collection.as_bytes(),
                                    parts: std::mem::take(&mut step.reply),
                                },
                                purpose: Purpose::Reconcile(collection),
                            });
                        }
                        self.offer(peer, differing(collection, step), Spread::Quietly, out);
                    }
                    Err(e) => out.push(Output::Disconnect {
                        peer,
                        reason: e.into(),
                    }),
                }
            }
            (
                Purpose::Since(collection),
                Response::Since {
                    seq,
                    items,
                    complete,
                },
            ) => {
                out.push(Output::SetPosition {
                    peer,
                    collection,
                    seq,
                });
                if complete {
                    let to_sync = self.listed(peer, collection, &items, now, replica);
                    self.offer(peer, to_sync, Spread::Quietly, out);
                } else {
                    self.reconcile(peer, collection, replica, out);
                }
            }
            (Purpose::Sync { round, spread }, Response::Sync { answers }) => {
                for answer in &answers {
                    self.offered.remove(&(peer, answer.id));
                }
                let next = (round < MAX_SYNC_ROUND).then_some(Purpose::Sync {
                    round: round + 1,
                    spread,
                });
                out.push(Output::Apply {
                    peer,
                    payloads: answers,
                    then: Then::FollowUp { spread, next },
                });
            }
            (_, Response::Refused { .. }) => {}
            _ => out.push(Output::Disconnect {
                peer,
                reason: Misbehaviour::Unanswered,
            }),
        }
    }

    /// Of the documents `peer` listed, those that differ from ours and are not being fetched
    /// from another peer (their listings wait for that fetch); they count as fetched from it.
    fn listed(
        &mut self,
        peer: P,
        collection: DocumentId,
        items: &[Item],
        now: Duration,
        replica: &impl Replica<P>,
    ) -> ToSync {
        let mut differing: Vec<Item> = items
            .iter()
            .filter(|item| {
                replica.digest(&collection, &DocumentId::from_bytes(item.id)) != Some(item.digest)
            })
            .copied()
            .collect();
        differing.sort_by_key(|item| item.id);
        differing.dedup_by_key(|item| item.id);
        let mut ids = Vec::new();
        for item in differing {
            match self.fetching.get(&item.id) {
                Some(&(from, since)) if from != peer && now < since + FETCH_TIMEOUT => {
                    self.stats.listings_waited += 1;
                    self.waiting.push(Waiting {
                        peer,
                        collection,
                        item,
                    });
                }
                _ => {
                    self.stats.listed_fetches += 1;
                    self.fetching.insert(item.id, (peer, now));
                    ids.push(item.id);
                }
            }
        }
        ToSync {
            collection,
            ids,
            they_lack: BTreeSet::new(),
        }
    }

    fn finished(
        &mut self,
        peer: P,
        ids: &[[u8; 16]],
        answered: bool,
        now: Duration,
        replica: &impl Replica<P>,
        out: &mut Vec<Output<P, M>>,
    ) {
        for id in ids {
            self.offered.remove(&(peer, *id));
            if self.fetching.get(id).is_some_and(|(from, _)| *from == peer) {
                self.fetching.remove(id);
            }
        }
        if !answered {
            // Nothing came: pull again what held announcements still wait for.
            for id in ids {
                self.pull_waiting(&DocumentId::from_bytes(*id), out);
            }
        }
        self.fetch_unblocked(now, replica, out);
    }

    /// Fetches the listings no fetch holds back any more (it landed, failed, timed out or its
    /// peer left) where they still differ from what is here.
    fn fetch_unblocked(
        &mut self,
        now: Duration,
        replica: &impl Replica<P>,
        out: &mut Vec<Output<P, M>>,
    ) {
        if self.waiting.is_empty() {
            return;
        }
        let fetching = &self.fetching;
        let (blocked, unblocked): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|w| {
                fetching
                    .get(&w.item.id)
                    .is_some_and(|(_, since)| now < *since + FETCH_TIMEOUT)
            });
        self.waiting = blocked;
        let mut by_peer: BTreeMap<(P, DocumentId), Vec<Item>> = BTreeMap::new();
        for w in unblocked {
            by_peer
                .entry((w.peer, w.collection))
                .or_default()
                .push(w.item);
        }
        for ((peer, collection), items) in by_peer {
            let to_sync = self.listed(peer, collection, &items, now, replica);
            self.offer(peer, to_sync, Spread::Quietly, out);
        }
    }

    /// Offers `to_sync` to `peer`, less what is on its way to it already: a reconnecting node
    /// hears announcements its change listing also brings, and each would otherwise be
    /// answered twice, whole documents included.
    fn offer(&mut self, peer: P, mut to_sync: ToSync, spread: Spread, out: &mut Vec<Output<P, M>>) {
        let now = self.now;
        self.offered.retain(|_, since| now < *since + OFFER_TIMEOUT);
        to_sync.ids.retain(|id| {
            let fresh = !self.offered.contains_key(&(peer, *id));
            if fresh {
                self.offered.insert((peer, *id), now);
            }
            fresh
        });
        if !to_sync.ids.is_empty() {
            out.push(Output::Offer {
                peer,
                to_sync,
                spread,
            });
        }
    }

    /// Validates an announcement: accepted if its change is held, held back while it is
    /// pulled from the peer it came from, ignored if not carried or too many are held.
    fn heard(
        &mut self,
        peer: P,
        message: M,
        announcement: Announcement,
        now: Duration,
        replica: &impl Replica<P>,
        out: &mut Vec<Output<P, M>>,
    ) {
        let collection = DocumentId::from_bytes(announcement.collection);
        let id = DocumentId::from_bytes(announcement.id);
        if !replica.pulls(&collection) {
            return out.push(Output::Validate {
                message,
                source: peer,
                accept: false,
            });
        }
        if replica.holds(&collection, &id, &announcement.heads) {
            return out.push(Output::Validate {
                message,
                source: peer,
                accept: true,
            });
        }
        self.pull(peer, collection, id, out);
        if self.held_count >= MAX_HELD {
            return out.push(Output::Validate {
                message,
                source: peer,
                accept: false,
            });
        }
        self.held_count += 1;
        self.held.entry(id).or_default().push(HeldAnnouncement {
            message,
            source: peer,
            collection,
            heads: announcement.heads,
            received: now,
        });
    }

    /// Asks `peer` for what it holds of one document.
    fn pull(
        &mut self,
        peer: P,
        collection: DocumentId,
        id: DocumentId,
        out: &mut Vec<Output<P, M>>,
    ) {
        let to_sync = ToSync {
            collection,
            ids: vec![*id.as_bytes()],
            they_lack: BTreeSet::new(),
        };
        self.offer(peer, to_sync, Spread::Announce, out);
    }

    /// Pulls again, from their sources, what the held announcements of `id` name.
    fn pull_waiting(&mut self, id: &DocumentId, out: &mut Vec<Output<P, M>>) {
        let again: Vec<(P, DocumentId)> = self
            .held
            .get(id)
            .map(|held| held.iter().map(|h| (h.source, h.collection)).collect())
            .unwrap_or_default();
        for (peer, collection) in again {
            self.pull(peer, collection, *id, out);
        }
    }

    /// A change is durable here: forwards the held announcements it brings, pulls again for
    /// those still waiting (the pull in flight when they came may have brought only older
    /// heads), and announces it, or, in a catch-up, waits for the burst to end.
    fn changed(
        &mut self,
        announcement: Announcement,
        spread: Spread,
        now: Duration,
        replica: &impl Replica<P>,
        out: &mut Vec<Output<P, M>>,
    ) {
        let id = DocumentId::from_bytes(announcement.id);
        self.asked.remove(&announcement.id);
        if let Some(held) = self.held.remove(&id) {
            let (arrived, waiting): (Vec<_>, Vec<_>) = held
                .into_iter()
                .partition(|h| replica.holds(&h.collection, &id, &h.heads));
            self.held_count -= arrived.len();
            for h in arrived {
                self.stats.forwarded += 1;
                out.push(Output::Forward {
                    message: h.message,
                    source: h.source,
                });
            }
            if !waiting.is_empty() {
                self.held.insert(id, waiting);
                self.pull_waiting(&id, out);
            }
        }
        let collection = DocumentId::from_bytes(announcement.collection);
        match spread {
            Spread::Quietly => {
                self.quiet.insert(collection, now + QUIET_AFTER);
            }
            Spread::Announce => out.push(Output::Publish(announcement)),
        }
    }

    fn tick(
        &mut self,
        busy: &BTreeSet<P>,
        now: Duration,
        replica: &impl Replica<P>,
        out: &mut Vec<Output<P, M>>,
    ) {
        // Catch-ups whose burst is over: offer every peer one reconciliation.
        let due: Vec<DocumentId> = self
            .quiet
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(c, _)| *c)
            .collect();
        for collection in due {
            self.quiet.remove(&collection);
            for peer in self.peers.keys() {
                self.reconcile(*peer, collection, replica, out);
            }
        }
        // Announcements whose change did not come in time: reconciliation repairs it. Each is
        // due at `received + FORWARD_WITHIN`, when the wake asked for it comes.
        {
            let mut dropped = 0;
            self.held.retain(|_, held| {
                let (old, kept): (Vec<_>, Vec<_>) = std::mem::take(held)
                    .into_iter()
                    .partition(|h| h.received + FORWARD_WITHIN <= now);
                dropped += old.len();
                out.extend(old.into_iter().map(|h| Output::Validate {
                    message: h.message,
                    source: h.source,
                    accept: false,
                }));
                *held = kept;
                !held.is_empty()
            });
            self.held_count -= dropped;
        }
        self.fetch_unblocked(now, replica, out);
        if now >= self.next_check {
            self.next_check = now + self.config.check_every;
            self.check(busy, replica, out);
        }
    }

    /// The periodic check with every idle peer: the side with the smaller id reconciles every
    /// followed collection, a fingerprint when both hold the same.
    fn check(
        &mut self,
        busy: &BTreeSet<P>,
        replica: &impl Replica<P>,
        out: &mut Vec<Output<P, M>>,
    ) {
        let idle: Vec<P> = self
            .peers
            .keys()
            .filter(|p| !busy.contains(p) && self.me < **p)
            .copied()
            .collect();
        for peer in idle {
            for collection in replica.followed() {
                self.reconcile(peer, collection, replica, out);
            }
        }
    }

    /// Asks for a wake at the earliest time something falls due, unless one is asked for
    /// already.
    fn arm(&mut self, now: Duration, out: &mut Vec<Output<P, M>>) {
        let held = self
            .held
            .values()
            .flatten()
            .map(|h| h.received + FORWARD_WITHIN);
        let fetches = self
            .waiting
            .iter()
            .filter_map(|w| self.fetching.get(&w.item.id))
            .map(|(_, since)| *since + FETCH_TIMEOUT);
        let due = std::iter::once(self.next_check)
            .chain(self.quiet.values().copied())
            .chain(held)
            .chain(fetches)
            .min()
            .unwrap_or(self.next_check);
        if self.armed.is_none_or(|armed| armed <= now || due < armed) {
            self.armed = Some(due);
            out.push(Output::Wake(due));
        }
    }
}

fn since<P, M>(peer: P, collection: DocumentId, since: u64) -> Output<P, M> {
    Output::Send {
        peer,
        request: Request::Since {
            collection: *collection.as_bytes(),
            since,
        },
        purpose: Purpose::Since(collection),
    }
}

fn refused<P, M>(reason: &str) -> Output<P, M> {
    Output::Respond(Response::Refused {
        reason: reason.to_owned(),
    })
}

/// The documents a reconciliation step found differing.
fn differing(collection: DocumentId, step: reconcile::Step) -> ToSync {
    ToSync {
        collection,
        ids: step.differing,
        they_lack: step.they_lack.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node's documents as the session reads them, set by hand.
    #[derive(Default)]
    struct Fake {
        positions: BTreeMap<u8, u64>,
        /// Digests of the documents held, by id.
        digests: BTreeMap<[u8; 16], [u8; DIGEST_LEN]>,
        /// Changes held.
        changes: BTreeSet<[u8; 32]>,
    }

    const COLLECTION: DocumentId = DocumentId::from_bytes([7; 16]);

    impl Replica<u8> for Fake {
        fn followed(&self) -> Vec<DocumentId> {
            vec![COLLECTION]
        }
        fn follows(&self, collection: &DocumentId) -> bool {
            *collection == COLLECTION
        }
        fn carries(&self, collection: &DocumentId) -> bool {
            self.follows(collection)
        }
        fn pulls(&self, collection: &DocumentId) -> bool {
            self.follows(collection)
        }
        fn position(&self, peer: &u8, _: &DocumentId) -> Option<u64> {
            self.positions.get(peer).copied()
        }
        fn reconcile_set(&self, _: &DocumentId) -> Result<Arc<ItemSet>, String> {
            let items = self
                .digests
                .iter()
                .map(|(id, digest)| Item {
                    id: *id,
                    digest: *digest,
                })
                .collect();
            Ok(Arc::new(ItemSet::new(items)))
        }
        fn digest(&self, _: &DocumentId, id: &DocumentId) -> Option<[u8; DIGEST_LEN]> {
            self.digests.get(id.as_bytes()).copied()
        }
        fn holds(&self, _: &DocumentId, _: &DocumentId, heads: &[[u8; 32]]) -> bool {
            heads.iter().all(|h| self.changes.contains(h))
        }
        fn log_position(&self) -> u64 {
            0
        }
        fn changed_since(
            &self,
            _: &DocumentId,
            _: u64,
            _: usize,
            _: &u8,
        ) -> Result<(Vec<Item>, bool), String> {
            Ok((Vec::new(), true))
        }
    }

    type Out = Vec<Output<u8, u32>>;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// A session of node 5 connected to `peers` (whose positions are known or not).
    fn session(peers: &[u8]) -> Session<u8, u32> {
        Session::with_peers(5, Config::default(), peers.iter().copied())
    }

    fn item(id: u8, digest: u8) -> Item {
        Item {
            id: [id; 16],
            digest: [digest; DIGEST_LEN],
        }
    }

    /// The requests sent, by peer, without the wakes.
    fn sent(out: &Out) -> Vec<(u8, Purpose)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send { peer, purpose, .. } => Some((*peer, *purpose)),
                _ => None,
            })
            .collect()
    }

    /// The documents offered, by peer.
    fn offered(out: &Out) -> Vec<(u8, Vec<[u8; 16]>, Spread)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Offer {
                    peer,
                    to_sync,
                    spread,
                } => Some((*peer, to_sync.ids.clone(), *spread)),
                _ => None,
            })
            .collect()
    }

    fn since_response(items: Vec<Item>, complete: bool) -> Response {
        Response::Since {
            seq: 40,
            items,
            complete,
        }
    }

    #[test]
    fn first_contact_learns_the_position_and_the_smaller_id_reconciles() {
        let fake = Fake::default();
        let mut s = session(&[]);
        let out = s.handle(Input::Connected(9), secs(0), &fake);
        assert_eq!(
            sent(&out),
            vec![
                (9, Purpose::Since(COLLECTION)),
                (9, Purpose::Reconcile(COLLECTION))
            ]
        );
        assert!(out.contains(&Output::Send {
            peer: 9,
            request: Request::Since {
                collection: *COLLECTION.as_bytes(),
                since: SINCE_UNKNOWN
            },
            purpose: Purpose::Since(COLLECTION)
        }));
        let out = s.handle(Input::Connected(2), secs(0), &fake);
        assert_eq!(
            sent(&out),
            vec![(2, Purpose::Since(COLLECTION))],
            "the larger id leaves the reconciliation to the peer"
        );
    }

    #[test]
    fn a_known_position_catches_up_by_the_change_log() {
        let mut fake = Fake::default();
        fake.positions.insert(9, 12);
        fake.digests.insert([1; 16], [1; DIGEST_LEN]);
        let mut s = session(&[]);
        let out = s.handle(Input::Connected(9), secs(0), &fake);
        assert_eq!(sent(&out), vec![(9, Purpose::Since(COLLECTION))]);
        assert!(matches!(
            &out[0],
            Output::Send {
                request: Request::Since { since: 12, .. },
                ..
            }
        ));
        let response = since_response(vec![item(1, 1), item(2, 2), item(3, 3)], true);
        let out = s.handle(
            Input::Response {
                peer: 9,
                purpose: Purpose::Since(COLLECTION),
                response,
            },
            secs(1),
            &fake,
        );
        assert_eq!(
            out[0],
            Output::SetPosition {
                peer: 9,
                collection: COLLECTION,
                seq: 40
            }
        );
        assert_eq!(
            offered(&out),
            vec![(9, vec![[2; 16], [3; 16]], Spread::Quietly)],
            "only what differs is fetched"
        );
        let response = since_response(Vec::new(), false);
        let purpose = Purpose::Since(COLLECTION);
        let out = s.handle(
            Input::Response {
                peer: 9,
                purpose,
                response,
            },
            secs(2),
            &fake,
        );
        assert_eq!(
            sent(&out),
            vec![(9, Purpose::Reconcile(COLLECTION))],
            "too many to list: reconcile instead"
        );
    }

    #[test]
    fn every_check_reconciles_with_the_larger_ids_and_asks_no_change_log() {
        let mut fake = Fake::default();
        fake.positions.insert(9, 3);
        fake.positions.insert(2, 3);
        let mut s = session(&[2, 9]);
        let mut kinds = Vec::new();
        for n in 1..=21 {
            let busy = BTreeSet::new();
            let out = s.handle(Input::Tick { busy }, CHECK_EVERY * n, &fake);
            kinds.push(sent(&out));
        }
        let fingerprint = vec![(9, Purpose::Reconcile(COLLECTION))];
        for (n, kind) in kinds.iter().enumerate() {
            assert_eq!(kind, &fingerprint, "check {n}");
        }
        let busy = BTreeSet::from([9]);
        let out = s.handle(Input::Tick { busy }, CHECK_EVERY * 22, &fake);
        assert!(sent(&out).is_empty(), "a busy peer is left alone");
        let busy = BTreeSet::new();
        let out = s.handle(Input::Tick { busy }, CHECK_EVERY * 22 + secs(1), &fake);
        assert!(sent(&out).is_empty(), "not due yet");
    }

    fn listed(s: &mut Session<u8, u32>, peer: u8, items: Vec<Item>, fake: &Fake) -> Out {
        let response = since_response(items, true);
        let purpose = Purpose::Since(COLLECTION);
        s.handle(
            Input::Response {
                peer,
                purpose,
                response,
            },
            secs(1),
            fake,
        )
    }

    #[test]
    fn a_document_listed_by_two_peers_is_fetched_from_the_first_only() {
        let mut fake = Fake::default();
        let mut s = session(&[2, 3, 4]);
        let out = listed(&mut s, 2, vec![item(1, 7), item(2, 7)], &fake);
        assert_eq!(offered(&out)[0].1, vec![[1; 16], [2; 16]]);
        let out = listed(&mut s, 3, vec![item(1, 7), item(3, 7)], &fake);
        assert_eq!(
            offered(&out)[0].1,
            vec![[3; 16]],
            "the second listing of 1 waits"
        );
        let out = listed(&mut s, 4, vec![item(1, 7)], &fake);
        assert!(offered(&out).is_empty());
        assert_eq!(s.stats.listings_waited, 2);
        // The fetch from 2 lands and brings 1 level: the waiting listings fetch nothing.
        fake.digests.insert([1; 16], [7; DIGEST_LEN]);
        let finished = Input::Finished {
            peer: 2,
            ids: vec![[1; 16], [2; 16]],
            answered: true,
        };
        let out = s.handle(finished, secs(2), &fake);
        assert!(offered(&out).is_empty(), "{out:?}");
        // Listed again by 3, and the fetch from 3 fails: 4's listing is fetched from 4.
        let out = listed(&mut s, 3, vec![item(1, 8)], &fake);
        assert_eq!(offered(&out)[0].1, vec![[1; 16]]);
        let out = listed(&mut s, 4, vec![item(1, 8)], &fake);
        assert!(offered(&out).is_empty());
        let out = s.handle(Input::Disconnected(3), secs(3), &fake);
        assert_eq!(offered(&out), vec![(4, vec![[1; 16]], Spread::Quietly)]);
    }

    fn announcement(heads: u8) -> Announcement {
        Announcement {
            collection: *COLLECTION.as_bytes(),
            id: [1; 16],
            kind: crate::wire::WireKind::Entry,
            heads: vec![[heads; 32]],
        }
    }

    #[test]
    fn an_announcement_is_forwarded_once_its_change_is_here() {
        let mut fake = Fake::default();
        let mut s = session(&[2, 3]);
        let heard = |message, peer, heads| Input::Announced {
            peer,
            message,
            announcement: announcement(heads),
        };
        let out = s.handle(heard(100, 2, 10), secs(0), &fake);
        assert_eq!(offered(&out), vec![(2, vec![[1; 16]], Spread::Announce)]);
        assert!(
            !out.iter().any(|o| matches!(o, Output::Validate { .. })),
            "held, not forwarded"
        );
        let out = s.handle(heard(101, 3, 11), secs(0), &fake);
        assert_eq!(offered(&out), vec![(3, vec![[1; 16]], Spread::Announce)]);
        // The pull from 2 brings head 10 only: 100 goes on, 101 waits and is pulled again.
        fake.changes.insert([10; 32]);
        s.handle(
            Input::Finished {
                peer: 3,
                ids: vec![[1; 16]],
                answered: true,
            },
            secs(1),
            &fake,
        );
        let changed = Input::Changed {
            announcement: announcement(10),
            spread: Spread::Announce,
        };
        let out = s.handle(changed, secs(1), &fake);
        assert!(out.contains(&Output::Forward {
            message: 100,
            source: 2
        }));
        assert_eq!(offered(&out), vec![(3, vec![[1; 16]], Spread::Announce)]);
        assert!(out.contains(&Output::Publish(announcement(10))));
        assert_eq!(s.stats.forwarded, 1);
        // A held announcement whose change never comes is dropped when it falls due, at the
        // wake it asked for, and leaves nothing due.
        let busy = BTreeSet::new();
        let out = s.handle(Input::Tick { busy }, FORWARD_WITHIN, &fake);
        assert!(out.contains(&Output::Validate {
            message: 101,
            source: 3,
            accept: false
        }));
        assert!(
            !out.iter()
                .any(|o| matches!(o, Output::Wake(at) if *at <= FORWARD_WITHIN)),
            "{out:?}"
        );
        // One whose change is here is accepted at once.
        let out = s.handle(heard(102, 2, 10), FORWARD_WITHIN + secs(2), &fake);
        assert!(out.contains(&Output::Validate {
            message: 102,
            source: 2,
            accept: true
        }));
    }

    /// A document offered by its heads while it is being pulled is answered without asking
    /// for it whole a second time; once it is here or given up, it is asked for again.
    #[test]
    fn a_document_on_its_way_here_is_not_asked_for_twice() {
        let fake = Fake::default();
        let mut s = session(&[2, 3]);
        // Peer 3 offers document 1 by its heads alone.
        let offered = || Input::Request {
            peer: 3,
            request: Request::Sync {
                offers: vec![Offer {
                    id: [1; 16],
                    kind: crate::wire::WireKind::Entry,
                    heads: vec![[10; 32]],
                    payload: Payload::Nothing,
                }],
            },
        };
        let coming = |out: &Out| {
            out.iter().find_map(|o| match o {
                Output::Apply {
                    then: Then::Answer { coming },
                    ..
                } => Some(coming.clone()),
                _ => None,
            })
        };
        let out = s.handle(offered(), secs(0), &fake);
        assert_eq!(
            coming(&out),
            Some(BTreeSet::new()),
            "nothing is on its way yet"
        );
        let heard = Input::Announced {
            peer: 2,
            message: 100,
            announcement: announcement(10),
        };
        s.handle(heard, secs(0), &fake);
        let out = s.handle(offered(), secs(1), &fake);
        assert_eq!(
            coming(&out),
            Some(BTreeSet::from([[1; 16]])),
            "pulled from 2"
        );
        let busy = BTreeSet::new();
        s.handle(Input::Tick { busy }, FORWARD_WITHIN, &fake);
        let out = s.handle(offered(), FORWARD_WITHIN, &fake);
        assert_eq!(coming(&out), Some(BTreeSet::new()), "the pull was given up");
    }

    #[test]
    fn a_catch_up_stays_quiet_then_offers_one_reconciliation() {
        let fake = Fake::default();
        let mut s = session(&[2, 9]);
        let mut last = Vec::new();
        for at in 0..3 {
            let changed = Input::Changed {
                announcement: announcement(at),
                spread: Spread::Quietly,
            };
            last = s.handle(changed, secs(u64::from(at)), &fake);
            assert!(!last.iter().any(|o| matches!(o, Output::Publish(_))));
        }
        assert!(
            last.contains(&Output::Wake(secs(2) + QUIET_AFTER)),
            "woken when the burst is over: {last:?}"
        );
        let busy = BTreeSet::new();
        let out = s.handle(Input::Tick { busy }, secs(3), &fake);
        assert!(sent(&out).is_empty(), "the burst is not over");
        let busy = BTreeSet::new();
        let out = s.handle(Input::Tick { busy }, secs(2) + QUIET_AFTER, &fake);
        assert_eq!(
            sent(&out),
            vec![
                (2, Purpose::Reconcile(COLLECTION)),
                (9, Purpose::Reconcile(COLLECTION))
            ]
        );
        let busy = BTreeSet::new();
        let out = s.handle(Input::Tick { busy }, secs(10), &fake);
        assert!(sent(&out).is_empty(), "once");
    }

    #[test]
    fn a_sync_takes_at_most_the_round_limit() {
        let fake = Fake::default();
        let mut s = session(&[2]);
        let answers = Vec::new();
        let mut nexts = Vec::new();
        for round in 0..=MAX_SYNC_ROUND {
            let spread = Spread::Announce;
            let purpose = Purpose::Sync { round, spread };
            let response = Response::Sync {
                answers: answers.clone(),
            };
            let out = s.handle(
                Input::Response {
                    peer: 2,
                    purpose,
                    response,
                },
                secs(0),
                &fake,
            );
            let Some(Output::Apply {
                then: Then::FollowUp { next, spread: s },
                ..
            }) = out.into_iter().next()
            else {
                panic!("answers are applied");
            };
            assert_eq!(s, spread);
            nexts.push(next);
        }
        let spread = Spread::Announce;
        assert_eq!(
            nexts,
            vec![
                Some(Purpose::Sync { round: 1, spread }),
                Some(Purpose::Sync { round: 2, spread }),
                None
            ]
        );
    }

    #[test]
    fn a_document_on_its_way_is_not_offered_twice() {
        let fake = Fake::default();
        let mut s = session(&[2, 3]);
        let out = listed(&mut s, 2, vec![item(1, 1)], &fake);
        assert_eq!(offered(&out).len(), 1);
        let heard = Input::Announced {
            peer: 2,
            message: 1,
            announcement: announcement(1),
        };
        let out = s.handle(heard, secs(1), &fake);
        assert!(offered(&out).is_empty(), "on its way to 2 already");
        let out = s.handle(Input::Disconnected(2), secs(2), &fake);
        assert!(offered(&out).is_empty());
        s.handle(Input::Connected(2), secs(3), &fake);
        let out = listed(&mut s, 2, vec![item(1, 1)], &fake);
        assert_eq!(offered(&out).len(), 1, "the peer left and came back");
    }

    #[test]
    fn a_response_that_does_not_answer_its_request_disconnects() {
        let fake = Fake::default();
        let mut s = session(&[2]);
        let out = s.handle(
            Input::Response {
                peer: 2,
                purpose: Purpose::Reconcile(COLLECTION),
                response: Response::Sync {
                    answers: Vec::new(),
                },
            },
            secs(0),
            &fake,
        );
        assert_eq!(
            out[0],
            Output::Disconnect {
                peer: 2,
                reason: Misbehaviour::Unanswered
            }
        );
    }

    #[test]
    fn a_peer_asking_about_a_collection_places_us_in_its_change_log() {
        let fake = Fake::default();
        let mut s = session(&[9]);
        let request = Request::Since {
            collection: *COLLECTION.as_bytes(),
            since: 0,
        };
        let out = s.handle(
            Input::Request {
                peer: 9,
                request: request.clone(),
            },
            secs(0),
            &fake,
        );
        assert_eq!(sent(&out), vec![(9, Purpose::Since(COLLECTION))]);
        assert!(out.contains(&Output::Respond(since_response_at(0))));
        let out = s.handle(Input::Request { peer: 9, request }, secs(1), &fake);
        assert!(sent(&out).is_empty(), "once per connection");
    }

    fn since_response_at(seq: u64) -> Response {
        Response::Since {
            seq,
            items: Vec::new(),
            complete: true,
        }
    }
}

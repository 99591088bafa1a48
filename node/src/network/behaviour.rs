//! The libp2p stack of a node: which protocols it speaks and how the swarm is built.

use std::sync::Arc;
use std::time::Duration;

use futures::future::Either;

use libp2p::core::transport::{MemoryTransport, OptionalTransport, upgrade::Version};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, Swarm, Transport, autonat, connection_limits, dcutr, gossipsub, identify,
    identity, kad, mdns, noise, ping, relay, request_response, tcp, yamux,
};
use minga_protocol::session::FORWARD_WITHIN;
use minga_protocol::wire::MAX_GOSSIP_BYTES;
use prometheus_client::registry::Registry;

use super::NetworkConfig;
use super::blob_codec::{BLOB_PROTOCOL, BlobCodec};
use super::codec::{SYNC_PROTOCOL, SyncCodec};
use super::link_model::{Shaped, Uplink};

/// Kademlia under Minga's own protocol name, so the commons forms its own DHT.
const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/minga/kad/1");

/// The identify protocol version peers announce.
pub const IDENTIFY_VERSION: &str = "/minga/1";

/// Long enough for a 3G link with a large batch of entries.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Idle connections stay open this long: reconnecting on a slow link costs more than keeping them.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Most connections a node keeps, and per peer: a crowd of peers cannot exhaust a small PC.
/// Per peer: a direct and a relayed connection, and one more while two nodes dial each other.
const MAX_CONNECTIONS: u32 = 256;
const MAX_CONNECTIONS_PER_PEER: u32 = 3;
/// Of [`MAX_CONNECTIONS`], most that peers opened: dialled ones (bootstrap peers) always fit.
const MAX_INCOMING: u32 = 192;
/// Incoming connections still in their handshake.
const MAX_PENDING_INCOMING: u32 = 64;

/// Streams open at once on one connection, ours and the peer's together (libp2p counts both,
/// and an inbound one until it is answered): a node keeps at most 8 sync requests in flight to
/// a peer (`network::MAX_IN_FLIGHT`), and 8 blob requests (4 per download, 2 downloads:
/// `blobs::MAX_PER_PEER`, `blobs::MAX_DOWNLOADS`), so 8 of ours and 8 of the peer's. With
/// frames held as they arrive, a peer's streams hold at most what it actually sent, within
/// this × [`MAX_CONNECTIONS_PER_PEER`] frames of the frame limit.
const MAX_STREAMS: usize = 16;

/// gossipsub's heartbeat: mesh upkeep and the IHAVE gossip of recent messages.
const GOSSIP_HEARTBEAT: Duration = Duration::from_secs(1);

/// Gossip messages are named by their content, not by who sent them: every node that pulled a
/// change announces the same heads, and those announcements are one message that each node
/// forwards once, not one flood per node. Unsigned (`Anonymous`) because nothing trusts the
/// sender: an announcement only says where to pull, and every change pulled is verified
/// against its author's signature. That also saves 100-odd bytes and a signature check on
/// every copy.
fn content_id(message: &gossipsub::Message) -> gossipsub::MessageId {
    let topic = message.topic.as_str().as_bytes();
    let mut hasher = blake3::Hasher::new();
    hasher.update(&(topic.len() as u64).to_le_bytes());
    hasher.update(topic);
    hasher.update(&message.data);
    gossipsub::MessageId::new(&hasher.finalize().as_bytes()[..MESSAGE_ID_BYTES])
}

/// Heartbeats in which a message id is told (IHAVE) to peers outside the mesh: one, not
/// gossipsub's three. The repeats repair messages lost in the mesh, which periodic
/// reconciliation repairs here anyway; in the simulated province (1,000 nodes, 2% loss, churn)
/// they were a fifth of the gossip bytes, and dropping them changed no delivery.
const IHAVE_HEARTBEATS: usize = 1;

/// gossipsub keeps a message a few heartbeats longer than it may wait to be validated, so a late
/// verdict still finds it.
const KEPT_HEARTBEATS: usize = (FORWARD_WITHIN.as_secs() / GOSSIP_HEARTBEAT.as_secs()) as usize + 5;

/// 160 bits: no collision among the messages of a minute, and short in IHAVE lists.
const MESSAGE_ID_BYTES: usize = 20;

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub limits: connection_limits::Behaviour,
    pub relay_client: relay::client::Behaviour,
    pub relay: Toggle<relay::Behaviour>,
    pub dcutr: dcutr::Behaviour,
    pub autonat: autonat::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub gossipsub: gossipsub::Behaviour,
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    pub sync: request_response::Behaviour<SyncCodec>,
    pub blob: request_response::Behaviour<BlobCodec>,
}

/// A blob range takes seconds on a slow link; a stalled peer is given up on sooner than a sync.
const BLOB_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

type BoxedError = Box<dyn std::error::Error + Send + Sync>;

/// Builds the swarm: TCP and QUIC (with DNS), Noise, Yamux, the relay client, and the behaviours
/// above; bytes on the wire are counted into `registry`. When the config names a `/memory/`
/// address, the in-process memory transport is added too, upgraded like TCP (Noise, Yamux) and
/// counted like it, over the config's modelled link if it has one: that is how the real-stack
/// simulations run hundreds of whole nodes in one process.
pub fn build(
    keypair: identity::Keypair,
    config: &NetworkConfig,
    registry: &mut Registry,
) -> Result<Swarm<Behaviour>, BoxedError> {
    let mdns_enabled = config.mdns;
    let relay_server = config.relay;
    let memory = config.uses_memory_transport();
    let uplink = config.memory_link.map(Uplink::new);
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_quic_config(|mut quic| {
            quic.handshake_timeout = Duration::from_secs(30);
            quic
        })
        .with_other_transport(|key| -> Result<_, BoxedError> {
            Ok(if memory {
                OptionalTransport::some(
                    MemoryTransport::default()
                        .map(move |channel, _| match &uplink {
                            Some(uplink) => Either::Left(Shaped::new(channel, Arc::clone(uplink))),
                            None => Either::Right(channel),
                        })
                        .upgrade(Version::V1)
                        .authenticate(noise::Config::new(key)?)
                        .multiplex(yamux::Config::default()),
                )
            } else {
                OptionalTransport::none()
            })
        })?
        .with_dns()?
        .with_relay_client(noise::Config::new, yamux::Config::default)?
        .with_bandwidth_metrics(registry)
        .with_behaviour(|key, relay_client| {
            let peer_id = key.public().to_peer_id();
            let gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Anonymous,
                gossipsub::ConfigBuilder::default()
                    .validation_mode(gossipsub::ValidationMode::Anonymous)
                    .message_id_fn(content_id)
                    .validate_messages()
                    .max_transmit_size(MAX_GOSSIP_BYTES)
                    .heartbeat_interval(GOSSIP_HEARTBEAT)
                    .history_length(KEPT_HEARTBEATS)
                    .history_gossip(IHAVE_HEARTBEATS)
                    .build()?,
            )?;
            let mut kad_config = kad::Config::new(KAD_PROTOCOL);
            kad_config.set_query_timeout(Duration::from_secs(60));
            let relay = relay_server.then(|| {
                relay::Behaviour::new(
                    peer_id,
                    relay::Config {
                        // Limits fit for syncing a collection, not for streaming video.
                        max_circuit_duration: Duration::from_secs(3600),
                        max_circuit_bytes: 256 * 1024 * 1024,
                        max_reservations: 256,
                        max_circuits: 64,
                        ..relay::Config::default()
                    },
                )
            });
            let mdns = if mdns_enabled {
                Some(mdns::tokio::Behaviour::new(
                    mdns::Config::default(),
                    peer_id,
                )?)
            } else {
                None
            };
            let limits = connection_limits::ConnectionLimits::default()
                .with_max_established(Some(MAX_CONNECTIONS))
                .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
                .with_max_established_incoming(Some(MAX_INCOMING))
                .with_max_pending_incoming(Some(MAX_PENDING_INCOMING));
            Ok(Behaviour {
                limits: connection_limits::Behaviour::new(limits),
                relay_client,
                relay: relay.into(),
                dcutr: dcutr::Behaviour::new(peer_id),
                autonat: autonat::Behaviour::new(peer_id, autonat::Config::default()),
                identify: identify::Behaviour::new(identify::Config::new(
                    IDENTIFY_VERSION.into(),
                    key.public(),
                )),
                ping: ping::Behaviour::default(),
                mdns: mdns.into(),
                gossipsub,
                kad: kad::Behaviour::with_config(
                    peer_id,
                    kad::store::MemoryStore::new(peer_id),
                    kad_config,
                ),
                sync: request_response::Behaviour::with_codec(
                    SyncCodec,
                    [(SYNC_PROTOCOL, request_response::ProtocolSupport::Full)],
                    request_response::Config::default()
                        .with_request_timeout(REQUEST_TIMEOUT)
                        .with_max_concurrent_streams(MAX_STREAMS),
                ),
                blob: request_response::Behaviour::with_codec(
                    BlobCodec,
                    [(BLOB_PROTOCOL, request_response::ProtocolSupport::Full)],
                    request_response::Config::default()
                        .with_request_timeout(BLOB_REQUEST_TIMEOUT)
                        .with_max_concurrent_streams(MAX_STREAMS),
                ),
            })
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
        .build();
    Ok(swarm)
}

//! A hostile peer for tests: a real libp2p node that writes whatever bytes it is given on
//! `/minga/sync/1`, so the node under test meets forged changes and broken frames through its
//! real network and verification paths.

use std::io;
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm};
use minga_protocol::wire::{self, Request};

const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/minga/sync/1");

/// What happened to one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The node answered with these bytes.
    Answered(Vec<u8>),
    /// The node closed the connection.
    Dropped,
}

/// A peer that sends raw frames.
pub struct Hostile {
    runtime: tokio::runtime::Runtime,
    swarm: Swarm<request_response::Behaviour<RawCodec>>,
}

impl Hostile {
    pub fn new() -> Hostile {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let swarm = runtime.block_on(async {
            crate::peer_swarm::request_response(
                RawCodec,
                SYNC_PROTOCOL,
                ProtocolSupport::Outbound,
                request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
                Duration::from_secs(60),
            )
        });
        Hostile { runtime, swarm }
    }

    /// A well-framed request, as an honest peer would write it.
    pub fn frame(request: &Request) -> Vec<u8> {
        let body = wire::encode(request);
        [(body.len() as u32).to_be_bytes().as_slice(), &body].concat()
    }

    /// Connects to the node at `addr` (`…/p2p/<peer id>`), writes `bytes` as one request and
    /// reports whether the node answered or dropped the connection.
    pub fn send(&mut self, addr: &str, bytes: Vec<u8>) -> Outcome {
        let addr: Multiaddr = addr.parse().expect("a multiaddr");
        let peer = addr
            .iter()
            .find_map(|p| match p {
                libp2p::multiaddr::Protocol::P2p(peer) => Some(peer),
                _ => None,
            })
            .expect("an address with /p2p/");
        let swarm = &mut self.swarm;
        self.runtime.block_on(async {
            if !swarm.is_connected(&peer) {
                swarm.dial(addr).expect("dialling the node");
                wait_connected(swarm, peer).await;
            }
            swarm.behaviour_mut().send_request(&peer, bytes);
            let outcome = tokio::time::timeout(Duration::from_secs(30), async {
                loop {
                    match swarm.select_next_some().await {
                        SwarmEvent::Behaviour(request_response::Event::Message {
                            message: request_response::Message::Response { response, .. },
                            ..
                        }) => return Outcome::Answered(response),
                        SwarmEvent::ConnectionClosed {
                            peer_id,
                            num_established: 0,
                            ..
                        } if peer_id == peer => {
                            return Outcome::Dropped;
                        }
                        SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                            ..
                        }) => {
                            // The stream failed; whether the node also drops us decides the outcome.
                        }
                        _ => {}
                    }
                }
            })
            .await;
            outcome.unwrap_or(Outcome::Answered(Vec::new()))
        })
    }
}

impl Default for Hostile {
    fn default() -> Self {
        Self::new()
    }
}

async fn wait_connected(swarm: &mut Swarm<request_response::Behaviour<RawCodec>>, peer: PeerId) {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let SwarmEvent::ConnectionEstablished { peer_id, .. } =
                swarm.select_next_some().await
                && peer_id == peer
            {
                return;
            }
        }
    })
    .await
    .expect("connecting to the node");
}

/// Writes requests verbatim; reads a response to the end of the stream.
#[derive(Debug, Clone, Default)]
struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
    ) -> io::Result<Vec<u8>> {
        Err(io::Error::other("the hostile peer serves nothing"))
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        io.take(32 << 20).read_to_end(&mut bytes).await?;
        if bytes.is_empty() {
            // The node closed the stream without answering.
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(bytes)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&req).await?;
        io.close().await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        _: Vec<u8>,
    ) -> io::Result<()> {
        Err(io::Error::other("the hostile peer serves nothing"))
    }
}

//! A lying blob peer for tests: a real libp2p node speaking `/minga/blob/1` that holds a blob
//! and serves every range of it with its last byte flipped, so the node under test meets bad
//! bytes through its real network and verification paths.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use minga_node::network::blob_codec::{BLOB_PROTOCOL, BlobCodec};
use minga_node::network::blobs::encode_held;
use minga_node::{BlobStore, Store};
use minga_protocol::blob::BlobResponseHead;

/// A peer that serves corrupted ranges of one blob, on its own thread.
pub struct LyingBlobPeer {
    /// `/ip4/127.0.0.1/tcp/…/p2p/<peer id>`.
    pub addr: String,
    pub peer_id: PeerId,
    /// The ranges `(start, len)` it answered, each with its last byte flipped.
    pub served: Arc<Mutex<Vec<(u64, u64)>>>,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl LyingBlobPeer {
    /// Holds `content` and starts listening on loopback.
    pub fn start(content: &[u8]) -> LyingBlobPeer {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("store"), 8 << 20).expect("store");
        let blobs =
            BlobStore::open(&dir.path().join("blobs"), store.blob_records()).expect("blob store");
        blobs
            .add_reader(content, u64::MAX, |_| {})
            .expect("adding the blob");
        let served = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::sync_channel(1);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let log = Arc::clone(&served);
        std::thread::spawn(move || serve(blobs, log, addr_tx, stopped));
        let (addr, peer_id): (Multiaddr, PeerId) = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the lying peer listens");
        LyingBlobPeer {
            addr: addr.to_string(),
            peer_id,
            served,
            _dir: dir,
            stop: Some(stop),
        }
    }
}

impl Drop for LyingBlobPeer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn serve(
    blobs: BlobStore,
    served: Arc<Mutex<Vec<(u64, u64)>>>,
    addr_tx: std::sync::mpsc::SyncSender<(Multiaddr, PeerId)>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let mut swarm = crate::peer_swarm::request_response(
            BlobCodec,
            BLOB_PROTOCOL,
            ProtocolSupport::Inbound,
            request_response::Config::default(),
            Duration::from_secs(300),
        );
        swarm
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("address"))
            .expect("listening");
        let peer_id = *swarm.local_peer_id();
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                event = swarm.select_next_some() => match event {
                    SwarmEvent::NewListenAddr { address, .. } => {
                        let full = address.with_p2p(peer_id).expect("an address without /p2p");
                        let _ = addr_tx.try_send((full, peer_id));
                    }
                    SwarmEvent::Behaviour(request_response::Event::Message {
                        message: request_response::Message::Request { request, channel, .. },
                        ..
                    }) => {
                        let mut reply = encode_held(&blobs, &request);
                        if let BlobResponseHead::Range { .. } = reply.head
                            && let Some(last) = reply.encoded.last_mut()
                        {
                            *last ^= 0x01;
                            served.lock().expect("served").push((request.start, request.len));
                        }
                        let _ = swarm.behaviour_mut().send_response(channel, reply);
                    }
                    _ => {}
                },
            }
        }
    });
}

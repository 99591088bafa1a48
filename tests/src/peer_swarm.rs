//! The swarm of a scripted test peer: TCP with Noise and Yamux, as the node speaks them, and one
//! request-response protocol. The hostile peers of the tests (`hostile`, `blob_peer`) build
//! theirs here.

use std::time::Duration;

use libp2p::request_response::{self, Codec, ProtocolSupport};
use libp2p::{Swarm, noise, tcp, yamux};

/// A swarm with a fresh identity speaking `protocol` through `codec`; call it inside a tokio
/// runtime.
pub fn request_response<C>(
    codec: C,
    protocol: C::Protocol,
    support: ProtocolSupport,
    config: request_response::Config,
    idle: Duration,
) -> Swarm<request_response::Behaviour<C>>
where
    C: Codec + Clone + Send + 'static,
{
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp transport")
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(codec, [(protocol, support)], config)
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
        .build()
}

//! Framing of `/minga/sync/1`: one length-prefixed postcard message per stream direction, never
//! more than [`MAX_MESSAGE_BYTES`]; an oversized or malformed frame is an error, which drops
//! the stream and is counted against the peer.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use minga_protocol::wire::{self, MAX_MESSAGE_BYTES, Request, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The versioned name of the sync protocol.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/minga/sync/1");

#[derive(Debug, Clone, Default)]
pub struct SyncCodec;

/// An inbound request, or why its frame was broken. libp2p reports no event for a request that
/// fails to decode, so a broken frame is delivered as a request the node can punish.
#[derive(Debug, Clone)]
pub enum Inbound {
    Valid(Request),
    Malformed(String),
}

impl libp2p::request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = Inbound;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Inbound>
    where
        T: AsyncRead + Unpin + Send,
    {
        match read_frame(io).await {
            Ok(request) => Ok(Inbound::Valid(request)),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                Ok(Inbound::Malformed(e.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Inbound,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match req {
            Inbound::Valid(request) => write_frame(io, &request).await,
            Inbound::Malformed(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a malformed request is never sent",
            )),
        }
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res).await
    }
}

async fn read_frame<T: AsyncRead + Unpin, M: DeserializeOwned>(io: &mut T) -> io::Result<M> {
    let mut prefix = [0u8; 4];
    io.read_exact(&mut prefix).await?;
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_MESSAGE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is over the limit of {MAX_MESSAGE_BYTES}"),
        ));
    }
    let mut bytes = vec![0u8; len];
    io.read_exact(&mut bytes).await?;
    wire::decode(&bytes, MAX_MESSAGE_BYTES)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

async fn write_frame<T: AsyncWrite + Unpin, M: Serialize>(
    io: &mut T,
    message: &M,
) -> io::Result<()> {
    let bytes = wire::encode(message);
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "message over the frame limit",
        ));
    }
    io.write_all(&(bytes.len() as u32).to_be_bytes()).await?;
    io.write_all(&bytes).await?;
    io.close().await
}

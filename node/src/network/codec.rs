//! Framing of `/minga/sync/1`: one length-prefixed postcard message per stream direction, never
//! more than [`MAX_MESSAGE_BYTES`]; an oversized or malformed frame is an error, which drops
//! the stream and is counted against the peer. A frame's bytes are held as they arrive, never
//! allocated ahead from the length it declares.

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
    let mut bytes = Vec::new();
    read_body(io, len, &mut bytes).await?;
    wire::decode(&bytes, MAX_MESSAGE_BYTES)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The buffer a frame starts with; it grows (doubling) only as bytes arrive.
const INITIAL_FRAME_CAPACITY: usize = 8 * 1024;

/// Reads exactly `len` bytes into `bytes`, growing it as they arrive: a peer that declares a
/// 16 MiB frame and sends a few bytes makes the node hold a few bytes, not 16 MiB.
pub(super) async fn read_body<T: AsyncRead + Unpin>(
    io: &mut T,
    len: usize,
    bytes: &mut Vec<u8>,
) -> io::Result<()> {
    bytes.reserve(len.min(INITIAL_FRAME_CAPACITY));
    io.take(len as u64).read_to_end(bytes).await?;
    if bytes.len() < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("a frame of {len} bytes ended after {}", bytes.len()),
        ));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame declaring the largest length and then closing after 1,000 bytes: the reader
    /// fails having held about what arrived, never the declared 16 MiB.
    #[tokio::test]
    async fn a_declared_huge_frame_is_not_allocated_ahead() {
        let mut sent = (MAX_MESSAGE_BYTES as u32).to_be_bytes().to_vec();
        sent.extend_from_slice(&[0u8; 1000]);
        let mut io = futures::io::Cursor::new(sent);
        let mut prefix = [0u8; 4];
        io.read_exact(&mut prefix).await.unwrap();
        let mut bytes = Vec::new();
        let read = read_body(&mut io, u32::from_be_bytes(prefix) as usize, &mut bytes).await;
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(bytes.len(), 1000);
        assert!(
            bytes.capacity() <= 2 * INITIAL_FRAME_CAPACITY,
            "{}",
            bytes.capacity()
        );
    }

    /// Frames arriving whole still decode.
    #[tokio::test]
    async fn whole_frames_round_trip() {
        let request = Request::Operator;
        let mut sent = futures::io::Cursor::new(Vec::new());
        write_frame(&mut sent, &request).await.unwrap();
        let mut io = futures::io::Cursor::new(sent.into_inner());
        assert_eq!(read_frame::<_, Request>(&mut io).await.unwrap(), request);
    }
}

//! Framing of `/minga/blob/1`: a request is one small length-prefixed postcard message; a
//! response is a length-prefixed postcard header followed by the raw bao encoding it announces
//! (no second copy through serde), never more than [`MAX_RESPONSE_BYTES`], held as it arrives.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use minga_protocol::blob::{BlobRequest, BlobResponseHead, MAX_RESPONSE_BYTES};
use minga_protocol::wire;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec::read_body;

/// The versioned name of the blob protocol.
pub const BLOB_PROTOCOL: StreamProtocol = StreamProtocol::new("/minga/blob/1");

/// Largest request or response header.
const MAX_HEAD_BYTES: usize = 256;

/// A response: its header, and the encoding when the header announces one.
#[derive(Debug, Clone)]
pub struct BlobReply {
    pub head: BlobResponseHead,
    pub encoded: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct BlobCodec;

impl libp2p::request_response::Codec for BlobCodec {
    type Protocol = StreamProtocol;
    type Request = BlobRequest;
    type Response = BlobReply;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<BlobRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_head(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<BlobReply>
    where
        T: AsyncRead + Unpin + Send,
    {
        let head: BlobResponseHead = read_head(io).await?;
        let len = match head {
            BlobResponseHead::Range { encoded_len, .. } => encoded_len,
            BlobResponseHead::Missing | BlobResponseHead::Refused => 0,
        };
        if len > MAX_RESPONSE_BYTES as u64 {
            return Err(invalid(format!(
                "an encoding of {len} bytes is over the limit of {MAX_RESPONSE_BYTES}"
            )));
        }
        let mut encoded = Vec::new();
        read_body(io, len as usize, &mut encoded).await?;
        Ok(BlobReply { head, encoded })
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: BlobRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_head(io, &request).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        reply: BlobReply,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_head(io, &reply.head).await?;
        io.write_all(&reply.encoded).await?;
        io.close().await
    }
}

async fn read_head<T: AsyncRead + Unpin, M: DeserializeOwned>(io: &mut T) -> io::Result<M> {
    let mut prefix = [0u8; 2];
    io.read_exact(&mut prefix).await?;
    let len = u16::from_be_bytes(prefix) as usize;
    if len > MAX_HEAD_BYTES {
        return Err(invalid(format!("a header of {len} bytes")));
    }
    let mut bytes = vec![0u8; len];
    io.read_exact(&mut bytes).await?;
    wire::decode(&bytes, MAX_HEAD_BYTES).map_err(invalid)
}

async fn write_head<T: AsyncWrite + Unpin, M: Serialize>(io: &mut T, head: &M) -> io::Result<()> {
    let bytes = wire::encode(head);
    io.write_all(&(bytes.len() as u16).to_be_bytes()).await?;
    io.write_all(&bytes).await
}

fn invalid(reason: impl ToString) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.to_string())
}

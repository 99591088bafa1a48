//! Slow links for in-process simulations. libp2p's memory transport hands bytes over at once;
//! the real-stack scenarios wrap each of its connections to give what a node receives a
//! link's latency and to pace what it sends at its uplink's rate, shared by all its
//! connections, so model and real stack run on links alike. Only `/memory/` connections are
//! ever wrapped: TCP and QUIC have real links.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::{AsyncRead, AsyncWrite, FutureExt};
use tokio::time::{Instant, Sleep, sleep_until};

/// How a node's links behave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkModel {
    /// One-way delay of every byte the node receives.
    pub latency: Duration,
    /// The node's uplink in bytes per second, shared by all its connections.
    pub uplink_bytes_per_s: u64,
}

/// Bytes read ahead from the link and not yet due; beyond this the link is not read.
const MAX_IN_FLIGHT: usize = 1 << 20;

/// Most bytes paced as one write.
const MAX_WRITE: usize = 16 * 1024;

/// A node's uplink: when it is next free.
#[derive(Debug)]
pub struct Uplink {
    model: LinkModel,
    free_at: Mutex<Option<Instant>>,
}

impl Uplink {
    pub fn new(model: LinkModel) -> Arc<Uplink> {
        Arc::new(Uplink {
            model,
            free_at: Mutex::new(None),
        })
    }

    /// Books the uplink for `bytes`; answers when they have been sent.
    fn book(&self, bytes: usize) -> Instant {
        let now = Instant::now();
        let mut free_at = self.free_at.lock().expect("uplink lock");
        let start = free_at.map_or(now, |at| at.max(now));
        let rate = self.model.uplink_bytes_per_s.max(1) as f64;
        let done = start + Duration::from_secs_f64(bytes as f64 / rate);
        *free_at = Some(done);
        done
    }
}

/// A connection over a modelled link.
pub struct Shaped<S> {
    inner: S,
    uplink: Arc<Uplink>,
    /// Bytes read from the link, each with when it may be handed on.
    due: VecDeque<(Instant, Vec<u8>)>,
    /// Bytes of the front chunk already handed on.
    taken: usize,
    queued: usize,
    ended: bool,
    read_timer: Option<Pin<Box<Sleep>>>,
    /// Bytes already paid for on the uplink, and the wait until they are sent.
    paid: usize,
    write_timer: Option<Pin<Box<Sleep>>>,
}

impl<S> Shaped<S> {
    pub fn new(inner: S, uplink: Arc<Uplink>) -> Shaped<S> {
        Shaped {
            inner,
            uplink,
            due: VecDeque::new(),
            taken: 0,
            queued: 0,
            ended: false,
            read_timer: None,
            paid: 0,
            write_timer: None,
        }
    }
}

impl<S: AsyncRead + Unpin> Shaped<S> {
    /// Reads what the link has now, stamping each chunk with when it is due.
    fn read_ahead(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        while !self.ended && self.queued < MAX_IN_FLIGHT {
            match Pin::new(&mut self.inner).poll_read(cx, &mut chunk)? {
                Poll::Ready(0) => self.ended = true,
                Poll::Ready(n) => {
                    let due = Instant::now() + self.uplink.model.latency;
                    self.due.push_back((due, chunk[..n].to_vec()));
                    self.queued += n;
                }
                Poll::Pending => break,
            }
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Shaped<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.read_ahead(cx)?;
        let Some((due, chunk)) = this.due.front() else {
            return if this.ended {
                Poll::Ready(Ok(0))
            } else {
                Poll::Pending
            };
        };
        if *due > Instant::now() {
            let timer = this.read_timer.insert(Box::pin(sleep_until(*due)));
            if timer.poll_unpin(cx).is_pending() {
                return Poll::Pending;
            }
        }
        this.read_timer = None;
        let n = buf.len().min(chunk.len() - this.taken);
        buf[..n].copy_from_slice(&chunk[this.taken..this.taken + n]);
        this.taken += n;
        if this.taken == chunk.len() {
            this.due.pop_front();
            this.taken = 0;
        }
        this.queued -= n;
        Poll::Ready(Ok(n))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Shaped<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if buf.is_empty() {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        if this.paid == 0 {
            this.paid = buf.len().min(MAX_WRITE);
            let sent = this.uplink.book(this.paid);
            this.write_timer = Some(Box::pin(sleep_until(sent)));
        }
        if let Some(timer) = &mut this.write_timer {
            ready!(timer.poll_unpin(cx));
            this.write_timer = None;
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..this.paid.min(buf.len())]))?;
        this.paid -= n.min(this.paid);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use futures::channel::mpsc;
    use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};

    use super::*;

    /// One end of an in-memory byte pipe that hands bytes over at once.
    struct End {
        send: mpsc::UnboundedSender<Vec<u8>>,
        receive: mpsc::UnboundedReceiver<Vec<u8>>,
        left: Vec<u8>,
    }

    fn pipe() -> (End, End) {
        let (to_b, from_a) = mpsc::unbounded();
        let (to_a, from_b) = mpsc::unbounded();
        let end = |send, receive| End {
            send,
            receive,
            left: Vec::new(),
        };
        (end(to_b, from_b), end(to_a, from_a))
    }

    impl AsyncRead for End {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            if self.left.is_empty() {
                match ready!(self.receive.poll_next_unpin(cx)) {
                    Some(bytes) => self.left = bytes,
                    None => return Poll::Ready(Ok(0)),
                }
            }
            let n = buf.len().min(self.left.len());
            buf[..n].copy_from_slice(&self.left[..n]);
            self.left.drain(..n);
            Poll::Ready(Ok(n))
        }
    }

    impl AsyncWrite for End {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let sent = self.send.unbounded_send(buf.to_vec());
            Poll::Ready(sent.map(|()| buf.len()).map_err(io::Error::other))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.send.close_channel();
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn bytes_arrive_whole_and_no_sooner_than_uplink_and_latency_allow() {
        let model = LinkModel {
            latency: Duration::from_millis(100),
            uplink_bytes_per_s: 100_000,
        };
        let (a, b) = pipe();
        let mut sender = Shaped::new(a, Uplink::new(model));
        let mut receiver = Shaped::new(b, Uplink::new(model));
        let start = Instant::now();
        let message: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        let write = async {
            sender.write_all(&message).await.unwrap();
            sender.close().await.unwrap();
        };
        let mut got = Vec::new();
        let read = receiver.read_to_end(&mut got);
        let ((), read) = futures::join!(write, read);
        read.unwrap();
        assert_eq!(got, message, "every byte, in order, then the end");
        // 40 KB at 100 KB/s take 0.4 s on the uplink, then 0.1 s on the wire.
        assert!(start.elapsed() >= Duration::from_millis(500));
    }

    #[tokio::test]
    async fn the_connections_of_a_node_share_its_uplink() {
        let model = LinkModel {
            latency: Duration::ZERO,
            uplink_bytes_per_s: 20_000,
        };
        let uplink = Uplink::new(model);
        let (a1, _b1) = pipe();
        let (a2, _b2) = pipe();
        let mut first = Shaped::new(a1, Arc::clone(&uplink));
        let mut second = Shaped::new(a2, uplink);
        let start = Instant::now();
        let (r1, r2) = futures::join!(first.write_all(&[1; 5_000]), second.write_all(&[2; 5_000]));
        r1.unwrap();
        r2.unwrap();
        assert!(
            start.elapsed() >= Duration::from_millis(500),
            "10 KB at 20 KB/s"
        );
    }
}

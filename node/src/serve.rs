//! Serving the HTTP API on a listener as an unattended daemon must: a client that opens a
//! connection and sends nothing, or drips its headers, is disconnected after
//! [`HEADER_TIMEOUT`] (the same bound applies to an idle keep-alive connection waiting for its
//! next request); at most [`MAX_CONNECTIONS`] connections are served at once, well under the
//! 1,024 open files a service gets, and further ones wait in the listen backlog; one client
//! address holds at most [`MAX_CONNECTIONS_PER_CLIENT`] of them, so one phone or one attacker on
//! the LAN cannot take the slots everyone else needs; an accept error (out of file descriptors)
//! backs off instead of spinning or ending the server.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_service::Service;

/// Time a client has to send a request's headers, counted from when the server starts
/// waiting for them: on a new connection, or on a kept-alive one after the last response.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 512;

/// Connections one client address may hold at once; a browser opens about six.
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 64;

/// Pause after an accept error such as `EMFILE`, before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long connections still open at shutdown may take to finish their requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` resolves, then lets open requests finish.
/// Handlers see the client's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let clients = Clients::default();
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::warn!("accept error: {e}; retrying shortly");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(client_slot) = clients.admit(client.ip()) else {
            tracing::debug!(%client, "closing a connection over the client's limit");
            continue;
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(client));
            router.clone().call(request)
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%client, "connection ended: {e}");
            }
            drop((slot, client_slot));
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; stopping anyway");
    }
}

/// Connections open per client address.
#[derive(Clone, Default)]
struct Clients(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl Clients {
    /// A slot for one more connection of `ip`, or `None` when it holds its limit already.
    fn admit(&self, ip: IpAddr) -> Option<ClientSlot> {
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_default();
        if *count >= MAX_CONNECTIONS_PER_CLIENT {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            clients: self.clone(),
            ip,
        })
    }
}

/// One open connection of a client; given back when dropped.
struct ClientSlot {
    clients: Clients,
    ip: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self
            .clients
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Errors of one connection that the client gave up on before it was accepted.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_holds_at_most_its_share_and_gets_slots_back() {
        let clients = Clients::default();
        let phone: IpAddr = [192, 168, 1, 20].into();
        let other: IpAddr = [192, 168, 1, 21].into();
        let held: Vec<_> = (0..MAX_CONNECTIONS_PER_CLIENT)
            .map(|_| clients.admit(phone).expect("within the limit"))
            .collect();
        assert!(clients.admit(phone).is_none(), "one over the limit");
        assert!(clients.admit(other).is_some(), "another client is served");
        drop(held);
        assert!(clients.admit(phone).is_some(), "slots come back");
        assert_eq!(
            clients.0.lock().unwrap().len(),
            0,
            "nothing kept for gone clients"
        );
    }
}

//! Running a node: the event loop on its thread, the HTTP API on the given listener, `api.addr`
//! in the data dir, until the shutdown future resolves.

use std::future::Future;

use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::datadir::write_atomic;
use crate::{Commons, DataDir, Error, StoreError, event_loop};

/// Serves the commons on `listener` until `shutdown` resolves, then flushes and returns.
pub async fn run(
    commons: Commons,
    dir: &DataDir,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let api_addr = listener.local_addr().map_err(StoreError::Io)?;
    let peer_id = commons.peer_id();
    let store = commons.store().clone();
    let (handle, event_loop) = event_loop::spawn(commons);
    write_atomic(
        &dir.api_addr_file(),
        format!("{api_addr}\n").as_bytes(),
        0o644,
    )
    .map_err(StoreError::Io)?;
    tracing::info!(%peer_id, "minga node serving http://{api_addr}");

    let router = api::router(AppState {
        handle,
        store,
        peer_id,
    });
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await;

    // The router (and with it every handle) is gone: the event loop flushes and ends.
    let joined = tokio::task::spawn_blocking(move || event_loop.join()).await;
    let _ = std::fs::remove_file(dir.api_addr_file());
    served.map_err(StoreError::Io)?;
    match joined {
        Ok(Ok(_commons)) => Ok(()),
        _ => Err(StoreError::Io(std::io::Error::other("the event loop panicked")).into()),
    }
}

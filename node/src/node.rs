//! Running a node: the event loop on its thread, the network task, and the HTTP API on the
//! given listener, with `api.addr` in the data dir, until the shutdown future resolves.

use std::future::Future;

use libp2p::identity;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use std::sync::Arc;
use std::thread::JoinHandle;

use crate::SearchIndex;
use crate::config::NodeConfig;
use crate::datadir::write_atomic;
use crate::event_loop::Outlets;
use crate::http::access::Access;
use crate::http::bundle_dirs::BundleDirs;
use crate::http::host::Hosts;
use crate::http::{self, AppState};
use crate::metrics::NodeMetrics;
use crate::network;
use crate::search::indexer::Indexer;
use crate::{Commons, DataDir, Error, StoreError, event_loop};
use crate::{api, web};

/// Announcements waiting for the network task.
const CHANGE_QUEUE: usize = 4096;

/// Serves the commons on `listener` and the network until `shutdown` resolves, then flushes
/// and returns.
pub async fn run(
    commons: Commons,
    config: NodeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let NodeConfig {
        data_dir: dir,
        network,
        web,
        cache_bytes: _,
    } = config;
    let dir = &dir;
    let api_addr = listener.local_addr().map_err(StoreError::Io)?;
    let peer_id = commons.peer_id();
    let store = commons.store().clone();
    let blobs = commons.blobs().clone();
    let limits = network.blobs;
    let keypair = identity::Keypair::ed25519_from_bytes(commons.network_secret())
        .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?;
    let operator = commons.vouch_for_peer(&keypair.public().to_peer_id().to_bytes());
    let search = Arc::new(SearchIndex::open(
        &dir.search_dir(),
        web.search_writer_bytes,
        &store,
    )?);
    let access = Access::new(
        api_addr.ip().is_loopback(),
        dir.api_token().map_err(StoreError::Io)?,
        web.contributor_code.clone(),
    );
    let hosts = Hosts::new(api_addr, &web.hosts);
    let bundle_dirs =
        BundleDirs::open(dir.bundles_dir(), web.bundle_dirs.clone()).map_err(StoreError::Io)?;
    write_atomic(
        &dir.api_addr_file(),
        format!("{api_addr}\n").as_bytes(),
        0o644,
    )
    .map_err(StoreError::Io)?;
    // From here on threads hold the store: every way out goes through `wind_down`.
    let indexer = Indexer::spawn(search.clone(), store.clone()).map_err(StoreError::Io)?;
    let (changes_tx, changes_rx) = mpsc::channel(CHANGE_QUEUE);
    let outlets = Outlets {
        changes: Some(changes_tx),
        mirror: network.mirror,
        indexer: Some(indexer.wake()),
    };
    let (handle, event_loop) = event_loop::spawn(commons, outlets);
    let started = network::start(
        keypair,
        network,
        store.clone(),
        blobs.clone(),
        handle.clone(),
        changes_rx,
        operator,
    );
    let (swarm_task, net) = match started {
        Ok(started) => started,
        Err(e) => {
            drop(handle);
            wind_down(dir, event_loop, indexer).await;
            let reason = format!("starting the network: {e:?}");
            return Err(StoreError::Io(std::io::Error::other(reason)).into());
        }
    };
    net.registry
        .lock()
        .expect("metrics registry lock")
        .register_collector(Box::new(NodeMetrics {
            store: store.clone(),
            net: net.status.clone(),
            blobs: blobs.clone(),
            data_dir: dir.root().to_path_buf(),
        }));
    let (stop_network, network_stopped) = watch::channel(false);
    let network_task = tokio::spawn(swarm_task.run(network_stopped));

    for url in http::lan::urls(api_addr) {
        tracing::info!(%peer_id, "minga node serving {url}");
    }

    let state = AppState {
        handle,
        store,
        peer_id,
        api_addr,
        data_dir: dir.root().into(),
        net,
        blobs,
        limits,
        search,
        access: Arc::new(access),
        hosts: Arc::new(hosts),
        bundle_dirs: Arc::new(bundle_dirs),
    };
    // The state moves into the router: when serving ends, its handle must go with it.
    let api = api::routes(&state);
    let router = http::router(state, api, web::routes());
    crate::serve::serve(listener, router, shutdown).await;

    // The router is gone; stopping the network drops the last handles, and the event loop
    // flushes and ends.
    let _ = stop_network.send(true);
    let _ = network_task.await;
    let ended = wind_down(dir, event_loop, indexer).await;
    if !ended {
        return Err(StoreError::Io(std::io::Error::other("the event loop panicked")).into());
    }
    Ok(())
}

/// Ends what holds the store (and its lock on the data dir), once nothing sends it commands:
/// the event loop, which flushes when its last handle is gone, and the indexer; removes
/// `api.addr`. Answers whether the event loop ended cleanly. After it the node can be started
/// again on the same data dir.
async fn wind_down(dir: &DataDir, event_loop: JoinHandle<Commons>, indexer: Indexer) -> bool {
    let ended = tokio::task::spawn_blocking(move || {
        let ended = event_loop.join().is_ok();
        indexer.stop();
        ended
    })
    .await
    .unwrap_or(false);
    let _ = std::fs::remove_file(dir.api_addr_file());
    ended
}

//! What the API's handlers and the operator's page both do to the node: report its status,
//! follow and block, write and read bundles. One place for each, so the page and the API
//! cannot drift apart; the callers check who may call them.

use libp2p::PeerId;

use super::AppState;
use crate::Error;
use crate::bundle::{ExportRequest, ExportSummary, ImportRequest, ImportSummary};
use crate::network::NetCommand;
use crate::queries;

/// What `/api/v1/status`, `/metrics` and the operator's page report.
pub fn node_status(state: &AppState) -> Result<queries::Status, Error> {
    let (bytes_sent, bytes_received) = state.net.bytes();
    let net = state.net.status.read().expect("status lock");
    let figures = queries::NetworkFigures {
        peers: net.peers.len() as u64,
        listen: net.listen.clone(),
        bytes_sent,
        bytes_received,
    };
    queries::status(&state.store, &state.peer_id, figures, &state.blobs)
}

/// Blocks a peer (recording the author it vouched for, whose content is then hidden) or lets
/// it back, and tells the network.
pub async fn set_blocked(state: &AppState, peer: &str, blocked: bool) -> Result<(), Error> {
    if !blocked {
        state
            .handle
            .set_blocked(peer.to_owned(), false, None)
            .await?;
        if let Ok(peer_id) = peer.parse::<PeerId>() {
            state.net.send(NetCommand::Unblock(peer_id)).await;
        }
        return Ok(());
    }
    let peer_id: PeerId = peer
        .parse()
        .map_err(|_| Error::BadRequest(format!("{peer:?} is not a peer id")))?;
    let author = state.net.operator_of(peer);
    state
        .handle
        .set_blocked(peer.to_owned(), true, author)
        .await?;
    state.net.send(NetCommand::Block(peer_id)).await;
    Ok(())
}

/// Follows a collection (and asks the network for it) or stops following it.
pub async fn set_followed(state: &AppState, id: &str, followed: bool) -> Result<(), Error> {
    let collection = queries::parse_id(id)?;
    state.handle.set_followed(collection, followed).await?;
    if followed {
        state.net.send(NetCommand::Followed(collection)).await;
    }
    Ok(())
}

/// Writes a bundle where the request says, once its paths are confined to the bundle
/// directories (`super::bundle_dirs`).
pub async fn export_bundle(
    state: &AppState,
    mut request: ExportRequest,
) -> Result<ExportSummary, Error> {
    request.out = state.bundle_dirs.confine(&request.out)?;
    if let Some(since) = &request.since {
        request.since = Some(state.bundle_dirs.confine(since)?);
    }
    state.handle.export_bundle(request, Box::new(|_| {})).await
}

/// Imports the bundle the request names, once its path is confined to the bundle directories.
pub async fn import_bundle(
    state: &AppState,
    mut request: ImportRequest,
) -> Result<ImportSummary, Error> {
    request.file = state.bundle_dirs.confine(&request.file)?;
    state.handle.import_bundle(request, Box::new(|_| {})).await
}

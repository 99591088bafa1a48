//! Uploads streamed into the blob store under the blob size limit, for the API's raw bodies
//! and the forms' files alike.

use axum::body::Bytes;
use futures::StreamExt;

use super::AppState;
use super::body::{DRAIN_BYTES, drain};
use crate::Error;

/// Writes a stream of bytes (a raw body, a form's file) into the blob store under the size
/// limit: past it the rest is drained (see [`super::body`]) before the 413.
pub(crate) async fn receive<E: std::fmt::Display>(
    state: &AppState,
    stream: impl futures::Stream<Item = Result<Bytes, E>>,
) -> Result<crate::blobs::Added, Error> {
    let limit = state.limits.max_blob_bytes;
    let mut upload = state.blobs.upload(limit)?;
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::BadRequest(format!("reading the body: {e}")))?;
        if let Err(refused) = tokio::task::block_in_place(|| upload.write(&chunk)) {
            drain(stream, DRAIN_BYTES).await;
            return Err(refused.into());
        }
    }
    let blobs = state.blobs.clone();
    tokio::task::spawn_blocking(move || blobs.finish_upload(upload))
        .await
        .map_err(|e| Error::BadRequest(e.to_string()))?
        .map_err(Error::from)
}

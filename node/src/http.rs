//! What the API and the web pages share: the state every handler reaches, the error answer,
//! and the guards in front of both: which `Host` is this node ([`host`]), who may write and
//! read what is private ([`access`], with [`throttle`] on wrong codes), bodies read under their
//! limit ([`body`]), uploads streamed into the blob store ([`upload`]), the directories bundle
//! paths must stay in ([`bundle_dirs`]) and the removable drives mounted ([`drives`]), and the
//! URLs the node is reached at ([`lan`]). [`router`] puts the API's routes and the pages behind
//! them.

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::network::NetHandle;
use crate::store::Reader;
use crate::{BlobLimits, BlobStore, Error, Handle};

pub mod access;
pub(crate) mod body;
pub mod bundle_dirs;
pub mod drives;
pub mod host;
pub mod lan;
pub mod operations;
mod throttle;
pub(crate) mod upload;

/// Largest request body: an entry's document is at most 1 MiB, and JSON escaping adds to it.
pub const MAX_REQUEST_BYTES: usize = 2 * 1024 * 1024;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub handle: Handle,
    /// Read access; writes go through `handle`.
    pub store: Reader,
    pub peer_id: String,
    /// Where the API listens: the poster shows the URLs phones reach it at.
    pub api_addr: std::net::SocketAddr,
    /// The data dir, whose disk use the operator's page shows.
    pub data_dir: std::sync::Arc<std::path::Path>,
    pub net: NetHandle,
    /// Attachments: uploads are written here, downloads read from here.
    pub blobs: BlobStore,
    pub limits: BlobLimits,
    /// The full-text index, kept current by the indexer thread.
    pub search: std::sync::Arc<crate::SearchIndex>,
    /// Who may write.
    pub access: std::sync::Arc<access::Access>,
    /// The `Host` names requests may give.
    pub hosts: std::sync::Arc<host::Hosts>,
    /// Where bundle routes may read and write.
    pub bundle_dirs: std::sync::Arc<bundle_dirs::BundleDirs>,
}

/// The node's HTTP service: the API's `routes` and the `pages`, with one fallback, the API's
/// body limit (the pages' forms lift it for themselves) and the `Host` guard in front of all.
pub fn router(state: AppState, api: Router<AppState>, pages: Router<AppState>) -> Router {
    api.merge(pages)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            host::guard,
        ))
        .with_state(state)
}

/// An [`Error`] as an HTTP response.
#[derive(Debug)]
pub struct ApiError(Error);

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!("request failed: {}", self.0);
        }
        let body = json!({"error": {"code": self.0.code(), "message": self.0.to_string()}});
        let mut response = (status, Json(body)).into_response();
        if let Error::TooManyAttempts(seconds) = self.0 {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

async fn not_found() -> ApiError {
    Error::NotFound("no such route".into()).into()
}

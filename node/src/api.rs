//! The HTTP API of DESIGN.md, under `/api/v1`: thin handlers that parse requests, call the
//! shared queries or the event loop, and answer errors as `{"error": {code, message}}`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use minga_protocol::NewCollection;
use minga_protocol::entry::{EntryPatch, NewEntry};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::http::body::{CappedBytes, JsonBody, parse_json};
use crate::http::operations::{node_status, set_blocked, set_followed};
use crate::http::{ApiResult, AppState, access};
use crate::queries::{self, CollectionList, ListParams};
use crate::views::{Blocked, Created, Deleted, Followed, Peer, PeerList};

pub(crate) mod blobs;
mod bundles;
mod export;
mod openapi;

/// The API's routes, each behind the write guard ([`access::guard`]); [`crate::http::router`]
/// serves them beside the pages.
pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/status", get(status))
        .route("/api/v1/peers", get(peers))
        .route("/api/v1/peers/{peer}/block", post(block).delete(unblock))
        .route(
            "/api/v1/collections",
            get(list_collections).post(create_collection),
        )
        .route("/api/v1/collections/{id}/export", get(export::collection))
        .route(
            "/api/v1/collections/{id}/follow",
            post(follow).delete(unfollow),
        )
        .route("/api/v1/entries", get(list_entries).post(create_entry))
        .route(
            "/api/v1/entries/{id}",
            get(get_entry).patch(patch_entry).delete(delete_entry),
        )
        .route("/api/v1/entries/{id}/history", get(entry_history))
        .route("/api/v1/bundles/export", post(bundles::export))
        .route("/api/v1/bundles/import", post(bundles::import))
        .route("/api/v1/blobs", get(blobs::list).post(blobs::add))
        .route("/api/v1/blobs/{hash}", get(blobs::get))
        .route("/api/v1/openapi.json", get(openapi::serve))
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::guard,
        ))
}

/// Query strings that do not parse are 400s too.
fn query<T: DeserializeOwned>(raw: Option<&str>) -> ApiResult<T> {
    serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| Error::BadRequest(format!("invalid query: {e}")).into())
}

#[utoipa::path(get, path = "/api/v1/status", tag = "node", responses((status = 200, description = "{peer_id, version, collections, entries, peers, listen, bytes_sent, bytes_received, blobs}")))]
async fn status(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(Json(node_status(&state)?).into_response())
}

#[utoipa::path(get, path = "/api/v1/peers", tag = "network", responses((status = 200, description = "{peers: [{peer_id, addresses, last_seen, bytes_sent, bytes_received}]}")))]
async fn peers(State(state): State<AppState>) -> Response {
    let net = state.net.status.read().expect("status lock");
    let peers = net
        .peers
        .iter()
        .map(|(peer_id, info)| Peer {
            peer_id: peer_id.clone(),
            addresses: info.addresses.clone(),
            last_seen: info.last_seen,
            bytes_sent: info.bytes_sent,
            bytes_received: info.bytes_received,
        })
        .collect();
    Json(PeerList { peers }).into_response()
}

#[utoipa::path(post, path = "/api/v1/peers/{peer}/block", tag = "network", params(("peer" = String, Path, description = "A libp2p peer id")), responses((status = 200, description = "{blocked: true}"), (status = 400, description = "not a peer id")))]
async fn block(State(state): State<AppState>, Path(peer): Path<String>) -> ApiResult<Response> {
    set_blocked(&state, &peer, true).await?;
    Ok(Json(Blocked { blocked: true }).into_response())
}

#[utoipa::path(delete, path = "/api/v1/peers/{peer}/block", tag = "network", params(("peer" = String, Path, description = "A libp2p peer id")), responses((status = 200, description = "{blocked: false}")))]
async fn unblock(State(state): State<AppState>, Path(peer): Path<String>) -> ApiResult<Response> {
    set_blocked(&state, &peer, false).await?;
    Ok(Json(Blocked { blocked: false }).into_response())
}

#[derive(Deserialize)]
struct CollectionParams {
    available: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/collections", tag = "collections", params(("available" = Option<bool>, Query, description = "true: the collections heard of on the network")), responses((status = 200, description = "{collections: [{id, name, title, description, license, entries}]}")))]
async fn list_collections(State(state): State<AppState>, raw: RawQuery) -> ApiResult<Response> {
    let params: CollectionParams = query(raw.0.as_deref())?;
    if params.available.as_deref() == Some("true") {
        let net = state.net.status.read().expect("status lock");
        let heard: Vec<_> = net.available.values().cloned().collect();
        return Ok(Json(CollectionList { collections: heard }).into_response());
    }
    Ok(Json(queries::list_collections(&state.store)?).into_response())
}

#[utoipa::path(post, path = "/api/v1/collections", tag = "collections", request_body(content = Object, description = "{name, title?, description?, license?}", content_type = "application/json"), responses((status = 201, description = "{id}"), (status = 400, description = "bad_request"), (status = 422, description = "refused by policy")))]
async fn create_collection(
    State(state): State<AppState>,
    JsonBody(new): JsonBody<NewCollection>,
) -> ApiResult<Response> {
    let id = state.handle.create_collection(new).await?;
    Ok((StatusCode::CREATED, Json(Created { id })).into_response())
}

#[utoipa::path(post, path = "/api/v1/collections/{id}/follow", tag = "collections", params(("id" = String, Path, description = "An entry or collection id (bs58check)")), responses((status = 200, description = "{followed: true}")))]
async fn follow(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    set_followed(&state, &id, true).await?;
    Ok(Json(Followed { followed: true }).into_response())
}

#[utoipa::path(delete, path = "/api/v1/collections/{id}/follow", tag = "collections", params(("id" = String, Path, description = "An entry or collection id (bs58check)")), responses((status = 200, description = "{followed: false}")))]
async fn unfollow(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    set_followed(&state, &id, false).await?;
    Ok(Json(Followed { followed: false }).into_response())
}

#[utoipa::path(get, path = "/api/v1/entries", tag = "entries", params(("collection" = Option<String>, Query, description = "a collection id or name"), ("kind" = Option<String>, Query, description = "practice, history or resource"), ("tag" = Option<String>, Query), ("lang" = Option<String>, Query, description = "BCP 47; qu also matches Kichwa's individual codes"), ("q" = Option<String>, Query, description = "full-text search: hits by relevance with score and snippet"), ("place" = Option<String>, Query, description = "a place name, with q"), ("limit" = Option<u32>, Query, description = "1..=500, default 50"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page; with q, at most 10000")), responses((status = 200, description = "{entries: [...], next_cursor}"), (status = 400, description = "bad_request")))]
async fn list_entries(
    State(state): State<AppState>,
    headers: HeaderMap,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    raw: RawQuery,
) -> ApiResult<Response> {
    let params: ListParams = query(raw.0.as_deref())?;
    let visibility = state.access.visibility(&headers, client.ip());
    Ok(Json(queries::list_entries(
        &state.store,
        Some(&state.search),
        &params,
        visibility,
    )?)
    .into_response())
}

#[utoipa::path(post, path = "/api/v1/entries", tag = "entries", request_body(content = Object, description = "{collection, kind, title, body, license, lang?, tags?, subjects?, place?, authors?, consent?, private?, attachments?}", content_type = "application/json"), responses((status = 201, description = "{id}"), (status = 400, description = "bad_request"), (status = 403, description = "forbidden: no contributor code"), (status = 413, description = "too_large"), (status = 422, description = "refused by policy")))]
async fn create_entry(
    State(state): State<AppState>,
    JsonBody(new): JsonBody<NewEntry>,
) -> ApiResult<Response> {
    let id = state.handle.create_entry(new).await?;
    Ok((StatusCode::CREATED, Json(Created { id })).into_response())
}

#[utoipa::path(get, path = "/api/v1/entries/{id}", tag = "entries", params(("id" = String, Path, description = "An entry or collection id (bs58check)")), responses((status = 200, description = "the entry"), (status = 400, description = "malformed_id"), (status = 404, description = "not_found")))]
async fn get_entry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
) -> ApiResult<Response> {
    let visibility = state.access.visibility(&headers, client.ip());
    Ok(Json(queries::entry(
        &state.store,
        &queries::parse_id(&id)?,
        visibility,
    )?)
    .into_response())
}

#[utoipa::path(get, path = "/api/v1/entries/{id}/history", tag = "entries", params(("id" = String, Path, description = "An entry or collection id (bs58check)")), responses((status = 200, description = "{changes: [{hash, time, key, name, fields}]}, newest first"), (status = 404, description = "not_found")))]
async fn entry_history(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
) -> ApiResult<Response> {
    let visibility = state.access.visibility(&headers, client.ip());
    Ok(
        Json(queries::history(&state.store, &queries::parse_id(&id)?, visibility)?.1)
            .into_response(),
    )
}

#[utoipa::path(patch, path = "/api/v1/entries/{id}", tag = "entries", params(("id" = String, Path, description = "An entry or collection id (bs58check)")), request_body(content = Object, description = "the fields to replace", content_type = "application/json"), responses((status = 200, description = "the entry"), (status = 422, description = "immutable_field and other refusals")))]
async fn patch_entry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<EntryPatch>,
) -> ApiResult<Response> {
    let id = queries::parse_id(&id)?;
    Ok(Json(state.handle.patch_entry(id, patch).await?).into_response())
}

#[derive(Deserialize, Default)]
struct DeleteBody {
    #[serde(default)]
    reason: Option<String>,
}

#[utoipa::path(delete, path = "/api/v1/entries/{id}", tag = "entries", params(("id" = String, Path, description = "An entry or collection id (bs58check)"), ("reason" = Option<String>, Query)), responses((status = 200, description = "{deleted, tombstone}")))]
async fn delete_entry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    raw: RawQuery,
    CappedBytes(body): CappedBytes,
) -> ApiResult<Response> {
    let from_query: DeleteBody = query(raw.0.as_deref())?;
    let from_body: DeleteBody = if body.iter().all(u8::is_ascii_whitespace) {
        DeleteBody::default()
    } else {
        parse_json(&body)?
    };
    let reason = from_body.reason.or(from_query.reason).unwrap_or_default();
    let stone = state
        .handle
        .delete_entry(queries::parse_id(&id)?, reason)
        .await?;
    Ok(Json(Deleted::from(stone)).into_response())
}

#[utoipa::path(get, path = "/metrics", tag = "node", responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text")))]
async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.net.metrics_text();
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}

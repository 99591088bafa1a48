//! The blob routes: uploads streamed to disk under the size limit, and downloads streamed from
//! disk with HTTP Range support and headers that keep uploaded HTML or SVG from ever running
//! script in the pages' origin.

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minga_protocol::BlobHash;
use serde_json::json;

use crate::blobs::mime;
use crate::http::body::declared_over;
use crate::http::upload::receive;
use crate::http::{ApiResult, AppState};
use crate::{BlobError, Error};

/// Bytes read from disk per piece of a streamed response.
const READ_BYTES: u64 = 256 * 1024;

/// Sent with every blob: no sniffing, no script, no plugins, no same-origin access.
const CSP: &str = "sandbox; default-src 'none'";

/// `POST /api/v1/blobs`: the raw body becomes a blob -> 201 `{hash, size, mime}`.
#[utoipa::path(post, path = "/api/v1/blobs", tag = "blobs", request_body(content = Vec<u8>, description = "the raw bytes", content_type = "application/octet-stream"), responses((status = 201, description = "{hash, size, mime}"), (status = 413, description = "over the blob limit")))]
pub async fn add(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let limit = state.limits.max_blob_bytes;
    if declared_over(&headers, limit) {
        return Err(Error::from(BlobError::TooLarge { limit }).into());
    }
    let added = receive(&state, body.into_data_stream()).await?;
    let body = added;
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

/// `GET /api/v1/blobs`: every blob held or being fetched, and the transfer figures.
#[utoipa::path(get, path = "/api/v1/blobs", tag = "blobs", responses((status = 200, description = "{blobs: [{hash, size, have, complete, mime}], transfers}")))]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
) -> ApiResult<Response> {
    let visibility = state.access.visibility(&headers, client.ip());
    let mut blobs = Vec::new();
    for (hash, r) in state.store.blobs().map_err(Error::from)? {
        if visibility.shows_blob(&state.store, &hash)? {
            blobs.push(json!({"hash": hash, "size": r.size, "have": r.have, "complete": r.complete, "mime": r.mime}));
        }
    }
    // Transfers are of blobs peers sent entries for, which were shareable to be sent.
    let progress = serde_json::to_value(&*state.blobs.progress()).unwrap_or_default();
    Ok(axum::Json(json!({"blobs": blobs, "transfers": progress})).into_response())
}

/// `GET /api/v1/blobs/{hash}`: the bytes of a complete blob, or the range asked for.
#[utoipa::path(get, path = "/api/v1/blobs/{hash}", tag = "blobs", params(("hash" = String, Path, description = "BLAKE3, lowercase hex")), responses((status = 200, description = "the bytes"), (status = 206, description = "the range asked for"), (status = 404, description = "not held"), (status = 416, description = "range not satisfiable")))]
pub async fn get(
    State(state): State<AppState>,
    Path(hash): Path<String>,
    headers: HeaderMap,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
) -> ApiResult<Response> {
    let hash: BlobHash = hash.parse().map_err(Error::from)?;
    if !state
        .access
        .visibility(&headers, client.ip())
        .shows_blob(&state.store, &hash)?
    {
        return Err(Error::from(BlobError::NotFound(hash)).into());
    }
    let (file, record) = state.blobs.open_data(&hash).map_err(Error::from)?;
    let size = record.size;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_range(v, size));
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, size),
        Some(Some((start, end))) => (StatusCode::PARTIAL_CONTENT, start, end),
        Some(None) => {
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_RANGE, value(&format!("bytes */{size}")));
            safety_headers(response.headers_mut(), &record.mime);
            return Ok(response);
        }
    };
    let mut response = Response::new(stream_file(file, start, end));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, value(&(end - start).to_string()));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::ETAG, value(&format!("\"{hash}\"")));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        headers.insert(
            header::CONTENT_RANGE,
            value(&format!("bytes {start}-{}/{size}", end - 1)),
        );
    }
    safety_headers(headers, &record.mime);
    Ok(response)
}

/// Content type, nosniff, the sandboxing CSP, and a download for anything not media.
fn safety_headers(headers: &mut HeaderMap, mime: &str) {
    let content_type = if mime.is_empty() {
        "application/octet-stream"
    } else {
        mime
    };
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    let disposition = if mime::is_inline(content_type) {
        "inline"
    } else {
        "attachment"
    };
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static(disposition),
    );
}

fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("header values built from numbers and hex")
}

/// The byte range `start..end` of a single-range `Range` header, or `None` when it cannot be
/// satisfied. Multiple ranges are answered with the first.
pub(crate) fn parse_range(header: &str, size: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    let first = spec.split(',').next()?.trim();
    let (from, to) = first.split_once('-')?;
    let (from, to) = (from.trim(), to.trim());
    let (start, end) = if from.is_empty() {
        let suffix: u64 = to.parse().ok()?;
        (size.saturating_sub(suffix), size)
    } else {
        let start: u64 = from.parse().ok()?;
        let end = if to.is_empty() {
            size
        } else {
            to.parse::<u64>().ok()?.saturating_add(1).min(size)
        };
        (start, end)
    };
    (start < end && start < size).then_some((start, end))
}

/// The bytes `start..end` of `file`, read off the async threads piece by piece.
fn stream_file(file: File, start: u64, end: u64) -> Body {
    let file = Arc::new(file);
    let pieces = futures::stream::unfold(start, move |at| {
        let file = Arc::clone(&file);
        async move {
            if at >= end {
                return None;
            }
            let len = READ_BYTES.min(end - at) as usize;
            let read = tokio::task::spawn_blocking(move || {
                let mut buffer = vec![0u8; len];
                file.read_exact_at(&mut buffer, at).map(|()| buffer)
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
            match read {
                Ok(buffer) => Some((Ok(Bytes::from(buffer)), at + len as u64)),
                Err(e) => Some((Err(e), end)),
            }
        }
    });
    Body::from_stream(pieces)
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_parse_like_browsers_send_them() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some((0, 100)));
        assert_eq!(parse_range("bytes=900-", 1000), Some((900, 1000)));
        assert_eq!(parse_range("bytes=-100", 1000), Some((900, 1000)));
        assert_eq!(parse_range("bytes=990-2000", 1000), Some((990, 1000)));
        assert_eq!(parse_range("bytes=0-0,5-9", 1000), Some((0, 1)));
        assert_eq!(parse_range("bytes=1000-", 1000), None);
        assert_eq!(parse_range("bytes=5-1", 1000), None);
        assert_eq!(parse_range("items=0-1", 1000), None);
        assert_eq!(parse_range("bytes=x-1", 1000), None);
    }
}

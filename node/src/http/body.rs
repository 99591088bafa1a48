//! Request bodies read under a limit. Past the limit the rest of the body is read and dropped,
//! up to a bound, before the 413 goes out: most clients send their whole body before they read
//! the answer, and a server that closes on unread bytes resets the connection, so the client
//! would see a broken connection instead of the 413 that says what went wrong.

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;

use super::{ApiError, ApiResult, MAX_REQUEST_BYTES};
use crate::Error;

/// Bytes read and dropped past a limit before answering 413. A body declared larger than its
/// limit plus this is refused at once.
pub(crate) const DRAIN_BYTES: u64 = 16 * 1024 * 1024;

/// Reads and drops up to `budget` bytes of a refused body; answers what is left of the budget.
pub(crate) async fn drain<E>(stream: impl Stream<Item = Result<Bytes, E>>, budget: u64) -> u64 {
    let mut stream = std::pin::pin!(stream);
    let mut left = budget;
    while left > 0 {
        match stream.next().await {
            Some(Ok(chunk)) => left = left.saturating_sub(chunk.len() as u64),
            _ => break,
        }
    }
    left
}

/// Reads and drops the fields left in a refused multipart form, within [`DRAIN_BYTES`] in all.
pub(crate) async fn drain_fields(parts: &mut Multipart) {
    let mut left = DRAIN_BYTES;
    while left > 0 {
        match parts.next_field().await {
            Ok(Some(field)) => left = drain(field, left).await,
            _ => break,
        }
    }
}

/// Whether a request's Content-Length is past `limit` by more than would be drained.
pub(crate) fn declared_over(request_headers: &axum::http::HeaderMap, limit: u64) -> bool {
    request_headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|len| len > limit.saturating_add(DRAIN_BYTES))
}

/// A whole request body of at most [`MAX_REQUEST_BYTES`]; a larger one is a 413.
pub async fn read_capped(request: Request) -> Result<Bytes, Error> {
    let too_large = || {
        Error::TooLarge(format!(
            "the request body is over {MAX_REQUEST_BYTES} bytes"
        ))
    };
    if declared_over(request.headers(), MAX_REQUEST_BYTES as u64) {
        return Err(too_large());
    }
    let mut stream = request.into_body().into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::BadRequest(format!("reading the body: {e}")))?;
        if bytes.len() + chunk.len() > MAX_REQUEST_BYTES {
            drain(stream, DRAIN_BYTES).await;
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(bytes))
}

/// A request body under [`MAX_REQUEST_BYTES`], as raw bytes.
pub struct CappedBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for CappedBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        Ok(CappedBytes(read_capped(request).await?))
    }
}

/// A JSON body: malformed JSON, a missing field or a wrong type is a 400, an oversized body a
/// 413, whatever the Content-Type says (curl's `-d` sends a form type).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        parse_json(&read_capped(request).await?).map(JsonBody)
    }
}

pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        let what = if e.is_data() {
            "invalid request"
        } else {
            "malformed JSON"
        };
        Error::BadRequest(format!("{what}: {e}")).into()
    })
}

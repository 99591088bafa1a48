//! The web pages people open on their phones over the info-centre's Wi-Fi: server-rendered
//! HTML (no JavaScript), one small stylesheet compiled into the binary, in Spanish, Kichwa or
//! English. Pages read through the same [`queries`] as the API, so they show exactly what the
//! API would, to the same reader (see [`queries::Visibility`]).
//!
//! Every page carries a Content-Security-Policy that allows no script at all and loads images
//! and audio only from this node, so even a sanitiser bug could not run code.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::Markup;
use serde::Deserialize;

use crate::Error;
use crate::blobs::{BlobError, ThumbnailError};
use crate::http::{ApiError, AppState};
use crate::queries::{self, ListParams, Listing};

pub(crate) mod forms;
mod i18n;
pub(crate) mod markdown;
mod operator;
pub(crate) mod pages;
mod qr;

pub use i18n::Ui;
use pages::Frame;

/// The policy of every page: nothing but this node's own styles, images and audio.
const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; media-src 'self'; \
                        form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The cookie that keeps the language chosen with the switch.
const UI_COOKIE: &str = "minga_ui";

/// Entries on the home page.
const RECENT: usize = 20;

const STYLE: &str = include_str!("web/style.css");

/// The pages' routes; `http::router` serves them beside the API's.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/collections/{id}", get(collection))
        .route("/entries/{id}", get(entry))
        .route("/search", get(search))
        .route("/poster", get(poster))
        .route(
            "/operator",
            get(operator::page)
                .post(operator::post)
                .layer(axum::middleware::map_response(operator::no_store)),
        )
        .route("/login", get(forms::login_page).post(forms::login))
        .route(
            "/entries/new",
            get(forms::new_entry_page).post(forms::create_entry),
        )
        .route("/entries/{id}/history", get(history))
        .route(
            "/entries/{id}/edit",
            get(forms::edit_entry_page).post(forms::edit_entry),
        )
        .route("/thumbnails/{size}/{hash}", get(thumbnail))
        .route("/style.css", get(style))
        // The forms stream their files to the blob store, each under the blob limit, and bound
        // their text themselves: the API's 2 MiB body limit is not theirs.
        .route_layer(DefaultBodyLimit::disable())
}

/// The query parameters any page understands.
#[derive(Debug, Default, Deserialize)]
struct PageParams {
    /// The language switch.
    ui: Option<String>,
    cursor: Option<String>,
    q: Option<String>,
    kind: Option<String>,
    lang: Option<String>,
    place: Option<String>,
}

/// A rendered page with its status, and the language cookie when the switch was used.
struct Page {
    status: StatusCode,
    markup: Markup,
    /// `Set-Cookie` values: the language chosen with the switch, a form's CSRF token.
    cookies: Vec<String>,
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.markup.into_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_CSP),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        for cookie in self.cookies {
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                headers.append(header::SET_COOKIE, value);
            }
        }
        response
    }
}

/// Parses the query, picks the language and builds the frame of a page at `path`.
fn frame(headers: &HeaderMap, raw: Option<&str>, path: &str) -> (Frame, PageParams, Option<Ui>) {
    let params: PageParams = serde_urlencoded::from_str(raw.unwrap_or("")).unwrap_or_default();
    let switched = params.ui.as_deref().and_then(Ui::parse);
    let ui = switched.or_else(|| cookie_ui(headers)).unwrap_or_else(|| {
        let accept = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Ui::from_accept_language(accept)
    });
    // The switch links back here, with every parameter but `ui`.
    let kept: Vec<(String, String)> =
        serde_urlencoded::from_str::<Vec<(String, String)>>(raw.unwrap_or(""))
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k != "ui")
            .collect();
    let here = if kept.is_empty() {
        path.to_owned()
    } else {
        format!(
            "{path}?{}",
            serde_urlencoded::to_string(&kept).unwrap_or_default()
        )
    };
    let frame = Frame {
        ui,
        here,
        q: params.q.clone().unwrap_or_default(),
    };
    (frame, params, switched)
}

fn cookie_ui(headers: &HeaderMap) -> Option<Ui> {
    crate::http::access::cookie(headers, UI_COOKIE).and_then(Ui::parse)
}

/// The cookie that remembers the language chosen with the switch.
fn ui_cookie(ui: Ui) -> String {
    format!(
        "{UI_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax",
        ui.code()
    )
}

fn page(frame: &Frame, remember: Option<Ui>, result: Result<Markup, Error>) -> Page {
    match result {
        Ok(markup) => Page {
            status: StatusCode::OK,
            markup,
            cookies: remember.map(ui_cookie).into_iter().collect(),
        },
        Err(error) => {
            if error.status() >= 500 {
                tracing::error!("rendering a page failed: {error}");
            }
            Page {
                status: StatusCode::from_u16(error.status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                markup: pages::error(frame, &error.to_string()),
                cookies: remember.map(ui_cookie).into_iter().collect(),
            }
        }
    }
}

async fn home(
    State(state): State<AppState>,
    headers: HeaderMap,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    raw: RawQuery,
) -> Page {
    let (frame, _, remember) = frame(&headers, raw.0.as_deref(), "/");
    let result = (|| {
        let collections = queries::list_collections(&state.store)?.collections;
        let params = ListParams {
            limit: Some(RECENT.to_string()),
            ..ListParams::default()
        };
        let visibility = state.access.visibility(&headers, client.ip());
        let recent = entries_of(queries::list_entries(
            &state.store,
            None,
            &params,
            visibility,
        )?)
        .0;
        Ok(pages::home(&frame, &collections, &recent))
    })();
    page(&frame, remember, result)
}

async fn collection(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    raw: RawQuery,
) -> Page {
    let (frame, params, remember) =
        frame(&headers, raw.0.as_deref(), &format!("/collections/{id}"));
    let result = (|| {
        let id = queries::resolve_collection(&state.store, &id)?;
        let collection = state
            .store
            .collection(&id)?
            .ok_or_else(|| Error::NotFound(format!("no collection {id}")))?;
        let list = ListParams {
            collection: Some(id.to_string()),
            cursor: params.cursor.clone(),
            ..ListParams::default()
        };
        let visibility = state.access.visibility(&headers, client.ip());
        let listing = queries::list_entries(&state.store, None, &list, visibility)?;
        let (entries, more) = entries_of(listing);
        Ok(pages::collection(&frame, &collection, &entries, more))
    })();
    page(&frame, remember, result)
}

async fn entry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    raw: RawQuery,
) -> Page {
    let (frame, _, remember) = frame(&headers, raw.0.as_deref(), &format!("/entries/{id}"));
    let visibility = state.access.visibility(&headers, client.ip());
    let result = queries::parse_id(&id)
        .and_then(|id| queries::entry(&state.store, &id, visibility))
        .map(|e| pages::entry(&frame, &e));
    page(&frame, remember, result)
}

async fn history(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    raw: RawQuery,
) -> Page {
    let path = format!("/entries/{id}/history");
    let (frame, _, remember) = frame(&headers, raw.0.as_deref(), &path);
    let visibility = state.access.visibility(&headers, client.ip());
    let result = queries::parse_id(&id)
        .and_then(|id| queries::history(&state.store, &id, visibility))
        .map(|(entry, history)| pages::history(&frame, &entry, &history.changes));
    page(&frame, remember, result)
}

/// `/thumbnails/{160|640}/{hash}`: a JPEG of an image attachment, at most that many pixels on
/// its longest side, made once and then served from the cache.
async fn thumbnail(
    State(state): State<AppState>,
    Path((size, hash)): Path<(String, String)>,
    headers: HeaderMap,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
) -> Response {
    let Some(size) = pages::Size::parse(&size) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Ok(hash) = hash.parse::<minga_protocol::BlobHash>() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match state
        .access
        .visibility(&headers, client.ip())
        .shows_blob(&state.store, &hash)
    {
        Ok(true) => {}
        Ok(false) => return StatusCode::NOT_FOUND.into_response(),
        Err(error) => return ApiError::from(error).into_response(),
    }
    match state.blobs.thumbnail_async(hash, size.pixels()).await {
        Ok(jpeg) => (
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            jpeg,
        )
            .into_response(),
        // No thumbnail; the original is still served at /api/v1/blobs/{hash}.
        Err(ThumbnailError::Undecodable { .. } | ThumbnailError::TooLarge { .. }) => {
            StatusCode::UNPROCESSABLE_ENTITY.into_response()
        }
        Err(ThumbnailError::Blob(BlobError::NotFound(_)) | ThumbnailError::NotAnImage(_)) => {
            StatusCode::NOT_FOUND.into_response()
        }
        Err(error) => {
            tracing::error!("making a thumbnail failed: {error}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    raw: RawQuery,
) -> Page {
    let (frame, params, remember) = frame(&headers, raw.0.as_deref(), "/search");
    let filters: Vec<(&str, String)> = [
        ("kind", &params.kind),
        ("lang", &params.lang),
        ("place", &params.place),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.clone().filter(|v| !v.is_empty()).map(|v| (name, v)))
    .collect();
    if frame.q.trim().is_empty() {
        let markup = pages::search(&frame, &filters, None, None, None);
        return page(&frame, remember, Ok(markup));
    }
    let list = ListParams {
        q: params.q.clone(),
        kind: params.kind.clone(),
        lang: params.lang.clone(),
        place: params.place.clone(),
        cursor: params.cursor.clone(),
        ..ListParams::default()
    };
    let visibility = state.access.visibility(&headers, client.ip());
    let markup = match queries::list_entries(&state.store, Some(&state.search), &list, visibility) {
        Ok(Listing::Hits(found)) => pages::search(
            &frame,
            &filters,
            Some(&found.entries),
            found.next_cursor,
            None,
        ),
        Ok(Listing::Entries(_)) => unreachable!("a query with q answers hits"),
        // Refused input is shown on the page, with the form to try again.
        Err(error) if error.status() == 400 => {
            pages::search(&frame, &filters, None, None, Some(error.to_string()))
        }
        Err(error) => return page(&frame, remember, Err(error)),
    };
    page(&frame, remember, Ok(markup))
}

/// `/poster`: the sheet to print, pointing phones at the URLs this node is served at.
async fn poster(State(state): State<AppState>, headers: HeaderMap, raw: RawQuery) -> Page {
    let (frame, _, remember) = frame(&headers, raw.0.as_deref(), "/poster");
    // Per request: the centre's router may have handed this machine a new address.
    let urls = crate::http::lan::urls(state.api_addr);
    let markup = pages::poster(&frame, &urls, state.api_addr.ip().is_loopback());
    page(&frame, remember, Ok(markup))
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        STYLE,
    )
        .into_response()
}

/// The entries of a plain listing and its next cursor.
fn entries_of(listing: Listing) -> (Vec<minga_protocol::Entry>, Option<String>) {
    match listing {
        Listing::Entries(page) => (page.entries, page.next_cursor),
        Listing::Hits(page) => (
            page.entries.into_iter().map(|hit| hit.entry).collect(),
            page.next_cursor,
        ),
    }
}

#[cfg(test)]
mod tests;

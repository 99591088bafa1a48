//! `/operator`: the page of whoever runs the info-centre's machine: the node's status and disk
//! use, the peers it talks to and the ones blocked, the collections it follows and those heard
//! of on the network (follow, unfollow, create), the contributor code to tell contributors, and
//! bundles written to or read from a removable drive (one mounted inside a bundle directory; see
//! [`BundleDirs::places`]).
//!
//! Only the operator may open it or post to it, as
//! [`Access::is_operator`](crate::http::access::Access::is_operator) decides for the bundle
//! routes; on the LAN the operator enters the data dir's `api.token` once and keeps a session.
//! Every form posts to `/operator` with the CSRF token and comes back to the page (303), or, for
//! a bundle, shows the page again with what was written or read.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use maud::{Markup, html};
use minga_protocol::collection::DEFAULT_LICENSE;
use minga_protocol::license::OPEN_LICENSES;
use minga_protocol::{Collection, NewCollection};
use serde::Deserialize;

use super::forms::{cookies, csrf, form_page, genuine, retry_after, see_other};
use super::frame;
use super::pages::{Frame, display_title, when};
use crate::Error;
use crate::bundle::{ExportRequest, ExportSummary, ImportRequest, ImportSummary};
use crate::http::AppState;
use crate::http::access::OPERATOR_COOKIE;
use crate::http::body::CappedBytes;
use crate::http::bundle_dirs::{BundleDirs, Place};
use crate::http::operations::{self, export_bundle, import_bundle};
use crate::network::PeerInfo;
use crate::queries::Status;

const PATH: &str = "/operator";

/// What the page shows, read once per request.
struct Overview {
    status: Status,
    /// Bytes of the files in the data dir.
    disk: u64,
    contributor_code: Option<String>,
    peers: Vec<(String, PeerInfo)>,
    blocked: Vec<String>,
    followed: Vec<Collection>,
    /// Collections heard of on the network and not followed here.
    heard: Vec<Collection>,
    /// The bundle directories and removable drives.
    places: Vec<Place>,
    /// The bundles in the places allowed.
    bundles: Vec<PathBuf>,
}

impl Overview {
    async fn read(state: &AppState) -> Result<Overview, Error> {
        let status = operations::node_status(state)?;
        let dir = state.data_dir.clone();
        let bundle_dirs = state.bundle_dirs.clone();
        // Walks of the data dir (attachments too) and the drives: off the async threads.
        let (disk, places, bundles) = tokio::task::spawn_blocking(move || {
            let places = bundle_dirs.places(&crate::http::drives::removable());
            let bundles = BundleDirs::bundles(&places);
            (crate::metrics::dir_bytes(&dir), places, bundles)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
        let mut followed = Vec::new();
        for id in state.store.followed()? {
            // A collection followed before any of it arrived has no document yet.
            let collection = state.store.collection(&id)?.unwrap_or_else(|| Collection {
                id,
                name: id.to_string(),
                title: String::new(),
                description: String::new(),
                license: String::new(),
                maintainers: Vec::new(),
                entries: 0,
            });
            followed.push(collection);
        }
        let net = state.net.status.read().expect("status lock");
        let heard = net
            .available
            .values()
            .filter(|c| followed.iter().all(|f| f.id != c.id))
            .cloned()
            .collect();
        Ok(Overview {
            status,
            disk,
            contributor_code: state.access.contributor_code().map(str::to_owned),
            peers: net.peers.clone().into_iter().collect(),
            blocked: state.store.blocked()?,
            followed,
            heard,
            places,
            bundles,
        })
    }
}

/// The fields of every form on the page; `action` says which.
#[derive(Debug, Default, Deserialize)]
struct OperatorForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
    /// A collection or peer id.
    #[serde(default)]
    id: String,
    /// The data dir's token, to log in.
    #[serde(default)]
    token: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    license: String,
    /// The collection to export; all when empty.
    #[serde(default)]
    collection: String,
    /// The directory to export to, and the bundle's file name there.
    #[serde(default)]
    dir: String,
    #[serde(default)]
    file: String,
}

pub(super) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: RawQuery,
) -> Response {
    let (frame, _, ui) = frame(&headers, raw.0.as_deref(), PATH);
    let (token, set) = csrf(&headers);
    let cookies = cookies(ui, set);
    if !state.access.is_operator(&headers) {
        return refused(&frame, StatusCode::FORBIDDEN, &token, cookies, None);
    }
    overview(&state, &frame, StatusCode::OK, &token, cookies, None).await
}

pub(super) async fn post(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    CappedBytes(body): CappedBytes,
) -> Response {
    let (frame, _, _) = frame(&headers, None, PATH);
    let form: OperatorForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let (token, set) = csrf(&headers);
    let cookies = cookies(None, set);
    let operator = state.access.is_operator(&headers);
    if !genuine(&headers, &form.csrf) {
        let expired = Some(frame.t("form_expired"));
        if operator {
            return overview(
                &state,
                &frame,
                StatusCode::FORBIDDEN,
                &token,
                cookies,
                expired.map(Notice::Refused),
            )
            .await;
        }
        return refused(&frame, StatusCode::FORBIDDEN, &token, cookies, expired);
    }
    if form.action == "login" {
        return match state.access.operator_login(&form.token, client.ip()) {
            Ok(Some(session)) => {
                let set = format!("{OPERATOR_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict");
                see_other(PATH, vec![set])
            }
            Ok(None) => refused(
                &frame,
                StatusCode::FORBIDDEN,
                &token,
                cookies,
                Some(frame.t("wrong_key")),
            ),
            Err(error) => {
                let message = error.to_string();
                let page = refused(
                    &frame,
                    StatusCode::TOO_MANY_REQUESTS,
                    &token,
                    cookies,
                    Some(&message),
                );
                retry_after(page, &error)
            }
        };
    }
    if !operator {
        return refused(&frame, StatusCode::FORBIDDEN, &token, cookies, None);
    }
    match act(&state, &frame, form).await {
        Ok(None) => see_other(PATH, cookies),
        Ok(Some(done)) => {
            overview(
                &state,
                &frame,
                StatusCode::OK,
                &token,
                cookies,
                Some(Notice::Done(&done)),
            )
            .await
        }
        Err(error) => {
            let status =
                StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = error.to_string();
            let notice = Some(Notice::Refused(&message));
            overview(&state, &frame, status, &token, cookies, notice).await
        }
    }
}

/// Keeps the page, which shows the contributor code, out of every cache.
pub(super) async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Carries out a posted form, through the same calls as the API's routes; a bundle answers
/// what it wrote or read, to show.
async fn act(state: &AppState, frame: &Frame, form: OperatorForm) -> Result<Option<String>, Error> {
    match form.action.as_str() {
        "export" => {
            let file = form.file.trim();
            if file.is_empty() || file.contains('/') {
                return Err(Error::BadRequest(format!("{file:?} is not a file name")));
            }
            let request = ExportRequest {
                all: form.collection.is_empty(),
                collections: Some(form.collection.clone())
                    .filter(|c| !c.is_empty())
                    .into_iter()
                    .collect(),
                out: Path::new(&form.dir).join(file),
                ..ExportRequest::default()
            };
            let summary = export_bundle(state, request).await?;
            Ok(Some(exported(frame, &summary)))
        }
        "import" => {
            let request = ImportRequest {
                file: PathBuf::from(form.id),
                assume_free_bytes: None,
            };
            let summary = import_bundle(state, request).await?;
            Ok(Some(imported(frame, &summary)))
        }
        _ => simple(state, form).await.map(|()| None),
    }
}

/// The forms that change one thing and come back to the page.
async fn simple(state: &AppState, form: OperatorForm) -> Result<(), Error> {
    match form.action.as_str() {
        "follow" => operations::set_followed(state, &form.id, true).await,
        "unfollow" => operations::set_followed(state, &form.id, false).await,
        "block" => operations::set_blocked(state, &form.id, true).await,
        "unblock" => operations::set_blocked(state, &form.id, false).await,
        "create" => {
            let some = |s: String| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
            let new = NewCollection {
                name: form.name.trim().to_owned(),
                title: some(form.title),
                description: some(form.description),
                license: some(form.license),
            };
            state.handle.create_collection(new).await.map(|_| ())
        }
        other => Err(Error::BadRequest(format!("no operator action {other:?}"))),
    }
}

async fn overview(
    state: &AppState,
    frame: &Frame,
    status: StatusCode,
    token: &str,
    cookies: Vec<String>,
    notice: Option<Notice<'_>>,
) -> Response {
    match Overview::read(state).await {
        Ok(overview) => {
            let content = render(frame, &overview, token, notice);
            form_page(frame, status, frame.t("operator"), cookies, content)
        }
        Err(error) => {
            tracing::error!("reading the operator's overview failed: {error}");
            let content =
                html! { h1 { (frame.t("operator")) } p role="alert" { (error.to_string()) } };
            form_page(
                frame,
                StatusCode::INTERNAL_SERVER_ERROR,
                frame.t("operator"),
                cookies,
                content,
            )
        }
    }
}

/// "Bundle written: /media/usb/x.minga — 20 entries, 3 files, 1.2 MB".
fn exported(frame: &Frame, s: &ExportSummary) -> String {
    format!(
        "{}: {} — {} {}, {} {}, {}",
        frame.t("exported"),
        s.parts.join(", "),
        s.entries,
        frame.t("entries"),
        s.blobs,
        frame.t("files_count"),
        size(s.bytes_written)
    )
}

/// "Bundle read: entries 3 new, 1 changed, 16 unchanged; 2 files".
fn imported(frame: &Frame, s: &ImportSummary) -> String {
    format!(
        "{}: {} {} {}, {} {}, {} {}; {} {}",
        frame.t("imported"),
        frame.t("entries"),
        s.entries.new,
        frame.t("new"),
        s.entries.updated,
        frame.t("changed"),
        s.entries.unchanged,
        frame.t("unchanged"),
        s.blobs_added,
        frame.t("files_count"),
    )
}

/// The page for whoever is not (yet) the operator: what it is, and the token's form.
fn refused(
    frame: &Frame,
    status: StatusCode,
    token: &str,
    cookies: Vec<String>,
    message: Option<&str>,
) -> Response {
    let content = html! {
        h1 { (frame.t("operator")) }
        p { (frame.t("operator_hint")) }
        @if let Some(message) = message { p role="alert" { (message) } }
        form method="post" action=(PATH) {
            input type="hidden" name="csrf" value=(token);
            input type="hidden" name="action" value="login";
            label { (frame.t("operator_key")) " "
                input type="password" name="token" required autocomplete="current-password"; }
            " " button type="submit" { (frame.t("enter")) }
        }
    };
    form_page(frame, status, frame.t("operator"), cookies, content)
}

/// What the page says above the overview.
#[derive(Debug, Clone, Copy)]
enum Notice<'a> {
    /// What a bundle's export or import did.
    Done(&'a str),
    /// Why a form was refused.
    Refused(&'a str),
}

fn render(frame: &Frame, o: &Overview, token: &str, notice: Option<Notice<'_>>) -> Markup {
    let s = &o.status;
    html! {
        h1 { (frame.t("operator")) }
        @match notice {
            Some(Notice::Done(done)) => p.done role="status" { (done) },
            Some(Notice::Refused(why)) => p role="alert" { (why) },
            None => {},
        }
        section.operator {
            h2 { (frame.t("status")) }
            dl {
                dt { (frame.t("node_id")) } dd { code { (s.peer_id) } }
                dt { (frame.t("version")) } dd { (s.version) }
                dt { (frame.t("collections")) } dd { (s.collections) }
                dt { (frame.t("entries_count")) } dd { (s.entries) }
                dt { (frame.t("attachments")) } dd { (s.blobs.complete) " · " (size(s.blobs.bytes)) }
                dt { (frame.t("disk")) } dd { (size(o.disk)) }
                dt { (frame.t("traffic")) }
                dd { (frame.t("sent")) " " (size(s.bytes_sent)) " · " (frame.t("received")) " " (size(s.bytes_received)) }
            }
            h2 { (frame.t("code")) }
            @match &o.contributor_code {
                Some(code) => p { code.big { (code) } },
                None => p { (frame.t("no_code")) },
            }
            p { a href="/poster" { (frame.t("poster")) } }
            h2 { (frame.t("peers")) " (" (o.peers.len()) ")" }
            @if o.peers.is_empty() { p { (frame.t("none")) } }
            ul.peers {
                @for (peer, info) in &o.peers {
                    li {
                        code { (peer) }
                        div.meta { (frame.t("last_seen")) " " (when(info.last_seen))
                            " · " (frame.t("sent")) " " (size(info.bytes_sent))
                            " · " (frame.t("received")) " " (size(info.bytes_received))
                            @for address in &info.addresses { br; (address) } }
                        (button(token, "block", peer, frame.t("block")))
                    }
                }
            }
            h2 { (frame.t("blocked")) }
            @if o.blocked.is_empty() { p { (frame.t("none")) } }
            ul.peers {
                @for peer in &o.blocked {
                    li { code { (peer) } " " (button(token, "unblock", peer, frame.t("unblock"))) }
                }
            }
            h2 { (frame.t("followed")) }
            @if o.followed.is_empty() { p { (frame.t("none")) } }
            ul.peers {
                @for c in &o.followed {
                    li {
                        a href={ "/collections/" (c.id) } { (display_title(c)) }
                        " " span.meta { "(" (c.entries) " " (frame.t("entries")) ")" }
                        " " (button(token, "unfollow", &c.id.to_string(), frame.t("unfollow")))
                    }
                }
            }
            h2 { (frame.t("heard")) }
            @if o.heard.is_empty() { p { (frame.t("none")) } }
            ul.peers {
                @for c in &o.heard {
                    li {
                        (display_title(c))
                        @if !c.description.is_empty() { div.meta { (c.description) } }
                        (button(token, "follow", &c.id.to_string(), frame.t("follow")))
                    }
                }
            }
            h2 { (frame.t("new_collection")) }
            form.entry method="post" action=(PATH) {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="action" value="create";
                p { label { (frame.t("short_name")) br; input type="text" name="name" required; } }
                p { label { (frame.t("title")) br; input type="text" name="title" maxlength="200"; } }
                p { label { (frame.t("description")) br; textarea name="description" rows="3" {} } }
                p { label { (frame.t("license")) br;
                    select name="license" {
                        @for spdx in OPEN_LICENSES {
                            option value=(spdx) selected[spdx == DEFAULT_LICENSE] { (spdx) }
                        }
                    }
                } }
                button type="submit" { (frame.t("create")) }
            }
            (bundles(frame, o, token))
        }
    }
}

/// Export to and import from the bundle directories and the drives mounted in them.
fn bundles(frame: &Frame, o: &Overview, token: &str) -> Markup {
    let place_name = |p: &Place| {
        let path = p.path.display().to_string();
        if p.removable {
            format!("{path} (USB)")
        } else {
            path
        }
    };
    html! {
        h2 { (frame.t("bundles")) }
        p.meta { (frame.t("bundles_hint")) }
        form.entry.export method="post" action=(PATH) {
            input type="hidden" name="csrf" value=(token);
            input type="hidden" name="action" value="export";
            p { label { (frame.t("collection")) br;
                select name="collection" {
                    option value="" { (frame.t("all_collections")) }
                    @for c in &o.followed { option value=(c.id) { (display_title(c)) } }
                }
            } }
            p { label { (frame.t("drive")) br;
                select name="dir" {
                    @for p in o.places.iter().filter(|p| p.allowed) {
                        option value=(p.path.display()) selected[p.removable] { (place_name(p)) }
                    }
                }
            } }
            p { label { (frame.t("file_name")) br;
                input type="text" name="file" required value=(default_file_name()); } }
            button type="submit" { (frame.t("export")) }
        }
        @for p in o.places.iter().filter(|p| !p.allowed) {
            p.meta { (place_name(p)) ": " (frame.t("drive_not_allowed")) " "
                code { "--bundle-dir " (p.path.display()) } }
        }
        @if o.bundles.is_empty() { p { (frame.t("no_bundles")) } }
        ul.peers {
            @for bundle in &o.bundles {
                @let path = bundle.display().to_string();
                li { code { (path) } " " (button(token, "import", &path, frame.t("import"))) }
            }
        }
    }
}

/// `minga-2026-12-05.minga`, by this machine's clock.
fn default_file_name() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
    let day = when(now);
    format!("minga-{}.minga", day.get(..10).unwrap_or("bundle"))
}

/// A one-button form posting `action` on `id`.
fn button(token: &str, action: &str, id: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action=(PATH) {
            input type="hidden" name="csrf" value=(token);
            input type="hidden" name="action" value=(action);
            input type="hidden" name="id" value=(id);
            button type="submit" { (label) }
        }
    }
}

/// Bytes in decimal units, as disks are sold: `512 B`, `3.4 MB`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::size;

    #[test]
    fn sizes_read_in_decimal_units() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(999), "999 B");
        assert_eq!(size(1_500), "1.5 kB");
        assert_eq!(size(23_400_000), "23.4 MB");
        assert_eq!(size(7_000_000_000_000_000), "7000.0 TB");
    }
}

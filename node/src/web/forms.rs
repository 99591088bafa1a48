//! The forms that write: the contributor code asked once (then a session cookie; wrong codes
//! are throttled per client address as on the API), and adding
//! or editing an entry with its attachments (multipart uploads stored as blobs under the
//! node's blob size limit; over it the form comes back as a 413 that says the limit). Every form carries a CSRF token that must match the `minga_csrf` cookie
//! (double submit; the cookie is `SameSite=Strict`), and writes from another site's page are
//! refused by their `Origin` as the API refuses them.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, Multipart, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use minga_protocol::entry::{Attachment, AuthorInput, EntryPatch, NewEntry, PlaceInput};
use minga_protocol::license::OPEN_LICENSES;
use minga_protocol::{BlobHash, Entry};
use serde::Deserialize;

use super::i18n::Ui;
use super::pages::{self, Frame};
use super::{Page, frame};
use crate::Error;
use crate::http::access::{SESSION_COOKIE, cookie, random_hex, same, same_origin};
use crate::http::body::{CappedBytes, drain_fields, read_capped};
use crate::http::{AppState, MAX_REQUEST_BYTES};

/// The cookie holding the CSRF token that forms must echo.
const CSRF_COOKIE: &str = "minga_csrf";

/// The CSRF token of this browser, and the cookie to set when it had none.
pub(super) fn csrf(headers: &HeaderMap) -> (String, Option<String>) {
    match cookie(headers, CSRF_COOKIE) {
        Some(token) if token.len() == 64 => (token.to_owned(), None),
        _ => {
            let token = random_hex();
            let set = format!("{CSRF_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
            (token, Some(set))
        }
    }
}

/// Whether a posted form is this node's own, sent from this browser.
pub(super) fn genuine(headers: &HeaderMap, posted: &str) -> bool {
    same_origin(headers) && cookie(headers, CSRF_COOKIE).is_some_and(|c| same(c, posted))
}

/// A path on this node, never another site: browsers read `//host`, `/\host` (and the same
/// with tabs or newlines inside, which they drop) as a host.
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path[1..].starts_with(['/', '\\'])
                && !path.chars().any(|c| c.is_control()) =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

pub(super) fn see_other(location: &str, cookies: Vec<String>) -> Response {
    let mut response = (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location.to_owned())],
    )
        .into_response();
    for set in cookies {
        if let Ok(value) = set.parse() {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

pub(super) fn form_page(
    frame: &Frame,
    status: StatusCode,
    title: &str,
    cookies: Vec<String>,
    content: Markup,
) -> Response {
    Page {
        status,
        markup: pages::layout(frame, title, content),
        cookies,
    }
    .into_response()
}

/// A page refusing too many wrong codes, with when to try again.
pub(super) fn retry_after(mut page: Response, error: &Error) -> Response {
    if let Error::TooManyAttempts(seconds) = error {
        page.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(*seconds));
    }
    page
}

#[derive(Debug, Default, Deserialize)]
struct LoginForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

fn login_form(frame: &Frame, token: &str, next: &str, message: Option<&str>) -> Markup {
    html! {
        h1 { (frame.t("code")) }
        p { (frame.t("code_hint")) }
        @if let Some(message) = message { p role="alert" { (message) } }
        form method="post" action="/login" {
            input type="hidden" name="csrf" value=(token);
            input type="hidden" name="next" value=(next);
            label { (frame.t("code")) " " input type="password" name="code" required autocomplete="current-password"; }
            " " button type="submit" { (frame.t("enter")) }
        }
    }
}

pub(super) async fn login_page(headers: HeaderMap, raw: RawQuery) -> Response {
    let (frame, _, ui) = frame(&headers, raw.0.as_deref(), "/login");
    let query: LoginForm =
        serde_urlencoded::from_str(raw.0.as_deref().unwrap_or("")).unwrap_or_default();
    let (token, set) = csrf(&headers);
    let next = local_path(query.next.as_deref());
    let content = login_form(&frame, &token, &next, None);
    form_page(
        &frame,
        StatusCode::OK,
        frame.t("code"),
        cookies(ui, set),
        content,
    )
}

pub(super) async fn login(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    CappedBytes(body): CappedBytes,
) -> Response {
    let (frame, _, _) = frame(&headers, None, "/login");
    let form: LoginForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let next = local_path(form.next.as_deref());
    let (token, set) = csrf(&headers);
    if !genuine(&headers, &form.csrf) {
        let content = login_form(&frame, &token, &next, Some(frame.t("form_expired")));
        return form_page(
            &frame,
            StatusCode::FORBIDDEN,
            frame.t("code"),
            cookies(None, set),
            content,
        );
    }
    match state.access.login(&form.code, client.ip()) {
        Err(refused) => {
            let content = login_form(&frame, &token, &next, Some(&refused.to_string()));
            let page = form_page(
                &frame,
                StatusCode::TOO_MANY_REQUESTS,
                frame.t("code"),
                cookies(None, set),
                content,
            );
            retry_after(page, &refused)
        }
        Ok(Some(session)) => {
            let set = format!("{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict");
            see_other(&next, vec![set])
        }
        Ok(None) => {
            let content = login_form(&frame, &token, &next, Some(frame.t("wrong_code")));
            form_page(
                &frame,
                StatusCode::FORBIDDEN,
                frame.t("code"),
                cookies(None, set),
                content,
            )
        }
    }
}

/// Files one form may carry.
const MAX_FILES: usize = 8;

/// The fields of the add and edit forms, as posted.
#[derive(Debug, Default, Clone)]
struct EntryForm {
    csrf: String,
    collection: String,
    kind: String,
    title: String,
    body: String,
    license: String,
    lang: String,
    tags: String,
    place: String,
    author: String,
    /// The edit form's attachments left ticked, by hash.
    keep: Vec<String>,
}

impl EntryForm {
    fn set(&mut self, name: &str, value: String) {
        match name {
            "csrf" => self.csrf = value,
            "collection" => self.collection = value,
            "kind" => self.kind = value,
            "title" => self.title = value,
            "body" => self.body = value.replace("\r\n", "\n"),
            "license" => self.license = value,
            "lang" => self.lang = value,
            "tags" => self.tags = value,
            "place" => self.place = value,
            "author" => self.author = value,
            "keep" => self.keep.push(value),
            _ => {}
        }
    }

    fn tag_list(&self) -> Vec<String> {
        self.tags
            .split(',')
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect()
    }

    fn into_new(self, attachments: Vec<Attachment>) -> NewEntry {
        let some = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        NewEntry {
            tags: self.tag_list(),
            lang: some(&self.lang),
            place: some(&self.place).map(PlaceInput::Name),
            authors: some(&self.author)
                .map(AuthorInput::Name)
                .into_iter()
                .collect(),
            collection: self.collection,
            kind: self.kind,
            title: self.title,
            body: self.body,
            license: self.license,
            subjects: Vec::new(),
            consent: Vec::new(),
            private: false,
            attachments,
        }
    }

    /// The edit form of an existing entry.
    fn of(entry: &Entry) -> EntryForm {
        EntryForm {
            collection: entry.collection.clone(),
            kind: entry.kind.clone(),
            title: entry.title.clone(),
            body: entry.body.clone(),
            license: entry.license.clone(),
            lang: entry.lang.clone(),
            tags: entry.tags.join(", "),
            place: entry
                .place
                .as_ref()
                .map(|p| p.name.clone())
                .unwrap_or_default(),
            author: String::new(),
            keep: entry.attachments.iter().map(|a| a.hash.clone()).collect(),
            csrf: String::new(),
        }
    }

    /// The patch that makes `entry` what the edit form shows; fields left as they were are
    /// not sent, so they are not rewritten.
    fn patch_of(&self, entry: &Entry, added: Vec<Attachment>) -> EntryPatch {
        let changed = |new: &str, old: &str| (new != old).then(|| new.to_owned());
        let place = self.place.trim();
        let old_place = entry.place.as_ref().map_or("", |p| p.name.as_str());
        let mut attachments: Vec<Attachment> = entry
            .attachments
            .iter()
            .filter(|a| self.keep.contains(&a.hash))
            .cloned()
            .collect();
        attachments.extend(added);
        EntryPatch {
            title: changed(&self.title, &entry.title),
            body: changed(&self.body, &entry.body),
            lang: changed(self.lang.trim(), &entry.lang),
            tags: Some(self.tag_list()).filter(|tags| *tags != entry.tags),
            place: (place != old_place).then(|| {
                if place.is_empty() {
                    serde_json::Value::Null
                } else {
                    serde_json::Value::String(place.to_owned())
                }
            }),
            attachments: Some(attachments).filter(|a| *a != entry.attachments),
            ..EntryPatch::default()
        }
    }
}

/// Which form is shown: adding to one of the collections, or editing an entry.
enum Target<'a> {
    New(&'a [minga_protocol::Collection]),
    Edit(&'a Entry),
}

impl Target<'_> {
    fn action(&self) -> String {
        match self {
            Target::New(_) => "/entries/new".to_owned(),
            Target::Edit(entry) => format!("/entries/{}/edit", entry.id),
        }
    }

    fn heading(&self) -> &'static str {
        match self {
            Target::New(_) => "add",
            Target::Edit(_) => "edit_entry",
        }
    }
}

fn entry_form(
    frame: &Frame,
    token: &str,
    target: &Target<'_>,
    form: &EntryForm,
    limit: u64,
    message: Option<&str>,
) -> Markup {
    html! {
        h1 { (frame.t(target.heading())) }
        @if let Target::Edit(entry) = target {
            p { a href={ "/entries/" (entry.id) } { (entry.title) } }
        }
        @if let Some(message) = message { p role="alert" { (message) } }
        form.entry method="post" action=(target.action()) enctype="multipart/form-data" {
            // First, so the token is checked before any file is stored.
            input type="hidden" name="csrf" value=(token);
            @match target {
                Target::New(collections) => {
                    p { label { (frame.t("collection")) br;
                        select name="collection" required {
                            @for c in *collections {
                                option value=(c.id) selected[form.collection == c.id.to_string()] {
                                    (if c.title.is_empty() { &c.name } else { &c.title })
                                }
                            }
                        }
                    } }
                    p { label { (frame.t("kind")) br;
                        select name="kind" {
                            @for kind in ["practice", "history", "resource"] {
                                option value=(kind) selected[form.kind == kind] { (frame.t(kind)) }
                            }
                        }
                    } }
                }
                Target::Edit(entry) => {
                    p.meta { (frame.t(&entry.kind)) " · " (frame.t("license")) " " (entry.license) }
                }
            }
            p { label { (frame.t("title")) br; input type="text" name="title" value=(form.title) required maxlength="300" size="40"; } }
            p { label { (frame.t("body")) br; textarea name="body" rows="10" cols="40" { (form.body) } } }
            p { label { (frame.t("language")) br;
                select name="lang" {
                    @for ui in Ui::ALL {
                        option value=(ui.code()) selected[form.lang == ui.code()] { (ui.name()) }
                    }
                    @if !Ui::ALL.iter().any(|ui| ui.code() == form.lang) && !form.lang.is_empty() {
                        option value=(form.lang) selected { (form.lang) }
                    }
                }
            } }
            p { label { (frame.t("tags_hint")) br; input type="text" name="tags" value=(form.tags) size="40"; } }
            p { label { (frame.t("place")) br; input type="text" name="place" value=(form.place) size="30"; } }
            @match target {
                Target::New(_) => {
                    p { label { (frame.t("author")) br; input type="text" name="author" value=(form.author) size="30"; } }
                    p { label { (frame.t("license")) br;
                        select name="license" {
                            @for spdx in OPEN_LICENSES {
                                option value=(spdx) selected[form.license == spdx] { (spdx) }
                            }
                        }
                    } }
                }
                Target::Edit(entry) => {
                    @if !entry.attachments.is_empty() {
                        fieldset {
                            legend { (frame.t("keep_files")) }
                            @for a in &entry.attachments {
                                label { input type="checkbox" name="keep" value=(a.hash) checked[form.keep.contains(&a.hash)]; " " (a.name) } br;
                            }
                        }
                    }
                }
            }
            p { label { (frame.t("files")) br;
                input type="file" name="files" multiple accept="image/*,audio/*,application/pdf";
            } br; span.meta { (frame.t("files_hint")) " " (megabytes(limit)) } }
            p { button type="submit" { (frame.t("save")) } }
        }
    }
}

/// A byte limit as people read it.
fn megabytes(bytes: u64) -> String {
    format!("{} MB", bytes.div_ceil(1 << 20))
}

/// Why a posted form was not taken: its status and what the page says.
struct Refused {
    status: StatusCode,
    message: String,
}

impl From<Error> for Refused {
    fn from(error: Error) -> Self {
        Refused {
            status: StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST),
            message: error.to_string(),
        }
    }
}

/// The files a posted form stored, and those of them the node did not hold before: a refused
/// form removes these (unless an entry references them by then), so it leaves nothing behind.
#[derive(Default)]
struct Uploads {
    attachments: Vec<Attachment>,
    new: Vec<BlobHash>,
}

impl Uploads {
    /// Removes the blobs this request brought; called when its form is refused.
    async fn discard(self, state: &AppState) {
        if self.new.is_empty() {
            return;
        }
        let blobs = state.blobs.clone();
        let removed = tokio::task::spawn_blocking(move || blobs.discard_uploads(&self.new)).await;
        match removed {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!("removing a refused form's files: {error}"),
            Err(error) => tracing::warn!("removing a refused form's files: {error}"),
        }
    }
}

/// Reads a posted entry form, multipart (with files, each stored as a blob under the limit)
/// or URL-encoded. The CSRF token must come before any file, as the form sends it. A form
/// refused while reading removes the files it stored.
async fn read_entry_form(
    state: &AppState,
    headers: &HeaderMap,
    request: Request,
) -> Result<(EntryForm, Uploads), Box<(EntryForm, Refused)>> {
    let mut form = EntryForm::default();
    let multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !multipart {
        let body = match read_capped(request).await {
            Ok(body) => body,
            Err(error) => return Err(Box::new((form, error.into()))),
        };
        let pairs: Vec<(String, String)> = match serde_urlencoded::from_bytes(&body) {
            Ok(pairs) => pairs,
            Err(e) => {
                let error = Error::BadRequest(format!("invalid form: {e}"));
                return Err(Box::new((form, error.into())));
            }
        };
        for (name, value) in pairs {
            form.set(&name, value);
        }
        return Ok((form, Uploads::default()));
    }
    let mut parts = match Multipart::from_request(request, state).await {
        Ok(parts) => parts,
        Err(e) => return Err(Box::new((form, Error::BadRequest(e.body_text()).into()))),
    };
    let mut uploads = Uploads::default();
    match read_form_fields(state, headers, &mut parts, &mut uploads).await {
        Ok(form) => Ok((form, uploads)),
        Err(refused) => {
            // What a browser sent past the refusal is read (multer skips the rest of the
            // current field) so that it shows the refusal, not a reset connection.
            drain_fields(&mut parts).await;
            uploads.discard(state).await;
            Err(refused)
        }
    }
}

/// The fields of a multipart entry form, in order; the files go to `uploads` as they are stored.
async fn read_form_fields(
    state: &AppState,
    headers: &HeaderMap,
    parts: &mut Multipart,
    uploads: &mut Uploads,
) -> Result<EntryForm, Box<(EntryForm, Refused)>> {
    let mut form = EntryForm::default();
    let mut text_bytes = 0;
    loop {
        let field = match parts.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(Box::new((form, Error::BadRequest(e.body_text()).into()))),
        };
        let name = field.name().unwrap_or("").to_owned();
        let chosen = field.file_name().map(file_name);
        match chosen {
            // A file input left empty sends a part with no name and no bytes.
            Some(None) => {}
            Some(Some(file)) => {
                if !genuine(headers, &form.csrf) {
                    let refused = Refused {
                        status: StatusCode::FORBIDDEN,
                        message: String::new(),
                    };
                    return Err(Box::new((form, refused)));
                }
                if uploads.attachments.len() == MAX_FILES {
                    let error = Error::BadRequest(format!("at most {MAX_FILES} files at once"));
                    return Err(Box::new((form, error.into())));
                }
                let added = match crate::http::upload::receive(state, field).await {
                    Ok(added) => added,
                    Err(error) => return Err(Box::new((form, error.into()))),
                };
                if added.new {
                    uploads.new.push(added.hash);
                }
                if added.size > 0 {
                    uploads.attachments.push(Attachment {
                        hash: added.hash.to_string(),
                        name: file,
                        mime: added.mime,
                        size: added.size,
                    });
                }
            }
            None => {
                let mut field = field;
                let mut value = Vec::new();
                loop {
                    match field.chunk().await {
                        Ok(Some(chunk)) => {
                            text_bytes += chunk.len();
                            if text_bytes > MAX_REQUEST_BYTES {
                                let error = Error::TooLarge(format!(
                                    "the form's text is over {MAX_REQUEST_BYTES} bytes"
                                ));
                                return Err(Box::new((form, error.into())));
                            }
                            value.extend_from_slice(&chunk);
                        }
                        Ok(None) => break,
                        Err(e) => {
                            return Err(Box::new((form, Error::BadRequest(e.body_text()).into())));
                        }
                    }
                }
                form.set(&name, String::from_utf8_lossy(&value).into_owned());
            }
        }
    }
    Ok(form)
}

/// The last path piece of an uploaded file's name, or `None` when no file was chosen.
pub(crate) fn file_name(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("").trim();
    let short: String = base.chars().take(200).collect();
    (!short.is_empty()).then_some(short)
}

pub(super) async fn new_entry_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: RawQuery,
) -> Response {
    let (frame, _, ui) = frame(&headers, raw.0.as_deref(), "/entries/new");
    if !state.access.allows(&headers) {
        return see_other("/login?next=/entries/new", Vec::new());
    }
    let (token, set) = csrf(&headers);
    let collections = match crate::queries::list_collections(&state.store) {
        Ok(list) => list.collections,
        Err(error) => return super::page(&frame, None, Err(error)).into_response(),
    };
    let form = EntryForm {
        lang: frame.ui.code().to_owned(),
        license: "CC-BY-SA-4.0".to_owned(),
        ..EntryForm::default()
    };
    let target = Target::New(&collections);
    let content = entry_form(
        &frame,
        &token,
        &target,
        &form,
        state.limits.max_blob_bytes,
        None,
    );
    form_page(
        &frame,
        StatusCode::OK,
        frame.t("add"),
        cookies(ui, set),
        content,
    )
}

pub(super) async fn create_entry(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let (frame, _, _) = frame(&headers, None, "/entries/new");
    if !state.access.allows(&headers) {
        return see_other("/login?next=/entries/new", Vec::new());
    }
    let collections = state.store.collections().unwrap_or_default();
    let target = Target::New(&collections);
    let (form, refused) = match read_entry_form(&state, &headers, request).await {
        Ok((form, uploads)) if genuine(&headers, &form.csrf) => {
            let shown = form.clone();
            let attachments = uploads.attachments.clone();
            match state.handle.create_entry(form.into_new(attachments)).await {
                Ok(id) => return see_other(&format!("/entries/{id}"), Vec::new()),
                Err(error) => {
                    uploads.discard(&state).await;
                    (shown, error.into())
                }
            }
        }
        Ok((form, uploads)) => {
            uploads.discard(&state).await;
            (form, expired())
        }
        Err(refused) => *refused,
    };
    refuse(&state, &frame, &headers, &target, &form, refused)
}

pub(super) async fn edit_entry_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    raw: RawQuery,
) -> Response {
    let path = format!("/entries/{id}/edit");
    let (frame, _, ui) = frame(&headers, raw.0.as_deref(), &path);
    let visibility = state.access.visibility(&headers, client.ip());
    let entry = match crate::queries::parse_id(&id)
        .and_then(|id| crate::queries::entry(&state.store, &id, visibility))
    {
        Ok(entry) => entry,
        Err(error) => return super::page(&frame, None, Err(error)).into_response(),
    };
    if !state.access.allows(&headers) {
        return see_other(&format!("/login?next={path}"), Vec::new());
    }
    let (token, set) = csrf(&headers);
    let content = entry_form(
        &frame,
        &token,
        &Target::Edit(&entry),
        &EntryForm::of(&entry),
        state.limits.max_blob_bytes,
        None,
    );
    form_page(
        &frame,
        StatusCode::OK,
        frame.t("edit_entry"),
        cookies(ui, set),
        content,
    )
}

pub(super) async fn edit_entry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let path = format!("/entries/{id}/edit");
    let (frame, _, _) = frame(&headers, None, &path);
    let visibility = state.access.visibility(&headers, client.ip());
    let entry = match crate::queries::parse_id(&id)
        .and_then(|id| crate::queries::entry(&state.store, &id, visibility))
    {
        Ok(entry) => entry,
        Err(error) => return super::page(&frame, None, Err(error)).into_response(),
    };
    if !state.access.allows(&headers) {
        return see_other(&format!("/login?next={path}"), Vec::new());
    }
    let target = Target::Edit(&entry);
    let (form, refused) = match read_entry_form(&state, &headers, request).await {
        Ok((form, uploads)) if genuine(&headers, &form.csrf) => {
            let patch = form.patch_of(&entry, uploads.attachments.clone());
            match state.handle.patch_entry(entry.id, patch).await {
                Ok(entry) => return see_other(&format!("/entries/{}", entry.id), Vec::new()),
                Err(error) => {
                    uploads.discard(&state).await;
                    (form, error.into())
                }
            }
        }
        Ok((form, uploads)) => {
            uploads.discard(&state).await;
            (form, expired())
        }
        Err(refused) => *refused,
    };
    refuse(&state, &frame, &headers, &target, &form, refused)
}

fn expired() -> Refused {
    Refused {
        status: StatusCode::FORBIDDEN,
        message: String::new(),
    }
}

/// The form again, with what was posted and why it was not taken (a file over the limit is a
/// 413 that says the limit).
fn refuse(
    state: &AppState,
    frame: &Frame,
    headers: &HeaderMap,
    target: &Target<'_>,
    form: &EntryForm,
    refused: Refused,
) -> Response {
    let limit = state.limits.max_blob_bytes;
    let message = match refused.status {
        StatusCode::FORBIDDEN if refused.message.is_empty() => frame.t("form_expired").to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!(
                "{} {} {}",
                frame.t("too_large"),
                frame.t("files_hint"),
                megabytes(limit)
            )
        }
        _ => refused.message,
    };
    let (token, set) = csrf(headers);
    let content = entry_form(frame, &token, target, form, limit, Some(&message));
    form_page(
        frame,
        refused.status,
        frame.t(target.heading()),
        cookies(None, set),
        content,
    )
}

/// The cookies a form page sets: the language chosen, a fresh CSRF token.
pub(super) fn cookies(ui: Option<Ui>, csrf: Option<String>) -> Vec<String> {
    ui.map(super::ui_cookie).into_iter().chain(csrf).collect()
}

#[cfg(test)]
mod login_tests {
    use super::local_path;

    #[test]
    fn next_stays_on_this_node() {
        for next in ["/", "/entries/new", "/entries/abc?x=1"] {
            assert_eq!(local_path(Some(next)), next);
        }
        for next in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "https://evil.example",
            "evil.example",
            "",
        ] {
            assert_eq!(local_path(Some(next)), "/", "{next:?}");
        }
        assert_eq!(local_path(None), "/");
    }
}

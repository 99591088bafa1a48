//! The forms that write: the contributor code asked once (then a session cookie), and adding
//! an entry. Every form carries a CSRF token that must match the `minga_csrf` cookie
//! (double submit; the cookie is `SameSite=Strict`), and writes from another site's page are
//! refused by their `Origin` as the API refuses them.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use minga_protocol::entry::{AuthorInput, NewEntry, PlaceInput};
use minga_protocol::license::OPEN_LICENSES;
use serde::Deserialize;

use super::i18n::Ui;
use super::pages::{self, Frame};
use super::{Page, frame};
use crate::Error;
use crate::api::AppState;
use crate::api::access::{SESSION_COOKIE, cookie, random_hex, same, same_origin};

/// The cookie holding the CSRF token that forms must echo.
const CSRF_COOKIE: &str = "minga_csrf";

/// The CSRF token of this browser, and the cookie to set when it had none.
fn csrf(headers: &HeaderMap) -> (String, Option<String>) {
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
fn genuine(headers: &HeaderMap, posted: &str) -> bool {
    same_origin(headers) && cookie(headers, CSRF_COOKIE).is_some_and(|c| same(c, posted))
}

/// A relative path on this node, never another site (`//host`).
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") => path.to_owned(),
        _ => "/".to_owned(),
    }
}

fn see_other(location: &str, cookies: Vec<String>) -> Response {
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

fn form_page(
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
    headers: HeaderMap,
    body: Bytes,
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
    match state.access.login(&form.code) {
        Some(session) => {
            let set = format!("{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict");
            see_other(&next, vec![set])
        }
        None => {
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

/// The fields of the add form, as posted.
#[derive(Debug, Default, Clone, Deserialize)]
struct EntryForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    collection: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    license: String,
    #[serde(default)]
    lang: String,
    #[serde(default)]
    tags: String,
    #[serde(default)]
    place: String,
    #[serde(default)]
    author: String,
}

impl EntryForm {
    fn into_new(self) -> NewEntry {
        let some = |s: String| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        NewEntry {
            collection: self.collection,
            kind: self.kind,
            title: self.title,
            body: self.body.replace("\r\n", "\n"),
            license: self.license,
            lang: some(self.lang),
            tags: self
                .tags
                .split(',')
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect(),
            subjects: Vec::new(),
            place: some(self.place).map(PlaceInput::Name),
            authors: some(self.author)
                .map(AuthorInput::Name)
                .into_iter()
                .collect(),
            consent: Vec::new(),
            private: false,
            attachments: Vec::new(),
        }
    }
}

fn entry_form(
    frame: &Frame,
    token: &str,
    collections: &[minga_protocol::Collection],
    form: &EntryForm,
    message: Option<&str>,
) -> Markup {
    html! {
        h1 { (frame.t("add")) }
        @if let Some(message) = message { p role="alert" { (message) } }
        form.entry method="post" action="/entries/new" {
            input type="hidden" name="csrf" value=(token);
            p { label { (frame.t("collection")) br;
                select name="collection" required {
                    @for c in collections {
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
            p { label { (frame.t("title")) br; input type="text" name="title" value=(form.title) required maxlength="300" size="40"; } }
            p { label { (frame.t("body")) br; textarea name="body" rows="10" cols="40" { (form.body) } } }
            p { label { (frame.t("language")) br;
                select name="lang" {
                    @for ui in Ui::ALL {
                        option value=(ui.code()) selected[form.lang == ui.code()] { (ui.name()) }
                    }
                }
            } }
            p { label { (frame.t("tags_hint")) br; input type="text" name="tags" value=(form.tags) size="40"; } }
            p { label { (frame.t("place")) br; input type="text" name="place" value=(form.place) size="30"; } }
            p { label { (frame.t("author")) br; input type="text" name="author" value=(form.author) size="30"; } }
            p { label { (frame.t("license")) br;
                select name="license" {
                    @for spdx in OPEN_LICENSES {
                        option value=(spdx) selected[form.license == spdx] { (spdx) }
                    }
                }
            } }
            p { button type="submit" { (frame.t("save")) } }
        }
    }
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
    let content = entry_form(&frame, &token, &collections, &form, None);
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
    body: Bytes,
) -> Response {
    let (frame, _, _) = frame(&headers, None, "/entries/new");
    let form: EntryForm = match serde_urlencoded::from_bytes(&body) {
        Ok(form) => form,
        Err(e) => {
            let error = Error::BadRequest(format!("invalid form: {e}"));
            return super::page(&frame, None, Err(error)).into_response();
        }
    };
    let (token, set) = csrf(&headers);
    let collections = state.store.collections().unwrap_or_default();
    let refuse = |status: StatusCode, message: String, form: &EntryForm| {
        let content = entry_form(&frame, &token, &collections, form, Some(&message));
        form_page(
            &frame,
            status,
            frame.t("add"),
            cookies(None, set.clone()),
            content,
        )
    };
    if !genuine(&headers, &form.csrf) {
        return refuse(
            StatusCode::FORBIDDEN,
            frame.t("form_expired").to_owned(),
            &form,
        );
    }
    if !state.access.allows(&headers) {
        return see_other("/login?next=/entries/new", Vec::new());
    }
    let shown = form.clone();
    match state.handle.create_entry(form.into_new()).await {
        Ok(id) => see_other(&format!("/entries/{id}"), Vec::new()),
        Err(error) => {
            let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
            refuse(status, error.to_string(), &shown)
        }
    }
}

/// The cookies a form page sets: the language chosen, a fresh CSRF token.
fn cookies(ui: Option<Ui>, csrf: Option<String>) -> Vec<String> {
    ui.map(super::ui_cookie).into_iter().chain(csrf).collect()
}

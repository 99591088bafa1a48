//! The pages' HTML, as maud templates: maud escapes every value put in them, so user text
//! (titles, tags, places, names, snippets) is always text; only the sanitised Markdown body is
//! inserted as HTML.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use minga_protocol::entry::{Attachment, Author};
use minga_protocol::history::Revision;
use minga_protocol::{Collection, Entry};

use super::i18n::Ui;
use super::{markdown, qr};
use crate::queries::Hit;
use crate::search::Snippet;

/// What every page shares: its language and where the language switch links back to.
#[derive(Debug, Clone)]
pub struct Frame {
    pub ui: Ui,
    /// This page's path and query (without `ui=`), for the language switch.
    pub here: String,
    /// The words in the search box.
    pub q: String,
}

impl Frame {
    pub fn t(&self, key: &str) -> &'static str {
        self.ui.t(key)
    }

    fn switch_link(&self, ui: Ui) -> String {
        let glue = if self.here.contains('?') { '&' } else { '?' };
        format!("{}{glue}ui={}", self.here, ui.code())
    }
}

/// The page around `content`.
pub fn layout(frame: &Frame, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(frame.ui.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (frame.t("site")) }
                link rel="stylesheet" href="/style.css";
            }
            body {
                header {
                    a.site href="/" { (frame.t("site")) }
                    p { (frame.t("tagline")) }
                    form.search action="/search" method="get" role="search" {
                        label for="q" hidden { (frame.t("search_label")) }
                        input #q type="search" name="q" value=(frame.q)
                            placeholder=(frame.t("search_placeholder"))
                            aria-label=(frame.t("search_label"));
                        button type="submit" { (frame.t("search")) }
                    }
                    p { a href="/entries/new" { (frame.t("add")) } }
                    nav.ui aria-label=(frame.t("interface")) {
                        @for (i, ui) in Ui::ALL.into_iter().enumerate() {
                            @if i > 0 { " · " }
                            @if ui == frame.ui {
                                a href=(frame.switch_link(ui)) aria-current="true" { (ui.name()) }
                            } @else {
                                a href=(frame.switch_link(ui)) hreflang=(ui.code()) { (ui.name()) }
                            }
                        }
                    }
                }
                main { (content) }
                footer { "Minga" }
            }
        }
    }
}

/// `/`: the collections and the newest entries.
pub fn home(frame: &Frame, collections: &[Collection], recent: &[Entry]) -> Markup {
    let content = html! {
        h2 { (frame.t("collections")) }
        ul {
            @for c in collections {
                li {
                    a href={ "/collections/" (c.id) } { (display_title(c)) }
                    " " span.meta { "(" (c.entries) " " (frame.t("entries")) ")" }
                }
            }
        }
        h2 { (frame.t("recent")) }
        (entry_list(frame, recent))
    };
    layout(frame, frame.t("home"), content)
}

/// `/collections/{id}`: one collection and a page of its entries.
pub fn collection(
    frame: &Frame,
    collection: &Collection,
    entries: &[Entry],
    more: Option<String>,
) -> Markup {
    let content = html! {
        h1 { (display_title(collection)) }
        @if !collection.description.is_empty() { p { (collection.description) } }
        p.meta { (frame.t("license")) ": " (license_link(&collection.license))
            " · " a href={ "/api/v1/collections/" (collection.id) "/export?format=csv" } { "CSV" }
            " · " a href={ "/api/v1/collections/" (collection.id) "/export?format=json" } { "JSON" } }
        (entry_list(frame, entries))
        @if let Some(cursor) = more {
            p { a href={ "/collections/" (collection.id) "?cursor=" (cursor) } { (frame.t("more")) } }
        }
    };
    layout(frame, &display_title(collection), content)
}

/// `/entries/{id}`: the entry, its attachments and how to credit it.
pub fn entry(frame: &Frame, entry: &Entry) -> Markup {
    let content = html! {
        article {
            h1 { (entry.title) }
            p.meta {
                (frame.t(&entry.kind)) " · " (entry.lang)
                @if let Some(place) = &entry.place { " · " (place.name) }
            }
            @if !entry.tags.is_empty() {
                p.meta { (frame.t("tags")) ": "
                    @for (i, tag) in entry.tags.iter().enumerate() {
                        @if i > 0 { ", " }
                        (tag)
                    }
                }
            }
            div.body { (PreEscaped(markdown::render(&entry.body))) }
            @if !entry.attachments.is_empty() {
                section.attachments {
                    h2 { (frame.t("attachments")) }
                    @for a in &entry.attachments {
                        @let url = format!("/api/v1/blobs/{}", a.hash);
                        @if is_image(a) {
                            figure {
                                a href=(url) { img src=(thumbnail_url(a, Size::Large)) alt=(a.name) loading="lazy"; }
                                figcaption { (a.name) }
                            }
                        } @else if crate::blobs::mime::is_inline(&a.mime) && a.mime.starts_with("image/") {
                            figure { img src=(url) alt=(a.name) loading="lazy"; figcaption { (a.name) } }
                        } @else if crate::blobs::mime::is_inline(&a.mime) && a.mime.starts_with("audio/") {
                            figure { audio controls preload="none" src=(url) {} figcaption { (a.name) } }
                        } @else {
                            p { a href=(url) download=(a.name) { (frame.t("download")) " " (a.name) } " (" (a.size) " B)" }
                        }
                    }
                }
            }
            p.attribution { (attribution(frame, entry)) }
            p.meta {
                (frame.t("updated")) " " (when(entry.updated))
                " · " a href={ "/entries/" (entry.id) "/history" } { (frame.t("changes")) }
                " · " a href={ "/entries/" (entry.id) "/edit" } { (frame.t("edit")) }
            }
        }
    };
    layout(frame, &entry.title, content)
}

/// `/entries/{id}/history`: who changed which fields of the entry, and when.
pub fn history(frame: &Frame, entry: &Entry, changes: &[Revision]) -> Markup {
    let content = html! {
        h1 { (frame.t("changes")) }
        p { a href={ "/entries/" (entry.id) } { (entry.title) } }
        p.meta { (frame.t("changes_hint")) }
        table.history {
            thead { tr { th { (frame.t("when")) } th { (frame.t("who")) } th { (frame.t("what")) } } }
            tbody {
                @for change in changes {
                    tr {
                        td { (when(change.time)) }
                        td {
                            @if let Some(name) = &change.name { (name) " " }
                            span.meta title=(change.key) { "(" (change.key.get(..8).unwrap_or(&change.key)) "…)" }
                        }
                        td {
                            @for (i, field) in change.fields.iter().enumerate() {
                                @if i > 0 { ", " }
                                (frame.t(&format!("f_{field}")))
                            }
                        }
                    }
                }
            }
        }
    };
    layout(frame, frame.t("changes"), content)
}

/// `/poster`: an A4 sheet to put up in the centre, with the node's URL as a QR code and in
/// large type, and the few steps to read and to contribute. `urls` are the node's, the LAN's
/// first; `loopback_only` when phones cannot reach it at all, which only the screen says.
pub fn poster(frame: &Frame, urls: &[String], loopback_only: bool) -> Markup {
    let content = html! {
        section.poster {
            h1 { (frame.t("poster_title")) }
            p.lead { (frame.t("tagline")) }
            @if let Some(primary) = urls.first() {
                @if let Some(svg) = qr::svg(primary) {
                    // Our own drawing of our own URL: numbers and fixed attributes only.
                    div.qr role="img" aria-label=(primary) { (PreEscaped(svg)) }
                }
                p.url { (primary) }
            }
            ol.steps {
                @for step in ["poster_wifi", "poster_open", "poster_read", "poster_write"] {
                    li { (frame.t(step)) }
                }
            }
            @if urls.len() > 1 {
                p.meta { (frame.t("poster_also")) " "
                    @for (i, url) in urls.iter().skip(1).enumerate() {
                        @if i > 0 { " · " }
                        (url)
                    }
                }
            }
        }
        div.screen {
            @if loopback_only { p role="alert" { (frame.t("poster_loopback")) } }
            p.meta { (frame.t("poster_print")) }
        }
    };
    layout(frame, frame.t("poster"), content)
}

/// A node clock's unix milliseconds as `YYYY-MM-DD HH:MM UTC` (the proleptic Gregorian
/// calendar; a Pi without a clock battery shows 1970, which is the truth of its clock).
pub fn when(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// The sizes thumbnails are made in: small for lists, large for an entry's page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Small,
    Large,
}

impl Size {
    /// The longest side in pixels.
    pub fn pixels(self) -> u32 {
        match self {
            Size::Small => 160,
            Size::Large => 640,
        }
    }

    pub fn parse(text: &str) -> Option<Size> {
        [Size::Small, Size::Large]
            .into_iter()
            .find(|size| size.pixels().to_string() == text)
    }
}

/// Whether a page shows an attachment through its thumbnail (JPEG, PNG, WebP photos).
pub fn is_image(attachment: &Attachment) -> bool {
    crate::blobs::thumbnail::supported(&attachment.mime)
}

fn thumbnail_url(attachment: &Attachment, size: Size) -> String {
    format!("/thumbnails/{}/{}", size.pixels(), attachment.hash)
}

/// "«Title» by A, B — CC-BY-SA-4.0", the line a reuser copies.
fn attribution(frame: &Frame, entry: &Entry) -> Markup {
    let names: Vec<String> = entry.authors.iter().map(Author::credit).collect();
    html! {
        "«" (entry.title) "» " (frame.t("by")) " "
        @if names.is_empty() { (frame.t("anonymous")) } @else { (names.join(", ")) }
        " — " (frame.t("license")) " " (license_link(&entry.license))
    }
}

fn license_link(spdx: &str) -> Markup {
    html! { a href={ "https://spdx.org/licenses/" (spdx) ".html" } rel="license" { (spdx) } }
}

/// `/search`: the filters and the hits with their snippets.
pub fn search(
    frame: &Frame,
    filters: &[(&str, String)],
    hits: Option<&[Hit]>,
    more: Option<String>,
    error: Option<String>,
) -> Markup {
    let value = |name: &str| {
        filters
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let content = html! {
        form.search action="/search" method="get" {
            input type="hidden" name="q" value=(frame.q);
            label { (frame.t("kind")) " "
                select name="kind" {
                    option value="" { (frame.t("any")) }
                    @for kind in ["practice", "history", "resource"] {
                        option value=(kind) selected[value("kind") == kind] { (frame.t(kind)) }
                    }
                }
            }
            label { (frame.t("language")) " "
                select name="lang" {
                    option value="" { (frame.t("any")) }
                    @for ui in Ui::ALL {
                        option value=(ui.code()) selected[value("lang") == ui.code()] { (ui.name()) }
                    }
                }
            }
            label { (frame.t("place")) " " input type="text" name="place" value=(value("place")) size="12"; }
            button type="submit" { (frame.t("search")) }
        }
        @if let Some(error) = error { p role="alert" { (error) } }
        @if let Some(hits) = hits {
            h1 { (frame.t("results")) }
            @if hits.is_empty() { p { (frame.t("no_results")) } }
            ul.entries {
                @for hit in hits {
                    li {
                        (thumbnail(&hit.entry))
                        a href={ "/entries/" (hit.entry.id) } { (hit.entry.title) }
                        (entry_meta(frame, &hit.entry))
                        p { (marked(&hit.snippet)) }
                    }
                }
            }
            @if let Some(cursor) = more {
                p { a href=(next_search_page(frame, filters, &cursor)) { (frame.t("more")) } }
            }
        }
    };
    layout(frame, frame.t("search"), content)
}

fn next_search_page(frame: &Frame, filters: &[(&str, String)], cursor: &str) -> String {
    let mut pairs: Vec<(&str, &str)> = vec![("q", frame.q.as_str())];
    pairs.extend(filters.iter().map(|(n, v)| (*n, v.as_str())));
    pairs.push(("cursor", cursor));
    format!(
        "/search?{}",
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    )
}

/// A snippet with its matched words in `<mark>`, every piece escaped.
fn marked(snippet: &Snippet) -> Markup {
    let chars: Vec<char> = snippet.text.chars().collect();
    let mut pieces: Vec<(String, bool)> = Vec::new();
    let mut at = 0;
    for &[start, end] in &snippet.highlights {
        if start < at || end > chars.len() || start > end {
            continue;
        }
        pieces.push((chars[at..start].iter().collect(), false));
        pieces.push((chars[start..end].iter().collect(), true));
        at = end;
    }
    pieces.push((chars[at..].iter().collect(), false));
    html! {
        @for (text, mark) in &pieces {
            @if *mark { mark { (text) } } @else { (text) }
        }
    }
}

fn entry_list(frame: &Frame, entries: &[Entry]) -> Markup {
    html! {
        @if entries.is_empty() { p { (frame.t("no_entries")) } }
        ul.entries {
            @for entry in entries {
                li {
                    (thumbnail(entry))
                    a href={ "/entries/" (entry.id) } { (entry.title) }
                    (entry_meta(frame, entry))
                }
            }
        }
    }
}

/// The small thumbnail of an entry's first image, for lists: never the full photo.
fn thumbnail(entry: &Entry) -> Markup {
    html! {
        @if let Some(image) = entry.attachments.iter().find(|a| is_image(a)) {
            img.thumb src=(thumbnail_url(image, Size::Small)) alt="" loading="lazy"
                width=(Size::Small.pixels() / 2) height=(Size::Small.pixels() / 2);
        }
    }
}

fn entry_meta(frame: &Frame, entry: &Entry) -> Markup {
    html! {
        div.meta {
            (frame.t(&entry.kind)) " · " (entry.lang)
            @if let Some(place) = &entry.place { " · " (place.name) }
        }
    }
}

pub(super) fn display_title(collection: &Collection) -> String {
    if collection.title.is_empty() {
        collection.name.clone()
    } else {
        collection.title.clone()
    }
}

/// A page for an error: not found, or refused input.
pub fn error(frame: &Frame, message: &str) -> Markup {
    let content = html! {
        h1 { (frame.t("not_found")) }
        p { (message) }
        p { a href="/" { (frame.t("home")) } }
    };
    layout(frame, frame.t("not_found"), content)
}

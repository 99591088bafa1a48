//! Rendering with hostile input: whatever users write stays text, and no page can run script.

use minga_protocol::{Collection, Entry};
use serde_json::json;

use super::i18n::Ui;
use super::pages::{self, Frame};
use crate::queries::Hit;
use crate::search::Snippet;

const SCRIPT: &str = "<script>alert('x')</script>";

fn hostile_entry() -> Entry {
    serde_json::from_value(json!({
        "id": minga_protocol::DocumentId::from_bytes([7; 16]).to_string(), "heads": [], "schema": "minga/entry/1",
        "kind": "practice", "collection": "c", "license": "CC-BY-4.0",
        "title": format!("Cacao {SCRIPT}"),
        "body": "Texto <b onclick=\"x()\">crudo</b> <iframe src=\"https://evil.example\"></iframe>\n\n[clic](javascript:alert(1)) <a href=\"javascript:alert(2)\">a</a>",
        "lang": "es", "tags": ["<img src=x onerror=alert(1)>"], "subjects": [],
        "place": {"name": "\"><script>p()</script>", "lat": null, "lon": null},
        "authors": [{"name": "<b>Ana</b>", "key": "00"}], "created": 1, "updated": 2,
        "attachments": [
            {"hash": "ab", "name": "foto\".jpg", "mime": "image/jpeg", "size": 10},
            {"hash": "cd", "name": "canto.ogg", "mime": "audio/ogg", "size": 10},
            {"hash": "ef", "name": "dibujo.svg", "mime": "image/svg+xml", "size": 10}
        ],
        "consent": [], "private": false
    }))
    .expect("a hostile entry")
}

fn frame() -> Frame {
    Frame {
        ui: Ui::Es,
        here: "/entries/x?ui=\"><script>".into(),
        q: format!("q {SCRIPT}"),
    }
}

/// No executable markup anywhere in a page: user text may still *read* `javascript:` or
/// `onerror=`, escaped, but no real tag carries a script, an event attribute or such a link.
fn assert_inert(html: &str) {
    assert_inert_but(html, &[]);
}

/// [`assert_inert`] for a page that draws `allowed` tags itself (the poster's QR `<svg>`),
/// which still carry no event attribute or `javascript:` link.
fn assert_inert_but(html: &str, allowed: &[&str]) {
    for tag in html
        .split('<')
        .skip(1)
        .map(|rest| rest.split('>').next().unwrap_or(""))
    {
        let lower = tag.to_lowercase();
        let name = lower.split_whitespace().next().unwrap_or("");
        assert!(
            allowed.contains(&name)
                || !["script", "iframe", "object", "embed", "svg"].contains(&name),
            "a <{name}> tag in:\n{html}"
        );
        for attribute in lower.split_whitespace().skip(1) {
            assert!(!attribute.starts_with("on"), "<{tag}> in:\n{html}");
            assert!(!attribute.contains("javascript:"), "<{tag}> in:\n{html}");
        }
    }
    assert!(html.len() < 100 * 1024, "page of {} bytes", html.len());
}

#[test]
fn an_entry_page_keeps_hostile_text_as_text() {
    let html = pages::entry(&frame(), &hostile_entry()).into_string();
    assert_inert(&html);
    assert!(html.contains("Cacao &lt;script&gt;"), "{html}");
    assert!(html.contains("&lt;b&gt;Ana&lt;/b&gt;"), "{html}");
    // Photos as a thumbnail linking to the original, audio with a player, SVG only as a
    // download.
    assert!(
        html.contains(r#"<a href="/api/v1/blobs/ab"><img src="/thumbnails/640/ab""#),
        "{html}"
    );
    assert!(
        html.contains(r#"<audio controls preload="none" src="/api/v1/blobs/cd""#),
        "{html}"
    );
    assert!(!html.contains(r#"<img src="/api/v1/blobs/ef""#), "{html}");
    assert!(
        html.contains(r#"href="/api/v1/blobs/ef" download"#),
        "{html}"
    );
    // The attribution line names title, authors and licence.
    assert!(html.contains("CC-BY-4.0"));
}

#[test]
fn lists_and_searches_escape_titles_and_snippets() {
    let entry = hostile_entry();
    let collection: Collection = serde_json::from_value(json!({
        "id": entry.id, "name": "c", "title": SCRIPT, "description": SCRIPT,
        "license": "CC0-1.0", "maintainers": []
    }))
    .unwrap();
    let home = pages::home(
        &frame(),
        std::slice::from_ref(&collection),
        std::slice::from_ref(&entry),
    );
    assert_inert(&home.into_string());
    let page = pages::collection(
        &frame(),
        &collection,
        std::slice::from_ref(&entry),
        Some(SCRIPT.into()),
    );
    assert_inert(&page.into_string());
    let hit = Hit {
        entry,
        score: 1.0,
        snippet: Snippet {
            text: format!("antes {SCRIPT} después"),
            highlights: vec![[6, 14], [999, 1000]],
        },
    };
    let html = pages::search(
        &frame(),
        &[("place", SCRIPT.into())],
        Some(&[hit]),
        Some("3".into()),
        None,
    )
    .into_string();
    assert_inert(&html);
    assert!(html.contains("<mark>&lt;script&gt;</mark>"), "{html}");
}

#[test]
fn the_interface_speaks_the_chosen_language() {
    let mut frame = frame();
    for (ui, word) in [(Ui::Es, "Buscar"), (Ui::Qu, "Maskana"), (Ui::En, "Search")] {
        frame.ui = ui;
        let html = pages::search(&frame, &[], None, None, None).into_string();
        assert!(html.contains(word), "{ui:?}");
        assert!(html.contains(&format!(r#"<html lang="{}">"#, ui.code())));
    }
}

#[test]
fn the_history_page_escapes_names_and_translates_fields() {
    let entry = hostile_entry();
    let changes = vec![
        minga_protocol::history::Revision {
            hash: "aa".into(),
            time: 1_700_000_000_000,
            key: "0123456789abcdef".into(),
            name: Some(SCRIPT.into()),
            fields: vec!["body".into(), "tags".into()],
        },
        minga_protocol::history::Revision {
            hash: "bb".into(),
            time: 0,
            key: "ff".into(),
            name: None,
            fields: vec!["created".into()],
        },
    ];
    let html = pages::history(&frame(), &entry, &changes).into_string();
    assert_inert(&html);
    assert!(html.contains("2023-11-14 22:13 UTC"), "{html}");
    assert!(html.contains("1970-01-01 00:00 UTC"), "{html}");
    assert!(html.contains("texto, etiquetas"), "{html}");
    assert!(html.contains("creó la entrada"), "{html}");
    assert!(html.contains("(01234567…)"), "{html}");
}

#[test]
fn lists_show_thumbnails_never_full_photos() {
    let entry = hostile_entry();
    let html = pages::home(&frame(), &[], std::slice::from_ref(&entry)).into_string();
    assert!(html.contains(r#"src="/thumbnails/160/ab""#), "{html}");
    assert!(!html.contains("/api/v1/blobs/"), "{html}");
    let page = pages::entry(&frame(), &entry).into_string();
    assert!(page.contains(&format!(r#"href="/entries/{}/history""#, entry.id)));
    assert!(page.contains(&format!(r#"href="/entries/{}/edit""#, entry.id)));
}

#[test]
fn node_clock_times_read_as_utc_dates() {
    assert_eq!(pages::when(0), "1970-01-01 00:00 UTC");
    assert_eq!(pages::when(951_782_400_000), "2000-02-29 00:00 UTC");
    assert_eq!(pages::when(1_767_225_599_000), "2025-12-31 23:59 UTC");
}

#[test]
fn the_poster_draws_its_url_as_a_qr_code_and_writes_it_out() {
    let urls = [
        "http://192.0.2.7:7878/".to_owned(),
        "http://[2001:db8::7]:7878/".to_owned(),
    ];
    let mut frame = frame();
    for (ui, step) in [
        (Ui::Es, "Wi-Fi del infocentro"),
        (Ui::Qu, "Wi-Fi-man tinkiy"),
        (Ui::En, "Join the"),
    ] {
        frame.ui = ui;
        let html = pages::poster(&frame, &urls, false).into_string();
        assert_inert_but(&html, &["svg"]);
        assert_eq!(html.matches("<svg").count(), 1, "{html}");
        assert!(!html.contains("<?xml"), "{html}");
        assert!(
            html.contains(r#"role="img" aria-label="http://192.0.2.7:7878/""#),
            "{html}"
        );
        assert!(
            html.contains(r#"<p class="url">http://192.0.2.7:7878/</p>"#),
            "{html}"
        );
        assert!(html.contains("http://[2001:db8::7]:7878/"), "{html}");
        assert!(html.contains(step), "{ui:?}: {html}");
        assert!(!html.contains(r#"role="alert""#), "{html}");
    }
    // A node on loopback says, on screen, that phones cannot reach it.
    let html = pages::poster(&frame, &urls[..1], true).into_string();
    assert!(html.contains(r#"role="alert""#), "{html}");
    assert!(html.contains("--api 0.0.0.0:7878"), "{html}");
}

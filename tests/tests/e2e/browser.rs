//! The pages in a real headless Chromium (Debian's `chromium`) on a phone-sized viewport, on a
//! node that listens on the LAN with a contributor code: the home page, a search for
//! `fermentacion`, the cacao entry, then adding an entry with a photo through the form (the
//! code entered once), and finding it in the list, with its thumbnail, and in search; and the
//! poster for phones, on screen and laid out for print on A4; and the operator's page.
//! Screenshots are kept under the target dir (`browser/`) as artefacts. Skipped, saying so,
//! where no Chromium is installed (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use minga_tests::cdp::Browser;
use minga_tests::{Node, demo, wait_until};
use serde_json::json;

/// A phone: 390 × 844 CSS pixels.
const VIEWPORT: &str = "--window-size=390,844";

const CODE: &str = "minga-2026";

/// A4's printable area with the poster's 15 mm margins, in CSS pixels: 180 × 267 mm.
const A4_WIDTH: u32 = 680;
const A4_HEIGHT: u32 = 1009;

/// Chromium on `PATH`, or `None` after saying the test is skipped.
fn chromium() -> Option<PathBuf> {
    let candidates = ["chromium", "chromium-browser"];
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .flat_map(|dir| candidates.iter().map(move |c| dir.join(c)))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!("skipped: no chromium binary on PATH (apt-get install chromium)");
    }
    found
}

/// Where screenshots are kept: `browser/` under the target dir.
fn artefacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs headless Chromium on `url` with `action` (`--dump-dom` or `--screenshot=FILE`).
fn chrome(binary: &Path, profile: &Path, action: &str, url: &str) -> String {
    let output = Command::new(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            VIEWPORT,
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(action)
        .arg(url)
        .output()
        .expect("running chromium");
    assert!(
        output.status.success(),
        "chromium {action} {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_phone_browser_searches_and_reads_an_entry() {
    let Some(binary) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let artefacts = artefacts();
    let node = Node::start_with(
        dir.path(),
        &["--api", "0.0.0.0:0", "--contributor-code", CODE],
    );
    let api = node.api.clone().with_contributor_code(CODE);
    let loaded = demo::load(&api, &demo::sample()).unwrap();
    let cacao = &loaded.entries["Fermentación del cacao fino de aroma en cajones escalonados"];

    let home = artefacts.join("home.png");
    chrome(
        &binary,
        profile.path(),
        &format!("--screenshot={}", home.display()),
        &node.base,
    );
    assert!(
        std::fs::metadata(&home).unwrap().len() > 1000,
        "an empty screenshot"
    );
    let dom = chrome(&binary, profile.path(), "--dump-dom", &node.base);
    assert!(dom.contains("Prácticas agrícolas andinas"), "{dom}");

    let search = format!("{}/search?q=fermentacion", node.base);
    wait_until(5, "the search in the browser", || {
        chrome(&binary, profile.path(), "--dump-dom", &search).contains(cacao.as_str())
    });
    let shot = artefacts.join("search.png");
    chrome(
        &binary,
        profile.path(),
        &format!("--screenshot={}", shot.display()),
        &search,
    );

    let entry = format!("{}/entries/{cacao}", node.base);
    let dom = chrome(&binary, profile.path(), "--dump-dom", &entry);
    assert!(
        dom.contains("<h1>Fermentación del cacao fino de aroma"),
        "{dom}"
    );
    assert!(dom.contains("CC-BY-SA-4.0"), "{dom}");
    let shot = artefacts.join("entry.png");
    chrome(
        &binary,
        profile.path(),
        &format!("--screenshot={}", shot.display()),
        &entry,
    );

    // A contributor adds a practice with a photo (the home page's screenshot serves as one).
    let browser_profile = tempfile::tempdir().unwrap();
    let mut browser = Browser::launch(&binary, browser_profile.path(), 390, 844);
    browser.goto(&format!("{}/entries/new", node.base));
    assert!(browser.path().starts_with("/login"), "{}", browser.path());
    browser.fill(r#"form[action="/login"]"#, "code", CODE);
    browser.click_and_wait(r#"form[action="/login"] button[type=submit]"#);
    assert_eq!(browser.path(), "/entries/new");
    let title = "Secado de maíz en tendales";
    browser.fill("form.entry", "title", title);
    browser.fill(
        "form.entry",
        "body",
        "Extender las mazorcas al sol **tres días** y cubrirlas de noche.",
    );
    browser.fill("form.entry", "tags", "maíz, secado");
    browser.fill("form.entry", "place", "Cotacachi");
    browser.fill("form.entry", "author", "Rosa");
    browser.choose_files("input[type=file]", &[&home]);
    browser.screenshot(&artefacts.join("add-form.png"));
    browser.click_and_wait("form.entry button[type=submit]");
    let path = browser.path();
    let id = path
        .strip_prefix("/entries/")
        .unwrap_or_else(|| panic!("not an entry's page: {path}\n{}", browser.html()))
        .to_owned();
    let shown = browser.html();
    assert!(shown.contains(title), "{shown}");
    assert!(shown.contains("<strong>tres días</strong>"), "{shown}");
    assert!(
        shown.contains(r#"<img src="/thumbnails/640/"#),
        "the photo: {shown}"
    );
    // Scrolled to, the lazy image loads: resolve once it has (or has failed).
    let loaded_photo = browser.eval(
        "new Promise(done => { const i = document.querySelector('figure img'); \
         i.scrollIntoView(); \
         if (i.complete) { done(i.naturalWidth > 0); return; } \
         i.addEventListener('load', () => done(i.naturalWidth > 0)); \
         i.addEventListener('error', () => done(false)); })",
    );
    assert_eq!(loaded_photo, true, "the photo's thumbnail did not load");
    browser.screenshot(&artefacts.join("new-entry.png"));

    // In the list of recent entries, with a small thumbnail rather than the photo.
    browser.goto(&node.base);
    let home_page = browser.html();
    assert!(
        home_page.contains(&format!(r#"href="/entries/{id}""#)),
        "{home_page}"
    );
    assert!(
        home_page.contains(r#"<img class="thumb" src="/thumbnails/160/"#),
        "{home_page}"
    );
    assert!(!home_page.contains("/api/v1/blobs/"), "{home_page}");
    browser.screenshot(&artefacts.join("home-with-new-entry.png"));
    let photo = &node.get(&format!("/api/v1/entries/{id}")).1["attachments"][0];
    assert_eq!(photo["mime"], "image/png");
    let (status, thumb) = thumbnail(&node.base, photo["hash"].as_str().unwrap());
    assert_eq!(status, 200);
    assert!(thumb.starts_with(&[0xff, 0xd8]), "a JPEG");
    assert!((thumb.len() as u64) < photo["size"].as_u64().unwrap());

    // And in search, accents or not.
    let search = format!("{}/search?q=maiz+tendales", node.base);
    wait_until(5, "the new entry in search", || {
        browser.goto(&search);
        browser.html().contains(&format!(r#"href="/entries/{id}""#))
    });
    browser.screenshot(&artefacts.join("search-new-entry.png"));
    eprintln!("screenshots in {}", artefacts.display());
}

#[test]
fn the_poster_shows_the_nodes_url_as_a_qr_code() {
    let Some(binary) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    // The node listens on loopback, so loopback's is the one URL it is served at.
    let url = format!("{}/", node.base);
    for (query, words, shot) in [
        ("?ui=es", "Conéctese al Wi-Fi", "poster.png"),
        ("?ui=qu", "Wi-Fi-man tinkiy", "poster-qu.png"),
    ] {
        let poster = format!("{}/poster{query}", node.base);
        let dom = chrome(&binary, profile.path(), "--dump-dom", &poster);
        assert_eq!(dom.matches("<svg").count(), 1, "{dom}");
        assert!(
            dom.contains(&format!(r#"<p class="url">{url}</p>"#)),
            "{dom}"
        );
        assert!(dom.contains(words), "{dom}");
        let file = artefacts().join(shot);
        chrome(
            &binary,
            profile.path(),
            &format!("--screenshot={}", file.display()),
            &poster,
        );
        assert!(
            std::fs::metadata(&file).unwrap().len() > 1000,
            "an empty screenshot"
        );
    }
    // Printed, it fits one A4 sheet: laid out for print in the sheet's printable area (A4 less
    // the page's 15 mm margins, at 96 CSS pixels to the inch), nothing runs past it.
    let browser_profile = tempfile::tempdir().unwrap();
    let mut browser = Browser::launch(&binary, browser_profile.path(), A4_WIDTH, A4_HEIGHT);
    browser.call("Emulation.setEmulatedMedia", json!({"media": "print"}));
    for ui in ["es", "qu", "en"] {
        browser.goto(&format!("{}/poster?ui={ui}", node.base));
        browser.screenshot(&artefacts().join(format!("poster-print-{ui}.png")));
        let height = browser.eval("document.documentElement.scrollHeight");
        assert!(
            height.as_u64().is_some_and(|h| h <= u64::from(A4_HEIGHT)),
            "the printed poster ({ui}) is {height} px high, the sheet {A4_HEIGHT}"
        );
    }
    // And the PDF an operator would print, to look at.
    let pdf = artefacts().join("poster.pdf");
    chrome(
        &binary,
        profile.path(),
        &format!("--print-to-pdf={}", pdf.display()),
        &format!("{}/poster", node.base),
    );
    assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF"));
}

#[test]
fn the_operator_page_on_a_phone() {
    let Some(binary) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    demo::load(&node.api, &demo::sample()).unwrap();
    let peer_id = node.peer_id();
    let mut browser = Browser::launch(&binary, profile.path(), 390, 844);
    browser.goto(&format!("{}/operator?ui=qu", node.base));
    let html = browser.html();
    assert!(html.contains(&peer_id), "{html}");
    assert!(html.contains("Prácticas agrícolas andinas"), "{html}");
    browser.screenshot(&artefacts().join("operator.png"));
    // Creating a collection through the page brings the page back with it.
    browser.fill(r#"form[action="/operator"].entry"#, "name", "semillas");
    browser.fill(r#"form[action="/operator"].entry"#, "title", "Muyukuna");
    browser.click_and_wait(r#"form[action="/operator"].entry button[type=submit]"#);
    assert_eq!(browser.path(), "/operator");
    let html = browser.html();
    assert!(html.contains("Muyukuna"), "{html}");
}

/// Status and bytes of a small thumbnail.
fn thumbnail(base: &str, hash: &str) -> (u16, Vec<u8>) {
    let response = ureq::get(&format!("{base}/thumbnails/160/{hash}"))
        .call()
        .expect("the thumbnail");
    let status = response.status();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes).unwrap();
    (status, bytes)
}

//! The pages in a real headless Chromium (Debian's `chromium`) on a phone-sized viewport: the
//! home page, a search for `fermentacion`, the cacao entry. Screenshots are kept under the
//! target dir (`browser/`) as artefacts. Skipped, saying so, where no Chromium is installed
//! (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use minga_tests::{Node, demo, wait_until};

/// A phone: 390 × 844 CSS pixels.
const VIEWPORT: &str = "--window-size=390,844";

fn chromium() -> Option<PathBuf> {
    let candidates = ["chromium", "chromium-browser"];
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| candidates.iter().map(move |c| dir.join(c)))
        .find(|p| p.is_file())
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
        eprintln!("skipped: no chromium binary on PATH (apt-get install chromium)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let artefacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&artefacts).unwrap();
    let node = Node::start(dir.path());
    let loaded = demo::load(&node.api, &demo::sample()).unwrap();
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
    eprintln!("screenshots in {}", artefacts.display());
}

//! The web pages and the write policy through a real node: pages in the asked language with
//! hostile text escaped, and LAN writes refused without the contributor code, accepted with it
//! (header, CLI token, or the form's session), forms refused without their CSRF token; the
//! poster for phones; and the operator's page, which only the operator opens and posts to.

use std::time::Duration;

use minga_tests::{Node, cli, cli_ok, multipart, wait_until};
use serde_json::json;

const CODE: &str = "minga-2026";

/// An HTTP client that shows redirects instead of following them.
fn browser() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(Duration::from_secs(30))
        .build()
}

/// Status, `Set-Cookie` values, `Location` and body of a response.
fn answer(response: Result<ureq::Response, ureq::Error>) -> (u16, Vec<String>, String, String) {
    let response = match response {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("no answer: {e}"),
    };
    let cookies = response
        .all("set-cookie")
        .iter()
        .map(|c| c.split(';').next().unwrap_or("").to_owned())
        .collect();
    let location = response.header("location").unwrap_or("").to_owned();
    (
        response.status(),
        cookies,
        location,
        response.into_string().unwrap_or_default(),
    )
}

/// The `minga_csrf=…` cookie among `cookies`, and the token in it that forms echo.
fn csrf_of(cookies: &[String]) -> (String, String) {
    let cookie = cookies
        .iter()
        .find(|c| c.starts_with("minga_csrf="))
        .unwrap_or_else(|| panic!("no CSRF cookie in {cookies:?}"))
        .clone();
    let token = cookie.trim_start_matches("minga_csrf=").to_owned();
    (cookie, token)
}

fn page(node: &Node, path: &str, language: &str) -> (u16, String) {
    let (status, _, _, body) = answer(
        browser()
            .get(&format!("{}{path}", node.base))
            .set("Accept-Language", language)
            .call(),
    );
    (status, body)
}

#[test]
fn pages_render_in_the_asked_language_and_escape_user_text() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let (status, _) = node.post(
        "/api/v1/collections",
        r#"{"name": "practicas", "title": "<script>c()</script>"}"#,
    );
    assert_eq!(status, 201);
    let new = json!({"collection": "practicas", "kind": "practice", "lang": "es",
        "title": "Cacao <script>alert(1)</script>", "license": "CC-BY-4.0", "authors": ["Rosa"],
        "body": "Fermentar **cinco** días. <img src=x onerror=alert(1)> [x](javascript:alert(2))"});
    let (status, answer_) = node.post("/api/v1/entries", &new.to_string());
    assert_eq!(status, 201);
    let id = answer_["id"].as_str().unwrap().to_owned();

    let (status, home) = page(&node, "/", "qu-EC,es;q=0.5");
    assert_eq!(status, 200);
    assert!(home.contains(r#"<html lang="qu">"#) && home.contains("Maskana"));
    assert!(home.contains("Cacao &lt;script&gt;"), "{home}");
    assert!(!home.contains("<script>"));
    assert!(home.len() < 100 * 1024);

    let (status, entry) = page(&node, &format!("/entries/{id}"), "en");
    assert_eq!(status, 200);
    assert!(entry.contains("<strong>cinco</strong>"), "{entry}");
    assert!(!entry.contains("<img src=\"x\""), "{entry}");
    assert!(!entry.contains("href=\"javascript"), "{entry}");
    assert!(
        entry.contains("Rosa") && entry.contains("CC-BY-4.0"),
        "attribution: {entry}"
    );
    assert!(entry.len() < 100 * 1024);

    wait_until(5, "the search page's hit", || {
        page(&node, "/search?q=fermentar", "es")
            .1
            .contains("<mark>Fermentar</mark>")
    });
    let (status, missing) = page(&node, "/entries/2NEpo7TZRRrLZSi2U", "es");
    assert_eq!(status, 400, "{missing}");

    // Open data: the collection as CSV and JSON.
    let (status, _, _, csv) = answer(
        browser()
            .get(&format!(
                "{}/api/v1/collections/practicas/export?format=csv",
                node.base
            ))
            .call(),
    );
    assert_eq!(status, 200);
    assert!(csv.starts_with("id,kind,title,"), "{csv}");
    assert!(csv.contains("Cacao <script>alert(1)</script>"), "{csv}");
    let (status, json) = node.get("/api/v1/collections/practicas/export?format=json");
    assert_eq!(status, 200);
    assert_eq!(json["entries"][0]["id"], id.as_str());
    assert_eq!(
        node.get("/api/v1/collections/practicas/export?format=xml")
            .0,
        400
    );

    // The API's description, generated from its handlers.
    let (status, openapi) = node.get("/api/v1/openapi.json");
    assert_eq!(status, 200);
    assert!(
        openapi["openapi"].as_str().unwrap().starts_with("3."),
        "{openapi}"
    );
    for path in [
        "/api/v1/entries",
        "/api/v1/entries/{id}/history",
        "/api/v1/blobs",
    ] {
        assert!(openapi["paths"][path].is_object(), "{path} in {openapi}");
    }

    // The language switch is remembered in a cookie.
    let (_, cookies, _, body) = answer(browser().get(&format!("{}/?ui=en", node.base)).call());
    assert!(body.contains(r#"<html lang="en">"#));
    assert!(cookies.iter().any(|c| c == "minga_ui=en"), "{cookies:?}");
}

#[test]
fn lan_writes_need_the_contributor_code() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(
        dir.path(),
        &["--api", "0.0.0.0:0", "--contributor-code", CODE],
    );
    // Without a credential: 403, and nothing changes.
    let (status, refused) = node.post("/api/v1/collections", r#"{"name": "practicas"}"#);
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"]["code"], "forbidden");
    assert_eq!(node.get("/api/v1/collections").1["collections"], json!([]));
    let wrong = browser()
        .post(&format!("{}/api/v1/collections", node.base))
        .set("X-Contributor-Code", "minga-2025")
        .send_string(r#"{"name": "practicas"}"#);
    assert_eq!(answer(wrong).0, 403);
    // With the code in a header, or the CLI's token from the data dir.
    let with_code = browser()
        .post(&format!("{}/api/v1/collections", node.base))
        .set("X-Contributor-Code", CODE)
        .send_string(r#"{"name": "practicas"}"#);
    assert_eq!(answer(with_code).0, 201);
    cli_ok(dir.path(), &["collection", "create", "memoria"]);
    // A cross-site page cannot write even on loopback.
    let cross = browser()
        .post(&format!("{}/api/v1/collections", node.base))
        .set("X-Contributor-Code", CODE)
        .set("Origin", "http://evil.example")
        .send_string(r#"{"name": "otra"}"#);
    assert_eq!(answer(cross).0, 403);
    assert!(!cli(dir.path(), &["collection", "list"]).stdout.is_empty());

    // The form: asks for the code once, then keeps a session.
    let base = &node.base;
    let (status, _, location, _) = answer(browser().get(&format!("{base}/entries/new")).call());
    assert_eq!(
        (status, location.as_str()),
        (303, "/login?next=/entries/new")
    );
    let (_, cookies, _, login) = answer(
        browser()
            .get(&format!("{base}/login?next=/entries/new"))
            .call(),
    );
    let (csrf_cookie, csrf) = csrf_of(&cookies);
    assert!(login.contains(&csrf));
    let post = |path: &str, cookie: &str, form: &[(&str, &str)]| {
        answer(
            browser()
                .post(&format!("{base}{path}"))
                .set("Cookie", cookie)
                .send_form(form),
        )
    };
    let (status, _, _, _) = post("/login", &csrf_cookie, &[("code", "nope"), ("csrf", &csrf)]);
    assert_eq!(status, 403);
    let (status, cookies, location, _) = post(
        "/login",
        &csrf_cookie,
        &[("code", CODE), ("csrf", &csrf), ("next", "/entries/new")],
    );
    assert_eq!((status, location.as_str()), (303, "/entries/new"));
    let session = cookies
        .iter()
        .find(|c| c.starts_with("minga_session="))
        .unwrap();
    let both = format!("{csrf_cookie}; {session}");
    let collections = node.get("/api/v1/collections").1;
    let collection = collections["collections"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let form = [
        ("collection", collection.as_str()),
        ("kind", "practice"),
        ("title", "Abono de lombriz"),
        ("body", "Humus en cajones."),
        ("license", "CC0-1.0"),
        ("lang", "es"),
        ("tags", "abono, lombriz"),
    ];
    // Without the CSRF token the form is refused and nothing is written.
    let (status, _, _, _) = post("/entries/new", session, &form);
    assert_eq!(status, 403);
    let mut with_csrf = form.to_vec();
    with_csrf.push(("csrf", &csrf));
    let (status, _, location, body) = post("/entries/new", &both, &with_csrf);
    assert_eq!(status, 303, "{body}");
    assert!(location.starts_with("/entries/"), "{location}");
    wait_until(5, "the new entry in search", || {
        page(&node, "/search?q=lombriz", "es")
            .1
            .contains("Abono de lombriz")
    });
    let (status, shown) = page(&node, &location, "es");
    assert_eq!(status, 200);
    assert!(shown.contains("Humus en cajones."));
}

#[test]
fn the_edit_form_changes_an_entry_with_files_and_its_history_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(dir.path(), &["--max-blob-mb", "1"]);
    assert_eq!(
        node.post("/api/v1/collections", r#"{"name": "practicas"}"#)
            .0,
        201
    );
    let new = json!({"collection": "practicas", "kind": "practice", "lang": "es",
        "title": "Abono de lombriz", "license": "CC0-1.0", "authors": ["Rosa"],
        "body": "Humus en cajones.", "tags": ["abono"]});
    let (status, created) = node.post("/api/v1/entries", &new.to_string());
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap().to_owned();
    let base = &node.base;

    let (status, cookies, _, form) =
        answer(browser().get(&format!("{base}/entries/{id}/edit")).call());
    assert_eq!(status, 200, "{form}");
    assert!(form.contains("Humus en cajones."), "{form}");
    assert!(form.contains(r#"enctype="multipart/form-data""#), "{form}");
    let csrf_cookie = cookies
        .iter()
        .find(|c| c.starts_with("minga_csrf="))
        .unwrap()
        .clone();
    let csrf = csrf_cookie.trim_start_matches("minga_csrf=").to_owned();
    let post = |fields: &[(&str, &str)], files: &[(&str, &str, &[u8])]| {
        let (content_type, body) = multipart(fields, files);
        answer(
            browser()
                .post(&format!("{base}/entries/{id}/edit"))
                .set("Cookie", &csrf_cookie)
                .set("Content-Type", &content_type)
                .send_bytes(&body),
        )
    };
    let note = "Cosechar cada tres meses.".as_bytes();
    let fields = [
        ("csrf", csrf.as_str()),
        ("title", "Abono de lombriz roja"),
        ("body", "Humus en cajones."),
        ("lang", "es"),
        ("tags", "abono, lombriz"),
        ("place", ""),
    ];
    let (status, _, location, body) = post(&fields, &[("files", "notas/cosecha.txt", note)]);
    assert_eq!(
        (status, location.as_str()),
        (303, format!("/entries/{id}").as_str()),
        "{body}"
    );
    let entry = node.get(&format!("/api/v1/entries/{id}")).1;
    assert_eq!(entry["title"], "Abono de lombriz roja");
    assert_eq!(entry["tags"], json!(["abono", "lombriz"]));
    assert_eq!(entry["authors"][0]["name"], "Rosa", "authors are kept");
    assert_eq!(entry["attachments"][0]["name"], "cosecha.txt");
    assert_eq!(entry["attachments"][0]["size"], note.len());

    // The history: the change, who made it and which fields, newest first.
    let (status, history) = node.get(&format!("/api/v1/entries/{id}/history"));
    assert_eq!(status, 200);
    let changes = history["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{history}");
    assert_eq!(
        changes[0]["fields"],
        json!(["title", "tags", "attachments"])
    );
    assert_eq!(changes[1]["fields"], json!(["created"]));
    assert_eq!(changes[1]["name"], "Rosa");
    assert!(changes[0]["time"].as_i64() >= changes[1]["time"].as_i64());
    let (status, page_) = page(&node, &format!("/entries/{id}/history"), "en");
    assert_eq!(status, 200);
    assert!(page_.contains("History of changes"), "{page_}");
    assert!(page_.contains("title, tags, attachments"), "{page_}");
    let (_, shown) = page(&node, &format!("/entries/{id}"), "en");
    assert!(
        shown.contains(&format!(r#"href="/entries/{id}/history""#)),
        "{shown}"
    );

    // A file far over the node's blob limit: a 413 page that says the limit (not a reset
    // connection), and no change.
    let big = vec![7u8; 12 << 20];
    let (status, _, _, refused) = post(&fields, &[("files", "grande.bin", &big)]);
    assert_eq!(status, 413, "{refused}");
    assert!(refused.contains("1 MB"), "{refused}");
    assert!(
        refused.contains("Abono de lombriz roja"),
        "the form keeps what was typed"
    );
    assert_eq!(
        node.get(&format!("/api/v1/entries/{id}")).1["heads"],
        entry["heads"]
    );

    // Without the CSRF token no file is even stored.
    let (status, _, _, _) = post(&[("title", "x")], &[("files", "otra.txt", b"otra")]);
    assert_eq!(status, 403);
    assert_eq!(
        node.get(&format!("/api/v1/entries/{id}")).1["heads"],
        entry["heads"]
    );
    // Unticking an attachment removes it.
    let (status, _, _, body) = post(&fields, &[]);
    assert_eq!(status, 303, "{body}");
    let entry = node.get(&format!("/api/v1/entries/{id}")).1;
    assert_eq!(entry["attachments"], json!([]));
}

#[test]
fn the_poster_points_phones_at_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let response = browser()
        .get(&format!("{}/poster?ui=en", node.base))
        .call()
        .expect("the poster");
    assert_eq!(response.status(), 200);
    let csp = response.header("content-security-policy").unwrap_or("");
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let poster = response.into_string().unwrap();
    assert_eq!(poster.matches("<svg").count(), 1, "{poster}");
    assert!(!poster.contains("<script"), "{poster}");
    let url = format!("{}/", node.base);
    assert!(
        poster.contains(&format!(r#"<p class="url">{url}</p>"#)),
        "{poster}"
    );
    // On loopback, phones cannot reach it, and the screen says so.
    assert!(poster.contains(r#"role="alert""#), "{poster}");
    let (status, kichwa) = page(&node, "/poster", "qu");
    assert_eq!(status, 200);
    assert!(kichwa.contains("Wi-Fi-man tinkiy"), "{kichwa}");
}

/// Posts a form to `/operator` with these cookies.
fn operator_post(
    node: &Node,
    cookie: &str,
    form: &[(&str, &str)],
) -> (u16, Vec<String>, String, String) {
    answer(
        browser()
            .post(&format!("{}/operator", node.base))
            .set("Cookie", cookie)
            .send_form(form),
    )
}

/// Whether the operator's page offers `action` on `id` (a button's hidden fields).
fn offers(page: &str, action: &str, id: &str) -> bool {
    page.contains(&format!(
        r#"name="action" value="{action}"><input type="hidden" name="id" value="{id}""#
    ))
}

/// A peer id no node of the test has.
const STRANGER: &str = "12D3KooWDjGaXKPBKNvJipK5Nzbhino79xmFxqzvBV3TySpA2CF8";

#[test]
fn the_operator_page_creates_follows_unfollows_and_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let get = |cookie: &str| {
        answer(
            browser()
                .get(&format!("{}/operator?ui=en", node.base))
                .set("Cookie", cookie)
                .call(),
        )
    };
    // On a loopback-only node whoever reaches it is the operator.
    let (status, cookies, _, overview) = get("");
    assert_eq!(status, 200, "{overview}");
    let peer_id = node.peer_id();
    assert!(overview.contains(&peer_id), "{overview}");
    assert!(overview.contains("Disk used by the data"), "{overview}");
    assert!(
        overview.contains("No code: only this computer can write."),
        "{overview}"
    );
    let (cookie, csrf) = csrf_of(&cookies);
    let post = |form: &[(&str, &str)]| operator_post(&node, &cookie, form);

    // Without the CSRF token nothing is written.
    let (status, _, _, _) = post(&[("action", "create"), ("name", "semillas")]);
    assert_eq!(status, 403);
    assert_eq!(node.get("/api/v1/collections").1["collections"], json!([]));

    let (status, _, location, body) = post(&[
        ("csrf", &csrf),
        ("action", "create"),
        ("name", "semillas"),
        ("title", "Semillas nativas"),
        ("license", "CC-BY-4.0"),
    ]);
    assert_eq!((status, location.as_str()), (303, "/operator"), "{body}");
    let created = &node.get("/api/v1/collections").1["collections"][0];
    assert_eq!(created["license"], "CC-BY-4.0");
    let id = created["id"].as_str().unwrap().to_owned();
    let shown = get(&cookie).3;
    assert!(shown.contains("Semillas nativas"), "{shown}");
    assert!(offers(&shown, "unfollow", &id), "{shown}");

    let (status, _, _, _) = post(&[("csrf", &csrf), ("action", "unfollow"), ("id", &id)]);
    assert_eq!(status, 303);
    assert!(!offers(&get(&cookie).3, "unfollow", &id));
    let (status, _, _, _) = post(&[("csrf", &csrf), ("action", "follow"), ("id", &id)]);
    assert_eq!(status, 303);
    assert!(offers(&get(&cookie).3, "unfollow", &id));

    let (status, _, _, _) = post(&[("csrf", &csrf), ("action", "block"), ("id", STRANGER)]);
    assert_eq!(status, 303);
    assert!(offers(&get(&cookie).3, "unblock", STRANGER));
    let (status, _, _, _) = post(&[("csrf", &csrf), ("action", "unblock"), ("id", STRANGER)]);
    assert_eq!(status, 303);
    assert!(!offers(&get(&cookie).3, "unblock", STRANGER));

    // Refused input comes back on the page, said, with nothing written.
    let (status, _, _, refused) = post(&[("csrf", &csrf), ("action", "block"), ("id", "x")]);
    assert_eq!(status, 400, "{refused}");
    assert!(refused.contains(r#"role="alert""#), "{refused}");
    let (status, _, _, refused) =
        post(&[("csrf", &csrf), ("action", "create"), ("name", "No Vale")]);
    assert!((400..500).contains(&status), "{status}: {refused}");
    assert!(refused.contains(r#"role="alert""#), "{refused}");
    assert_eq!(
        node.get("/api/v1/collections").1["collections"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn on_the_lan_the_operator_page_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(
        dir.path(),
        &["--api", "0.0.0.0:0", "--contributor-code", CODE],
    );
    let url = format!("{}/operator", node.base);
    let peer_id = node.peer_id();
    // No credential: 403, the form for the token, and nothing of the node's.
    let (status, cookies, _, refused) = answer(browser().get(&url).call());
    assert_eq!(status, 403, "{refused}");
    assert!(refused.contains(r#"name="token""#), "{refused}");
    assert!(!refused.contains(&peer_id), "{refused}");
    assert!(!refused.contains(CODE), "{refused}");
    let (cookie, csrf) = csrf_of(&cookies);

    // A contributor is no operator: neither its code nor its session opens the page.
    let with_code = browser().get(&url).set("X-Contributor-Code", CODE).call();
    assert_eq!(answer(with_code).0, 403);
    let (_, cookies, _, _) = answer(
        browser()
            .post(&format!("{}/login", node.base))
            .set("Cookie", &cookie)
            .send_form(&[("code", CODE), ("csrf", &csrf)]),
    );
    let session = cookies
        .iter()
        .find(|c| c.starts_with("minga_session="))
        .unwrap();
    let contributor = format!("{cookie}; {session}");
    assert_eq!(
        answer(browser().get(&url).set("Cookie", &contributor).call()).0,
        403
    );
    let (status, _, _, _) = operator_post(
        &node,
        &contributor,
        &[("csrf", &csrf), ("action", "create"), ("name", "ajena")],
    );
    assert_eq!(status, 403);
    assert_eq!(node.get("/api/v1/collections").1["collections"], json!([]));

    // The data dir's token: as the API's bearer, or entered once in the form.
    let token = std::fs::read_to_string(dir.path().join("api.token")).unwrap();
    let bearer = browser()
        .get(&url)
        .set("Authorization", &format!("Bearer {}", token.trim()))
        .call();
    let (status, _, _, overview) = answer(bearer);
    assert_eq!(status, 200);
    assert!(overview.contains(&peer_id), "{overview}");
    let (status, _, _, _) = operator_post(
        &node,
        &cookie,
        &[("csrf", &csrf), ("action", "login"), ("token", "guess")],
    );
    assert_eq!(status, 403);
    let (status, cookies, location, _) = operator_post(
        &node,
        &cookie,
        &[("csrf", &csrf), ("action", "login"), ("token", &token)],
    );
    assert_eq!((status, location.as_str()), (303, "/operator"));
    let operator = cookies
        .iter()
        .find(|c| c.starts_with("minga_operator="))
        .unwrap();
    let operator = format!("{cookie}; {operator}");
    let response = browser().get(&url).set("Cookie", &operator).call();
    let cache = response
        .as_ref()
        .ok()
        .and_then(|r| r.header("cache-control"));
    assert_eq!(cache, Some("no-store"));
    let (status, _, _, overview) = answer(response);
    assert_eq!(status, 200);
    assert!(overview.contains(CODE), "the contributor code: {overview}");
    let (status, _, _, _) = operator_post(
        &node,
        &operator,
        &[("csrf", &csrf), ("action", "create"), ("name", "propia")],
    );
    assert_eq!(status, 303);
    assert_eq!(
        node.get("/api/v1/collections").1["collections"][0]["name"],
        "propia"
    );
}

#[test]
fn the_operator_page_carries_a_bundle_on_a_drive_to_another_node() {
    let (here, there) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // The USB drive: a directory both nodes are told they may use.
    let drive = tempfile::tempdir().unwrap();
    let drive_path = drive.path().canonicalize().unwrap();
    let drive_arg = drive_path.to_str().unwrap();
    let library = Node::start_with(here.path(), &["--bundle-dir", drive_arg]);
    let (status, _) = library.post("/api/v1/collections", r#"{"name": "semillas"}"#);
    assert_eq!(status, 201);
    let new = json!({"collection": "semillas", "kind": "practice", "lang": "es",
        "title": "Guardar semillas de quinua", "license": "CC-BY-4.0", "body": "En ollas de barro."});
    assert_eq!(library.post("/api/v1/entries", &new.to_string()).0, 201);

    let (status, cookies, _, overview) = answer(
        browser()
            .get(&format!("{}/operator?ui=en", library.base))
            .call(),
    );
    assert_eq!(status, 200);
    assert!(
        overview.contains(&format!(r#"<option value="{drive_arg}""#)),
        "the drive offered: {overview}"
    );
    let (cookie, csrf) = csrf_of(&cookies);
    let cookie = format!("{cookie}; minga_ui=en");
    let export = [
        ("csrf", csrf.as_str()),
        ("action", "export"),
        ("collection", ""),
        ("dir", drive_arg),
        ("file", "viaje.minga"),
    ];
    let (status, _, _, written) = operator_post(&library, &cookie, &export);
    assert_eq!(status, 200, "{written}");
    assert!(written.contains("Bundle written"), "{written}");
    let bundle = drive_path.join("viaje.minga");
    assert!(bundle.is_file());
    // Never over an existing file, and never outside the bundle directories.
    let (status, _, _, again) = operator_post(&library, &cookie, &export);
    assert_eq!(status, 409, "{again}");
    assert!(again.contains(r#"role="alert""#), "{again}");
    let mut astray = export;
    astray[3] = ("dir", "/tmp");
    assert_eq!(operator_post(&library, &cookie, &astray).0, 422);

    let school = Node::start_with(there.path(), &["--bundle-dir", drive_arg]);
    let (_, cookies, _, overview) = answer(
        browser()
            .get(&format!("{}/operator?ui=en", school.base))
            .call(),
    );
    let path = bundle.to_str().unwrap();
    assert!(offers(&overview, "import", path), "{overview}");
    let (cookie, csrf) = csrf_of(&cookies);
    let cookie = format!("{cookie}; minga_ui=en");
    let (status, _, _, read) = operator_post(
        &school,
        &cookie,
        &[("csrf", &csrf), ("action", "import"), ("id", path)],
    );
    assert_eq!(status, 200, "{read}");
    assert!(read.contains("Bundle imported: entries 1 new"), "{read}");
    assert_eq!(
        school.get("/api/v1/collections").1["collections"][0]["name"],
        "semillas"
    );
    let (status, _, _, refused) = operator_post(
        &school,
        &cookie,
        &[("csrf", &csrf), ("action", "import"), ("id", "/etc/passwd")],
    );
    assert_eq!(status, 422, "{refused}");
}

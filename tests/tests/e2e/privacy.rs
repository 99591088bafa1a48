//! What a reader may get from a real node: private entries and unconsented histories only with
//! a credential on a LAN node and never in an export; searches no deeper than the node allows;
//! and nothing left behind by a refused form.

use std::time::Duration;

use minga_tests::{Api, Node, multipart, wait_until};
use serde_json::{Value, json};

const CODE: &str = "minga-2026";

/// Status and body text of a request, whatever the status.
fn text(request: ureq::Request) -> (u16, String) {
    match request.call() {
        Ok(r) | Err(ureq::Error::Status(_, r)) => (r.status(), r.into_string().unwrap_or_default()),
        Err(e) => panic!("no answer: {e}"),
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(Duration::from_secs(30))
        .build()
}

fn ids(page: &Value) -> Vec<String> {
    page["entries"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_search_deeper_than_the_node_pages_is_refused_and_the_node_lives_on() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    assert_eq!(
        node.post("/api/v1/collections", r#"{"name": "practicas"}"#)
            .0,
        201
    );
    let new = json!({"collection": "practicas", "kind": "practice", "lang": "es",
        "title": "Fermentación del cacao", "body": "Cinco días.", "license": "CC0-1.0"});
    assert_eq!(node.post("/api/v1/entries", &new.to_string()).0, 201);
    // This cursor once made the index allocate 800 PB, and the process abort.
    let (status, refused) = node.get("/api/v1/entries?q=cacao&cursor=100000000000000000");
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["code"], "bad_request");
    let (_, page) = text(agent().get(&format!(
        "{}/search?q=cacao&cursor=100000000000000000",
        node.base
    )));
    assert!(page.contains("10000"), "the page says the bound: {page}");
    assert_eq!(node.get("/api/v1/entries?q=cacao&limit=501").0, 400);
    assert_eq!(node.get("/api/v1/entries?q=cacao&limit=0").0, 400);
    assert_eq!(node.get("/api/v1/status").0, 200, "the node still answers");
    wait_until(5, "the entry in search", || {
        node.get("/api/v1/entries?q=cacao&cursor=0").1["entries"]
            .as_array()
            .is_some_and(|hits| hits.len() == 1)
    });
}

#[test]
fn private_entries_and_unconsented_histories_stay_with_the_nodes_own_users() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(
        dir.path(),
        &["--api", "0.0.0.0:0", "--contributor-code", CODE],
    );
    let anonymous: &Api = &node;
    let member = node.api.clone().with_contributor_code(CODE);
    assert_eq!(
        member
            .post("/api/v1/collections", r#"{"name": "memoria"}"#)
            .0,
        201
    );
    let upload = agent()
        .post(&format!("{}/api/v1/blobs", node.base))
        .set("X-Contributor-Code", CODE)
        .send_bytes(b"la voz de la abuela");
    let blob: Value = upload.unwrap().into_json().unwrap();
    let hash = blob["hash"].as_str().unwrap().to_owned();
    let create = |entry: Value| {
        let (status, created) = member.post("/api/v1/entries", &entry.to_string());
        assert_eq!(status, 201, "{created}");
        created["id"].as_str().unwrap().to_owned()
    };
    let common = json!({"collection": "memoria", "lang": "es", "license": "CC-BY-4.0"});
    let with = |fields: Value| {
        let mut entry = common.clone();
        entry
            .as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        entry
    };
    let public = create(with(json!({"kind": "practice",
        "title": "Minga del molino", "body": "Todos limpian la acequia del molino."})));
    let private = create(with(json!({"kind": "practice", "private": true,
        "title": "Receta secreta del molino", "body": "Solo para la familia del molino.",
        "attachments": [{"hash": hash, "name": "voz.txt", "mime": "text/plain",
            "size": blob["size"]}]})));
    let pending = create(with(json!({"kind": "history",
        "title": "Historia del molino viejo", "body": "Don Luis contó lo del molino.",
        "consent": [{"name": "Luis", "status": "pending"}]})));
    let hidden = [private.as_str(), pending.as_str()];
    wait_until(10, "every entry in search", || {
        ids(&member.get("/api/v1/entries?q=molino").1).len() == 3
    });

    // An anonymous reader on the LAN: as if they were not there.
    for id in hidden {
        let (status, refused) = anonymous.get(&format!("/api/v1/entries/{id}"));
        assert_eq!(status, 404, "{refused}");
        assert_eq!(refused["error"]["code"], "not_found");
        assert_eq!(
            anonymous.get(&format!("/api/v1/entries/{id}/history")).0,
            404
        );
        let (status, _) = text(agent().get(&format!("{}/entries/{id}", node.base)));
        assert_eq!(status, 404);
        let (status, _) = text(agent().get(&format!("{}/entries/{id}/history", node.base)));
        assert_eq!(status, 404);
    }
    for query in ["", "?q=molino", "?collection=memoria"] {
        let (status, page) = anonymous.get(&format!("/api/v1/entries{query}"));
        assert_eq!(status, 200, "{page}");
        assert_eq!(ids(&page), vec![public.clone()], "{query}");
    }
    for path in ["/", "/search?q=molino"] {
        let (status, page) = text(agent().get(&format!("{}{path}", node.base)));
        assert_eq!(status, 200, "{path}");
        assert!(page.contains("Minga del molino"), "{path}: {page}");
        for title in ["Receta secreta", "Historia del molino viejo"] {
            assert!(!page.contains(title), "{path} shows {title}");
        }
    }
    let listed = anonymous.get("/api/v1/blobs").1.to_string();
    assert!(!listed.contains(&hash), "{listed}");
    let (status, _) = text(agent().get(&format!("{}/api/v1/blobs/{hash}", node.base)));
    assert_eq!(status, 404);

    // With the contributor code: everything.
    for id in hidden {
        assert_eq!(member.get(&format!("/api/v1/entries/{id}")).0, 200);
        assert_eq!(member.get(&format!("/api/v1/entries/{id}/history")).0, 200);
        let (status, _) = text(
            agent()
                .get(&format!("{}/entries/{id}", node.base))
                .set("X-Contributor-Code", CODE),
        );
        assert_eq!(status, 200);
    }
    assert_eq!(ids(&member.get("/api/v1/entries?q=molino").1).len(), 3);
    assert_eq!(ids(&member.get("/api/v1/entries").1).len(), 3);
    assert!(
        member
            .get("/api/v1/blobs")
            .1
            .to_string()
            .contains(hash.as_str())
    );

    // An export is open data: never the private ones, whoever asks.
    for format in ["json", "csv"] {
        for code in [None, Some(CODE)] {
            let mut request = agent().get(&format!(
                "{}/api/v1/collections/memoria/export?format={format}",
                node.base
            ));
            if let Some(code) = code {
                request = request.set("X-Contributor-Code", code);
            }
            let (status, export) = text(request);
            assert_eq!(status, 200, "{export}");
            assert!(export.contains(&public), "{format}: {export}");
            for id in hidden {
                assert!(!export.contains(id), "{format} exports {id}");
            }
            assert!(!export.contains("Receta secreta"), "{format}");
        }
    }
}

#[test]
fn a_refused_form_keeps_none_of_the_files_it_brought() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let (status, created) = node.post("/api/v1/collections", r#"{"name": "practicas"}"#);
    assert_eq!(status, 201);
    let collection = created["id"].as_str().unwrap().to_owned();
    // A file the node held before the form: a refusal must not take it.
    let held = agent()
        .post(&format!("{}/api/v1/blobs", node.base))
        .send_bytes(b"ya estaba aqui");
    let held: Value = held.unwrap().into_json().unwrap();
    let held = held["hash"].as_str().unwrap().to_owned();

    let response = agent().get(&format!("{}/entries/new", node.base)).call();
    let response = response.unwrap();
    let csrf_cookie = response
        .all("set-cookie")
        .iter()
        .map(|c| c.split(';').next().unwrap_or("").to_owned())
        .find(|c| c.starts_with("minga_csrf="))
        .unwrap();
    let csrf = csrf_cookie.trim_start_matches("minga_csrf=").to_owned();
    let post = |title: &str, files: &[(&str, &str, &[u8])]| {
        let fields = [
            ("csrf", csrf.as_str()),
            ("collection", collection.as_str()),
            ("kind", "practice"),
            ("title", title),
            ("body", "Humus en cajones."),
            ("license", "CC0-1.0"),
            ("lang", "es"),
        ];
        let (content_type, body) = multipart(&fields, files);
        match agent()
            .post(&format!("{}/entries/new", node.base))
            .set("Cookie", &csrf_cookie)
            .set("Content-Type", &content_type)
            .send_bytes(&body)
        {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r.status(),
            Err(e) => panic!("no answer: {e}"),
        }
    };
    let stored = || -> Vec<String> {
        node.get("/api/v1/blobs").1["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["hash"].as_str().unwrap().to_owned())
            .collect()
    };
    let on_disk = || {
        std::fs::read_dir(dir.path().join("blobs/data"))
            .unwrap()
            .count()
    };
    assert_eq!((stored(), on_disk()), (vec![held.clone()], 1));

    // A ninth file: 400, after eight were stored.
    let contents: Vec<Vec<u8>> = (0..9).map(|i| format!("foto {i}").into_bytes()).collect();
    let files: Vec<(&str, &str, &[u8])> = contents
        .iter()
        .map(|bytes| ("files", "foto.jpg", bytes.as_slice()))
        .collect();
    assert_eq!(post("Abono", &files), 400);
    assert_eq!((stored(), on_disk()), (vec![held.clone()], 1));

    // Refused by policy (an empty title): 422, with a new file and the one held before.
    let files = [
        ("files", "nueva.txt", b"nueva".as_slice()),
        ("files", "vieja.txt", b"ya estaba aqui".as_slice()),
    ];
    assert_eq!(post("", &files), 422);
    assert_eq!((stored(), on_disk()), (vec![held.clone()], 1));

    // Taken: the files stay.
    assert_eq!(post("Abono", &files), 303);
    assert_eq!(stored().len(), 2);
}

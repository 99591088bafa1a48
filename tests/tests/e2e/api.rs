//! The HTTP contract: shapes, status codes, error codes, listing, edits and tombstones.

use minga_tests::{Node, demo};
use serde_json::{Value, json};

fn node() -> (tempfile::TempDir, Node) {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    (dir, node)
}

fn create_collection(node: &Node, name: &str) -> String {
    let (status, answer) = node.post("/api/v1/collections", &json!({"name": name}).to_string());
    assert_eq!(status, 201, "{answer}");
    answer["id"].as_str().unwrap().to_owned()
}

fn error_code(answer: &Value) -> &str {
    answer["error"]["code"].as_str().unwrap_or("<none>")
}

#[test]
fn an_entry_has_the_shape_of_the_contract() {
    let (_dir, node) = node();
    let collection = create_collection(&node, "practicas");
    let new = json!({
        "collection": collection, "kind": "history", "title": "La minga del agua",
        "body": "Cuando llegó el agua…", "license": "CC-BY-4.0", "lang": "qug",
        "tags": ["agua", "minga"], "place": {"name": "Cotopaxi", "lat": -0.9, "lon": -78.6},
        "authors": ["Rosa", {"name": "Luis"}],
        "consent": [{"name": "Don Manuel", "status": "given", "how": "oral", "date": "2026-05-01"}]
    });
    let (status, answer) = node.post("/api/v1/entries", &new.to_string());
    assert_eq!(status, 201, "{answer}");
    let id = answer["id"].as_str().unwrap();
    let (status, entry) = node.get(&format!("/api/v1/entries/{id}"));
    assert_eq!(status, 200);
    let keys: Vec<&str> = entry
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "heads",
            "schema",
            "kind",
            "collection",
            "license",
            "title",
            "body",
            "lang",
            "tags",
            "subjects",
            "place",
            "authors",
            "created",
            "updated",
            "attachments",
            "consent",
            "private"
        ]
    );
    assert_eq!(entry["id"], id);
    assert_eq!(entry["schema"], "minga/entry/1");
    assert_eq!(
        entry["place"],
        json!({"name": "Cotopaxi", "lat": -0.9, "lon": -78.6})
    );
    assert_eq!(entry["tags"], json!(["agua", "minga"]));
    assert_eq!(entry["consent"][0]["status"], "given");
    let heads = entry["heads"].as_array().unwrap();
    assert_eq!(heads.len(), 1);
    let head = heads[0].as_str().unwrap();
    assert!(head.len() == 64 && head.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
    let authors = entry["authors"].as_array().unwrap();
    assert_eq!(authors[0]["name"], "Rosa");
    assert_eq!(authors[1]["name"], "Luis");
    let key = authors[0]["key"].as_str().unwrap();
    assert!(key.len() == 64 && key.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
    assert!(entry["updated"].as_i64().unwrap() >= entry["created"].as_i64().unwrap());

    let (status, status_body) = node.get("/api/v1/status");
    assert_eq!(status, 200);
    assert_eq!(status_body["entries"], 1);
    assert_eq!(status_body["collections"], 1);
    assert!(
        status_body["peer_id"]
            .as_str()
            .unwrap()
            .starts_with("12D3KooW")
    );
    let (_, collections) = node.get("/api/v1/collections");
    assert_eq!(collections["collections"][0]["entries"], 1);
    assert_eq!(collections["collections"][0]["name"], "practicas");
}

#[test]
fn refused_sample_entries_are_422_and_write_nothing() {
    let (_dir, node) = node();
    let sample = demo::sample();
    demo::load(&node, &sample).unwrap();
    let (_, before) = node.get("/api/v1/entries?limit=500");
    for refused in sample["refused"].as_array().unwrap() {
        let why = refused["why"].as_str().unwrap();
        let expected = match why {
            w if w.contains("licence") => "license_not_open",
            w if w.contains("kind") => "invalid_kind",
            w if w.contains("title") => "empty_title",
            other => panic!("no expectation for {other:?}"),
        };
        let (status, answer) = node.post("/api/v1/entries", &refused["entry"].to_string());
        assert_eq!(
            (status, error_code(&answer)),
            (422, expected),
            "{why}: {answer}"
        );
    }
    let (_, after) = node.get("/api/v1/entries?limit=500");
    assert_eq!(before, after);
    assert_eq!(node.get("/api/v1/status").1["entries"], 20);
}

#[test]
fn bad_input_gets_400_404_413_and_the_node_keeps_serving() {
    let (_dir, node) = node();
    let collection = create_collection(&node, "c");
    let valid = json!({"collection": collection, "kind": "practice", "title": "t", "body": "b",
                       "license": "CC0-1.0"});
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "POST",
            "/api/v1/entries",
            "{not json".into(),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/entries",
            json!({"kind": "practice"}).to_string(),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/entries",
            json!({"title": 5}).to_string(),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/collections",
            "[]".into(),
            400,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/entries/not-an-id",
            String::new(),
            400,
            "malformed_id",
        ),
        (
            "GET",
            "/api/v1/entries/2TSKBAYrCoXAeszf3ZkKxSurdPGW",
            String::new(),
            404,
            "not_found",
        ),
        (
            "GET",
            "/api/v1/entries?limit=0",
            String::new(),
            400,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/entries?limit=501",
            String::new(),
            400,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/entries?cursor=zz",
            String::new(),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/collections",
            json!({"name": "c"}).to_string(),
            409,
            "conflict",
        ),
        (
            "POST",
            "/api/v1/collections",
            json!({"name": "d", "license": "Proprietary"}).to_string(),
            422,
            "license_not_open",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let body = (!body.is_empty()).then_some(body.as_str());
        let (got, answer) = node.send(method, path, body);
        assert_eq!(
            (got, error_code(&answer)),
            (status, code),
            "{method} {path}: {answer}"
        );
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // Well past the 2 MiB limit, so a node that answered without reading the rest would reset
    // the connection under the client's feet. The node may close that connection after the
    // 413, so the oversized request gets a client of its own.
    let (status, answer) =
        minga_tests::Api::new(node.base.clone()).post("/api/v1/entries", &"x".repeat(12 << 20));
    assert_eq!((status, error_code(&answer)), (413, "too_large"));
    let mut big = valid.clone();
    big["body"] = Value::String("a".repeat(300 * 1024));
    let (status, answer) = node.post("/api/v1/entries", &big.to_string());
    assert_eq!((status, error_code(&answer)), (413, "too_large"));
    assert_eq!(node.get("/api/v1/status").1["entries"], 0);
    assert_eq!(node.post("/api/v1/entries", &valid.to_string()).0, 201);
}

#[test]
fn lists_filter_order_and_page() {
    let (_dir, node) = node();
    let loaded = demo::load(&node, &demo::sample()).unwrap();
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = node.get(&format!("/api/v1/entries?limit=7&cursor={cursor}"));
        assert_eq!(status, 200, "{page}");
        seen.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 20);
    let order: Vec<(i64, String)> = seen
        .iter()
        .map(|e| {
            (
                e["updated"].as_i64().unwrap(),
                e["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut sorted = order.clone();
    sorted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    assert_eq!(order, sorted, "newest first");

    let (_, quechua) = node.get("/api/v1/entries?lang=qu");
    let langs: Vec<&str> = quechua["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["lang"].as_str().unwrap())
        .collect();
    assert!(
        !langs.is_empty() && langs.iter().all(|l| l.starts_with("qu")),
        "{langs:?}"
    );
    let (_, rust) = node.get("/api/v1/entries?tag=roya");
    assert_eq!(
        rust["entries"][0]["title"],
        "Manejo de la roya del café con sombra y variedades tolerantes"
    );
    let (_, histories) = node.get("/api/v1/entries?kind=history");
    assert_eq!(histories["entries"].as_array().unwrap().len(), 4);
    let memoria = &loaded.collections["memoria-local"];
    let (_, in_memoria) = node.get(&format!(
        "/api/v1/entries?collection={memoria}&kind=practice"
    ));
    assert!(
        in_memoria["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["collection"] == *memoria)
    );
}

#[test]
fn edits_merge_into_text_and_tombstones_remove_entries() {
    let (_dir, node) = node();
    let collection = create_collection(&node, "c");
    let new = json!({"collection": collection, "kind": "practice", "title": "Bocashi",
                     "body": "Mezclar y voltear.", "license": "CC-BY-SA-4.0", "tags": ["abono"]});
    let id = node.post("/api/v1/entries", &new.to_string()).1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/entries/{id}");
    let (status, edited) = node.patch(
        &path,
        r#"{"body": "Mezclar, tapar y voltear.", "tags": ["abono", "suelo"]}"#,
    );
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["body"], "Mezclar, tapar y voltear.");
    assert_eq!(edited["tags"], json!(["abono", "suelo"]));
    assert_eq!(edited["title"], "Bocashi");
    assert_eq!(node.get(&path).1, edited);
    let (status, answer) = node.patch(&path, r#"{"license": "CC0-1.0"}"#);
    assert_eq!((status, error_code(&answer)), (422, "immutable_field"));
    let (status, answer) = node.patch(&path, r#"{"title": ""}"#);
    assert_eq!((status, error_code(&answer)), (422, "empty_title"));
    assert_eq!(node.get(&path).1, edited, "refused patches change nothing");

    assert_eq!(node.delete(&path).0, 200);
    assert_eq!(error_code(&node.get(&path).1), "not_found");
    let (status, answer) = node.patch(&path, r#"{"title": "otra vez"}"#);
    assert_eq!((status, error_code(&answer)), (422, "tombstoned"));
    assert_eq!(node.get("/api/v1/entries").1["entries"], json!([]));
    assert_eq!(node.get("/api/v1/status").1["entries"], 0);
}

#[test]
fn sigterm_stops_cleanly_and_removes_api_addr() {
    let (dir, mut node) = node();
    create_collection(&node, "c");
    assert!(node.stop(), "exit status 0 after SIGTERM");
    assert!(!dir.path().join("api.addr").exists());
    let again = Node::start(dir.path());
    assert_eq!(again.get("/api/v1/status").1["collections"], 1);
}

#[test]
fn metrics_are_one_openmetrics_exposition_with_every_family_typed() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let response = ureq::get(&format!("{}/metrics", node.api.base))
        .call()
        .unwrap();
    assert!(
        response
            .content_type()
            .starts_with("application/openmetrics-text"),
        "{}",
        response.content_type()
    );
    let text = response.into_string().unwrap();
    assert_eq!(text.matches("# EOF").count(), 1, "one exposition:\n{text}");
    assert!(text.trim_end().ends_with("# EOF"));
    let typed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
        .collect();
    for sample in text.lines().filter(|l| !l.starts_with('#')) {
        let name = sample.split(['{', ' ']).next().unwrap();
        assert!(
            typed.iter().any(|family| name
                .strip_prefix(family)
                .is_some_and(|rest| ["", "_total", "_info", "_created"].contains(&rest))),
            "{name} has no TYPE: Prometheus would read it as untyped"
        );
    }
    for family in [
        "minga_build_info{version=",
        "minga_entries ",
        "minga_store_writes_total ",
        "minga_blob_fetched_bytes_total ",
        "process_resident_memory_bytes ",
        "minga_data_dir_bytes ",
        "minga_sync_requests_sent_total ",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
}

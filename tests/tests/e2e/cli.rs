//! The CLI: output and exit codes of the contract, and the same answers through a running node
//! as on the store opened directly.

use std::path::Path;

use minga_tests::{Node, cli, cli_ok, minga_bin, node_dir};
use serde_json::Value;

/// Runs a fixed session of commands and returns the JSON of what it shows at the end.
fn session(dir: &Path) -> (Value, Value, Value) {
    let collection = cli_ok(
        dir,
        &["collection", "create", "practicas", "--title", "Prácticas"],
    );
    let id = cli_ok(
        dir,
        &[
            "add",
            "--collection",
            "practicas",
            "--kind",
            "practice",
            "--title",
            "Biol casero",
            "--body",
            "Fermentar estiércol.",
            "--license",
            "CC-BY-4.0",
            "--lang",
            "es",
            "--tag",
            "biol",
            "--tag",
            "abono",
            "--place",
            "Tungurahua",
            "--author",
            "Rosa",
        ],
    );
    assert_eq!(id.lines().count(), 1, "create prints only the id");
    cli_ok(
        dir,
        &[
            "edit",
            &id,
            "--body",
            "Fermentar estiércol con melaza.",
            "--tag",
            "biol",
        ],
    );
    cli_ok(
        dir,
        &[
            "add",
            "--collection",
            &collection,
            "--kind",
            "resource",
            "--title",
            "Guía",
            "--body",
            "Texto",
            "--license",
            "MIT",
        ],
    );
    let shown: Value = serde_json::from_str(&cli_ok(dir, &["--json", "show", &id])).unwrap();
    let listed: Value = serde_json::from_str(&cli_ok(dir, &["--json", "list"])).unwrap();
    let collections: Value =
        serde_json::from_str(&cli_ok(dir, &["--json", "collection", "list"])).unwrap();
    (shown, listed, collections)
}

/// Drops what differs between two stores by nature: ids, keys, hashes and times.
fn comparable(mut value: Value) -> Value {
    match &mut value {
        Value::Object(map) => {
            for key in [
                "id",
                "heads",
                "key",
                "created",
                "updated",
                "collection",
                "maintainers",
            ] {
                map.remove(key);
            }
            for item in map.values_mut() {
                *item = comparable(item.take());
            }
        }
        Value::Array(items) => {
            for item in items {
                *item = comparable(item.take());
            }
        }
        _ => {}
    }
    value
}

/// Adds a practice to collection `c`; returns its id.
fn add_practice(dir: &Path, title: &str) -> String {
    let args = [
        "add",
        "--collection",
        "c",
        "--kind",
        "practice",
        "--title",
        title,
    ];
    cli_ok(
        dir,
        &[&args[..], &["--body", "b", "--license", "CC0-1.0"]].concat(),
    )
}

#[test]
fn the_cli_answers_the_same_through_a_node_and_offline() {
    let online = tempfile::tempdir().unwrap();
    let offline = node_dir();
    let node = Node::start(online.path());
    let through_node = session(online.path());
    let direct = session(offline.path());
    assert_eq!(
        comparable(through_node.0.clone()),
        comparable(direct.0.clone())
    );
    assert_eq!(comparable(through_node.1), comparable(direct.1));
    assert_eq!(comparable(through_node.2), comparable(direct.2));
    // The CLI's JSON is the API's JSON.
    let id = through_node.0["id"].as_str().unwrap();
    assert_eq!(node.get(&format!("/api/v1/entries/{id}")).1, through_node.0);
    assert_eq!(direct.0["body"], "Fermentar estiércol con melaza.");
    assert_eq!(direct.0["tags"], serde_json::json!(["biol"]));
}

#[test]
fn exit_codes_and_error_lines() {
    let dir = tempfile::tempdir().unwrap();
    let parse_error = cli(dir.path(), &["add", "--no-such-flag"]);
    assert_eq!(parse_error.status.code(), Some(2));
    let unknown = cli(dir.path(), &["show", "2TSKBAYrCoXAeszf3ZkKxSurdPGW"]);
    assert_eq!(unknown.status.code(), Some(1));
    let stderr = String::from_utf8(unknown.stderr).unwrap();
    assert!(
        stderr.starts_with("error: ") && stderr.trim_end().lines().count() == 1,
        "{stderr}"
    );
    assert!(unknown.stdout.is_empty());
    let malformed = cli(dir.path(), &["show", "../../etc/passwd"]);
    assert_eq!(malformed.status.code(), Some(1));
}

#[test]
fn refused_sample_entries_fail_in_the_cli_and_write_nothing() {
    let dir = node_dir();
    let sample = minga_tests::demo::sample();
    for collection in sample["collections"].as_array().unwrap() {
        cli_ok(
            dir.path(),
            &["collection", "create", collection["name"].as_str().unwrap()],
        );
    }
    let before = cli_ok(dir.path(), &["--json", "status"]);
    for refused in sample["refused"].as_array().unwrap() {
        let e = &refused["entry"];
        let field = |k: &str| e[k].as_str().unwrap().to_owned();
        let output = cli(
            dir.path(),
            &[
                "add",
                "--collection",
                &field("collection"),
                "--kind",
                &field("kind"),
                "--title",
                &field("title"),
                "--body",
                &field("body"),
                "--license",
                &field("license"),
                "--lang",
                &field("lang"),
            ],
        );
        assert_eq!(output.status.code(), Some(1), "{}", refused["why"]);
        assert!(String::from_utf8_lossy(&output.stderr).starts_with("error: "));
        assert!(output.stdout.is_empty());
    }
    assert_eq!(cli_ok(dir.path(), &["--json", "status"]), before);
}

#[test]
fn a_stale_api_addr_after_kill_9_falls_back_to_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path());
    cli_ok(dir.path(), &["collection", "create", "c"]);
    let id = add_practice(dir.path(), "Antes del corte");
    node.kill9();
    assert!(
        dir.path().join("api.addr").exists(),
        "kill -9 leaves the file behind"
    );
    let listed = cli_ok(dir.path(), &["list"]);
    assert!(
        listed.contains(&id) && listed.contains("Antes del corte"),
        "{listed}"
    );
}

#[test]
fn a_second_process_cannot_take_a_data_dir_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let _node = Node::start(dir.path());
    let output = cli(dir.path(), &["init"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("in use"));
}

#[test]
fn the_author_key_moves_with_export_and_import() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    cli_ok(first.path(), &["init", "--name", "Rosa"]);
    let backup = first.path().join("author-backup.txt");
    cli_ok(
        first.path(),
        &["key", "export", "--out", backup.to_str().unwrap()],
    );
    let imported = cli_ok(second.path(), &["key", "import", backup.to_str().unwrap()]);

    let key_of = |dir: &Path| {
        cli_ok(dir, &["collection", "create", "c"]);
        let id = add_practice(dir, "t");
        let entry: Value = serde_json::from_str(&cli_ok(dir, &["--json", "show", &id])).unwrap();
        entry["authors"][0]["key"].as_str().unwrap().to_owned()
    };
    let first_key = key_of(first.path());
    assert_eq!(first_key, imported);
    assert_eq!(key_of(second.path()), first_key);
    let bad = first.path().join("bad.txt");
    std::fs::write(&bad, "not a key").unwrap();
    assert_eq!(
        cli(second.path(), &["key", "import", bad.to_str().unwrap()])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn only_init_and_node_make_a_data_dir() {
    let scratch = tempfile::tempdir().unwrap();
    let missing = scratch.path().join("minga");
    for args in [
        &["status"][..],
        &["list"],
        &["collection", "create", "practicas"],
    ] {
        let output = cli(&missing, args);
        assert!(!output.status.success(), "{args:?} succeeded on no node");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&missing.display().to_string()),
            "the error names the dir looked in: {stderr}"
        );
        assert!(!missing.exists(), "{args:?} made the data dir");
    }
    cli_ok(&missing, &["init"]);
    let status: Value = serde_json::from_str(&cli_ok(&missing, &["--json", "status"])).unwrap();
    assert_eq!(status["entries"], 0);
}

#[test]
fn the_cli_finds_a_node_by_its_url() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let peer_id = node.get("/api/v1/status").1["peer_id"].clone();
    let nowhere = tempfile::tempdir().unwrap();
    let nowhere = nowhere.path().join("none");
    let url = format!("http://{}", node.addr());
    let by_flag = std::process::Command::new(minga_bin())
        .env_remove("MINGA_NODE")
        .env("MINGA_HOME", &nowhere)
        .args(["--json", "--node", &url, "status"])
        .output()
        .unwrap();
    let by_env = std::process::Command::new(minga_bin())
        .env("MINGA_NODE", node.addr())
        .env("MINGA_HOME", &nowhere)
        .args(["--json", "status"])
        .output()
        .unwrap();
    for output in [by_flag, by_env] {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let status: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(status["peer_id"], peer_id);
    }
    assert!(
        !nowhere.exists(),
        "talking to a node by URL needs no data dir"
    );
}

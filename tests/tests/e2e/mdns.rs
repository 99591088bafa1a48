//! Two nodes with mDNS on and no bootstrap find each other on a LAN and sync. The LAN is a pair
//! of network namespaces joined by a veth cable, made by the test itself, so no multicast ever
//! leaves the machine; where namespaces cannot be made, the test says why and skips.

use std::path::Path;
use std::process::Command;

use minga_tests::{minga_bin, wait_until};

/// Runs `ip` with these arguments; answers whether it succeeded.
fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

/// Two namespaces joined by a veth pair, removed when dropped.
struct Lan {
    names: [String; 2],
}

impl Lan {
    fn create() -> Option<Lan> {
        let tag = std::process::id();
        let names = [format!("minga-a-{tag}"), format!("minga-b-{tag}")];
        let lan = Lan {
            names: names.clone(),
        };
        let (a, b) = (&names[0], &names[1]);
        let (va, vb) = (format!("mva{tag}"), format!("mvb{tag}"));
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", a],
            vec!["netns", "add", b],
            vec!["link", "add", &va, "type", "veth", "peer", "name", &vb],
            vec!["link", "set", &va, "netns", a],
            vec!["link", "set", &vb, "netns", b],
            vec!["-n", a, "addr", "add", "10.77.0.1/24", "dev", &va],
            vec!["-n", b, "addr", "add", "10.77.0.2/24", "dev", &vb],
            vec!["-n", a, "link", "set", &va, "up"],
            vec!["-n", b, "link", "set", &vb, "up"],
            vec!["-n", a, "link", "set", "lo", "up"],
            vec!["-n", b, "link", "set", "lo", "up"],
        ];
        for step in steps {
            if !ip(&step) {
                eprintln!(
                    "skipping the mDNS test: `ip {}` failed (no permission for network namespaces?)",
                    step.join(" ")
                );
                return None;
            }
        }
        Some(lan)
    }

    /// A command run inside namespace `i`.
    fn command(&self, i: usize) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.names[i]]);
        command
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for name in &self.names {
            ip(&["netns", "del", name]);
        }
    }
}

/// The CLI run inside namespace `i`, so it reaches the node's loopback API there.
fn cli(lan: &Lan, i: usize, dir: &Path, args: &[&str]) -> Option<String> {
    let output = lan
        .command(i)
        .arg(minga_bin())
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[test]
fn two_nodes_on_a_lan_find_each_other_with_mdns_and_sync() {
    let Some(lan) = Lan::create() else { return };
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    for (i, address) in ["10.77.0.1", "10.77.0.2"].iter().enumerate() {
        let log = std::fs::File::create(dirs[i].path().join("node.log")).unwrap();
        let listen = format!("/ip4/{address}/tcp/0");
        let child = lan
            .command(i)
            .arg(minga_bin())
            .arg("--data-dir")
            .arg(dirs[i].path())
            .args(["node", "--api", "127.0.0.1:0", "--listen", &listen])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting a node in its namespace");
        nodes.push(KillOnDrop(child));
    }
    for dir in &dirs {
        wait_until(60, "the node's API", || {
            dir.path().join("api.addr").exists()
        });
    }
    let (a, b) = (dirs[0].path(), dirs[1].path());
    let collection = cli(&lan, 0, a, &["collection", "create", "vecinos"]).expect("collection");
    let id = cli(
        &lan,
        0,
        a,
        &[
            "add",
            "--collection",
            "vecinos",
            "--kind",
            "practice",
            "--title",
            "Por la LAN",
            "--body",
            "Sin internet.",
            "--license",
            "CC0-1.0",
        ],
    )
    .expect("entry");
    cli(&lan, 1, b, &["follow", &collection]).expect("follow");
    wait_until(90, "the entry on B through mDNS", || {
        cli(&lan, 1, b, &["show", &id]).is_some()
    });
    drop(nodes);
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

//! Benchmark of sneakernet bundles with attachments: a real `minga node` gets N practices
//! through its HTTP API, a subset of them carrying generated blobs, spread over several
//! collections; then, with the node stopped, `minga export` and `minga import` (the CLI on the
//! data dir, as a librarian runs them) are timed and their resident memory sampled, for the
//! whole commons and for one collection of it, to show how memory grows with bundle size.
//!
//! ```text
//! cargo run -p minga-tests --release --bin bundle_bench -- [--entries 10000] [--blobs 64]
//!     [--blob-mib 1024] [--collections 4] [--clients 8] [--dir DIR]
//! ```
//!
//! Prints progress on stderr and a Markdown table of the figures on stdout.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use minga_tests::content::practice;
use minga_tests::flags::flag_values;
use minga_tests::procfs::{RssSampler, load_average};
use minga_tests::{Node, RandomBytes, minga_bin};
use serde_json::{Value, json};

const USAGE: &str = "usage: bundle_bench [--entries N] [--blobs B] [--blob-mib M] [--collections C]
                    [--clients T] [--dir DIR]

  --entries N      practices to create (default 10000)
  --blobs B        entries that carry a blob, each of M / B MiB (default 64)
  --blob-mib M     total size of the blobs in MiB (default 1024)
  --collections C  collections the entries are spread over; the small bundle is one of them
                   (default 4)
  --clients T      concurrent API clients writing entries (default 8)
  --dir DIR        where the data dirs and bundles go (default: the temp dir)";

const MIB: u64 = 1024 * 1024;
/// How often the CLI's memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

struct Args {
    entries: usize,
    blobs: usize,
    blob_bytes: u64,
    collections: usize,
    clients: usize,
    dir: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        entries: 10_000,
        blobs: 64,
        blob_bytes: 1024 * MIB,
        collections: 4,
        clients: 8,
        dir: None,
    };
    for (flag, value) in flag_values(USAGE)? {
        let number = || -> Result<u64> {
            value
                .parse()
                .with_context(|| format!("{flag} takes a number, not {value}"))
        };
        match flag.as_str() {
            "--entries" => args.entries = number()? as usize,
            "--blobs" => args.blobs = number()? as usize,
            "--blob-mib" => args.blob_bytes = number()? * MIB,
            "--collections" => args.collections = number()? as usize,
            "--clients" => args.clients = number()? as usize,
            "--dir" => args.dir = Some(value.into()),
            _ => bail!("unknown argument {flag}\n{USAGE}"),
        }
    }
    ensure!(
        args.blobs <= args.entries && args.collections >= 1 && args.clients >= 1,
        "need blobs <= entries, at least one collection and one client"
    );
    Ok(args)
}

/// What one bundle carries, by what it was built from.
#[derive(Debug, Default, Clone, Copy)]
struct Carried {
    entries: u64,
    /// Title and body bytes of the entries.
    text: u64,
    blobs: u64,
    blob_bytes: u64,
}

/// One timed CLI run.
struct Timed {
    wall: Duration,
    peak_rss: u64,
    summary: Value,
}

struct Row {
    what: String,
    carried: Carried,
    bundle_bytes: u64,
    export: Timed,
    import: Timed,
}

fn main() -> Result<()> {
    let args = parse_args()?;
    eprintln!("minga binary: {}", minga_bin().display());
    eprintln!("load average at start: {}", load_average());
    let root = match &args.dir {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    let source = root.path().join("source");
    std::fs::create_dir(&source)?;

    let mut node = Node::start(&source);
    let collections: Vec<String> = (0..args.collections)
        .map(|i| {
            let (code, answer) = node.post(
                "/api/v1/collections",
                &json!({"name": format!("bench-{i}")}).to_string(),
            );
            ensure!(
                code == 201,
                "creating a collection answered {code}: {answer}"
            );
            Ok(answer["id"].as_str().context("a collection id")?.to_owned())
        })
        .collect::<Result<_>>()?;
    let started = Instant::now();
    let attachments = upload_blobs(&node, &args)?;
    eprintln!(
        "{} blobs ({} MiB) uploaded in {:.1} s",
        attachments.len(),
        args.blob_bytes / MIB,
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let carried = write_entries(&node, &args, &collections, &attachments)?;
    eprintln!(
        "{} entries written in {:.1} s; load average {}",
        args.entries,
        started.elapsed().as_secs_f64(),
        load_average()
    );
    ensure!(node.stop(), "the node did not stop cleanly");

    let mut rows = Vec::new();
    let whole: Carried = carried.iter().fold(Carried::default(), |sum, c| Carried {
        entries: sum.entries + c.entries,
        text: sum.text + c.text,
        blobs: sum.blobs + c.blobs,
        blob_bytes: sum.blob_bytes + c.blob_bytes,
    });
    let scopes = [
        ("everything".to_owned(), vec!["--all".to_owned()], whole),
        (
            "one collection".to_owned(),
            vec!["--collection".to_owned(), collections[0].clone()],
            carried[0],
        ),
    ];
    for (name, scope, carried) in scopes {
        let bundle = root
            .path()
            .join(format!("{}.minga", name.replace(' ', "-")));
        eprintln!("exporting {name}; load average {}", load_average());
        let mut export_args = vec!["export".to_owned()];
        export_args.extend(scope);
        export_args.extend(["--out".to_owned(), path_str(&bundle)?.to_owned()]);
        let export = run_cli(&source, &export_args)?;
        let bundle_bytes = export.summary["bytes_written"]
            .as_u64()
            .context("bytes_written in the export summary")?;
        ensure!(
            export.summary["entries"].as_u64() == Some(carried.entries)
                && export.summary["blobs"].as_u64() == Some(carried.blobs),
            "the export carried {} and not {carried:?}",
            export.summary
        );
        let target = root
            .path()
            .join(format!("import-{}", name.replace(' ', "-")));
        std::fs::create_dir(&target)?;
        eprintln!("importing {name}; load average {}", load_average());
        let first_part = export.summary["parts"][0]
            .as_str()
            .context("a part in the export summary")?
            .to_owned();
        let import = run_cli(&target, &["import".to_owned(), first_part])?;
        ensure!(
            import.summary["entries"]["new"].as_u64() == Some(carried.entries)
                && import.summary["blobs_added"].as_u64() == Some(carried.blobs),
            "the import added {} and not {carried:?}",
            import.summary
        );
        // Keep the disk free for the next scope: the imported copy and bundle were measured.
        std::fs::remove_dir_all(&target)?;
        for part in export.summary["parts"].as_array().into_iter().flatten() {
            std::fs::remove_file(part.as_str().unwrap_or_default())?;
        }
        rows.push(Row {
            what: name,
            carried,
            bundle_bytes,
            export,
            import,
        });
    }
    eprintln!("load average at the end: {}", load_average());
    print_table(&rows);
    Ok(())
}

/// Uploads `--blobs` generated blobs through `POST /api/v1/blobs`; returns each as an
/// attachment.
fn upload_blobs(node: &Node, args: &Args) -> Result<Vec<Value>> {
    let each = args.blob_bytes / args.blobs.max(1) as u64;
    (0..args.blobs)
        .map(|i| {
            let body = RandomBytes::new(1001 + 2 * i as u64).take(each);
            let response = ureq::post(&format!("{}/api/v1/blobs", node.api.base))
                .set("Content-Length", &each.to_string())
                .send(body)
                .context("uploading a blob")?;
            let added: Value = response.into_json()?;
            Ok(json!({
                "hash": added["hash"],
                "name": format!("grabacion-{i}.bin"),
                "mime": added["mime"],
                "size": added["size"],
            }))
        })
        .collect()
}

/// Writes the practices from `--clients` threads. Entry `i` carries blob `i / stride` when
/// `i` is a multiple of the stride (below `blobs * stride`); blob `j`'s entry goes to
/// collection `j % C`, every other entry to collection `i % C`, so each collection gets its
/// share of both. Returns what each collection holds.
fn write_entries(
    node: &Node,
    args: &Args,
    collections: &[String],
    attachments: &[Value],
) -> Result<Vec<Carried>> {
    let stride = (args.entries / args.blobs.max(1)).max(1);
    let next = AtomicUsize::new(0);
    let carried = Mutex::new(vec![Carried::default(); collections.len()]);
    let progress = AtomicUsize::new(0);
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..args.clients)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    let agent = ureq::agent();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= args.entries {
                            return Ok(());
                        }
                        let blob = (i.is_multiple_of(stride) && i / stride < attachments.len())
                            .then(|| i / stride);
                        let c = blob.unwrap_or(i) % collections.len();
                        let mut entry = practice(1, i as u64, &collections[c]);
                        if let Some(j) = blob {
                            entry["attachments"] = json!([attachments[j]]);
                        }
                        let text = entry["title"].as_str().map_or(0, str::len)
                            + entry["body"].as_str().map_or(0, str::len);
                        let response = agent
                            .post(&format!("{}/api/v1/entries", node.api.base))
                            .set("Content-Type", "application/json")
                            .send_string(&entry.to_string());
                        match response {
                            Ok(r) if r.status() == 201 => {}
                            Ok(r) => bail!("entry {i}: status {}", r.status()),
                            Err(e) => bail!("entry {i}: {e}"),
                        }
                        let mut carried = carried.lock().expect("carried");
                        carried[c].entries += 1;
                        carried[c].text += text as u64;
                        if let Some(j) = blob {
                            carried[c].blobs += 1;
                            carried[c].blob_bytes += attachments[j]["size"].as_u64().unwrap_or(0);
                        }
                        let done = progress.fetch_add(1, Ordering::Relaxed) + 1;
                        if done.is_multiple_of(1000) {
                            eprintln!("  {done} entries");
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a client panicked"))??;
        }
        Ok(())
    })?;
    Ok(carried.into_inner().expect("carried"))
}

/// Runs `minga --json ARGS` on `dir` (no node running, so the CLI does the work itself),
/// sampling its memory; returns its wall time, last seen peak (VmHWM) and JSON summary.
fn run_cli(dir: &Path, args: &[String]) -> Result<Timed> {
    let started = Instant::now();
    let child = Command::new(minga_bin())
        .arg("--data-dir")
        .arg(dir)
        .arg("--json")
        .args(args)
        .env_remove("MINGA_HOME")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting minga")?;
    let sampler = RssSampler::start(&[child.id()], SAMPLE_EVERY);
    let output = child.wait_with_output()?;
    let wall = started.elapsed();
    let (_, peaks) = sampler.finish();
    ensure!(
        output.status.success(),
        "minga {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("the JSON summary of minga {args:?}"))?;
    Ok(Timed {
        wall,
        peak_rss: peaks[0],
        summary,
    })
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str().context("a UTF-8 path")
}

fn print_table(rows: &[Row]) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "| bundle | entries | blobs | text | bundle size | bundle ÷ (text + blobs) | (bundle − blobs) ÷ text | export | export peak RSS | import | import peak RSS |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let c = row.carried;
        let rate = |t: &Timed| row.bundle_bytes as f64 / 1e6 / t.wall.as_secs_f64();
        let _ = writeln!(
            out,
            "| {} | {} | {} ({:.0} MiB) | {:.1} MB | {:.1} MB | {:.3} | {:.2} | {:.1} s ({:.0} MB/s) | {:.0} MiB | {:.1} s ({:.0} MB/s) | {:.0} MiB |",
            row.what,
            c.entries,
            c.blobs,
            c.blob_bytes as f64 / MIB as f64,
            c.text as f64 / 1e6,
            row.bundle_bytes as f64 / 1e6,
            row.bundle_bytes as f64 / (c.text + c.blob_bytes) as f64,
            row.bundle_bytes.saturating_sub(c.blob_bytes) as f64 / c.text as f64,
            row.export.wall.as_secs_f64(),
            rate(&row.export),
            row.export.peak_rss as f64 / MIB as f64,
            row.import.wall.as_secs_f64(),
            rate(&row.import),
            row.import.peak_rss as f64 / MIB as f64,
        );
    }
}

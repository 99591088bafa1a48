//! Benchmark of search and the web pages at scale: the sample commons plus N generated practices
//! (the seeded generator of `api_load`) written straight into a data dir through the node's
//! `Commons` (the API's ~200 durable writes a second would take hours for 100,000), the search
//! index built from that store as a node builds it, then search latency through the same query
//! path as `/api/v1/entries?q=` and the search page (hits, entries read from the store,
//! snippets), the index's size, memory; and finally a real `minga node` on that data dir for
//! the pages' weight and time to first byte.
//!
//! ```text
//! cargo run -p minga-tests --release --bin search_bench -- [--entries N] [--seed S] [--rounds R]
//! ```
//!
//! Prints progress on stderr and a Markdown table of the figures on stdout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use minga_node::queries::{self, ListParams};
use minga_node::search::DEFAULT_WRITER_BYTES;
use minga_node::{Commons, DataDir, SearchIndex};
use minga_protocol::{NewCollection, NewEntry};
use minga_tests::content::practice;
use minga_tests::flags::flag_values;
use minga_tests::measure::mib;
use minga_tests::procfs::{peak_rss, rss};
use minga_tests::{Node, demo};

const USAGE: &str = "usage: search_bench [--entries N] [--seed S] [--rounds R]

  --entries N  generated practices besides the sample commons (default 100000)
  --seed S     seed of the content generator (default 1)
  --rounds R   times each query is run (default 20)";

/// Queries of the generator's own vocabulary: common words, so long posting lists.
const GENERATED_QUERIES: &[&str] = &[
    "abono",
    "sembrar papa nativa",
    "semillas de quinua",
    "heladas",
    "cosechar maiz morocho",
    "riego por surcos",
    "la comunidad minga",
    "Otavalo",
];

struct Args {
    entries: u64,
    seed: u64,
    rounds: usize,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        entries: 100_000,
        seed: 1,
        rounds: 20,
    };
    for (flag, value) in flag_values(USAGE)? {
        let number: u64 = value
            .parse()
            .with_context(|| format!("{flag}: not a number: {value:?}"))?;
        match flag.as_str() {
            "--entries" => args.entries = number,
            "--seed" => args.seed = number,
            "--rounds" => args.rounds = usize::try_from(number)?.max(1),
            _ => bail!("unknown argument {flag:?}\n{USAGE}"),
        }
    }
    Ok(args)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let temp = tempfile::tempdir()?;
    let dir = DataDir::new(temp.path());
    let mut rows: Vec<(String, String)> = Vec::new();

    // 1. The content, written in-process.
    let started = Instant::now();
    let mut commons = Commons::open(&dir, 64 << 20)?;
    let sample = demo::sample();
    for collection in sample["collections"].as_array().context("no collections")? {
        let new: NewCollection = serde_json::from_value(collection.clone())?;
        commons.create_collection(&new)?;
    }
    let mut cacao = None;
    for entry in sample["entries"].as_array().context("no entries")? {
        let new: NewEntry = serde_json::from_value(entry.clone())?;
        let id = commons.create_entry(&new)?.value;
        if new.title.starts_with("Fermentación del cacao") {
            cacao = Some(id);
        }
    }
    let cacao = cacao.context("the sample's cacao entry")?;
    commons.create_collection(&serde_json::from_value(
        serde_json::json!({"name": "bench", "title": "Prácticas generadas"}),
    )?)?;
    for i in 0..args.entries {
        let new: NewEntry = serde_json::from_value(practice(args.seed, i, "bench"))?;
        commons.create_entry(&new)?;
        if (i + 1) % 10_000 == 0 {
            commons.flush()?;
            eprintln!("{} entries written, {:.0?}", i + 1, started.elapsed());
        }
    }
    commons.flush()?;
    let total = args.entries + sample["entries"].as_array().map_or(0, |e| e.len() as u64);
    rows.push((
        "entries (sample commons + generated practices of 0.5–5 KiB)".into(),
        total.to_string(),
    ));
    rows.push((
        "written in-process through `Commons`".into(),
        format!("{:.1} s", started.elapsed().as_secs_f64()),
    ));

    // 2. The index, built from the store as a node builds a missing one.
    let store = commons.store().clone();
    let started = Instant::now();
    let index = SearchIndex::open(&dir.search_dir(), DEFAULT_WRITER_BYTES, &store)?;
    index.catch_up(&store, store.logged_seq()?)?;
    let built = started.elapsed();
    rows.push((
        "index built from the store (writer budget 16 MiB)".into(),
        format!("{:.1} s", built.as_secs_f64()),
    ));
    rows.push((
        "index size on disk".into(),
        format!(
            "{} ({:.0} B per entry)",
            mib(index.disk_bytes()),
            index.disk_bytes() as f64 / total as f64
        ),
    ));
    eprintln!(
        "index of {} documents built in {built:.1?}",
        index.documents()
    );

    // 3. Search latency through the queries of the API and the search page.
    let shared = demo::load_json("search-queries.json");
    let mut texts: Vec<String> = shared["queries"]
        .as_array()
        .context("no queries")?
        .iter()
        .filter_map(|q| q["q"].as_str().map(str::to_owned))
        .collect();
    let shared_count = texts.len();
    texts.extend(GENERATED_QUERIES.iter().map(|q| (*q).to_owned()));
    let run = |text: &str| -> Result<Duration> {
        let params = ListParams {
            q: Some(text.to_owned()),
            limit: Some("20".into()),
            ..ListParams::default()
        };
        let started = Instant::now();
        queries::list_entries(&store, Some(&index), &params, queries::Visibility::All)?;
        Ok(started.elapsed())
    };
    for text in &texts {
        run(text)?; // warm the caches once, as a node that has served a while
    }
    let mut times = Vec::new();
    let mut common = Vec::new();
    for _ in 0..args.rounds {
        for (i, text) in texts.iter().enumerate() {
            let took = run(text)?;
            times.push(took);
            if i >= shared_count {
                common.push(took);
            }
        }
    }
    times.sort();
    common.sort();
    rows.push((
        format!(
            "search, 20 hits with entries and snippets: {} queries × {} rounds",
            texts.len(),
            args.rounds
        ),
        format!(
            "p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms",
            ms(percentile(&times, 50.0)),
            ms(percentile(&times, 95.0)),
            ms(times[times.len() - 1])
        ),
    ));
    rows.push((
        "of which the generator's common words (long posting lists)".into(),
        format!(
            "p50 {:.2} ms, p95 {:.2} ms",
            ms(percentile(&common, 50.0)),
            ms(percentile(&common, 95.0))
        ),
    ));
    let held = memory(std::process::id())?;
    rows.push((
        "bench process memory after the searches (store + index)".into(),
        held,
    ));
    drop(index);
    drop(store);
    drop(commons);

    // 4. Pages through a real node on that data dir.
    eprintln!("starting a node on the data dir …");
    let node = Node::start(temp.path());
    let host = node.base.trim_start_matches("http://").to_owned();
    for (what, path) in [
        (
            "`/` (collections and the 20 newest entries)",
            "/".to_owned(),
        ),
        (
            "`/entries/{id}` (the cacao entry)",
            format!("/entries/{cacao}"),
        ),
        (
            "`/search?q=fermentacion`",
            "/search?q=fermentacion".to_owned(),
        ),
        (
            "`/search?q=abono` (thousands of hits, first page)",
            "/search?q=abono".to_owned(),
        ),
    ] {
        fetch(&host, &path)?; // the first request opens caches
        let mut firsts = Vec::new();
        let mut size = 0;
        for _ in 0..args.rounds {
            let (first, bytes) = fetch(&host, &path)?;
            firsts.push(first);
            size = bytes;
        }
        firsts.sort();
        rows.push((
            format!("{what}: weight, time to first byte"),
            format!(
                "{:.1} KB, p50 {:.1} ms, p95 {:.1} ms",
                size as f64 / 1000.0,
                ms(percentile(&firsts, 50.0)),
                ms(percentile(&firsts, 95.0))
            ),
        ));
    }
    rows.push((
        "node memory after serving the pages".into(),
        memory(node.pid())?,
    ));

    println!("| figure | value |\n|---|---|");
    for (figure, value) in rows {
        println!("| {figure} | {value} |");
    }
    Ok(())
}

/// One `GET` on a new connection: the time to the response's first byte, and the body's size.
fn fetch(host: &str, path: &str) -> Result<(Duration, usize)> {
    let mut stream = TcpStream::connect(host)?;
    let started = Instant::now();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept-Language: es\r\nConnection: close\r\n\r\n"
    )?;
    let mut first = [0u8; 1];
    stream.read_exact(&mut first)?;
    let took = started.elapsed();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest)?;
    let text = String::from_utf8_lossy(&rest);
    if !text.starts_with("TTP/1.1 200") {
        bail!("GET {path}: {}", text.lines().next().unwrap_or(""));
    }
    let body = text
        .split_once("\r\n\r\n")
        .map_or(0, |(_, body)| body.len());
    Ok((took, body))
}

/// `VmRSS` and `VmHWM` of a process.
fn memory(pid: u32) -> Result<String> {
    Ok(format!(
        "RSS {}, peak {}",
        mib(rss(pid)?),
        mib(peak_rss(pid)?)
    ))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

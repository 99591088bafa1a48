//! Benchmark of one large blob between two real `minga node` processes on loopback, against
//! the floors it should be compared with, measured in the same run: a raw libp2p stream copy
//! of the same bytes over the same transport (TCP with nodelay, Noise, Yamux, as the node
//! builds it), and single-core BLAKE3 hashing of them. Also both nodes' CPU time and their
//! resident memory over the transfer, at each size given, to show whether it is flat.
//!
//! ```text
//! cargo run -p minga-tests --release --bin blob_bench -- [--sizes-mib 256,1024] [--dir DIR]
//! ```
//!
//! Prints progress on stderr and a Markdown table of the figures on stdout.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, StreamProtocol, Swarm, noise, tcp, yamux};
use minga_tests::flags::flag_values;
use minga_tests::procfs::{RssSample, RssSampler, cpu_time, load_average};
use minga_tests::{Node, RandomBytes, entry_with_attachment, minga_bin};
use serde_json::Value;

const USAGE: &str = "usage: blob_bench [--sizes-mib 256,1024] [--dir DIR]

  --sizes-mib L  blob sizes to measure, in MiB, comma-separated (default 256,1024)
  --dir DIR      where the blobs and the nodes' data dirs go (default: the temp dir)";

const MIB: u64 = 1024 * 1024;
/// Buffer of the file reads and of the raw copy's reads and writes.
const BUFFER: usize = 256 * 1024;
/// How often the nodes' memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

struct Args {
    sizes: Vec<u64>,
    dir: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        sizes: vec![256 * MIB, 1024 * MIB],
        dir: None,
    };
    for (flag, value) in flag_values(USAGE)? {
        match flag.as_str() {
            "--sizes-mib" => {
                args.sizes = value
                    .split(',')
                    .map(|s| Ok(s.trim().parse::<u64>()? * MIB))
                    .collect::<Result<_>>()
                    .with_context(|| format!("--sizes-mib {value}"))?
            }
            "--dir" => args.dir = Some(value.into()),
            _ => bail!("unknown argument {flag}\n{USAGE}"),
        }
    }
    Ok(args)
}

/// The figures of one blob size.
struct Run {
    size: u64,
    load_before: String,
    load_after: String,
    blake3: Duration,
    /// Raw copies before and after the nodes' transfer.
    raw: [Duration; 2],
    /// From `follow` on the receiver until its blob is complete.
    follow_to_complete: Duration,
    /// From the first verified bytes on the receiver until its blob is complete (the
    /// rehash that builds the outboard and the final rename included).
    transfer: Duration,
    cpu_sender: Duration,
    cpu_receiver: Duration,
    samples: Vec<RssSample>,
    peaks: Vec<u64>,
}

fn main() -> Result<()> {
    let args = parse_args()?;
    eprintln!("minga binary: {}", minga_bin().display());
    let mut runs = Vec::new();
    for &size in &args.sizes {
        runs.push(measure(size, &args)?);
    }
    print_table(&runs);
    Ok(())
}

fn measure(size: u64, args: &Args) -> Result<Run> {
    let root = match &args.dir {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    let file = root.path().join("grabacion.bin");
    eprintln!("[{} MiB] writing the blob", size / MIB);
    write_random(&file, size, size)?;
    let load_before = load_average();

    eprintln!("[{} MiB] BLAKE3 on one core", size / MIB);
    let started = Instant::now();
    let hash = blake3_of(&file)?;
    let blake3 = started.elapsed();

    eprintln!("[{} MiB] raw libp2p stream copy", size / MIB);
    let raw_before = raw_copy(&file, size)?;

    let dirs = [root.path().join("a"), root.path().join("b")];
    for dir in &dirs {
        std::fs::create_dir(dir)?;
    }
    let a = Node::start(&dirs[0]);
    let b = Node::start_with(&dirs[1], &["--bootstrap", &a.p2p_addr()]);
    eprintln!("[{} MiB] attaching it on A", size / MIB);
    let (collection, attachment) = entry_with_attachment(&a, &file)?;
    let attached = attachment["hash"]
        .as_str()
        .context("an attachment hash")?
        .to_owned();
    ensure!(attached == hash, "A hashed {attached}, BLAKE3 gave {hash}");
    wait(60, "B connected to A", || {
        Ok(status(&b)?["peers"].as_u64() == Some(1))
    })?;
    // Let the connection settle (identify, the first reconciliation) before measuring.
    std::thread::sleep(Duration::from_secs(2));

    eprintln!("[{} MiB] A -> B", size / MIB);
    let sampler = RssSampler::start(&[a.pid(), b.pid()], SAMPLE_EVERY);
    let cpu_a = cpu_time(a.pid())?;
    let cpu_b = cpu_time(b.pid())?;
    let started = Instant::now();
    let (code, answer) = b.post(&format!("/api/v1/collections/{collection}/follow"), "");
    ensure!(code == 200, "follow answered {code}: {answer}");
    let mut first_bytes = None;
    wait(1800, "the blob complete on B", || {
        let blobs = status(&b)?["blobs"].clone();
        if first_bytes.is_none() && blobs["partial_have"].as_u64().unwrap_or(0) > 0 {
            first_bytes = Some(Instant::now());
        }
        Ok(blobs["complete"].as_u64() == Some(1))
    })?;
    let done = Instant::now();
    let cpu_sender = cpu_time(a.pid())? - cpu_a;
    let cpu_receiver = cpu_time(b.pid())? - cpu_b;
    let (samples, peaks) = sampler.finish();
    let load_after = load_average();
    let follow_to_complete = done - started;
    let transfer = done - first_bytes.unwrap_or(started);
    drop((a, b));

    eprintln!("[{} MiB] raw libp2p stream copy again", size / MIB);
    let raw_after = raw_copy(&file, size)?;
    Ok(Run {
        size,
        load_before,
        load_after,
        blake3,
        raw: [raw_before, raw_after],
        follow_to_complete,
        transfer,
        cpu_sender,
        cpu_receiver,
        samples,
        peaks,
    })
}

fn status(node: &Node) -> Result<Value> {
    let (code, status) = node.get("/api/v1/status");
    ensure!(code == 200, "status answered {code}");
    Ok(status)
}

/// Polls `check` every 50 ms until it answers true, or fails after `seconds`.
fn wait(seconds: u64, what: &str, mut check: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !check()? {
        ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Writes `size` generated bytes to `path`.
fn write_random(path: &Path, size: u64, seed: u64) -> Result<()> {
    let mut out = std::io::BufWriter::with_capacity(BUFFER, std::fs::File::create(path)?);
    std::io::copy(&mut RandomBytes::new(seed).take(size), &mut out)?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}

/// The BLAKE3 hash (hex) of a file, read in 256 KiB pieces and hashed on this thread only.
fn blake3_of(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; BUFFER];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher.finalize().to_hex().to_string())
}

// ---- the floor: a raw stream copy over the node's transport ----

const COPY_PROTOCOL: StreamProtocol = StreamProtocol::new("/minga-bench/copy/1");

/// Request: how many bytes to send. Response: the sender writes the file's bytes straight onto
/// the stream and closes it; the receiver reads them into one reused buffer and answers how
/// many arrived. No framing, no copy beyond the stream's own.
#[derive(Debug, Clone, Default)]
struct CopyCodec {
    /// The file the serving side copies from.
    file: Option<PathBuf>,
}

impl request_response::Codec for CopyCodec {
    type Protocol = StreamProtocol;
    type Request = u64;
    type Response = u64;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<u64>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut len = [0u8; 8];
        io.read_exact(&mut len).await?;
        Ok(u64::from_be_bytes(len))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<u64>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut buffer = vec![0u8; BUFFER];
        let mut total = 0u64;
        loop {
            let n = io.read(&mut buffer).await?;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
        }
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        len: u64,
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&len.to_be_bytes()).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        len: u64,
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let path = self.file.as_ref().ok_or(std::io::ErrorKind::NotFound)?;
        let mut file = std::fs::File::open(path)?.take(len);
        let mut buffer = vec![0u8; BUFFER];
        loop {
            // A read from the page cache: the node's serving side reads its file too.
            let n = file.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            io.write_all(&buffer[..n]).await?;
        }
        io.close().await
    }
}

type CopySwarm = Swarm<request_response::Behaviour<CopyCodec>>;

/// A swarm built as the node builds its TCP transport.
fn copy_swarm(file: Option<PathBuf>, support: ProtocolSupport) -> Result<CopySwarm> {
    Ok(libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                CopyCodec { file },
                [(COPY_PROTOCOL, support)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(3600)),
            )
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build())
}

/// Copies `size` bytes of `file` from one swarm to another over one stream on loopback; each
/// swarm runs on a runtime of its own with as many workers as the node's (one per core).
/// Returns the time from the request to the last byte read.
fn raw_copy(file: &Path, size: u64) -> Result<Duration> {
    let (addr_tx, addr_rx) = std::sync::mpsc::sync_channel::<Multiaddr>(1);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let file = file.to_path_buf();
    let server = std::thread::spawn(move || -> Result<()> {
        let runtime = tokio::runtime::Runtime::new()?;
        runtime.block_on(async move {
            let mut swarm = copy_swarm(Some(file), ProtocolSupport::Inbound)?;
            swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
            let peer = *swarm.local_peer_id();
            let mut stopped = stopped;
            loop {
                tokio::select! {
                    _ = &mut stopped => return Ok(()),
                    event = swarm.select_next_some() => match event {
                        SwarmEvent::NewListenAddr { address, .. } => {
                            let _ = addr_tx.try_send(address.with_p2p(peer).map_err(|a| anyhow::anyhow!("{a}"))?);
                        }
                        SwarmEvent::Behaviour(request_response::Event::Message {
                            message: request_response::Message::Request { request, channel, .. },
                            ..
                        }) => {
                            let _ = swarm.behaviour_mut().send_response(channel, request);
                        }
                        _ => {}
                    },
                }
            }
        })
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(30))
        .context("the copy server listens")?;
    let runtime = tokio::runtime::Runtime::new()?;
    let took = runtime.block_on(async move {
        let mut swarm = copy_swarm(None, ProtocolSupport::Outbound)?;
        swarm.dial(addr)?;
        let mut started = None;
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    started = Some(Instant::now());
                    swarm.behaviour_mut().send_request(&peer_id, size);
                }
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { response, .. },
                    ..
                }) => {
                    let took = started.context("a response before the request")?.elapsed();
                    ensure!(response == size, "copied {response} bytes of {size}");
                    return Ok(took);
                }
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                    error, ..
                }) => bail!("the raw copy failed: {error}"),
                _ => {}
            }
        }
    });
    let _ = stop.send(());
    server
        .join()
        .map_err(|_| anyhow::anyhow!("the copy server panicked"))??;
    took
}

// ---- the table ----

fn print_table(runs: &[Run]) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "| blob | load avg before / after | BLAKE3, one core | raw libp2p copy (before / after) | A → B, first verified byte → complete | ratio to raw copy (mean of both) | ratio to BLAKE3 | follow → complete | CPU A / B | CPU A / B per GiB |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for run in runs {
        let rate = |d: Duration| run.size as f64 / MIB as f64 / d.as_secs_f64();
        let raw_mean = (run.raw[0] + run.raw[1]) / 2;
        let gib = run.size as f64 / (1024.0 * MIB as f64);
        let _ = writeln!(
            out,
            "| {} MiB | {} / {} | {:.2} s ({:.0} MiB/s) | {:.2} s / {:.2} s ({:.0} / {:.0} MiB/s) | {:.2} s ({:.0} MiB/s) | {:.2} | {:.2} | {:.2} s | {:.2} s / {:.2} s | {:.2} s / {:.2} s |",
            run.size / MIB,
            run.load_before,
            run.load_after,
            run.blake3.as_secs_f64(),
            rate(run.blake3),
            run.raw[0].as_secs_f64(),
            run.raw[1].as_secs_f64(),
            rate(run.raw[0]),
            rate(run.raw[1]),
            run.transfer.as_secs_f64(),
            rate(run.transfer),
            raw_mean.as_secs_f64() / run.transfer.as_secs_f64(),
            run.blake3.as_secs_f64() / run.transfer.as_secs_f64(),
            run.follow_to_complete.as_secs_f64(),
            run.cpu_sender.as_secs_f64(),
            run.cpu_receiver.as_secs_f64(),
            run.cpu_sender.as_secs_f64() / gib,
            run.cpu_receiver.as_secs_f64() / gib,
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| blob | RSS A: start / max / end | RSS B: start / max / end | VmHWM A / B | samples |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for run in runs {
        let of = |i: usize| -> (u64, u64, u64) {
            let series: Vec<u64> = run
                .samples
                .iter()
                .map(|s| s.rss[i])
                .filter(|&r| r > 0)
                .collect();
            (
                series.first().copied().unwrap_or(0),
                series.iter().copied().max().unwrap_or(0),
                series.last().copied().unwrap_or(0),
            )
        };
        let (a, b) = (of(0), of(1));
        let _ = writeln!(
            out,
            "| {} MiB | {} / {} / {} | {} / {} / {} | {} / {} | {} |",
            run.size / MIB,
            mib(a.0),
            mib(a.1),
            mib(a.2),
            mib(b.0),
            mib(b.1),
            mib(b.2),
            mib(run.peaks[0]),
            mib(run.peaks[1]),
            run.samples.len()
        );
    }
    for run in runs {
        let _ = writeln!(
            out,
            "\nRSS over the transfer of {} MiB (every tenth of the samples, MiB, A / B):",
            run.size / MIB
        );
        let step = (run.samples.len() / 10).max(1);
        let series: Vec<String> = run
            .samples
            .iter()
            .step_by(step)
            .chain(run.samples.last())
            .map(|s| {
                format!(
                    "{:.1} s: {:.0} / {:.0}",
                    s.at.as_secs_f64(),
                    s.rss[0] as f64 / MIB as f64,
                    s.rss[1] as f64 / MIB as f64
                )
            })
            .collect();
        let _ = writeln!(out, "{}", series.join(", "));
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / MIB as f64)
}

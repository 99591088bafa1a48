//! `minga blob add`, `minga blob get` and `minga add --attach`: files streamed to and from a
//! running node, or the blob store opened here, with a progress bar when stderr is a terminal.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use minga_node::BlobLimits;
use minga_node::blobs::Added;
use minga_protocol::BlobHash;
use minga_protocol::entry::Attachment;
use serde::Serialize;

use crate::backend::{Backend, authorized};

/// Adds the file as a blob; answers as `POST /api/v1/blobs` does.
pub fn add(backend: &mut Backend, path: &Path) -> anyhow::Result<Added> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = file.metadata()?.len();
    let bar = bar(size, "adding");
    let answer = match backend {
        Backend::Remote { base, token, .. } => {
            let reader = Counted {
                inner: file,
                bar: bar.clone(),
            };
            let response = authorized(
                agent().post(&format!("{base}/api/v1/blobs")),
                token.as_deref(),
            )
            .set("Content-Length", &size.to_string())
            .set("Content-Type", "application/octet-stream")
            .send(reader);
            response
                .map_err(remote_error)?
                .into_json()
                .context("reading the node's answer")?
        }
        Backend::Local(commons) => {
            let limit = BlobLimits::default().max_blob_bytes;
            commons
                .blobs()
                .add_reader(file, limit, |n| bar.set_position(n))?
        }
    };
    bar.finish_and_clear();
    Ok(answer)
}

/// Adds each file and describes it as an entry's attachment.
pub fn attach(
    backend: &mut Backend,
    paths: &[impl AsRef<Path>],
) -> anyhow::Result<Vec<Attachment>> {
    paths
        .iter()
        .map(|path| {
            let path = path.as_ref();
            let added = add(backend, path)?;
            Ok(Attachment {
                hash: added.hash.to_string(),
                name: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                mime: added.mime,
                size: added.size,
            })
        })
        .collect()
}

/// What `minga blob get` wrote.
#[derive(Debug, Serialize)]
pub struct Fetched {
    pub hash: BlobHash,
    pub size: u64,
    pub out: String,
}

/// Writes the blob `hash` to `out` (atomically, checked against the hash).
pub fn get(backend: &mut Backend, hash: &str, out: &Path) -> anyhow::Result<Fetched> {
    // Refused before anything is asked or written: a hash is 64 hex digits, never a path.
    let hash: BlobHash = hash.trim().parse()?;
    let size = match backend {
        Backend::Remote { base, .. } => {
            let response = agent()
                .get(&format!("{base}/api/v1/blobs/{hash}"))
                .call()
                .map_err(remote_error)?;
            let size = response
                .header("Content-Length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            write_out(response.into_reader(), size, &hash, out)?
        }
        Backend::Local(commons) => {
            let (file, record) = commons.blobs().open_data(&hash)?;
            write_out(file, record.size, &hash, out)?
        }
    };
    Ok(Fetched {
        hash,
        size,
        out: out.display().to_string(),
    })
}

/// Copies `reader` to a temp file beside `out`, checks the hash, then renames it into place.
fn write_out(mut reader: impl Read, size: u64, hash: &BlobHash, out: &Path) -> anyhow::Result<u64> {
    let dir = match out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = out
        .file_name()
        .ok_or_else(|| anyhow!("--out {} names no file", out.display()))?;
    let temp = dir.join(format!(".{}.part", name.to_string_lossy()));
    let bar = bar(size, "fetching");
    let written = (|| -> anyhow::Result<u64> {
        let mut file =
            File::create(&temp).with_context(|| format!("writing {}", temp.display()))?;
        let mut hasher = blake3::Hasher::new();
        let mut buffer = vec![0u8; 1 << 16];
        let mut total = 0u64;
        loop {
            let n = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("reading the blob"),
            };
            hasher.update(&buffer[..n]);
            file.write_all(&buffer[..n])?;
            total += n as u64;
            bar.set_position(total);
        }
        if hasher.finalize().as_bytes() != &hash.0 {
            bail!("the bytes received do not hash to {hash}");
        }
        file.sync_all()?;
        Ok(total)
    })();
    bar.finish_and_clear();
    match written {
        Ok(total) => {
            fs::rename(&temp, out).with_context(|| format!("writing {}", out.display()))?;
            Ok(total)
        }
        Err(e) => {
            let _ = fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// A progress bar on stderr when it is a terminal; hidden otherwise.
fn bar(size: u64, verb: &str) -> ProgressBar {
    if !io::IsTerminal::is_terminal(&io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(verb.to_owned());
    bar
}

/// Uploads take as long as they take; only a silent connection times out.
fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(2))
        .timeout_read(Duration::from_secs(120))
        .timeout_write(Duration::from_secs(120))
        .build()
}

fn remote_error(error: ureq::Error) -> anyhow::Error {
    match error {
        ureq::Error::Status(_, response) => crate::backend::refusal(response),
        error => anyhow!("the node did not answer: {error}"),
    }
}

/// Counts what is read into the progress bar.
struct Counted<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

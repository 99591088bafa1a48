//! Part files: a bundle's byte stream cut into files a FAT32 stick holds, each opened by a
//! header that names its bundle and its place, so a missing, foreign or misplaced part is
//! named as such instead of surfacing as a hash mismatch.
//!
//! A bundle of one part is the file itself (`FILE`); a larger one is `FILE.001`, `FILE.002`, …

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use minga_protocol::bundle::{BundleError, MAGIC, PART_HEADER_LEN, PartHeader};

use super::ImportError;

/// The path of part `index` of `count` of the bundle named `base`.
pub fn part_path(base: &Path, index: u32, count: u32) -> PathBuf {
    if count == 1 {
        return base.to_path_buf();
    }
    let mut name = base.as_os_str().to_owned();
    name.push(format!(".{index:03}"));
    PathBuf::from(name)
}

/// The base name of a bundle given as `FILE` or as one of its parts `FILE.NNN`.
pub fn base_of(given: &Path) -> PathBuf {
    if given.exists() && !is_numbered_part(given) {
        return given.to_path_buf();
    }
    if is_numbered_part(given) {
        return given.with_extension("");
    }
    given.to_path_buf()
}

fn is_numbered_part(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.len() == 3 && e.bytes().all(|b| b.is_ascii_digit()))
}

/// How many parts a stream of `body_bytes` needs with parts of at most `part_bytes`.
pub fn part_count(body_bytes: u64, part_bytes: u64) -> u64 {
    let capacity = part_bytes - PART_HEADER_LEN as u64;
    body_bytes.div_ceil(capacity).max(1)
}

/// Writes a stream into part files, each headed and synced to disk when full.
pub struct PartWriter {
    base: PathBuf,
    header: PartHeader,
    capacity: u64,
    current: Option<BufWriter<File>>,
    in_part: u64,
    /// Every part written so far, to remove them if the export fails.
    pub written: Vec<PathBuf>,
}

impl PartWriter {
    pub fn new(base: &Path, header: PartHeader, part_bytes: u64) -> Self {
        PartWriter {
            base: base.to_path_buf(),
            header,
            capacity: part_bytes - PART_HEADER_LEN as u64,
            current: None,
            in_part: 0,
            written: Vec::new(),
        }
    }

    fn next_part(&mut self) -> std::io::Result<()> {
        self.close_part()?;
        let index = self.written.len() as u32 + 1;
        let path = part_path(&self.base, index, self.header.count);
        let mut file = BufWriter::with_capacity(1 << 20, create_part(&path)?);
        self.written.push(path);
        file.write_all(
            &PartHeader {
                index,
                ..self.header
            }
            .encode(),
        )?;
        self.current = Some(file);
        self.in_part = 0;
        Ok(())
    }

    fn close_part(&mut self) -> std::io::Result<()> {
        if let Some(file) = self.current.take() {
            // A stick is pulled out as soon as the command returns: every part is on it.
            file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        Ok(())
    }

    /// Syncs the last part; fails if the stream did not fill exactly the planned parts.
    pub fn finish(mut self) -> std::io::Result<Vec<PathBuf>> {
        if self.current.is_none() {
            self.next_part()?;
        }
        self.close_part()?;
        if self.written.len() as u32 != self.header.count {
            return Err(std::io::Error::other(format!(
                "wrote {} parts where {} were planned",
                self.written.len(),
                self.header.count
            )));
        }
        Ok(std::mem::take(&mut self.written))
    }
}

impl Write for PartWriter {
    fn write(&mut self, mut buf: &[u8]) -> std::io::Result<usize> {
        let total = buf.len();
        while !buf.is_empty() {
            if self.current.is_none() || self.in_part == self.capacity {
                self.next_part()?;
            }
            let room = (self.capacity - self.in_part).min(buf.len() as u64) as usize;
            let file = self.current.as_mut().expect("a part is open");
            file.write_all(&buf[..room])?;
            self.in_part += room as u64;
            buf = &buf[room..];
        }
        Ok(total)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.current.as_mut().map_or(Ok(()), Write::flush)
    }
}

/// Reads a bundle's stream across its part files, checking each part's header as it is reached.
pub struct PartReader {
    base: PathBuf,
    first: PartHeader,
    index: u32,
    current: BufReader<File>,
    /// Bytes of the stream read so far (headers not counted).
    pub position: u64,
}

impl PartReader {
    /// Opens the first part of the bundle named by `given` (`FILE` or `FILE.001`).
    pub fn open(given: &Path) -> Result<Self, ImportError> {
        let base = base_of(given);
        let single = base.is_file();
        let first_path = if single {
            base.clone()
        } else {
            part_path(&base, 1, 2)
        };
        if !single && !first_path.exists() {
            return Err(ImportError::NoBundle(base.display().to_string()));
        }
        let mut current = open_part(&first_path, 1)?;
        let first = read_header(&mut current, 1)?;
        if single && first.count != 1 {
            return Err(BundleError::PartCount {
                index: 1,
                count: 1,
                claims: first.count,
            }
            .into());
        }
        if first.index != 1 {
            return Err(BundleError::PartOutOfOrder {
                expected: 1,
                found: first.index,
            }
            .into());
        }
        Ok(PartReader {
            base,
            first,
            index: 1,
            current,
            position: 0,
        })
    }

    pub fn header(&self) -> &PartHeader {
        &self.first
    }

    /// The part files of this bundle.
    pub fn paths(&self) -> Vec<PathBuf> {
        (1..=self.first.count)
            .map(|i| part_path(&self.base, i, self.first.count))
            .collect()
    }

    /// Fills `buf` from the stream; `what` names the data for a truncation error.
    pub fn fill(
        &mut self,
        mut buf: &mut [u8],
        what: &dyn Fn() -> String,
    ) -> Result<(), ImportError> {
        while !buf.is_empty() {
            let read = self
                .current
                .read(buf)
                .map_err(|source| ImportError::io(&self.part_path(self.index), source))?;
            if read == 0 {
                self.next_part(what)?;
                continue;
            }
            buf = &mut buf[read..];
            self.position += read as u64;
        }
        Ok(())
    }

    /// Streams `len` bytes to `sink` in chunks.
    pub fn stream(
        &mut self,
        len: u64,
        what: &dyn Fn() -> String,
        mut sink: impl FnMut(&[u8]) -> Result<(), ImportError>,
    ) -> Result<(), ImportError> {
        let mut chunk = vec![0u8; (len.min(1 << 20)) as usize];
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            self.fill(&mut chunk[..n], what)?;
            sink(&chunk[..n])?;
            left -= n as u64;
        }
        Ok(())
    }

    /// Checks that the stream ends here: nothing after the last section, no part left over.
    pub fn finish(mut self) -> Result<(), ImportError> {
        let mut byte = [0u8; 1];
        let extra = self
            .current
            .read(&mut byte)
            .map_err(|source| ImportError::io(&self.part_path(self.index), source))?;
        if extra > 0 || self.index < self.first.count {
            return Err(ImportError::TrailingData { part: self.index });
        }
        Ok(())
    }

    fn part_path(&self, index: u32) -> PathBuf {
        part_path(&self.base, index, self.first.count)
    }

    fn next_part(&mut self, what: &dyn Fn() -> String) -> Result<(), ImportError> {
        if self.index >= self.first.count {
            return Err(ImportError::Truncated {
                part: self.index,
                what: what(),
            });
        }
        let index = self.index + 1;
        let path = self.part_path(index);
        let mut file = open_part(&path, index)?;
        let header = read_header(&mut file, index)?;
        header.check_follows(&self.first, index)?;
        self.current = file;
        self.index = index;
        Ok(())
    }
}

/// A new part file: never an existing file (it is not truncated), never through a symlink.
fn create_part(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// A part to read, not through a symlink: a bundle path names the file itself.
pub fn open_nofollow(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

fn open_part(path: &Path, index: u32) -> Result<BufReader<File>, ImportError> {
    match open_nofollow(path) {
        Ok(file) => Ok(BufReader::with_capacity(1 << 20, file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ImportError::MissingPart {
            index,
            path: path.display().to_string(),
        }),
        Err(source) => Err(ImportError::io(path, source)),
    }
}

fn read_header(file: &mut BufReader<File>, index: u32) -> Result<PartHeader, ImportError> {
    let mut bytes = [0u8; PART_HEADER_LEN];
    let mut filled = 0;
    while filled < bytes.len() {
        let n = file
            .read(&mut bytes[filled..])
            .map_err(|source| ImportError::io(Path::new("part"), source))?;
        if n == 0 {
            let seen = filled.min(MAGIC.len());
            if bytes[..seen] != MAGIC[..seen] {
                return Err(BundleError::NotABundle.into());
            }
            return Err(ImportError::Truncated {
                part: index,
                what: "the part header".into(),
            });
        }
        filled += n;
    }
    Ok(PartHeader::decode(&bytes)?)
}

/// Removes part files (after a failed export).
pub fn remove_all(paths: &[PathBuf]) {
    for path in paths {
        let _ = fs::remove_file(path);
    }
}

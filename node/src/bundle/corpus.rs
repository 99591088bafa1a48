//! The corpus of damaged bundles in `tests/data/bundles/`: one intact bundle (a collection, an
//! entry with an attachment, its blob) and the same bundle damaged in every way a stick, a
//! copy or a forger can damage it. The end-to-end tests import each one into a real node and
//! check the message and that the store did not change; the test here checks each against
//! the error it must produce.
//!
//! Regenerate (the bundles are deterministic only up to the keys, so regenerate all at once):
//! `cargo test -p minga-node --lib bundle::corpus::write_corpus_into_repository -- --ignored`

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use minga_protocol::bundle::{self, BundleError, Manifest, PART_HEADER_LEN, PartHeader};
use minga_protocol::wire::{self, Payload};
use minga_protocol::{AuthorKey, NewCollection};
use serde_json::json;

use super::blobs::{BlobHash, BundleBlobs};
use super::{ExportRequest, ImportError, ImportRequest};
use crate::commons::export::{self, Exporting};
use crate::commons::import;
use crate::keys::Keys;
use crate::{Commons, DataDir, Error};

/// Blobs held in memory: the corpus needs a blob section before the blob store exists.
#[derive(Debug, Default)]
struct MemoryBlobs(Mutex<BTreeMap<BlobHash, Vec<u8>>>);

impl BundleBlobs for MemoryBlobs {
    fn size(&self, hash: &BlobHash) -> io::Result<Option<u64>> {
        Ok(self.0.lock().unwrap().get(hash).map(|b| b.len() as u64))
    }

    fn open(&self, hash: &BlobHash) -> io::Result<Box<dyn Read + Send>> {
        let bytes = self.0.lock().unwrap().get(hash).cloned();
        bytes
            .map(|b| Box::new(io::Cursor::new(b)) as Box<dyn Read + Send>)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn keeps_blobs(&self) -> bool {
        true
    }

    fn put(&self, hash: &BlobHash, _size: u64, bytes: &mut dyn Read) -> io::Result<()> {
        let mut all = Vec::new();
        bytes.read_to_end(&mut all)?;
        if blake3::hash(&all).as_bytes() != hash {
            return Err(io::Error::other("blob does not match its hash"));
        }
        self.0.lock().unwrap().insert(*hash, all);
        Ok(())
    }
}

/// One damaged bundle: its file name (the first part's, for split ones), what was done to it,
/// and the start of the message it must be refused with.
pub struct Case {
    pub name: &'static str,
    pub message: &'static str,
}

/// Every case, as the end-to-end test expects them.
pub const CASES: &[Case] = &[
    Case {
        name: "not-a-bundle.minga",
        message: "not a minga bundle",
    },
    Case {
        name: "truncated-header.minga",
        message: "the bundle is truncated: part 1 ends inside the part header",
    },
    Case {
        name: "truncated-manifest.minga",
        message: "the bundle is truncated: part 1 ends inside the manifest",
    },
    Case {
        name: "truncated-document.minga",
        message: "the bundle is truncated: part 1 ends inside section 1 (Entry",
    },
    Case {
        name: "truncated-blob.minga",
        message: "the bundle is truncated: part 1 ends inside section 2 (Blob",
    },
    Case {
        name: "flipped-manifest.minga",
        message: "the manifest's signature does not verify",
    },
    Case {
        name: "garbled-manifest.minga",
        message: "the manifest is not valid",
    },
    Case {
        name: "bad-signature.minga",
        message: "the manifest's signature does not verify",
    },
    Case {
        name: "flipped-document.minga",
        message: "section 1 (Entry",
    },
    Case {
        name: "flipped-blob.minga",
        message: "section 2 (Blob",
    },
    Case {
        name: "forged-change.minga",
        message: "section 1 (Entry",
    },
    Case {
        name: "absurd-manifest-size.minga",
        message: "the manifest claims 4294967295 bytes",
    },
    Case {
        name: "absurd-section-size.minga",
        message: "section 2 (Blob",
    },
    Case {
        name: "newer-format.minga",
        message: "made by a newer minga (bundle format 99",
    },
    Case {
        name: "trailing-bytes.minga",
        message: "unexpected bytes after the last section",
    },
    Case {
        name: "missing-part.minga.001",
        message: "part 2 is missing",
    },
    Case {
        name: "out-of-order.minga.001",
        message: "part 3 is where part 2 should be",
    },
];

/// The file listing each case and its message, read by the end-to-end test.
const EXPECTED: &str = "EXPECTED";

/// Writes the intact bundle and every damaged one into `dir`.
pub fn write_corpus(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let expected: String = CASES
        .iter()
        .map(|c| format!("{}\t{}\n", c.name, c.message))
        .collect();
    std::fs::write(dir.join(EXPECTED), expected).unwrap();
    let temp = tempfile::tempdir().unwrap();
    let data = DataDir::new(temp.path().join("node"));
    let mut commons = Commons::open(&data, 8 << 20).unwrap();
    commons
        .create_collection(&NewCollection {
            name: "semillas".into(),
            title: None,
            description: None,
            license: None,
        })
        .unwrap();
    let photo = b"not really a photo of quinoa seeds".repeat(300);
    let hash = blake3::hash(&photo);
    let new = serde_json::from_value(json!({
        "collection": "semillas", "kind": "practice", "title": "Guardar semillas de quinua",
        "body": "Secar a la sombra.", "license": "CC-BY-SA-4.0",
        "attachments": [{"hash": hash.to_hex().to_string(), "name": "quinua.jpg",
                         "mime": "image/jpeg", "size": photo.len()}]
    }))
    .unwrap();
    commons.create_entry(&new).unwrap();
    let blobs = MemoryBlobs::default();
    blobs.0.lock().unwrap().insert(*hash.as_bytes(), photo);
    let key = Keys::load_or_create(&data).unwrap().author;
    let export = |out: PathBuf, part_bytes: Option<u64>| {
        let request = ExportRequest {
            all: true,
            out,
            part_bytes,
            ..ExportRequest::default()
        };
        let node = Exporting {
            store: commons.store(),
            author: &key,
            peer_id: "12D3KooWCorpus",
            now: 1,
        };
        export::export(node, &request, &blobs, &mut |_| {}).unwrap()
    };
    let good = dir.join("good.minga");
    export(good.clone(), None);
    let bytes = std::fs::read(&good).unwrap();
    let layout = Layout::of(&bytes);
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();

    write("not-a-bundle.minga", b"title,body\nAbono,Hojas\n");
    write("truncated-header.minga", &bytes[..30]);
    write("truncated-manifest.minga", &bytes[..layout.manifest + 40]);
    write(
        "truncated-document.minga",
        &bytes[..layout.sections[1] + 100],
    );
    write("truncated-blob.minga", &bytes[..layout.sections[2] + 10]);
    let peer = bytes.windows(6).position(|w| w == b"Corpus").unwrap();
    write("flipped-manifest.minga", &flip(&bytes, peer));
    write(
        "garbled-manifest.minga",
        &flip(&bytes, layout.manifest + 30),
    );
    write("bad-signature.minga", &flip(&bytes, layout.signature + 5));
    write(
        "flipped-document.minga",
        &flip(&bytes, layout.sections[1] + 200),
    );
    write(
        "flipped-blob.minga",
        &flip(&bytes, layout.sections[2] + 100),
    );
    let mut absurd = bytes.clone();
    absurd[PART_HEADER_LEN..PART_HEADER_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    write("absurd-manifest-size.minga", &absurd);
    let mut newer = bytes.clone();
    newer[8..12].copy_from_slice(&99u32.to_le_bytes());
    write("newer-format.minga", &newer);
    write(
        "trailing-bytes.minga",
        &[bytes.as_slice(), b"extra"].concat(),
    );

    // A forged change: a signature altered inside the entry's section, with the section's hash
    // and the manifest signature made valid again, as a forger holding a key would.
    let mut sections = layout.section_bytes(&bytes);
    let Payload::Whole {
        document,
        mut signatures,
    } = wire::decode(&sections[1], wire::MAX_MESSAGE_BYTES).unwrap()
    else {
        panic!("the entry section is a whole document");
    };
    signatures[0].signature[0] ^= 1;
    sections[1] = wire::encode(&Payload::Whole {
        document,
        signatures,
    });
    write(
        "forged-change.minga",
        &assemble(&layout.manifest(&bytes), &key, &sections, |_| {}),
    );
    write(
        "absurd-section-size.minga",
        &assemble(&layout.manifest(&bytes), &key, &sections, |m| {
            m.sections[2].size = 1 << 60;
        }),
    );

    // Split bundles: one with its second part gone, one with parts 2 and 3 swapped.
    for name in ["missing-part.minga", "out-of-order.minga"] {
        let summary = export(dir.join(name), Some(4096));
        assert!(summary.parts.len() >= 3, "{:?}", summary.parts);
    }
    std::fs::remove_file(dir.join("missing-part.minga.002")).unwrap();
    let (second, third) = (
        dir.join("out-of-order.minga.002"),
        dir.join("out-of-order.minga.003"),
    );
    let swap = dir.join("out-of-order.swap");
    std::fs::rename(&second, &swap).unwrap();
    std::fs::rename(&third, &second).unwrap();
    std::fs::rename(&swap, &third).unwrap();
}

fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut flipped = bytes.to_vec();
    flipped[at] ^= 0x20;
    flipped
}

/// Where the pieces of a one-part bundle start.
struct Layout {
    manifest: usize,
    signature: usize,
    sections: Vec<usize>,
    end: usize,
}

impl Layout {
    fn of(bytes: &[u8]) -> Self {
        let manifest = PART_HEADER_LEN + 4;
        let len = u32::from_le_bytes(bytes[PART_HEADER_LEN..manifest].try_into().unwrap());
        let signature = manifest + len as usize;
        let parsed: Manifest = serde_json::from_slice(&bytes[manifest..signature]).unwrap();
        let mut at = signature + bundle::SIGNATURE_LEN;
        let mut sections = Vec::new();
        for section in &parsed.sections {
            sections.push(at);
            at += section.size as usize;
        }
        Layout {
            manifest,
            signature,
            sections,
            end: at,
        }
    }

    fn manifest(&self, bytes: &[u8]) -> Manifest {
        serde_json::from_slice(&bytes[self.manifest..self.signature]).unwrap()
    }

    fn section_bytes(&self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut ends = self.sections[1..].to_vec();
        ends.push(self.end);
        self.sections
            .iter()
            .zip(ends)
            .map(|(start, end)| bytes[*start..end].to_vec())
            .collect()
    }
}

/// A one-part bundle of `sections` under `manifest` (sizes and hashes recomputed, then
/// `tweak`ed, then signed by `key`).
fn assemble(
    manifest: &Manifest,
    key: &AuthorKey,
    sections: &[Vec<u8>],
    tweak: impl FnOnce(&mut Manifest),
) -> Vec<u8> {
    let mut manifest = manifest.clone();
    for (section, bytes) in manifest.sections.iter_mut().zip(sections) {
        section.size = bytes.len() as u64;
        if section.kind != bundle::SectionKind::Blob {
            section.hash = blake3::hash(bytes).to_hex().to_string();
        }
    }
    tweak(&mut manifest);
    let (manifest_bytes, signature) = manifest.sign(key);
    let header = PartHeader {
        format: bundle::FORMAT_VERSION,
        index: 1,
        count: 1,
        bundle: bundle::bundle_id(&manifest_bytes),
    };
    let mut out = header.encode().to_vec();
    out.extend_from_slice(&(manifest_bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&manifest_bytes);
    out.extend_from_slice(&signature.0);
    sections.iter().for_each(|s| out.extend_from_slice(s));
    out
}

/// The corpus kept in the repository.
fn repository_corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/bundles")
}

#[test]
#[ignore = "writes the corpus into the repository; run by hand to regenerate it"]
fn write_corpus_into_repository() {
    let dir = repository_corpus();
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    write_corpus(&dir);
}

#[test]
fn every_damaged_bundle_is_refused_with_its_message_and_the_intact_one_imports() {
    let temp = tempfile::tempdir().unwrap();
    let corpus = temp.path().join("corpus");
    write_corpus(&corpus);
    let mut commons = Commons::open(&DataDir::new(temp.path().join("b")), 8 << 20).unwrap();
    for case in CASES {
        let request = ImportRequest {
            file: corpus.join(case.name),
            assume_free_bytes: None,
        };
        let error = commons.import_bundle(&request, &mut |_| {}).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with(case.message),
            "{}: {message}",
            case.name
        );
        assert_eq!(commons.store().entry_count().unwrap(), 0, "{}", case.name);
        assert_eq!(commons.store().applied_writes(), 0, "{}", case.name);
        assert!(commons.store().journal_is_empty(), "{}", case.name);
    }
    let forged = ImportRequest {
        file: corpus.join("forged-change.minga"),
        assume_free_bytes: None,
    };
    let error = commons.import_bundle(&forged, &mut |_| {}).unwrap_err();
    assert!(
        matches!(&error, Error::Import(ImportError::Rejected { reason, .. }) if reason.contains("signature does not verify")),
        "{error}"
    );
    let manifest = ImportRequest {
        file: corpus.join("flipped-manifest.minga"),
        assume_free_bytes: None,
    };
    assert!(matches!(
        commons.import_bundle(&manifest, &mut |_| {}),
        Err(Error::Import(ImportError::Format(
            BundleError::BadSignature
        )))
    ));

    let good = ImportRequest {
        file: corpus.join("good.minga"),
        assume_free_bytes: None,
    };
    let blobs = MemoryBlobs::default();
    let summary = import::import(&mut commons, &good, &blobs, &mut |_| {})
        .unwrap()
        .value;
    assert_eq!((summary.entries.new, summary.blobs_added), (1, 1));
    assert_eq!(blobs.0.lock().unwrap().len(), 1);
}

/// The committed corpus is the one this code would write: same cases, each refused the same.
#[test]
fn the_repository_corpus_has_every_case() {
    for case in CASES {
        assert!(
            repository_corpus().join(case.name).exists(),
            "{} is missing; regenerate the corpus (see the module doc)",
            case.name
        );
    }
}

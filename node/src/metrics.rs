//! `/metrics` from one OpenMetrics registry. The network registers its counters where it makes
//! them (libp2p's bandwidth, the sync session's); [`NodeMetrics`] adds, on each scrape, what the
//! node knows at that moment: its build, entries, peers, store writes, blob transfers, memory
//! and disk use.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Unit;

use crate::BlobStore;
use crate::network::NetStatus;
use crate::store::Reader;

/// The content type `/metrics` answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Where Linux tells a process its resident memory.
const PROC_STATUS: &str = "/proc/self/status";

/// The node's own figures, read at each scrape.
#[derive(Clone)]
pub struct NodeMetrics {
    pub store: Reader,
    pub net: Arc<RwLock<NetStatus>>,
    pub blobs: BlobStore,
    pub data_dir: PathBuf,
}

impl fmt::Debug for NodeMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeMetrics")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl Collector for NodeMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let e = &mut encoder;
        let build = Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]);
        emit(e, "minga_build", "The running build", None, &build)?;
        if let Ok(entries) = self.store.entry_count() {
            emit(e, "minga_entries", "Entries held", None, &gauge(entries))?;
        }
        if let Ok(collections) = self.store.collections() {
            let held = gauge(collections.len() as u64);
            emit(e, "minga_collections", "Collections held", None, &held)?;
        }
        let (peers, dropped) = {
            let net = self.net.read().expect("status lock");
            (net.peers.len() as u64, net.peers_dropped)
        };
        emit(e, "minga_peers", "Connected peers", None, &gauge(peers))?;
        let help = "Peers dropped for forged changes or malformed messages";
        emit(
            e,
            "minga_peers_dropped",
            help,
            None,
            &ConstCounter::new(dropped),
        )?;
        let help = "Store batches applied since start";
        let writes = ConstCounter::new(self.store.applied_writes());
        emit(e, "minga_store_writes", help, None, &writes)?;
        let help = "Store batches flushed to disk since start";
        let durable = ConstCounter::new(self.store.durable_writes());
        emit(e, "minga_store_durable_writes", help, None, &durable)?;
        let (fetched, rejected) = {
            let progress = self.blobs.progress();
            (progress.bytes_fetched, progress.rejected_ranges)
        };
        let help = "Attachment bytes verified and written since start";
        let fetched = ConstCounter::new(fetched);
        emit(e, "minga_blob_fetched", help, Some(&Unit::Bytes), &fetched)?;
        let help = "Attachment ranges from peers that failed verification";
        let rejected = ConstCounter::new(rejected);
        emit(e, "minga_blob_ranges_rejected", help, None, &rejected)?;
        if let Some(rss) = resident_bytes() {
            let help = "Resident memory of the node's process";
            emit(
                e,
                "process_resident_memory",
                help,
                Some(&Unit::Bytes),
                &gauge(rss),
            )?;
        }
        let help = "Bytes of the files in the data dir: store, search index, attachments";
        let disk = gauge(dir_bytes(&self.data_dir));
        emit(e, "minga_data_dir", help, Some(&Unit::Bytes), &disk)
    }
}

fn emit(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric: &impl EncodeMetric,
) -> fmt::Result {
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

fn gauge(value: u64) -> ConstGauge {
    ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX))
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn resident_bytes() -> Option<u64> {
    let status = fs::read_to_string(PROC_STATUS).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The sizes of the files under `dir`, links not followed; also the operator page's disk use.
pub(crate) fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) if meta.is_file() => meta.len(),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_dir_is_counted_file_by_file() {
        let scratch = tempfile::tempdir().expect("scratch dir");
        fs::create_dir(scratch.path().join("store")).expect("subdir");
        fs::write(scratch.path().join("a"), [0; 100]).expect("file");
        fs::write(scratch.path().join("store/b"), [0; 23]).expect("file");
        assert_eq!(dir_bytes(scratch.path()), 123);
    }

    #[test]
    fn this_process_has_resident_memory() {
        assert!(resident_bytes().is_some_and(|bytes| bytes > 0));
    }
}

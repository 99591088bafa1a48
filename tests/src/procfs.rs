//! What the benchmarks read from `/proc` about the processes they drive: resident memory now and
//! at its peak, CPU time, the load average, and resident memory sampled over time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`, `RssAnon`, …), in bytes.
pub fn status_bytes(pid: u32, field: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in {path}"))?;
    Ok(kib * 1024)
}

/// Resident set (VmRSS) of a process now, bytes.
pub fn rss(pid: u32) -> Result<u64> {
    status_bytes(pid, "VmRSS")
}

/// Peak resident set (VmHWM) of a process, bytes.
pub fn peak_rss(pid: u32) -> Result<u64> {
    status_bytes(pid, "VmHWM")
}

/// Clock ticks per second of `/proc/*/stat` times (`getconf CLK_TCK`, 100 on Linux).
pub fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU time (user + system) a process has used, from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Fields after the command name, which may hold spaces and ends at the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    ensure!(fields.len() == 2, "no utime and stime in {path}");
    Ok(Duration::from_secs_f64(
        (fields[0] + fields[1]) / clock_ticks(),
    ))
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` shows them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// One sample of a [`RssSampler`]: time since it started, and each process's resident set
/// (0 once a process is gone).
#[derive(Debug, Clone)]
pub struct RssSample {
    pub at: Duration,
    pub rss: Vec<u64>,
}

/// Samples the resident set of some processes on a thread of its own until stopped, keeping
/// the last peak (VmHWM) each showed.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<RssSample>>>,
    peaks: Arc<Mutex<Vec<u64>>>,
    thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(pids: &[u32], every: Duration) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let peaks = Arc::new(Mutex::new(vec![0; pids.len()]));
        let thread = {
            let (stop, samples, peaks, pids) = (
                Arc::clone(&stop),
                Arc::clone(&samples),
                Arc::clone(&peaks),
                pids.to_vec(),
            );
            std::thread::spawn(move || {
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let rss = pids.iter().map(|&pid| rss(pid).unwrap_or(0)).collect();
                    for (peak, &pid) in peaks.lock().expect("peaks").iter_mut().zip(&pids) {
                        if let Ok(now) = peak_rss(pid) {
                            *peak = now;
                        }
                    }
                    let at = started.elapsed();
                    samples.lock().expect("samples").push(RssSample { at, rss });
                    std::thread::sleep(every);
                }
            })
        };
        RssSampler {
            stop,
            samples,
            peaks,
            thread: Some(thread),
        }
    }

    /// Stops sampling; returns the samples and each process's last seen peak (VmHWM).
    pub fn finish(mut self) -> (Vec<RssSample>, Vec<u64>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let samples = std::mem::take(&mut *self.samples.lock().expect("samples"));
        let peaks = self.peaks.lock().expect("peaks").clone();
        (samples, peaks)
    }
}

//! Helpers for `benches/peers.rs` and the backends: run scale, payloads, timing and
//! statistics, the physical-limit probes, a poll-once executor for kafko's (synchronous)
//! async fns, and the result table.

use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::Subject;

#[path = "../../common/units.rs"]
mod units;

pub use units::si;

/// The table's columns, in order; rows leave out the subjects a workload does not run.
pub const COLUMNS: [Subject; 5] = [
    Subject::Seglog,
    Subject::SeglogLz4,
    Subject::SeglogZstd,
    Subject::Commitlog,
    Subject::Kafko,
];

/// 1 MB = 10^6 bytes in every MB/s figure.
pub const MB: f64 = 1e6;
pub const MIB: usize = 1 << 20;

/// How big the run is: full (`cargo bench --bench peers`) or quick
/// (`SEGLOG_BENCH_QUICK=1`).
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub quick: bool,
}

impl Scale {
    pub fn from_env() -> Scale {
        let quick = units::quick_from_env();
        Scale { quick }
    }

    fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick {
            quick
        } else {
            full
        }
    }

    /// Payload bytes appended per append case and repetition.
    pub fn append_bytes(&self) -> usize {
        self.pick(128 * MIB, 8 * MIB)
    }
    /// Most append calls per case and repetition (bounds the small-record cases).
    pub fn max_appends(&self) -> usize {
        self.pick(1_000_000, 50_000)
    }
    /// Each subject repeats a throughput case until it has run this long in all...
    pub fn min_case_time(&self) -> Duration {
        self.pick(Duration::from_millis(1200), Duration::from_millis(60))
    }
    /// ...but at most this many times (and at least once).
    pub fn max_reps(&self) -> usize {
        self.pick(9, 3)
    }
    /// Payload bytes in each sequential-read log.
    pub fn read_log_bytes(&self) -> usize {
        self.pick(128 * MIB, 8 * MIB)
    }
    /// Records in each random-read log.
    pub fn random_log_records(&self) -> usize {
        self.pick(300_000, 20_000)
    }
    /// Random single-offset reads per subject.
    pub fn random_reads(&self) -> usize {
        self.pick(100_000, 10_000)
    }
    /// Time box for operations that are slow for some subject (kafko reads, fsyncs).
    pub fn time_box(&self) -> Duration {
        self.pick(Duration::from_secs(2), Duration::from_millis(250))
    }
    /// Bytes for the raw write(2) probe.
    pub fn raw_write_bytes(&self) -> usize {
        self.pick(512 * MIB, 64 * MIB)
    }
    /// 64 MiB copies for the memcpy probe.
    pub fn memcpy_reps(&self) -> usize {
        self.pick(24, 4)
    }
}

/// `n` distinct payloads of `size` bytes (a byte pattern that differs per record).
pub fn payloads(size: usize, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| (0..size).map(|j| (i * 31 + j) as u8).collect())
        .collect()
}

/// Drives a future that never waits (kafko's storage types are `async fn`s over blocking
/// std I/O) by polling it once.
///
/// # Panics
/// When the future returns `Pending`: it needs a real runtime.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("future is pending: it needs an async runtime"),
    }
}

/// Records and payload bytes moved in some time.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub records_per_s: f64,
    pub bytes_per_s: f64,
}

impl Rate {
    pub fn new(records: u64, bytes: u64, elapsed: Duration) -> Rate {
        let s = elapsed.as_secs_f64().max(1e-9);
        Rate {
            records_per_s: records as f64 / s,
            bytes_per_s: bytes as f64 / s,
        }
    }
    pub fn mb_per_s(&self) -> f64 {
        self.bytes_per_s / MB
    }
}

/// The median by records/s (the upper median for an even count).
pub fn median(mut rates: Vec<Rate>) -> Rate {
    assert!(!rates.is_empty(), "median of no measurements");
    rates.sort_by(|a, b| a.records_per_s.total_cmp(&b.records_per_s));
    rates[rates.len() / 2]
}

/// A latency histogram in nanoseconds, 1 ns .. 10 s, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 10_000_000_000, 3).expect("histogram bounds")
}

/// The latency percentiles reported, with their row names.
pub const PERCENTILES: [(&str, f64); 3] = [("p50", 0.50), ("p99", 0.99), ("p99.9", 0.999)];

/// The [`PERCENTILES`] of a latency histogram in ns, and the number of samples.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub ns: [u64; 3],
    pub samples: u64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        Latency {
            ns: PERCENTILES.map(|(_, q)| h.value_at_quantile(q)),
            samples: h.len(),
        }
    }
}

/// What the machine can do at best, measured in the same temp directory.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Raw `write(2)` of 1 MiB buffers to a new file (page cache, no fsync), bytes/s.
    pub write_bytes_per_s: f64,
    /// `memcpy` of a 64 MiB buffer, bytes/s.
    pub memcpy_bytes_per_s: f64,
    /// 4 KiB append + `fdatasync`, ops/s.
    pub fdatasync_per_s: f64,
    /// 100 B append + `fdatasync`, ops/s (the durable workload's record size).
    pub small_fdatasync_per_s: f64,
}

/// Best of two runs of `write(2)` of `chunk`-byte buffers, `total` bytes, to a new file.
pub fn probe_write(dir: &Path, total: usize, chunk: usize) -> f64 {
    let buf = vec![0x5a_u8; chunk];
    let mut best = 0f64;
    for rep in 0..2 {
        let path = dir.join(format!("raw-write-{rep}"));
        let mut f = File::create(&path).expect("create raw-write file");
        let start = Instant::now();
        for _ in 0..total / chunk {
            f.write_all(&buf).expect("raw write");
        }
        let rate = (total / chunk * chunk) as f64 / start.elapsed().as_secs_f64();
        best = best.max(rate);
        drop(f);
        std::fs::remove_file(&path).expect("remove raw-write file");
    }
    best
}

/// `memcpy` bandwidth: `reps` copies of a 64 MiB buffer (both buffers pre-faulted),
/// counting the bytes copied once.
pub fn probe_memcpy(reps: usize) -> f64 {
    let src = vec![0xa5_u8; 64 * MIB];
    let mut dst = vec![1_u8; 64 * MIB];
    dst.copy_from_slice(&src); // warm up: fault in and cache the mappings
    let start = Instant::now();
    for _ in 0..reps {
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
    }
    (reps * src.len()) as f64 / start.elapsed().as_secs_f64()
}

/// Durable-append rate of the device: `write(2)` of `size` bytes at the end of a file,
/// then `fdatasync`, per op, for `time_box`. Returns ops/s.
pub fn probe_fdatasync(dir: &Path, time_box: Duration, size: usize) -> f64 {
    let path = dir.join(format!("raw-fdatasync-{size}"));
    let mut f = File::create(&path).expect("create raw-fdatasync file");
    let buf = vec![0x3c_u8; size];
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < time_box || ops < 10 {
        f.write_all(&buf).expect("raw fdatasync write");
        f.sync_data().expect("raw fdatasync");
        ops += 1;
    }
    let rate = ops as f64 / start.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path).expect("remove raw-fdatasync file");
    rate
}

/// The median (upper median for an even count).
pub fn median_f64(mut xs: Vec<f64>) -> f64 {
    assert!(!xs.is_empty(), "median of no measurements");
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// A nanosecond latency as `850ns`, `1.92µs`, `3.10ms`.
pub fn ns(x: u64) -> String {
    let x = x as f64;
    if x < 1e3 {
        format!("{x:.0}ns")
    } else if x < 1e6 {
        format!("{:.2}µs", x / 1e3)
    } else {
        format!("{:.2}ms", x / 1e6)
    }
}

/// One subject's result in one row.
#[derive(Debug, Clone)]
pub enum Cell {
    /// A throughput; `mark` flags a footnote ("" for none).
    Rate(Rate, &'static str),
    /// A latency percentile in ns.
    Latency(u64, &'static str),
}

/// One table row: a cell per [`COLUMNS`] entry (`None`: not run), then seglog
/// (uncompressed) against the faster peer and against the physical limit.
#[derive(Debug, Clone)]
pub struct Row {
    pub workload: String,
    pub cells: Vec<Option<Cell>>,
    /// seglog as a fraction of the relevant limit, with the limit's short name.
    pub vs_limit: Option<(f64, &'static str)>,
}

impl Row {
    /// seglog ÷ faster peer: throughput ratio, or for latencies the faster peer's latency
    /// ÷ seglog's (so > 1 means seglog is better in both cases).
    pub fn ratio(&self) -> Option<f64> {
        let peers = COLUMNS
            .iter()
            .zip(&self.cells)
            .filter(|(s, _)| !s.is_seglog())
            .filter_map(|(_, c)| c.as_ref());
        match self.cells[0].as_ref()? {
            Cell::Rate(s, _) => {
                let best = peers
                    .filter_map(|c| match c {
                        Cell::Rate(r, _) => Some(r.records_per_s),
                        _ => None,
                    })
                    .reduce(f64::max)?;
                Some(s.records_per_s / best)
            }
            Cell::Latency(s, _) => {
                let best = peers
                    .filter_map(|c| match c {
                        Cell::Latency(l, _) => Some(*l),
                        _ => None,
                    })
                    .min()?;
                Some(best as f64 / (*s).max(1) as f64)
            }
        }
    }
}

/// A section heading or a row.
#[derive(Debug, Clone)]
pub enum Line {
    Section(String),
    Row(Row),
}

const W_WORK: usize = 30;
const W_NUM: usize = 8;

fn cell_parts(c: &Option<Cell>) -> (String, String) {
    match c {
        None => ("-".to_string(), "-".to_string()),
        Some(Cell::Rate(r, mark)) => (si(r.records_per_s), format!("{:.1}{mark}", r.mb_per_s())),
        Some(Cell::Latency(v, mark)) => (format!("{}{mark}", ns(*v)), "-".to_string()),
    }
}

/// Prints the table: two columns (rec/s, MB/s; or a latency) per subject.
pub fn print_table(lines: &[Line]) {
    let sep = "-".repeat(W_WORK + COLUMNS.len() * 2 * (W_NUM + 1) + 14 + 16);
    let mut names = format!("{:<W_WORK$}", "");
    let mut units = format!("{:<W_WORK$}", "workload");
    for s in COLUMNS {
        names += &format!(" {:>w$}", s.name(), w = 2 * W_NUM + 1);
        units += &format!(" {:>W_NUM$} {:>W_NUM$}", "rec/s", "MB/s");
    }
    println!("{names} {:>13} {:>15}", "seglog ÷", "seglog ÷");
    println!("{units} {:>13} {:>15}", "faster peer", "limit");
    println!("{sep}");
    for line in lines {
        match line {
            Line::Section(s) => println!("{s}"),
            Line::Row(r) => {
                let mut row = format!("{:<W_WORK$}", r.workload);
                for c in &r.cells {
                    let (a, b) = cell_parts(c);
                    row += &format!(" {a:>W_NUM$} {b:>W_NUM$}");
                }
                let ratio = r.ratio().map_or("-".to_string(), |x| format!("{x:.2}x"));
                let limit = r.vs_limit.map_or(String::new(), |(f, name)| {
                    format!("{:.0}% {name}", f * 100.0)
                });
                println!("{row} {ratio:>13} {limit:>15}");
            }
        }
    }
    println!("{sep}");
}

//! Criterion benchmarks of seglog's hot paths: appends, sequential and random reads,
//! lookups by timestamp, reopening a store, and durable (flushed) appends.
//!
//! `cargo bench --bench seglog` (about 3–4 minutes on 2 cores). Every case runs on a fresh
//! temp dir, built before the case is timed and removed after it. Throughput reads as
//! records/s (`elem/s`); the append and sequential-read cases are measured a second time
//! in a `*_bytes` group that reports payload (value) bytes/s. Records have a value of the
//! stated size and no key or headers. Other units: `read_random` and
//! `offset_for_timestamp` count lookups, `reopen` counts segments, `recovery_scan` log bytes.
//!
//! Criterion calls a benchmark's closure once per sample, so logs are built outside it.

use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use seglog::{FlushPolicy, Partition, Record, Store, TopicConfig};

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// Value sizes and records per append of the append cases.
const APPEND_SIZES: [usize; 4] = [10, 100, KIB, 16 * KIB];
const APPEND_BATCHES: [usize; 3] = [1, 100, 1000];
/// An append case starts a fresh partition once its log grows past this (disk space).
const ROTATE_BYTES: u64 = 512 << 20;

/// Value sizes of the sequential-read logs, their payload, and their records per append.
const SEQ_READ_SIZES: [usize; 2] = [100, KIB];
const SEQ_READ_PAYLOAD: usize = 32 * MIB;
const READ_BATCH: usize = 100;
/// Largest fetch of a read loop (a consumer's `fetch.max.bytes`).
const FETCH_BYTES: usize = MIB;

/// Records (of 100 B) in each random-read log, and the records per append it is written with.
const RANDOM_READ_RECORDS: u64 = 200_000;
const RANDOM_READ_BATCHES: [usize; 2] = [1, 100];

/// Segments of the `offset_for_timestamp` log and of the `reopen` stores.
const TIMESTAMP_SEGMENTS: usize = 64;
const REOPEN_SEGMENTS: [usize; 2] = [100, 1000];
/// Log bytes (values) of the `recovery_scan` logs.
const RECOVERY_SCAN_BYTES: usize = 256 * MIB;

/// Timestamp of offset 0 in logs whose record `o` is stamped `T0 + o` ms.
const T0: i64 = 1_700_000_000_000;

/// A group with this suite's short timing: 10 samples, 1 s warm-up, 3 s measurement.
fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g
}

/// What a group's throughput counts: records, or payload bytes of the same work.
#[derive(Debug, Clone, Copy)]
enum Unit {
    Records,
    Bytes,
}

impl Unit {
    const ALL: [Unit; 2] = [Unit::Records, Unit::Bytes];

    /// `append` → `append` (records/s) or `append_bytes` (bytes/s).
    fn group_name(self, base: &str) -> String {
        match self {
            Unit::Records => base.to_string(),
            Unit::Bytes => format!("{base}_bytes"),
        }
    }

    /// Throughput of one iteration over `records` records with values of `size` bytes.
    fn throughput(self, records: u64, size: usize) -> Throughput {
        match self {
            Unit::Records => Throughput::Elements(records),
            Unit::Bytes => Throughput::Bytes(records * size as u64),
        }
    }
}

/// `10B`, `1KiB`, `16KiB`.
fn size_label(size: usize) -> String {
    if size >= KIB && size.is_multiple_of(KIB) {
        format!("{}KiB", size / KIB)
    } else {
        format!("{size}B")
    }
}

/// `n` records with `size`-byte values, no key, no timestamp (the append takes "now").
fn records(n: usize, size: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record::new(vec![(i % 251) as u8; size]))
        .collect()
}

/// A store with one single-partition topic in its own temp dir. Fields drop in order:
/// the store closes before the directory is removed.
struct Log {
    p: Partition,
    store: Store,
    dir: tempfile::TempDir,
}

impl Log {
    fn new(config: TopicConfig) -> Log {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("open store");
        let topic = store.create_topic("bench", config).expect("create topic");
        let p = topic.partition(0).expect("partition 0").clone();
        Log { p, store, dir }
    }

    /// Appends batches of `batch` records with `size`-byte values, record `o` stamped
    /// `T0 + o` ms, while `more(partition)` holds.
    fn fill(&self, batch: usize, size: usize, mut more: impl FnMut(&Partition) -> bool) {
        let mut recs = records(batch, size);
        while more(&self.p) {
            let base = self.p.log_end_offset();
            for (i, r) in recs.iter_mut().enumerate() {
                r.timestamp = Some(T0 + (base + i as u64) as i64);
            }
            self.p.append(&recs).expect("append");
        }
    }

    /// A log of exactly `n` records (a multiple of `batch`).
    fn with_records(config: TopicConfig, n: u64, batch: usize, size: usize) -> Log {
        assert_eq!(n % batch as u64, 0, "whole batches");
        let log = Log::new(config);
        log.fill(batch, size, |p| p.log_end_offset() < n);
        log
    }

    /// A log of exactly `n` segments (the last holds one batch of `batch` records).
    fn with_segments(config: TopicConfig, n: usize, batch: usize, size: usize) -> Log {
        let log = Log::new(config);
        log.fill(batch, size, |p| {
            p.stats().segments < n || p.log_end_offset() == 0
        });
        assert_eq!(log.p.stats().segments, n);
        log
    }
}

/// A pseudo-random number in `0..n` (64-bit LCG, high bits).
fn next_below(state: &mut u64, n: u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*state >> 33) % n
}

// ---------------------------------------------------------------------------------------
// Appends

/// An append target that starts over on a fresh partition (and temp dir) once its log
/// passes [`ROTATE_BYTES`], outside the timed region.
struct AppendTarget {
    config: TopicConfig,
    log: Log,
    written: u64,
}

impl AppendTarget {
    fn new() -> AppendTarget {
        let config = TopicConfig::default()
            .segment_bytes(256 << 20)
            .max_batch_bytes(32 << 20);
        AppendTarget {
            log: Log::new(config.clone()),
            config,
            written: 0,
        }
    }

    /// Time of `iters` appends of `recs`, excluding the rotations between them.
    fn time_appends(&mut self, recs: &[Record], iters: u64) -> Duration {
        let mut timed = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            if self.written >= ROTATE_BYTES {
                // Drops (closes, flushes, deletes) the previous log, untimed.
                self.log = Log::new(self.config.clone());
                self.written = 0;
            }
            let start = Instant::now();
            while left > 0 && self.written < ROTATE_BYTES {
                let info = self.log.p.append(recs).expect("append");
                self.written += info.batch_bytes as u64;
                left -= 1;
            }
            timed += start.elapsed();
        }
        timed
    }
}

fn append(c: &mut Criterion) {
    for unit in Unit::ALL {
        let mut g = group(c, &unit.group_name("append"));
        for size in APPEND_SIZES {
            for batch in APPEND_BATCHES {
                let recs = records(batch, size);
                let mut target = AppendTarget::new();
                g.throughput(unit.throughput(batch as u64, size));
                g.bench_function(format!("{}/x{batch}", size_label(size)), |b| {
                    b.iter_custom(|iters| target.time_appends(&recs, iters))
                });
            }
        }
        g.finish();
    }
}

fn durable_append(c: &mut Criterion) {
    let mut g = group(c, "durable_append");
    let log = Log::new(TopicConfig::default());
    let rec = records(1, 100);
    g.throughput(Throughput::Elements(1));
    g.bench_function("100B/x1+flush", |b| {
        b.iter(|| {
            log.p.append(&rec).expect("append");
            log.p.flush().expect("flush");
        })
    });
    g.finish();
}

/// Durable appends of one 100 B record each with `FlushPolicy::EveryAppend`, from 1, 4 and
/// 16 threads at once: what group commit buys (records/s across all threads).
fn durable_append_threads(c: &mut Criterion) {
    let mut g = group(c, "durable_append_threads");
    for threads in [1usize, 4, 16] {
        let log = Log::new(TopicConfig::default().flush_policy(FlushPolicy::EveryAppend));
        let rec = records(1, 100);
        g.throughput(Throughput::Elements(threads as u64));
        g.bench_function(format!("{threads}_threads"), |b| {
            // One iteration = one durable append on each thread.
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        s.spawn(|| {
                            for _ in 0..iters {
                                log.p.append(&rec).expect("durable append");
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------
// Reads

/// Reads the whole log with `read(next, 1 MiB)` calls, touching every record's value.
/// Returns a checksum of the values' last bytes.
fn read_all(p: &Partition) -> u64 {
    let (mut next, end) = (p.log_start_offset(), p.log_end_offset());
    let (mut records, mut sum) = (0u64, 0u64);
    while next < end {
        let fetch = p.read(next, FETCH_BYTES).expect("read");
        for r in fetch.records() {
            let v = r.value().expect("value");
            sum += u64::from(v[v.len() - 1]);
            records += 1;
        }
        next = fetch.next_offset();
    }
    assert_eq!(records, end);
    sum
}

fn read_sequential(c: &mut Criterion) {
    for unit in Unit::ALL {
        let mut g = group(c, &unit.group_name("read_seq"));
        for size in SEQ_READ_SIZES {
            let n = (SEQ_READ_PAYLOAD / size / READ_BATCH * READ_BATCH) as u64;
            let log = Log::with_records(TopicConfig::default(), n, READ_BATCH, size);
            g.throughput(unit.throughput(n, size));
            g.bench_function(format!("{}/x{READ_BATCH}", size_label(size)), |b| {
                b.iter(|| read_all(&log.p))
            });
        }
        g.finish();
    }
}

/// Reads the record at `offset` (the fetch holds its whole batch) and touches its value.
fn read_one(p: &Partition, offset: u64) -> u8 {
    let fetch = p.read(offset, 1).expect("read");
    let r = fetch.records().next().expect("a record");
    assert_eq!(r.offset(), offset);
    r.value().expect("value")[0]
}

fn read_random(c: &mut Criterion) {
    let mut g = group(c, "read_random");
    g.throughput(Throughput::Elements(1));
    for batch in RANDOM_READ_BATCHES {
        let log = Log::with_records(TopicConfig::default(), RANDOM_READ_RECORDS, batch, 100);
        let mut rng = 1u64;
        g.bench_function(format!("100B/x{batch}"), |b| {
            b.iter(|| read_one(&log.p, next_below(&mut rng, RANDOM_READ_RECORDS)))
        });
    }
    g.finish();
}

fn offset_for_timestamp(c: &mut Criterion) {
    let mut g = group(c, "offset_for_timestamp");
    g.throughput(Throughput::Elements(1));
    let config = TopicConfig::default().segment_bytes(MIB as u64);
    let log = Log::with_segments(config, TIMESTAMP_SEGMENTS, READ_BATCH, 100);
    let records = log.p.log_end_offset();
    let mut rng = 1u64;
    g.bench_function(format!("{TIMESTAMP_SEGMENTS}_segments"), |b| {
        b.iter(|| {
            let target = next_below(&mut rng, records);
            let found = log.p.offset_for_timestamp(T0 + target as i64);
            assert_eq!(found.expect("lookup").expect("found").offset, target);
        })
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------
// Reopen

/// Times `Store::open` of `dir` only, `iters` times; `before` runs untimed before each
/// open (to leave the directory as a crash would), the close runs untimed after it.
fn time_opens(dir: &std::path::Path, iters: u64, before: impl Fn()) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        before();
        let start = Instant::now();
        let store = Store::open(dir).expect("reopen");
        total += start.elapsed();
        store.close().expect("close");
    }
    total
}

/// Removes `name` at the root of `dir` if it exists.
fn remove(dir: &std::path::Path, name: &str) {
    let _ = std::fs::remove_file(dir.join(name));
}

fn reopen(c: &mut Criterion) {
    let mut g = group(c, "reopen");
    for segments in REOPEN_SEGMENTS {
        let config = TopicConfig::default().segment_bytes(64 * KIB as u64);
        let Log { p, store, dir } = Log::with_segments(config, segments, READ_BATCH, 100);
        drop(p);
        store.close().expect("clean close");
        g.throughput(Throughput::Elements(segments as u64));
        // After a clean shutdown: nothing but file names and sizes is read.
        g.bench_function(format!("clean/{segments}_segments"), |b| {
            b.iter_custom(|iters| time_opens(dir.path(), iters, || {}))
        });
        // After a crash with a recent recovery point: the segment holding it is checked.
        g.bench_function(format!("unclean/{segments}_segments"), |b| {
            b.iter_custom(|iters| {
                time_opens(dir.path(), iters, || {
                    remove(dir.path(), seglog::CLEAN_SHUTDOWN_FILE)
                })
            })
        });
    }
    g.finish();
}

/// Recovery of a whole log (no recovery point: every batch is checked and every index
/// rebuilt), from the page cache, in bytes of log per second.
fn recovery_scan(c: &mut Criterion) {
    let mut g = group(c, "recovery_scan");
    for (size, batch) in [(100, READ_BATCH), (KIB, READ_BATCH)] {
        let config = TopicConfig::default().segment_bytes(64 * MIB as u64);
        let records = (RECOVERY_SCAN_BYTES / size) as u64;
        let log = Log::new(config);
        log.fill(batch, size, |p| p.log_end_offset() < records);
        let Log { p, store, dir } = log;
        let bytes = p.stats().size_bytes;
        drop(p);
        store.close().expect("clean close");
        g.throughput(Throughput::Bytes(bytes));
        g.bench_function(format!("{size}B_x{batch}"), |b| {
            b.iter_custom(|iters| {
                time_opens(dir.path(), iters, || {
                    remove(dir.path(), seglog::CLEAN_SHUTDOWN_FILE);
                    remove(dir.path(), seglog::RECOVERY_POINT_FILE);
                })
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    append,
    durable_append,
    durable_append_threads,
    read_sequential,
    read_random,
    offset_for_timestamp,
    reopen,
    recovery_scan
);
criterion_main!(benches);

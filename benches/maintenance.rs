//! Maintenance: compaction throughput and memory, and retention of many segments.
//!
//! `cargo bench --bench maintenance` runs the full suite (10 M records, about 70 s on 2
//! cores; needs about 1.3 GB of free disk in the temp dir, and scales down to 5 M records
//! when less than 4 GB is free); `SEGLOG_BENCH_QUICK=1 cargo bench --bench maintenance` a
//! scaled-down one (about 10 s; its small-buffer compaction case stops after a 2 s time
//! box, marked ‡).
//!
//! (a) Compaction: a compacted topic with 64 MiB segments gets 10 M records (11 B keys,
//!     100 B values) whose keys are drawn uniformly at random from 100 k keys (quick: 1 M
//!     records over 10 k keys). `Partition::compact_now` then runs pass after pass until
//!     every sealed segment is clean, timed. Throughput is the dirty log read into the key
//!     map (the passes' `CompactionReport::dirty_bytes`, summed) per second. The physical
//!     reference is reading the same log from start to end with `Partition::read`
//!     (1 MiB fetches, every batch CRC-checked), measured on the same log just before.
//!     Peak heap during the passes comes from a counting global allocator and is shown
//!     next to `StoreConfig::cleaner_buffer_bytes`: once with the default 128 MiB (every
//!     key fits: one pass) and once with a small buffer that holds a fraction of the keys
//!     (many passes).
//! (b) Retention: a partition of 1,000 small segments whose records are two days old,
//!     plus an active segment of current ones; `Partition::enforce_retention` with
//!     `retention_ms` = 1 hour deletes the 1,000, timed (segments/s) — on the partition as
//!     written (segments open, indexes loaded) and on a store reopened after a clean close
//!     (segments opened lazily: retention loads each one's indexes to read its largest
//!     timestamp). One more run per case has another thread append meanwhile and reports
//!     its longest append (retention holds the partition's writer lock).
//!
//! Each case runs on a fresh temp dir, removed afterwards.

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use seglog::{CleanupPolicy, Partition, Record, Store, StoreConfig, TopicConfig};

// ------------------------------------------------------------------------------------------
// Heap accounting (as in examples/perf.rs)
// ------------------------------------------------------------------------------------------

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
#[path = "common/units.rs"]
mod units;

use counting_alloc::{HEAP_NOW, HEAP_PEAK};
use units::si;

#[global_allocator]
static ALLOCATOR: counting_alloc::CountingAlloc = counting_alloc::CountingAlloc;

/// Runs `phase` with the heap peak reset to the live heap at its start; returns its
/// result, the live heap at the start and the peak.
fn with_heap_peak<T>(phase: impl FnOnce() -> T) -> (T, usize, usize) {
    let start = HEAP_NOW.load(Ordering::Relaxed);
    HEAP_PEAK.store(start, Ordering::Relaxed);
    let result = phase();
    (result, start, HEAP_PEAK.load(Ordering::Relaxed))
}

// ------------------------------------------------------------------------------------------
// Scale
// ------------------------------------------------------------------------------------------

const MB: f64 = 1e6;
const MIB: usize = 1 << 20;
/// Disk below which the full run writes half the records.
const MIN_FREE_FULL: u64 = 4_000_000_000;

/// How big the run is.
#[derive(Debug, Clone, Copy)]
struct Scale {
    quick: bool,
    /// Records and distinct keys of the compaction log.
    records: u64,
    keys: u64,
    /// True when the full run was scaled down for lack of disk space.
    reduced_for_disk: bool,
}

impl Scale {
    fn from_env(free_disk: Option<u64>) -> Scale {
        let quick = units::quick_from_env();
        if quick {
            return Scale {
                quick,
                records: 1_000_000,
                keys: 10_000,
                reduced_for_disk: false,
            };
        }
        let reduced = free_disk.is_some_and(|f| f < MIN_FREE_FULL);
        Scale {
            quick,
            records: if reduced { 5_000_000 } else { 10_000_000 },
            keys: 100_000,
            reduced_for_disk: reduced,
        }
    }

    fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick {
            quick
        } else {
            full
        }
    }

    /// The small cleaner buffer: 4 MiB holds about 56 k of the 100 k keys (the map is
    /// charged key + 64 B per key); in quick mode 409 KiB holds the same share of 10 k.
    fn small_buffer(&self) -> usize {
        (4 * MIB as u64 * self.keys / 100_000) as usize / 1024 * 1024
    }

    /// Longest the passes of one compaction case may run before the case stops early.
    fn compaction_time_box(&self) -> Duration {
        self.pick(Duration::from_secs(300), Duration::from_secs(2))
    }

    /// Repetitions of each retention case (the median is reported).
    fn retention_reps(&self) -> usize {
        self.pick(5, 1)
    }
}

// ------------------------------------------------------------------------------------------
// (a) Compaction
// ------------------------------------------------------------------------------------------

const SEGMENT_BYTES: u64 = 64 << 20;
const VALUE_SIZE: usize = 100;
const APPEND_BATCH: usize = 1000;
const FETCH_BYTES: usize = MIB;

/// One compaction case's figures.
#[derive(Debug, Clone)]
struct CompactionRow {
    buffer: usize,
    /// Writing the log: records, `.log` bytes, time.
    write_secs: f64,
    log_bytes: u64,
    segments_before: usize,
    /// The sequential-read reference: bytes read per second (best of the runs).
    read_bytes_per_s: f64,
    passes: usize,
    /// True when the time box ended the passes before everything sealed was clean.
    partial: bool,
    dirty_bytes: u64,
    /// `.log` bytes the passes rewrote (summed over passes) and wrote.
    rewritten_bytes: u64,
    written_bytes: u64,
    records_removed: u64,
    max_keys: u64,
    secs: f64,
    size_after: u64,
    segments_after: usize,
    /// Live heap at the start of the passes and its peak during them.
    heap_start: usize,
    heap_peak: usize,
    /// After the passes: records left, and distinct keys among them.
    records_after: u64,
    keys_after: u64,
}

impl CompactionRow {
    fn bytes_per_s(&self) -> f64 {
        self.dirty_bytes as f64 / self.secs.max(1e-9)
    }
}

/// xorshift64*: reproducible key choice.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn key(k: u64) -> Vec<u8> {
    format!("key-{k:07}").into_bytes()
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("seglog-maintenance-")
        .tempdir()
        .expect("create temp dir")
}

/// Appends `records` records with uniformly random keys out of `keys` to `p`, in appends
/// of [`APPEND_BATCH`], and flushes.
fn write_compaction_log(p: &Partition, records: u64, keys: u64) {
    let pool: Vec<Vec<u8>> = (0..1000)
        .map(|i| (0..VALUE_SIZE).map(|j| (i * 31 + j) as u8).collect())
        .collect();
    let names: Vec<Vec<u8>> = (0..keys).map(key).collect();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut batch = Vec::with_capacity(APPEND_BATCH);
    let mut i = 0u64;
    while i < records {
        batch.clear();
        let n = (records - i).min(APPEND_BATCH as u64);
        for j in 0..n {
            let k = (rng.next() >> 11) % keys;
            batch.push(
                Record::new(pool[((i + j) % pool.len() as u64) as usize].clone())
                    .with_key(names[k as usize].clone()),
            );
        }
        p.append(&batch).expect("append");
        i += n;
    }
    p.flush().expect("flush");
}

/// Reads the whole log with `Partition::read`, checking every value's length; returns
/// bytes read per second.
fn sequential_read(p: &Partition) -> f64 {
    let end = p.log_end_offset();
    let started = Instant::now();
    let (mut next, mut bytes, mut records) = (p.log_start_offset(), 0u64, 0u64);
    while next < end {
        let fetch = p.read(next, FETCH_BYTES).expect("read");
        bytes += fetch.as_bytes().len() as u64;
        for r in fetch.records() {
            let v = r.value().expect("a value");
            assert_eq!(v.len(), VALUE_SIZE, "value length at offset {}", r.offset());
            black_box(v);
            records += 1;
        }
        next = fetch.next_offset();
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(records, end - p.log_start_offset(), "records read");
    bytes as f64 / secs
}

/// After compaction: the records left and their distinct keys; checks that the cleaned
/// part (below `clean_to`) holds each key at most once.
fn check_compacted(p: &Partition, keys: u64, clean_to: u64) -> (u64, u64) {
    let mut last_seen = vec![u64::MAX; keys as usize];
    let mut records = 0u64;
    for r in p
        .records_from(p.log_start_offset())
        .fetch_bytes(FETCH_BYTES)
    {
        let r = r.expect("read");
        let k = r.key.expect("a key");
        let k: usize = std::str::from_utf8(&k[4..])
            .ok()
            .and_then(|s| s.parse().ok())
            .expect("a key written by this bench");
        if r.offset < clean_to {
            assert_eq!(
                last_seen[k],
                u64::MAX,
                "key {k} twice in the cleaned part (offsets {} and {})",
                last_seen[k],
                r.offset
            );
        }
        last_seen[k] = r.offset;
        records += 1;
    }
    let distinct = last_seen.iter().filter(|&&o| o != u64::MAX).count() as u64;
    (records, distinct)
}

fn compaction_case(scale: &Scale, buffer: usize) -> CompactionRow {
    let dir = temp_dir();
    let config = StoreConfig::default()
        .maintenance_interval(None)
        .cleaner_buffer_bytes(buffer);
    let store = Store::open_with(dir.path(), config).expect("open store");
    let topic_config = TopicConfig::default()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(SEGMENT_BYTES);
    let topic = store
        .create_topic("compacted", topic_config)
        .expect("create topic");
    let p = topic.partition(0).expect("partition 0").clone();

    let started = Instant::now();
    write_compaction_log(&p, scale.records, scale.keys);
    let write_secs = started.elapsed().as_secs_f64();
    let before = p.stats();

    let read_bytes_per_s = (0..scale.pick(2, 1))
        .map(|_| sequential_read(&p))
        .fold(0f64, f64::max);

    let deadline = Instant::now() + scale.compaction_time_box();
    let ((passes, totals, partial, secs, clean_to), heap_start, heap_peak) = with_heap_peak(|| {
        let mut totals = seglog::CompactionReport::default();
        let mut passes = 0;
        let started = Instant::now();
        let mut clean_to = 0;
        let partial = loop {
            let r = p.compact_now().expect("compact_now");
            if !r.cleaned {
                break false;
            }
            passes += 1;
            totals.dirty_bytes += r.dirty_bytes;
            totals.bytes_before += r.bytes_before;
            totals.bytes_after += r.bytes_after;
            totals.records_removed += r.records_removed;
            totals.keys = totals.keys.max(r.keys);
            clean_to = r.first_dirty_offset;
            let active = p.segments().last().expect("a segment").base_offset();
            if r.first_dirty_offset >= active {
                break false;
            }
            if Instant::now() > deadline {
                break true;
            }
        };
        (
            passes,
            totals,
            partial,
            started.elapsed().as_secs_f64(),
            clean_to,
        )
    });
    let after = p.stats();
    let (records_after, keys_after) = check_compacted(&p, scale.keys, clean_to);
    drop(topic);
    store.close().expect("close store");
    CompactionRow {
        buffer,
        write_secs,
        log_bytes: before.size_bytes,
        segments_before: before.segments,
        read_bytes_per_s,
        passes,
        partial,
        dirty_bytes: totals.dirty_bytes,
        rewritten_bytes: totals.bytes_before,
        written_bytes: totals.bytes_after,
        records_removed: totals.records_removed,
        max_keys: totals.keys,
        secs,
        size_after: after.size_bytes,
        segments_after: after.segments,
        heap_start,
        heap_peak,
        records_after,
        keys_after,
    }
}

// ------------------------------------------------------------------------------------------
// (b) Retention
// ------------------------------------------------------------------------------------------

const RETENTION_SEGMENTS: usize = 1000;
/// 100 records of 100 B per append (about 11 KB) and 16 KiB segments: one append per
/// segment.
const RETENTION_SEGMENT_BYTES: u64 = 16 << 10;
const RETENTION_RECORDS_PER_SEGMENT: usize = 100;
const RETENTION_MS: u64 = 60 * 60 * 1000;
const TWO_DAYS_MS: i64 = 2 * 24 * 60 * 60 * 1000;

#[derive(Debug, Clone, Copy)]
struct RetentionRun {
    /// `Store::open` (only for the reopened case).
    open_secs: f64,
    /// `enforce_retention`, and the flush after it (the directory fsync that makes the
    /// deletions durable).
    secs: f64,
    flush_secs: f64,
    deleted: usize,
    /// Segments with their indexes loaded when retention started.
    loaded_before: usize,
    /// The longest append of a concurrent appender (NaN without one).
    stall_secs: f64,
}

fn retention_store(dir: &Path) -> Store {
    Store::open_with(dir, StoreConfig::default().maintenance_interval(None)).expect("open store")
}

/// Writes 1,000 segments of two-day-old records and an active segment of current ones.
fn write_retention_log(store: &Store) -> Partition {
    let config = TopicConfig::default()
        .segment_bytes(RETENTION_SEGMENT_BYTES)
        .retention_ms(Some(RETENTION_MS));
    let topic = store
        .create_topic("retained", config)
        .expect("create topic");
    let p = topic.partition(0).expect("partition 0").clone();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    let value = vec![0x42u8; VALUE_SIZE];
    for s in 0..RETENTION_SEGMENTS {
        let ts = now - TWO_DAYS_MS + s as i64;
        let batch: Vec<Record> = (0..RETENTION_RECORDS_PER_SEGMENT)
            .map(|_| Record::new(value.clone()).with_timestamp(ts))
            .collect();
        p.append(&batch).expect("append");
    }
    // As large as the others, so that it rolls a segment of its own.
    let current: Vec<Record> = (0..RETENTION_RECORDS_PER_SEGMENT)
        .map(|_| Record::new(value.clone()))
        .collect();
    p.append(&current).expect("append current records");
    p.flush().expect("flush");
    assert_eq!(
        p.stats().segments,
        RETENTION_SEGMENTS + 1,
        "one segment per append"
    );
    p
}

/// One retention run on a fresh partition, `reopen`ed after a clean close or not. With
/// `appender`, another thread appends one record every 100 µs meanwhile and the run
/// reports the longest of those appends (retention holds the partition's writer lock).
fn retention_run(reopen: bool, appender: bool) -> RetentionRun {
    let dir = temp_dir();
    let mut store = retention_store(dir.path());
    let mut p = write_retention_log(&store);
    let mut open_secs = 0.0;
    if reopen {
        drop(p);
        store.close().expect("close store");
        let started = Instant::now();
        store = retention_store(dir.path());
        open_secs = started.elapsed().as_secs_f64();
        assert!(store.opened_clean(), "reopened after a clean close");
        p = store
            .topic("retained")
            .expect("topic")
            .partition(0)
            .expect("partition 0")
            .clone();
    }
    let loaded_before = p.segments().iter().filter(|s| s.indexes_loaded()).count();
    let stop = AtomicBool::new(false);
    let appends = AtomicU64::new(0);
    let (report, secs, stall) = std::thread::scope(|scope| {
        let worker = appender.then(|| {
            scope.spawn(|| {
                let record = [Record::new(vec![0x17u8; VALUE_SIZE])];
                let mut longest = Duration::ZERO;
                while !stop.load(Ordering::Acquire) {
                    let started = Instant::now();
                    p.append(&record).expect("concurrent append");
                    longest = longest.max(started.elapsed());
                    appends.fetch_add(1, Ordering::Release);
                    std::thread::sleep(Duration::from_micros(100));
                }
                longest
            })
        });
        // Retention starts once the appender is under way.
        while appender && appends.load(Ordering::Acquire) < 10 {
            std::thread::sleep(Duration::from_micros(100));
        }
        let started = Instant::now();
        let report = p.enforce_retention().expect("enforce_retention");
        let secs = started.elapsed().as_secs_f64();
        // A few more appends after retention, so that the longest covers the whole pass.
        let seen = appends.load(Ordering::Acquire);
        while appender && appends.load(Ordering::Acquire) < seen + 10 {
            std::thread::sleep(Duration::from_micros(100));
        }
        stop.store(true, Ordering::Release);
        let stall = worker.map(|w| w.join().expect("appender thread"));
        (report, secs, stall)
    });
    // Nothing was appended since the last flush in runs without the appender: this flush
    // has only the deletions to make durable.
    let started = Instant::now();
    p.flush().expect("flush");
    let flush_secs = started.elapsed().as_secs_f64();
    assert_eq!(
        report.segments_deleted, RETENTION_SEGMENTS,
        "retention deletes every old segment"
    );
    if !appender {
        assert_eq!(p.stats().segments, 1, "the active segment stays");
    }
    drop(p);
    store.close().expect("close store");
    RetentionRun {
        open_secs,
        secs,
        flush_secs,
        deleted: report.segments_deleted,
        loaded_before,
        stall_secs: stall.map_or(f64::NAN, |d| d.as_secs_f64()),
    }
}

/// The run with the median retention time.
fn median_run(mut runs: Vec<RetentionRun>) -> RetentionRun {
    runs.sort_by(|a, b| a.secs.total_cmp(&b.secs));
    runs[runs.len() / 2]
}

// ------------------------------------------------------------------------------------------
// Output
// ------------------------------------------------------------------------------------------

fn mib(b: usize) -> f64 {
    b as f64 / MIB as f64
}

fn buffer_name(b: usize) -> String {
    if b >= MIB && b.is_multiple_of(MIB) {
        format!("{} MiB", b / MIB)
    } else {
        format!("{} KiB", b >> 10)
    }
}

fn mb(b: u64) -> f64 {
    b as f64 / MB
}

/// The 1, 5 and 15 minute load averages (other processes skew the figures).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or("?".into(), |s| {
        s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    })
}

/// Bytes available to unprivileged users on the file system holding `dir` (as `df`).
fn free_disk(dir: &Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

fn print_compaction(scale: &Scale, rows: &[CompactionRow]) {
    let first = &rows[0];
    println!(
        "\n(a) compaction: {} records ({VALUE_SIZE} B values, 11 B keys) over {} keys chosen \
         uniformly at random, {} MiB segments",
        si(scale.records as f64),
        si(scale.keys as f64),
        SEGMENT_BYTES >> 20
    );
    println!(
        "    log: {:.0} MB in {} segments (the last one active, never cleaned), written and \
         flushed in {:.1} s ({} records/s)",
        mb(first.log_bytes),
        first.segments_before,
        first.write_secs,
        si(scale.records as f64 / first.write_secs)
    );
    let sep = "-".repeat(141);
    println!("{sep}");
    println!(
        "{:<16} {:>7} {:>9} {:>8} {:>9} {:>9} {:>9} {:>18} {:>10} {:>9} {:>11} {:>11} {:>10}",
        "cleaner buffer",
        "passes",
        "dirty MB",
        "time s",
        "MB/s",
        "seq read",
        "÷ seq",
        "log MB before→after",
        "segs b→a",
        "rewrit. MB",
        "peak heap",
        "heap growth",
        "÷ buffer"
    );
    println!(
        "{:<16} {:>7} {:>9} {:>8} {:>9} {:>9} {:>9} {:>18} {:>10} {:>9} {:>11} {:>11} {:>10}",
        "", "", "", "", "cleaned", "MB/s", "read", "", "", "", "MiB", "MiB", "growth"
    );
    println!("{sep}");
    for r in rows {
        let growth = r.heap_peak.saturating_sub(r.heap_start);
        println!(
            "{:<16} {:>7} {:>9.0} {:>8.2} {:>9.0} {:>9.0} {:>8.3}x {:>18} {:>10} {:>10.0} {:>11.2} {:>11.2} {:>9.3}x",
            buffer_name(r.buffer) + if r.partial { " ‡" } else { "" },
            r.passes,
            mb(r.dirty_bytes),
            r.secs,
            r.bytes_per_s() / MB,
            r.read_bytes_per_s / MB,
            r.bytes_per_s() / r.read_bytes_per_s,
            format!("{:.0} → {:.0}", mb(r.log_bytes), mb(r.size_after)),
            format!("{} → {}", r.segments_before, r.segments_after),
            mb(r.rewritten_bytes),
            mib(r.heap_peak),
            mib(growth),
            growth as f64 / r.buffer as f64,
        );
    }
    println!("{sep}");
    for r in rows {
        println!(
            "    buffer {:>8}: at most {} keys in a pass's map; {} records removed; \
             cleaned segments written {:.1} MB; after: {} records, {} distinct keys{}",
            buffer_name(r.buffer),
            si(r.max_keys as f64),
            si(r.records_removed as f64),
            mb(r.written_bytes),
            si(r.records_after as f64),
            si(r.keys_after as f64),
            if r.partial {
                format!(
                    "; ‡ stopped by the {} s time box before every sealed segment was clean",
                    scale.compaction_time_box().as_secs()
                )
            } else {
                String::new()
            }
        );
    }
}

fn print_retention(
    fresh: &RetentionRun,
    reopened: &RetentionRun,
    stalls: &[RetentionRun; 2],
    reps: usize,
) {
    println!(
        "\n(b) retention: {RETENTION_SEGMENTS} segments of {RETENTION_RECORDS_PER_SEGMENT} \
         two-day-old 100 B records (about 11 KB each) + an active segment, retention_ms 1 h; \
         median of {reps}"
    );
    let sep = "-".repeat(124);
    println!("{sep}");
    println!(
        "{:<38} {:>8} {:>8} {:>10} {:>11} {:>12} {:>15} {:>14}",
        "case",
        "deleted",
        "indexes",
        "retention",
        "segments/s",
        "then flush",
        "with appender:",
        "longest"
    );
    println!(
        "{:<38} {:>8} {:>8} {:>10} {:>11} {:>12} {:>15} {:>14}",
        "", "", "loaded", "ms", "", "ms", "retention ms", "append ms"
    );
    println!("{sep}");
    for (name, r, s) in [
        ("as written (segments open)", fresh, &stalls[0]),
        ("reopened after a clean close (lazy)", reopened, &stalls[1]),
    ] {
        println!(
            "{:<38} {:>8} {:>8} {:>10.1} {:>11} {:>12.3} {:>15.1} {:>14.1}",
            name,
            r.deleted,
            r.loaded_before,
            r.secs * 1e3,
            si(r.deleted as f64 / r.secs),
            r.flush_secs * 1e3,
            s.secs * 1e3,
            s.stall_secs * 1e3
        );
    }
    println!("{sep}");
    println!(
        "    reopening the store of {} segments took {:.1} ms (before the retention timed above)",
        RETENTION_SEGMENTS + 1,
        reopened.open_secs * 1e3
    );
}

const NOTES: &str = "\
Notes
  MB = 10^6 bytes of .log (batches as stored: record framing, keys and values), not payload.
  MB/s cleaned = sum of CompactionReport::dirty_bytes over the passes ÷ the passes' wall time
  (each pass reads its dirty range into the key map, rewrites every sealed segment from the
  log start up to where the map ended, fsyncs and swaps them in). \"seq read\" is
  Partition::read over the same log, 1 MiB fetches, CRC-checked, page cache warm (best of 2
  in full mode); \"÷ seq read\" is MB/s cleaned ÷ that. \"rewrit. MB\" sums the .log bytes
  the passes rewrote (bytes_before): with a map smaller than the key set each pass advances
  by about the map's keys in records but rewrites the whole segment it stopped in, so this
  grows with the passes. Peak heap is the counting allocator's peak during the passes (all
  threads; memory-mapped files are not heap); heap growth = peak - live heap at the start;
  \"÷ buffer\" divides the growth by cleaner_buffer_bytes. The map is charged key length +
  64 B per key against the buffer. The log lives in the page cache (written just before),
  so reads come from memory; the passes' fsyncs write to the device.
  Retention: \"retention ms\" times Partition::enforce_retention (unlinking 3 files per
  segment); \"then flush ms\" times the Partition::flush right after it, with nothing
  appended since the last flush (it has only the deletions to make durable). \"indexes
  loaded\" counts segments whose indexes were loaded when retention started (after a clean
  reopen only the active one's: retention loads the others to read their largest
  timestamps). The appender columns come from one more run per case in which another
  thread appends one 100 B record every 100 µs during the retention pass: the longest
  append shows how long retention keeps writers waiting.";

fn main() {
    let started = Instant::now();
    let tmp = std::env::temp_dir();
    let free = free_disk(&tmp);
    let scale = Scale::from_env(free);
    println!(
        "seglog maintenance — {} mode, temp dir {}, {} free, {} CPUs, load average {}",
        if scale.quick { "QUICK" } else { "full" },
        tmp.display(),
        free.map_or("?".into(), |f| format!("{:.1} GB", f as f64 / 1e9)),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    if scale.reduced_for_disk {
        println!(
            "NOTE: less than {:.0} GB free in the temp dir: the compaction log is scaled down \
             to {} records (from 10 M)",
            MIN_FREE_FULL as f64 / 1e9,
            si(scale.records as f64)
        );
    }

    let default_buffer = StoreConfig::default().cleaner_buffer_bytes;
    let rows: Vec<CompactionRow> = [default_buffer, scale.small_buffer()]
        .iter()
        .map(|&b| compaction_case(&scale, b))
        .collect();

    let reps = scale.retention_reps();
    let fresh = median_run((0..reps).map(|_| retention_run(false, false)).collect());
    let reopened = median_run((0..reps).map(|_| retention_run(true, false)).collect());
    let stalls = [false, true].map(|reopen| retention_run(reopen, true));

    print_compaction(&scale, &rows);
    print_retention(&fresh, &reopened, &stalls, reps);
    println!("\n{NOTES}");
    println!(
        "\nload average at the end: {}; total {:.0} s",
        load_average(),
        started.elapsed().as_secs_f64()
    );
}

//! Crash test in the style of sled's: this test binary re-executes itself as a child
//! process that appends to a store and acknowledges each batch on stdout once
//! `Partition::flush` has returned; the parent kills it with SIGKILL at a random moment,
//! reopens the store and checks that
//!
//! - every acknowledged record is there, byte-identical (the checksum in the
//!   acknowledgement is recomputed from the values read back),
//! - offsets are dense from 0 to the log end offset, which is at least one past the last
//!   acknowledged offset, and every record present (acknowledged or not) is exactly one the
//!   child wrote at that offset: no garbage, no holes, no duplicates,
//! - the whole log reads without error, every sampled offset reads on its own and is found
//!   by its timestamp,
//! - appending continues at the log end offset and survives a reopen.
//!
//! Each round is a fresh directory that goes through one to three crash generations (a
//! new child continues the log the previous one left). Seeds are deterministic per round
//! and printed on failure. By default 30 rounds of small batches and a few rounds of big
//! batches (64..256 KiB values, killed right after an append started, to tear writes).
//!
//! Long mode: `SEGLOG_CRASH_ROUNDS=3000 cargo test --release --test crash -- --nocapture`.
//! One seed: `SEGLOG_CRASH_SEED=<seed> cargo test --test crash <test name> -- --nocapture`.

mod common;

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use common::child::{self, LineChild};
use common::{create, read_dense, Rng};
use seglog::record::{crc32c, BatchIter};
use seglog::{Error, Record, Store, TopicConfig};

const TOPIC: &str = "crash";
const TS0: i64 = 1_700_000_000_000;

const CHILD_MODE: &str = "SEGLOG_CRASH_CHILD_MODE";
const CHILD_DIR: &str = "SEGLOG_CRASH_CHILD_DIR";
const CHILD_SEED: &str = "SEGLOG_CRASH_CHILD_SEED";
const ROUNDS_VAR: &str = "SEGLOG_CRASH_ROUNDS";
const SEED_VAR: &str = "SEGLOG_CRASH_SEED";

const SMALL_SEED_BASE: u64 = 0x5EED_0000;
const BIG_SEED_BASE: u64 = 0xB16_0000;

/// A child that is never killed stops by itself after this long.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);
/// Longest wait for the child's next line before the round fails.
const LINE_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// Deterministic workload

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Values of 0..2 KiB, batches of 1..20 records, 64 KiB segments.
    Small,
    /// Values of 64..256 KiB, batches of 1..6 records, 4 MiB segments.
    Big,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Small => "small",
            Mode::Big => "big",
        }
    }
    fn parse(s: &str) -> Mode {
        match s {
            "small" => Mode::Small,
            "big" => Mode::Big,
            _ => panic!("unknown child mode {s}"),
        }
    }
}

/// The topic configuration of a round: small segments so that rolls happen; the index
/// spacing and size vary with the seed (tiny indexes make rolls on a full index).
fn config(seed: u64, mode: Mode) -> TopicConfig {
    let mut r = Rng::new(seed ^ 0xC0F1_6000);
    let cfg = match mode {
        Mode::Small => TopicConfig::default().segment_bytes(64 << 10),
        Mode::Big => TopicConfig::default()
            .segment_bytes(4 << 20)
            .max_batch_bytes(2 << 20),
    };
    let cfg = match r.below(3) {
        0 => cfg.index_interval_bytes(0),
        _ => cfg,
    };
    // Kafka's default of 10 MiB only in some rounds: reopening after a crash scans the
    // active segment's preallocated indexes, which is slow in debug builds.
    match r.below(8) {
        0..=2 => cfg.segment_index_bytes(96),
        3 => cfg,
        _ => cfg.segment_index_bytes(64 << 10),
    }
}

fn ts(offset: u64) -> i64 {
    TS0 + offset as i64
}

/// The record at `offset` of the round with `seed`: it depends only on these, so any
/// process can tell what belongs at an offset.
fn record_at(seed: u64, mode: Mode, offset: u64) -> Record {
    let mut r = Rng::new(seed ^ offset.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    let len = match mode {
        Mode::Small => r.below(2048),
        Mode::Big => r.range(64 << 10, 256 << 10),
    } as usize;
    let mut rec = if mode == Mode::Small && r.below(32) == 0 {
        Record {
            value: None, // a tombstone
            ..Record::default()
        }
    } else {
        Record::new(r.bytes(len))
    };
    rec = rec.with_timestamp(ts(offset));
    if r.below(2) == 0 {
        let n = r.below(32) as usize;
        rec = rec.with_key(r.bytes(n));
    }
    if r.below(4) == 0 {
        for i in 0..r.range(1, 4) {
            let value = match r.below(4) {
                0 => None,
                _ => {
                    let n = r.below(64) as usize;
                    Some(r.bytes(n))
                }
            };
            rec = rec.with_header(format!("h{i}"), value);
        }
    }
    rec
}

fn records(seed: u64, mode: Mode, base: u64, n: u64) -> Vec<Record> {
    (base..base + n).map(|o| record_at(seed, mode, o)).collect()
}

/// The acknowledgement checksum: CRC-32C over each value, length-prefixed (-1 for null).
fn digest<'a>(values: impl IntoIterator<Item = Option<&'a [u8]>>) -> u32 {
    let mut buf = Vec::new();
    for v in values {
        match v {
            None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(v) => {
                buf.extend_from_slice(&(v.len() as i32).to_be_bytes());
                buf.extend_from_slice(v);
            }
        }
    }
    crc32c(&buf)
}

// ---------------------------------------------------------------------------------------
// The child

/// Not a test by itself: the body of the child process. Does nothing unless started by
/// `spawn_child`.
#[test]
fn child_process_helper() {
    let (Ok(mode), Ok(dir), Ok(seed)) = (
        std::env::var(CHILD_MODE),
        std::env::var(CHILD_DIR),
        std::env::var(CHILD_SEED),
    ) else {
        return;
    };
    let mode = Mode::parse(&mode);
    let seed: u64 = seed.parse().unwrap();
    let store = Store::open(&dir).unwrap();
    let topic = match store.topic(TOPIC) {
        Ok(t) => t,
        Err(_) => store.create_topic(TOPIC, config(seed, mode)).unwrap(),
    };
    let p = topic.partition(0).unwrap().clone();
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY {}", p.log_end_offset()).unwrap();
    out.flush().unwrap();
    // Batch sizes differ per generation (each continues at a different offset).
    let mut sizes = Rng::new(seed ^ p.log_end_offset() ^ 0xBA7C_4000);
    let started = Instant::now();
    while started.elapsed() < CHILD_LIFETIME {
        let base = p.log_end_offset();
        let n = match mode {
            Mode::Small => sizes.range(1, 21),
            Mode::Big => sizes.range(1, 7),
        };
        let recs = records(seed, mode, base, n);
        if mode == Mode::Big {
            writeln!(out, "BEGIN {base}").unwrap();
            out.flush().unwrap();
        }
        let info = p.append(&recs).unwrap();
        assert_eq!(info.base_offset, base);
        p.flush().unwrap();
        let crc = digest(recs.iter().map(|r| r.value.as_deref()));
        writeln!(
            out,
            "ACK {} {} {crc:08x}",
            info.base_offset, info.last_offset
        )
        .unwrap();
        out.flush().unwrap();
    }
    std::process::exit(0);
}

// ---------------------------------------------------------------------------------------
// The parent

/// An acknowledged batch: offsets `base..=last`, checksum of its values.
#[derive(Debug, Clone, Copy)]
struct Ack {
    base: u64,
    last: u64,
    crc: u32,
}

enum Line {
    Ack(Ack),
    Begin,
    Other,
}

fn parse_line(line: &str) -> Line {
    // With --nocapture, libtest's "test child_process_helper ... " may precede the first
    // line, so look for the tag anywhere in the line.
    if let Some((_, rest)) = line.split_once("ACK ") {
        let f: Vec<&str> = rest.split_whitespace().collect();
        assert_eq!(f.len(), 3, "bad ACK line {line:?}");
        return Line::Ack(Ack {
            base: f[0].parse().unwrap(),
            last: f[1].parse().unwrap(),
            crc: u32::from_str_radix(f[2], 16).unwrap(),
        });
    }
    if line.contains("BEGIN ") {
        return Line::Begin;
    }
    Line::Other
}

/// When to kill the child.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// After this many acknowledgements (0: at once, probably before it opened the store).
    AfterAcks(u32),
    /// This long after the spawn.
    AfterTime(Duration),
    /// While the child appends its n-th batch: this many thousandths of the time that
    /// the previous batch took from its BEGIN line to its ACK line after the BEGIN line.
    DuringAppend(u32, u32),
}

fn spawn_child(dir: &Path, seed: u64, mode: Mode) -> LineChild {
    child::spawn_lines(
        child::helper("child_process_helper")
            .env(CHILD_MODE, mode.name())
            .env(CHILD_DIR, dir)
            .env(CHILD_SEED, seed.to_string()),
    )
}

/// What the parent has seen of a child so far.
#[derive(Default)]
struct Seen {
    acks: Vec<Ack>,
    begins: u32,
    /// Arrival of the last BEGIN line.
    last_begin: Option<Instant>,
    /// Time from a BEGIN line to its ACK line (append + flush), last measured.
    append_and_flush: Option<Duration>,
}

impl Seen {
    fn take(&mut self, (at, line): (Instant, String)) {
        match parse_line(&line) {
            Line::Ack(a) => {
                self.acks.push(a);
                if let Some(b) = self.last_begin.take() {
                    self.append_and_flush = Some(at - b);
                }
            }
            Line::Begin => {
                self.begins += 1;
                self.last_begin = Some(at);
            }
            Line::Other => {}
        }
    }
}

/// Runs one child generation until `kill` says so, kills it (SIGKILL) and returns the
/// acknowledgements it made.
fn run_generation(dir: &Path, seed: u64, mode: Mode, kill: Kill) -> Vec<Ack> {
    let run = spawn_child(dir, seed, mode);
    let spawned = Instant::now();
    let mut seen = Seen::default();
    loop {
        let done = match kill {
            Kill::AfterAcks(n) => seen.acks.len() >= n as usize,
            Kill::AfterTime(d) => spawned.elapsed() >= d,
            Kill::DuringAppend(n, _) => seen.begins >= n,
        };
        if done {
            break;
        }
        let wait = match kill {
            Kill::AfterTime(d) => d.saturating_sub(spawned.elapsed()),
            _ => LINE_TIMEOUT,
        };
        match run.lines.recv_timeout(wait) {
            Ok(line) => seen.take(line),
            Err(RecvTimeoutError::Timeout) if matches!(kill, Kill::AfterTime(_)) => {}
            Err(RecvTimeoutError::Timeout) => {
                let killed = run.kill();
                panic!(
                    "child sent nothing for {LINE_TIMEOUT:?}:\n{}",
                    killed.stderr
                );
            }
            Err(RecvTimeoutError::Disconnected) => break, // it exited
        }
    }
    if let Kill::DuringAppend(_, permille) = kill {
        // The append (encode, then write) comes first in the time from BEGIN to ACK; aim
        // at a random point of its first part, measured on the previous batch.
        let window = seen.append_and_flush.unwrap_or(Duration::from_millis(1));
        let delay = window * permille / 1000;
        let since = seen.last_begin.unwrap_or_else(Instant::now);
        // Spin: sleeping is too coarse for a window of a few hundred microseconds.
        while since.elapsed() < delay {
            std::hint::spin_loop();
        }
    }
    let killed = run.kill();
    for line in killed.rest {
        seen.take(line);
    }
    assert!(
        killed.status.signal() == Some(9) || killed.status.success(),
        "child failed on its own ({}):\n{}",
        killed.status,
        killed.stderr
    );
    seen.acks
}

/// Counters over a whole test, printed at its end.
#[derive(Debug, Default)]
struct Stats {
    rounds: u64,
    generations: u64,
    acked_records: u64,
    /// Records present after a crash that were never acknowledged (written, not yet acked).
    unacked_present: u64,
    /// Crashes whose active `.log` ended in a partial batch before recovery.
    torn_tails: u64,
    /// Crashes before the child had created the topic.
    before_topic: u64,
}

/// Looks at the active `.log` left by the crash, before any recovery: does it end in a
/// partial batch?
fn has_torn_tail(dir: &Path) -> bool {
    let pdir = dir.join(format!("{TOPIC}-0"));
    let Ok(entries) = std::fs::read_dir(&pdir) else {
        return false;
    };
    let mut logs: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let Some(last) = logs.pop() else {
        return false;
    };
    let bytes = std::fs::read(last).unwrap();
    let mut it = BatchIter::new(&bytes);
    for b in it.by_ref() {
        if b.is_err() {
            return true;
        }
    }
    it.position() != bytes.len()
}

/// Reopens after a crash and checks everything (see the module docs). Returns the
/// acknowledgement for the batch the parent appended.
fn verify(dir: &Path, seed: u64, mode: Mode, acks: &[Ack], stats: &mut Stats) -> Ack {
    let store = Store::open(dir).unwrap_or_else(|e| panic!("reopen after crash: {e}"));
    let topic = match store.topic(TOPIC) {
        Ok(t) => t,
        Err(Error::UnknownTopic(_)) => {
            assert!(acks.is_empty(), "topic lost after acknowledgements");
            stats.before_topic += 1;
            store.create_topic(TOPIC, config(seed, mode)).unwrap()
        }
        Err(e) => panic!("{e}"),
    };
    assert_eq!(*topic.config(), config(seed, mode), "topic config");
    let p = topic.partition(0).unwrap().clone();
    assert_eq!(p.log_start_offset(), 0);
    let end = p.log_end_offset();
    let acked_end = acks.iter().map(|a| a.last + 1).max().unwrap_or(0);
    assert!(
        end >= acked_end,
        "log end offset {end} below the acknowledged end {acked_end}"
    );
    stats.unacked_present += end - acked_end;

    let got = read_dense(&p, 256 << 10, "after the crash", common::read::to_record);
    for (o, rec) in got.iter().enumerate() {
        if *rec != record_at(seed, mode, o as u64) {
            panic!("offset {o} does not hold what was written there");
        }
    }
    for a in acks {
        let values = got[a.base as usize..=a.last as usize]
            .iter()
            .map(|r| r.value.as_deref());
        assert_eq!(
            digest(values),
            a.crc,
            "acknowledged batch {}..={} differs",
            a.base,
            a.last
        );
    }

    // Single-offset reads and timestamp lookups, on a sample.
    let mut r = Rng::new(seed ^ end);
    let mut sample: Vec<u64> = if end <= 200 {
        (0..end).collect()
    } else {
        (0..200).map(|_| r.below(end)).collect()
    };
    sample.extend([0, end.saturating_sub(1)].into_iter().filter(|&o| o < end));
    for o in sample {
        let f = p.read(o, 1).unwrap();
        assert_eq!(f.records().next().map(|r| r.offset()), Some(o), "read({o})");
        let found = p.offset_for_timestamp(ts(o)).unwrap().map(|x| x.offset);
        assert_eq!(found, Some(o), "offset_for_timestamp({})", ts(o));
    }
    assert_eq!(p.offset_for_timestamp(ts(end)).unwrap(), None);

    // Appending continues at the log end offset, and survives a reopen.
    let n = 1 + r.below(5);
    let recs = records(seed, mode, end, n);
    let info = p.append(&recs).unwrap();
    assert_eq!(info.base_offset, end, "append after recovery");
    p.flush().unwrap();
    drop(p);
    store.close().unwrap();
    let store = Store::open(dir).unwrap();
    let p = store.topic(TOPIC).unwrap().partition(0).unwrap().clone();
    assert_eq!(p.log_end_offset(), end + n);
    let f = p.read(end, 64 << 20).unwrap();
    let back: Vec<Record> = f.records().map(|r| r.to_record()).collect();
    assert!(
        back == recs,
        "batch appended after recovery differs after reopen"
    );
    drop(p);
    store.close().unwrap();
    Ack {
        base: end,
        last: end + n - 1,
        crc: digest(recs.iter().map(|r| r.value.as_deref())),
    }
}

/// Prints how to rerun a round when it fails.
struct RoundGuard {
    test: &'static str,
    seed: u64,
}

impl Drop for RoundGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "\n*** crash round failed: seed {seed}; rerun with\n    \
                 {SEED_VAR}={seed} cargo test --test crash {test} -- --nocapture\n",
                seed = self.seed,
                test = self.test
            );
        }
    }
}

/// One round: a fresh directory, one to three crash generations, each verified.
fn round(test: &'static str, seed: u64, mode: Mode, stats: &mut Stats) {
    let _guard = RoundGuard { test, seed };
    let dir = tempfile::tempdir().unwrap();
    let mut r = Rng::new(seed ^ 0x6E6E_0000);
    let generations = r.range(1, 4);
    let mut acks: Vec<Ack> = Vec::new();
    for _ in 0..generations {
        let kill = match mode {
            Mode::Small => match r.below(2) {
                0 => Kill::AfterAcks(r.below(41) as u32),
                _ => Kill::AfterTime(Duration::from_millis(r.range(1, 200))),
            },
            Mode::Big => Kill::DuringAppend(r.range(2, 8) as u32, r.below(700) as u32),
        };
        let new = run_generation(dir.path(), seed, mode, kill);
        // A child continues at the log end offset: its acknowledgements follow.
        let acked_end = acks.last().map_or(0, |a| a.last + 1);
        if let Some(first) = new.first() {
            assert_eq!(first.base, acked_end, "child did not continue the log");
        }
        stats.acked_records += new.iter().map(|a| a.last + 1 - a.base).sum::<u64>();
        acks.extend(new);
        if has_torn_tail(dir.path()) {
            stats.torn_tails += 1;
        }
        let parent_batch = verify(dir.path(), seed, mode, &acks, stats);
        acks.push(parent_batch);
        stats.generations += 1;
    }
    stats.rounds += 1;
}

/// Seeds to run: `SEGLOG_CRASH_SEED` alone, or `rounds` seeds from `base`.
fn seeds(base: u64, rounds: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var(SEED_VAR) {
        return vec![s
            .trim()
            .parse()
            .expect("SEGLOG_CRASH_SEED must be a number")];
    }
    (0..rounds).map(|i| base + i).collect()
}

fn rounds() -> Option<u64> {
    std::env::var(ROUNDS_VAR).ok().map(|s| {
        s.trim()
            .parse()
            .expect("SEGLOG_CRASH_ROUNDS must be a number")
    })
}

fn run_rounds(test: &'static str, mode: Mode, seeds: Vec<u64>) {
    let started = Instant::now();
    let mut stats = Stats::default();
    let total = seeds.len();
    for (i, seed) in seeds.into_iter().enumerate() {
        round(test, seed, mode, &mut stats);
        if total >= 200 && (i + 1) % 100 == 0 {
            eprintln!(
                "{test}: {} of {total} rounds, {:.1?}",
                i + 1,
                started.elapsed()
            );
        }
    }
    eprintln!("{test}: {stats:?} in {:.1?}", started.elapsed());
}

#[test]
fn crash_while_appending_small_batches() {
    if std::env::var(CHILD_MODE).is_ok() {
        return; // a child process runs only `child_process_helper`
    }
    let seeds = seeds(SMALL_SEED_BASE, rounds().unwrap_or(30));
    run_rounds("crash_while_appending_small_batches", Mode::Small, seeds);
}

#[test]
fn crash_while_appending_big_batches() {
    if std::env::var(CHILD_MODE).is_ok() {
        return;
    }
    let n = rounds().map_or(6, |r| (r / 10).max(6));
    let seeds = seeds(BIG_SEED_BASE, n);
    run_rounds("crash_while_appending_big_batches", Mode::Big, seeds);
}

/// Regression: a read budget of `usize::MAX` ("everything") overflowed `pos + max_bytes`
/// in `Segment::read` (a panic in debug builds; in release the sum wrapped and the read
/// returned nothing although records exist).
#[test]
fn read_with_unbounded_budget() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let p = create(&store, TOPIC, TopicConfig::default());
    p.append(&[Record::new("a")]).unwrap();
    p.append(&[Record::new("b"), Record::new("c")]).unwrap();
    for offset in 0..3 {
        let f = p.read(offset, usize::MAX).unwrap();
        let values: Vec<&[u8]> = f.records().filter_map(|r| r.value()).collect();
        assert_eq!(
            values.len(),
            3 - offset as usize,
            "read({offset}, usize::MAX)"
        );
    }
    drop(p);
    store.close().unwrap();
}

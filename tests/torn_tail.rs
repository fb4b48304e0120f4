//! Damaged tails of the active segment, through the public API only.
//!
//! A log of several segments is written, then for **every byte position** inside the last
//! batch of the active segment a fresh copy of the data directory has its `.log` cut there
//! and is reopened: every batch before the torn one must read back byte-identical (against
//! a snapshot read before the damage), the log end offset must be the torn batch's base
//! offset, and an append must land at exactly that offset, read back, be found by
//! timestamp, and survive a reopen. The same checks run after other damaged tails
//! (zero-filled, random garbage, a batch with a wrong CRC, a whole batch whose offsets do
//! not follow) and for logs left by a process that exited without closing its store (the
//! active segment's index files still preallocated and zero-filled to full size).

mod common;

use std::path::{Path, PathBuf};

use common::{child, copy_dir, log_files, partition_dir, read_dense, Rng};
use seglog::record::{encode_batch, BatchIter, BatchSpec, CRC_OFFSET};
use seglog::{Partition, Record, Store, TopicConfig};

const TOPIC: &str = "t";
/// Timestamp of offset `o` is `TS0 + TS_STEP * o`: strictly increasing, with room between.
const TS0: i64 = 1_600_000_000_000;
const TS_STEP: i64 = 10;
/// Small, so that copying a data directory with preallocated indexes stays cheap.
const SEGMENT_INDEX_BYTES: u32 = 8192;
const SEGMENT_BYTES: u64 = 4096;

const CHILD_MODE: &str = "SEGLOG_TORN_CHILD_MODE";
const CHILD_DIR: &str = "SEGLOG_TORN_CHILD_DIR";

// ---------------------------------------------------------------------------------------
// Deterministic data

fn ts(offset: u64) -> i64 {
    TS0 + TS_STEP * offset as i64
}

/// The record written at `offset`: random value (sometimes a tombstone), sometimes a key,
/// sometimes headers; timestamp `ts(offset)`.
fn record_at(offset: u64) -> Record {
    let mut r = Rng::new(offset);
    let mut rec = if r.below(16) == 0 {
        Record {
            value: None,
            ..Record::default()
        }
    } else {
        let len = r.below(200) as usize;
        Record::new(r.low_bytes(len))
    };
    rec = rec.with_timestamp(ts(offset));
    if r.below(2) == 0 {
        rec = rec.with_key(format!("key-{}", r.below(50)));
    }
    if r.below(3) == 0 {
        let n = r.below(20) as usize;
        rec = rec.with_header("trace", Some(r.low_bytes(n)));
        if r.below(2) == 0 {
            rec = rec.with_header("null", None);
        }
    }
    rec
}

fn records(from: u64, n: u64) -> Vec<Record> {
    (from..from + n).map(record_at).collect()
}

fn config(index_interval_bytes: u32) -> TopicConfig {
    TopicConfig::default()
        .segment_bytes(SEGMENT_BYTES)
        .segment_index_bytes(SEGMENT_INDEX_BYTES)
        .index_interval_bytes(index_interval_bytes)
}

/// How the log to damage is laid out and left behind.
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// Kafka's `index.interval.bytes`: 0 indexes every batch (the torn one has an entry).
    index_interval_bytes: u32,
    /// The last batch is the first of the active segment (a roll just happened).
    last_batch_starts_segment: bool,
    /// Left by a process that exited without closing the store (preallocated indexes).
    unclean: bool,
}

impl Layout {
    fn child_arg(&self) -> String {
        format!(
            "{}:{}",
            self.index_interval_bytes, self.last_batch_starts_segment
        )
    }
}

/// Writes the log: 40 batches of 1..=4 records, then 3-record batches until the last
/// batch is (or is not) the first of the active segment.
fn build_log(store: &Store, layout: Layout) {
    let t = store
        .create_topic(TOPIC, config(layout.index_interval_bytes))
        .unwrap();
    let p = t.partition(0).unwrap();
    let mut rng = Rng::new(42);
    for _ in 0..40 {
        let base = p.log_end_offset();
        p.append(&records(base, 1 + rng.below(4))).unwrap();
    }
    loop {
        let segments = p.segments().len();
        let base = p.log_end_offset();
        p.append(&records(base, 3)).unwrap();
        let rolled = p.segments().len() > segments;
        if rolled == layout.last_batch_starts_segment {
            break;
        }
    }
    assert!(p.segments().len() >= 4, "want several segments");
}

/// Not a test by itself: the child process that writes a log and exits without closing.
/// Does nothing unless started by `make_origin`.
#[test]
fn child_process_helper() {
    let (Ok(mode), Ok(dir)) = (std::env::var(CHILD_MODE), std::env::var(CHILD_DIR)) else {
        return;
    };
    let (interval, starts) = mode.split_once(':').unwrap();
    let layout = Layout {
        index_interval_bytes: interval.parse().unwrap(),
        last_batch_starts_segment: starts.parse().unwrap(),
        unclean: true,
    };
    let store = Store::open(&dir).unwrap();
    build_log(&store, layout);
    child::report(&format!("built {}", partition(&store).log_end_offset()));
    // No close, no destructors: the active segment's indexes stay preallocated.
    std::process::exit(0);
}

/// Writes the log of `layout` into `dir` (in a child process when `layout.unclean`).
fn make_origin(dir: &Path, layout: Layout) {
    if !layout.unclean {
        let store = Store::open(dir).unwrap();
        build_log(&store, layout);
        store.close().unwrap();
        return;
    }
    let report = child::run_for_report(
        child::helper("child_process_helper")
            .env(CHILD_MODE, layout.child_arg())
            .env(CHILD_DIR, dir),
    );
    assert!(report.starts_with("built "), "child reported {report:?}");
    // The premise of these cases: the active segment's index files were left preallocated.
    let (_, active_log) = active_log(dir);
    for (suffix, entry) in [("index", 8), ("timeindex", 12)] {
        let len = std::fs::metadata(active_log.with_extension(suffix))
            .unwrap()
            .len();
        assert_eq!(
            len,
            (SEGMENT_INDEX_BYTES / entry * entry) as u64,
            ".{suffix} of the active segment should be left preallocated"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Files

/// The partition directory and the active segment's `.log` (the one with the highest base).
fn active_log(data_dir: &Path) -> (PathBuf, PathBuf) {
    let pdir = partition_dir(data_dir, TOPIC, 0);
    let last = log_files(&pdir).pop().unwrap();
    (pdir, last)
}

/// The last batch of a `.log`: `(position, length, base offset)`; the file must hold whole
/// batches only.
fn last_batch(log: &Path) -> (usize, usize, u64) {
    let bytes = std::fs::read(log).unwrap();
    let mut last = None;
    let mut iter = BatchIter::new(&bytes);
    for b in iter.by_ref() {
        let (pos, b) = b.unwrap();
        last = Some((pos, b.as_bytes().len(), b.base_offset()));
    }
    assert_eq!(iter.position(), bytes.len(), "origin log has a bad tail");
    last.expect("active segment is empty")
}

fn set_len(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// Checks

fn partition(store: &Store) -> Partition {
    common::partition(store, TOPIC)
}

/// Every record from the log start, checking that offsets are dense and reads never fail.
fn read_all(p: &Partition, ctx: &str) -> Vec<(u64, Record)> {
    read_dense(p, 1000, ctx, |r| (r.offset, common::read::to_record(r)))
}

/// Reopens `dir`, whose log was damaged after its first `keep` records (the snapshot holds
/// the records read before the damage), and checks the cut, then appends and checks again.
/// With `thorough`, reads every offset on its own, looks up every timestamp, and checks
/// everything again after a second reopen.
fn check_recovered(dir: &Path, snapshot: &[(u64, Record)], keep: u64, thorough: bool, ctx: &str) {
    let expected = &snapshot[..keep as usize];
    let store = Store::open(dir).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
    let p = partition(&store);
    assert_eq!(p.log_start_offset(), 0, "{ctx}");
    assert_eq!(p.log_end_offset(), keep, "{ctx}: log end offset");
    let got = read_all(&p, ctx);
    assert!(got == expected, "{ctx}: records before the damage differ");
    if thorough {
        for (o, rec) in expected {
            let f = p.read(*o, 1).unwrap();
            let r = f.records().next().unwrap();
            assert_eq!(r.offset(), *o, "{ctx}");
            assert!(r.to_record() == *rec, "{ctx}: read({o}) differs");
            let found = p.offset_for_timestamp(ts(*o)).unwrap().map(|x| x.offset);
            assert_eq!(found, Some(*o), "{ctx}: offset_for_timestamp({})", ts(*o));
            let found = p
                .offset_for_timestamp(ts(*o) - 1)
                .unwrap()
                .map(|x| x.offset);
            assert_eq!(
                found,
                Some(*o),
                "{ctx}: offset_for_timestamp({})",
                ts(*o) - 1
            );
        }
    }
    // The cut records are not found by timestamp.
    assert_eq!(
        p.offset_for_timestamp(ts(keep)).unwrap(),
        None,
        "{ctx}: a removed record is still found by timestamp"
    );

    // Appending continues at exactly the cut; the new record (newer than anything cut)
    // reads back and is found by timestamp.
    let new_ts = ts(keep + 100);
    let new = record_at(keep).with_timestamp(new_ts);
    let info = p.append(std::slice::from_ref(&new)).unwrap();
    assert_eq!(info.base_offset, keep, "{ctx}: append offset");
    assert_eq!(p.log_end_offset(), keep + 1, "{ctx}");
    let check_new = |p: &Partition, when: &str| {
        let f = p.read(keep, 1).unwrap();
        let r = f.records().next().unwrap();
        assert_eq!(r.offset(), keep, "{ctx} {when}");
        assert!(
            r.to_record() == new,
            "{ctx} {when}: appended record differs"
        );
        for target in [ts(keep), new_ts - 1, new_ts] {
            assert_eq!(
                p.offset_for_timestamp(target).unwrap().map(|x| x.offset),
                Some(keep),
                "{ctx} {when}: offset_for_timestamp({target}) should find the appended record"
            );
        }
        if keep > 0 {
            let last = keep - 1;
            assert_eq!(
                p.offset_for_timestamp(ts(last)).unwrap().map(|x| x.offset),
                Some(last),
                "{ctx} {when}: offset_for_timestamp of the last kept record"
            );
        }
        assert_eq!(p.offset_for_timestamp(new_ts + 1).unwrap(), None, "{ctx}");
    };
    check_new(&p, "after append");
    drop(p);
    store.close().unwrap();
    if !thorough {
        return;
    }

    let store = Store::open(dir).unwrap_or_else(|e| panic!("{ctx}: second reopen: {e}"));
    let p = partition(&store);
    assert_eq!(p.log_end_offset(), keep + 1, "{ctx}: after second reopen");
    let got = read_all(&p, ctx);
    assert!(
        got[..keep as usize] == *expected,
        "{ctx}: records differ after second reopen"
    );
    check_new(&p, "after second reopen");
    drop(p);
    store.close().unwrap();
}

/// A pristine log of `layout` with the records it holds (read from a copy, since opening
/// the origin would recover it).
struct Origin {
    _dir: tempfile::TempDir,
    path: PathBuf,
    snapshot: Vec<(u64, Record)>,
}

fn origin(layout: Layout) -> Origin {
    let dir = tempfile::tempdir().unwrap();
    make_origin(dir.path(), layout);
    let scratch = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), scratch.path());
    let store = Store::open(scratch.path()).unwrap();
    let p = partition(&store);
    let snapshot = read_all(&p, "origin");
    assert!(snapshot.len() > 100);
    for (o, rec) in &snapshot {
        assert!(
            *rec == record_at(*o),
            "origin: record {o} differs from what was written"
        );
    }
    drop(p);
    store.close().unwrap();
    Origin {
        path: dir.path().to_path_buf(),
        _dir: dir,
        snapshot,
    }
}

/// A fresh copy of the origin, damaged by `damage(active .log path)`, then checked.
fn damaged_copy(origin: &Origin, keep: u64, thorough: bool, ctx: &str, damage: impl FnOnce(&Path)) {
    damaged_copy_of(&origin.path, &origin.snapshot, keep, thorough, ctx, damage);
}

/// As `damaged_copy`, with the records expected before the damage given explicitly.
fn damaged_copy_of(
    origin: &Path,
    snapshot: &[(u64, Record)],
    keep: u64,
    thorough: bool,
    ctx: &str,
    damage: impl FnOnce(&Path),
) {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(origin, dir.path());
    let (_, log) = active_log(dir.path());
    damage(&log);
    // A torn tail is what a crash leaves: no clean-shutdown marker, and a recovery point
    // below the torn batch (here none at all, so recovery checks the whole log). Damage
    // below a recovery point is corruption of flushed data, tested in tests/recovery.rs.
    for name in [seglog::CLEAN_SHUTDOWN_FILE, seglog::RECOVERY_POINT_FILE] {
        let _ = std::fs::remove_file(dir.path().join(name));
    }
    check_recovered(dir.path(), snapshot, keep, thorough, ctx);
}

// ---------------------------------------------------------------------------------------
// Every byte position of the last batch

/// Cuts the active `.log` at every byte position of its last batch, from `first_byte`
/// bytes into it (0: the cut that removes the whole batch) to its last byte.
fn every_cut_of_last_batch_from(layout: Layout, first_byte: usize) {
    let origin = origin(layout);
    let (_, log) = active_log(&origin.path);
    let (pos, len, base) = last_batch(&log);
    assert_eq!(origin.snapshot.len() as u64, base + 3);
    if layout.last_batch_starts_segment {
        assert_eq!(pos, 0);
    } else {
        assert!(pos > 0);
    }
    for cut in pos + first_byte..pos + len {
        let ctx = format!("{layout:?}: .log cut at {cut} (last batch at {pos}, {len} bytes)");
        // Read every offset on its own for a sample of cuts (it is the slow part).
        let thorough = cut == pos || cut == pos + len - 1 || (cut - pos) % 37 == 0;
        damaged_copy(&origin, base, thorough, &ctx, |log| {
            set_len(log, cut as u64)
        });
    }
}

fn every_cut_of_last_batch(layout: Layout) {
    every_cut_of_last_batch_from(layout, 0);
}

const CLEAN_SPARSE: Layout = Layout {
    index_interval_bytes: 4096,
    last_batch_starts_segment: false,
    unclean: false,
};

/// Every cut but the one at the batch's first byte (it has its own test below).
#[test]
fn every_cut_of_last_batch_clean_close() {
    every_cut_of_last_batch_from(CLEAN_SPARSE, 1);
}

/// Regression: cut at the last batch's first byte, the `.log` ends at a batch boundary but
/// the time index still held the entry `seal` wrote at close for the removed batch, so the
/// load kept it and `offset_for_timestamp` missed later appends.
#[test]
fn whole_last_batch_missing_after_clean_close() {
    let origin = origin(CLEAN_SPARSE);
    let (_, log) = active_log(&origin.path);
    let (pos, _, base) = last_batch(&log);
    damaged_copy(&origin, base, true, "whole last batch cut", |log| {
        set_len(log, pos as u64)
    });
}

#[test]
fn every_cut_of_last_batch_clean_close_every_batch_indexed() {
    every_cut_of_last_batch(Layout {
        index_interval_bytes: 0,
        last_batch_starts_segment: false,
        unclean: false,
    });
}

#[test]
fn every_cut_of_last_batch_first_in_segment_clean_close() {
    every_cut_of_last_batch(Layout {
        index_interval_bytes: 0,
        last_batch_starts_segment: true,
        unclean: false,
    });
}

#[test]
fn every_cut_of_last_batch_after_exit_without_close() {
    every_cut_of_last_batch(Layout {
        index_interval_bytes: 4096,
        last_batch_starts_segment: false,
        unclean: true,
    });
}

#[test]
fn every_cut_of_last_batch_after_exit_without_close_every_batch_indexed() {
    every_cut_of_last_batch(Layout {
        index_interval_bytes: 0,
        last_batch_starts_segment: false,
        unclean: true,
    });
}

#[test]
fn every_cut_of_last_batch_first_in_segment_after_exit_without_close() {
    every_cut_of_last_batch(Layout {
        index_interval_bytes: 0,
        last_batch_starts_segment: true,
        unclean: true,
    });
}

// ---------------------------------------------------------------------------------------
// Other damaged tails: after an intact log, something that is not a good next batch

const LAYOUTS: [Layout; 4] = [
    Layout {
        index_interval_bytes: 4096,
        last_batch_starts_segment: false,
        unclean: false,
    },
    Layout {
        index_interval_bytes: 0,
        last_batch_starts_segment: false,
        unclean: false,
    },
    Layout {
        index_interval_bytes: 4096,
        last_batch_starts_segment: false,
        unclean: true,
    },
    Layout {
        index_interval_bytes: 0,
        last_batch_starts_segment: true,
        unclean: true,
    },
];

/// Runs `damage` on a fresh copy of each layout's log and checks that everything before
/// the damage is kept.
fn each_layout(what: &str, damage: impl Fn(&Origin, &Path)) {
    for layout in LAYOUTS {
        let origin = origin(layout);
        let keep = origin.snapshot.len() as u64;
        let ctx = format!("{layout:?}: {what}");
        damaged_copy(&origin, keep, true, &ctx, |log| damage(&origin, log));
    }
}

/// No damage at all: a log left by a process that exited without closing reopens with
/// every offset readable on its own and found by its timestamp, and takes appends.
#[test]
fn exit_without_close_reopens_with_every_offset_readable() {
    for layout in LAYOUTS.into_iter().filter(|l| l.unclean) {
        let origin = origin(layout);
        let keep = origin.snapshot.len() as u64;
        let ctx = format!("{layout:?}: undamaged");
        damaged_copy(&origin, keep, true, &ctx, |_| {});
    }
}

#[test]
fn zero_filled_tail_is_cut() {
    each_layout("4 KiB of zeros appended", |_, log| {
        append_bytes(log, &[0; 4096])
    });
}

#[test]
fn zero_filled_tail_of_every_length_up_to_a_header_is_cut() {
    let origin = origin(LAYOUTS[0]);
    let keep = origin.snapshot.len() as u64;
    for n in 1..=70 {
        let ctx = format!("{n} zero bytes appended");
        damaged_copy(&origin, keep, false, &ctx, |log| {
            append_bytes(log, &vec![0; n])
        });
    }
}

#[test]
fn random_garbage_tail_is_cut() {
    for seed in 1..=6u64 {
        each_layout(&format!("random garbage, seed {seed}"), |_, log| {
            let mut r = Rng::new(seed);
            let n = 1 + r.below(4096) as usize;
            append_bytes(log, &r.low_bytes(n));
        });
    }
}

/// The next batch, correctly encoded for offset `keep`.
fn next_batch(keep: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_batch(&mut buf, &BatchSpec::new(keep, ts(keep)), &records(keep, 3)).unwrap();
    buf
}

#[test]
fn tail_batch_with_wrong_crc_is_cut() {
    each_layout("valid batch with a wrong CRC appended", |o, log| {
        let mut b = next_batch(o.snapshot.len() as u64);
        b[CRC_OFFSET] ^= 0x01;
        append_bytes(log, &b);
    });
    each_layout(
        "valid batch with a flipped record byte appended",
        |o, log| {
            let mut b = next_batch(o.snapshot.len() as u64);
            let last = b.len() - 1;
            b[last] ^= 0x80;
            append_bytes(log, &b);
        },
    );
    each_layout(
        "valid batch header claiming more bytes than follow",
        |o, log| {
            let b = next_batch(o.snapshot.len() as u64);
            append_bytes(log, &b[..b.len() - 1]);
        },
    );
}

#[test]
fn tail_after_a_good_extra_batch_keeps_the_good_batch() {
    // A whole good batch then garbage: the good batch is kept (it was written in full).
    for layout in LAYOUTS {
        let origin = origin(layout);
        let keep = origin.snapshot.len() as u64;
        let mut snapshot = origin.snapshot.clone();
        snapshot.extend(
            records(keep, 3)
                .into_iter()
                .zip(keep..)
                .map(|(r, o)| (o, r)),
        );
        let ctx = format!("{layout:?}: good batch then garbage");
        damaged_copy_of(&origin.path, &snapshot, keep + 3, true, &ctx, |log| {
            append_bytes(log, &next_batch(keep));
            append_bytes(log, &Rng::new(7).low_bytes(100));
        });
    }
}

/// Regression: recovery kept a CRC-valid tail batch that repeats offsets below the log
/// end, and reads then returned those offsets twice.
#[test]
fn tail_batch_repeating_offsets_is_cut() {
    each_layout(
        "CRC-valid batch repeating earlier offsets appended",
        |o, log| {
            let keep = o.snapshot.len() as u64;
            append_bytes(log, &next_batch(keep - 2));
        },
    );
}

/// A CRC-valid batch that starts past the log end offset. Kafka tolerates offset gaps
/// between batches (compaction makes them), so recovery may keep it or cut it; either way
/// nothing before it is lost, reads work, and appends continue after whatever was kept.
#[test]
fn tail_batch_with_offset_gap_is_cut_or_kept_whole() {
    for layout in LAYOUTS {
        let origin = origin(layout);
        let keep = origin.snapshot.len() as u64;
        let ctx = format!("{layout:?}: CRC-valid batch at {keep} + 5 appended");
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&origin.path, dir.path());
        let (_, log) = active_log(dir.path());
        append_bytes(&log, &next_batch(keep + 5));
        let store = Store::open(dir.path()).unwrap();
        let p = partition(&store);
        let end = p.log_end_offset();
        if end == keep {
            drop(p);
            store.close().unwrap();
            check_recovered(dir.path(), &origin.snapshot, keep, true, &ctx);
            continue;
        }
        assert_eq!(end, keep + 8, "{ctx}: neither cut nor kept whole");
        let mut expected = origin.snapshot.clone();
        expected.extend((keep + 5..keep + 8).map(|o| (o, record_at(o))));
        let got: Vec<(u64, Record)> = p
            .records_from(0)
            .fetch_bytes(1000)
            .map(|r| r.map(|r| (r.offset, common::read::to_record(&r))).unwrap())
            .collect();
        assert!(got == expected, "{ctx}: reads differ");
        let info = p.append(&records(end, 1)).unwrap();
        assert_eq!(info.base_offset, end, "{ctx}");
        drop(p);
        store.close().unwrap();
    }
}

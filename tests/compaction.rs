//! Compaction (Kafka's log cleaner): the latest record per key survives, unkeyed records
//! go, offsets stay (gaps); tombstones live until their delete horizon; the uncleanable
//! section is never touched; the dirty ratio and the compaction lags decide when a log is
//! cleaned; a small key map cleans in several passes; progress is checkpointed in Kafka's
//! `cleaner-offset-checkpoint`; small cleaned segments merge; a crash at any step of the
//! swap leaves the old or the new contents; readers race the cleaner safely. A proptest
//! compares the log with a `HashMap` model.
//!
//! Time comes from a manual clock and background maintenance is off unless a test turns
//! it on. Record timestamps are explicit. Faults are planned process-wide: the tests that
//! inject them hold [`FAULTS`] exclusively, every other test holds it shared.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::{
    copy_dir, create, exclusive, open, open_maintained, partition, shared, store_config, wait_for,
    ManualClock,
};
use proptest::prelude::*;
use seglog::faults::{self, FaultOp};
use seglog::{
    CleanupPolicy, Clock, Error, Partition, Record, Store, TopicConfig, CLEANER_FILE,
    CLEAN_SHUTDOWN_FILE,
};

/// The store clock's start.
const T: i64 = 1_700_000_000_000;
/// Record timestamps of [`Log`] start here, well in the past (no compaction lag applies).
const TS0: i64 = T - 100_000_000;
/// `segment_ms` of [`compacted`] topics: [`Log::roll`] jumps the record timestamps past it.
const SEGMENT_MS: u64 = 1_000;
/// Default `delete_retention_ms` of [`compacted`] topics.
const DELETE_RETENTION: i64 = 10_000;

fn open_with_buffer(dir: &Path, clock: &Arc<ManualClock>, buffer: usize) -> Store {
    Store::open_with(dir, store_config(clock).cleaner_buffer_bytes(buffer)).unwrap()
}

/// A compact-policy topic that rolls on record time ([`Log::roll`]).
fn compacted() -> TopicConfig {
    TopicConfig::default()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_ms(SEGMENT_MS)
        .delete_retention_ms(DELETE_RETENTION as u64)
}

/// A record as stored: offset, key, value, timestamp.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rec {
    offset: u64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    ts: i64,
}

/// A partition and everything appended to it (`history[o]` is the record at offset `o`).
struct Log {
    p: Partition,
    history: Vec<Rec>,
    /// Timestamp of the next records.
    ts: i64,
}

impl Log {
    fn new(p: Partition) -> Log {
        assert_eq!(p.log_end_offset(), 0);
        Log {
            p,
            history: Vec::new(),
            ts: TS0,
        }
    }

    /// Appends one batch: `(key, value)` pairs, `None` value for a tombstone. The records'
    /// timestamps differ (`ts - n + 1 + i`), so that a rewritten batch must keep each.
    fn append(&mut self, recs: &[(Option<&str>, Option<&str>)]) {
        let base = self.p.log_end_offset();
        assert_eq!(base, self.history.len() as u64);
        let n = recs.len() as i64;
        let records: Vec<Record> = recs
            .iter()
            .enumerate()
            .map(|(i, (k, v))| {
                let ts = self.ts - n + 1 + i as i64;
                self.history.push(Rec {
                    offset: base + i as u64,
                    key: k.map(|k| k.as_bytes().to_vec()),
                    value: v.map(|v| v.as_bytes().to_vec()),
                    ts,
                });
                Record {
                    key: k.map(|k| k.as_bytes().to_vec()),
                    value: v.map(|v| v.as_bytes().to_vec()),
                    headers: Vec::new(),
                    timestamp: Some(ts),
                }
            })
            .collect();
        let info = self.p.append(&records).unwrap();
        assert_eq!(info.base_offset, base);
    }

    fn put(&mut self, key: &str, value: &str) {
        self.append(&[(Some(key), Some(value))]);
    }

    fn tomb(&mut self, key: &str) {
        self.append(&[(Some(key), None)]);
    }

    fn unkeyed(&mut self, value: &str) {
        self.append(&[(None, Some(value))]);
    }

    /// The next append starts a new segment (its timestamp passes `segment_ms`).
    fn roll(&mut self) {
        self.ts += SEGMENT_MS as i64 + 1;
    }

    fn active_base(&self) -> u64 {
        self.p.segments().last().unwrap().base_offset()
    }

    fn read(&self) -> Vec<Rec> {
        let recs = read_all(&self.p);
        check_history(&recs, &self.history);
        recs
    }
}

fn rec_of(r: &seglog::RecordView<'_>) -> Rec {
    Rec {
        offset: r.offset(),
        key: r.key().map(<[u8]>::to_vec),
        value: r.value().map(<[u8]>::to_vec),
        ts: r.timestamp(),
    }
}

/// Every record from the log start to the log end, in order.
fn read_all(p: &Partition) -> Vec<Rec> {
    common::read_all(p, 8192, |r| Rec {
        offset: r.offset,
        key: r.key.clone(),
        value: r.value.clone(),
        ts: r.timestamp,
    })
}

/// Each record is the one appended at its offset; offsets strictly increase.
fn check_history(recs: &[Rec], history: &[Rec]) {
    for w in recs.windows(2) {
        assert!(w[0].offset < w[1].offset, "offsets go back: {w:?}");
    }
    for r in recs {
        assert_eq!(
            Some(r),
            history.get(r.offset as usize),
            "record at {}",
            r.offset
        );
    }
}

/// Reading from each offset on (one batch at a time; a cleaned batch may be empty) comes
/// first to the first record of `recs` at or past it: the indexes of rewritten segments
/// agree with their contents.
fn check_reads_at_every_offset(p: &Partition, recs: &[Rec]) {
    let end = p.log_end_offset();
    for o in p.log_start_offset()..end {
        let mut next = o;
        let mut got = None;
        while got.is_none() && next < end {
            let f = p.read(next, 1).unwrap();
            got = f.records().next().map(|r| rec_of(&r));
            assert!(f.next_offset() > next, "a read at {next} made no progress");
            next = f.next_offset();
        }
        let want = recs.iter().find(|r| r.offset >= o);
        assert_eq!(got.as_ref(), want, "reading from {o}");
    }
}

/// What cleaning every offset below `clean_end` leaves: in that range, each key's latest
/// record (tombstones included: their horizon has not passed); at or past it, everything.
fn cleaned(history: &[Rec], clean_end: u64) -> Vec<Rec> {
    let mut latest: HashMap<&[u8], u64> = HashMap::new();
    for r in &history[..clean_end as usize] {
        if let Some(k) = &r.key {
            latest.insert(k, r.offset);
        }
    }
    history
        .iter()
        .filter(|r| {
            r.offset >= clean_end || r.key.as_deref().is_some_and(|k| latest[k] == r.offset)
        })
        .cloned()
        .collect()
}

/// Each key's live value: the latest record's, none when it is a tombstone.
fn latest_values(recs: &[Rec]) -> HashMap<Vec<u8>, Vec<u8>> {
    let mut map = HashMap::new();
    for r in recs {
        if let Some(k) = &r.key {
            match &r.value {
                Some(v) => map.insert(k.clone(), v.clone()),
                None => map.remove(k),
            };
        }
    }
    map
}

/// `offset_for_timestamp` finds, for every timestamp appended (and one past the last),
/// the first remaining record at or after it (the rebuilt time indexes agree).
fn check_time_lookups(p: &Partition, recs: &[Rec], history: &[Rec]) {
    let mut targets: Vec<i64> = history.iter().map(|r| r.ts).collect();
    targets.push(history.last().map_or(0, |r| r.ts + 1));
    targets.dedup();
    for t in targets {
        let got = p
            .offset_for_timestamp(t)
            .unwrap()
            .map(|f| (f.offset, f.timestamp));
        let want = recs.iter().find(|r| r.ts >= t).map(|r| (r.offset, r.ts));
        assert_eq!(got, want, "offset_for_timestamp({t})");
    }
}

fn offsets(recs: &[Rec]) -> BTreeSet<u64> {
    recs.iter().map(|r| r.offset).collect()
}

fn checkpoint_text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(CLEANER_FILE)).unwrap()
}

/// The three files of each segment from `from` on, by name.
fn segment_files(p: &Partition, from: usize) -> Vec<(PathBuf, Vec<u8>)> {
    p.segments()[from..]
        .iter()
        .flat_map(|s| {
            [".log", ".index", ".timeindex"].map(|ext| {
                let path = p
                    .dir()
                    .join(seglog::segment::file_name(s.base_offset(), ext));
                let bytes = std::fs::read(&path).unwrap();
                (path, bytes)
            })
        })
        .collect()
}

/// Names in the partition directory that an interrupted operation leaves behind.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| {
            [".cleaned", ".swap", ".tmp", ".deleted"]
                .iter()
                .any(|s| n.ends_with(s))
        })
        .collect()
}

/// A log of 17 keys over many segments: duplicates, unkeyed records, a key whose latest
/// record is a tombstone (`k3`), a key deleted then set again (`k5`), multi-record
/// batches; then a roll and a few records in the active segment.
fn build_mixed(log: &mut Log, n: u64) {
    for i in 0..n {
        let key = format!("k{}", i % 17);
        let value = format!("v{i}");
        match i {
            _ if i % 10 == 9 => log.unkeyed(&format!("u{i}")),
            _ if i % 31 == 30 => log.append(&[
                (Some(key.as_str()), Some(value.as_str())),
                (None, Some("unkeyed-in-batch")),
                (Some("k1"), Some(value.as_str())),
            ]),
            _ => log.put(&key, &value),
        }
        if i % 25 == 24 {
            log.roll();
        }
    }
    log.tomb("k3");
    log.tomb("k5");
    log.put("k5", "back");
    log.roll();
    log.put("k1", "active");
    log.put("k3", "active");
}

/// The latest record per key stays, superseded and unkeyed records go, offsets stay (the
/// log has gaps, its start and end do not move), a key whose latest record is a tombstone
/// keeps no live value; the report adds up; all of it survives a reopen.
#[test]
fn compaction_keeps_the_latest_record_per_key() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open(dir.path(), &clock);
    store.create_topic("c", compacted()).unwrap();
    let mut log = Log::new(partition(&store, "c"));
    build_mixed(&mut log, 300);
    let end = log.p.log_end_offset();
    let uncleanable = log.active_base();
    assert!(log.p.segments().len() > 5);
    let before = log.read();
    assert_eq!(before, log.history);
    let bytes_before: u64 = log.p.segments().iter().map(|s| s.size()).sum();

    let report = log.p.compact_now().unwrap();
    let expected = cleaned(&log.history, uncleanable);
    let after = log.read();
    assert_eq!(after, expected);
    assert!(report.cleaned);
    assert_eq!(report.first_dirty_offset, uncleanable);
    let keys: BTreeSet<_> = log.history[..uncleanable as usize]
        .iter()
        .filter_map(|r| r.key.clone())
        .collect();
    assert_eq!(report.keys, keys.len() as u64);
    assert_eq!(
        report.records_removed,
        (before.len() - after.len()) as u64,
        "{report:?}"
    );
    assert!(report.bytes_after < report.bytes_before, "{report:?}");
    assert!(report.segments_after <= report.segments_before);
    let bytes_after: u64 = log.p.segments().iter().map(|s| s.size()).sum();
    assert_eq!(
        bytes_before - bytes_after,
        report.bytes_before - report.bytes_after
    );

    // Offsets kept: gaps, same start and end.
    assert_eq!(log.p.log_start_offset(), 0);
    assert_eq!(log.p.log_end_offset(), end);
    assert!(after.len() < end as usize);
    // No unkeyed record in the cleaned range.
    assert!(after
        .iter()
        .all(|r| r.offset >= uncleanable || r.key.is_some()));
    // At most one record per key in the cleaned range.
    let cleaned_keys: Vec<_> = after
        .iter()
        .filter(|r| r.offset < uncleanable)
        .map(|r| r.key.clone())
        .collect();
    assert_eq!(cleaned_keys.len(), keys.len());
    // k3's latest cleanable record is a tombstone: no live value of k3 below it.
    let t3 = after
        .iter()
        .find(|r| r.key.as_deref() == Some(b"k3") && r.offset < uncleanable)
        .unwrap();
    assert_eq!(
        t3.value, None,
        "the tombstone itself stays until its horizon"
    );
    assert!(!after
        .iter()
        .any(|r| r.key.as_deref() == Some(b"k3") && r.value.is_some() && r.offset < t3.offset));
    assert_eq!(latest_values(&after), latest_values(&log.history));
    check_reads_at_every_offset(&log.p, &after);
    check_time_lookups(&log.p, &after, &log.history);

    // A second pass with nothing dirty changes nothing.
    let again = log.p.compact_now().unwrap();
    assert!(!again.cleaned);
    assert_eq!(log.read(), expected);

    store.close().unwrap();
    let store = open(dir.path(), &clock);
    let p = partition(&store, "c");
    let reopened = read_all(&p);
    assert_eq!(reopened, expected);
    check_reads_at_every_offset(&p, &reopened);
    store.close().unwrap();
}

/// A topic whose policy does not compact is left alone by `compact_now`.
#[test]
fn compact_now_leaves_delete_policy_topics_alone() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open(dir.path(), &clock);
    store
        .create_topic(
            "d",
            compacted()
                .cleanup_policy(CleanupPolicy::Delete)
                .retention_ms(None),
        )
        .unwrap();
    let mut log = Log::new(partition(&store, "d"));
    build_mixed(&mut log, 60);
    let files = segment_files(&log.p, 0);
    let report = log.p.compact_now().unwrap();
    assert!(!report.cleaned);
    assert_eq!(segment_files(&log.p, 0), files);
    assert_eq!(log.read(), log.history);
    assert!(store.compact().partitions_compacted == 0);
    store.close().unwrap();
}

/// `cleaner-offset-checkpoint` is Kafka's text format and holds the first dirty offset
/// after each pass; a reopened store starts cleaning there (reads only the new data).
#[test]
fn cleaner_checkpoint_holds_the_first_dirty_offset() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open(dir.path(), &clock);
    store.create_topic("cp", compacted()).unwrap();
    let mut log = Log::new(partition(&store, "cp"));
    build_mixed(&mut log, 100);
    let first = log.p.compact_now().unwrap();
    let fd = log.active_base();
    assert_eq!(first.first_dirty_offset, fd);
    assert_eq!(checkpoint_text(dir.path()), format!("0\n1\ncp 0 {fd}\n"));

    store.close().unwrap();
    let store = open(dir.path(), &clock);
    let p = partition(&store, "cp");
    let mut log = Log { p, ..log };
    // Nothing new: nothing to clean, the checkpoint stays.
    let idle = log.p.compact_now().unwrap();
    assert!(!idle.cleaned);
    assert_eq!(idle.first_dirty_offset, fd);
    // New data: the next pass reads only the segments from the checkpoint on.
    for i in 0..40 {
        log.put(&format!("k{}", i % 4), &format!("new{i}"));
    }
    log.roll();
    log.put("k0", "active");
    let new_end = log.active_base();
    let dirty_segments: u64 = log
        .p
        .segments()
        .iter()
        .filter(|s| s.base_offset() >= fd && s.base_offset() < new_end)
        .map(|s| s.size())
        .sum();
    let second = log.p.compact_now().unwrap();
    assert!(second.cleaned);
    assert_eq!(second.dirty_bytes, dirty_segments, "{second:?}");
    assert_eq!(second.first_dirty_offset, new_end);
    assert_eq!(
        checkpoint_text(dir.path()),
        format!("0\n1\ncp 0 {new_end}\n")
    );
    assert_eq!(log.read(), cleaned(&log.history, new_end));

    // Two compacted topics: one line each.
    let other = store.create_topic("cq", compacted()).unwrap();
    let mut log2 = Log::new(other.partition(0).unwrap().clone());
    log2.put("a", "1");
    log2.roll();
    log2.put("a", "2");
    log2.p.compact_now().unwrap();
    assert_eq!(
        checkpoint_text(dir.path()),
        format!("0\n2\ncp 0 {new_end}\ncq 0 1\n")
    );
    store.close().unwrap();
}

/// Builds: `k1 = v1`, `k2 = v2`, tombstone of `k1`, then a roll and one active record.
fn tombstone_log(store: &Store, topic: &str) -> Log {
    store.create_topic(topic, compacted()).unwrap();
    let mut log = Log::new(partition(store, topic));
    log.put("k1", "v1");
    log.put("k2", "v2");
    log.tomb("k1");
    log.roll();
    log.put("k9", "active");
    log
}

fn has_tombstone(recs: &[Rec], key: &str) -> bool {
    recs.iter()
        .any(|r| r.key.as_deref() == Some(key.as_bytes()) && r.value.is_none())
}

/// Appends one dirty record and rolls past it, so that the next pass has work.
fn dirty(log: &mut Log, i: u32) {
    log.put("other", &format!("o{i}"));
    log.roll();
    log.put("k9", &format!("active{i}"));
}

/// A tombstone survives cleanings until its delete horizon — `delete_retention_ms` after
/// the first cleaning that saw it — and the first cleaning at or after the horizon removes
/// it (here each pass has new dirty data to clean).
#[test]
fn tombstones_survive_until_the_delete_horizon() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open(dir.path(), &clock);
    let mut log = tombstone_log(&store, "t");
    let r = log.p.compact_now().unwrap();
    assert!(r.cleaned);
    let after = log.read();
    assert!(has_tombstone(&after, "k1"));
    // The tombstone's batch now carries its delete horizon; its record keeps its own
    // timestamp (checked by `read`), and lookups by time still find it.
    check_time_lookups(&log.p, &after, &log.history);
    assert!(!after
        .iter()
        .any(|r| r.key.as_deref() == Some(b"k1") && r.value.is_some()));

    clock.set(T + DELETE_RETENTION - 1);
    dirty(&mut log, 1);
    assert!(log.p.compact_now().unwrap().cleaned);
    assert!(has_tombstone(&log.read(), "k1"), "horizon not reached yet");

    clock.set(T + DELETE_RETENTION);
    dirty(&mut log, 2);
    let r = log.p.compact_now().unwrap();
    assert!(r.cleaned);
    let after = log.read();
    assert!(!has_tombstone(&after, "k1"), "{after:?}");
    assert!(!after.iter().any(|r| r.key.as_deref() == Some(b"k1")));
    assert_eq!(latest_values(&after), latest_values(&log.history));
    store.close().unwrap();
}

/// The horizon counts from the first cleaning that saw the tombstone, not from the
/// tombstone's timestamp or append: a tombstone appended long before its first cleaning
/// still lives `delete_retention_ms` after that cleaning.
#[test]
fn tombstone_horizon_counts_from_the_first_cleaning_that_saw_it() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open(dir.path(), &clock);
    let mut log = tombstone_log(&store, "t");
    // First cleaning well after the append.
    let first = T + 3 * DELETE_RETENTION;
    clock.set(first);
    assert!(log.p.compact_now().unwrap().cleaned);
    assert!(has_tombstone(&log.read(), "k1"));
    clock.set(first + DELETE_RETENTION - 1);
    dirty(&mut log, 1);
    assert!(log.p.compact_now().unwrap().cleaned);
    assert!(has_tombstone(&log.read(), "k1"));
    // The horizon survives a reopen (it is in the batch).
    store.close().unwrap();
    let store = open(dir.path(), &clock);
    log.p = partition(&store, "t");
    clock.set(first + DELETE_RETENTION);
    dirty(&mut log, 2);
    assert!(log.p.compact_now().unwrap().cleaned);
    assert!(!has_tombstone(&log.read(), "k1"));
    store.close().unwrap();
}

/// A tombstone past its delete horizon goes at the next cleaning even when nothing new
/// was written (Kafka cleans logs whose tombstones' horizon has passed, KIP-534).
///
/// Regression (a bug these tests found), reproduction: compacted topic; `k1=v1`, tombstone `k1`, roll, one active
/// record; `compact_now()` at `T`; clock to `T + delete_retention_ms`; `compact_now()`
/// returns `cleaned: false` (nothing dirty: `first_dirty >= uncleanable`) and the
/// tombstone stays forever unless new data is appended and rolled.
#[test]
fn expired_tombstones_go_without_new_writes() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open(dir.path(), &clock);
    let log = tombstone_log(&store, "t");
    assert!(log.p.compact_now().unwrap().cleaned);
    assert!(has_tombstone(&log.read(), "k1"));
    clock.set(T + DELETE_RETENTION);
    log.p.compact_now().unwrap();
    assert!(!has_tombstone(&log.read(), "k1"), "{:?}", log.read());
    store.close().unwrap();
}

/// The size of a one-record batch with a 2-byte key and a 16-byte value.
fn fixed_batch_size() -> u64 {
    static SIZE: OnceLock<u64> = OnceLock::new();
    *SIZE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), &ManualClock::at(T));
        let p = create(&store, "probe", TopicConfig::default());
        let a = p.append(&[fixed(0, 0, T)]).unwrap().batch_bytes;
        let b = p
            .append(&[fixed(99, 99_999, T - 10_000_000)])
            .unwrap()
            .batch_bytes;
        assert_eq!(a, b);
        a as u64
    })
}

/// Key `NN` (two digits), a 16-byte value naming `o`.
fn fixed(key: u32, o: u64, ts: i64) -> Record {
    Record::new(format!("value-{o:010}").into_bytes())
        .with_key(format!("{key:02}").into_bytes())
        .with_timestamp(ts)
}

fn fixed_rec(key: u32, o: u64, ts: i64) -> Rec {
    Rec {
        offset: o,
        key: Some(format!("{key:02}").into_bytes()),
        value: Some(format!("value-{o:010}").into_bytes()),
        ts,
    }
}

/// Appends one `fixed` record per `(key, ts)`, recording it in `history`.
fn append_fixed(p: &Partition, history: &mut Vec<Rec>, recs: &[(u32, i64)]) {
    for &(k, ts) in recs {
        let o = p.log_end_offset();
        p.append(&[fixed(k, o, ts)]).unwrap();
        history.push(fixed_rec(k, o, ts));
    }
}

/// The uncleanable section — the active segment, and every segment from the first one
/// holding a record younger than `min_compaction_lag_ms` — is left byte for byte as it
/// was (log and both indexes), while the segments before it are cleaned. Once the young
/// record is old enough (exactly the lag), its segment is cleaned too.
#[test]
fn uncleanable_section_is_untouched() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open(dir.path(), &clock);
    let lag: i64 = 60_000;
    let b = fixed_batch_size();
    store
        .create_topic(
            "u",
            TopicConfig::default()
                .cleanup_policy(CleanupPolicy::Compact)
                .segment_bytes(3 * b)
                .index_interval_bytes(0)
                .min_compaction_lag_ms(lag as u64),
        )
        .unwrap();
    let p = partition(&store, "u");
    let old = T - 200_000;
    let young = T - 10_000;
    let mut history = Vec::new();
    append_fixed(
        &p,
        &mut history,
        &[
            // [0,3) and [3,6): cleanable.
            (0, old),
            (1, old),
            (0, old),
            (1, old),
            (0, old),
            (2, old),
            // [6,9): holds a young record: uncleanable, and so is everything after it.
            (0, old),
            (1, young),
            (2, old),
            // [9,12): old, but after the first uncleanable segment.
            (0, old),
            (1, old),
            (2, old),
            // active [12,13).
            (0, old),
        ],
    );
    let bases: Vec<u64> = p.segments().iter().map(|s| s.base_offset()).collect();
    assert_eq!(bases, [0, 3, 6, 9, 12]);
    let untouched = segment_files(&p, 2);
    let first_cleanable = std::fs::read(p.segments()[0].log_path()).unwrap();

    let report = p.compact_now().unwrap();
    assert!(report.cleaned);
    assert_eq!(report.first_dirty_offset, 6);
    assert_eq!(
        segment_files(&p, 2),
        untouched,
        "the uncleanable section changed"
    );
    assert_ne!(
        std::fs::read(p.segments()[0].log_path()).unwrap(),
        first_cleanable,
        "[0,3) was cleaned"
    );
    let recs = read_all(&p);
    check_history(&recs, &history);
    assert_eq!(recs, cleaned(&history, 6));

    // One millisecond short of the lag: still uncleanable.
    clock.set(young + lag - 1);
    let r = p.compact_now().unwrap();
    assert!(!r.cleaned);
    assert_eq!(segment_files(&p, 2), untouched);
    // At the lag: [6,9) and [9,12) are cleaned; the active segment still is not.
    clock.set(young + lag);
    let active = segment_files(&p, p.segments().len() - 1);
    let r = p.compact_now().unwrap();
    assert!(r.cleaned);
    assert_eq!(r.first_dirty_offset, 12);
    assert_eq!(segment_files(&p, p.segments().len() - 1), active);
    let recs = read_all(&p);
    check_history(&recs, &history);
    assert_eq!(recs, cleaned(&history, 12));
    store.close().unwrap();
}

/// `compact()` (unlike `compact_now()`) skips a log whose dirty part is below
/// `min_cleanable_dirty_ratio` of its cleanable part; `max_compaction_lag_ms` forces the
/// cleaning once the oldest dirty data is older than it. The store-wide pass reports what
/// it cleaned, and leaves delete-policy topics alone.
#[test]
fn dirty_ratio_and_max_compaction_lag_decide_when_compact_cleans() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open(dir.path(), &clock);
    let max_lag: i64 = 100_000;
    let b = fixed_batch_size();
    let base = TopicConfig::default()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(3 * b);
    store
        .create_topic(
            "lagged",
            base.clone().max_compaction_lag_ms(Some(max_lag as u64)),
        )
        .unwrap();
    store.create_topic("plain", base.clone()).unwrap();
    store
        .create_topic(
            "deleting",
            base.clone()
                .cleanup_policy(CleanupPolicy::Delete)
                .retention_ms(None),
        )
        .unwrap();
    let names = ["lagged", "plain", "deleting"];
    let parts: Vec<Partition> = names.iter().map(|n| partition(&store, n)).collect();
    let mut histories = vec![Vec::new(), Vec::new(), Vec::new()];
    // 30 distinct keys (nothing to remove: the clean part stays large), then one record
    // at the clock's time that rolls them into sealed segments.
    let phase1: Vec<(u32, i64)> = (0..30)
        .map(|k| (k, T - 1_000_000))
        .chain([(30, T)])
        .collect();
    for (p, h) in parts.iter().zip(&mut histories) {
        append_fixed(p, h, &phase1);
    }
    // Everything is dirty (ratio 1): both compacted topics are cleaned.
    let report = store.compact();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.partitions_compacted, 2);
    for p in &parts[..2] {
        assert_eq!(p.compact().unwrap().first_dirty_offset, 30);
    }
    // A little dirty data (ratio 3/33), written now.
    for (p, h) in parts.iter().zip(&mut histories) {
        append_fixed(p, h, &[(0, T), (1, T), (2, T)]);
        assert_eq!(p.segments().last().unwrap().base_offset(), 33);
    }
    let files: Vec<_> = parts.iter().map(|p| segment_files(p, 0)).collect();
    for p in &parts {
        let r = p.compact().unwrap();
        assert!(!r.cleaned, "{}: {r:?}", p.name());
    }
    clock.set(T + max_lag);
    assert_eq!(
        store.compact().partitions_compacted,
        0,
        "lag not passed yet"
    );
    for (p, f) in parts.iter().zip(&files) {
        assert_eq!(&segment_files(p, 0), f, "{}", p.name());
    }

    // Past the maximum lag: the lagged topic is cleaned, the plain one still is not.
    clock.set(T + max_lag + 1);
    let report = store.compact();
    assert_eq!(report.partitions_compacted, 1);
    assert!(report.dirty_bytes_cleaned > 0);
    assert!(report.compacted_bytes_after < report.compacted_bytes_before);
    assert_eq!(parts[0].compact().unwrap().first_dirty_offset, 33);
    let r = parts[1].compact().unwrap();
    assert!(!r.cleaned);
    assert_eq!(r.first_dirty_offset, 30);
    assert_eq!(segment_files(&parts[1], 0), files[1]);
    // compact_now ignores the ratio.
    let r = parts[1].compact_now().unwrap();
    assert!(r.cleaned);
    assert_eq!(r.first_dirty_offset, 33);
    for (p, h) in parts[..2].iter().zip(&histories) {
        let recs = read_all(p);
        check_history(&recs, h);
        assert_eq!(recs, cleaned(h, 33), "{}", p.name());
    }
    assert_eq!(read_all(&parts[2]), histories[2]);
    assert_eq!(segment_files(&parts[2], 0), files[2]);
    store.close().unwrap();
}

/// Appends the same sequence to `log`: 60 keys of 6 bytes, tombstones, unkeyed records,
/// small segments.
fn build_many_keys(log: &mut Log, n: u64) {
    for i in 0..n {
        let key = format!("key-{:02}", (i * 7) % 60);
        if i % 19 == 18 {
            log.unkeyed(&format!("u{i}"));
        } else if i % 23 == 22 {
            log.tomb(&key);
        } else {
            log.put(&key, &format!("value-{i}"));
        }
        if i % 40 == 39 {
            log.roll();
        }
    }
    log.roll();
    log.put("key-00", "active");
}

/// A key map too small for the dirty range (1 KiB: about 14 keys) cleans in several
/// `compact_now()` passes, each starting at the previous pass's end (recorded in the
/// checkpoint), and ends with exactly what one pass with a big map gives.
#[test]
fn small_key_map_converges_to_one_big_pass() {
    let _shared = shared();
    let clock = ManualClock::at(T);
    let small_dir = tempfile::tempdir().unwrap();
    let big_dir = tempfile::tempdir().unwrap();
    let small = open_with_buffer(small_dir.path(), &clock, 1024);
    let big = open(big_dir.path(), &clock);
    small.create_topic("m", compacted()).unwrap();
    big.create_topic("m", compacted()).unwrap();
    let mut s = Log::new(partition(&small, "m"));
    let mut b = Log::new(partition(&big, "m"));
    build_many_keys(&mut s, 600);
    build_many_keys(&mut b, 600);
    let uncleanable = s.active_base();
    assert_eq!(uncleanable, b.active_base());

    let one = b.p.compact_now().unwrap();
    assert_eq!(one.first_dirty_offset, uncleanable);
    assert_eq!(one.keys, 60);

    let mut progress = vec![0];
    while *progress.last().unwrap() < uncleanable {
        assert!(progress.len() < 100, "no convergence: {progress:?}");
        let r = s.p.compact_now().unwrap();
        assert!(r.cleaned);
        assert!(r.keys <= 1024 / 64, "{r:?}");
        assert!(
            r.first_dirty_offset > *progress.last().unwrap(),
            "no progress: {progress:?} then {r:?}"
        );
        assert_eq!(
            checkpoint_text(small_dir.path()),
            format!("0\n1\nm 0 {}\n", r.first_dirty_offset)
        );
        progress.push(r.first_dirty_offset);
        // Every intermediate state is consistent.
        let recs = s.read();
        assert_eq!(latest_values(&recs), latest_values(&s.history));
    }
    assert!(progress.len() > 3, "expected several passes: {progress:?}");
    assert_eq!(*progress.last().unwrap(), uncleanable);
    let small_recs = s.read();
    let big_recs = b.read();
    assert_eq!(small_recs, big_recs);
    assert_eq!(small_recs, cleaned(&s.history, uncleanable));
    small.close().unwrap();
    big.close().unwrap();
}

/// A key map holding one key per pass: a tombstone whose horizon has passed must not be
/// dropped while an older value of its key survives (that would bring the deleted key
/// back).
///
/// Regression (a bug these tests found), reproduction: `cleaner_buffer_bytes(1)`, `delete_retention_ms(0)`; in one
/// segment `a=1`, `b=2`, `k=v`, tombstone `k`; roll; `compact_now()` three times. Pass 1's
/// map ends at offset 1 but rewrites the whole segment, stamping the tombstone's delete
/// horizon; pass 2's map holds only `b` (ends at 2) and rewrites the segment again: the
/// tombstone (horizon passed) is dropped, `k=v` is kept since `k` is not in the map. `k`
/// reads as `v` again. (A tombstone beyond the map's end must be kept.)
#[test]
fn small_key_map_never_resurrects_a_deleted_key() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open_with_buffer(dir.path(), &clock, 1);
    store
        .create_topic("r", compacted().delete_retention_ms(0))
        .unwrap();
    let mut log = Log::new(partition(&store, "r"));
    log.put("a", "1");
    log.put("b", "2");
    log.put("k", "v");
    log.tomb("k");
    log.roll();
    log.put("z", "active");
    for _ in 0..4 {
        log.p.compact_now().unwrap();
        let recs = log.read();
        assert_eq!(
            latest_values(&recs),
            latest_values(&log.history),
            "key k came back: {recs:?}"
        );
    }
    store.close().unwrap();
}

/// After `truncate_to` below the first dirty offset, the records written again there are
/// dirty: the next cleaning must see them (Kafka lowers the cleaner checkpoint on
/// truncation).
///
/// Regression (a bug these tests found), reproduction: compacted topic; `k=v1`, `x=1`, roll, `y=2`; `compact_now()`
/// (first dirty offset 2); `truncate_to(1)`; append `k=v2`, roll, `z=3`; `compact_now()`
/// returns `cleaned: false` (the first dirty offset stayed 2) and `k=v1` is never removed.
/// With a tombstone in place of `k=v2`, the tombstone is later dropped at its horizon and
/// `k=v1` comes back.
#[test]
fn truncation_below_the_first_dirty_offset_is_cleaned_again() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open(dir.path(), &clock);
    store.create_topic("tr", compacted()).unwrap();
    let mut log = Log::new(partition(&store, "tr"));
    log.put("k", "v1");
    log.put("x", "1");
    log.roll();
    log.put("y", "2");
    assert_eq!(log.p.compact_now().unwrap().first_dirty_offset, 2);
    log.p.truncate_to(1).unwrap();
    log.history.truncate(1);
    log.put("k", "v2");
    log.roll();
    log.put("z", "3");
    let uncleanable = log.active_base();
    log.p.compact_now().unwrap();
    assert_eq!(log.read(), cleaned(&log.history, uncleanable));
    store.close().unwrap();
}

/// Small cleaned segments are merged with their neighbours on later passes (up to
/// `segment_bytes`), and the merged segments (with gaps) read back the same after a
/// clean reopen and after a crash.
#[test]
fn small_cleaned_segments_are_merged_on_later_passes() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open(dir.path(), &clock);
    store
        .create_topic("g", compacted().segment_bytes(1024))
        .unwrap();
    let mut log = Log::new(partition(&store, "g"));
    let pad = "x".repeat(40);
    for i in 0..200 {
        log.put(&format!("k{}", i % 4), &format!("{i}-{pad}"));
    }
    log.roll();
    log.put("k0", "active");
    let n0 = log.p.segments().len();
    assert!(n0 > 15, "{n0}");
    let first = log.p.compact_now().unwrap();
    let n1 = log.p.segments().len();
    assert_eq!(first.segments_before, n0 - 1);
    assert_eq!(n1, first.segments_after + 1);
    assert_eq!(log.read(), cleaned(&log.history, log.active_base()));

    for i in 0..30 {
        log.put(&format!("k{}", i % 4), &format!("again-{i}-{pad}"));
    }
    log.roll();
    log.put("k1", "active");
    let before = log.p.segments().len();
    let second = log.p.compact_now().unwrap();
    let n2 = log.p.segments().len();
    assert!(second.segments_after < second.segments_before, "{second:?}");
    assert!(
        n2 < n1 && 3 * n2 < before,
        "{n1} then {before} segments became {n2}: {second:?}"
    );
    let expected = cleaned(&log.history, log.active_base());
    assert_eq!(log.read(), expected);
    check_reads_at_every_offset(&log.p, &expected);

    store.close().unwrap();
    let store = open(dir.path(), &clock);
    log.p = partition(&store, "g");
    assert_eq!(log.read(), expected);
    log.put("k2", "after-reopen");
    store.simulate_crash();
    let store = open(dir.path(), &clock);
    log.p = partition(&store, "g");
    let mut expected = expected;
    expected.push(log.history.last().unwrap().clone());
    assert_eq!(log.read(), expected);
    check_reads_at_every_offset(&log.p, &expected);
    store.close().unwrap();
}

/// Checks a log that may be anywhere between `old` (before a cleaning) and `new` (after
/// it), segment group by segment group: every record is the one appended at its offset,
/// offsets increase, the records are a subset of the old and a superset of the new, every
/// key has its latest value, and a read at any offset agrees.
fn check_old_or_new(p: &Partition, history: &[Rec], old: &[Rec], new: &[Rec], at: &str) {
    let recs = read_all(p);
    check_history(&recs, history);
    let got = offsets(&recs);
    assert!(
        offsets(new).is_subset(&got),
        "{at}: a kept record is missing"
    );
    assert!(got.is_subset(&offsets(old)), "{at}: a record came back");
    assert_eq!(latest_values(&recs), latest_values(history), "{at}");
    assert_eq!(p.log_end_offset(), history.len() as u64, "{at}");
    check_reads_at_every_offset(p, &recs);
}

/// A crash at each step of the swap (the 1st, 2nd, 3rd rename; the 1st to 6th fsync; the
/// first writes and creates of a `compact_now()`), with and without a recovery-point
/// checkpoint covering the log: the live partition and the reopened one read as the old
/// or the new contents, no temporary file survives the reopen, and cleaning again gives
/// the new contents.
#[test]
fn crash_at_each_step_of_the_swap_recovers() {
    let _exclusive = exclusive();
    let steps = [
        (FaultOp::Rename, 1),
        (FaultOp::Rename, 2),
        (FaultOp::Rename, 3),
        (FaultOp::Fsync, 1),
        (FaultOp::Fsync, 2),
        (FaultOp::Fsync, 3),
        (FaultOp::Fsync, 4),
        (FaultOp::Fsync, 5),
        (FaultOp::Fsync, 6),
        (FaultOp::Write, 1),
        (FaultOp::Create, 1),
        (FaultOp::Create, 2),
    ];
    for checkpointed in [false, true] {
        for (op, nth) in steps {
            let at = format!("{op:?} #{nth}, checkpointed: {checkpointed}");
            let dir = tempfile::tempdir().unwrap();
            let clock = ManualClock::at(T);
            let store = open(dir.path(), &clock);
            store
                .create_topic("s", compacted().segment_bytes(1024))
                .unwrap();
            let mut log = Log::new(partition(&store, "s"));
            for i in 0..120 {
                match i % 13 {
                    12 => log.tomb(&format!("k{}", i % 8)),
                    11 => log.unkeyed("u"),
                    _ => log.put(
                        &format!("k{}", i % 8),
                        &format!("value-{i}-{}", "y".repeat(30)),
                    ),
                }
            }
            log.roll();
            log.put("k0", "active");
            assert!(log.p.segments().len() > 4);
            log.p.flush().unwrap();
            if checkpointed {
                store.flush().unwrap();
            }
            let old = log.read();
            let new = cleaned(&log.history, log.active_base());

            faults::fail_nth(op, nth, 5);
            let result = log.p.compact_now();
            faults::clear();
            match &result {
                Ok(r) => assert!(r.cleaned, "{at}"),
                Err(e) => assert!(
                    matches!(e, Error::Io { source, .. } if source.raw_os_error() == Some(5)),
                    "{at}: {e:?}"
                ),
            }
            check_old_or_new(&log.p, &log.history, &old, &new, &at);
            if result.is_ok() {
                assert_eq!(log.read(), new, "{at}");
            }

            store.simulate_crash();
            let store = open(dir.path(), &clock);
            log.p = partition(&store, "s");
            assert_eq!(leftovers(log.p.dir()), Vec::<String>::new(), "{at}");
            check_old_or_new(&log.p, &log.history, &old, &new, &at);
            // Cleaning again ends at the new contents; appends go on.
            log.p.compact_now().unwrap();
            assert_eq!(log.read(), new, "{at}");
            log.put("k1", "after");
            assert_eq!(latest_values(&log.read()), latest_values(&log.history));
            store.close().unwrap();
        }
    }
}

/// Builds a log of one-record segments (each batch rolls) over four keys, then closes.
/// Returns the history and the active segment's base offset.
fn small_segments_log(dir: &Path, clock: &Arc<ManualClock>) -> (Vec<Rec>, u64) {
    let store = open(dir, clock);
    store
        .create_topic("w", compacted().segment_bytes(4096))
        .unwrap();
    let mut log = Log::new(partition(&store, "w"));
    for i in 0..12 {
        log.roll();
        log.put(&format!("k{}", i % 4), &format!("v{i}"));
    }
    log.roll();
    log.put("k0", "active");
    let active = log.active_base();
    assert_eq!(active, 12);
    assert_eq!(log.p.segments().len(), 13);
    store.close().unwrap();
    (log.history, active)
}

/// In a copy of `dir`, cleans the log once and returns the first cleaned segment's `.log`
/// bytes, the base offset of the segment after it, and the copy's records.
fn cleaned_copy(dir: &Path, clock: &Arc<ManualClock>) -> (Vec<u8>, u64, Vec<Rec>) {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir, copy.path());
    std::fs::remove_file(copy.path().join(".lock")).ok();
    let store = open(copy.path(), clock);
    let p = partition(&store, "w");
    let r = p.compact_now().unwrap();
    assert!(r.cleaned);
    let segs = p.segments();
    let bytes = std::fs::read(segs[0].log_path()).unwrap();
    let next = segs[1].base_offset();
    let recs = read_all(&p);
    store.close().unwrap();
    (bytes, next, recs)
}

/// A `.cleaned` file left by a pass that did not commit is removed at open and ignored:
/// the log reads as before (after a clean shutdown and after a crash).
#[test]
fn leftover_cleaned_file_is_ignored() {
    let _shared = shared();
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(T);
        let (history, _) = small_segments_log(dir.path(), &clock);
        let (bytes, _, _) = cleaned_copy(dir.path(), &clock);
        let pdir = dir.path().join("w-0");
        std::fs::write(pdir.join("00000000000000000000.log.cleaned"), &bytes).unwrap();
        std::fs::write(pdir.join("00000000000000000004.log.cleaned"), b"partial").unwrap();
        if !clean {
            std::fs::remove_file(dir.path().join(CLEAN_SHUTDOWN_FILE)).unwrap();
        }
        let store = open(dir.path(), &clock);
        let p = partition(&store, "w");
        assert_eq!(leftovers(&pdir), Vec::<String>::new());
        let recs = read_all(&p);
        assert_eq!(recs, history, "clean: {clean}");
        assert_eq!(p.segments().len(), 13);
        check_reads_at_every_offset(&p, &recs);
        store.close().unwrap();
    }
}

/// A committed swap (`<base>.log.swap` present) is completed at open: the old segments it
/// covers are deleted (whether all, some or none of them were already) and the swap file
/// takes their place; index `.swap` files of an uncommitted swap are removed.
#[test]
fn committed_swap_file_is_completed_at_open() {
    let _shared = shared();
    // (segments already deleted before the crash, clean shutdown before it)
    for (already_deleted, clean) in [(0, true), (0, false), (5, true), (12, false)] {
        let at = format!("{already_deleted} deleted, clean: {clean}");
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(T);
        let (history, active) = small_segments_log(dir.path(), &clock);
        let (bytes, next, copy_recs) = cleaned_copy(dir.path(), &clock);
        assert_eq!(
            next, active,
            "the copy merged every sealed segment into one"
        );
        let pdir = dir.path().join("w-0");
        for base in 0..already_deleted {
            for ext in [".log", ".index", ".timeindex"] {
                std::fs::remove_file(pdir.join(seglog::segment::file_name(base, ext))).unwrap();
            }
        }
        std::fs::write(pdir.join("00000000000000000000.log.swap"), &bytes).unwrap();
        // An uncommitted swap's index files.
        std::fs::write(pdir.join("00000000000000000012.index.swap"), [0u8; 8]).unwrap();
        if !clean {
            std::fs::remove_file(dir.path().join(CLEAN_SHUTDOWN_FILE)).unwrap();
        }
        let store = open(dir.path(), &clock);
        let p = partition(&store, "w");
        assert_eq!(leftovers(&pdir), Vec::<String>::new(), "{at}");
        let bases: Vec<u64> = p.segments().iter().map(|s| s.base_offset()).collect();
        assert_eq!(bases, [0, 12], "{at}");
        let recs = read_all(&p);
        check_history(&recs, &history);
        assert_eq!(recs, copy_recs, "{at}");
        assert_eq!(recs, cleaned(&history, active), "{at}");
        check_reads_at_every_offset(&p, &recs);
        assert_eq!(p.log_end_offset(), 13);
        store.close().unwrap();
    }
}

fn key_of(o: u64) -> Option<String> {
    (o % 11 != 10).then(|| format!("k{}", o % 13))
}

fn value_of(o: u64) -> Option<String> {
    (o % 17 != 16).then(|| format!("value-{o}-{}", "z".repeat((o % 30) as usize)))
}

fn record_of(o: u64) -> Record {
    Record {
        key: key_of(o).map(String::into_bytes),
        value: value_of(o).map(String::into_bytes),
        headers: Vec::new(),
        timestamp: Some(TS0 + o as i64),
    }
}

/// Readers iterating (in other threads) while a writer appends and a cleaner compacts
/// over and over see consistent data: every record is the one appended at its offset,
/// in increasing order; no read fails. The store is reopened first, so the sealed segments
/// load their indexes lazily while the cleaner replaces them.
#[test]
fn reader_during_compaction_sees_consistent_data() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open(dir.path(), &clock);
    store
        .create_topic("rc", compacted().segment_bytes(1024))
        .unwrap();
    const TOTAL: u64 = 1500;
    const FIRST: u64 = 700;
    let p = partition(&store, "rc");
    for o in 0..FIRST {
        p.append(&[record_of(o)]).unwrap();
    }
    // Reopened after a clean shutdown, the sealed segments load their indexes lazily,
    // racing the cleaner that replaces them.
    store.close().unwrap();
    let store = open(dir.path(), &clock);
    let p = partition(&store, "rc");
    let done = Arc::new(AtomicBool::new(false));
    let expect = |r: &seglog::RecordView<'_>| {
        let o = r.offset();
        assert_eq!(
            r.key(),
            key_of(o).as_deref().map(str::as_bytes),
            "key at {o}"
        );
        assert_eq!(
            r.value(),
            value_of(o).as_deref().map(str::as_bytes),
            "value at {o}"
        );
        assert_eq!(r.timestamp(), TS0 + o as i64, "timestamp at {o}");
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let p = p.clone();
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut scans = 0;
                loop {
                    let finished = done.load(Ordering::Acquire);
                    let end = p.log_end_offset();
                    let mut next = p.log_start_offset();
                    while next < end {
                        let f = p
                            .read(next, 1500)
                            .unwrap_or_else(|e| panic!("read at {next}: {e}"));
                        for r in f.records() {
                            assert!(r.offset() >= next, "{} after {next}", r.offset());
                            expect(&r);
                            next = r.offset() + 1;
                        }
                        assert!(f.next_offset() >= next && f.next_offset() > f.offset());
                        next = f.next_offset();
                    }
                    scans += 1;
                    if finished {
                        return scans;
                    }
                }
            })
        })
        .collect();
    let cleaner = {
        let p = p.clone();
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut passes = 0;
            while !done.load(Ordering::Acquire) {
                if p.compact_now().unwrap().cleaned {
                    passes += 1;
                }
                std::thread::yield_now();
            }
            passes
        })
    };
    for o in FIRST..TOTAL {
        assert_eq!(p.append(&[record_of(o)]).unwrap().base_offset, o);
    }
    done.store(true, Ordering::Release);
    let passes = cleaner.join().unwrap();
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert!(passes > 0);
    // Finally: exactly the cleaned contents.
    p.compact_now().unwrap();
    let history: Vec<Rec> = (0..TOTAL)
        .map(|o| Rec {
            offset: o,
            key: key_of(o).map(String::into_bytes),
            value: value_of(o).map(String::into_bytes),
            ts: TS0 + o as i64,
        })
        .collect();
    let active = p.segments().last().unwrap().base_offset();
    let recs = read_all(&p);
    check_history(&recs, &history);
    assert_eq!(recs, cleaned(&history, active));
    store.close().unwrap();
}

/// The background maintenance thread compacts on its own: a compacted topic whose dirty
/// ratio is over the minimum is cleaned without any call (the checkpoint moves).
#[test]
fn background_maintenance_compacts() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    // The log is written with maintenance off: a background pass during the writes would
    // clean up to the active segment of that moment, and the rest may never be dirty
    // enough for another (seen on a loaded machine). The reopened store's thread then
    // finds the whole log to clean.
    let store = open(dir.path(), &clock);
    store.create_topic("bg", compacted()).unwrap();
    let mut log = Log::new(partition(&store, "bg"));
    build_mixed(&mut log, 80);
    let uncleanable = log.active_base();
    store.close().unwrap();
    let store = open_maintained(dir.path(), &clock);
    log.p = partition(&store, "bg");
    let want = format!("0\n1\nbg 0 {uncleanable}\n");
    wait_for(
        "the background thread to compact",
        Duration::from_secs(20),
        || {
            std::fs::read_to_string(dir.path().join(CLEANER_FILE)).ok() == Some(want.clone())
                && store.last_maintenance().is_some()
        },
    );
    assert_eq!(log.read(), cleaned(&log.history, uncleanable));
    let last = store.last_maintenance().unwrap();
    assert!(last.failures.is_empty(), "{:?}", last.failures);
    store.close().unwrap();
}

#[derive(Debug, Clone)]
enum Op {
    /// One batch: (key index or unkeyed, tombstone).
    Append(Vec<(Option<u8>, bool)>),
    Roll,
    Compact,
    /// Moves the clock (tombstone horizons pass).
    Advance(u16),
    /// Close and reopen the store (or crash it, when true).
    Reopen(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => prop::collection::vec((prop::option::weighted(0.85, 0u8..6), prop::bool::weighted(0.15)), 1..4)
            .prop_map(Op::Append),
        1 => Just(Op::Roll),
        3 => Just(Op::Compact),
        1 => (0u16..1500).prop_map(Op::Advance),
        1 => any::<bool>().prop_map(Op::Reopen),
    ]
}

/// Runs `ops` against a compacted topic (small segments) and a `HashMap` model, checking after every compaction and at the end that each key's
/// latest value is the model's (tombstone = absent), that offsets only increase and that
/// each record is the one appended at its offset.
fn run_model(ops: &[Op], buffer: usize, delete_retention: u64) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let mut store = Some(open_with_buffer(dir.path(), &clock, buffer));
    let cfg = compacted()
        .segment_bytes(256)
        .delete_retention_ms(delete_retention);
    store.as_ref().unwrap().create_topic("p", cfg).unwrap();
    let mut log = Log::new(partition(store.as_ref().unwrap(), "p"));
    let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let check =
        |log: &Log, model: &HashMap<Vec<u8>, Vec<u8>>, at: usize| -> Result<(), TestCaseError> {
            let recs = read_all(&log.p);
            check_history(&recs, &log.history);
            prop_assert_eq!(&latest_values(&recs), model, "after op {}", at);
            prop_assert_eq!(log.p.log_end_offset(), log.history.len() as u64);
            Ok(())
        };
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Append(recs) => {
                let n = log.history.len();
                let owned: Vec<(Option<String>, Option<String>)> = recs
                    .iter()
                    .enumerate()
                    .map(|(j, (k, tomb))| {
                        let key = k.map(|k| format!("key{k}"));
                        let value = (!tomb || key.is_none()).then(|| format!("v{}", n + j));
                        (key, value)
                    })
                    .collect();
                let borrowed: Vec<(Option<&str>, Option<&str>)> = owned
                    .iter()
                    .map(|(k, v)| (k.as_deref(), v.as_deref()))
                    .collect();
                log.append(&borrowed);
                for (k, v) in owned {
                    match (k, v) {
                        (Some(k), Some(v)) => {
                            model.insert(k.into_bytes(), v.into_bytes());
                        }
                        (Some(k), None) => {
                            model.remove(k.as_bytes());
                        }
                        (None, _) => {}
                    }
                }
            }
            Op::Roll => log.roll(),
            Op::Compact => {
                log.p.compact_now().unwrap();
                check(&log, &model, i)?;
            }
            Op::Advance(ms) => clock.advance(*ms as i64),
            Op::Reopen(crash) => {
                let s = store.take().unwrap();
                if *crash {
                    s.simulate_crash();
                } else {
                    s.close().unwrap();
                }
                store = Some(open_with_buffer(dir.path(), &clock, buffer));
                log.p = partition(store.as_ref().unwrap(), "p");
            }
        }
        // Timestamps follow the clock, a little behind.
        log.ts = log.ts.max(clock.now_ms() - 100_000_000);
    }
    log.p.compact_now().unwrap();
    check(&log, &model, ops.len())?;
    store.take().unwrap().close().unwrap();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random keyed appends (six keys, tombstones, unkeyed records), rolls, compactions,
    /// clock moves and reopens: the log always gives the model's latest value per key.
    #[test]
    fn compaction_matches_a_hashmap_model(ops in prop::collection::vec(op(), 1..60)) {
        let _shared = shared();
        run_model(&ops, 1 << 20, 1000)?;
    }

    /// The same with a key map holding one key per pass (every pass stops early), and
    /// tombstones that stay (see `small_key_map_never_resurrects_a_deleted_key` for what
    /// happens when their horizon passes).
    #[test]
    fn compaction_with_a_one_key_map_matches_a_hashmap_model(
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let _shared = shared();
        run_model(&ops, 100, 1 << 40)?;
    }
}

/// In a log-append-time topic, compaction (including stamping a tombstone's delete
/// horizon into its batch) keeps every record's append time.
#[test]
fn log_append_times_survive_compaction() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open(dir.path(), &clock);
    let p = create(
        &store,
        "lat",
        compacted().timestamp_type(seglog::TimestampType::LogAppendTime),
    );
    let appended: [(&str, Option<&str>); 4] = [
        ("a", Some("1")),
        ("b", Some("2")),
        ("a", None),
        ("c", Some("3")),
    ];
    for (i, (k, v)) in appended.iter().enumerate() {
        clock.set(T + 10 * i as i64);
        p.append(&[Record {
            key: Some(k.as_bytes().to_vec()),
            value: v.map(|v| v.as_bytes().to_vec()),
            headers: Vec::new(),
            timestamp: Some(0),
        }])
        .unwrap();
    }
    // Roll on time: the next batch is more than `segment_ms` younger than the first.
    clock.set(T + SEGMENT_MS as i64 + 100);
    p.append(&[Record::new("active").with_key("z")]).unwrap();
    assert_eq!(p.segments().len(), 2);
    clock.set(T + 5_000);
    assert!(p.compact_now().unwrap().cleaned);
    let got: Vec<(u64, i64, bool)> = read_all(&p)
        .iter()
        .map(|r| (r.offset, r.ts, r.value.is_none()))
        .collect();
    assert_eq!(
        got,
        [
            (1, T + 10, false),
            (2, T + 20, true),
            (3, T + 30, false),
            (4, T + SEGMENT_MS as i64 + 100, false)
        ]
    );
    store.close().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// A one-key map with tombstones whose horizon (1 s) passes: found the bug reproduced
    /// by `small_key_map_never_resurrects_a_deleted_key` (a deleted key comes back) within
    /// a few hundred cases (fixed: expired tombstones past the map's end are kept).
    #[test]
    fn compaction_with_a_one_key_map_and_expiring_tombstones_matches_a_hashmap_model(
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let _shared = shared();
        run_model(&ops, 100, 1000)?;
    }
}

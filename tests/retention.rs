//! Retention (Kafka's `deleteOldSegments`): by size, by time (on each segment's largest
//! timestamp), by log start offset (`delete_records_before`, Kafka's DeleteRecords); the
//! timestamp skew bound that keeps far-future timestamps from pinning segments; readers
//! racing retention; the store-wide pass and the background maintenance thread.
//!
//! Time comes from a manual clock and background maintenance is off unless a test turns
//! it on, so every test is deterministic. Faults are planned process-wide: the tests that
//! inject them hold [`FAULTS`] exclusively, every other test holds it shared.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::{
    create, exclusive, open, open_maintained, partition, read_dense, shared, store_config,
    wait_for, ManualClock,
};
use seglog::faults::{self, FaultOp};
use seglog::{
    CleanupPolicy, Error, Partition, Record, Store, TimestampType, TopicConfig, LOG_START_FILE,
};

/// The store clock's start: a realistic epoch time.
const T: i64 = 1_700_000_000_000;
/// `retention_ms` of the time-retention tests.
const R: i64 = 10_000;

/// The value stored at `offset`: fixed length, so every one-record batch has one size.
fn value(offset: u64) -> Vec<u8> {
    let mut v = format!("value-{offset:010}-").into_bytes();
    v.resize(64, b'.');
    v
}

/// The size of a one-record batch holding `value(_)` (measured once).
fn batch_size() -> u64 {
    static SIZE: OnceLock<u64> = OnceLock::new();
    *SIZE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(dir.path(), store_config(&ManualClock::at(T))).unwrap();
        let p = create(&store, "probe", TopicConfig::default());
        let a = p
            .append(&[Record::new(value(0)).with_timestamp(T)])
            .unwrap();
        let b = p
            .append(&[Record::new(value(1_000_000)).with_timestamp(T - 5 * R)])
            .unwrap();
        assert_eq!(
            a.batch_bytes, b.batch_bytes,
            "batch size depends on the offset"
        );
        a.batch_bytes as u64
    })
}

/// A delete-policy topic whose segments hold exactly three one-record batches, without
/// time retention (tests turn on what they test).
fn three_per_segment() -> TopicConfig {
    TopicConfig::default()
        .segment_bytes(3 * batch_size())
        .retention_ms(None)
}

/// Appends one one-record batch per offset from the log end offset on, `n` in all, the
/// record at offset `o` having timestamp `ts(o)`.
fn append_n(p: &Partition, n: u64, ts: impl Fn(u64) -> i64) {
    for _ in 0..n {
        let o = p.log_end_offset();
        let info = p
            .append(&[Record::new(value(o)).with_timestamp(ts(o))])
            .unwrap();
        assert_eq!(info.base_offset, o);
        assert_eq!(info.batch_bytes as u64, batch_size());
    }
}

fn bases(p: &Partition) -> Vec<u64> {
    p.segments().iter().map(|s| s.base_offset()).collect()
}

fn sizes(p: &Partition) -> Vec<u64> {
    p.segments().iter().map(|s| s.size()).collect()
}

fn is_out_of_range<T: std::fmt::Debug>(r: seglog::Result<T>, at: u64) -> bool {
    match r {
        Err(Error::OffsetOutOfRange { offset, .. }) => offset == at,
        other => panic!("reading {at}: expected OffsetOutOfRange, got {other:?}"),
    }
}

/// Reads every record from the log start to the log end, checking each against what was
/// appended (dense offsets, `value(offset)`), and returns the offsets read.
fn read_all(p: &Partition) -> Vec<u64> {
    read_dense(p, 4096, "a delete-policy log", |r| {
        assert_eq!(r.value.as_deref().unwrap(), &value(r.offset)[..]);
        r.offset
    })
}

/// The first record a read at `offset` returns.
fn first_at(p: &Partition, offset: u64) -> u64 {
    let f = p.read(offset, 1).unwrap();
    let first = f.records().next().expect("a record").offset();
    first
}

/// Kafka's size rule: the oldest segments go, one at a time, while the log without each
/// still holds at least `limit` bytes; an empty active segment never goes.
fn expected_size_deletions(sizes: &[u64], limit: Option<u64>) -> usize {
    let Some(limit) = limit else { return 0 };
    let mut remaining: u64 = sizes.iter().sum();
    let mut n = 0;
    for (i, &s) in sizes.iter().enumerate() {
        if (i + 1 == sizes.len() && s == 0) || remaining - s < limit {
            break;
        }
        remaining -= s;
        n += 1;
    }
    n
}

/// Size retention deletes exactly the oldest segments the log can do without while
/// keeping `retention_bytes`, and none that would take it under the limit: checked at
/// every boundary (limit equal to what would remain, one byte more, one byte less).
#[test]
fn size_retention_deletes_exactly_the_segments_over_the_limit() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open(dir.path(), &clock);
    let b = batch_size();
    let total = 10 * b;
    // Segments [0,3) [3,6) [6,9) and the active [9,10): 3b, 3b, 3b, b.
    let cases: [(Option<u64>, usize); 13] = [
        (None, 0),
        (Some(total + 1), 0),
        (Some(total), 0),
        (Some(total - 1), 0),
        (Some(7 * b + 1), 0),
        (Some(7 * b), 1),
        (Some(7 * b - 1), 1),
        (Some(4 * b), 2),
        (Some(4 * b - 1), 2),
        (Some(b), 3),
        (Some(b - 1), 3),
        (Some(1), 3),
        (Some(0), 4),
    ];
    for (i, (limit, deleted)) in cases.into_iter().enumerate() {
        let name = format!("size-{i}");
        store
            .create_topic(&name, three_per_segment().retention_bytes(limit))
            .unwrap();
        let p = partition(&store, &name);
        append_n(&p, 10, |_| T);
        let before = sizes(&p);
        assert_eq!(before, [3 * b, 3 * b, 3 * b, b]);
        assert_eq!(bases(&p), [0, 3, 6, 9]);
        assert_eq!(
            expected_size_deletions(&before, limit),
            deleted,
            "{limit:?}"
        );

        let report = p.enforce_retention().unwrap();
        assert_eq!(report.segments_deleted, deleted, "limit {limit:?}");
        assert_eq!(
            report.bytes_deleted,
            before[..deleted].iter().sum::<u64>(),
            "limit {limit:?}"
        );
        assert_eq!(p.log_end_offset(), 10);
        let start = [0, 3, 6, 9, 10][deleted];
        assert_eq!(p.log_start_offset(), start, "limit {limit:?}");
        assert_eq!(report.log_start_offset, start);
        if deleted < 4 {
            assert_eq!(sizes(&p), before[deleted..]);
            let kept: u64 = sizes(&p).iter().sum();
            if let Some(limit) = limit {
                // Nothing deleted that the limit needed; the next segment to go would take
                // the log under it.
                assert!(deleted == 0 || kept >= limit, "{limit}: {kept}");
                assert!(kept - sizes(&p)[0] < limit, "{limit}: {kept}");
            }
        } else {
            assert_eq!(bases(&p), [10]);
            assert_eq!(sizes(&p), [0]);
        }
        assert_eq!(read_all(&p), (start..10).collect::<Vec<_>>());
        if start > 0 {
            assert!(is_out_of_range(p.read(start - 1, 1 << 16), start - 1));
            assert!(is_out_of_range(p.read(0, 1 << 16), 0));
        }
        // Nothing more to do: a second pass deletes nothing.
        assert_eq!(p.enforce_retention().unwrap().segments_deleted, 0);
    }
    store.close().unwrap();
}

/// Time retention looks at a segment's largest timestamp, not its first: a segment whose
/// first records are long expired stays while any record in it is young. Deletion stops at
/// the first segment kept, even when an older-looking one follows it. The largest
/// timestamp also survives a reopen (segments opened lazily after a clean shutdown).
#[test]
fn time_retention_uses_each_segments_largest_timestamp() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open(dir.path(), &clock);
    store
        .create_topic("t", three_per_segment().retention_ms(Some(R as u64)))
        .unwrap();
    let p = partition(&store, "t");
    let old = T - 3 * R;
    let young = T - R / 2;
    // [0,3): old old old | [3,6): old young old | [6,9): old old old | active [9,10): T
    append_n(&p, 10, |o| match o {
        4 => young,
        9 => T,
        _ => old,
    });
    assert_eq!(bases(&p), [0, 3, 6, 9]);

    let report = p.enforce_retention().unwrap();
    assert_eq!(report.segments_deleted, 1, "only [0,3) is wholly expired");
    assert_eq!(report.bytes_deleted, 3 * batch_size());
    assert_eq!(p.log_start_offset(), 3);
    assert_eq!(bases(&p), [3, 6, 9]);
    assert_eq!(read_all(&p), (3..10).collect::<Vec<_>>());
    assert!(is_out_of_range(p.read(2, 1 << 16), 2));

    // Reopen: sealed segments come back lazily; their largest timestamps must too.
    store.close().unwrap();
    let store = open(dir.path(), &clock);
    let p = partition(&store, "t");
    assert_eq!(p.log_start_offset(), 3);

    // Exactly `retention_ms` after the young record: not more than it, so kept.
    clock.set(young + R);
    assert_eq!(p.enforce_retention().unwrap().segments_deleted, 0);
    assert_eq!(bases(&p), [3, 6, 9]);

    // One millisecond later, [3,6) goes and with it [6,9); the active segment (at T) stays.
    clock.set(young + R + 1);
    let report = p.enforce_retention().unwrap();
    assert_eq!(report.segments_deleted, 2);
    assert_eq!(report.log_start_offset, 9);
    assert_eq!(bases(&p), [9]);
    assert_eq!(read_all(&p), [9]);
    assert_eq!(p.log_end_offset(), 10);
    store.close().unwrap();
}

/// A segment without record timestamps (all `-1`, Kafka's "no timestamp") ages by its
/// `.log` file's modification time (Kafka's `LogSegment.largestTimestamp`).
#[test]
fn time_retention_without_timestamps_uses_the_file_time() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let clock = ManualClock::at(wall);
    let store = open(dir.path(), &clock);
    store
        .create_topic("nt", three_per_segment().retention_ms(Some(R as u64)))
        .unwrap();
    let p = partition(&store, "nt");
    // The active segment's record is 50 minutes ahead (within the skew bound): it stays.
    append_n(&p, 4, |o| if o < 3 { -1 } else { wall + 3_000_000 });
    assert_eq!(bases(&p), [0, 3]);
    assert_eq!(p.segments()[0].max_timestamp().unwrap(), -1);
    // Written just now: not expired.
    assert_eq!(p.enforce_retention().unwrap().segments_deleted, 0);
    // A minute past the retention time after the file was written: expired.
    clock.set(wall + R + 60_000);
    let report = p.enforce_retention().unwrap();
    assert_eq!(report.segments_deleted, 1, "{report:?}");
    assert_eq!(p.log_start_offset(), 3);
    assert_eq!(bases(&p), [3]);
    store.close().unwrap();
}

/// When every segment has expired, all of them go: one new empty active segment remains
/// at the log end offset, which does not change; the log start offset equals it. This
/// survives a clean reopen and a crash, and appends continue at the same offset.
#[test]
fn all_expired_leaves_one_empty_active_segment() {
    let _shared = shared();
    for crash in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(T);
        let store = open(dir.path(), &clock);
        store
            .create_topic("t", three_per_segment().retention_ms(Some(R as u64)))
            .unwrap();
        let p = partition(&store, "t");
        append_n(&p, 10, |_| T - 2 * R);
        p.flush().unwrap();
        let report = p.enforce_retention().unwrap();
        assert_eq!(report.segments_deleted, 4);
        assert_eq!(report.bytes_deleted, 10 * batch_size());
        assert_eq!(report.log_start_offset, 10);
        let check = |p: &Partition| {
            assert_eq!(bases(p), [10]);
            assert_eq!(sizes(p), [0]);
            assert_eq!(p.log_end_offset(), 10);
            assert_eq!(p.log_start_offset(), 10);
            assert!(p.read(10, 1 << 16).unwrap().is_empty());
            assert!(is_out_of_range(p.read(9, 1 << 16), 9));
            assert!(is_out_of_range(p.read(0, 1 << 16), 0));
            assert_eq!(p.offset_for_timestamp(0).unwrap(), None);
        };
        check(&p);
        // An empty active segment is never deleted.
        assert_eq!(p.enforce_retention().unwrap().segments_deleted, 0);
        check(&p);
        let logs: Vec<_> = std::fs::read_dir(p.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".log"))
            .collect();
        assert_eq!(logs, ["00000000000000000010.log"]);

        if crash {
            store.simulate_crash();
        } else {
            store.close().unwrap();
        }
        let store = open(dir.path(), &clock);
        let p = partition(&store, "t");
        check(&p);
        let info = p
            .append(&[Record::new(value(10)).with_timestamp(T)])
            .unwrap();
        assert_eq!(info.base_offset, 10);
        assert_eq!(read_all(&p), [10]);
        store.close().unwrap();
    }
}

/// A compact-only topic ignores time and size retention (however expired and however
/// large) but honours the log start offset: `delete_records_before` raises it and deletes
/// the segments wholly below it. A `compact,delete` topic applies both.
#[test]
fn compact_only_topics_ignore_time_and_size_but_honour_log_start() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open(dir.path(), &clock);
    let strict = three_per_segment()
        .retention_ms(Some(1))
        .retention_bytes(Some(0));
    store
        .create_topic(
            "compact",
            strict.clone().cleanup_policy(CleanupPolicy::Compact),
        )
        .unwrap();
    store
        .create_topic(
            "both",
            strict.clone().cleanup_policy(CleanupPolicy::CompactDelete),
        )
        .unwrap();
    let c = partition(&store, "compact");
    let both = partition(&store, "both");
    append_n(&c, 10, |_| T - 100 * R);
    append_n(&both, 10, |_| T - 100 * R);

    let report = c.enforce_retention().unwrap();
    assert_eq!(report.segments_deleted, 0);
    assert_eq!(report.bytes_deleted, 0);
    assert_eq!(bases(&c), [0, 3, 6, 9]);
    assert_eq!(read_all(&c), (0..10).collect::<Vec<_>>());

    // The store-wide pass: only the compact,delete topic loses segments.
    let report = store.enforce_retention();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.segments_deleted, 4);
    assert_eq!(both.log_start_offset(), 10);
    assert_eq!(bases(&c), [0, 3, 6, 9]);

    // The log start offset applies to every policy.
    assert_eq!(c.delete_records_before(4).unwrap(), 4);
    assert_eq!(c.log_start_offset(), 4);
    assert_eq!(bases(&c), [3, 6, 9], "[0,3) lies wholly below 4");
    assert!(is_out_of_range(c.read(3, 1 << 16), 3));
    assert_eq!(first_at(&c, 4), 4);
    assert_eq!(read_all(&c), (4..10).collect::<Vec<_>>());
    // Still no time or size retention afterwards.
    assert_eq!(c.enforce_retention().unwrap().segments_deleted, 0);
    assert_eq!(bases(&c), [3, 6, 9]);
    store.close().unwrap();
}

/// `delete_records_before`: reads below the new log start fail with `OffsetOutOfRange`,
/// segments wholly below it are deleted (a straddling one stays), a lower offset changes
/// nothing, one past the log end is refused, and the log end offset itself empties the log.
#[test]
fn delete_records_before_hides_lower_offsets_and_deletes_covered_segments() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open(dir.path(), &clock);
    store.create_topic("d", three_per_segment()).unwrap();
    let p = partition(&store, "d");
    append_n(&p, 10, |o| T - 1000 + o as i64);

    // Exactly at a segment boundary: [0,3) goes, [3,6) stays whole.
    assert_eq!(p.delete_records_before(3).unwrap(), 3);
    assert_eq!(bases(&p), [3, 6, 9]);
    // Inside a segment: [3,6) goes, [6,9) stays but 6 is no longer readable.
    assert_eq!(p.delete_records_before(7).unwrap(), 7);
    assert_eq!(p.log_start_offset(), 7);
    assert_eq!(bases(&p), [6, 9]);
    for below in [0, 3, 5, 6] {
        let r = p.read(below, 1 << 16);
        assert!(
            matches!(&r, Err(Error::OffsetOutOfRange { offset, log_start: 7, log_end: 10, .. }) if *offset == below),
            "{r:?}"
        );
    }
    assert_eq!(first_at(&p, 7), 7);
    assert_eq!(read_all(&p), [7, 8, 9]);
    let found = p.offset_for_timestamp(0).unwrap().unwrap();
    assert_eq!(
        found.offset, 7,
        "lookups by time start at the log start offset"
    );

    // Lower than the log start: nothing changes.
    assert_eq!(p.delete_records_before(5).unwrap(), 7);
    assert_eq!(p.delete_records_before(7).unwrap(), 7);
    assert_eq!(bases(&p), [6, 9]);
    // Past the log end: refused, nothing changes.
    assert!(matches!(
        p.delete_records_before(11),
        Err(Error::OffsetOutOfRange { offset: 11, .. })
    ));
    assert_eq!(p.log_start_offset(), 7);
    // At the log end: every record goes, an empty active segment remains.
    assert_eq!(p.delete_records_before(10).unwrap(), 10);
    assert_eq!(bases(&p), [10]);
    assert_eq!(sizes(&p), [0]);
    assert_eq!(p.log_end_offset(), 10);
    assert!(p.read(10, 1 << 16).unwrap().is_empty());
    let info = p
        .append(&[Record::new(value(10)).with_timestamp(T)])
        .unwrap();
    assert_eq!(info.base_offset, 10);
    assert_eq!(read_all(&p), [10]);
    store.close().unwrap();
}

/// The raised log start offset is durable when `delete_records_before` returns: it is in
/// `log-start-offset-checkpoint` and comes back after a clean reopen and after a crash,
/// even where it lies inside a segment whose file still holds the lower records.
#[test]
fn delete_records_before_persists_across_reopen_and_crash() {
    let _shared = shared();
    for crash in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(T);
        let store = open(dir.path(), &clock);
        store.create_topic("d", three_per_segment()).unwrap();
        let p = partition(&store, "d");
        append_n(&p, 10, |_| T);
        assert_eq!(p.delete_records_before(7).unwrap(), 7);
        let checkpoint = std::fs::read_to_string(dir.path().join(LOG_START_FILE)).unwrap();
        assert!(
            checkpoint.starts_with("0\n") && checkpoint.lines().any(|l| l == "d 0 7"),
            "{checkpoint:?}"
        );
        if crash {
            store.simulate_crash();
        } else {
            store.close().unwrap();
        }
        let store = open(dir.path(), &clock);
        let p = partition(&store, "d");
        assert_eq!(p.log_start_offset(), 7, "crash: {crash}");
        assert_eq!(p.log_end_offset(), 10);
        assert_eq!(bases(&p), [6, 9]);
        assert!(is_out_of_range(p.read(6, 1 << 16), 6));
        assert_eq!(first_at(&p, 7), 7);
        assert_eq!(read_all(&p), [7, 8, 9]);
        assert_eq!(p.delete_records_before(5).unwrap(), 7);
        // Retention after reopen keeps the log start.
        assert_eq!(p.enforce_retention().unwrap().segments_deleted, 0);
        assert_eq!(p.log_start_offset(), 7);
        store.close().unwrap();
    }
}

/// A record timestamp more than `max_timestamp_skew_ms` (default 1 h) ahead of the store
/// clock is refused with `InvalidTimestamp` (the whole batch, nothing written, the
/// partition still writable); exactly the skew is accepted. Log-append-time topics stamp
/// the clock and are unaffected; `None` accepts any timestamp.
#[test]
fn far_future_timestamps_are_refused() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open(dir.path(), &clock);
    let hour = 60 * 60 * 1000;
    let p = create(&store, "ct", TopicConfig::default());
    assert_eq!(p.config().max_timestamp_skew_ms, Some(hour as u64));
    let at_limit = p
        .append(&[Record::new(value(0)).with_timestamp(T + hour)])
        .unwrap();
    assert_eq!(at_limit.max_timestamp, T + hour);

    let batch = [
        Record::new(value(1)).with_timestamp(T),
        Record::new(value(2)).with_timestamp(T + hour + 1),
    ];
    let err = p.append(&batch).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::InvalidTimestamp { timestamp, now, max_skew_ms, .. }
                if *timestamp == T + hour + 1 && *now == T && *max_skew_ms == hour as u64
        ),
        "{err:?}"
    );
    let far = p
        .append(&[Record::new(value(1)).with_timestamp(i64::MAX / 2)])
        .unwrap_err();
    assert!(matches!(far, Error::InvalidTimestamp { .. }), "{far:?}");
    assert_eq!(
        p.log_end_offset(),
        1,
        "nothing of a refused batch is written"
    );
    assert!(p.poisoned().is_none());
    // The clock moves on: what was too far ahead is fine now.
    clock.set(T + 1);
    p.append(&batch).unwrap();
    assert_eq!(p.log_end_offset(), 3);
    clock.set(T);

    // Log-append time: the record's own timestamp is replaced by the clock.
    let lat = create(
        &store,
        "lat",
        TopicConfig::default().timestamp_type(TimestampType::LogAppendTime),
    );
    let info = lat
        .append(&[Record::new(value(0)).with_timestamp(T + 100 * hour)])
        .unwrap();
    assert_eq!(info.max_timestamp, T);
    let f = lat.read(0, 1 << 16).unwrap();
    assert_eq!(f.records().next().unwrap().timestamp(), T);

    // No bound.
    let any = create(
        &store,
        "any",
        TopicConfig::default().max_timestamp_skew_ms(None),
    );
    let info = any
        .append(&[Record::new(value(0)).with_timestamp(T + 1000 * hour)])
        .unwrap();
    assert_eq!(info.max_timestamp, T + 1000 * hour);
    store.close().unwrap();
}

/// A reader iterating while a writer appends and retention (by size, and by log start)
/// deletes segments under it sees consistent data: every record it gets is the one
/// appended at that offset, offsets dense and increasing; a read below the log start may
/// fail with `OffsetOutOfRange` (offset below the current log start), after which the
/// reader restarts from `log_start_offset()`.
#[test]
fn reader_during_retention_sees_consistent_data() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open(dir.path(), &clock);
    let b = batch_size();
    store
        .create_topic("r", three_per_segment().retention_bytes(Some(12 * b)))
        .unwrap();
    let p = partition(&store, "r");
    const TOTAL: u64 = 1500;
    // Reopened after a clean shutdown, sealed segments load their indexes lazily while
    // retention deletes them.
    for _ in 0..300 {
        let o = p.log_end_offset();
        p.append(&[Record::new(value(o)).with_timestamp(T + o as i64)])
            .unwrap();
    }
    store.close().unwrap();
    let store = open(dir.path(), &clock);
    let p = partition(&store, "r");
    let done = Arc::new(AtomicBool::new(false));

    let readers: Vec<_> = (0..2)
        .map(|_| {
            let p = p.clone();
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let (mut records, mut restarts) = (0u64, 0u64);
                let mut next = p.log_start_offset();
                loop {
                    let finished = done.load(Ordering::Acquire);
                    let end = p.log_end_offset();
                    if finished && next >= end {
                        break;
                    }
                    if next >= end {
                        std::thread::yield_now();
                        continue;
                    }
                    match p.read(next, 2 * b as usize) {
                        Ok(f) => {
                            for r in f.records() {
                                assert_eq!(r.offset(), next, "dense, in order");
                                assert_eq!(r.value().unwrap(), &value(next)[..]);
                                assert_eq!(r.timestamp(), T + next as i64);
                                next += 1;
                                records += 1;
                            }
                            assert_eq!(f.next_offset(), next);
                        }
                        Err(Error::OffsetOutOfRange { offset, .. }) => {
                            let start = p.log_start_offset();
                            assert!(
                                next <= offset && offset < start,
                                "reading {next}: {offset} refused, log start {start}"
                            );
                            next = start;
                            restarts += 1;
                        }
                        Err(e) => panic!("read at {next}: {e}"),
                    }
                }
                (records, restarts)
            })
        })
        .collect();

    for i in 300..TOTAL {
        let o = p.log_end_offset();
        p.append(&[Record::new(value(o)).with_timestamp(T + o as i64)])
            .unwrap();
        if i % 7 == 0 {
            p.enforce_retention().unwrap();
        }
        if i % 97 == 0 && i > 0 {
            p.delete_records_before(p.log_end_offset() - 2).unwrap();
        }
    }
    done.store(true, Ordering::Release);
    for r in readers {
        let (records, _restarts) = r.join().unwrap();
        assert!(records > 0);
    }
    // What is left is at most the limit plus one segment, and reads back whole.
    p.enforce_retention().unwrap();
    let kept: u64 = sizes(&p).iter().sum();
    assert!(kept >= 12 * b || p.log_start_offset() > 0);
    assert!(kept < 15 * b, "{kept}");
    let start = p.log_start_offset();
    assert_eq!(read_all(&p), (start..TOTAL).collect::<Vec<_>>());
    store.close().unwrap();
}

/// Creates `topics` delete-policy topics of `partitions` partitions, each partition with
/// ten expired records (all its segments go at the next pass).
fn expired_store(store: &Store, topics: &[&str], partitions: u32) -> Vec<Partition> {
    let mut all = Vec::new();
    for t in topics {
        let topic = store
            .create_topic(
                t,
                three_per_segment()
                    .retention_ms(Some(R as u64))
                    .partitions(partitions),
            )
            .unwrap();
        for p in topic.partitions() {
            append_n(p, 10, |_| T - 2 * R);
            all.push(p.clone());
        }
    }
    all
}

/// `Store::enforce_retention` goes on past a partition that fails (here: its directory was
/// deleted under it, so the new active segment cannot be created) and reports it in
/// `failures`; every other partition is maintained.
#[test]
fn store_retention_keeps_going_when_a_partition_directory_is_gone() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open(dir.path(), &clock);
    let parts = expired_store(&store, &["a", "b"], 3);
    let victim = parts[1].clone();
    assert_eq!(victim.name(), "a-1");
    std::fs::remove_dir_all(victim.dir()).unwrap();

    let report = store.enforce_retention();
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    assert_eq!(report.failures[0].partition, "a-1");
    assert!(!report.failures[0].error.is_empty());
    assert_eq!(report.segments_deleted, 5 * 4);
    assert_eq!(report.bytes_deleted, 5 * 10 * batch_size());
    for p in parts.iter().filter(|p| p.name() != "a-1") {
        assert_eq!(p.log_start_offset(), 10, "{}", p.name());
        assert_eq!(bases(p), [10], "{}", p.name());
    }
    drop(store);
}

/// `Store::enforce_retention` goes on past a poisoned partition (a failed fsync, injected)
/// and reports it in `failures`; every other partition is maintained.
#[test]
fn store_retention_keeps_going_past_a_poisoned_partition() {
    let _exclusive = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open(dir.path(), &clock);
    let parts = expired_store(&store, &["a", "b"], 2);
    let victim = parts[2].clone();
    assert_eq!(victim.name(), "b-0");
    faults::fail_nth(FaultOp::Fsync, 1, 5);
    let err = victim.flush().unwrap_err();
    faults::clear();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(victim.poisoned().is_some());

    let report = store.enforce_retention();
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    assert_eq!(report.failures[0].partition, "b-0");
    assert_eq!(report.segments_deleted, 3 * 4);
    for p in &parts {
        let expected = if p.name() == "b-0" { 0 } else { 10 };
        assert_eq!(p.log_start_offset(), expected, "{}", p.name());
    }
    assert_eq!(
        victim.segments().len(),
        4,
        "a poisoned partition is left alone"
    );
    assert_eq!(read_all(&victim), (0..10).collect::<Vec<_>>());
    drop(store);
}

/// `Store::enforce_retention` goes on past a partition that fails during the pass itself
/// (the creation of its new active segment fails, injected) and reports it; the failed
/// partition is poisoned and keeps its active segment's data (its older segments went
/// before the roll, which on a full disk frees the space the roll needs); a reopen
/// recovers it and retention then works.
#[test]
fn store_retention_keeps_going_when_a_roll_fails_mid_pass() {
    let _exclusive = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open(dir.path(), &clock);
    let parts = expired_store(&store, &["a", "b"], 2);
    store.flush().unwrap();
    // Every partition's segments have all expired: each pass rolls first. The first roll
    // of the pass (partition a-0's) fails.
    faults::fail_nth(FaultOp::Create, 1, 28);
    let report = store.enforce_retention();
    faults::clear();
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    assert_eq!(report.failures[0].partition, "a-0");
    assert_eq!(report.segments_deleted, 3 * 4);
    let victim = &parts[0];
    assert!(victim.poisoned().is_some());
    assert_eq!(victim.log_start_offset(), 9);
    assert_eq!(read_all(victim), [9]);
    for p in &parts[1..] {
        assert_eq!(bases(p), [10], "{}", p.name());
    }
    store.simulate_crash();
    let store = open(dir.path(), &clock);
    let p = partition(&store, "a");
    assert_eq!(read_all(&p), [9]);
    let report = store.enforce_retention();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.segments_deleted, 1);
    assert_eq!(bases(&p), [10]);
    assert_eq!(p.log_end_offset(), 10);
    store.close().unwrap();
}

/// With `maintenance_interval` set, the background thread enforces retention on its own:
/// it runs (a report appears) while nothing has expired, deleting nothing; once the clock
/// passes the retention time, it deletes the expired segments.
#[test]
fn background_maintenance_deletes_expired_segments() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open_maintained(dir.path(), &clock);
    store
        .create_topic("bg", three_per_segment().retention_ms(Some(R as u64)))
        .unwrap();
    let p = partition(&store, "bg");
    append_n(&p, 10, |_| T);

    let limit = Duration::from_secs(20);
    wait_for("a first maintenance pass", limit, || {
        store.last_maintenance().is_some()
    });
    let first = store.last_maintenance().unwrap();
    assert_eq!(first.segments_deleted, 0);
    assert!(first.failures.is_empty());
    assert_eq!(bases(&p), [0, 3, 6, 9]);

    clock.set(T + R + 1);
    wait_for("the expired segments to be deleted", limit, || {
        p.log_start_offset() == 10
    });
    let last = store.last_maintenance().unwrap();
    assert!(last.failures.is_empty(), "{:?}", last.failures);
    assert_eq!(bases(&p), [10]);
    assert_eq!(p.log_end_offset(), 10);
    store.close().unwrap();
}

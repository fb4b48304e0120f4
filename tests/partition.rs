//! A partition's log through its public API: reads at and between index entries and across
//! segment rolls, fetch size limits, lookups by timestamp, rolling by size, time and full
//! index, truncation, reopening, log-append time, and a model-based property test.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::model::{self, Stored};
use common::{partition, remove_files, ManualClock, XorShift};
use proptest::prelude::*;
use seglog::record::BatchIter;
use seglog::{
    Clock, Error, Fetch, Partition, Record, Store, StoreConfig, TimestampOffset, TimestampType,
    TopicConfig,
};

fn open(dir: &Path, clock: &Arc<ManualClock>) -> Store {
    Store::open_with(dir, StoreConfig::default().clock(clock.clone())).unwrap()
}

/// Appends `recs`, recording them in `model` with the clock's time as default timestamp.
fn append(p: &Partition, model: &mut Vec<Stored>, recs: &[Record], now: i64) {
    let info = p.append(recs).unwrap();
    assert_eq!(info.base_offset, model.len() as u64);
    assert_eq!(info.last_offset, (model.len() + recs.len() - 1) as u64);
    model.extend(recs.iter().map(|r| Stored::of(r, now)));
    assert_eq!(p.log_end_offset(), model.len() as u64);
}

/// Checks that a fetch holds only whole, valid batches, the first holding `offset`, within
/// `max_bytes` unless it is a single batch, and that `next_offset` follows the last.
fn check_fetch_shape(f: &Fetch, offset: u64, max_bytes: usize) -> usize {
    let bytes = f.as_bytes();
    let mut count = 0;
    let mut end = 0;
    let mut last = None;
    for item in BatchIter::new(bytes) {
        let (pos, b) = item.expect("fetch holds only whole, valid batches");
        b.validate().unwrap();
        if count == 0 {
            assert!(
                b.base_offset() <= offset && offset <= b.last_offset(),
                "first batch {}..={} does not hold {offset}",
                b.base_offset(),
                b.last_offset()
            );
        }
        if let Some(prev) = last {
            assert_eq!(b.base_offset(), prev + 1, "batches not contiguous");
        }
        last = Some(b.last_offset());
        end = pos + b.as_bytes().len();
        count += 1;
    }
    assert_eq!(end, bytes.len(), "trailing partial batch in fetch");
    if count > 1 {
        assert!(
            bytes.len() <= max_bytes,
            "{} bytes > max {max_bytes}",
            bytes.len()
        );
    }
    match last {
        Some(l) => assert_eq!(f.next_offset(), l + 1),
        None => assert_eq!(f.next_offset(), offset),
    }
    count
}

/// Reads the whole log with fetches of `max_bytes` and compares every record with `model`.
fn check_all(p: &Partition, model: &[Stored], max_bytes: usize) {
    assert_eq!(p.log_end_offset(), model.len() as u64);
    let mut next = p.log_start_offset();
    while next < model.len() as u64 {
        let f = p.read(next, max_bytes).unwrap();
        let batches = check_fetch_shape(&f, next, max_bytes);
        assert!(
            batches >= 1,
            "read at {next} below log end returned nothing"
        );
        for r in f.records() {
            assert_eq!(r.offset(), next, "offsets not dense");
            assert_eq!(Stored::from_view(&r), model[next as usize], "record {next}");
            next += 1;
        }
        assert_eq!(f.next_offset(), next);
    }
    let f = p.read(next, max_bytes).unwrap();
    assert!(f.is_empty());
    assert_eq!(f.next_offset(), next);
}

fn oracle_for_timestamp(model: &[Stored], target: i64) -> Option<TimestampOffset> {
    model
        .iter()
        .enumerate()
        .find(|(_, r)| r.timestamp >= target)
        .map(|(o, r)| TimestampOffset {
            offset: o as u64,
            timestamp: r.timestamp,
        })
}

fn value_record(i: u64, len: usize) -> Record {
    let mut v = format!("value-{i}-").into_bytes();
    v.resize(v.len() + len, b'.');
    Record::new(v).with_key(format!("key-{}", i % 7))
}

/// A log of 300 batches of 1-4 records over many segments with a dense index.
fn build_log(p: &Partition, model: &mut Vec<Stored>, clock: &ManualClock, seed: u64) {
    let mut rng = XorShift(seed);
    for _ in 0..300 {
        let n = 1 + rng.below(4);
        let base = model.len() as u64;
        let recs: Vec<Record> = (0..n)
            .map(|j| value_record(base + j, rng.below(80) as usize))
            .collect();
        clock.advance(1);
        append(p, model, &recs, clock.now_ms());
    }
}

fn small_cfg() -> TopicConfig {
    TopicConfig::default()
        .segment_bytes(3000)
        .index_interval_bytes(200)
}

#[test]
fn every_offset_reads_back_as_first_record_at_or_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(1_000);
    let store = open(dir.path(), &clock);
    store.create_topic("t", small_cfg()).unwrap();
    let p = partition(&store, "t");
    let mut model = Vec::new();
    build_log(&p, &mut model, &clock, 7);
    let segs = p.segments();
    assert!(segs.len() >= 5, "only {} segments", segs.len());
    assert!(segs.iter().any(|s| s.offset_index().unwrap().len() >= 3));
    for o in 0..model.len() as u64 {
        for max in [1usize, 400] {
            let f = p.read(o, max).unwrap();
            check_fetch_shape(&f, o, max);
            let first = f.records().next().unwrap();
            assert_eq!(first.offset(), o);
            assert_eq!(Stored::from_view(&first), model[o as usize]);
        }
    }
    // Segment bases and the offsets on either side of them.
    for s in &segs[1..] {
        let b = s.base_offset();
        for o in [b - 1, b, b + 1] {
            let f = p.read(o, 0).unwrap();
            assert_eq!(f.records().next().unwrap().offset(), o);
        }
    }
    store.close().unwrap();
}

#[test]
fn reads_cross_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(1_000);
    let store = open(dir.path(), &clock);
    store.create_topic("t", small_cfg()).unwrap();
    let p = partition(&store, "t");
    let mut model = Vec::new();
    build_log(&p, &mut model, &clock, 11);
    // One read returns everything, across every segment.
    let f = p.read(0, usize::MAX).unwrap();
    assert_eq!(f.records().count(), model.len());
    assert_eq!(f.next_offset(), model.len() as u64);
    let total: u64 = p.segments().iter().map(|s| s.size()).sum();
    assert_eq!(f.as_bytes().len() as u64, total);
    assert_eq!(p.stats().size_bytes, total);
    // A read starting inside one segment continues into the next ones.
    let segs = p.segments();
    let start = segs[1].base_offset() + 1;
    let f = p.read(start, 5000).unwrap();
    let last = f.records().last().unwrap().offset();
    assert!(last >= segs[2].base_offset(), "read stopped at segment end");
    for max in [0usize, 1, 100, 1000, 4000] {
        check_all(&p, &model, max);
    }
    store.close().unwrap();
}

#[test]
fn small_max_bytes_gives_one_whole_batch_at_least() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(5);
    let store = open(dir.path(), &clock);
    store
        .create_topic("t", TopicConfig::default().segment_bytes(1 << 20))
        .unwrap();
    let p = partition(&store, "t");
    let mut model = Vec::new();
    // One large batch in between small ones.
    append(&p, &mut model, &[value_record(0, 10)], 5);
    let big: Vec<Record> = (1..21).map(|i| value_record(i, 500)).collect();
    append(&p, &mut model, &big, 5);
    append(&p, &mut model, &[value_record(21, 10)], 5);
    for o in [1u64, 10, 20] {
        let f = p.read(o, 10).unwrap();
        assert_eq!(check_fetch_shape(&f, o, 10), 1);
        assert!(f.as_bytes().len() > 10_000);
        assert_eq!(f.records().next().unwrap().offset(), o);
        assert_eq!(f.next_offset(), 21);
    }
    // The budget stops before a batch that does not fit; it is not cut.
    let f = p.read(0, 200).unwrap();
    assert_eq!(check_fetch_shape(&f, 0, 200), 1);
    assert_eq!(f.next_offset(), 1);
    check_all(&p, &model, 0);
    store.close().unwrap();
}

#[test]
fn read_at_log_end_is_empty_and_past_it_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(5);
    let store = open(dir.path(), &clock);
    store.create_topic("t", small_cfg()).unwrap();
    let p = partition(&store, "t");
    let f = p.read(0, 100).unwrap();
    assert!(f.is_empty());
    assert_eq!((f.offset(), f.next_offset()), (0, 0));
    assert_eq!(f.records().count(), 0);
    let mut model = Vec::new();
    build_log(&p, &mut model, &clock, 3);
    let end = p.log_end_offset();
    let f = p.read(end, 1 << 20).unwrap();
    assert!(f.is_empty());
    assert_eq!(f.next_offset(), end);
    match p.read(end + 1, 100) {
        Err(Error::OffsetOutOfRange {
            offset,
            log_start,
            log_end,
            ..
        }) => assert_eq!((offset, log_start, log_end), (end + 1, 0, end)),
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
    store.close().unwrap();
}

#[test]
fn offset_for_timestamp_matches_brute_force() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(50_000);
    let store = open(dir.path(), &clock);
    store.create_topic("t", small_cfg()).unwrap();
    let p = partition(&store, "t");
    let mut model = Vec::new();
    let mut rng = XorShift(99);
    for i in 0..250u64 {
        let n = 1 + rng.below(4);
        let recs: Vec<Record> = (0..n)
            .map(|j| {
                let r = value_record(i * 10 + j, rng.below(60) as usize);
                // Mostly rising with jitter, some far back, some from the clock.
                match rng.below(8) {
                    0 => r,
                    1 => r.with_timestamp(rng.below(1_000) as i64),
                    _ => r.with_timestamp((i * 100 + rng.below(400)) as i64),
                }
            })
            .collect();
        if rng.below(10) == 0 {
            clock.set(rng.below(30_000) as i64);
        }
        append(&p, &mut model, &recs, clock.now_ms());
    }
    assert!(p.segments().len() >= 4);
    let max_ts = model.iter().map(|r| r.timestamp).max().unwrap();
    let mut targets: Vec<i64> = vec![i64::MIN, -1, 0, 1, max_ts, max_ts + 1, i64::MAX];
    targets.extend(
        model
            .iter()
            .flat_map(|r| [r.timestamp - 1, r.timestamp, r.timestamp + 1]),
    );
    targets.extend((0..300).map(|_| rng.below(60_000) as i64));
    let check = |p: &Partition| {
        for &t in &targets {
            assert_eq!(
                p.offset_for_timestamp(t).unwrap(),
                oracle_for_timestamp(&model, t),
                "target {t}"
            );
        }
    };
    check(&p);
    drop(p);
    store.close().unwrap();
    let store = open(dir.path(), &clock);
    let p = partition(&store, "t");
    check(&p);
    store.close().unwrap();
}

#[test]
fn roll_by_time_with_record_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(0);
    let store = open(dir.path(), &clock);
    store
        .create_topic("t", TopicConfig::default().segment_ms(1_000))
        .unwrap();
    let p = partition(&store, "t");
    let mut model = Vec::new();
    let ts = |t: i64| [Record::new("x").with_timestamp(t)];
    append(&p, &mut model, &ts(10_000), 0); // offset 0: first segment, reference 10_000
    append(&p, &mut model, &ts(10_500), 0);
    append(&p, &mut model, &ts(9_000), 0); // older: no roll
    append(&p, &mut model, &ts(11_000), 0); // exactly segment_ms later: no roll
    assert_eq!(p.segments().len(), 1);
    append(&p, &mut model, &ts(11_001), 0); // offset 4: rolls
    let bases: Vec<u64> = p.segments().iter().map(|s| s.base_offset()).collect();
    assert_eq!(bases, vec![0, 4]);
    append(&p, &mut model, &ts(12_001), 0);
    assert_eq!(p.segments().len(), 2);
    append(&p, &mut model, &ts(12_002), 0); // offset 6: rolls
                                            // The wall clock does not matter while records carry timestamps.
    clock.set(1 << 40);
    append(&p, &mut model, &ts(12_003), 0);
    let bases: Vec<u64> = p.segments().iter().map(|s| s.base_offset()).collect();
    assert_eq!(bases, vec![0, 4, 6]);
    check_all(&p, &model, 100);

    // The reference timestamp survives a reopen.
    drop(p);
    store.close().unwrap();
    let store = open(dir.path(), &clock);
    let p = partition(&store, "t");
    append(&p, &mut model, &ts(13_002), 0); // exactly 1_000 after 12_002: no roll
    assert_eq!(p.segments().len(), 3);
    append(&p, &mut model, &ts(13_003), 0);
    let bases: Vec<u64> = p.segments().iter().map(|s| s.base_offset()).collect();
    assert_eq!(bases, vec![0, 4, 6, 9]);
    check_all(&p, &model, 100);
    store.close().unwrap();
}

#[test]
fn roll_by_time_with_clock_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(1_000_000);
    let store = open(dir.path(), &clock);
    store
        .create_topic("t", TopicConfig::default().segment_ms(60_000))
        .unwrap();
    let p = partition(&store, "t");
    let mut model = Vec::new();
    let rec = [Record::new("no timestamp")];
    append(&p, &mut model, &rec, clock.now_ms());
    clock.advance(60_000);
    append(&p, &mut model, &rec, clock.now_ms());
    assert_eq!(p.segments().len(), 1);
    clock.advance(1);
    append(&p, &mut model, &rec, clock.now_ms()); // offset 2: 60_001 after the first
    clock.advance(30_000);
    append(&p, &mut model, &rec, clock.now_ms());
    clock.advance(30_001);
    append(&p, &mut model, &rec, clock.now_ms()); // offset 4
    let bases: Vec<u64> = p.segments().iter().map(|s| s.base_offset()).collect();
    assert_eq!(bases, vec![0, 2, 4]);
    // Default timestamps are the clock's.
    check_all(&p, &model, 1 << 20);
    assert_eq!(model[4].timestamp, 1_000_000 + 60_000 + 1 + 30_000 + 30_001);
    store.close().unwrap();
}

#[test]
fn roll_on_full_index() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(100);
    let store = open(dir.path(), &clock);
    // 24 bytes: 3 offset slots, 2 time slots (full at 1 entry, Kafka's rule: the last is
    // kept for the roll entry); every batch after the first is indexed.
    let cfg = TopicConfig::default()
        .segment_index_bytes(24)
        .index_interval_bytes(0);
    store.create_topic("t", cfg).unwrap();
    let p = partition(&store, "t");
    let mut model = Vec::new();
    for i in 0..40u64 {
        clock.advance(1);
        append(&p, &mut model, &[value_record(i, 5)], clock.now_ms());
    }
    let segs = p.segments();
    // The second batch's entry fills the time index: a roll every 2 batches.
    assert_eq!(
        segs.len(),
        20,
        "bases: {:?}",
        segs.iter().map(|s| s.base_offset()).collect::<Vec<_>>()
    );
    for s in &segs {
        let (o, t) = s.index_entries().unwrap();
        assert!(
            o <= 1 && t <= 1,
            "segment {} has {o}/{t} entries",
            s.base_offset()
        );
    }
    // With a constant clock the time index stays at one entry and the offset index fills
    // (36 bytes: 4 offset slots, 3 time slots).
    clock.set(0);
    let dir2 = tempfile::tempdir().unwrap();
    let store2 = open(dir2.path(), &clock);
    store2
        .create_topic(
            "t",
            TopicConfig::default()
                .segment_index_bytes(36)
                .index_interval_bytes(0),
        )
        .unwrap();
    let p2 = partition(&store2, "t");
    let mut model2 = Vec::new();
    for i in 0..12u64 {
        append(&p2, &mut model2, &[value_record(i, 5)], 0);
    }
    let bases: Vec<u64> = p2.segments().iter().map(|s| s.base_offset()).collect();
    assert_eq!(bases, vec![0, 5, 10]);
    check_all(&p, &model, 50);
    check_all(&p2, &model2, 50);
    store.close().unwrap();
    store2.close().unwrap();
}

/// Builds a fresh log of 100 batches of 3 records over several segments and returns it.
fn truncation_log(dir: &Path, clock: &Arc<ManualClock>) -> (Store, Partition, Vec<Stored>) {
    let store = open(dir, clock);
    store
        .create_topic(
            "t",
            TopicConfig::default()
                .segment_bytes(2500)
                .index_interval_bytes(100),
        )
        .unwrap();
    let p = partition(&store, "t");
    let mut model = Vec::new();
    for i in 0..100u64 {
        let recs: Vec<Record> = (0..3)
            .map(|j| value_record(i * 3 + j, 20).with_timestamp((i * 3 + j) as i64 * 10))
            .collect();
        append(&p, &mut model, &recs, 0);
    }
    assert!(p.segments().len() >= 4);
    (store, p, model)
}

fn truncate_and_check(offset: impl Fn(&Partition) -> u64) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(7);
    let (store, p, mut model) = truncation_log(dir.path(), &clock);
    let at = offset(&p);
    p.truncate_to(at).unwrap();
    model.truncate(at as usize);
    assert_eq!(p.log_end_offset(), at);
    check_all(&p, &model, 300);
    for o in 0..at {
        assert_eq!(p.read(o, 1).unwrap().records().next().unwrap().offset(), o);
    }
    assert!(p.read(at, 1).unwrap().is_empty());
    assert!(matches!(
        p.read(at + 1, 1),
        Err(Error::OffsetOutOfRange { .. })
    ));
    for t in [
        0i64,
        5,
        at as i64 * 10 - 10,
        at as i64 * 10 - 5,
        at as i64 * 10,
    ] {
        assert_eq!(
            p.offset_for_timestamp(t).unwrap(),
            oracle_for_timestamp(&model, t),
            "timestamp {t} after truncation to {at}"
        );
    }
    // Appends continue at the truncation point, through more rolls.
    for i in 0..40u64 {
        let o = model.len() as u64;
        let recs = [value_record(o, 30).with_key(format!("new-{i}"))];
        append(&p, &mut model, &recs, clock.now_ms());
    }
    check_all(&p, &model, 300);
    for t in [0i64, at as i64 * 10 - 5, at as i64 * 10, 8] {
        assert_eq!(
            p.offset_for_timestamp(t).unwrap(),
            oracle_for_timestamp(&model, t)
        );
    }
    drop(p);
    store.close().unwrap();
    let store = open(dir.path(), &clock);
    let p = partition(&store, "t");
    check_all(&p, &model, 300);
    for t in [0i64, at as i64 * 10 - 5, at as i64 * 10, 8] {
        assert_eq!(
            p.offset_for_timestamp(t).unwrap(),
            oracle_for_timestamp(&model, t)
        );
    }
    store.close().unwrap();
}

#[test]
fn truncate_at_batch_boundary_in_active_segment() {
    truncate_and_check(|p| {
        let last = p.segments().last().unwrap().base_offset();
        assert_eq!(last % 3, 0);
        (last + p.log_end_offset()) / 6 * 3 + 3
    });
}

#[test]
fn truncate_in_middle_of_batch() {
    truncate_and_check(|p| {
        let last = p.segments().last().unwrap().base_offset();
        last + 4
    });
}

#[test]
fn truncate_in_middle_of_batch_in_older_segment() {
    truncate_and_check(|p| p.segments()[1].base_offset() + 5);
}

#[test]
fn truncate_at_segment_base() {
    truncate_and_check(|p| p.segments()[2].base_offset());
}

#[test]
fn truncate_at_active_segment_base() {
    truncate_and_check(|p| p.segments().last().unwrap().base_offset());
}

#[test]
fn truncate_into_older_segment_at_batch_boundary() {
    truncate_and_check(|p| p.segments()[1].base_offset() + 3);
}

#[test]
fn truncate_to_zero() {
    truncate_and_check(|_| 0);
}

#[test]
fn truncate_to_one_inside_first_batch() {
    truncate_and_check(|_| 1);
}

#[test]
fn reopen_gives_identical_reads() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(1_000);
    let store = open(dir.path(), &clock);
    store.create_topic("t", small_cfg()).unwrap();
    let p = partition(&store, "t");
    let mut model = Vec::new();
    build_log(&p, &mut model, &clock, 5);
    p.truncate_to(model.len() as u64 - 2).unwrap();
    model.truncate(model.len() - 2);
    let fetches = |p: &Partition| -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        for o in 0..=p.log_end_offset() {
            let big = if o % 16 == 0 { 1 << 20 } else { 0 };
            for max in [0usize, 700, big] {
                let f = p.read(o, max).unwrap();
                out.push((f.next_offset(), f.as_bytes().to_vec()));
            }
        }
        out
    };
    let before = fetches(&p);
    let before_ts: Vec<_> = (0..400)
        .map(|t| p.offset_for_timestamp(t * 3).unwrap())
        .collect();
    // The log's shape, not this session's flush counters.
    let shape = |p: &Partition| {
        let s = p.stats();
        (
            s.log_start_offset,
            s.log_end_offset,
            s.segments,
            s.size_bytes,
        )
    };
    let stats = shape(&p);
    drop(p);
    store.close().unwrap();
    let store = open(dir.path(), &clock);
    let p = partition(&store, "t");
    assert_eq!(shape(&p), stats);
    assert_eq!(fetches(&p), before);
    let after_ts: Vec<_> = (0..400)
        .map(|t| p.offset_for_timestamp(t * 3).unwrap())
        .collect();
    assert_eq!(after_ts, before_ts);
    check_all(&p, &model, 1000);
    store.close().unwrap();
}

#[test]
fn log_append_time_stamps_records_with_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(1_700_000_000_000);
    let store = open(dir.path(), &clock);
    store
        .create_topic(
            "t",
            TopicConfig::default().timestamp_type(TimestampType::LogAppendTime),
        )
        .unwrap();
    let p = partition(&store, "t");
    let recs = [
        Record::new("a").with_timestamp(5),
        Record::new("b"),
        Record::new("c").with_timestamp(i64::MAX / 2),
    ];
    let info = p.append(&recs).unwrap();
    assert_eq!(info.max_timestamp, 1_700_000_000_000);
    clock.advance(250);
    let info = p.append(&[Record::new("d").with_timestamp(1)]).unwrap();
    assert_eq!(info.max_timestamp, 1_700_000_000_250);
    let f = p.read(0, 1 << 20).unwrap();
    let got: Vec<(u64, i64)> = f.records().map(|r| (r.offset(), r.timestamp())).collect();
    assert_eq!(
        got,
        vec![
            (0, 1_700_000_000_000),
            (1, 1_700_000_000_000),
            (2, 1_700_000_000_000),
            (3, 1_700_000_000_250)
        ]
    );
    for b in f.batches() {
        assert!(b.header().is_log_append_time());
    }
    assert_eq!(
        p.offset_for_timestamp(1_700_000_000_001).unwrap(),
        Some(TimestampOffset {
            offset: 3,
            timestamp: 1_700_000_000_250
        })
    );
    assert_eq!(p.offset_for_timestamp(6).unwrap().unwrap().offset, 0);
    drop(p);
    store.close().unwrap();
    let store = open(dir.path(), &clock);
    let p = partition(&store, "t");
    let got2: Vec<(u64, i64)> = p
        .read(0, 1 << 20)
        .unwrap()
        .records()
        .map(|r| (r.offset(), r.timestamp()))
        .collect();
    assert_eq!(got2, got);
    store.close().unwrap();
}

// ---- model-based property test ----

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Record>),
    Read { at: u16, max_bytes: u16 },
    Truncate(u16),
    Reopen,
    Tick(u16),
    ForTimestamp(i64),
}

/// Values under 200 bytes, up to 2 headers, 30% of them without a timestamp.
fn record() -> impl Strategy<Value = Record> {
    model::record(200, 3, 4, prop::option::weighted(0.7, 0i64..20_000))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec(record(), 1..6).prop_map(Op::Append),
        2 => (any::<u16>(), any::<u16>()).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => any::<u16>().prop_map(Op::Truncate),
        1 => Just(Op::Reopen),
        1 => (0u16..3000).prop_map(Op::Tick),
        1 => (-10i64..21_000).prop_map(Op::ForTimestamp),
    ]
}

fn run_model(ops: Vec<Op>, cfg: TopicConfig) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(10_000);
    let mut store = open(dir.path(), &clock);
    store.create_topic("m", cfg).unwrap();
    let mut p = partition(&store, "m");
    let mut model: Vec<Stored> = Vec::new();
    for op in ops {
        match op {
            Op::Append(recs) => {
                let info = p.append(&recs).unwrap();
                prop_assert_eq!(info.base_offset, model.len() as u64);
                model.extend(recs.iter().map(|r| Stored::of(r, clock.now_ms())));
                prop_assert_eq!(p.log_end_offset(), model.len() as u64);
            }
            Op::Read { at, max_bytes } => {
                let at = at as u64 % (model.len() as u64 + 1);
                let max = max_bytes as usize;
                let f = p.read(at, max).unwrap();
                let n = check_fetch_shape(&f, at, max);
                prop_assert_eq!(n == 0, at == model.len() as u64);
                let got: Vec<Stored> = f.records().map(|r| Stored::from_view(&r)).collect();
                let offsets: Vec<u64> = f.records().map(|r| r.offset()).collect();
                let want_offsets: Vec<u64> = (at..f.next_offset()).collect();
                prop_assert_eq!(offsets, want_offsets);
                prop_assert_eq!(&got[..], &model[at as usize..f.next_offset() as usize]);
            }
            Op::Truncate(to) => {
                let to = to as u64 % (model.len() as u64 + 1);
                p.truncate_to(to).unwrap();
                model.truncate(to as usize);
                prop_assert_eq!(p.log_end_offset(), to);
            }
            Op::Reopen => {
                drop(p);
                store.close().unwrap();
                store = open(dir.path(), &clock);
                p = partition(&store, "m");
                prop_assert_eq!(p.log_end_offset(), model.len() as u64);
            }
            Op::Tick(ms) => clock.advance(ms as i64),
            Op::ForTimestamp(t) => {
                prop_assert_eq!(
                    p.offset_for_timestamp(t).unwrap(),
                    oracle_for_timestamp(&model, t),
                    "target {}",
                    t
                );
            }
        }
    }
    check_all(&p, &model, 500);
    for t in [0i64, 5_000, 10_000, 15_000, 20_000, 1 << 40] {
        prop_assert_eq!(
            p.offset_for_timestamp(t).unwrap(),
            oracle_for_timestamp(&model, t)
        );
    }
    drop(p);
    store.close().unwrap();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn partition_matches_model(ops in prop::collection::vec(op(), 1..80)) {
        run_model(
            ops,
            TopicConfig::default()
                .segment_bytes(1500)
                .segment_ms(5_000)
                .index_interval_bytes(150),
        )?;
    }

    #[test]
    fn partition_matches_model_with_tiny_indexes(ops in prop::collection::vec(op(), 1..60)) {
        run_model(
            ops,
            TopicConfig::default()
                .segment_index_bytes(40)
                .index_interval_bytes(0),
        )?;
    }
}

/// A batch whose last offset delta leaves a gap up to the largest relative offset an
/// index entry can hold (as compaction leaves): the next append must start a new segment.
#[test]
fn roll_when_relative_offset_would_overflow() {
    use seglog::record::{
        crc32c, encode_batch, BatchSpec, ATTRIBUTES_OFFSET, CRC_OFFSET, LAST_OFFSET_DELTA_OFFSET,
    };
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(0);
    let store = open(dir.path(), &clock);
    store.create_topic("t", TopicConfig::default()).unwrap();
    store.close().unwrap();
    let pdir = dir.path().join("t-0");
    remove_files(&pdir);
    // One record at offset 0 in a batch whose last offset delta is i32::MAX.
    let mut log = Vec::new();
    encode_batch(
        &mut log,
        &BatchSpec::new(0, 0),
        &[Record::new("first").with_timestamp(10)],
    )
    .unwrap();
    log[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4]
        .copy_from_slice(&i32::MAX.to_be_bytes());
    let crc = crc32c(&log[ATTRIBUTES_OFFSET..]);
    log[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(pdir.join("00000000000000000000.log"), &log).unwrap();

    let store = open(dir.path(), &clock);
    let p = partition(&store, "t");
    let gap_end = i32::MAX as u64 + 1;
    assert_eq!(p.log_end_offset(), gap_end);
    let info = p
        .append(&[Record::new("second").with_timestamp(20)])
        .unwrap();
    assert_eq!(info.base_offset, gap_end);
    let bases: Vec<u64> = p.segments().iter().map(|s| s.base_offset()).collect();
    assert_eq!(bases, vec![0, gap_end]);
    // Reads step over the gap; offsets inside it read as the next record.
    let all: Vec<u64> = p
        .read(0, 1 << 20)
        .unwrap()
        .records()
        .map(|r| r.offset())
        .collect();
    assert_eq!(all, vec![0, gap_end]);
    let mut next = 1;
    let mut seen = Vec::new();
    while next < p.log_end_offset() {
        let f = p.read(next, 1).unwrap();
        seen.extend(f.records().map(|r| r.offset()));
        assert!(f.next_offset() > next);
        next = f.next_offset();
    }
    assert_eq!(seen, vec![gap_end]);
    assert_eq!(
        p.offset_for_timestamp(15).unwrap(),
        Some(TimestampOffset {
            offset: gap_end,
            timestamp: 20
        })
    );
    drop(p);
    store.close().unwrap();
    let store = open(dir.path(), &clock);
    let p = partition(&store, "t");
    assert_eq!(p.log_end_offset(), gap_end + 1);
    let info = p.append(&[Record::new("third")]).unwrap();
    assert_eq!(info.base_offset, gap_end + 1);
    store.close().unwrap();
}

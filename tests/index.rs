//! The sparse offset index and the time index: the pure lookup functions against a linear
//! scan, and the entries a partition writes against Kafka's `LogSegment.append` rule,
//! checked from the `.log` bytes on disk.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::{create, ManualClock, XorShift};
use proptest::prelude::*;
use seglog::record::{Batch, BatchIter};
use seglog::segment::{lookup_index, lookup_timeindex};
use seglog::{Record, Store, StoreConfig, TopicConfig};

fn offset_bytes(entries: &[(u32, u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(rel, pos) in entries {
        out.extend_from_slice(&rel.to_be_bytes());
        out.extend_from_slice(&pos.to_be_bytes());
    }
    out
}

fn time_bytes(entries: &[(i64, u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(ts, rel) in entries {
        out.extend_from_slice(&ts.to_be_bytes());
        out.extend_from_slice(&rel.to_be_bytes());
    }
    out
}

/// Strictly increasing relative offsets, each with some position.
fn offset_entries() -> impl Strategy<Value = Vec<(u32, u32)>> {
    (
        prop_oneof![
            prop::collection::btree_set(any::<u32>(), 0..64),
            prop::collection::btree_set(0u32..200, 0..64),
        ],
        prop::collection::vec(any::<u32>(), 64),
    )
        .prop_map(|(rels, positions): (BTreeSet<u32>, Vec<u32>)| {
            rels.into_iter().zip(positions).collect()
        })
}

/// Strictly increasing timestamps, each with some relative offset.
fn time_entries() -> impl Strategy<Value = Vec<(i64, u32)>> {
    (
        prop_oneof![
            prop::collection::btree_set(any::<i64>(), 0..64),
            prop::collection::btree_set(-100i64..100, 0..64),
        ],
        prop::collection::vec(any::<u32>(), 64),
    )
        .prop_map(|(ts, rels): (BTreeSet<i64>, Vec<u32>)| ts.into_iter().zip(rels).collect())
}

fn u32_target(entries: &[(u32, u32)]) -> impl Strategy<Value = u32> {
    let mut picks = vec![0u32, u32::MAX];
    for &(rel, _) in entries {
        picks.extend([rel, rel.wrapping_sub(1), rel.wrapping_add(1)]);
    }
    prop_oneof![any::<u32>(), 0u32..210, prop::sample::select(picks)]
}

fn i64_target(entries: &[(i64, u32)]) -> impl Strategy<Value = i64> {
    let mut picks = vec![0i64, i64::MIN, i64::MAX];
    for &(ts, _) in entries {
        picks.extend([ts, ts.wrapping_sub(1), ts.wrapping_add(1)]);
    }
    prop_oneof![any::<i64>(), -110i64..110, prop::sample::select(picks)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn offset_lookup_matches_linear_scan(
        (entries, target) in offset_entries().prop_flat_map(|e| {
            let t = u32_target(&e);
            (Just(e), t)
        })
    ) {
        let oracle = entries.iter().rev().find(|&&(rel, _)| rel <= target).copied();
        prop_assert_eq!(lookup_index(&offset_bytes(&entries), target), oracle);
    }

    #[test]
    fn time_lookup_matches_linear_scan(
        (entries, target) in time_entries().prop_flat_map(|e| {
            let t = i64_target(&e);
            (Just(e), t)
        })
    ) {
        let oracle = entries.iter().rev().find(|&&(ts, _)| ts < target).copied();
        prop_assert_eq!(lookup_timeindex(&time_bytes(&entries), target), oracle);
    }
}

#[test]
fn lookups_below_first_and_above_last() {
    let idx = offset_bytes(&[(10, 100), (20, 200), (30, 300)]);
    assert_eq!(lookup_index(&idx, 0), None);
    assert_eq!(lookup_index(&idx, 9), None);
    assert_eq!(lookup_index(&idx, 10), Some((10, 100)));
    assert_eq!(lookup_index(&idx, 29), Some((20, 200)));
    assert_eq!(lookup_index(&idx, u32::MAX), Some((30, 300)));
    assert_eq!(lookup_index(&[], 5), None);

    let tidx = time_bytes(&[(100, 1), (200, 5), (300, 9)]);
    assert_eq!(lookup_timeindex(&tidx, 100), None);
    assert_eq!(lookup_timeindex(&tidx, 101), Some((100, 1)));
    assert_eq!(lookup_timeindex(&tidx, 300), Some((200, 5)));
    assert_eq!(lookup_timeindex(&tidx, i64::MAX), Some((300, 9)));
    assert_eq!(lookup_timeindex(&tidx, i64::MIN), None);
    assert_eq!(lookup_timeindex(&[], 5), None);
}

/// What the time index and offset index of one segment must hold, computed from its
/// `.log` bytes with Kafka's `LogSegment.append` rule: an offset entry (the batch's last
/// offset at its position) for a batch once more than `interval` bytes were written since
/// the last entry, and a time entry `(max timestamp so far, last offset of the batch that
/// first reached it)` at the same moments when it is newer than the last; `sealed` adds
/// the final time entry of `onBecomeInactiveSegment`.
fn expected_indexes(log: &[u8], base: u64, interval: u64, sealed: bool) -> Indexes {
    let mut offsets = Vec::new();
    let mut times: Vec<(i64, u64)> = Vec::new();
    let mut since = 0u64;
    let mut max_ts = -1i64;
    let mut max_ts_offset = base;
    let push_time = |times: &mut Vec<(i64, u64)>, ts: i64, off: u64| {
        if ts >= 0 && times.last().is_none_or(|&(t, _)| ts > t) {
            times.push((ts, off));
        }
    };
    for item in BatchIter::new(log) {
        let (pos, b) = item.expect("valid batch in .log");
        let h = *b.header();
        if h.max_timestamp > max_ts {
            max_ts = h.max_timestamp;
            max_ts_offset = h.last_offset();
        }
        if since > interval {
            offsets.push((h.last_offset(), pos as u32));
            push_time(&mut times, max_ts, max_ts_offset);
            since = 0;
        }
        since += h.size() as u64;
    }
    if sealed {
        push_time(&mut times, max_ts, max_ts_offset);
    }
    (offsets, times)
}

/// A segment's offset index `(offset, position)` and time index `(timestamp, offset)`.
type Indexes = (Vec<(u64, u32)>, Vec<(i64, u64)>);

fn is_segment_file_name(name: &str, suffix: &str) -> bool {
    name.strip_suffix(suffix)
        .is_some_and(|d| d.len() == 20 && d.bytes().all(|b| b.is_ascii_digit()))
}

fn check_partition_indexes(dir: &Path, interval: u32, seed: u64) {
    let clock = Arc::new(ManualClock::default());
    let store =
        Store::open_with(dir, StoreConfig::default().clock(clock.clone())).expect("open store");
    let cfg = TopicConfig::default()
        .segment_bytes(6000)
        .index_interval_bytes(interval);
    let t = store.create_topic("idx", cfg).unwrap();
    let p = t.partition(0).unwrap().clone();
    let mut rng = XorShift(seed);
    for _ in 0..300 {
        let n = 1 + rng.below(5) as usize;
        let recs: Vec<Record> = (0..n)
            .map(|_| {
                let len = rng.below(120) as usize;
                let r = Record::new(vec![b'x'; len]);
                // Non-monotonic timestamps, some left to the clock.
                match rng.below(4) {
                    0 => r,
                    _ => r.with_timestamp(rng.below(100_000) as i64),
                }
            })
            .collect();
        clock.0.store(rng.below(100_000) as i64, Ordering::SeqCst);
        p.append(&recs).unwrap();
    }
    let segs = p.segments();
    assert!(
        segs.len() >= 4,
        "expected several segments, got {}",
        segs.len()
    );
    let mut total_entries = 0;
    for (i, seg) in segs.iter().enumerate() {
        let sealed = i + 1 < segs.len();
        let log = std::fs::read(seg.log_path()).unwrap();
        assert_eq!(log.len() as u64, seg.size());
        let entries = seg.offset_index().unwrap();
        // Strictly increasing, each entry the start of a batch whose last offset it names.
        for w in entries.windows(2) {
            assert!(w[0].0 < w[1].0 && w[0].1 < w[1].1, "not increasing: {w:?}");
        }
        for &(off, pos) in &entries {
            let b = Batch::parse(&log[pos as usize..]).expect("index points at a batch");
            assert_eq!(b.last_offset(), off, "entry ({off}, {pos})");
            assert!(off >= seg.base_offset());
        }
        let times = seg.time_index().unwrap();
        for w in times.windows(2) {
            assert!(w[0].0 < w[1].0 && w[0].1 <= w[1].1, "time index: {w:?}");
        }
        let (want_offsets, want_times) =
            expected_indexes(&log, seg.base_offset(), interval as u64, sealed);
        assert_eq!(entries, want_offsets, "offset index of segment {i}");
        assert_eq!(times, want_times, "time index of segment {i}");
        assert_eq!(seg.index_entries().unwrap(), (entries.len(), times.len()));
        total_entries += entries.len();
    }
    assert!(total_entries > 10, "too few index entries to test anything");

    // Index files on disk after close: exactly the entries, named by 20-digit base offset.
    let expected: Vec<(u64, Indexes)> = segs
        .iter()
        .map(|s| {
            let log = std::fs::read(s.log_path()).unwrap();
            let indexes = expected_indexes(&log, s.base_offset(), interval as u64, true);
            (s.base_offset(), indexes)
        })
        .collect();
    drop(segs);
    drop(p);
    drop(t);
    store.close().unwrap();

    let pdir = dir.join("idx-0");
    let mut names: Vec<String> = std::fs::read_dir(&pdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), expected.len() * 3, "files: {names:?}");
    for name in &names {
        assert!(
            is_segment_file_name(name, ".log")
                || is_segment_file_name(name, ".index")
                || is_segment_file_name(name, ".timeindex"),
            "unexpected file {name}"
        );
    }
    for (base, (offsets, times)) in &expected {
        let index = std::fs::read(pdir.join(format!("{base:020}.index"))).unwrap();
        let tindex = std::fs::read(pdir.join(format!("{base:020}.timeindex"))).unwrap();
        assert_eq!(index.len(), offsets.len() * 8, "{base:020}.index");
        assert_eq!(tindex.len(), times.len() * 12, "{base:020}.timeindex");
        let on_disk: Vec<(u64, u32)> = index
            .chunks_exact(8)
            .map(|e| {
                let (rel, pos) = seglog::segment::decode_index_entry(e);
                (base + rel as u64, pos)
            })
            .collect();
        assert_eq!(&on_disk, offsets);
        let on_disk: Vec<(i64, u64)> = tindex
            .chunks_exact(12)
            .map(|e| {
                let (ts, rel) = seglog::segment::decode_timeindex_entry(e);
                (ts, base + rel as u64)
            })
            .collect();
        assert_eq!(&on_disk, times);
    }

    // Reopening keeps the same entries.
    let store = Store::open_with(dir, StoreConfig::default().clock(clock)).unwrap();
    let p = store.topic("idx").unwrap().partition(0).unwrap().clone();
    let reopened: Vec<(u64, Indexes)> = p
        .segments()
        .iter()
        .map(|s| {
            (
                s.base_offset(),
                (s.offset_index().unwrap(), s.time_index().unwrap()),
            )
        })
        .collect();
    assert_eq!(reopened, expected);
    store.close().unwrap();
}

#[test]
fn partition_index_entries_follow_kafka_rule() {
    for (interval, seed) in [(0u32, 1u64), (1, 2), (200, 3), (700, 4), (4096, 5)] {
        let dir = tempfile::tempdir().unwrap();
        check_partition_indexes(dir.path(), interval, seed);
    }
}

#[test]
fn index_entries_make_every_offset_readable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cfg = TopicConfig::default()
        .segment_bytes(4000)
        .index_interval_bytes(150);
    let p = create(&store, "r", cfg);
    for i in 0..200u64 {
        let n = 1 + (i % 4) as usize;
        let recs: Vec<Record> = (0..n).map(|j| Record::new(format!("{i}-{j}"))).collect();
        p.append(&recs).unwrap();
    }
    let segs = p.segments();
    let mut checked_entries = 0;
    for seg in &segs {
        for (off, _) in seg.offset_index().unwrap() {
            // At the entry, one below it, one past it.
            for o in [off.saturating_sub(1), off, off + 1] {
                if o < p.log_end_offset() {
                    let f = p.read(o, 1).unwrap();
                    assert_eq!(f.records().next().unwrap().offset(), o);
                    checked_entries += 1;
                }
            }
        }
    }
    assert!(checked_entries > 30);
    store.close().unwrap();
}

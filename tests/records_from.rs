//! `Partition::records_from`: a model test (plain and transactional batches, markers,
//! offset gaps, compression, compaction, rolls across segments) and its edge cases (the
//! log's ends, errors, retention, polling after the end, read-committed, durable-only).

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use seglog::record::{encode_batch, BatchSpec, EndTxnMarker, MarkerType, TRANSACTIONAL_BIT};
use seglog::{
    CleanupPolicy, Compression, ConsumerRecord, Error, Header, OffsetMode, Partition, Record,
    Records, TopicConfig,
};

use common::ManualClock;

const T: i64 = 1_700_000_000_000;

/// A record's content as compared: offset, key, value, headers, timestamp.
type Content = (u64, Option<Vec<u8>>, Option<Vec<u8>>, Vec<Header>, i64);

fn content(r: &ConsumerRecord) -> Content {
    (
        r.offset,
        r.key.clone(),
        r.value.clone(),
        r.headers.clone(),
        r.timestamp,
    )
}

/// Where a record's transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Plain,
    Open(i64),
    Committed,
    Aborted,
}

/// Everything appended: each data record by offset, with its transaction's status.
#[derive(Debug, Default)]
struct Model {
    recs: BTreeMap<u64, (Content, Status)>,
    /// The log end offset.
    end: u64,
    /// Each producer's open transaction: its first offset.
    open: BTreeMap<i64, u64>,
    compacted: bool,
}

impl Model {
    /// The last stable offset: the first offset of the first open transaction.
    fn lso(&self) -> u64 {
        self.open.values().copied().min().unwrap_or(self.end)
    }

    /// The records a read from `from` yields, all of them or only committed ones.
    fn expected(&self, from: u64, committed: bool) -> Vec<Content> {
        let lso = self.lso();
        self.recs
            .range(from..)
            .filter(|(&o, (_, s))| {
                !committed || (o < lso && matches!(s, Status::Plain | Status::Committed))
            })
            .map(|(_, (c, _))| c.clone())
            .collect()
    }
}

/// One step of the model test.
#[derive(Debug, Clone)]
enum Op {
    /// A plain batch through `append` (keys and values; keys 0..4 so compaction finds
    /// duplicates).
    Append(Vec<(u8, Vec<u8>, bool)>),
    /// A plain batch through `append_raw` at `gap` offsets past the log end.
    Gap(u8, Vec<(u8, Vec<u8>, bool)>),
    /// A transactional batch of producer `pid` (opening its transaction if none is open).
    Txn(i64, Vec<(u8, Vec<u8>, bool)>),
    /// The producer's COMMIT or ABORT marker, if it has a transaction open.
    End(i64, bool),
    /// A compaction pass.
    Compact,
    /// A fresh `records_from` at `from` (a fraction of the log end, in 1/256ths, past it
    /// up to 1/16), reading `fetch_bytes` at a time, committed or not.
    Check(u16, u16, bool),
}

fn recs() -> impl Strategy<Value = Vec<(u8, Vec<u8>, bool)>> {
    prop::collection::vec(
        (
            0u8..4,
            prop::collection::vec(any::<u8>(), 0..40),
            any::<bool>(),
        ),
        1..6,
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => recs().prop_map(Op::Append),
        1 => (1u8..4, recs()).prop_map(|(g, r)| Op::Gap(g, r)),
        3 => (1i64..4, recs()).prop_map(|(p, r)| Op::Txn(p, r)),
        2 => (1i64..4, any::<bool>()).prop_map(|(p, c)| Op::End(p, c)),
        1 => Just(Op::Compact),
        2 => (0u16..272, 0u16..3000, any::<bool>()).prop_map(|(f, b, c)| Op::Check(f, b, c)),
    ]
}

/// The records `(key, value, with a header)` as appended at `base`, timestamps by offset.
fn records(base: u64, rs: &[(u8, Vec<u8>, bool)]) -> Vec<Record> {
    rs.iter()
        .enumerate()
        .map(|(i, (k, v, h))| {
            let mut r = Record::new(v.clone())
                .with_key(vec![*k])
                .with_timestamp(T + base as i64 + i as i64);
            if *h {
                r = r.with_header("h", Some(vec![*k, 1]));
            }
            r
        })
        .collect()
}

fn stored(offset: u64, r: &Record) -> Content {
    (
        offset,
        r.key.clone(),
        r.value.clone(),
        r.headers.clone(),
        r.timestamp.unwrap(),
    )
}

/// Appends `recs` with `append_raw` at `base` (kept), transactional for `pid` when given.
fn append_raw(p: &Partition, base: u64, recs: &[Record], pid: Option<i64>, codec: Compression) {
    let mut spec = BatchSpec::new(base, T);
    spec.compression = codec;
    if let Some(pid) = pid {
        spec.producer_id = pid;
        spec.producer_epoch = 0;
        spec.base_sequence = base as i32;
        spec.attributes |= TRANSACTIONAL_BIT;
    }
    let mut buf = Vec::new();
    encode_batch(&mut buf, &spec, recs).unwrap();
    p.append_raw(&buf, OffsetMode::Keep).unwrap();
}

fn marker(p: &Partition, offset: u64, pid: i64, commit: bool) {
    let m = EndTxnMarker {
        offset,
        producer_id: pid,
        producer_epoch: 0,
        coordinator_epoch: 1,
        marker: if commit {
            MarkerType::Commit
        } else {
            MarkerType::Abort
        },
        timestamp: T,
        partition_leader_epoch: 0,
    };
    let mut buf = Vec::new();
    m.encode(&mut buf).unwrap();
    p.append_raw(&buf, OffsetMode::Keep).unwrap();
}

/// Drains `it` (to its `None`), panicking on an error.
fn drain(it: &mut Records) -> Vec<Content> {
    it.by_ref()
        .map(|r| content(&r.unwrap_or_else(|e| panic!("records_from failed: {e}"))))
        .collect()
}

/// The records one read of everything from `from` gives (a single fetch, no loop): the
/// oracle for a compacted log.
fn one_read(p: &Partition, from: u64, committed: bool) -> Vec<Content> {
    let f = if committed {
        p.read_committed(from, usize::MAX).unwrap()
    } else {
        p.read(from, usize::MAX).unwrap()
    };
    f.records()
        .map(|r| stored(r.offset(), &r.to_record()))
        .collect()
}

/// Checks a fresh iterator from `from` against the model (and, once compacted, against
/// one read of everything, each record's content against the model's).
fn check(p: &Partition, m: &Model, from: u64, fetch_bytes: usize, committed: bool) {
    let mut it = p.records_from(from).fetch_bytes(fetch_bytes);
    if committed {
        it = it.read_committed();
    }
    if from > m.end {
        let first = it.next();
        assert!(
            matches!(first, Some(Err(Error::OffsetOutOfRange { offset, .. })) if offset == from),
            "from {from} past the end {}: {first:?}",
            m.end
        );
        assert!(it.next().is_none(), "an error ends the iterator");
        return;
    }
    let got = drain(&mut it);
    let end = if committed { m.lso() } else { m.end };
    assert_eq!(it.position(), end.max(from), "position at the end");
    if m.compacted {
        assert_eq!(got, one_read(p, from, committed), "against one read");
        let mut last = None;
        for c in &got {
            let (want, status) = &m.recs[&c.0];
            assert_eq!(c, want, "the record at {}", c.0);
            assert!(!committed || !matches!(status, Status::Aborted | Status::Open(_)));
            assert!(last < Some(c.0), "offsets increase");
            last = Some(c.0);
        }
    } else {
        assert_eq!(got, m.expected(from, committed), "from {from}");
    }
}

fn run(ops: Vec<Op>, compress: bool, segment_bytes: u64) {
    let _shared = common::shared();
    let codec = if compress && Compression::Snappy.is_available() {
        Compression::Snappy
    } else {
        Compression::None
    };
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), &ManualClock::at(T));
    let cfg = TopicConfig::default()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(segment_bytes)
        .compression(codec);
    let p = common::create(&store, "t", cfg);
    let mut m = Model::default();
    // Kept across the steps and drained after each: it sees every record once, in order,
    // however the log grew meanwhile (compaction only touches what it already read).
    let mut live = p.records_from(0).fetch_bytes(333);
    let mut live_got = Vec::new();
    for op in ops {
        match op {
            Op::Append(rs) => {
                let recs = records(m.end, &rs);
                p.append(&recs).unwrap();
                for (i, r) in recs.iter().enumerate() {
                    let o = m.end + i as u64;
                    m.recs.insert(o, (stored(o, r), Status::Plain));
                }
                m.end += recs.len() as u64;
            }
            Op::Gap(g, rs) => {
                let base = m.end + u64::from(g);
                let recs = records(base, &rs);
                append_raw(&p, base, &recs, None, codec);
                for (i, r) in recs.iter().enumerate() {
                    let o = base + i as u64;
                    m.recs.insert(o, (stored(o, r), Status::Plain));
                }
                m.end = base + recs.len() as u64;
            }
            Op::Txn(pid, rs) => {
                let recs = records(m.end, &rs);
                append_raw(&p, m.end, &recs, Some(pid), codec);
                m.open.entry(pid).or_insert(m.end);
                for (i, r) in recs.iter().enumerate() {
                    let o = m.end + i as u64;
                    m.recs.insert(o, (stored(o, r), Status::Open(pid)));
                }
                m.end += recs.len() as u64;
            }
            Op::End(pid, commit) => {
                if m.open.remove(&pid).is_none() {
                    continue;
                }
                marker(&p, m.end, pid, commit);
                m.end += 1;
                for (_, s) in m.recs.values_mut() {
                    if *s == Status::Open(pid) {
                        *s = if commit {
                            Status::Committed
                        } else {
                            Status::Aborted
                        };
                    }
                }
            }
            Op::Compact => {
                let report = p.compact_now().unwrap();
                if report.cleaned {
                    m.compacted = true;
                }
            }
            Op::Check(f, b, committed) => {
                let from = m.end * u64::from(f) / 256;
                check(&p, &m, from, usize::from(b), committed);
            }
        }
        live_got.extend(drain(&mut live));
        assert_eq!(live.position(), m.end, "the live iterator's position");
    }
    let all: Vec<Content> = m.recs.values().map(|(c, _)| c.clone()).collect();
    assert_eq!(live_got, all, "the live iterator saw every record once");
    check(&p, &m, 0, 1 << 20, false);
    check(&p, &m, 0, 0, true);
    check(&p, &m, m.end, 100, false);
    check(&p, &m, m.end + 1, 100, false);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn records_from_matches_the_model(
        ops in prop::collection::vec(op(), 1..60),
        compress in any::<bool>(),
        segment_bytes in 300u64..2000,
    ) {
        run(ops, compress, segment_bytes);
    }
}

fn setup(cfg: TopicConfig) -> (tempfile::TempDir, seglog::Store, Partition) {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), &ManualClock::at(T));
    let p = common::create(&store, "t", cfg);
    (dir, store, p)
}

fn values(it: &mut Records) -> Vec<String> {
    it.by_ref()
        .map(|r| String::from_utf8(r.unwrap().value.unwrap()).unwrap())
        .collect()
}

fn append(p: &Partition, vals: &[&str]) {
    let recs: Vec<Record> = vals.iter().map(|v| Record::new(*v)).collect();
    p.append(&recs).unwrap();
}

#[test]
fn records_below_the_offset_in_its_batch_are_skipped() {
    let _shared = common::shared();
    let (_dir, _store, p) = setup(TopicConfig::default());
    append(&p, &["a", "b", "c", "d"]);
    append(&p, &["e"]);
    let mut it = p.records_from(2);
    assert_eq!(it.position(), 2);
    assert_eq!(values(&mut it), ["c", "d", "e"]);
    assert_eq!(it.position(), 5);
    let r = p.records_from(4).next().unwrap().unwrap();
    assert_eq!((&*r.topic, r.partition, r.offset), ("t", 0, 4));
}

#[test]
fn an_offset_outside_the_log_is_an_error_from_the_first_next() {
    let _shared = common::shared();
    let (_dir, _store, p) = setup(TopicConfig::default().segment_bytes(200));
    for i in 0..20 {
        append(&p, &[&format!("v{i:02}")]);
    }
    // Past the end: an error, then nothing (not the same error forever).
    let mut past = p.records_from(21);
    match past.next() {
        Some(Err(Error::OffsetOutOfRange {
            offset, log_end, ..
        })) => assert_eq!((offset, log_end), (21, 20)),
        other => panic!("past the end: {other:?}"),
    }
    assert!(past.next().is_none());
    assert!(past.next().is_none());
    assert_eq!(past.position(), 21);
    // At the end: nothing, no error.
    assert!(p.records_from(20).next().is_none());
    // Below the start: an error, not a silent skip to the start.
    let start = p.delete_records_before(10).unwrap();
    assert!(start > 0 && start <= 10, "log start {start}");
    let mut below = p.records_from(start - 1);
    assert!(matches!(
        below.next(),
        Some(Err(Error::OffsetOutOfRange { offset, log_start, .. })) if offset == start - 1 && log_start == start
    ));
    assert!(below.next().is_none());
    assert_eq!(values(&mut p.records_from(start)).len() as u64, 20 - start);
}

#[test]
fn records_appended_while_iterating_are_yielded_and_none_is_not_final() {
    let _shared = common::shared();
    let (_dir, _store, p) = setup(TopicConfig::default());
    append(&p, &["a", "b"]);
    let mut it = p.records_from(0).fetch_bytes(1);
    assert_eq!(it.next().unwrap().unwrap().offset, 0);
    // Appended after the iterator started, before it reached the end: yielded.
    append(&p, &["c"]);
    assert_eq!(values(&mut it), ["b", "c"]);
    assert!(it.next().is_none(), "at the log end");
    assert_eq!(it.position(), 3);
    append(&p, &["d", "e"]);
    assert_eq!(values(&mut it), ["d", "e"]);
    assert_eq!(it.position(), 5);
}

#[test]
fn retention_deleting_the_segment_under_the_iterator_is_out_of_range() {
    let _shared = common::shared();
    let (_dir, _store, p) = setup(TopicConfig::default().segment_bytes(200));
    for i in 0..30 {
        append(&p, &[&format!("v{i:02}")]);
    }
    assert!(p.segments().len() > 3);
    // One batch a read: the iterator holds only the first batch when retention runs.
    let mut it = p.records_from(0).fetch_bytes(1);
    assert_eq!(it.next().unwrap().unwrap().offset, 0);
    let start = p.delete_records_before(25).unwrap();
    assert!(start > 1, "log start {start}");
    match it.next() {
        Some(Err(Error::OffsetOutOfRange {
            offset, log_start, ..
        })) => assert_eq!((offset, log_start), (1, start)),
        other => panic!("after retention: {other:?}"),
    }
    assert!(it.next().is_none());
    assert_eq!(it.position(), 1, "where it stopped");
}

#[test]
fn truncation_below_the_position_is_out_of_range() {
    let _shared = common::shared();
    let (_dir, _store, p) = setup(TopicConfig::default());
    append(&p, &["a", "b", "c"]);
    let mut it = p.records_from(0);
    assert_eq!(values(&mut it), ["a", "b", "c"]);
    p.truncate_to(1).unwrap();
    assert!(matches!(
        it.next(),
        Some(Err(Error::OffsetOutOfRange { offset: 3, .. }))
    ));
}

#[test]
fn a_corrupt_batch_is_yielded_once_then_the_iterator_ends() {
    let _shared = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    {
        let store = common::open(dir.path(), &clock);
        let p = common::create(&store, "t", TopicConfig::default());
        append(&p, &["first"]);
        append(&p, &["second-value"]);
        store.close().unwrap();
    }
    // Damage the second batch's value (its CRC no longer matches). Reopening finds a
    // clean shutdown and does not scan, so the read finds it.
    let log = &common::log_files(&common::partition_dir(dir.path(), "t", 0))[0];
    let bytes = std::fs::read(log).unwrap();
    let pos = bytes
        .windows(12)
        .position(|w| w == b"second-value")
        .unwrap();
    common::flip(log, pos, 0x01);
    let store = common::open(dir.path(), &clock);
    let p = common::partition(&store, "t");
    let mut it = p.records_from(0).fetch_bytes(1);
    let got: Vec<_> = it.by_ref().take(5).collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].as_ref().unwrap().offset, 0);
    assert!(
        matches!(got[1], Err(Error::Corrupt { .. })),
        "the damaged batch: {:?}",
        got[1]
    );
    assert!(it.next().is_none(), "not the same error again");
    assert_eq!(it.position(), 1);
}

#[test]
fn compaction_gaps_and_markers_are_stepped_over() {
    let _shared = common::shared();
    let (_dir, _store, p) = setup(TopicConfig::default());
    append(&p, &["a"]);
    // A gap of 5 offsets, then a transactional batch and its COMMIT marker.
    let recs = records(6, &[(1, b"g".to_vec(), false)]);
    append_raw(&p, 6, &recs, None, Compression::None);
    let recs = records(7, &[(1, b"t".to_vec(), false)]);
    append_raw(&p, 7, &recs, Some(9), Compression::None);
    marker(&p, 8, 9, true);
    append(&p, &["z"]);
    let offsets = |from: u64, bytes: usize| -> Vec<u64> {
        p.records_from(from)
            .fetch_bytes(bytes)
            .map(|r| r.unwrap().offset)
            .collect()
    };
    for bytes in [0, 100, 1 << 20] {
        assert_eq!(offsets(0, bytes), [0, 6, 7, 9]);
        assert_eq!(offsets(2, bytes), [6, 7, 9], "from inside the gap");
        assert_eq!(offsets(8, bytes), [9], "from the marker");
    }
    // Past a gap with nothing yielded, the position still moves on.
    let mut it = p.records_from(1).fetch_bytes(0);
    assert_eq!(it.next().unwrap().unwrap().offset, 6);
    assert_eq!(it.position(), 7);
}

#[test]
fn read_committed_stops_at_the_last_stable_offset_and_drops_aborted_records() {
    let _shared = common::shared();
    let (_dir, _store, p) = setup(TopicConfig::default());
    let txn = |base: u64, pid: i64, v: &[u8]| {
        let recs = records(base, &[(0, v.to_vec(), false)]);
        append_raw(&p, base, &recs, Some(pid), Compression::None);
    };
    txn(0, 1, b"aborted");
    txn(1, 2, b"committed");
    marker(&p, 2, 1, false);
    marker(&p, 3, 2, true);
    txn(4, 3, b"open");
    append(&p, &["plain"]);
    let committed = |it: Records| -> Vec<u64> { it.map(|r| r.unwrap().offset).collect() };
    let mut it = p.records_from(0).read_committed();
    assert_eq!(committed(p.records_from(0).read_committed()), [1]);
    assert_eq!(
        it.by_ref().map(|r| r.unwrap().offset).collect::<Vec<_>>(),
        [1]
    );
    assert_eq!(it.position(), 4, "stopped at the last stable offset");
    assert_eq!(committed(p.records_from(0)), [0, 1, 4, 5]);
    // The open transaction commits: the same iterator goes on past it.
    marker(&p, 6, 3, true);
    assert_eq!(it.map(|r| r.unwrap().offset).collect::<Vec<_>>(), [4, 5]);
}

#[test]
fn durable_only_stops_at_the_durable_offset() {
    let _shared = common::shared();
    let (_dir, _store, p) = setup(TopicConfig::default());
    append(&p, &["a", "b"]);
    p.flush().unwrap();
    append(&p, &["c"]);
    assert_eq!(p.durable_offset(), 2);
    let mut it = p.records_from(0).durable_only();
    assert_eq!(values(&mut it), ["a", "b"]);
    assert_eq!(it.position(), 2);
    p.flush().unwrap();
    assert_eq!(values(&mut it), ["c"]);
    // Between the durable offset and the log end: nothing yet, no error.
    append(&p, &["d"]);
    assert!(p.records_from(3).durable_only().next().is_none());
    assert_eq!(values(&mut p.records_from(3)), ["d"]);
}

#[test]
fn records_is_static_and_send_and_goes_to_another_thread() {
    fn static_send<T: Send + 'static>(_: &T) {}
    let _shared = common::shared();
    let (_dir, _store, p) = setup(TopicConfig::default());
    append(&p, &["a", "b", "c"]);
    let it = p.records_from(1);
    static_send(&it);
    drop(p);
    let got = std::thread::spawn(move || {
        let mut it = it;
        values(&mut it)
    })
    .join()
    .unwrap();
    assert_eq!(got, ["b", "c"]);
}

#[test]
fn compressed_batches_yield_their_records_from_inside() {
    let _shared = common::shared();
    if !(Compression::Lz4 { level: None }).is_available() {
        eprintln!("skipped: seglog built without the lz4 feature");
        return;
    }
    let (_dir, _store, p) =
        setup(TopicConfig::default().compression(Compression::Lz4 { level: None }));
    let vals: Vec<String> = (0..50).map(|i| format!("value-{i}")).collect();
    let refs: Vec<&str> = vals.iter().map(String::as_str).collect();
    append(&p, &refs[..25]);
    append(&p, &refs[25..]);
    for bytes in [0, 64, 1 << 20] {
        let got = values(&mut p.records_from(13).fetch_bytes(bytes));
        assert_eq!(got, vals[13..], "fetch_bytes {bytes}");
    }
}

#[test]
fn the_position_moves_past_what_is_stepped_over() {
    let _shared = common::shared();
    let (_dir, _store, p) = setup(
        TopicConfig::default()
            .cleanup_policy(CleanupPolicy::Compact)
            .segment_bytes(128),
    );
    // Compaction removes offset 1 (key 2, written again at 2) but keeps its batch's last
    // offset: past record 0, the iterator is past offset 1 too.
    let recs = records(0, &[(1, b"a".to_vec(), false), (2, b"b".to_vec(), false)]);
    p.append(&recs).unwrap();
    p.append(&records(2, &[(2, b"c".to_vec(), false)])).unwrap();
    p.append(&records(3, &[(3, b"d".to_vec(), false)])).unwrap();
    assert!(p.segments().len() > 1);
    assert!(p.compact_now().unwrap().records_removed > 0);
    let mut it = p.records_from(0).fetch_bytes(0);
    assert_eq!(it.next().unwrap().unwrap().offset, 0);
    assert_eq!(it.position(), 2, "past the removed record");
    assert_eq!(it.next().unwrap().unwrap().offset, 2);

    // Read-committed, from inside a gap that runs up to an open transaction: nothing, and
    // the position is the last stable offset.
    let (_dir, _store, p) = setup(TopicConfig::default());
    append(&p, &["a"]);
    let recs = records(5, &[(0, b"open".to_vec(), false)]);
    append_raw(&p, 5, &recs, Some(4), Compression::None);
    let mut it = p.records_from(1).read_committed();
    assert!(it.next().is_none());
    assert_eq!(it.position(), 5);
}

#[test]
fn debug_names_the_partition_and_position_not_the_bytes() {
    let _shared = common::shared();
    let (_dir, _store, p) = setup(TopicConfig::default());
    append(&p, &["a", "b"]);
    let mut it = p.records_from(0);
    it.next().unwrap().unwrap();
    let s = format!("{it:?}");
    assert!(s.contains("t-0") && s.contains("position: 1"), "{s}");
    assert!(s.len() < 300, "{s}");
}

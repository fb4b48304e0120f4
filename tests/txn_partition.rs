//! Transactions in a partition: control batches never returned, read-committed reads and
//! consumers, the last stable offset, and Kafka's `.txnindex` files kept and rebuilt.
//! Transactional batches and markers go in through `append_raw` as a follower would write
//! them (`OffsetMode::Keep`), built with seglog's encoders as Kafka's producer and
//! coordinator build them.

mod common;

use std::time::Duration;

use seglog::record::{encode_batch, BatchSpec, EndTxnMarker, MarkerType, TRANSACTIONAL_BIT};
use seglog::segment::txnindex::AbortedTxn;
use seglog::{
    ConsumerConfig, Isolation, OffsetMode, OffsetReset, Partition, Record, Store, StoreConfig,
    TopicConfig,
};

const T: i64 = 1_700_000_000_000;

/// A log being written: the next offset, and the bytes appended.
struct Log<'a> {
    p: &'a Partition,
    next: u64,
}

impl Log<'_> {
    /// `n` records of producer `pid` (transactional when `txn`; `pid` -1: no producer).
    fn data(&mut self, pid: i64, txn: bool, n: usize) -> Vec<u64> {
        let mut spec = BatchSpec::new(self.next, T);
        if pid >= 0 {
            spec.producer_id = pid;
            spec.producer_epoch = 0;
            spec.base_sequence = self.next as i32;
        }
        if txn {
            spec.attributes |= TRANSACTIONAL_BIT;
        }
        let records: Vec<Record> = (0..n)
            .map(|i| Record::new(format!("p{pid}-{}", self.next + i as u64)))
            .collect();
        let mut buf = Vec::new();
        encode_batch(&mut buf, &spec, &records).unwrap();
        self.p.append_raw(&buf, OffsetMode::Keep).unwrap();
        let offsets = (self.next..self.next + n as u64).collect();
        self.next += n as u64;
        offsets
    }

    fn marker(&mut self, pid: i64, marker: MarkerType) -> u64 {
        let m = EndTxnMarker {
            offset: self.next,
            producer_id: pid,
            producer_epoch: 0,
            coordinator_epoch: 5,
            marker,
            timestamp: T,
            partition_leader_epoch: 0,
        };
        let mut buf = Vec::new();
        m.encode(&mut buf).unwrap();
        self.p.append_raw(&buf, OffsetMode::Keep).unwrap();
        self.next += 1;
        self.next - 1
    }
}

fn offsets_read(p: &Partition, committed: bool) -> Vec<u64> {
    let mut out = Vec::new();
    let mut next = p.log_start_offset();
    loop {
        let f = if committed {
            p.read_committed(next, 1 << 20).unwrap()
        } else {
            p.read(next, 1 << 20).unwrap()
        };
        if f.next_offset() == next {
            break;
        }
        out.extend(f.records().map(|r| r.offset()));
        next = f.next_offset();
    }
    out
}

fn config() -> StoreConfig {
    StoreConfig::default().maintenance_interval(None)
}

/// The scenario: P1 commits, P2 aborts, plain records, P3 still open, interleaved.
/// Returns (committed-visible offsets, all data offsets, P3's first offset, abort entry).
fn scenario(p: &Partition) -> (Vec<u64>, Vec<u64>, u64, AbortedTxn) {
    let mut log = Log { p, next: 0 };
    let mut visible = Vec::new();
    let mut all = Vec::new();
    let a = log.data(1, true, 3); // P1 starts at 0
    let b = log.data(2, true, 2); // P2 starts at 3
    let c = log.data(-1, false, 2); // plain
    let d = log.data(1, true, 1);
    let m1 = log.marker(1, MarkerType::Commit);
    let e = log.data(2, true, 2);
    let m2 = log.marker(2, MarkerType::Abort);
    let f = log.data(3, true, 2); // P3, open
    let g = log.data(7, false, 1); // idempotent, not transactional
    visible.extend(a.iter().chain(&c).chain(&d).chain(&g));
    all.extend(
        a.iter()
            .chain(&b)
            .chain(&c)
            .chain(&d)
            .chain(&e)
            .chain(&f)
            .chain(&g),
    );
    let _ = m1;
    visible.sort_unstable();
    all.sort_unstable();
    // Kafka's entry: P2's transaction from 3 to its marker; the last stable offset when the
    // marker was written is P1's... no: P1 committed before, so no other transaction was
    // open: the marker's offset + 1.
    let entry = AbortedTxn {
        producer_id: 2,
        first_offset: b[0],
        last_offset: m2,
        last_stable_offset: m2 + 1,
    };
    (visible, all, f[0], entry)
}

#[test]
fn read_committed_skips_aborted_and_open_transactions_and_markers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), config()).unwrap();
    let p = common::create(&store, "t", TopicConfig::default());
    let (visible, all, p3_first, entry) = scenario(&p);
    assert_eq!(
        offsets_read(&p, false),
        all,
        "read-uncommitted: every data record"
    );
    assert_eq!(p.last_stable_offset().unwrap(), p3_first);
    let below_lso: Vec<u64> = visible.iter().copied().filter(|&o| o < p3_first).collect();
    assert_eq!(offsets_read(&p, true), below_lso);
    // The aborted transaction's entry, in Kafka's bytes, in the segment of the marker.
    let seg = &p.segments()[0];
    assert_eq!(seg.aborted_txns().unwrap(), [entry]);
    assert_eq!(std::fs::read(seg.txn_index_path()).unwrap(), entry.encode());
    // P3 commits: everything below the log end is stable.
    let mut log = Log {
        p: &p,
        next: p.log_end_offset(),
    };
    let m = log.marker(3, MarkerType::Commit);
    assert_eq!(p.last_stable_offset().unwrap(), m + 1);
    let mut want = visible.clone();
    want.extend([p3_first, p3_first + 1]);
    want.sort_unstable();
    assert_eq!(offsets_read(&p, true), want);
    store.close().unwrap();
}

#[test]
fn txn_state_and_index_survive_clean_and_unclean_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let (visible, p3_first, entry) = {
        let store = Store::open_with(dir.path(), config()).unwrap();
        let p = common::create(&store, "t", TopicConfig::default());
        let (visible, _, p3_first, entry) = scenario(&p);
        store.close().unwrap();
        (visible, p3_first, entry)
    };
    let below: Vec<u64> = visible.iter().copied().filter(|&o| o < p3_first).collect();
    let txnindex = dir.path().join("t-0").join(format!("{:020}.txnindex", 0));
    // Clean reopen: the state is rebuilt from the log, the file unchanged.
    {
        let store = Store::open_with(dir.path(), config()).unwrap();
        let p = common::partition(&store, "t");
        assert_eq!(p.last_stable_offset().unwrap(), p3_first);
        assert_eq!(offsets_read(&p, true), below);
        drop(store); // no close: the next open is unclean
    }
    assert_eq!(std::fs::read(&txnindex).unwrap(), entry.encode());
    // Unclean, with the index file lost: rebuilt identically on first use.
    std::fs::remove_file(&txnindex).unwrap();
    let _ = std::fs::remove_file(dir.path().join(seglog::CLEAN_SHUTDOWN_FILE));
    let store = Store::open_with(dir.path(), config()).unwrap();
    let p = common::partition(&store, "t");
    assert_eq!(offsets_read(&p, true), below);
    assert_eq!(std::fs::read(&txnindex).unwrap(), entry.encode());
    store.close().unwrap();
}

#[test]
fn truncation_inside_a_transaction_moves_the_last_stable_offset() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), config()).unwrap();
    let p = common::create(&store, "t", TopicConfig::default());
    let (_, _, p3_first, _) = scenario(&p);
    assert_eq!(p.last_stable_offset().unwrap(), p3_first);
    // Cut P3's transaction (and what follows) off: nothing is open any more.
    p.truncate_to(p3_first).unwrap();
    assert_eq!(p.last_stable_offset().unwrap(), p3_first);
    assert_eq!(p.log_end_offset(), p3_first);
    // Cut inside P2's aborted transaction, before its marker: P2 is open again.
    p.truncate_to(9).unwrap();
    assert_eq!(p.last_stable_offset().unwrap(), 3);
    assert!(p.segments()[0].aborted_txns().unwrap().is_empty());
    store.close().unwrap();
}

#[test]
fn read_committed_consumers_never_stall_on_markers_or_aborted_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), config()).unwrap();
    let p = common::create(&store, "t", TopicConfig::default());
    let (visible, _, p3_first, _) = scenario(&p);
    let mut c = store
        .consumer(
            "t",
            ConsumerConfig::default()
                .reset(OffsetReset::Earliest)
                .isolation(Isolation::ReadCommitted),
        )
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..20 {
        let polled = c.poll(100, Duration::from_millis(20)).unwrap();
        got.extend(polled.iter().map(|r| r.offset));
    }
    let below: Vec<u64> = visible.iter().copied().filter(|&o| o < p3_first).collect();
    assert_eq!(got, below);
    // Once P3 commits, its records and the rest arrive.
    let mut log = Log {
        p: &p,
        next: p.log_end_offset(),
    };
    log.marker(3, MarkerType::Commit);
    let mut rest = Vec::new();
    for _ in 0..20 {
        rest.extend(
            c.poll(100, Duration::from_millis(20))
                .unwrap()
                .iter()
                .map(|r| r.offset),
        );
    }
    let mut want: Vec<u64> = visible.iter().copied().filter(|&o| o >= p3_first).collect();
    want.extend([p3_first, p3_first + 1]);
    want.sort_unstable();
    assert_eq!(rest, want);
    store.close().unwrap();
}

#[test]
fn compaction_keeps_aborted_transactions_out_of_committed_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), config()).unwrap();
    let cfg = TopicConfig::default()
        .cleanup_policy(seglog::CleanupPolicy::Compact)
        .segment_bytes(600)
        .delete_retention_ms(0)
        .min_cleanable_dirty_ratio(0.01);
    let p = common::create(&store, "t", cfg);
    // Keys are needed on a compacted topic: keyed records, one key per record.
    let mut next = 0u64;
    let mut put = |pid: i64, txn: bool, n: usize| {
        let mut spec = BatchSpec::new(next, T);
        spec.producer_id = pid;
        spec.producer_epoch = 0;
        spec.base_sequence = next as i32;
        if txn {
            spec.attributes |= TRANSACTIONAL_BIT;
        }
        let records: Vec<Record> = (0..n)
            .map(|i| Record::new(vec![b'v'; 50]).with_key(format!("k{}", next + i as u64)))
            .collect();
        let mut buf = Vec::new();
        encode_batch(&mut buf, &spec, &records).unwrap();
        p.append_raw(&buf, OffsetMode::Keep).unwrap();
        next += n as u64;
    };
    put(2, true, 3); // aborted below
    put(1, false, 3);
    let mut log = Log { p: &p, next };
    let abort = log.marker(2, MarkerType::Abort);
    next = abort + 1;
    for _ in 0..10 {
        let mut spec = BatchSpec::new(next, T);
        spec.producer_id = -1;
        let mut buf = Vec::new();
        encode_batch(
            &mut buf,
            &spec,
            // Overwrites P1's keys k3..k5: compaction has records to remove.
            &[Record::new(vec![b'x'; 50]).with_key(format!("k{}", 3 + next % 3))],
        )
        .unwrap();
        p.append_raw(&buf, OffsetMode::Keep).unwrap();
        next += 1;
    }
    let before = offsets_read(&p, true);
    assert!(!before.contains(&0), "aborted data is not read");
    let report = p.compact().unwrap();
    let after = offsets_read(&p, true);
    assert_ne!(
        after, before,
        "compaction removed overwritten records: {report:?}"
    );
    // Kafka's cleaner rules: the aborted data goes whole; its ABORT marker stays while
    // the pass saw data of its transaction, then goes after its delete horizon (0 here).
    let stored: Vec<u64> = offsets_read(&p, false);
    assert!(
        !stored.iter().any(|&o| o < 3),
        "aborted data still stored: {stored:?}"
    );
    let markers = |p: &Partition| -> usize {
        let f = p.read(p.log_start_offset(), 1 << 20).unwrap();
        f.batches().filter(|b| b.header().is_control()).count()
    };
    assert_eq!(
        markers(&p),
        1,
        "the marker stays while its data was just removed"
    );
    // New overwrites make the log dirty again for each pass.
    let more = |p: &Partition| {
        for i in 0..10 {
            p.append(&[Record::new(vec![b'y'; 50]).with_key(format!("k{}", 3 + i % 3))])
                .unwrap();
        }
    };
    more(&p);
    p.compact().unwrap(); // no data left: the marker gets its delete horizon
    std::thread::sleep(Duration::from_millis(5));
    more(&p);
    p.compact().unwrap(); // past the horizon: removed
    assert_eq!(markers(&p), 0, "the marker outlived its transaction's data");
    // The producer's sequence fields survive compaction on the batches kept.
    let f = p.read(p.log_start_offset(), 1 << 20).unwrap();
    for b in f.batches().filter(|b| b.header().producer_id == 1) {
        assert_eq!(b.header().producer_epoch, 0);
        assert_eq!(b.header().base_sequence, 3);
    }
    assert!(
        !after.iter().any(|&o| o < 3),
        "aborted data read after compaction: {after:?}"
    );
    // And after a reopen (the cleaned segments' `.txnindex` on disk).
    let after = offsets_read(&p, true);
    store.close().unwrap();
    let store = Store::open_with(dir.path(), config()).unwrap();
    let p = common::partition(&store, "t");
    assert_eq!(
        offsets_read(&p, true),
        after,
        "after compaction and a reopen"
    );
    store.close().unwrap();
}

/// An aborted write of a key gives the key no new value: compaction keeps the committed
/// record it would have replaced (Kafka's offset map skips aborted data and markers).
#[test]
fn an_aborted_overwrite_does_not_remove_the_committed_value() {
    let dir = tempfile::tempdir().unwrap();
    let (store, p) = compacted_store(dir.path());
    keyed(&p, 0, -1, false, "A"); // the committed value
    keyed(&p, 1, 9, true, "A"); // an aborted overwrite
    let mut log = Log { p: &p, next: 2 };
    log.marker(9, MarkerType::Abort);
    for i in 3..12 {
        keyed(&p, i, -1, false, &format!("other-{}", i % 2));
    }
    p.compact().unwrap();
    assert_eq!(
        committed_values_of_a(&p),
        vec![0],
        "key A's committed value is kept"
    );
    store.close().unwrap();
}

/// Readers racing an appender never see an open transaction's data as committed: the
/// first unstable offset is published before the log end offset moves past the data
/// (run under `wakedelay.so` to widen every unlock-then-publish window).
#[test]
fn read_committed_never_sees_an_open_transaction_while_appends_race() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), config()).unwrap();
    let p = common::create(&store, "t", TopicConfig::default());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (p, stop) = (p.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut log = Log { p: &p, next: 0 };
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 2_000 {
                log.data(1 + n % 3, true, 2);
                log.marker(1 + n % 3, MarkerType::Commit);
                n += 1;
            }
        })
    };
    let mut checks = 0;
    while !writer.is_finished() {
        let f = p.read_committed(0, 1 << 30).unwrap();
        // Every transactional data batch returned is followed by its marker in the fetch.
        let batches: Vec<_> = f.batches().collect();
        for (i, b) in batches.iter().enumerate() {
            let h = b.header();
            if h.is_transactional() && !h.is_control() {
                let marker = batches[i + 1..]
                    .iter()
                    .find(|m| m.header().is_control() && m.header().producer_id == h.producer_id);
                assert!(
                    marker.is_some(),
                    "offset {} of producer {} read before its transaction ended (fetch to {})",
                    h.base_offset,
                    h.producer_id,
                    f.next_offset()
                );
            }
        }
        checks += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(checks > 0);
    store.close().unwrap();
}

/// Appends one batch of one record of key `key` at `base` (producer `pid`, transactional
/// when `txn`).
fn keyed(p: &Partition, base: u64, pid: i64, txn: bool, key: &str) {
    let mut spec = BatchSpec::new(base, T);
    if pid >= 0 {
        spec.producer_id = pid;
        spec.producer_epoch = 0;
        spec.base_sequence = base as i32;
    }
    if txn {
        spec.attributes |= TRANSACTIONAL_BIT;
    }
    let mut buf = Vec::new();
    encode_batch(
        &mut buf,
        &spec,
        &[Record::new(vec![b'v'; 60]).with_key(key)],
    )
    .unwrap();
    p.append_raw(&buf, OffsetMode::Keep).unwrap();
}

/// Key A's values a read-committed reader sees, with their offsets.
fn committed_values_of_a(p: &Partition) -> Vec<u64> {
    let f = p.read_committed(0, 1 << 20).unwrap();
    f.records()
        .filter(|r| r.key() == Some(&b"A"[..]))
        .map(|r| r.offset())
        .collect()
}

fn compacted_store(dir: &std::path::Path) -> (Store, Partition) {
    let store = Store::open_with(dir, config()).unwrap();
    let cfg = TopicConfig::default()
        .cleanup_policy(seglog::CleanupPolicy::Compact)
        .segment_bytes(400)
        .min_cleanable_dirty_ratio(0.01);
    let p = common::create(&store, "t", cfg);
    (store, p)
}

/// An aborted overwrite whose ABORT marker lies in a segment compaction does not clean
/// (the active one) is still aborted data: Kafka's cleaner collects the aborted
/// transactions from every segment from the cleaned range on, not only the cleaned ones.
#[test]
fn an_aborted_overwrite_with_its_marker_in_the_active_segment_keeps_the_committed_value() {
    let dir = tempfile::tempdir().unwrap();
    let (store, p) = compacted_store(dir.path());
    keyed(&p, 0, -1, false, "A"); // the committed value
    keyed(&p, 1, 9, true, "A"); // an overwrite, aborted below
    for i in 2..12 {
        keyed(&p, i, -1, false, &format!("other-{}", i % 2));
    }
    assert!(p.segments().len() > 2, "rolled: {}", p.segments().len());
    let mut log = Log { p: &p, next: 12 };
    log.marker(9, MarkerType::Abort); // in the active segment
    assert_eq!(committed_values_of_a(&p), vec![0]);
    p.compact_now().unwrap();
    assert_eq!(
        committed_values_of_a(&p),
        vec![0],
        "key A's committed value survives compaction"
    );
    store.close().unwrap();
}

/// Compaction never cleans past the last stable offset (Kafka's cleaner: "we do not clean
/// beyond the last stable offset"): an open transaction's write must not remove the
/// committed value it would replace, since the transaction may yet abort.
#[test]
fn compaction_stops_at_the_last_stable_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (store, p) = compacted_store(dir.path());
    keyed(&p, 0, -1, false, "A"); // the committed value
    keyed(&p, 1, 9, true, "A"); // an overwrite in a transaction still open
    for i in 2..12 {
        keyed(&p, i, -1, false, &format!("other-{}", i % 2));
    }
    assert!(p.segments().len() > 2, "rolled: {}", p.segments().len());
    assert_eq!(p.last_stable_offset().unwrap(), 1);
    p.compact_now().unwrap();
    let mut log = Log { p: &p, next: 12 };
    log.marker(9, MarkerType::Abort);
    assert_eq!(
        committed_values_of_a(&p),
        vec![0],
        "key A's committed value survives a compaction while the overwrite was open"
    );
    store.close().unwrap();
}

/// A read-committed read racing truncations never sees an open transaction's data: a
/// truncation forgets the transaction state, and a read that found it built before must
/// not then take the log end offset for the last stable offset.
#[test]
fn read_committed_never_sees_an_open_transaction_while_truncations_race() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), config()).unwrap();
    let p = common::create(&store, "t", TopicConfig::default());
    let mut log = Log { p: &p, next: 0 };
    log.data(1, true, 1); // open for the whole test: the last stable offset is 0
    let writer = {
        let p = p.clone();
        std::thread::spawn(move || {
            for _ in 0..300 {
                let mut log = Log { p: &p, next: 1 };
                log.data(-1, false, 2);
                p.truncate_to(1).unwrap();
            }
        })
    };
    let mut checks = 0;
    while !writer.is_finished() {
        let f = p.read_committed(0, 1 << 20).unwrap();
        let seen: Vec<u64> = f.records().map(|r| r.offset()).collect();
        assert!(
            seen.is_empty(),
            "read past the last stable offset 0 (an open transaction): {seen:?}"
        );
        checks += 1;
    }
    writer.join().unwrap();
    assert!(checks > 0);
    assert_eq!(p.last_stable_offset().unwrap(), 0);
    store.close().unwrap();
}

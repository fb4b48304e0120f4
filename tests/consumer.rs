//! Consumers: blocking `poll` woken by appends (and, for durable reads, by flushes), seeking
//! (offset, beginning, end, timestamp), Kafka's offset reset policies after retention,
//! consumer groups (range and round-robin assignment, rebalancing with positions handed
//! over, exactly-once delivery without failures, independent groups, lag), committed
//! offsets in Kafka's `__consumer_offsets` layout that survive a clean reopen and a
//! SIGKILL of a child process, and consumers of compacted topics.
//!
//! The crash test re-executes this test binary as a child process (selected by an
//! environment variable, as in `tests/crash.rs`): the child consumes as a group member,
//! commits explicitly and reports each commit on stdout; the parent kills it with SIGKILL
//! at a random moment and checks the committed offsets after reopening.
//!
//! No test asserts that something is fast: waits that must end early (a wake-up by an
//! append) get a generous deadline far below the poll's own timeout, which proves the
//! append and not the timeout ended the wait.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{child, ManualClock, Rng};
use seglog::{
    Assignor, CleanupPolicy, Consumer, ConsumerConfig, ConsumerRecord, Error, OffsetReset,
    Partition, Record, Store, StoreConfig, TopicConfig, OFFSETS_TOPIC,
};

/// Record timestamps of the tests that set them start here (well in the past).
const TS0: i64 = 1_700_000_000_000;
/// A poll timeout that no test waits out when it expects data.
const LONG: Duration = Duration::from_secs(30);
/// How long a wake-up may take at most (far below [`LONG`]).
const WAKE_DEADLINE: Duration = Duration::from_secs(10);
/// A short poll timeout, for polls that expect nothing or loop.
const SHORT: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------------------
// Helpers

/// Background maintenance off: retention and compaction run only when a test asks.
fn store_config() -> StoreConfig {
    StoreConfig::default().maintenance_interval(None)
}

fn open(dir: &Path) -> Store {
    Store::open_with(dir, store_config()).unwrap()
}

/// Small preallocated indexes: reopening after a crash scans them, slow in debug builds.
fn topic_config(partitions: u32) -> TopicConfig {
    TopicConfig::default()
        .partitions(partitions)
        .segment_index_bytes(64 << 10)
}

/// The value written at `offset` of `partition` by the tests that check contents.
fn value_at(partition: u32, offset: u64) -> Vec<u8> {
    format!("p{partition}-o{offset}").into_bytes()
}

/// Appends `n` records (one batch) to `p`, with values from [`value_at`].
fn fill(p: &Partition, n: u64) {
    let base = p.log_end_offset();
    let recs: Vec<Record> = (base..base + n)
        .map(|o| Record::new(value_at(p.number(), o)))
        .collect();
    let info = p.append(&recs).unwrap();
    assert_eq!(info.base_offset, base);
}

fn earliest() -> ConsumerConfig {
    ConsumerConfig::default().reset(OffsetReset::Earliest)
}

fn no_auto_commit() -> ConsumerConfig {
    earliest().auto_commit(None)
}

/// Polls until `want` records came (or the wake deadline passed), in poll order.
fn poll_n(c: &mut Consumer, want: usize) -> Vec<ConsumerRecord> {
    let start = Instant::now();
    let mut out = Vec::new();
    while out.len() < want {
        assert!(
            start.elapsed() < WAKE_DEADLINE,
            "only {} of {want} records after {WAKE_DEADLINE:?}: {:?}",
            out.len(),
            keys(&out)
        );
        out.extend(
            c.poll(want - out.len(), Duration::from_millis(200))
                .unwrap(),
        );
    }
    out
}

/// Polls until a poll returns nothing.
fn drain(c: &mut Consumer) -> Vec<ConsumerRecord> {
    let mut out = Vec::new();
    loop {
        let got = c.poll(1000, SHORT).unwrap();
        if got.is_empty() {
            return out;
        }
        out.extend(got);
    }
}

fn keys(records: &[ConsumerRecord]) -> Vec<(u32, u64)> {
    records.iter().map(|r| (r.partition, r.offset)).collect()
}

/// Per partition, the offsets delivered, in delivery order.
fn by_partition(records: &[ConsumerRecord]) -> BTreeMap<u32, Vec<u64>> {
    let mut m: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for r in records {
        m.entry(r.partition).or_default().push(r.offset);
    }
    m
}

/// Kafka's expected owner (index in join order) of each of `n` partitions among `m`.
fn expected_owners(assignor: Assignor, n: usize, m: usize) -> Vec<usize> {
    match assignor {
        Assignor::RoundRobin => (0..n).map(|p| p % m).collect(),
        Assignor::Range => {
            // Member i gets n / m partitions, the first n % m members one more, contiguous.
            let mut owners = Vec::new();
            for i in 0..m {
                let count = n / m + usize::from(i < n % m);
                owners.extend(std::iter::repeat_n(i, count));
            }
            owners
        }
    }
}

// ---------------------------------------------------------------------------------------
// Blocking poll

/// A consumer blocked in `poll` with a long timeout returns the record appended by another
/// thread well before the timeout: the append woke it.
#[test]
fn blocking_poll_wakes_on_append() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let topic = store.create_topic("t", topic_config(1)).unwrap();
    let mut c = store.consumer("t", ConsumerConfig::default()).unwrap();
    // Latest: nothing yet; the first poll fixes the position at the (empty) log end.
    assert!(c.poll(10, Duration::from_millis(1)).unwrap().is_empty());
    assert_eq!(c.position(0), Some(0));

    let p = topic.partition(0).unwrap().clone();
    let appender = thread::spawn(move || {
        thread::sleep(Duration::from_millis(200));
        p.append(&[Record::new("hello").with_key("k")]).unwrap();
    });
    let start = Instant::now();
    let got = c.poll(10, LONG).unwrap();
    let waited = start.elapsed();
    appender.join().unwrap();
    assert!(waited < WAKE_DEADLINE, "woke after {waited:?}");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].partition, 0);
    assert_eq!(got[0].offset, 0);
    assert_eq!(got[0].key.as_deref(), Some(&b"k"[..]));
    assert_eq!(got[0].value.as_deref(), Some(&b"hello"[..]));
    assert_eq!(c.position(0), Some(1));
}

/// With nothing appended, `poll` returns empty after (at least) its timeout — also when
/// other topics get appends meanwhile, which share nothing with this consumer.
#[test]
fn blocking_poll_times_out_when_nothing_comes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create_topic("quiet", topic_config(2)).unwrap();
    let busy = store.create_topic("busy", topic_config(1)).unwrap();
    let mut c = store.consumer("quiet", earliest()).unwrap();

    let timeout = Duration::from_millis(300);
    let start = Instant::now();
    assert!(c.poll(10, timeout).unwrap().is_empty());
    assert!(
        start.elapsed() >= timeout,
        "returned after {:?}",
        start.elapsed()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let noise = {
        let stop = stop.clone();
        let p = busy.partition(0).unwrap().clone();
        thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                p.append(&[Record::new("noise")]).unwrap();
                thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let start = Instant::now();
    assert!(c.poll(10, timeout).unwrap().is_empty());
    assert!(
        start.elapsed() >= timeout,
        "returned after {:?}",
        start.elapsed()
    );
    stop.store(true, Ordering::SeqCst);
    noise.join().unwrap();
}

/// A consumer of a whole topic waits once for all its partitions: an append to any one of
/// them wakes it.
#[test]
fn poll_wakes_for_an_append_to_any_partition() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let topic = store.create_topic("t", topic_config(4)).unwrap();
    let mut c = store.consumer("t", earliest()).unwrap();
    assert!(c.poll(10, Duration::from_millis(1)).unwrap().is_empty());
    // Each partition in turn, in an order that is not the consumer's round order.
    for (round, p) in [2u32, 0, 3, 1, 3].into_iter().enumerate() {
        let part = topic.partition(p).unwrap().clone();
        let appender = thread::spawn(move || {
            thread::sleep(Duration::from_millis(100));
            part.append(&[Record::new(format!("r{round}"))]).unwrap();
        });
        let start = Instant::now();
        let got = c.poll(10, LONG).unwrap();
        assert!(
            start.elapsed() < WAKE_DEADLINE,
            "partition {p}: {:?}",
            start.elapsed()
        );
        appender.join().unwrap();
        assert_eq!(got.len(), 1, "partition {p}");
        assert_eq!(got[0].partition, p);
        assert_eq!(
            got[0].value.as_deref(),
            Some(format!("r{round}").as_bytes())
        );
    }
}

/// A consumer limited to some partitions (`consumer_of`) never returns records of others,
/// and is still woken by appends to its own.
#[test]
fn consumer_of_reads_only_its_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let topic = store.create_topic("t", topic_config(3)).unwrap();
    for p in topic.partitions() {
        fill(p, 5);
    }
    let mut c = store.consumer_of("t", &[2, 0], earliest()).unwrap();
    assert_eq!(c.assignment(), vec![2, 0]);
    let got = drain(&mut c);
    let parts = by_partition(&got);
    assert_eq!(parts.keys().copied().collect::<Vec<_>>(), [0, 2]);
    assert_eq!(parts[&0], (0..5).collect::<Vec<_>>());
    assert_eq!(parts[&2], (0..5).collect::<Vec<_>>());
    for r in &got {
        assert_eq!(
            r.value.as_deref(),
            Some(&value_at(r.partition, r.offset)[..])
        );
    }
    assert!(matches!(
        store.consumer_of("t", &[3], earliest()),
        Err(Error::UnknownPartition { .. })
    ));
    assert!(matches!(
        store.consumer("nope", earliest()),
        Err(Error::UnknownTopic(_))
    ));

    let p1 = topic.partition(1).unwrap().clone();
    let p2 = topic.partition(2).unwrap().clone();
    let appender = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        fill(&p1, 3); // not ours: must not be returned
        thread::sleep(Duration::from_millis(100));
        fill(&p2, 1);
    });
    let start = Instant::now();
    let got = c.poll(10, LONG).unwrap();
    assert!(start.elapsed() < WAKE_DEADLINE);
    appender.join().unwrap();
    assert_eq!(keys(&got), [(2, 5)]);
}

/// `max_records` bounds each poll, a poll may stop in the middle of a batch, and records
/// come back with their keys, headers and timestamps.
#[test]
fn poll_returns_at_most_max_records_with_everything_of_each_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let topic = store.create_topic("t", topic_config(1)).unwrap();
    let p = topic.partition(0).unwrap();
    let recs: Vec<Record> = (0..10)
        .map(|i| {
            let r = Record::new(format!("v{i}"))
                .with_key(format!("k{i}"))
                .with_timestamp(TS0 + i)
                .with_header("h", Some(vec![i as u8]));
            if i == 3 {
                Record {
                    value: None,
                    ..r.with_header("null", None)
                }
            } else {
                r
            }
        })
        .collect();
    p.append(&recs[..7]).unwrap();
    p.append(&recs[7..]).unwrap();
    let mut c = store.consumer("t", earliest()).unwrap();
    let mut got = Vec::new();
    for want in [3, 1, 2, 4] {
        let batch = c.poll(want, LONG).unwrap();
        assert_eq!(batch.len(), want);
        got.extend(batch);
        assert_eq!(c.position(0), Some(got.len() as u64));
    }
    assert!(c.poll(10, SHORT).unwrap().is_empty());
    for (i, r) in got.iter().enumerate() {
        let want = &recs[i];
        assert_eq!(r.offset, i as u64);
        assert_eq!(r.timestamp, TS0 + i as i64);
        assert_eq!(r.key, want.key);
        assert_eq!(r.value, want.value);
        assert_eq!(r.headers, want.headers);
    }
    // max_records 0 is taken as 1.
    fill(p, 2);
    assert_eq!(c.poll(0, LONG).unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------
// Durable reads

/// With `durable_reads`, appended records are not returned until a flush makes them
/// durable; the flush wakes the waiting consumer.
#[test]
fn durable_reads_wait_for_the_flush_which_wakes_the_poller() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let topic = store.create_topic("t", topic_config(2)).unwrap();
    let mut c = store.consumer("t", earliest().durable_reads(true)).unwrap();
    let mut plain = store.consumer("t", earliest()).unwrap();
    let p1 = topic.partition(1).unwrap().clone();
    fill(&p1, 3);
    assert_eq!(p1.durable_offset(), 0);
    // Not flushed: a plain consumer sees the records, a durable one does not, even though
    // the appends woke it (it waits out its timeout).
    assert_eq!(keys(&poll_n(&mut plain, 3)), [(1, 0), (1, 1), (1, 2)]);
    let timeout = Duration::from_millis(300);
    let start = Instant::now();
    assert!(c.poll(10, timeout).unwrap().is_empty());
    assert!(start.elapsed() >= timeout);

    // More appends while it waits, then a flush: only the flush may end the wait.
    let flushed = Arc::new(AtomicBool::new(false));
    let writer = {
        let flushed = flushed.clone();
        let p1 = p1.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(100));
            fill(&p1, 2);
            thread::sleep(Duration::from_millis(200));
            flushed.store(true, Ordering::SeqCst);
            p1.flush().unwrap();
        })
    };
    let start = Instant::now();
    let got = c.poll(10, LONG).unwrap();
    let waited = start.elapsed();
    assert!(
        flushed.load(Ordering::SeqCst),
        "returned {got:?} before the flush"
    );
    assert!(waited < WAKE_DEADLINE, "woke after {waited:?}");
    writer.join().unwrap();
    let mut got = got;
    if got.len() < 5 {
        got.extend(poll_n(&mut c, 5 - got.len()));
    }
    assert_eq!(keys(&got), (0..5).map(|o| (1, o)).collect::<Vec<_>>());
    assert_eq!(p1.durable_offset(), 5);

    // A flush by the topic's flush policy wakes it too.
    let every = store
        .create_topic(
            "every",
            topic_config(1).flush_policy(seglog::FlushPolicy::EveryAppend),
        )
        .unwrap();
    let mut c = store
        .consumer("every", earliest().durable_reads(true))
        .unwrap();
    assert!(c.poll(1, Duration::from_millis(1)).unwrap().is_empty());
    let p = every.partition(0).unwrap().clone();
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        fill(&p, 1);
    });
    let start = Instant::now();
    let got = c.poll(10, LONG).unwrap();
    assert!(start.elapsed() < WAKE_DEADLINE);
    writer.join().unwrap();
    assert_eq!(keys(&got), [(0, 0)]);
}

// ---------------------------------------------------------------------------------------
// Seeking

/// `seek_to_timestamp` moves each partition to its first record with a timestamp at or
/// after the target (timestamps not quite in order, several batches); past every record
/// it moves to the log end.
#[test]
fn seek_to_timestamp_finds_the_first_record_at_or_after_it_in_each_partition() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // Small segments and a dense time index: the lookup crosses segments and index entries.
    let topic = store
        .create_topic(
            "t",
            topic_config(3).segment_bytes(600).index_interval_bytes(0),
        )
        .unwrap();
    let mut rng = Rng::new(7);
    // Per partition, the timestamp of every offset.
    let mut stamps: Vec<Vec<i64>> = vec![Vec::new(); 3];
    for (pi, p) in topic.partitions().iter().enumerate() {
        while stamps[pi].len() < 60 {
            let n = rng.range(1, 6) as usize;
            let recs: Vec<Record> = (0..n)
                .map(|_| {
                    let i = stamps[pi].len() as i64;
                    // Mostly increasing, with jitter that sometimes goes backwards.
                    let ts = TS0 + pi as i64 * 3 + i * 10 + rng.below(25) as i64;
                    stamps[pi].push(ts);
                    Record::new(format!("{pi}@{ts}")).with_timestamp(ts)
                })
                .collect();
            p.append(&recs).unwrap();
        }
        assert!(p.segments().len() > 2, "wanted several segments");
    }
    let mut c = store.consumer("t", earliest()).unwrap();
    let max_ts = *stamps.iter().flatten().max().unwrap();
    for target in [
        TS0 - 1000,
        TS0,
        TS0 + 1,
        TS0 + 95,
        TS0 + 301,
        TS0 + 598,
        max_ts - 3,
        max_ts,
    ] {
        c.seek_to_timestamp(target).unwrap();
        for (pi, st) in stamps.iter().enumerate() {
            let want = st.iter().position(|&t| t >= target).map(|o| o as u64);
            let want_pos = want.unwrap_or(st.len() as u64);
            assert_eq!(
                c.position(pi as u32),
                Some(want_pos),
                "target {target} p{pi}"
            );
        }
        // The first record polled per partition is that one.
        let got = drain(&mut c);
        let parts = by_partition(&got);
        for (pi, st) in stamps.iter().enumerate() {
            let first = parts.get(&(pi as u32)).map(|v| v[0]);
            let want = st.iter().position(|&t| t >= target).map(|o| o as u64);
            assert_eq!(first, want, "target {target} p{pi}");
            if let Some(f) = first {
                // Everything after it, in order.
                let all: Vec<u64> = (f..st.len() as u64).collect();
                assert_eq!(parts[&(pi as u32)], all);
                let r = got
                    .iter()
                    .find(|r| r.partition == pi as u32 && r.offset == f)
                    .unwrap();
                assert!(r.timestamp >= target);
                assert_eq!(r.timestamp, st[f as usize]);
            }
        }
    }
    // Past every record: the log end, nothing to poll, then only new records.
    c.seek_to_timestamp(max_ts + 1).unwrap();
    for (pi, st) in stamps.iter().enumerate() {
        assert_eq!(c.position(pi as u32), Some(st.len() as u64));
    }
    assert!(c.poll(10, SHORT).unwrap().is_empty());
    topic
        .partition(1)
        .unwrap()
        .append(&[Record::new("new").with_timestamp(TS0)])
        .unwrap();
    assert_eq!(
        keys(&c.poll(10, LONG).unwrap()),
        [(1, stamps[1].len() as u64)]
    );
}

/// `seek`, `seek_to_beginning` and `seek_to_end`; a position past the log end (or below
/// the log start) is out of range and reset per the policy.
#[test]
fn seek_to_offsets_beginning_and_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let topic = store.create_topic("t", topic_config(2)).unwrap();
    for p in topic.partitions() {
        for _ in 0..4 {
            fill(p, 5); // batches of 5: seeks land inside batches
        }
    }
    let mut c = store.consumer("t", ConsumerConfig::default()).unwrap();
    // Latest: nothing of what is there.
    assert!(c.poll(100, SHORT).unwrap().is_empty());
    assert_eq!((c.position(0), c.position(1)), (Some(20), Some(20)));

    c.seek(1, 7).unwrap();
    assert_eq!(c.position(1), Some(7));
    let got = drain(&mut c);
    assert_eq!(keys(&got), (7..20).map(|o| (1, o)).collect::<Vec<_>>());
    assert_eq!(got[0].value.as_deref(), Some(&value_at(1, 7)[..]));

    c.seek_to_beginning().unwrap();
    assert_eq!((c.position(0), c.position(1)), (Some(0), Some(0)));
    let got = drain(&mut c);
    let parts = by_partition(&got);
    assert_eq!(parts[&0], (0..20).collect::<Vec<_>>());
    assert_eq!(parts[&1], (0..20).collect::<Vec<_>>());

    c.seek(0, 13).unwrap();
    c.seek(0, 3).unwrap(); // the last seek wins, also backwards
    c.seek_to_end().unwrap(); // ... until seek_to_end
    assert!(c.poll(100, SHORT).unwrap().is_empty());
    fill(topic.partition(0).unwrap(), 1);
    assert_eq!(keys(&c.poll(100, LONG).unwrap()), [(0, 20)]);

    assert!(matches!(c.seek(2, 0), Err(Error::UnknownPartition { .. })));

    // Past the log end: out of range, reset (Earliest here) to the log start.
    let mut e = store.consumer_of("t", &[1], earliest()).unwrap();
    e.seek(1, 1000).unwrap();
    assert_eq!(keys(&e.poll(1, LONG).unwrap()), [(1, 0)]);
    // ... and with reset None an error naming the offset.
    let mut n = store
        .consumer_of("t", &[1], earliest().reset(OffsetReset::None))
        .unwrap();
    n.seek(1, 1000).unwrap();
    match n.poll(1, SHORT) {
        Err(Error::OffsetOutOfRange {
            offset,
            log_start,
            log_end,
            ..
        }) => assert_eq!((offset, log_start, log_end), (1000, 0, 20)),
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Reset policies

/// A consumer whose position retention deleted goes to the log start (Earliest), the log
/// end (Latest), or fails naming the offsets (None); both with `delete_records_before` and
/// with size retention over small segments, and for standalone consumers and group members
/// whose committed offset was deleted.
#[test]
fn reset_policies_after_retention() {
    for how in ["delete_records_before", "enforce_retention"] {
        for reset in [
            OffsetReset::Earliest,
            OffsetReset::Latest,
            OffsetReset::None,
        ] {
            for group in [false, true] {
                reset_after_retention(how, reset, group);
            }
        }
    }
}

fn reset_after_retention(how: &str, reset: OffsetReset, group: bool) {
    let ctx = format!("{how} {reset:?} group={group}");
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let topic = store
        .create_topic(
            "t",
            topic_config(1)
                .segment_bytes(400)
                .retention_bytes(Some(1000))
                .retention_ms(None),
        )
        .unwrap();
    let p = topic.partition(0).unwrap().clone();
    for _ in 0..50 {
        fill(&p, 2);
    }
    assert!(p.segments().len() > 5, "{ctx}");
    let config = ConsumerConfig::default()
        .reset(OffsetReset::Earliest)
        .auto_commit(None);
    // Read the first 10 records (a group member commits them and leaves).
    let mut c = if group {
        store.join_group("g", "t", config.clone()).unwrap()
    } else {
        store.consumer("t", config.clone()).unwrap()
    };
    assert_eq!(
        keys(&poll_n(&mut c, 10)),
        (0..10).map(|o| (0, o)).collect::<Vec<_>>()
    );
    if group {
        c.commit().unwrap();
        c.close().unwrap();
        assert_eq!(store.committed_offsets("g", "t").unwrap()[&0], 10);
    }
    // Retention removes offset 10.
    match how {
        "delete_records_before" => assert_eq!(p.delete_records_before(37).unwrap(), 37),
        _ => {
            let r = p.enforce_retention().unwrap();
            assert!(r.segments_deleted > 0, "{ctx}");
        }
    }
    let (start, end) = (p.log_start_offset(), p.log_end_offset());
    assert!(start > 10, "{ctx}: log start {start}");
    assert_eq!(end, 100);
    let config = config.reset(reset);
    let mut c = if group {
        store.join_group("g", "t", config).unwrap()
    } else {
        // Same consumer, same position (10), now with this policy: a fresh standalone
        // consumer seeked to 10 stands for it.
        let mut c = store.consumer("t", config).unwrap();
        c.seek(0, 10).unwrap();
        c
    };
    match reset {
        OffsetReset::Earliest => {
            let got = drain(&mut c);
            assert_eq!(
                keys(&got),
                (start..end).map(|o| (0, o)).collect::<Vec<_>>(),
                "{ctx}"
            );
        }
        OffsetReset::Latest => {
            assert!(c.poll(100, SHORT).unwrap().is_empty(), "{ctx}");
            assert_eq!(c.position(0), Some(end), "{ctx}");
            fill(&p, 1);
            assert_eq!(keys(&c.poll(100, LONG).unwrap()), [(0, end)], "{ctx}");
        }
        OffsetReset::None => {
            let err = c.poll(100, SHORT).unwrap_err();
            match &err {
                Error::OffsetOutOfRange {
                    partition,
                    offset,
                    log_start,
                    log_end,
                } => {
                    assert_eq!(partition, "t-0", "{ctx}");
                    assert_eq!((*offset, *log_start, *log_end), (10, start, end), "{ctx}");
                }
                other => panic!("{ctx}: expected OffsetOutOfRange, got {other:?}"),
            }
            let text = err.to_string();
            for n in [10, start, end] {
                assert!(text.contains(&n.to_string()), "{ctx}: {text:?} lacks {n}");
            }
            // Still failing, until the application seeks somewhere valid.
            assert!(c.poll(100, SHORT).is_err(), "{ctx}");
            c.seek_to_beginning().unwrap();
            let got = drain(&mut c);
            assert_eq!(
                keys(&got),
                (start..end).map(|o| (0, o)).collect::<Vec<_>>(),
                "{ctx}"
            );
        }
    }
}

/// A position deleted by retention while the consumer is reading (it had a position) is
/// reset too, at the next poll.
#[test]
fn reset_of_a_live_position_deleted_while_reading() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let topic = store
        .create_topic("t", topic_config(1).segment_bytes(400))
        .unwrap();
    let p = topic.partition(0).unwrap().clone();
    for _ in 0..25 {
        fill(&p, 2);
    }
    let mut early = store.consumer("t", earliest()).unwrap();
    let mut late = store
        .join_group("g", "t", no_auto_commit().reset(OffsetReset::Latest))
        .unwrap();
    late.seek(0, 0).unwrap();
    let mut none = store
        .consumer("t", earliest().reset(OffsetReset::None))
        .unwrap();
    none.seek(0, 0).unwrap();
    for c in [&mut early, &mut late, &mut none] {
        assert_eq!(c.poll(5, LONG).unwrap().len(), 5);
        assert_eq!(c.position(0), Some(5));
    }
    p.delete_records_before(20).unwrap();
    assert_eq!(early.poll(1, LONG).unwrap()[0].offset, 20);
    assert!(late.poll(1, SHORT).unwrap().is_empty());
    assert_eq!(late.position(0), Some(50));
    assert!(matches!(
        none.poll(1, SHORT),
        Err(Error::OffsetOutOfRange {
            offset: 5,
            log_start: 20,
            log_end: 50,
            ..
        })
    ));
}

/// A group without a committed offset and reset None: `Error::NoCommittedOffset` naming
/// the group and the partition. Once a commit exists, the group resumes from it.
#[test]
fn group_without_committed_offset_and_reset_none_fails() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let topic = store.create_topic("t", topic_config(1)).unwrap();
    fill(topic.partition(0).unwrap(), 5);
    let none = no_auto_commit().reset(OffsetReset::None);
    let mut c = store.join_group("g", "t", none.clone()).unwrap();
    match c.poll(10, SHORT) {
        Err(Error::NoCommittedOffset { group, partition }) => {
            assert_eq!(group, "g");
            assert_eq!(partition, "t-0");
        }
        other => panic!("expected NoCommittedOffset, got {other:?}"),
    }
    c.close().unwrap();
    // Commit 3 with another member, then reset None resumes there.
    let mut e = store.join_group("g", "t", no_auto_commit()).unwrap();
    e.seek(0, 3).unwrap();
    e.commit().unwrap();
    e.close().unwrap();
    let mut c = store.join_group("g", "t", none).unwrap();
    assert_eq!(keys(&drain(&mut c)), [(0, 3), (0, 4)]);
}

// ---------------------------------------------------------------------------------------
// Committed offsets

/// Commits (explicit, and by auto-commit on close) survive a clean close and reopen; a
/// new member resumes exactly there.
#[test]
fn committed_offsets_survive_a_clean_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        let topic = store.create_topic("t", topic_config(3)).unwrap();
        for p in topic.partitions() {
            fill(p, 10);
        }
        assert!(store.committed_offsets("g", "t").unwrap().is_empty());
        let mut c = store.join_group("g", "t", no_auto_commit()).unwrap();
        c.seek(0, 4).unwrap();
        c.seek(1, 9).unwrap();
        c.seek(2, 10).unwrap();
        c.commit().unwrap();
        c.close().unwrap();
        // Auto-commit commits on close, even when its interval is far away.
        let mut a = store
            .join_group(
                "auto",
                "t",
                earliest().auto_commit(Some(Duration::from_secs(3600))),
            )
            .unwrap();
        let got = poll_n(&mut a, 12);
        assert!(store.committed_offsets("auto", "t").unwrap().is_empty());
        a.close().unwrap();
        let auto = store.committed_offsets("auto", "t").unwrap();
        for (p, offsets) in by_partition(&got) {
            assert_eq!(auto[&p], offsets.last().unwrap() + 1);
        }
        assert_eq!(auto.values().sum::<u64>(), 12);
        store.close().unwrap();
    }
    let store = open(dir.path());
    assert!(store.opened_clean());
    let committed = store.committed_offsets("g", "t").unwrap();
    assert_eq!(committed, BTreeMap::from([(0, 4), (1, 9), (2, 10)]));
    let mut c = store
        .join_group("g", "t", no_auto_commit().reset(OffsetReset::None))
        .unwrap();
    let got = drain(&mut c);
    let parts = by_partition(&got);
    assert_eq!(parts[&0], (4..10).collect::<Vec<_>>());
    assert_eq!(parts[&1], [9]);
    assert!(!parts.contains_key(&2));
    assert_eq!(
        store
            .committed_offsets("auto", "t")
            .unwrap()
            .values()
            .sum::<u64>(),
        12
    );
}

/// Two groups read the same data independently: each gets everything, and one's commits
/// do not move the other.
#[test]
fn two_groups_read_the_same_data_independently() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let topic = store.create_topic("t", topic_config(3)).unwrap();
    let other = store.create_topic("u", topic_config(3)).unwrap();
    for p in topic.partitions().iter().chain(other.partitions()) {
        fill(p, 7);
    }
    let mut a = store.join_group("a", "t", no_auto_commit()).unwrap();
    let mut b = store.join_group("b", "t", no_auto_commit()).unwrap();
    // Each group has one member: each owns every partition.
    assert_eq!(a.assignment(), [0, 1, 2]);
    assert_eq!(b.assignment(), [0, 1, 2]);
    let ga = drain(&mut a);
    a.commit().unwrap();
    assert_eq!(store.committed_offsets("a", "t").unwrap().len(), 3);
    assert!(store.committed_offsets("b", "t").unwrap().is_empty());
    let gb = poll_n(&mut b, 5);
    b.commit().unwrap();
    let gb: Vec<_> = gb.into_iter().chain(drain(&mut b)).collect();
    let all: BTreeSet<(u32, u64)> = (0..3).flat_map(|p| (0..7).map(move |o| (p, o))).collect();
    assert_eq!(keys(&ga).into_iter().collect::<BTreeSet<_>>(), all);
    assert_eq!(keys(&gb).into_iter().collect::<BTreeSet<_>>(), all);
    assert_eq!(ga.len(), 21);
    assert_eq!(gb.len(), 21);
    // b's commit (5 records in) did not touch a's.
    assert_eq!(
        store.committed_offsets("a", "t").unwrap(),
        BTreeMap::from([(0, 7), (1, 7), (2, 7)])
    );
    assert_ne!(
        store.committed_offsets("b", "t").unwrap(),
        store.committed_offsets("a", "t").unwrap()
    );
    // The same group name on another topic is another group.
    assert!(store.committed_offsets("a", "u").unwrap().is_empty());
    let mut au = store.join_group("a", "u", no_auto_commit()).unwrap();
    assert_eq!(drain(&mut au).len(), 21);
    drop(au);
    // Positions are independent too: a new record goes to both groups.
    fill(topic.partition(1).unwrap(), 1);
    assert_eq!(keys(&a.poll(10, LONG).unwrap()), [(1, 7)]);
    assert_eq!(keys(&b.poll(10, LONG).unwrap()), [(1, 7)]);
}

/// `group_lag`: log end minus committed offset per partition (from the log start offset
/// when nothing is committed); `Consumer::lag`: log end minus the position.
#[test]
fn group_lag_is_log_end_minus_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let topic = store.create_topic("t", topic_config(3)).unwrap();
    for (i, p) in topic.partitions().iter().enumerate() {
        fill(p, 10 * (i as u64 + 1));
    }
    topic
        .partition(2)
        .unwrap()
        .delete_records_before(4)
        .unwrap();
    let lag = store.group_lag("g", "t").unwrap();
    assert_eq!(lag.len(), 3);
    for (i, l) in lag.iter().enumerate() {
        assert_eq!(l.partition, i as u32);
        assert_eq!(l.committed, None);
        assert_eq!(l.log_end_offset, 10 * (i as u64 + 1));
    }
    assert_eq!(lag.iter().map(|l| l.lag).collect::<Vec<_>>(), [10, 20, 26]);

    let mut c = store.join_group("g", "t", no_auto_commit()).unwrap();
    c.seek(0, 10).unwrap();
    c.seek(1, 5).unwrap();
    c.commit().unwrap(); // partition 2 has no position yet: not committed
    assert_eq!(c.lag(), [(0, 0), (1, 15), (2, 26)]);
    let lag = store.group_lag("g", "t").unwrap();
    assert_eq!(
        lag.iter().map(|l| (l.committed, l.lag)).collect::<Vec<_>>(),
        [(Some(10), 0), (Some(5), 15), (None, 26)]
    );
    // Appends grow the lag; consuming without committing does not shrink it.
    fill(topic.partition(0).unwrap(), 3);
    let got = drain(&mut c);
    assert_eq!(got.len(), 3 + 15 + 26);
    assert_eq!(c.lag(), [(0, 0), (1, 0), (2, 0)]);
    let lag = store.group_lag("g", "t").unwrap();
    assert_eq!(lag.iter().map(|l| l.lag).collect::<Vec<_>>(), [3, 15, 26]);
    c.commit().unwrap();
    let lag = store.group_lag("g", "t").unwrap();
    assert_eq!(lag.iter().map(|l| l.lag).collect::<Vec<_>>(), [0, 0, 0]);
    assert!(matches!(
        store.group_lag("g", "nope"),
        Err(Error::UnknownTopic(_))
    ));
    // A standalone consumer cannot commit.
    let mut s = store.consumer("t", earliest()).unwrap();
    assert!(matches!(s.commit(), Err(Error::InvalidConfig { .. })));
    assert_eq!(s.group(), None);
    assert_eq!(c.group(), Some("g"));
}

/// The records of `__consumer_offsets` are Kafka's: key `int16 version = 1`, `string
/// group`, `string topic`, `int32 partition`; value `int16 version = 3`, `int64 offset`,
/// `int32 leader epoch = -1`, `string metadata`, `int64 commit timestamp` (big-endian,
/// strings with an int16 length). The topic is compacted.
#[test]
fn offsets_topic_records_have_kafkas_layout() {
    let dir = tempfile::tempdir().unwrap();
    let now = 1_712_345_678_901;
    let clock = Arc::new(ManualClock(AtomicI64::new(now)));
    let store = Store::open_with(dir.path(), store_config().clock(clock.clone())).unwrap();
    let topic = store.create_topic("orders", topic_config(3)).unwrap();
    fill(topic.partition(2).unwrap(), 9);
    fill(topic.partition(0).unwrap(), 1);
    let mut c = store.join_group("grp", "orders", no_auto_commit()).unwrap();
    c.seek(2, 7).unwrap();
    c.commit().unwrap();
    clock.0.store(now + 5, Ordering::SeqCst);
    c.seek(0, 1).unwrap();
    c.commit().unwrap();

    let offsets = store.topic(OFFSETS_TOPIC).unwrap();
    assert_eq!(offsets.config().cleanup_policy, CleanupPolicy::Compact);
    let p = offsets.partition(0).unwrap();
    let fetch = p.read(p.log_start_offset(), 1 << 20).unwrap();
    let recs: Vec<(Vec<u8>, Vec<u8>, i64)> = fetch
        .records()
        .map(|r| {
            (
                r.key().unwrap().to_vec(),
                r.value().unwrap().to_vec(),
                r.timestamp(),
            )
        })
        .collect();
    let key = |partition: i32| {
        let mut k = vec![0, 1]; // version 1
        k.extend_from_slice(&3i16.to_be_bytes());
        k.extend_from_slice(b"grp");
        k.extend_from_slice(&6i16.to_be_bytes());
        k.extend_from_slice(b"orders");
        k.extend_from_slice(&partition.to_be_bytes());
        k
    };
    let value = |offset: i64, ts: i64| {
        let mut v = vec![0, 3]; // version 3
        v.extend_from_slice(&offset.to_be_bytes());
        v.extend_from_slice(&(-1i32).to_be_bytes()); // leader epoch
        v.extend_from_slice(&0i16.to_be_bytes()); // metadata ""
        v.extend_from_slice(&ts.to_be_bytes());
        v
    };
    // The second commit writes only the positions that changed since the first.
    assert_eq!(
        recs,
        [
            (key(2), value(7, now), now),
            (key(0), value(1, now + 5), now + 5),
        ]
    );
    assert_eq!(recs[0].0.len(), 2 + 2 + 3 + 2 + 6 + 4);
    assert_eq!(recs[0].1.len(), 2 + 8 + 4 + 2 + 8);
}

// ---------------------------------------------------------------------------------------
// Groups

/// After every join and leave, the members' assignments cover every partition exactly
/// once, laid out as Kafka's assignors do (in join order); a moved partition continues
/// where its last owner stopped.
#[test]
fn assignment_covers_every_partition_once_after_each_join_and_leave() {
    for assignor in [Assignor::Range, Assignor::RoundRobin] {
        for n in [1u32, 5, 7] {
            let dir = tempfile::tempdir().unwrap();
            let store = open(dir.path());
            let topic = store.create_topic("t", topic_config(n)).unwrap();
            for p in topic.partitions() {
                fill(p, 3);
            }
            let config = no_auto_commit().assignor(assignor);
            let mut members: Vec<Consumer> = Vec::new();
            let mut rng = Rng::new(u64::from(n));
            let check = |members: &Vec<Consumer>, what: &str| {
                let ctx = format!("{assignor:?} n={n} {what}, {} members", members.len());
                let mut seen = vec![0; n as usize];
                for (i, m) in members.iter().enumerate() {
                    for p in m.assignment() {
                        seen[p as usize] += 1;
                        let want = expected_owners(assignor, n as usize, members.len());
                        assert_eq!(want[p as usize], i, "{ctx}: partition {p}");
                    }
                }
                let want = if members.is_empty() { 0 } else { 1 };
                assert!(seen.iter().all(|&s| s == want), "{ctx}: {seen:?}");
            };
            for step in 0..30 {
                if members.len() < 2 || (members.len() < 9 && rng.below(2) == 0) {
                    members.push(store.join_group("g", "t", config.clone()).unwrap());
                    check(&members, &format!("step {step} join"));
                } else {
                    let i = rng.below(members.len() as u64) as usize;
                    let m = members.remove(i);
                    if rng.below(2) == 0 {
                        m.close().unwrap();
                    } else {
                        drop(m);
                    }
                    check(&members, &format!("step {step} leave #{i}"));
                }
            }
            // Hand-over: the first member reads one record of each of its partitions, then
            // the others leave; it continues each partition it gets at the next offset
            // of the records the group delivered.
            let mut delivered: BTreeMap<u32, u64> = BTreeMap::new();
            for m in members.iter_mut() {
                for r in m.poll(1000, SHORT).unwrap() {
                    let e = delivered.entry(r.partition).or_insert(0);
                    assert_eq!(*e, r.offset, "{assignor:?}: {r:?}");
                    *e += 1;
                }
            }
            while members.len() > 1 {
                members.pop();
            }
            let last = &mut members[0];
            assert_eq!(last.assignment(), (0..n).collect::<Vec<_>>());
            for r in drain(last) {
                let e = delivered.entry(r.partition).or_insert(0);
                assert_eq!(*e, r.offset, "{assignor:?} after hand-over: {r:?}");
                *e += 1;
            }
            assert_eq!(delivered, (0..n).map(|p| (p, 3)).collect());
        }
    }
}

/// Members joining and leaving at random moments while a producer appends: every record
/// (partition, offset) is delivered exactly once across members, up to the final log end
/// offsets, with both assignors and with auto-commit on or off (members without
/// auto-commit commit before they leave). The group always keeps at least one member, so
/// positions are handed over between members (see
/// `auto_commit_commits_partitions_handed_over_before_the_group_empties` for the empty
/// group).
#[test]
fn rebalancing_delivers_every_record_exactly_once() {
    let mut seed = 1;
    for assignor in [Assignor::Range, Assignor::RoundRobin] {
        for auto in [true, false] {
            rebalance_round(assignor, auto, seed);
            seed += 1;
        }
    }
}

type Delivered = Arc<Mutex<Vec<(u32, u64, usize)>>>;

struct Member {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<()>,
}

fn spawn_member(
    store: &Arc<Store>,
    id: usize,
    assignor: Assignor,
    auto: bool,
    seed: u64,
    delivered: &Delivered,
) -> Member {
    let stop = Arc::new(AtomicBool::new(false));
    let joined = Arc::new(Barrier::new(2));
    let handle = {
        let (store, stop, delivered, joined) = (
            store.clone(),
            stop.clone(),
            delivered.clone(),
            joined.clone(),
        );
        thread::spawn(move || {
            let mut rng = Rng::new(seed);
            let config = earliest().assignor(assignor).auto_commit(if auto {
                Some(Duration::from_millis(rng.range(0, 20)))
            } else {
                None
            });
            let mut c = store.join_group("g", "t", config).unwrap();
            joined.wait();
            while !stop.load(Ordering::SeqCst) {
                let max = rng.range(1, 40) as usize;
                let got = c.poll(max, Duration::from_millis(20)).unwrap();
                assert!(got.len() <= max);
                let mut d = delivered.lock().unwrap();
                d.extend(got.iter().map(|r| (r.partition, r.offset, id)));
                drop(d);
                if !auto && rng.below(8) == 0 {
                    c.commit().unwrap();
                }
            }
            if !auto {
                c.commit().unwrap();
            }
            c.close().unwrap();
        })
    };
    joined.wait();
    Member { stop, handle }
}

fn rebalance_round(assignor: Assignor, auto: bool, seed: u64) {
    let ctx = format!("{assignor:?} auto-commit={auto} seed={seed}");
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let n = 5;
    let topic = store.create_topic("t", topic_config(n)).unwrap();
    let delivered: Delivered = Arc::new(Mutex::new(Vec::new()));
    let producing = Arc::new(AtomicBool::new(true));
    let producer = {
        let topic = topic.clone();
        let producing = producing.clone();
        thread::spawn(move || {
            let mut rng = Rng::new(seed ^ 0xFEED);
            let mut written = 0;
            while written < 3000 {
                let p = topic.partition(rng.below(5) as u32).unwrap();
                let k = rng.range(1, 9);
                fill(p, k);
                written += k;
                if rng.below(4) == 0 {
                    thread::sleep(Duration::from_millis(1));
                }
            }
            producing.store(false, Ordering::SeqCst);
        })
    };
    let mut rng = Rng::new(seed);
    let mut members: Vec<Member> = Vec::new();
    let mut next_id = 0;
    let mut events = 0;
    while producing.load(Ordering::SeqCst) || events < 12 {
        thread::sleep(Duration::from_millis(rng.range(2, 25)));
        if members.is_empty() || (members.len() < 5 && rng.below(2) == 0) {
            next_id += 1;
            members.push(spawn_member(
                &store,
                next_id,
                assignor,
                auto,
                seed * 1000 + next_id as u64,
                &delivered,
            ));
        } else if members.len() > 1 {
            let m = members.remove(rng.below(members.len() as u64) as usize);
            m.stop.store(true, Ordering::SeqCst);
            m.handle.join().unwrap();
        }
        events += 1;
    }
    producer.join().unwrap();
    if members.len() < 2 {
        next_id += 1;
        members.push(spawn_member(
            &store,
            next_id,
            assignor,
            auto,
            seed * 1000 + next_id as u64,
            &delivered,
        ));
    }
    // Drain with the remaining members.
    let ends: Vec<u64> = topic
        .partitions()
        .iter()
        .map(|p| p.log_end_offset())
        .collect();
    let total: u64 = ends.iter().sum();
    let start = Instant::now();
    while (delivered.lock().unwrap().len() as u64) < total {
        assert!(
            start.elapsed() < WAKE_DEADLINE,
            "{ctx}: only {} of {total} delivered",
            delivered.lock().unwrap().len()
        );
        thread::sleep(Duration::from_millis(10));
    }
    // A little longer: nothing more (no duplicates) may come.
    thread::sleep(Duration::from_millis(100));
    for m in members.drain(..) {
        m.stop.store(true, Ordering::SeqCst);
        m.handle.join().unwrap();
    }
    let d = delivered.lock().unwrap();
    let mut seen: HashMap<(u32, u64), usize> = HashMap::new();
    for &(p, o, id) in d.iter() {
        if let Some(prev) = seen.insert((p, o), id) {
            panic!("{ctx}: ({p}, {o}) delivered twice, to members {prev} and {id}");
        }
    }
    for (p, &end) in ends.iter().enumerate() {
        for o in 0..end {
            assert!(
                seen.contains_key(&(p as u32, o)),
                "{ctx}: ({p}, {o}) never delivered"
            );
        }
    }
    assert_eq!(d.len() as u64, total, "{ctx}");
    assert!(next_id >= 4, "{ctx}: only {next_id} members");
    // Per member and partition, offsets increase.
    let mut last: HashMap<(usize, u32), u64> = HashMap::new();
    for &(p, o, id) in d.iter() {
        if let Some(prev) = last.insert((id, p), o) {
            assert!(o > prev, "{ctx}: member {id} got ({p}, {o}) after {prev}");
        }
    }
    // Every member committed on leaving: the group's commits are within the log.
    let committed = store.committed_offsets("g", "t").unwrap();
    for (p, o) in committed {
        assert!(o <= ends[p as usize], "{ctx}: committed {o} of {p}");
    }
}

/// With auto-commit, positions handed over when a member joins must not be lost when the
/// group later empties: every member closed cleanly, so the group resumes after every
/// delivered record (Kafka commits the revoked partitions at the rebalance).
///
/// Regression (a bug this found): 2 partitions of 10 records; member A (auto-commit every
/// hour) polls all 20 records; B joins (A keeps p0, B gets p1 at position 10); A closes
/// (commits p0 = 10 only: it no longer owns p1); B closes without committing (it returned
/// no record itself, so it is not "dirty"); a new member C then gets partition 1's ten
/// records again: `committed_offsets` has no entry for p1.
#[test]
fn auto_commit_commits_partitions_handed_over_before_the_group_empties() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let topic = store.create_topic("t", topic_config(2)).unwrap();
    for p in topic.partitions() {
        fill(p, 10);
    }
    let auto = earliest().auto_commit(Some(Duration::from_secs(3600)));
    let mut a = store.join_group("g", "t", auto.clone()).unwrap();
    assert_eq!(poll_n(&mut a, 20).len(), 20);
    let mut b = store.join_group("g", "t", auto.clone()).unwrap();
    assert_eq!((a.assignment(), b.assignment()), (vec![0], vec![1]));
    assert!(b.poll(10, SHORT).unwrap().is_empty());
    a.close().unwrap();
    b.close().unwrap();
    assert_eq!(
        store.committed_offsets("g", "t").unwrap(),
        BTreeMap::from([(0, 10), (1, 10)])
    );
    let mut c = store.join_group("g", "t", auto).unwrap();
    let again = drain(&mut c);
    assert!(again.is_empty(), "delivered twice: {:?}", keys(&again));
}

// ---------------------------------------------------------------------------------------
// Stress

/// One writer, eight standalone readers (reset Earliest) tailing the topic while it is
/// written: each reader gets every record of every partition, in offset order, with the
/// values written.
#[test]
fn one_writer_eight_readers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let n = 4u32;
    let topic = store
        .create_topic("t", topic_config(n).segment_bytes(16 << 10))
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let ends: Arc<Mutex<Option<Vec<u64>>>> = Arc::new(Mutex::new(None));
    let started = Arc::new(Barrier::new(9));
    let readers: Vec<_> = (0..8)
        .map(|i| {
            let mut c = store
                .consumer(
                    "t",
                    earliest().fetch_bytes(if i % 2 == 0 { 1 << 20 } else { 512 }),
                )
                .unwrap();
            let (done, ends, started) = (done.clone(), ends.clone(), started.clone());
            thread::spawn(move || {
                let mut rng = Rng::new(100 + i);
                let mut next = vec![0u64; n as usize];
                let mut count = 0u64;
                started.wait();
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    if done.load(Ordering::SeqCst) {
                        let ends = ends.lock().unwrap().clone().unwrap();
                        if next == ends {
                            break;
                        }
                    }
                    assert!(Instant::now() < deadline, "reader {i} stuck at {next:?}");
                    let max = rng.range(1, 300) as usize;
                    for r in c.poll(max, Duration::from_millis(100)).unwrap() {
                        let p = r.partition as usize;
                        assert_eq!(r.offset, next[p], "reader {i} partition {p}");
                        assert_eq!(
                            r.value.as_deref(),
                            Some(&value_at(r.partition, r.offset)[..]),
                            "reader {i}"
                        );
                        next[p] += 1;
                        count += 1;
                    }
                }
                count
            })
        })
        .collect();
    started.wait();
    let mut rng = Rng::new(99);
    let mut written = 0;
    while written < 6000 {
        let p = topic.partition(rng.below(u64::from(n)) as u32).unwrap();
        let k = rng.range(1, 20);
        fill(p, k);
        written += k;
        match rng.below(50) {
            0 => p.flush().unwrap(),
            1 => thread::sleep(Duration::from_millis(1)),
            _ => {}
        }
    }
    *ends.lock().unwrap() = Some(
        topic
            .partitions()
            .iter()
            .map(Partition::log_end_offset)
            .collect(),
    );
    done.store(true, Ordering::SeqCst);
    for r in readers {
        assert_eq!(r.join().unwrap(), written);
    }
}

// ---------------------------------------------------------------------------------------
// Compacted topics

/// A compacted log with gaps and record-less batches: few keys rewritten often over small
/// segments, then one compaction pass. Returns the partition, what survives (offset and
/// value, read with `Partition::read`), and the log end offset.
fn compacted_log(store: &Store) -> (Partition, Vec<(u64, Vec<u8>)>, u64) {
    let topic = store
        .create_topic(
            "kv",
            topic_config(1)
                .cleanup_policy(CleanupPolicy::Compact)
                .segment_bytes(700),
        )
        .unwrap();
    let p = topic.partition(0).unwrap().clone();
    let mut rng = Rng::new(3);
    for i in 0..200u64 {
        let n = rng.range(1, 4);
        let recs: Vec<Record> = (0..n)
            .map(|j| Record::new(format!("v{i}.{j}")).with_key(format!("k{}", rng.below(6))))
            .collect();
        p.append(&recs).unwrap();
    }
    let end = p.log_end_offset();
    let report = p.compact_now().unwrap();
    assert!(report.cleaned, "{report:?}");
    let survivors: Vec<(u64, Vec<u8>)> = p
        .records_from(p.log_start_offset())
        .map(|r| r.map(|r| (r.offset, r.value.unwrap())).unwrap())
        .take_while(|(o, _)| *o < end)
        .collect();
    assert!(
        survivors.len() < end as usize / 2,
        "compaction left {survivors:?}"
    );
    let offsets: Vec<u64> = survivors.iter().map(|s| s.0).collect();
    assert!(
        offsets.windows(2).any(|w| w[1] > w[0] + 1),
        "no gaps: {offsets:?}"
    );
    (p, survivors, end)
}

/// Reads `survivors` with a consumer of `fetch_bytes`, a few records per poll, then
/// checks that nothing more comes and the position is the log end.
fn read_compacted(store: &Store, fetch_bytes: usize, survivors: &[(u64, Vec<u8>)], end: u64) {
    let mut c = store
        .consumer("kv", earliest().fetch_bytes(fetch_bytes))
        .unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    while got.len() < survivors.len() {
        assert!(
            start.elapsed() < WAKE_DEADLINE,
            "fetch_bytes {fetch_bytes}: stuck at position {:?} after {} of {} records",
            c.position(0),
            got.len(),
            survivors.len()
        );
        // No appends come: a poll that returns nothing here waited out its timeout.
        let batch = c.poll(7, Duration::from_secs(3)).unwrap();
        assert!(
            !batch.is_empty(),
            "fetch_bytes {fetch_bytes}: poll returned nothing at position {:?} after {} of {} \
             records",
            c.position(0),
            got.len(),
            survivors.len()
        );
        got.extend(batch);
    }
    let got: Vec<(u64, Vec<u8>)> = got
        .into_iter()
        .map(|r| (r.offset, r.value.unwrap()))
        .collect();
    assert_eq!(got, survivors, "fetch_bytes {fetch_bytes}");
    assert!(c.poll(7, SHORT).unwrap().is_empty());
    assert_eq!(c.position(0), Some(end), "fetch_bytes {fetch_bytes}");
}

/// A consumer of a compacted topic skips the offsets compaction removed (gaps, and the
/// empty batches it keeps) and gets exactly the records that survive, in offset order; a
/// seek into a gap continues at the next record.
#[test]
fn consumer_of_a_compacted_topic_skips_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (_p, survivors, end) = compacted_log(&store);
    for fetch_bytes in [1 << 20, 64 << 10] {
        read_compacted(&store, fetch_bytes, &survivors, end);
    }
    let offsets: Vec<u64> = survivors.iter().map(|s| s.0).collect();
    let gap = offsets
        .windows(2)
        .find(|w| w[1] > w[0] + 1)
        .map(|w| (w[0] + 1, w[1]))
        .unwrap();
    let mut c = store.consumer("kv", earliest()).unwrap();
    c.seek(0, gap.0).unwrap();
    assert_eq!(c.poll(1, LONG).unwrap()[0].offset, gap.1);
}

/// `poll` returns records as soon as any are available, also when a fetch (bounded by
/// `fetch_bytes`) holds only record-less batches that compaction left: it must go on
/// reading from the moved position rather than wait for an append.
///
/// Regression (a bug this found): a compacted topic with `segment_bytes(200)`; six appends of
/// one record each with key `k` (values v0..v5, two per segment); `compact_now()` leaves
/// the first segment as one empty batch (offsets 0..=1). A consumer with reset Earliest
/// and `fetch_bytes(1)` calls `poll(10, 2 s)`: it returns `[]` after the whole timeout,
/// its position moved to 2, although offsets 3, 4 and 5 are there (`Consumer::poll` waits
/// for a notification whenever a round returned no record, even when it moved a
/// position). The same happens with `fetch_bytes(200)` on a longer compacted log.
#[test]
fn poll_goes_on_past_record_less_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let topic = store
        .create_topic(
            "small",
            topic_config(1)
                .cleanup_policy(CleanupPolicy::Compact)
                .segment_bytes(200),
        )
        .unwrap();
    let p = topic.partition(0).unwrap();
    for i in 0..6 {
        p.append(&[Record::new(format!("v{i}")).with_key("k")])
            .unwrap();
    }
    assert!(p.compact_now().unwrap().cleaned);
    let first = p.read(0, 1).unwrap();
    assert_eq!(first.records().count(), 0, "the first batch is empty");
    assert_eq!(first.next_offset(), 2);
    let mut c = store.consumer("small", earliest().fetch_bytes(1)).unwrap();
    let got = c.poll(10, Duration::from_secs(2)).unwrap();
    assert_eq!(
        keys(&got).first(),
        Some(&(0, 3)),
        "position {:?}",
        c.position(0)
    );

    let (_p, survivors, end) = compacted_log(&store);
    for fetch_bytes in [200, 1] {
        read_compacted(&store, fetch_bytes, &survivors, end);
    }
}

// ---------------------------------------------------------------------------------------
// Errors and edge cases

/// A standalone consumer with reset None and no position fails instead of guessing.
#[test]
fn standalone_consumer_with_reset_none_and_no_position_fails() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let topic = store.create_topic("t", topic_config(1)).unwrap();
    fill(topic.partition(0).unwrap(), 3);
    let mut c = store
        .consumer("t", earliest().reset(OffsetReset::None))
        .unwrap();
    assert!(c.poll(10, SHORT).is_err());
    assert_eq!(c.position(0), None);
    c.seek(0, 1).unwrap();
    assert_eq!(keys(&drain(&mut c)), [(0, 1), (0, 2)]);
}

/// A poll that fails on one partition (reset None) must not lose the records it already
/// read from others: after the application seeks the failing partition somewhere valid,
/// every record of the other partitions still comes, from where it was.
///
/// Regression (a bug this found), standalone: 2 partitions of 5 records;
/// `delete_records_before(3)` on partition 1; a consumer with reset None seeks both to 0;
/// `poll(100, ..)` reads partition 0's five records into its result and moves its
/// position to 5, then fails on partition 1 (`OffsetOutOfRange`) and drops them; after
/// `seek(1, 3)`, polls return only (1, 3) and (1, 4): (0, 0..=4) are never delivered.
/// The same for a group member: partition 0 committed at 0, partition 1 without a commit,
/// reset None: `NoCommittedOffset` for partition 1, and partition 0's records are lost.
#[test]
fn a_failed_poll_loses_no_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let topic = store.create_topic("t", topic_config(2)).unwrap();
    for p in topic.partitions() {
        fill(p, 5);
    }
    topic
        .partition(1)
        .unwrap()
        .delete_records_before(3)
        .unwrap();
    let mut c = store
        .consumer("t", earliest().reset(OffsetReset::None))
        .unwrap();
    c.seek(0, 0).unwrap();
    c.seek(1, 0).unwrap();
    // Partition 0's records come; the error for partition 1 waits for the next poll (as
    // Kafka's consumer defers a fetch error when it has records to return).
    let mut got = c.poll(100, SHORT).unwrap();
    assert!(matches!(
        c.poll(100, SHORT),
        Err(Error::OffsetOutOfRange { offset: 0, .. })
    ));
    c.seek(1, 3).unwrap();
    got.extend(drain(&mut c));
    let parts = by_partition(&got);
    assert_eq!(parts.get(&1).cloned().unwrap_or_default(), [3, 4]);
    assert_eq!(
        parts.get(&0).cloned().unwrap_or_default(),
        [0, 1, 2, 3, 4],
        "standalone"
    );

    let mut e = store.join_group("g", "t", no_auto_commit()).unwrap();
    e.seek(0, 0).unwrap();
    e.commit().unwrap();
    e.close().unwrap();
    let mut m = store
        .join_group("g", "t", no_auto_commit().reset(OffsetReset::None))
        .unwrap();
    let mut got = m.poll(100, SHORT).unwrap();
    assert!(matches!(
        m.poll(100, SHORT),
        Err(Error::NoCommittedOffset { .. })
    ));
    m.seek(1, 3).unwrap();
    got.extend(drain(&mut m));
    let parts = by_partition(&got);
    assert_eq!(
        parts.get(&0).cloned().unwrap_or_default(),
        [0, 1, 2, 3, 4],
        "group member"
    );
}

/// `poll` accepts any timeout, including `Duration::MAX` ("wait until data comes").
///
/// Regression (a bug this found): `consumer.poll(10, Duration::MAX)` panics with "overflow
/// when adding duration to instant" (`Instant::now() + timeout` in `Consumer::poll`), even
/// when records are waiting; the README promises errors, never panics, for bad input.
#[test]
fn poll_accepts_an_unbounded_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let topic = store.create_topic("t", topic_config(1)).unwrap();
    let p = topic.partition(0).unwrap().clone();
    fill(&p, 1);
    let mut c = store.consumer("t", earliest()).unwrap();
    assert_eq!(keys(&c.poll(10, Duration::MAX).unwrap()), [(0, 0)]);
    let appender = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        fill(&p, 1);
    });
    assert_eq!(keys(&c.poll(10, Duration::MAX).unwrap()), [(0, 1)]);
    appender.join().unwrap();
}

/// A group name that does not fit a Kafka string (over 32,767 bytes: its length is an
/// int16) is refused, and never written in a form that cannot be read back.
///
/// Regression (a bug this found): `join_group(&"g".repeat(40_000), "t", ..)`, `seek(0, 3)`,
/// `commit()` all succeed; the key's length field wraps to a negative int16. After
/// `close` and reopen, `committed_offsets` and `join_group` fail for EVERY group with
/// `Corrupt { reason: "__consumer_offsets record at offset 0: negative length of group" }`:
/// one bad name makes the store's consumer groups unusable for good.
#[test]
fn an_overlong_group_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let long = "g".repeat(40_000);
    {
        let store = open(dir.path());
        let topic = store.create_topic("t", topic_config(1)).unwrap();
        fill(topic.partition(0).unwrap(), 5);
        let mut o = store.join_group("other", "t", no_auto_commit()).unwrap();
        o.seek(0, 2).unwrap();
        o.commit().unwrap();
        let committed = store
            .join_group(&long, "t", no_auto_commit())
            .and_then(|mut c| {
                c.seek(0, 3)?;
                c.commit()
            });
        assert!(committed.is_err(), "a 40,000-byte group name was committed");
        store.close().unwrap();
    }
    let store = open(dir.path());
    assert_eq!(
        store.committed_offsets("other", "t").unwrap(),
        BTreeMap::from([(0, 2)])
    );
}

/// A member that lost a partition in a rebalance must not move the partition's committed
/// offset: a commit it started before the rebalance may not overwrite the commit of the
/// partition's new owner (Kafka fences such commits by generation).
///
/// Regression (a bug this found, a race): `Consumer::commit` takes the positions of its
/// partitions under the group lock, releases it, then waits for the offsets topic's lock
/// and writes them. Member X (partitions 0 and 1, both at offset i) commits in a loop; Y
/// joins (gets partition 1), seeks it to 500 + i and commits; X's commit that snapshotted
/// partition 1 before the join lands after Y's: `committed_offsets` shows partition 1 back
/// at i. With a third thread committing another group (contention on the offsets topic),
/// this happens in a good part of 40 rounds; a restarted group then re-delivers 500
/// records.
#[test]
fn a_commit_from_before_a_rebalance_does_not_move_committed_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let topic = store.create_topic("t", topic_config(2)).unwrap();
    store.create_topic("h", topic_config(1)).unwrap();
    for p in topic.partitions() {
        fill(p, 1000);
    }
    let stop_hammer = Arc::new(AtomicBool::new(false));
    let hammer = {
        let (store, stop) = (store.clone(), stop_hammer.clone());
        thread::spawn(move || {
            let mut c = store.join_group("hammer", "h", no_auto_commit()).unwrap();
            c.seek(0, 0).unwrap();
            while !stop.load(Ordering::SeqCst) {
                c.commit().unwrap();
            }
        })
    };
    let mut regressions = Vec::new();
    for i in 0..40u64 {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready) = mpsc::channel();
        let x = {
            let (store, stop) = (store.clone(), stop.clone());
            thread::spawn(move || {
                let mut c = store.join_group("g", "t", no_auto_commit()).unwrap();
                c.seek(0, i).unwrap();
                c.seek(1, i).unwrap();
                c.commit().unwrap();
                ready_tx.send(()).unwrap();
                while !stop.load(Ordering::SeqCst) {
                    c.commit().unwrap();
                }
                c // stays a member until the check
            })
        };
        ready.recv().unwrap();
        thread::sleep(Duration::from_millis(2));
        let mut y = store.join_group("g", "t", no_auto_commit()).unwrap();
        assert_eq!(y.assignment(), [1]);
        y.seek(1, 500 + i).unwrap();
        y.commit().unwrap();
        stop.store(true, Ordering::SeqCst);
        let x = x.join().unwrap();
        let committed = store.committed_offsets("g", "t").unwrap()[&1];
        if committed != 500 + i {
            regressions.push((i, committed));
        }
        drop(y);
        drop(x);
    }
    stop_hammer.store(true, Ordering::SeqCst);
    hammer.join().unwrap();
    assert!(
        regressions.is_empty(),
        "partition 1's committed offset went back to the old owner's (round, committed): \
         {regressions:?}"
    );
}

/// A group consuming a topic that is deleted and created again (same name, another
/// partition count) reads the new topic: every one of its partitions is assigned and
/// delivered.
///
/// Regression (a bug this found): `create_topic("t", 1 partition)`; `join_group("g", "t")`
/// and drop the member; `delete_topic("t")`; `create_topic("t", 3 partitions)` with two
/// records in each; a new member of "g" has `assignment() == [0]` and only ever gets
/// partition 0's records: the coordinator keeps the group made for the old topic (its
/// partition count, its positions, its topic handle, whose notifier no longer gets
/// appends). The other way round (3 partitions, then 1) the member is assigned 0..=2 and
/// `poll` fails with `UnknownPartition`.
#[test]
fn a_group_on_a_recreated_topic_reads_all_its_partitions() {
    for (before, after) in [(1u32, 3u32), (3, 1)] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.create_topic("t", topic_config(before)).unwrap();
        drop(store.join_group("g", "t", no_auto_commit()).unwrap());
        store.delete_topic("t").unwrap();
        let topic = store.create_topic("t", topic_config(after)).unwrap();
        for p in topic.partitions() {
            fill(p, 2);
        }
        let mut c = store.join_group("g", "t", no_auto_commit()).unwrap();
        assert_eq!(
            c.assignment(),
            (0..after).collect::<Vec<_>>(),
            "{before} then {after} partitions"
        );
        let got = drain(&mut c);
        assert_eq!(
            got.len() as u32,
            2 * after,
            "{before} then {after} partitions"
        );
    }
}

/// Committed offsets of a deleted topic go with it (as Kafka's group coordinator removes
/// them): a topic created again under the same name is read from its beginning, not from
/// the old topic's committed offsets.
///
/// Regression (a bug this found, Kafka semantics): topic "t" with 10 records; group "g"
/// commits offset 8; `delete_topic("t")`; `create_topic("t")` and 10 new records; a new
/// member of "g" (reset Earliest) starts at offset 8 and never sees records 0..=7 of the
/// new topic; `committed_offsets("g", "t")` still returns `{0: 8}` (also after reopen).
#[test]
fn committed_offsets_of_a_deleted_topic_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let topic = store.create_topic("t", topic_config(1)).unwrap();
    fill(topic.partition(0).unwrap(), 10);
    let mut c = store.join_group("g", "t", no_auto_commit()).unwrap();
    c.seek(0, 8).unwrap();
    c.commit().unwrap();
    c.close().unwrap();
    store.delete_topic("t").unwrap();
    let topic = store.create_topic("t", topic_config(1)).unwrap();
    fill(topic.partition(0).unwrap(), 10);
    assert_eq!(store.committed_offsets("g", "t").unwrap(), BTreeMap::new());
    let mut c = store.join_group("g", "t", no_auto_commit()).unwrap();
    assert_eq!(drain(&mut c).len(), 10);
}

// ---------------------------------------------------------------------------------------
// Crash: committed offsets survive SIGKILL

const CHILD_DIR: &str = "SEGLOG_CONSUMER_CHILD_DIR";
const CHILD_SEED: &str = "SEGLOG_CONSUMER_CHILD_SEED";
const CRASH_TOPIC: &str = "events";
const CRASH_GROUP: &str = "crashers";
const CRASH_PARTITIONS: u32 = 3;

/// Not a test by itself: the body of the child process of
/// `committed_offsets_survive_sigkill`. Does nothing unless started by it.
///
/// Joins the group, then loops: poll a few records, sometimes append to the topic, commit
/// (explicitly; auto-commit is off), and print `COMMIT p:o ...` with the committed
/// position of every owned partition once `commit` has returned.
#[test]
fn crash_child_helper() {
    let (Ok(dir), Ok(seed)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_SEED)) else {
        return;
    };
    let mut rng = Rng::new(seed.parse().unwrap());
    let store = open(Path::new(&dir));
    let topic = store.topic(CRASH_TOPIC).unwrap();
    let mut c = store
        .join_group(CRASH_GROUP, CRASH_TOPIC, no_auto_commit())
        .unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        c.poll(rng.range(1, 25) as usize, Duration::from_millis(20))
            .unwrap();
        if rng.below(3) == 0 {
            let p = topic
                .partition(rng.below(u64::from(CRASH_PARTITIONS)) as u32)
                .unwrap();
            fill(p, rng.range(1, 6));
            if rng.below(2) == 0 {
                p.flush().unwrap();
            }
        }
        c.commit().unwrap();
        let mut line = String::from("COMMIT");
        for p in c.assignment() {
            if let Some(o) = c.position(p) {
                line.push_str(&format!(" {p}:{o}"));
            }
        }
        writeln!(out, "{line}").unwrap();
        out.flush().unwrap();
    }
    std::process::exit(0);
}

/// A child process consumes as a group member, commits explicitly and reports every
/// commit; it is SIGKILLed at a random moment (after a random number of commits, or a
/// random time into one). After reopening, each partition's committed offset is at least
/// the last one reported and never past the log end, and a new member resumes exactly
/// there. Several generations continue the same group.
#[test]
fn committed_offsets_survive_sigkill() {
    for round in 0..4u64 {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            let topic = store
                .create_topic(CRASH_TOPIC, topic_config(CRASH_PARTITIONS))
                .unwrap();
            for p in topic.partitions() {
                fill(p, 100);
            }
            store.close().unwrap();
        }
        let mut prev: BTreeMap<u32, u64> = BTreeMap::new();
        for generation in 0..2u64 {
            let seed = round * 10 + generation;
            let ctx = format!("round {round} generation {generation} seed {seed}");
            let reported = run_child(dir.path(), seed, &ctx);
            let store = open(dir.path());
            let topic = store.topic(CRASH_TOPIC).unwrap();
            let committed = store.committed_offsets(CRASH_GROUP, CRASH_TOPIC).unwrap();
            for (&p, &o) in &reported {
                let c = committed.get(&p).copied();
                assert!(
                    c.is_some_and(|c| c >= o),
                    "{ctx}: partition {p} committed {c:?}, reported {o}"
                );
            }
            for (&p, &o) in &committed {
                let part = topic.partition(p).unwrap();
                assert!(
                    o <= part.log_end_offset(),
                    "{ctx}: partition {p} committed {o}"
                );
                assert!(
                    prev.get(&p).is_none_or(|&before| o >= before),
                    "{ctx}: partition {p} went back from {:?} to {o}",
                    prev.get(&p)
                );
            }
            // A new member resumes exactly at the committed offsets (one more record per
            // partition makes sure there is something to resume with).
            for p in topic.partitions() {
                fill(p, 1);
            }
            let mut c = store
                .join_group(CRASH_GROUP, CRASH_TOPIC, no_auto_commit())
                .unwrap();
            let mut first: BTreeMap<u32, u64> = BTreeMap::new();
            let start = Instant::now();
            while first.len() < CRASH_PARTITIONS as usize {
                assert!(start.elapsed() < WAKE_DEADLINE, "{ctx}: got only {first:?}");
                for r in c.poll(10_000, SHORT).unwrap() {
                    first.entry(r.partition).or_insert(r.offset);
                }
            }
            for p in topic.partitions() {
                let want = committed
                    .get(&p.number())
                    .copied()
                    .unwrap_or(p.log_start_offset());
                assert_eq!(first[&p.number()], want, "{ctx}: partition {}", p.number());
            }
            drop(c); // no auto-commit: the next generation starts from the same commits
            assert_eq!(
                store.committed_offsets(CRASH_GROUP, CRASH_TOPIC).unwrap(),
                committed
            );
            prev = committed;
            store.close().unwrap();
        }
    }
}

/// Runs one child until a random moment, SIGKILLs it, and returns the last position it
/// reported per partition.
fn run_child(dir: &Path, seed: u64, ctx: &str) -> BTreeMap<u32, u64> {
    let child = child::spawn_lines(
        child::helper("crash_child_helper")
            .env(CHILD_DIR, dir)
            .env(CHILD_SEED, seed.to_string()),
    );
    let mut rng = Rng::new(seed ^ 0xC0FFEE);
    let commits_before_kill = rng.range(1, 40);
    let extra = Duration::from_micros(rng.below(3000));
    let mut reported: BTreeMap<u32, u64> = BTreeMap::new();
    let mut commits = 0;
    let take = |line: &str, reported: &mut BTreeMap<u32, u64>| -> bool {
        // With --nocapture, libtest's "test crash_child_helper ... " may precede a line.
        let Some((_, rest)) = line.split_once("COMMIT") else {
            return false;
        };
        for pair in rest.split_whitespace() {
            let (p, o) = pair.split_once(':').unwrap();
            reported.insert(p.parse().unwrap(), o.parse().unwrap());
        }
        true
    };
    while commits < commits_before_kill {
        // A line cut short by the kill never arrives.
        match child.lines.recv_timeout(Duration::from_secs(30)) {
            Ok((_, line)) => {
                if take(&line, &mut reported) {
                    commits += 1;
                }
            }
            Err(_) => {
                let killed = child.kill();
                panic!("{ctx}: child stopped reporting: {}", killed.stderr);
            }
        }
    }
    // Somewhere inside a later poll, append or commit.
    let at = Instant::now();
    while at.elapsed() < extra {
        std::hint::spin_loop();
    }
    let killed = child.kill(); // SIGKILL
    for (_, line) in &killed.rest {
        take(line, &mut reported);
    }
    assert!(
        killed.status.code().is_none(),
        "{ctx}: child exited by itself ({}): {}",
        killed.status,
        killed.stderr
    );
    assert!(!reported.is_empty(), "{ctx}: no commit reported");
    reported
}

/// Regression (found in review): a consumer outliving its topic's deletion committed its
/// offsets again when dropped (auto-commit on leave), and a group on a topic created again
/// under the name skipped records. Commits on a deleted topic now fail.
#[test]
fn a_consumer_of_a_deleted_topic_cannot_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let topic = store.create_topic("t", topic_config(1)).unwrap();
    fill(topic.partition(0).unwrap(), 10);
    let mut c = store.join_group("g", "t", earliest()).unwrap();
    assert_eq!(poll_n(&mut c, 10).len(), 10);
    c.commit().unwrap();
    store.delete_topic("t").unwrap();
    assert!(store.committed_offsets("g", "t").unwrap().is_empty());
    assert!(matches!(c.commit(), Err(Error::UnknownTopic(_))));
    drop(c); // auto-commit on leave must not bring the offsets back
    assert!(store.committed_offsets("g", "t").unwrap().is_empty());
    let topic = store.create_topic("t", topic_config(1)).unwrap();
    fill(topic.partition(0).unwrap(), 5);
    let mut m = store.join_group("g", "t", earliest()).unwrap();
    let got = poll_n(&mut m, 5);
    assert_eq!(got[0].offset, 0);
}

/// Regression (found in review): deleting `__consumer_offsets` while another thread first
/// loaded the committed offsets took their two locks in opposite orders and hung both.
#[test]
fn deleting_the_offsets_topic_while_offsets_load_does_not_hang() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            store.create_topic("t", topic_config(1)).unwrap();
            let mut c = store.join_group("g", "t", earliest()).unwrap();
            c.commit().unwrap();
            c.close().unwrap();
            store.close().unwrap();
        }
        let store = Arc::new(open(dir.path()));
        let (tx, rx) = mpsc::channel();
        let barrier = Arc::new(Barrier::new(2));
        for deleter in [true, false] {
            let (store, tx, barrier) = (Arc::clone(&store), tx.clone(), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                if deleter {
                    let _ = store.delete_topic(OFFSETS_TOPIC);
                } else {
                    let _ = store.committed_offsets("g", "t");
                }
                let _ = tx.send(());
            });
        }
        for _ in 0..2 {
            rx.recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("round {round}: deadlock"));
        }
    }
}

/// A metadata string committed beside an offset (Kafka's `OffsetAndMetadata`) is kept in
/// `__consumer_offsets`, read back after a reopen, replaced by the next commit, and
/// cleared by a commit without one; an oversized one is refused by name.
#[test]
fn commit_with_metadata_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        let t = store.create_topic("t", topic_config(2)).unwrap();
        fill(t.partition(0).unwrap(), 5);
        fill(t.partition(1).unwrap(), 5);
        let mut c = store.join_group("g", "t", no_auto_commit()).unwrap();
        c.seek(0, 3).unwrap();
        c.seek(1, 4).unwrap();
        let meta = BTreeMap::from([(0, "remote=30".to_string())]);
        c.commit_with_metadata(&meta).unwrap();
        let too_big = BTreeMap::from([(1, "x".repeat(40_000))]);
        let err = c.commit_with_metadata(&too_big).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidConfig {
                    field: "metadata",
                    ..
                }
            ),
            "{err}"
        );
        drop(c);
        store.close().unwrap();
    }
    let store = open(dir.path());
    let got = store.committed_with_metadata("g", "t").unwrap();
    assert_eq!(got[&0].offset, 3);
    assert_eq!(got[&0].metadata, "remote=30");
    assert_eq!(got[&1].offset, 4);
    assert_eq!(got[&1].metadata, "");
    assert_eq!(
        store.committed_offsets("g", "t").unwrap(),
        BTreeMap::from([(0, 3), (1, 4)])
    );
    // Same offset, new metadata: written. Then a plain commit clears it.
    let mut c = store.join_group("g", "t", no_auto_commit()).unwrap();
    c.seek(0, 3).unwrap();
    c.commit_with_metadata(&BTreeMap::from([(0, "remote=31".to_string())]))
        .unwrap();
    assert_eq!(
        store.committed_with_metadata("g", "t").unwrap()[&0].metadata,
        "remote=31"
    );
    c.commit().unwrap();
    assert_eq!(
        store.committed_with_metadata("g", "t").unwrap()[&0].metadata,
        ""
    );
    drop(c);
    store.close().unwrap();
    let store = open(dir.path());
    assert_eq!(
        store.committed_with_metadata("g", "t").unwrap()[&0].metadata,
        ""
    );
}

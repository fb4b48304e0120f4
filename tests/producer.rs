//! The batching producer (issue 15): delivery handles resolve to the offsets the records
//! got, batches follow `batch_bytes` and `linger`, and nothing accepted is lost.
//!
//! Tests that plan faults take `exclusive()`, the others `shared()` (faults are
//! process-wide). No test asserts a duration: waits for something that must happen have a
//! generous limit only so that a bug hangs no test; "not yet appended" is asserted only
//! with a linger of an hour.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use common::{exclusive, shared, wait_for, ManualClock, Rng};
use seglog::faults::{self, FaultOp};
use seglog::{
    partition_for_key, Acks, Clock, Compression, Delivery, Error, Partition, ProducerConfig,
    Record, Store, StoreConfig, TimestampType, TopicConfig,
};

/// Limit of every wait for something that must happen (a hang guard, not a timing claim).
const LONG: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const TS0: i64 = 1_700_000_000_000;
const EIO: i32 = 5;

fn records_of(p: &Partition) -> Vec<(u64, Vec<u8>)> {
    read_all(p)
        .into_iter()
        .map(|r| (r.offset, r.value.unwrap()))
        .collect()
}

/// A record read back.
#[derive(Debug, Clone)]
struct Read {
    offset: u64,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

fn read_all(p: &Partition) -> Vec<Read> {
    common::read_all(p, 1 << 20, |r| Read {
        offset: r.offset,
        timestamp: r.timestamp,
        key: r.key.clone(),
        value: r.value.clone(),
    })
}

/// A batch on disk: `(base offset, last offset, records)`.
fn batches_of(p: &Partition) -> Vec<(u64, u64, u32)> {
    let mut out = Vec::new();
    let mut next = p.log_start_offset();
    while next < p.log_end_offset() {
        let f = p.read(next, 1 << 20).unwrap();
        for b in f.batches() {
            out.push((
                b.base_offset(),
                b.last_offset(),
                b.header().records_count as u32,
            ));
        }
        assert!(f.next_offset() > next, "read at {next} made no progress");
        next = f.next_offset();
    }
    out
}

/// The record at `offset` of `p`.
fn record_at(p: &Partition, offset: u64) -> Read {
    let f = p.read(offset, 1).unwrap();
    let r = f
        .records()
        .find(|r| r.offset() == offset)
        .unwrap_or_else(|| panic!("{}: no record at {offset}", p.name()));
    Read {
        offset,
        timestamp: r.timestamp(),
        key: r.key().map(<[u8]>::to_vec),
        value: r.value().map(<[u8]>::to_vec),
    }
}

fn wait_ok(h: Delivery) -> seglog::RecordMetadata {
    match h.wait_timeout(LONG) {
        Some(r) => r.unwrap(),
        None => panic!("a delivery handle did not resolve within {LONG:?}"),
    }
}

fn wait_err(h: Delivery) -> Error {
    match h.wait_timeout(LONG) {
        Some(Ok(md)) => panic!("expected an error, delivered at {md:?}"),
        Some(Err(e)) => e,
        None => panic!("a delivery handle did not resolve within {LONG:?}"),
    }
}

fn store_on(dir: &std::path::Path, clock: Arc<dyn Clock>) -> Store {
    Store::open_with(
        dir,
        StoreConfig::default()
            .clock(clock)
            .maintenance_interval(None),
    )
    .unwrap()
}

// ---------------------------------------------------------------------------------------
// 1. Delivery handles: offsets, partitions and timestamps

#[test]
fn handles_resolve_to_the_offsets_records_got() {
    let _f = shared();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store
        .create_topic(
            "t",
            TopicConfig::default().partitions(3).segment_bytes(4096),
        )
        .unwrap();
    for acks in [Acks::Written, Acks::Durable] {
        let producer = topic
            .producer(ProducerConfig::default().acks(acks).batch_bytes(1000))
            .unwrap();
        let handles: Vec<_> = (0..2000)
            .map(|i| {
                let key = (i % 7 == 0).then(|| format!("k{}", i % 5).into_bytes());
                let mut r = Record::new(format!("{acks:?}-{i}"));
                r.key = key;
                (format!("{acks:?}-{i}"), producer.send(r))
            })
            .collect();
        producer.flush().unwrap();
        for (value, h) in handles {
            let md = h.wait().unwrap();
            let p = topic.partition(md.partition).unwrap();
            let got = p.read(md.offset, 1).unwrap();
            let r = got.records().find(|r| r.offset() == md.offset).unwrap();
            assert_eq!(r.value().unwrap(), value.as_bytes());
            if acks == Acks::Durable {
                assert!(p.durable_offset() > md.offset);
            }
        }
    }
    // Order within a partition is the send order.
    for p in topic.partitions() {
        let values: Vec<_> = records_of(p)
            .into_iter()
            .map(|(_, v)| String::from_utf8(v).unwrap())
            .collect();
        let index = |v: &str| v.rsplit('-').next().unwrap().parse::<u32>().unwrap();
        for w in values.windows(2) {
            if w[0].split('-').next() == w[1].split('-').next() {
                assert!(index(&w[0]) < index(&w[1]), "{w:?}");
            }
        }
    }
}

/// Across many segment rolls, keyed (murmur2) and keyless records, with both acks: each
/// handle names the partition, offset and timestamp the record has on disk; a record's
/// own timestamp is kept, a missing one is the clock's at `send` (not at the append).
#[test]
fn handles_give_partition_offset_and_timestamp_across_rolls() {
    let _f = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(TS0);
    let store = store_on(dir.path(), clock.clone());
    let topic = store
        .create_topic(
            "t",
            TopicConfig::default()
                .partitions(4)
                .segment_bytes(2048)
                .max_timestamp_skew_ms(None),
        )
        .unwrap();
    let mut rng = Rng::new(15);
    let mut sent = 0u64;
    for acks in [Acks::Written, Acks::Durable] {
        for linger in [Duration::ZERO, Duration::from_millis(5), HOUR] {
            let producer = topic
                .producer(
                    ProducerConfig::default()
                        .acks(acks)
                        .batch_bytes(700)
                        .linger(linger),
                )
                .unwrap();
            let mut expect = Vec::new();
            for _ in 0..600 {
                let i = sent;
                sent += 1;
                // The clock moves before every send: a record without a timestamp must
                // get this send's time.
                clock.set(TS0 + 10 * i as i64);
                let value = format!("v{i}-{}", "x".repeat(rng.below(150) as usize)).into_bytes();
                let mut r = Record::new(value.clone());
                let key = (rng.below(3) == 0).then(|| format!("key{}", rng.below(50)).into_bytes());
                if let Some(k) = &key {
                    r = r.with_key(k.clone());
                }
                let ts = if rng.below(2) == 0 {
                    let t = TS0 - 1_000_000 + i as i64 * 3;
                    r = r.with_timestamp(t);
                    t
                } else {
                    TS0 + 10 * i as i64
                };
                let h = producer.send(r);
                if let Some(k) = &key {
                    assert_eq!(h.partition(), partition_for_key(k, 4), "murmur2");
                }
                expect.push((key, value, ts, h));
            }
            // The appends happen at another time than the sends.
            clock.set(TS0 - 5);
            producer.flush().unwrap();
            let mut seen = HashSet::new();
            for (key, value, ts, h) in expect {
                let want_partition = h.partition();
                let md = wait_ok(h);
                assert_eq!(md.partition, want_partition);
                assert!(seen.insert((md.partition, md.offset)), "offset given twice");
                assert_eq!(md.timestamp, ts, "{acks:?} {linger:?}");
                let p = topic.partition(md.partition).unwrap();
                let got = record_at(p, md.offset);
                assert_eq!(got.value.as_deref(), Some(&value[..]));
                assert_eq!(got.key, key);
                assert_eq!(got.timestamp, ts);
                if acks == Acks::Durable {
                    assert!(p.durable_offset() > md.offset, "delivered before durable");
                }
            }
        }
    }
    // Everything sent is there once, and the segments rolled many times.
    let total: usize = topic.partitions().iter().map(|p| read_all(p).len()).sum();
    assert_eq!(total as u64, sent);
    for p in topic.partitions() {
        assert!(p.segments().len() > 3, "{}: no rolls", p.name());
    }
}

/// A log-append-time topic: handles report the time of the append, which is what the
/// records read back with, whatever timestamp they were sent with.
#[test]
fn log_append_time_handles_report_the_append_time() {
    let _f = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(TS0);
    let store = store_on(dir.path(), clock.clone());
    let topic = store
        .create_topic(
            "t",
            TopicConfig::default()
                .partitions(2)
                .timestamp_type(TimestampType::LogAppendTime),
        )
        .unwrap();
    for (round, acks) in [Acks::Written, Acks::Durable].into_iter().enumerate() {
        let producer = topic
            .producer(ProducerConfig::default().acks(acks).linger(HOUR))
            .unwrap();
        let handles: Vec<_> = (0..100)
            .map(|i| {
                let r = Record::new(format!("r{round}-{i}"));
                producer.send(if i % 2 == 0 { r.with_timestamp(42) } else { r })
            })
            .collect();
        let append_time = TS0 + 1000 * (round as i64 + 1);
        clock.set(append_time);
        producer.flush().unwrap();
        for h in handles {
            let md = wait_ok(h);
            let got = record_at(topic.partition(md.partition).unwrap(), md.offset);
            assert_eq!(got.timestamp, append_time, "on disk");
            assert_eq!(
                md.timestamp, append_time,
                "{acks:?}: the handle's timestamp"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// 2. batch_bytes and linger

/// With an hour's linger, a batch is appended exactly when it is full (its records reach
/// `batch_bytes`, or the next record does not fit), and a batch's records are one Kafka
/// batch on disk.
#[test]
fn batches_are_appended_when_full_and_are_one_kafka_batch() {
    let _f = shared();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store.create_topic("t", TopicConfig::default()).unwrap();
    let p = topic.partition(0).unwrap().clone();
    // A record's size estimate is its key and value plus 36 bytes of framing at most.
    // Values of 64 bytes: 100 bytes each, 10 fill a batch of 1000 bytes exactly.
    let producer = topic
        .producer(ProducerConfig::default().batch_bytes(1000).linger(HOUR))
        .unwrap();
    let value = |i: usize| format!("{i:064}").into_bytes();
    let mut handles = Vec::new();
    for i in 0..9 {
        handles.push(producer.send(Record::new(value(i))));
    }
    assert_eq!(
        p.log_end_offset(),
        0,
        "appended before full, with an hour's linger"
    );
    assert!(!handles[0].is_done());
    assert!(handles[0].try_result().is_none());
    assert!(handles[0].wait_timeout(Duration::from_millis(20)).is_none());
    handles.push(producer.send(Record::new(value(9))));
    wait_for("the full batch", LONG, || p.log_end_offset() == 10);
    for i in 10..95 {
        handles.push(producer.send(Record::new(value(i))));
    }
    wait_for("nine full batches", LONG, || p.log_end_offset() == 90);
    assert_eq!(batches_of(&p).len(), 9);
    assert!(
        !handles[94].is_done(),
        "the open batch went with an hour's linger"
    );
    producer.flush().unwrap();
    let batches = batches_of(&p);
    assert_eq!(batches.len(), 10);
    for (n, &(base, last, count)) in batches.iter().enumerate() {
        let want = if n < 9 { 10 } else { 5 };
        assert_eq!(
            (base, last, count),
            (10 * n as u64, 10 * n as u64 + want - 1, want as u32)
        );
    }
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(wait_ok(h).offset, i as u64);
    }
    assert_eq!(
        records_of(&p)
            .into_iter()
            .map(|(_, v)| v)
            .collect::<Vec<_>>(),
        (0..95).map(value).collect::<Vec<_>>()
    );

    // Values of 70 bytes (106 each): 9 take 954 bytes, the 10th does not fit, and its
    // arrival sends the 9.
    let producer = topic
        .producer(ProducerConfig::default().batch_bytes(1000).linger(HOUR))
        .unwrap();
    let start = p.log_end_offset();
    let v70 = |i: usize| format!("{i:070}").into_bytes();
    let hs: Vec<_> = (0..9).map(|i| producer.send(Record::new(v70(i)))).collect();
    assert_eq!(p.log_end_offset(), start, "appended before full");
    let last = producer.send(Record::new(v70(9)));
    wait_for("the batch of 9", LONG, || p.log_end_offset() == start + 9);
    assert_eq!(batches_of(&p).last().unwrap().2, 9);
    assert!(!last.is_done());
    for (i, h) in hs.into_iter().enumerate() {
        assert_eq!(wait_ok(h).offset, start + i as u64);
    }
    drop(producer);
    assert_eq!(wait_ok(last).offset, start + 9);
}

/// With `batch_bytes` far above what is sent, a record goes after `linger` without any
/// flush.
#[test]
fn linger_appends_without_a_flush() {
    let _f = shared();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store.create_topic("t", TopicConfig::default()).unwrap();
    let p = topic.partition(0).unwrap().clone();
    let producer = topic
        .producer(
            ProducerConfig::default()
                .batch_bytes(1 << 20)
                .linger(Duration::from_millis(50)),
        )
        .unwrap();
    for round in 0..3u64 {
        let h = producer.send(Record::new(format!("r{round}")));
        wait_for("the lingering record", LONG, || p.log_end_offset() > round);
        assert_eq!(wait_ok(h).offset, round);
    }
    // Several records sent together linger together.
    let hs: Vec<_> = (0..20)
        .map(|i| producer.send(Record::new(vec![i])))
        .collect();
    for (i, h) in hs.into_iter().enumerate() {
        assert_eq!(wait_ok(h).offset, 3 + i as u64);
    }
    assert_eq!(p.log_end_offset(), 23);
}

// ---------------------------------------------------------------------------------------
// 3. The sticky partitioner

/// Keyless records from one thread go to one partition until a batch's worth went to it,
/// then to another one; over many records every partition gets some.
#[test]
fn sticky_partitioner_switches_after_a_batch_worth() {
    let _f = shared();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store
        .create_topic("t", TopicConfig::default().partitions(5))
        .unwrap();
    // 100-byte estimates, 1000-byte batches: ten records each partition in a row.
    let producer = topic
        .producer(ProducerConfig::default().batch_bytes(1000))
        .unwrap();
    let parts: Vec<u32> = (0..3000)
        .map(|i| producer.send(Record::new(format!("{i:064}"))).partition())
        .collect();
    producer.flush().unwrap();
    let mut counts = [0usize; 5];
    let mut runs: Vec<(u32, usize)> = Vec::new();
    for p in parts {
        counts[p as usize] += 1;
        match runs.last_mut() {
            Some((q, n)) if *q == p => *n += 1,
            _ => runs.push((p, 1)),
        }
    }
    let (_, last) = runs.pop().unwrap();
    assert!(last <= 10);
    for (i, &(_, n)) in runs.iter().enumerate() {
        assert_eq!(n, 10, "run {i} of {runs:?}");
    }
    assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
    for p in topic.partitions() {
        assert_eq!(read_all(p).len(), counts[p.number() as usize]);
    }
}

/// KIP-480/794: only keyless records count toward the sticky partition's batch; keyed
/// records (and records sent to a chosen partition) do not move it.
#[test]
fn keyed_records_do_not_move_the_sticky_partition() {
    let _f = shared();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let producer = topic
        .producer(ProducerConfig::default().batch_bytes(1000))
        .unwrap();
    // Keys for each partition.
    let key_for = |p: u32| {
        (0..)
            .map(|i| format!("k{i}").into_bytes())
            .find(|k| partition_for_key(k, 2) == p)
            .unwrap()
    };
    let keys = [key_for(0), key_for(1)];
    let mut keyless = Vec::new();
    for i in 0..400 {
        keyless.push(producer.send(Record::new(format!("{i:064}"))).partition());
        // Between keyless records, keyed ones and chosen-partition ones to both partitions.
        for k in &keys {
            drop(producer.send(Record::new(format!("{i:064}")).with_key(k.clone())));
        }
        drop(
            producer
                .send_to(i % 2, Record::new(format!("{i:064}")))
                .unwrap(),
        );
    }
    producer.flush().unwrap();
    let mut runs: Vec<usize> = Vec::new();
    let mut prev = None;
    for p in keyless {
        if prev == Some(p) {
            *runs.last_mut().unwrap() += 1;
        } else {
            runs.push(1);
        }
        prev = Some(p);
    }
    runs.pop();
    assert!(
        runs.iter().all(|&n| n == 10),
        "keyless runs should be 10 records (a batch's worth of keyless bytes): {runs:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 4. Many threads into one partition

/// Eight threads sending into one partition share batches: with an hour's linger every
/// batch but the last is full, so batches are far fewer than records; every handle gets
/// its own offset, and each thread's records are in its send order.
#[test]
fn threads_sending_to_one_partition_share_batches() {
    let _f = shared();
    for acks in [Acks::Written, Acks::Durable] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let topic = store
            .create_topic("t", TopicConfig::default().segment_bytes(64 << 10))
            .unwrap();
        let p = topic.partition(0).unwrap().clone();
        let producer = topic
            .producer(
                ProducerConfig::default()
                    .acks(acks)
                    .batch_bytes(4000)
                    .linger(HOUR),
            )
            .unwrap();
        const THREADS: usize = 8;
        const EACH: usize = 1500;
        let start = Arc::new(Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let producer = producer.clone();
                let start = start.clone();
                std::thread::spawn(move || {
                    start.wait();
                    (0..EACH)
                        .map(|i| producer.send(Record::new(format!("{t}:{i:06}"))))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let handles: Vec<Vec<Delivery>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        producer.flush().unwrap();
        let mut offsets = HashSet::new();
        let mut by_offset = HashMap::new();
        for (t, hs) in handles.into_iter().enumerate() {
            let mut prev = None;
            for (i, h) in hs.into_iter().enumerate() {
                let md = wait_ok(h);
                assert!(
                    offsets.insert(md.offset),
                    "offset {} given twice",
                    md.offset
                );
                assert!(prev < Some(md.offset), "thread {t} out of order");
                prev = Some(md.offset);
                by_offset.insert(md.offset, format!("{t}:{i:06}").into_bytes());
            }
        }
        let got = records_of(&p);
        assert_eq!(got.len(), THREADS * EACH);
        for (o, v) in &got {
            assert_eq!(&by_offset[o], v, "record at {o}");
        }
        // Every record's estimate is 45 bytes: a full batch holds 88.
        let batches = batches_of(&p);
        assert!(
            batches.len() <= THREADS * EACH / 80 + 1,
            "{acks:?}: {} batches for {} records",
            batches.len(),
            THREADS * EACH
        );
        // Batches hold records of several threads (they ran at once).
        let mixed = batches
            .iter()
            .filter(|&&(base, last, _)| {
                let threads: HashSet<u8> = (base..=last).map(|o| by_offset[&o][0]).collect();
                threads.len() > 1
            })
            .count();
        eprintln!(
            "{acks:?}: {} batches, {mixed} with records of several threads",
            batches.len()
        );
        assert!(mixed > 0, "no batch shared between threads");
        if acks == Acks::Durable {
            assert_eq!(p.durable_offset(), p.log_end_offset());
        }
    }
}

/// The same with the default linger and Kafka-sized batches: handles and order hold
/// however the sender's timing falls.
#[test]
fn threads_with_default_linger_get_distinct_offsets_in_order() {
    let _f = shared();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store
        .create_topic(
            "t",
            TopicConfig::default().partitions(2).segment_bytes(32 << 10),
        )
        .unwrap();
    let producer = topic
        .producer(
            ProducerConfig::default()
                .acks(Acks::Durable)
                .linger(Duration::from_millis(1)),
        )
        .unwrap();
    let threads: Vec<_> = (0..8u32)
        .map(|t| {
            let producer = producer.clone();
            std::thread::spawn(move || {
                let mut prev: [Option<u64>; 2] = [None; 2];
                let mut pending = Vec::new();
                for i in 0..1000u32 {
                    let p = (i + t) % 2;
                    let h = producer
                        .send_to(p, Record::new(format!("{t}:{i}")))
                        .unwrap();
                    pending.push(h);
                    // Some threads wait as they go, as a request handler would.
                    if t % 2 == 0 && i % 50 == 49 {
                        for h in pending.drain(..) {
                            let md = wait_ok(h);
                            assert!(prev[md.partition as usize] < Some(md.offset));
                            prev[md.partition as usize] = Some(md.offset);
                        }
                    }
                }
                for h in pending {
                    let md = wait_ok(h);
                    assert!(prev[md.partition as usize] < Some(md.offset));
                    prev[md.partition as usize] = Some(md.offset);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    producer.flush().unwrap();
    let mut total = 0;
    for p in topic.partitions() {
        let got = read_all(p);
        total += got.len();
        let mut per_thread: BTreeMap<String, u32> = BTreeMap::new();
        for r in got {
            let v = String::from_utf8(r.value.unwrap()).unwrap();
            let (t, i) = v.split_once(':').unwrap();
            let i: u32 = i.parse().unwrap();
            if let Some(prev) = per_thread.insert(t.to_string(), i) {
                assert!(prev < i, "{}: thread {t}: {prev} before {i}", p.name());
            }
        }
        assert_eq!(p.durable_offset(), p.log_end_offset());
    }
    assert_eq!(total, 8000);
}

// ---------------------------------------------------------------------------------------
// 5. Errors reach every handle they concern

#[test]
fn a_record_too_large_fails_at_once_and_others_go() {
    let _f = shared();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store
        .create_topic("t", TopicConfig::default().max_batch_bytes(1000))
        .unwrap();
    let producer = topic
        .producer(ProducerConfig::default().linger(HOUR))
        .unwrap();
    let a = producer.send(Record::new("a"));
    let big = producer.send(Record::new(vec![7u8; 2000]));
    let b = producer.send(Record::new("b"));
    assert!(big.is_done(), "a record no batch can hold fails at once");
    match big.try_result() {
        Some(Err(Error::BatchTooLarge { limit_name, .. })) => {
            assert_eq!(limit_name, "max_batch_bytes")
        }
        other => panic!("expected BatchTooLarge, got {other:?}"),
    }
    assert!(matches!(wait_err(big), Error::BatchTooLarge { .. }));
    // One just under the limit goes (in a batch of its own).
    let fits = producer.send(Record::new(vec![8u8; 1000 - 61 - 36]));
    let c = producer.send(Record::new("c"));
    let _ = producer.flush();
    assert_eq!(wait_ok(a).offset, 0);
    assert_eq!(wait_ok(b).offset, 1);
    assert_eq!(wait_ok(fits).offset, 2);
    assert_eq!(wait_ok(c).offset, 3);
    let values: Vec<_> = records_of(topic.partition(0).unwrap())
        .into_iter()
        .map(|(_, v)| v.len())
        .collect();
    assert_eq!(values, [1, 1, 1000 - 61 - 36, 1]);
}

/// `flush` reports the first error any record failed with since the last flush (its
/// rustdoc), including one that failed at `send`.
#[test]
fn flush_reports_a_record_that_failed_at_send() {
    let _f = shared();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store
        .create_topic("t", TopicConfig::default().max_batch_bytes(1000))
        .unwrap();
    let producer = topic.producer(ProducerConfig::default()).unwrap();
    let ok = producer.send(Record::new("fine"));
    let big = producer.send(Record::new(vec![0u8; 5000]));
    assert!(matches!(wait_err(big), Error::BatchTooLarge { .. }));
    let flushed = producer.flush();
    assert!(
        matches!(flushed, Err(Error::BatchTooLarge { .. })),
        "flush after a record failed: {flushed:?}"
    );
    assert_eq!(wait_ok(ok).offset, 0);
    // Reported once: the next flush has nothing to report.
    producer.flush().unwrap();
}

fn is_eio(e: &Error) -> bool {
    let want = std::io::Error::from_raw_os_error(EIO).to_string();
    match e {
        Error::Io { source, .. } => source.to_string().contains(&want),
        _ => false,
    }
}

/// A failed write poisons the partition: every record of the batch gets the I/O error,
/// every later one `Poisoned`, `flush` the first error; other partitions go on.
#[test]
fn a_failed_write_reaches_every_record_of_the_batch_and_later_ones() {
    let _f = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let producer = topic
        .producer(ProducerConfig::default().linger(HOUR))
        .unwrap();
    let before: Vec<_> = (0..5)
        .map(|i| producer.send_to(0, Record::new(vec![i])).unwrap())
        .collect();
    producer.flush().unwrap();
    let batch: Vec<_> = (0..20)
        .map(|i| producer.send_to(0, Record::new(vec![i])).unwrap())
        .collect();
    faults::fail_nth(FaultOp::Write, 1, EIO);
    let flushed = producer.flush();
    faults::clear();
    assert!(flushed.as_ref().is_err_and(is_eio), "flush: {flushed:?}");
    for h in before {
        wait_ok(h);
    }
    for h in batch {
        let e = wait_err(h);
        assert!(is_eio(&e), "{e}");
    }
    assert!(topic.partition(0).unwrap().poisoned().is_some());
    let later: Vec<_> = (0..10)
        .map(|i| producer.send_to(0, Record::new(vec![i])).unwrap())
        .collect();
    let other = producer.send_to(1, Record::new("other")).unwrap();
    let flushed = producer.flush();
    assert!(
        matches!(flushed, Err(Error::Poisoned { .. })),
        "{flushed:?}"
    );
    for h in later {
        assert!(matches!(wait_err(h), Error::Poisoned { .. }));
    }
    assert_eq!(wait_ok(other).offset, 0);
    producer.flush().unwrap();
}

/// With `Acks::Durable`, a failed fsync fails every record it was to make durable,
/// though they were written; later ones are refused as poisoned.
#[test]
fn a_failed_fsync_fails_durable_records() {
    let _f = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store.create_topic("t", TopicConfig::default()).unwrap();
    let producer = topic
        .producer(ProducerConfig::default().acks(Acks::Durable).linger(HOUR))
        .unwrap();
    let first = producer.send(Record::new("first"));
    producer.flush().unwrap();
    assert_eq!(wait_ok(first).offset, 0);
    let batch: Vec<_> = (0..30)
        .map(|i| producer.send(Record::new(vec![i])))
        .collect();
    faults::fail_nth(FaultOp::Fsync, 1, EIO);
    let flushed = producer.flush();
    faults::clear();
    assert!(flushed.as_ref().is_err_and(is_eio), "flush: {flushed:?}");
    for h in batch {
        let e = wait_err(h);
        assert!(is_eio(&e), "{e}");
    }
    let later = producer.send(Record::new("later"));
    assert!(producer.flush().is_err());
    assert!(matches!(wait_err(later), Error::Poisoned { .. }));
}

/// The store closing while records linger: they fail with `Closed`, as do later ones, and
/// `flush` says so. Both `Store::close` and dropping the store.
#[test]
fn store_closed_under_a_lingering_producer_gives_closed() {
    let _f = shared();
    for close in [true, false] {
        for acks in [Acks::Written, Acks::Durable] {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            let topic = store
                .create_topic("t", TopicConfig::default().partitions(2))
                .unwrap();
            let producer = topic
                .producer(ProducerConfig::default().acks(acks).linger(HOUR))
                .unwrap();
            let done = producer.send(Record::new("done"));
            producer.flush().unwrap();
            let lingering: Vec<_> = (0..10)
                .map(|i| producer.send(Record::new(vec![i])))
                .collect();
            if close {
                store.close().unwrap();
            } else {
                drop(store);
            }
            let flushed = producer.flush();
            assert!(matches!(flushed, Err(Error::Closed(_))), "{flushed:?}");
            wait_ok(done);
            for h in lingering {
                assert!(matches!(wait_err(h), Error::Closed(_)));
            }
            let later = producer.send(Record::new("later"));
            assert!(matches!(producer.flush(), Err(Error::Closed(_))));
            assert!(matches!(wait_err(later), Error::Closed(_)));
            // Dropping the producer after that neither hangs nor panics.
            drop(producer);
            let store = Store::open(dir.path()).unwrap();
            let n: usize = store
                .topic("t")
                .unwrap()
                .partitions()
                .iter()
                .map(|p| read_all(p).len())
                .sum();
            assert_eq!(n, 1);
        }
    }
}

// ---------------------------------------------------------------------------------------
// 6. A batch the topic refuses after the estimate is split

/// Values of random bytes, so that compression makes them larger.
fn incompressible(rng: &mut Rng, n: usize) -> Vec<u8> {
    rng.bytes(n)
}

#[allow(clippy::vec_init_then_push, unused_mut)] // each push is under its own cfg
fn codecs() -> Vec<Compression> {
    let mut out = Vec::new();
    #[cfg(feature = "gzip")]
    out.push(Compression::Gzip { level: None });
    #[cfg(feature = "snappy")]
    out.push(Compression::Snappy);
    #[cfg(feature = "lz4")]
    out.push(Compression::Lz4 { level: None });
    #[cfg(feature = "zstd")]
    out.push(Compression::Zstd { level: None });
    out
}

/// A compressed topic: a codec adds a few bytes to incompressible data, so the producer
/// sizes batches with room for that. Records that together fill `max_batch_bytes`
/// uncompressed go in separate batches, and every handle resolves to its record.
#[test]
fn compressed_batches_near_the_limit_fit_and_every_handle_resolves() {
    let _f = shared();
    let codecs = codecs();
    if codecs.is_empty() {
        eprintln!("skipped: no codec feature on");
        return;
    }
    let mut split_seen = 0;
    for codec in codecs {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let max = 256 << 10;
        let topic = store
            .create_topic(
                "t",
                TopicConfig::default()
                    .max_batch_bytes(max)
                    .segment_bytes(4 << 20)
                    .compression(codec),
            )
            .unwrap();
        let p = topic.partition(0).unwrap().clone();
        let producer = topic
            .producer(ProducerConfig::default().batch_bytes(1 << 20).linger(HOUR))
            .unwrap();
        let mut rng = Rng::new(6);
        // Two records filling the batch estimate exactly.
        let room = max as usize - 61;
        let each = room / 2 - 36;
        let values: Vec<_> = (0..2).map(|_| incompressible(&mut rng, each)).collect();
        let hs: Vec<_> = values
            .iter()
            .map(|v| producer.send(Record::new(v.clone())))
            .collect();
        producer.flush().unwrap();
        for (i, h) in hs.into_iter().enumerate() {
            let md = wait_ok(h);
            assert_eq!(md.offset, i as u64);
            assert_eq!(record_at(&p, md.offset).value.as_ref(), Some(&values[i]));
        }
        let batches = batches_of(&p).len();
        eprintln!("{codec:?}: {batches} batches");
        if batches == 2 {
            split_seen += 1;
        }
        // Many small records in one batch that compression pushes over: split in runs.
        let n = 200;
        let each = room / n - 36 - 3;
        let start = p.log_end_offset();
        let values: Vec<_> = (0..n).map(|_| incompressible(&mut rng, each)).collect();
        let hs: Vec<_> = values
            .iter()
            .map(|v| producer.send(Record::new(v.clone())))
            .collect();
        producer.flush().unwrap();
        for (i, h) in hs.into_iter().enumerate() {
            let md = wait_ok(h);
            assert_eq!(md.offset, start + i as u64);
            assert_eq!(record_at(&p, md.offset).value.as_ref(), Some(&values[i]));
        }
    }
    assert!(
        split_seen > 0,
        "the near-limit records shared a batch that compression can push over the limit"
    );
}

/// Two batches of a flush, the second's write fails: the first's record is delivered, the
/// second gets the I/O error.
#[test]
fn a_failed_write_fails_only_the_batch_it_wrote() {
    let _f = exclusive();
    let Some(codec) = codecs().into_iter().next() else {
        eprintln!("skipped: no codec feature on");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let max = 256 << 10;
    let topic = store
        .create_topic(
            "t",
            TopicConfig::default()
                .max_batch_bytes(max)
                .segment_bytes(4 << 20)
                .compression(codec),
        )
        .unwrap();
    let p = topic.partition(0).unwrap().clone();
    let producer = topic
        .producer(ProducerConfig::default().batch_bytes(1 << 20).linger(HOUR))
        .unwrap();
    let mut rng = Rng::new(8);
    let each = (max as usize - 61) / 2 - 36;
    let values: Vec<_> = (0..2).map(|_| incompressible(&mut rng, each)).collect();
    let hs: Vec<_> = values
        .iter()
        .map(|v| producer.send(Record::new(v.clone())))
        .collect();
    // The first batch's write goes, the second's fails.
    faults::fail_nth(FaultOp::Write, 2, EIO);
    let flushed = producer.flush();
    faults::clear();
    assert!(flushed.as_ref().is_err_and(is_eio), "{flushed:?}");
    let mut hs = hs.into_iter();
    let md = wait_ok(hs.next().unwrap());
    assert_eq!(md.offset, 0);
    assert_eq!(record_at(&p, 0).value.as_ref(), Some(&values[0]));
    let e = wait_err(hs.next().unwrap());
    assert!(is_eio(&e), "{e}");
    assert_eq!(p.log_end_offset(), 1);
}

/// A record timestamped further ahead than the topic allows fails at `send`.
#[test]
fn a_timestamp_too_far_ahead_fails_at_send() {
    let _f = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(TS0);
    let store = store_on(dir.path(), clock.clone());
    let topic = store
        .create_topic(
            "t",
            TopicConfig::default().max_timestamp_skew_ms(Some(1000)),
        )
        .unwrap();
    let producer = topic.producer(ProducerConfig::default()).unwrap();
    let ahead = producer.send(Record::new("ahead").with_timestamp(TS0 + 1001));
    let edge = producer.send(Record::new("edge").with_timestamp(TS0 + 1000));
    assert!(ahead.is_done());
    assert!(matches!(
        wait_err(ahead),
        Error::InvalidTimestamp { timestamp, .. } if timestamp == TS0 + 1001
    ));
    assert!(matches!(
        producer.flush(),
        Err(Error::InvalidTimestamp { .. })
    ));
    assert_eq!(wait_ok(edge).timestamp, TS0 + 1000);
}

/// A clock that moves on by 1 ms each time it is read.
#[derive(Debug, Default)]
struct TickingClock(AtomicI64);

impl Clock for TickingClock {
    fn now_ms(&self) -> i64 {
        TS0 + self.0.fetch_add(1, Ordering::SeqCst)
    }
}

/// In a log-append-time topic, each batch is its own append at its own time: a record's
/// handle reports the time of the batch it went in.
#[test]
fn each_batch_reports_its_own_append_time() {
    let _f = shared();
    let Some(codec) = codecs().into_iter().next() else {
        eprintln!("skipped: no codec feature on");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = store_on(dir.path(), Arc::new(TickingClock::default()));
    let max = 256 << 10;
    let topic = store
        .create_topic(
            "t",
            TopicConfig::default()
                .max_batch_bytes(max)
                .segment_bytes(4 << 20)
                .timestamp_type(TimestampType::LogAppendTime)
                .compression(codec),
        )
        .unwrap();
    let p = topic.partition(0).unwrap().clone();
    let producer = topic
        .producer(ProducerConfig::default().batch_bytes(1 << 20).linger(HOUR))
        .unwrap();
    let mut rng = Rng::new(7);
    let each = (max as usize - 61) / 2 - 36;
    let hs: Vec<_> = (0..2)
        .map(|_| producer.send(Record::new(incompressible(&mut rng, each))))
        .collect();
    producer.flush().unwrap();
    assert_eq!(batches_of(&p).len(), 2, "not split");
    for h in hs {
        let md = wait_ok(h);
        let on_disk = record_at(&p, md.offset).timestamp;
        assert_eq!(md.timestamp, on_disk, "record {}", md.offset);
    }
}

// ---------------------------------------------------------------------------------------
// 7. close and drop

#[test]
fn close_flushes_and_later_sends_fail_closed() {
    let _f = shared();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store
        .create_topic("t", TopicConfig::default().partitions(3))
        .unwrap();
    let producer = topic
        .producer(ProducerConfig::default().linger(HOUR))
        .unwrap();
    let other = producer.clone();
    let hs: Vec<_> = (0..50)
        .map(|i| producer.send(Record::new(vec![i])))
        .collect();
    producer.close().unwrap();
    // Everything was appended by close, lingering or not.
    for h in hs {
        assert!(h.is_done(), "close returned before a record was delivered");
        wait_ok(h);
    }
    let total: usize = topic.partitions().iter().map(|p| read_all(p).len()).sum();
    assert_eq!(total, 50);
    let late = other.send(Record::new("late"));
    assert!(matches!(wait_err(late), Error::Closed(_)));
    assert!(matches!(
        other.send_to(1, Record::new("late")).map(wait_err),
        Ok(Error::Closed(_))
    ));
    // The next flush reports the refusals, once.
    assert!(matches!(other.flush(), Err(Error::Closed(_))));
    other.flush().unwrap();
    drop(other);
    let total: usize = topic.partitions().iter().map(|p| read_all(p).len()).sum();
    assert_eq!(total, 50);
}

#[test]
fn dropping_the_producer_appends_everything_accepted() {
    let _f = shared();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store.create_topic("t", TopicConfig::default()).unwrap();
    let producer = topic
        .producer(ProducerConfig::default().linger(Duration::from_secs(3600)))
        .unwrap();
    for i in 0..10u32 {
        drop(producer.send(Record::new(i.to_be_bytes().to_vec())));
    }
    assert_eq!(topic.partition(0).unwrap().log_end_offset(), 0, "lingering");
    drop(producer);
    assert_eq!(records_of(topic.partition(0).unwrap()).len(), 10);
}

/// Clones dropped on several threads: the last drop appends (and with `Durable`
/// flushes) everything any of them sent.
#[test]
fn dropping_the_last_clone_appends_everything_from_every_clone() {
    let _f = shared();
    for acks in [Acks::Written, Acks::Durable] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let topic = store
            .create_topic(
                "t",
                TopicConfig::default().partitions(3).segment_bytes(4096),
            )
            .unwrap();
        let producer = topic
            .producer(ProducerConfig::default().acks(acks).linger(HOUR))
            .unwrap();
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let producer = producer.clone();
                std::thread::spawn(move || {
                    (0..200u8)
                        .map(|i| producer.send(Record::new(vec![t, i])))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let hs: Vec<_> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        drop(producer);
        for h in hs {
            assert!(
                h.is_done(),
                "the last drop returned before a record was delivered"
            );
            let md = wait_ok(h);
            if acks == Acks::Durable {
                assert!(topic.partition(md.partition).unwrap().durable_offset() > md.offset);
            }
        }
        let total: usize = topic.partitions().iter().map(|p| read_all(p).len()).sum();
        assert_eq!(total, 800);
    }
}

/// A clock that blocks the thread `gated` on its next read until `open`: stops a `send`
/// between its start and the record's enqueueing.
#[derive(Debug, Default)]
struct GateClock {
    gated: Mutex<Option<std::thread::ThreadId>>,
    reached: AtomicBool,
    open: AtomicBool,
}

impl Clock for GateClock {
    fn now_ms(&self) -> i64 {
        let me = std::thread::current().id();
        if *self.gated.lock().unwrap() == Some(me) {
            self.reached.store(true, Ordering::SeqCst);
            while !self.open.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        TS0
    }
}

/// A send that began before `close` (from another clone) and ends after it: its record
/// must be delivered or fail with `Closed`, never be left unresolved.
#[test]
fn a_send_racing_close_resolves() {
    let _f = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(GateClock::default());
    let store = store_on(dir.path(), clock.clone());
    let topic = store.create_topic("t", TopicConfig::default()).unwrap();
    let producer = topic
        .producer(ProducerConfig::default().linger(HOUR))
        .unwrap();
    let sender = producer.clone();
    let c = clock.clone();
    let t = std::thread::spawn(move || {
        *c.gated.lock().unwrap() = Some(std::thread::current().id());
        // A record without a timestamp: send reads the clock.
        sender.send(Record::new("racing"))
    });
    wait_for("the send to reach the clock", LONG, || {
        clock.reached.load(Ordering::SeqCst)
    });
    producer.close().unwrap();
    // Give the producer's threads time to finish closing (not needed for correctness).
    std::thread::sleep(Duration::from_millis(200));
    clock.open.store(true, Ordering::SeqCst);
    let h = t.join().unwrap();
    match h.wait_timeout(Duration::from_secs(10)) {
        Some(Ok(md)) => {
            assert_eq!(
                record_at(topic.partition(0).unwrap(), md.offset)
                    .value
                    .as_deref(),
                Some(&b"racing"[..])
            )
        }
        Some(Err(Error::Closed(_))) => {}
        Some(Err(e)) => panic!("unexpected error {e}"),
        None => panic!("a record sent while the producer closed was never resolved"),
    }
}

// ---------------------------------------------------------------------------------------
// 10. buffer_bytes

/// With a buffer smaller than a batch and an hour's linger, a `send` that finds the
/// buffer full makes the sender append what is buffered, and goes on.
#[test]
fn a_full_buffer_makes_the_sender_append() {
    let _f = shared();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store.create_topic("t", TopicConfig::default()).unwrap();
    let p = topic.partition(0).unwrap().clone();
    let producer = topic
        .producer(
            ProducerConfig::default()
                .batch_bytes(16 << 10)
                .buffer_bytes(500)
                .linger(HOUR),
        )
        .unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let t = {
        let producer = producer.clone();
        let sent = sent.clone();
        std::thread::spawn(move || {
            let mut hs = Vec::new();
            for i in 0..100 {
                // 100-byte estimates: five fill the buffer.
                hs.push(producer.send(Record::new(format!("{i:064}"))));
                sent.fetch_add(1, Ordering::SeqCst);
            }
            hs
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while sent.load(Ordering::SeqCst) < 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let progressed = sent.load(Ordering::SeqCst);
    // Unblock a stuck sending thread before failing, so that the test ends.
    while !t.is_finished() {
        let _ = producer.flush();
    }
    let hs = t.join().unwrap();
    assert_eq!(
        progressed, 100,
        "send blocked on a full buffer: the sender was never made to append"
    );
    producer.flush().unwrap();
    for (i, h) in hs.into_iter().enumerate() {
        assert_eq!(wait_ok(h).offset, i as u64);
    }
    // The buffer bounded the batches.
    assert!(batches_of(&p).iter().all(|&(_, _, n)| n <= 5));
}

/// A record larger than the whole buffer still goes (alone).
#[test]
fn a_record_larger_than_the_buffer_goes() {
    let _f = shared();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store.create_topic("t", TopicConfig::default()).unwrap();
    let producer = topic
        .producer(ProducerConfig::default().buffer_bytes(100))
        .unwrap();
    let hs: Vec<_> = (0..10)
        .map(|_| producer.send(Record::new(vec![1u8; 1000])))
        .collect();
    for (i, h) in hs.into_iter().enumerate() {
        assert_eq!(wait_ok(h).offset, i as u64);
    }
}

// ---------------------------------------------------------------------------------------
// 9. Async

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

/// Many tasks send and await their handles at once; `flush_async` waits for everything.
#[test]
fn async_tasks_await_handles_and_flush() {
    let _f = shared();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store
        .create_topic(
            "t",
            TopicConfig::default().partitions(3).segment_bytes(8192),
        )
        .unwrap();
    let rt = runtime();
    for acks in [Acks::Written, Acks::Durable] {
        let producer = topic
            .producer(ProducerConfig::default().acks(acks))
            .unwrap();
        let results = rt.block_on(async {
            let tasks: Vec<_> = (0..64u32)
                .map(|t| {
                    let producer = producer.clone();
                    tokio::spawn(async move {
                        let mut out = Vec::new();
                        for i in 0..50u32 {
                            let v = format!("{acks:?}-{t}-{i}");
                            let md = producer.send(Record::new(v.clone())).await.unwrap();
                            out.push((md, v));
                        }
                        out
                    })
                })
                .collect();
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            producer.flush_async().await.unwrap();
            all
        });
        let mut seen = HashSet::new();
        for (md, v) in results {
            assert!(seen.insert((md.partition, md.offset)));
            let p = topic.partition(md.partition).unwrap();
            assert_eq!(record_at(p, md.offset).value.unwrap(), v.as_bytes());
            if acks == Acks::Durable {
                assert!(p.durable_offset() > md.offset);
            }
        }
        assert_eq!(seen.len(), 64 * 50);
    }
}

/// Tasks awaiting lingering records are woken by another task's `flush_async`.
#[test]
fn awaiting_tasks_wake_on_another_tasks_flush() {
    let _f = shared();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let producer = topic
        .producer(ProducerConfig::default().linger(HOUR).acks(Acks::Durable))
        .unwrap();
    let rt = runtime();
    let offsets = rt.block_on(async {
        let waiters: Vec<_> = (0..200u32)
            .map(|i| {
                let h = producer.send(Record::new(i.to_be_bytes().to_vec()));
                tokio::spawn(std::future::IntoFuture::into_future(h))
            })
            .collect();
        tokio::task::yield_now().await;
        // An hour's linger: nothing resolves before the flush.
        assert!(waiters.iter().all(|w| !w.is_finished()));
        producer.flush_async().await.unwrap();
        let mut out = Vec::new();
        for w in waiters {
            let md = tokio::time::timeout(LONG, w)
                .await
                .expect("an awaited handle was not woken")
                .unwrap()
                .unwrap();
            out.push((md.partition, md.offset));
        }
        out
    });
    let distinct: HashSet<_> = offsets.iter().collect();
    assert_eq!(distinct.len(), 200);
}

/// A `flush_async` dropped before it finished (a timeout, a `select!`) leaves the producer
/// as it was: records linger again afterwards.
#[test]
fn a_cancelled_flush_async_does_not_stop_linger() {
    let _f = shared();
    use std::future::Future;
    use std::task::{Context, Waker};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store.create_topic("t", TopicConfig::default()).unwrap();
    let p = topic.partition(0).unwrap().clone();
    let producer = topic
        .producer(ProducerConfig::default().linger(HOUR))
        .unwrap();
    // Poll a flush once and drop it while it waits (retry if it finished at once).
    let mut cancelled = false;
    for i in 0..1000u32 {
        let _h = producer.send(Record::new(i.to_be_bytes().to_vec()));
        let mut f = Box::pin(producer.flush_async());
        let mut cx = Context::from_waker(Waker::noop());
        if f.as_mut().poll(&mut cx).is_pending() {
            drop(f);
            cancelled = true;
            break;
        }
    }
    assert!(cancelled, "every flush_async finished at its first poll");
    producer.flush().unwrap();
    let end = p.log_end_offset();
    let h = producer.send(Record::new("lingers"));
    // With an hour's linger it must not be appended; give a wrongly eager sender time.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        p.log_end_offset(),
        end,
        "appended though lingering: a flush is stuck"
    );
    assert!(!h.is_done());
}

// ---------------------------------------------------------------------------------------
// 8. Crash: what a durable handle reported delivered survives SIGKILL

const CRASH_DIR: &str = "SEGLOG_PRODUCER_CRASH_DIR";
const CRASH_GEN: &str = "SEGLOG_PRODUCER_CRASH_GEN";
const CRASH_TOPIC: &str = "crash";

fn crash_value(generation: u32, i: u64) -> Vec<u8> {
    let pad = (i.wrapping_mul(0x9E37_79B9) % 300) as usize;
    format!("g{generation}-{i}-{}", "p".repeat(pad)).into_bytes()
}

/// Not a test by itself: the child of `durable_deliveries_survive_sigkill`. Sends with
/// `Acks::Durable` from four threads and prints `D <gen> <i> <partition> <offset>` once a
/// record's handle resolved. Does nothing unless started by that test.
#[test]
fn producer_crash_child_helper() {
    let (Ok(dir), Ok(generation)) = (std::env::var(CRASH_DIR), std::env::var(CRASH_GEN)) else {
        return;
    };
    let generation: u32 = generation.parse().unwrap();
    let store = Store::open(&dir).unwrap();
    let topic = match store.topic(CRASH_TOPIC) {
        Ok(t) => t,
        Err(_) => store
            .create_topic(
                CRASH_TOPIC,
                TopicConfig::default().partitions(3).segment_bytes(16 << 10),
            )
            .unwrap(),
    };
    let producer = topic
        .producer(
            ProducerConfig::default()
                .acks(Acks::Durable)
                .batch_bytes(4096)
                .linger(Duration::from_millis(1)),
        )
        .unwrap();
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let started = Instant::now();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let producer = producer.clone();
            let out = out.clone();
            std::thread::spawn(move || {
                let mut i = t;
                while started.elapsed() < LONG {
                    // A window of records in flight, then their handles in order.
                    let mut window = Vec::new();
                    for _ in 0..32 {
                        let mut r = Record::new(crash_value(generation, i));
                        if i % 3 == 0 {
                            r = r.with_key(format!("k{}", i % 17));
                        }
                        window.push((i, producer.send(r)));
                        i += 4;
                    }
                    for (i, h) in window {
                        let md = h.wait().unwrap();
                        let mut o = out.lock().unwrap();
                        use std::io::Write;
                        writeln!(o, "D {generation} {i} {} {}", md.partition, md.offset).unwrap();
                        o.flush().unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    std::process::exit(0);
}

/// A child sends with `Acks::Durable` and reports each record once its handle resolved;
/// it is killed (SIGKILL) mid-stream. After reopening, every record reported is at its
/// partition and offset with its value, and every record present is one the child sent,
/// once. Two generations per round, the second continuing the first's log.
#[test]
fn durable_deliveries_survive_sigkill() {
    use std::os::unix::process::ExitStatusExt;
    let _f = shared();
    let rounds: u64 = std::env::var("SEGLOG_PRODUCER_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    for round in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng::new(0xC4A5 + round);
        let mut reported: Vec<(u32, u64, u32, u64)> = Vec::new();
        for generation in 0..2u32 {
            let run = common::child::spawn_lines(
                common::child::helper("producer_crash_child_helper")
                    .env(CRASH_DIR, dir.path())
                    .env(CRASH_GEN, generation.to_string()),
            );
            let kill_after = rng.range(1, 3000) as usize;
            let mut got = 0;
            while got < kill_after {
                match run.lines.recv_timeout(LONG) {
                    Ok((_, line)) => {
                        if let Some((_, rest)) = line.split_once("D ") {
                            let f: Vec<u64> = rest
                                .split_whitespace()
                                .map(|x| x.parse().unwrap())
                                .collect();
                            reported.push((f[0] as u32, f[1], f[2] as u32, f[3]));
                            got += 1;
                        }
                    }
                    Err(e) => {
                        let killed = run.kill();
                        panic!("child stopped reporting ({e:?}):\n{}", killed.stderr);
                    }
                }
            }
            let killed = run.kill();
            assert_eq!(
                killed.status.signal(),
                Some(9),
                "child ended on its own:\n{}",
                killed.stderr
            );
            for (_, line) in killed.rest {
                if let Some((_, rest)) = line.split_once("D ") {
                    let f: Vec<u64> = rest
                        .split_whitespace()
                        .map(|x| x.parse().unwrap())
                        .collect();
                    reported.push((f[0] as u32, f[1], f[2] as u32, f[3]));
                }
            }
        }
        let store = Store::open(dir.path()).unwrap();
        let topic = store.topic(CRASH_TOPIC).unwrap();
        let mut on_disk: HashMap<(u32, u64), Vec<u8>> = HashMap::new();
        let mut values = HashSet::new();
        for p in topic.partitions() {
            for r in common::read_dense(p, 1 << 20, "after the crash", |r| r.value.clone().unwrap())
                .into_iter()
                .enumerate()
            {
                let (o, v) = (r.0 as u64 + p.log_start_offset(), r.1);
                let s = String::from_utf8(v.clone()).unwrap();
                let mut f = s.splitn(3, '-');
                let generation: u32 = f.next().unwrap()[1..].parse().unwrap();
                let i: u64 = f.next().unwrap().parse().unwrap();
                assert_eq!(v, crash_value(generation, i), "garbage at {}@{o}", p.name());
                assert!(values.insert((generation, i)), "g{generation}-{i} twice");
                on_disk.insert((p.number(), o), v);
            }
        }
        for &(generation, i, p, o) in &reported {
            assert_eq!(
                on_disk.get(&(p, o)),
                Some(&crash_value(generation, i)),
                "round {round}: g{generation}-{i}, reported at {p}@{o}, is not there"
            );
        }
        eprintln!(
            "round {round}: {} reported, {} present",
            reported.len(),
            on_disk.len()
        );
    }
}

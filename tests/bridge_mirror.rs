//! The mirror (seglog → Kafka) against a real Kafka-protocol broker (Tansu), checked with
//! an independent client (kafka-python): what the broker holds equals what the store
//! holds, offsets included for dense topics; compressed batches travel unchanged; a mirror
//! killed mid-way, or facing a hung broker, neither loses nor duplicates a record.
//! Every test prints why and returns when Python, kafka-python or Tansu is missing.
#![cfg(feature = "kafka")]

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::kafka::{fill, local_records, Broker, Codec, ConsumedRecord, T0};
use seglog::bridge::{Import, ImportConfig, Mirror, MirrorConfig};
use seglog::record::{
    encode_batch, Batch, BatchSpec, EndTxnMarker, MarkerType, BATCH_HEADER_SIZE, TRANSACTIONAL_BIT,
};
use seglog::{
    CleanupPolicy, Compression, Error, FlushPolicy, OffsetMode, Partition, Record, Store,
    StoreConfig, TopicConfig,
};

fn open(dir: &Path) -> Store {
    Store::open_with(dir, StoreConfig::default().maintenance_interval(None)).unwrap()
}

/// The records without their offsets (for topics whose offsets do not carry over).
fn contents(records: &[ConsumedRecord]) -> Vec<ConsumedRecord> {
    records
        .iter()
        .map(|r| ConsumedRecord {
            offset: 0,
            ..r.clone()
        })
        .collect()
}

fn config(broker: &Broker, topic: &str) -> MirrorConfig {
    MirrorConfig::new(broker.bootstrap())
        .topic(topic)
        .create_topics(true)
        .timeout(Duration::from_secs(5))
        .delivery_timeout(Duration::from_secs(30))
}

/// Keys, headers, null keys and values, timestamps, three partitions, batches of many
/// sizes: the broker ends up with exactly the local records at the same offsets; more
/// appends and a second catch-up send only the new records.
#[test]
fn dense_topic_arrives_with_the_same_offsets() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = store
        .create_topic("dense", TopicConfig::default().partitions(3))
        .unwrap();
    for (i, p) in t.partitions().iter().enumerate() {
        fill(p, 0, 100 + 37 * i as u64);
    }
    let mut mirror = Mirror::new(&store, config(&broker, "dense")).unwrap();
    let done = mirror.catch_up().unwrap();
    assert_eq!(done.records, 100 + 137 + 174);
    assert_eq!((done.reencoded, done.lag), (0, 0));
    let got = broker.consume_all("dense");
    for p in t.partitions() {
        let r = &got[&(p.number() as i32)];
        assert_eq!(r.records, local_records(p), "partition {}", p.number());
        assert_eq!(r.high_watermark as u64, p.log_end_offset());
    }

    for p in t.partitions() {
        fill(p, p.log_end_offset(), 25);
    }
    let again = mirror.catch_up().unwrap();
    assert_eq!(again.records, 75, "only the new records are sent");
    let got = broker.consume_all("dense");
    for p in t.partitions() {
        assert_eq!(got[&(p.number() as i32)].records, local_records(p));
    }
    // Committed progress names the remote offsets reached.
    let committed = store
        .committed_with_metadata("seglog-mirror", "dense")
        .unwrap();
    for p in t.partitions() {
        let c = &committed[&p.number()];
        assert_eq!(c.offset, p.log_end_offset());
        // `seglog-mirror 1 <remote topic> <remote offset> <first dirty offset>`.
        let fields: Vec<&str> = c.metadata.split(' ').collect();
        assert_eq!(fields[..3], ["seglog-mirror", "1", "dense"], "{c:?}");
        assert_eq!(fields[3], p.log_end_offset().to_string(), "{c:?}");
    }
}

/// A compacted topic: the cleaner thinned batches, which a broker refuses as they are, so
/// they go re-encoded densely: the broker has the surviving records, in order.
#[test]
fn compacted_topic_goes_densely_re_encoded() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let cfg = TopicConfig::default()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(1024);
    let t = store.create_topic("compacted", cfg).unwrap();
    let p = t.partition(0).unwrap();
    for round in 0..20u64 {
        let batch: Vec<Record> = (0..10u64)
            .map(|k| {
                Record::new(format!("v{round}-{k}"))
                    .with_key(format!("k{}", (k + round) % 13))
                    .with_timestamp(T0 + round as i64)
            })
            .collect();
        p.append(&batch).unwrap();
    }
    p.compact_now().unwrap();
    let local = local_records(p);
    assert!(local.len() < 200, "compaction removed records");
    let mut mirror = Mirror::new(&store, config(&broker, "compacted")).unwrap();
    let done = mirror.catch_up().unwrap();
    assert!(
        done.reencoded > 0,
        "thinned batches were re-encoded: {done:?}"
    );
    assert_eq!(done.records, local.len() as u64);
    let got = broker.consume_all("compacted");
    assert_eq!(contents(&got[&0].records), contents(&local));
    let offsets: Vec<i64> = got[&0].records.iter().map(|r| r.offset).collect();
    assert_eq!(
        offsets,
        (0..local.len() as i64).collect::<Vec<_>>(),
        "dense remotely"
    );
}

/// Each codec kafka-python can read: the records arrive, and the batches travel
/// unchanged — imported back into another store, every batch's records section is the
/// stored one, byte for byte, in the same codec.
#[test]
fn compressed_batches_travel_unchanged() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let readable = broker.client().codecs();
    for (codec, compression) in [
        (Codec::Gzip, Compression::Gzip { level: None }),
        (Codec::Snappy, Compression::Snappy),
        (Codec::Lz4, Compression::Lz4 { level: None }),
        (Codec::Zstd, Compression::Zstd { level: None }),
    ] {
        if !readable.contains(&codec) {
            eprintln!("skipped {codec:?}: kafka-python cannot read it here");
            continue;
        }
        let name = format!("compressed-{}", codec.name().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let cfg = TopicConfig::default()
            .partitions(2)
            .compression(compression);
        let t = store.create_topic(&name, cfg).unwrap();
        for p in t.partitions() {
            fill(p, 0, 120);
        }
        Mirror::new(&store, config(&broker, &name))
            .unwrap()
            .catch_up()
            .unwrap();
        let got = broker.consume_all(&name);
        for p in t.partitions() {
            assert_eq!(
                got[&(p.number() as i32)].records,
                local_records(p),
                "{name}"
            );
        }

        let back_dir = tempfile::tempdir().unwrap();
        let back = open(back_dir.path());
        Import::new(&back, ImportConfig::new(broker.bootstrap()).topic(&name))
            .unwrap()
            .catch_up()
            .unwrap();
        for p in t.partitions() {
            let q = back
                .topic(&name)
                .unwrap()
                .partition(p.number())
                .unwrap()
                .clone();
            let (mine, theirs) = (p.read(0, 1 << 24).unwrap(), q.read(0, 1 << 24).unwrap());
            let (mine, theirs): (Vec<Batch>, Vec<Batch>) =
                (mine.batches().collect(), theirs.batches().collect());
            assert_eq!(
                mine.len(),
                theirs.len(),
                "{name}: one remote batch per local one"
            );
            for (a, b) in mine.iter().zip(&theirs) {
                assert_eq!(a.header().codec(), b.header().codec());
                assert_eq!(a.base_offset(), b.base_offset());
                assert_eq!(a.header().records_count, b.header().records_count);
                assert_eq!(
                    a.as_bytes()[BATCH_HEADER_SIZE..],
                    b.as_bytes()[BATCH_HEADER_SIZE..],
                    "{name}: batch at {} re-encoded",
                    a.base_offset()
                );
            }
        }
    }
}

/// Transactions: the aborted one and the markers stay home, the committed one's records
/// go (as plain batches), in order.
#[test]
fn only_committed_transactions_leave() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = store.create_topic("txn", TopicConfig::default()).unwrap();
    let p = t.partition(0).unwrap();
    let mut next = 0u64;
    let mut data = |p: &Partition, pid: i64, txn: bool, values: &[&str]| {
        let mut spec = BatchSpec::new(next, T0);
        spec.producer_id = pid;
        spec.producer_epoch = 0;
        spec.base_sequence = next as i32;
        if txn {
            spec.attributes |= TRANSACTIONAL_BIT;
        }
        let records: Vec<Record> = values.iter().map(|v| Record::new(*v)).collect();
        let mut buf = Vec::new();
        encode_batch(&mut buf, &spec, &records).unwrap();
        p.append_raw(&buf, OffsetMode::Keep).unwrap();
        next += values.len() as u64;
    };
    data(p, 7, true, &["c1", "c2"]);
    data(p, 8, true, &["a1"]);
    data(p, -1, false, &["plain"]);
    for (pid, marker) in [(7, MarkerType::Commit), (8, MarkerType::Abort)] {
        let m = EndTxnMarker {
            offset: p.log_end_offset(),
            producer_id: pid,
            producer_epoch: 0,
            coordinator_epoch: 1,
            marker,
            timestamp: T0,
            partition_leader_epoch: 0,
        };
        let mut buf = Vec::new();
        m.encode(&mut buf).unwrap();
        p.append_raw(&buf, OffsetMode::Keep).unwrap();
    }
    let mut mirror = Mirror::new(&store, config(&broker, "txn")).unwrap();
    let done = mirror.catch_up().unwrap();
    assert_eq!(done.records, 3);
    let got = broker.consume_all("txn");
    let values: Vec<_> = got[&0]
        .records
        .iter()
        .map(|r| r.value.clone().unwrap())
        .collect();
    assert_eq!(values, [b"c1".to_vec(), b"c2".to_vec(), b"plain".to_vec()]);
    // Everything up to the log end is accounted for: nothing more to send.
    assert_eq!(mirror.lag(), 0);
    let committed = store.committed_offsets("seglog-mirror", "txn").unwrap();
    assert_eq!(committed[&0], p.log_end_offset());
}

/// `durable_only`: records not yet flushed stay until a flush.
#[test]
fn durable_only_sends_flushed_records_only() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let cfg = TopicConfig::default().flush_policy(FlushPolicy::Never);
    let t = store.create_topic("durable", cfg).unwrap();
    let p = t.partition(0).unwrap();
    fill(p, 0, 10);
    p.flush().unwrap();
    fill(p, 10, 5);
    let mut mirror = Mirror::new(&store, config(&broker, "durable").durable_only(true)).unwrap();
    assert_eq!(mirror.catch_up().unwrap().records, 10);
    assert_eq!(broker.consume_all("durable")[&0].records.len(), 10);
    p.flush().unwrap();
    assert_eq!(mirror.catch_up().unwrap().records, 5);
    assert_eq!(broker.consume_all("durable")[&0].records, local_records(p));
}

/// Continuous mode follows appends made while it runs, until stopped.
#[test]
fn continuous_mode_follows_appends() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = store
        .create_topic("follow", TopicConfig::default().partitions(2))
        .unwrap();
    let mut mirror = Mirror::new(&store, config(&broker, "follow")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || mirror.run(&stop).map(|p| (p, mirror)))
    };
    for round in 0..10 {
        for p in t.partitions() {
            fill(p, p.log_end_offset(), 7 + round);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let want: u64 = t.partitions().iter().map(Partition::log_end_offset).sum();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: usize = broker
            .consume_all("follow")
            .values()
            .map(|p| p.records.len())
            .sum();
        if got as u64 == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the mirror did not follow: {got} of {want}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    let (_, mirror) = runner.join().unwrap().unwrap();
    assert_eq!(mirror.totals().records, want);
    let got = broker.consume_all("follow");
    for p in t.partitions() {
        assert_eq!(got[&(p.number() as i32)].records, local_records(p));
    }
}

/// What cannot work is an `Error` naming the problem: a missing remote topic (not to be
/// created), one with fewer partitions, a group another consumer commits to, no broker,
/// and a remote topic that lost what the mirror sent (a broker restarted empty).
#[test]
fn refusals_are_errors_naming_the_problem() {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = store
        .create_topic("orders", TopicConfig::default().partitions(3))
        .unwrap();
    fill(t.partition(0).unwrap(), 0, 10);

    let no_create = MirrorConfig::new(broker.bootstrap()).topic("orders");
    let err = Mirror::new(&store, no_create).unwrap_err();
    assert!(
        matches!(&err, Error::Kafka { reason, .. } if reason.contains("orders") && reason.contains("create_topics")),
        "{err}"
    );

    broker.client().create_topic("small", 1, &[]);
    let into_small = MirrorConfig::new(broker.bootstrap()).topic_as("orders", "small");
    let err = Mirror::new(&store, into_small).unwrap_err();
    assert!(
        matches!(&err, Error::Kafka { reason, .. } if reason.contains("1 partitions") && reason.contains("3")),
        "{err}"
    );

    let mut plain = store
        .join_group("not-a-mirror", "orders", seglog::ConsumerConfig::default())
        .unwrap();
    plain.seek(0, 1).unwrap();
    plain.commit().unwrap();
    drop(plain);
    let err = Mirror::new(&store, config(&broker, "orders").group("not-a-mirror")).unwrap_err();
    assert!(
        matches!(err, Error::InvalidConfig { field: "group", .. }),
        "{err}"
    );

    let nowhere = MirrorConfig::new("127.0.0.1:1")
        .topic("orders")
        .timeout(Duration::from_secs(2));
    let err = Mirror::new(&store, nowhere).unwrap_err();
    assert!(
        matches!(&err, Error::Kafka { broker, .. } if broker.contains("127.0.0.1:1")),
        "{err}"
    );

    let mut mirror = Mirror::new(&store, config(&broker, "orders")).unwrap();
    assert_eq!(mirror.catch_up().unwrap().records, 10);
    drop(mirror);
    broker.restart(); // the memory engine forgets everything
    broker.client().create_topic("orders", 3, &[]);
    let err = Mirror::new(&store, config(&broker, "orders")).unwrap_err();
    assert!(
        matches!(&err, Error::Kafka { reason, .. } if reason.contains("orders-0") && reason.contains("lost records")),
        "{err}"
    );
}

/// A broker that stops answering mid-run (SIGSTOP) and comes back: requests time out,
/// connections are reopened, the mirror reconciles with what the broker has and goes on;
/// the broker ends up with every record exactly once.
#[test]
fn a_hung_broker_costs_neither_records_nor_duplicates() {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = store
        .create_topic("hang", TopicConfig::default().partitions(2))
        .unwrap();
    for p in t.partitions() {
        fill(p, 0, 3000);
    }
    let cfg = config(&broker, "hang")
        .timeout(Duration::from_millis(500))
        .read_bytes(2048);
    let mut mirror = Mirror::new(&store, cfg).unwrap();
    let step = |mirror: &mut Mirror| match mirror.step(Duration::from_millis(100)) {
        Ok(_) => 0,
        Err(Error::Kafka { .. }) => 1,
        Err(e) => panic!("{e}"),
    };
    for _ in 0..40 {
        assert_eq!(step(&mut mirror), 0, "the broker answers");
    }
    assert!(mirror.lag() > 0, "paused mid-way");
    // Paused until requests have failed for a while (each waits out the 500 ms timeout).
    broker.pause();
    let mut failures = 0;
    let paused = Instant::now();
    while failures < 3 {
        failures += step(&mut mirror);
        assert!(
            paused.elapsed() < Duration::from_secs(60),
            "requests to a stopped broker never failed"
        );
    }
    broker.resume();
    let deadline = Instant::now() + Duration::from_secs(120);
    while mirror.lag() > 0 {
        step(&mut mirror);
        assert!(
            Instant::now() < deadline,
            "no progress after the broker came back"
        );
    }
    mirror.commit().unwrap();
    let got = broker.consume_all("hang");
    for p in t.partitions() {
        assert_eq!(got[&(p.number() as i32)].records, local_records(p));
    }
}

/// A mirror process killed (SIGKILL) mid-way, its progress committed long before: a new
/// mirror finds what the broker already has and sends the rest, exactly once.
#[test]
fn a_killed_mirror_resumes_without_loss_or_duplicates() {
    if let Ok(dir) = std::env::var("SEGLOG_MIRROR_CHILD_DIR") {
        // The child: mirror continuously, committing rarely, until killed.
        let bootstrap = std::env::var("SEGLOG_MIRROR_CHILD_BOOTSTRAP").unwrap();
        let store = open(Path::new(&dir));
        let cfg = MirrorConfig::new(bootstrap)
            .topic("killed")
            .read_bytes(1024)
            .commit_interval(Duration::from_secs(3600));
        let mut mirror = Mirror::new(&store, cfg).unwrap();
        loop {
            let p = mirror.step(Duration::from_millis(10)).unwrap();
            if p.records > 0 {
                println!("SENT {}", mirror.totals().records);
            }
        }
    }
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let total: u64 = {
        let store = open(dir.path());
        let t = store
            .create_topic("killed", TopicConfig::default().partitions(2))
            .unwrap();
        for p in t.partitions() {
            fill(p, 0, 4000);
        }
        broker.client().create_topic("killed", 2, &[]);
        store.close().unwrap();
        8000
    };
    let mut child = common::child::helper("a_killed_mirror_resumes_without_loss_or_duplicates")
        .env("SEGLOG_MIRROR_CHILD_DIR", dir.path())
        .env("SEGLOG_MIRROR_CHILD_BOOTSTRAP", broker.bootstrap())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let sent = loop {
        let line = lines.next().expect("the child mirrors").unwrap();
        if let Some(n) = line.split("SENT ").nth(1) {
            let n: u64 = n.trim().parse().unwrap();
            if n >= total / 3 {
                break n;
            }
        }
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(sent < total, "killed mid-way ({sent} of {total})");

    let store = open(dir.path());
    let committed = store.committed_offsets("seglog-mirror", "killed").unwrap();
    assert!(
        committed.values().sum::<u64>() < sent,
        "the kill came after acknowledged but uncommitted batches"
    );
    let mut mirror = Mirror::new(&store, config(&broker, "killed")).unwrap();
    let rest = mirror.catch_up().unwrap();
    assert!(
        rest.records <= total - sent,
        "nothing sent twice: {rest:?} after {sent}"
    );
    let got = broker.consume_all("killed");
    let t = store.topic("killed").unwrap();
    for p in t.partitions() {
        assert_eq!(got[&(p.number() as i32)].records, local_records(p));
    }
}

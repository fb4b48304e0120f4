//! Adopting a Kafka broker's log directory (`StoreConfig::adopt_partition_dirs`).
//!
//! `tests/fixtures/kafka-logdir` was written by Apache Kafka's own Java classes
//! (`LogSegment`, `OffsetCheckpointFile`, `CleanShutdownFileHandler`; see
//! `tests/fixtures/kafka-java/README.md`): one partition `orders-0` of 210 records in 60
//! batches over 3 segments, with codecs cycling through none, gzip, snappy, lz4 and zstd,
//! Kafka 4's JSON clean-shutdown marker and its checkpoints. The expected records and
//! index entries are the JSON sidecars Kafka's reader produced
//! (`tests/fixtures/kafka-java/kafka-logdir.orders-0.<base>.json`).

mod common;

use std::path::{Path, PathBuf};

use common::fixtures::{hex, kafka_java_json};
use seglog::{Error, Record, Store, StoreConfig};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kafka-logdir")
}

/// A copy of the fixture log dir in a fresh temporary directory.
fn copy() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("kafka");
    common::copy_dir(&fixture(), &dir);
    (tmp, dir)
}

fn adopting() -> StoreConfig {
    StoreConfig::default()
        .maintenance_interval(None)
        .adopt_partition_dirs(true)
}

/// One record as Kafka's reader reported it.
#[derive(Debug, PartialEq)]
struct Expected {
    offset: u64,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Every record of the three segments, in offset order.
fn expected_records() -> Vec<Expected> {
    let mut out = Vec::new();
    for base in [0, 85, 171] {
        for batch in kafka_java_json(&format!("kafka-logdir.orders-0.{base:020}"))["batches"]
            .as_array()
            .unwrap()
        {
            for r in batch["records"].as_array().unwrap() {
                out.push(Expected {
                    offset: r["offset"].as_u64().unwrap(),
                    timestamp: r["timestamp"].as_i64().unwrap(),
                    key: hex(&r["keyHex"]),
                    value: hex(&r["valueHex"]),
                    headers: r["headers"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|h| (h["key"].as_str().unwrap().to_string(), hex(&h["valueHex"])))
                        .collect(),
                });
            }
        }
    }
    out
}

fn read_records(p: &seglog::Partition) -> Vec<Expected> {
    common::read_all(p, 1 << 20, |r| Expected {
        offset: r.offset,
        timestamp: r.timestamp,
        key: r.key.clone(),
        value: r.value.clone(),
        headers: common::read::header_pairs(r),
    })
}

#[test]
fn a_kafka_log_dir_is_adopted_and_reads_back_exactly() {
    let (_tmp, dir) = copy();
    let expected = expected_records();
    assert_eq!(expected.len(), 210);
    let store = Store::open_with(&dir, adopting()).unwrap();
    let topic = store.topic("orders").expect("the adopted topic");
    assert_eq!(topic.partitions().len(), 1);
    let p = &topic.partitions()[0];
    assert_eq!((p.log_start_offset(), p.log_end_offset()), (0, 210));
    assert_eq!(p.stats().segments, 3);
    // Retention is off: Kafka's 7-day default would delete these 2023 records.
    let cfg = topic.config();
    assert_eq!((cfg.retention_ms, cfg.retention_bytes), (None, None));
    assert_eq!(read_records(p), expected);
    store.close().unwrap();
}

#[test]
fn timestamp_lookups_give_kafkas_answers() {
    let (_tmp, dir) = copy();
    let expected = expected_records();
    let store = Store::open_with(&dir, adopting()).unwrap();
    let p = store.topic("orders").unwrap().partitions()[0].clone();
    // Kafka's answer: the first record, in offset order, whose timestamp is at or after the
    // target (ListOffsets). Every record's own timestamp, one below and one above it.
    let mut targets: Vec<i64> = expected
        .iter()
        .flat_map(|r| [r.timestamp - 1, r.timestamp, r.timestamp + 1])
        .collect();
    targets.sort_unstable();
    targets.dedup();
    for t in targets {
        let want = expected
            .iter()
            .find(|r| r.timestamp >= t)
            .map(|r| (r.offset, r.timestamp));
        let got = p
            .offset_for_timestamp(t)
            .unwrap_or_else(|e| panic!("lookup of {t}: {e}"))
            .map(|f| (f.offset, f.timestamp));
        assert_eq!(got, want, "timestamp {t}");
    }
    store.close().unwrap();
}

#[test]
fn appends_continue_after_kafkas_records_and_survive_a_reopen() {
    let (_tmp, dir) = copy();
    {
        let store = Store::open_with(&dir, adopting()).unwrap();
        let p = store.topic("orders").unwrap().partitions()[0].clone();
        let info = p
            .append(&[Record::new(b"after kafka".to_vec()).with_key(b"k".to_vec())])
            .unwrap();
        assert_eq!(info.base_offset, 210);
        store.close().unwrap();
    }
    // The adopted topic is listed now: a plain open finds it.
    let store = Store::open_with(&dir, StoreConfig::default().maintenance_interval(None)).unwrap();
    let p = store.topic("orders").unwrap().partitions()[0].clone();
    let mut want = expected_records();
    want.push(Expected {
        offset: 210,
        timestamp: 0,
        key: Some(b"k".to_vec()),
        value: Some(b"after kafka".to_vec()),
        headers: Vec::new(),
    });
    let mut got = read_records(&p);
    got.last_mut().unwrap().timestamp = 0; // the store clock's
    assert_eq!(got, want);
    store.close().unwrap();
}

#[test]
fn kafkas_other_files_are_left_untouched() {
    let (_tmp, dir) = copy();
    let pdir = dir.join("orders-0");
    let kafka_files = [
        (
            dir.join("meta.properties"),
            b"version=1\ncluster.id=abc\nnode.id=1\n".to_vec(),
        ),
        (
            dir.join("replication-offset-checkpoint"),
            b"0\n1\norders 0 210\n".to_vec(),
        ),
        (
            pdir.join("leader-epoch-checkpoint"),
            b"0\n1\n0 0\n".to_vec(),
        ),
        (
            pdir.join("partition.metadata"),
            b"version: 0\ntopic_id: AAAAAAAAAAAAAAAAAAAAAA\n".to_vec(),
        ),
        (pdir.join("00000000000000000210.snapshot"), vec![0, 1, 2, 3]),
    ];
    for (path, bytes) in &kafka_files {
        std::fs::write(path, bytes).unwrap();
    }
    // Sealed segments a clean open does not need to touch.
    let sealed: Vec<(PathBuf, Vec<u8>)> = ["00000000000000000000", "00000000000000000085"]
        .iter()
        .flat_map(|b| [".log", ".index", ".timeindex"].map(|s| pdir.join(format!("{b}{s}"))))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    let store = Store::open_with(&dir, adopting()).unwrap();
    let p = store.topic("orders").unwrap().partitions()[0].clone();
    assert_eq!(read_records(&p).len(), 210);
    store.close().unwrap();
    for (path, bytes) in kafka_files.iter().chain(&sealed) {
        assert_eq!(
            &std::fs::read(path).unwrap(),
            bytes,
            "{} changed",
            path.display()
        );
    }
}

#[test]
fn kafkas_internal_topics_are_not_adopted_and_nothing_is_written() {
    let (_tmp, dir) = copy();
    common::copy_dir(&dir.join("orders-0"), &dir.join("__consumer_offsets-3"));
    let before = common::files::tree(&dir);
    match Store::open_with(&dir, adopting()) {
        Err(Error::InvalidTopicName { name, .. }) => assert_eq!(name, "__consumer_offsets"),
        other => panic!("expected InvalidTopicName, got {:?}", other.map(|_| ())),
    }
    assert_eq!(common::files::tree(&dir), before, "the open changed files");
}

#[test]
fn without_adoption_a_kafka_log_dir_is_refused() {
    let (_tmp, dir) = copy();
    let before = common::files::tree(&dir);
    match Store::open_with(&dir, StoreConfig::default().maintenance_interval(None)) {
        Err(Error::UnknownDirectories { .. }) => {}
        other => panic!("expected UnknownDirectories, got {:?}", other.map(|_| ())),
    }
    assert_eq!(common::files::tree(&dir), before);
}

#[test]
fn partition_counts_come_from_the_highest_directory_and_collisions_are_refused() {
    let (_tmp, dir) = copy();
    // Partitions 0 and 2 of `orders`: partition 1 is created empty.
    common::copy_dir(&dir.join("orders-0"), &dir.join("orders-2"));
    {
        let store = Store::open_with(&dir, adopting()).unwrap();
        let t = store.topic("orders").unwrap();
        let ends: Vec<u64> = t.partitions().iter().map(|p| p.log_end_offset()).collect();
        assert_eq!(ends, [210, 0, 210]);
        store.close().unwrap();
    }
    // `ord.x` and `ord_x` would collide: refused, nothing adopted.
    let (_tmp2, dir2) = copy();
    std::fs::rename(dir2.join("orders-0"), dir2.join("ord.x-0")).unwrap();
    common::copy_dir(&dir2.join("ord.x-0"), &dir2.join("ord_x-0"));
    match Store::open_with(&dir2, adopting()) {
        Err(Error::TopicCollision { .. }) => {}
        other => panic!("expected TopicCollision, got {:?}", other.map(|_| ())),
    }
    assert!(!dir2.join("seglog-topics").exists());
}

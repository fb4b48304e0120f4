//! The store: the data directory lock (in this process and from another one), topic
//! metadata (create, list, delete, configs restored on reopen, corruption detected), the
//! default partitioner, and reopening after a process that exited without closing.
//! Directories the store does not know are `foreign_dirs.rs`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::child;
use seglog::{
    partition_for_key, CleanupPolicy, Error, FlushPolicy, Record, Store, TimestampType,
    TopicConfig, TOPICS_FILE,
};

const CHILD_MODE: &str = "SEGLOG_TEST_CHILD_MODE";
const CHILD_DIR: &str = "SEGLOG_TEST_CHILD_DIR";

/// Runs `child_process_helper` of this test binary in a new process and returns its
/// report line.
fn run_child(mode: &str, dir: &Path) -> String {
    child::run_for_report(
        child::helper("child_process_helper")
            .env(CHILD_MODE, mode)
            .env(CHILD_DIR, dir),
    )
}

const CRASH_RECORDS: u64 = 120;

/// Not a test by itself: the body of the child process of the tests below. Does nothing
/// unless started by `run_child`.
#[test]
fn child_process_helper() {
    let (Ok(mode), Ok(dir)) = (std::env::var(CHILD_MODE), std::env::var(CHILD_DIR)) else {
        return;
    };
    match mode.as_str() {
        "open" => {
            let report = match Store::open(&dir) {
                Ok(s) => {
                    s.close().unwrap();
                    "opened".to_string()
                }
                Err(Error::Locked { path }) => format!("locked {}", path.display()),
                Err(e) => format!("error {e}"),
            };
            child::report(&report);
        }
        "crash" => {
            // Append, then exit without closing: as if the process were killed.
            let store = Store::open(&dir).unwrap();
            let t = store
                .create_topic("c", TopicConfig::default().segment_bytes(2000))
                .unwrap();
            let p = t.partition(0).unwrap();
            for o in 0..CRASH_RECORDS {
                p.append(&[Record::new(format!("crash-{o}")).with_timestamp(5_000 + o as i64)])
                    .unwrap();
            }
            child::report(&format!("appended {}", p.log_end_offset()));
            std::process::exit(0);
        }
        m => panic!("unknown child mode {m}"),
    }
}

#[test]
fn second_open_in_this_process_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    match Store::open(dir.path()) {
        Err(e @ Error::Locked { .. }) => {
            let Error::Locked { path } = &e else {
                unreachable!()
            };
            assert_eq!(path, dir.path());
            assert!(e.to_string().contains(&dir.path().display().to_string()));
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    // The failed open did not disturb the store that holds the lock.
    store.create_topic("t", TopicConfig::default()).unwrap();
    assert!(matches!(Store::open(dir.path()), Err(Error::Locked { .. })));
    store.close().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.topics(), vec!["t".to_string()]);
    // Dropping releases the lock as well as close.
    drop(store);
    Store::open(dir.path()).unwrap().close().unwrap();
}

#[test]
fn open_from_another_process_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let report = run_child("open", dir.path());
    assert_eq!(report, format!("locked {}", dir.path().display()));
    store.close().unwrap();
    assert_eq!(run_child("open", dir.path()), "opened");
    // And the child released it when it closed.
    Store::open(dir.path()).unwrap().close().unwrap();
}

// Regression: zeroed preallocated time index slots were read back as an entry (0, 0), so the
// active segment's first record was skipped by offset_for_timestamp after an unclean exit.
#[test]
fn reopen_after_process_exit_without_close() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        run_child("crash", dir.path()),
        format!("appended {CRASH_RECORDS}")
    );
    let check = |store: &Store, end: u64| {
        let p = store.topic("c").unwrap().partition(0).unwrap().clone();
        assert!(p.segments().len() >= 2);
        assert_eq!(p.log_end_offset(), end);
        for o in 0..end {
            let f = p.read(o, 1).unwrap();
            let r = f.records().next().unwrap();
            assert_eq!(r.offset(), o);
            assert_eq!(r.value().unwrap(), format!("crash-{o}").as_bytes());
            assert_eq!(r.timestamp(), 5_000 + o as i64);
            assert_eq!(
                p.offset_for_timestamp(5_000 + o as i64)
                    .unwrap()
                    .map(|x| x.offset),
                Some(o),
                "timestamp {}",
                5_000 + o as i64
            );
        }
        for s in p.segments() {
            for w in s.time_index().unwrap().windows(2) {
                assert!(w[0].0 < w[1].0, "time index not increasing: {w:?}");
            }
            for (ts, off) in s.time_index().unwrap() {
                assert!(
                    ts >= 5_000 + s.base_offset() as i64,
                    "time index entry ({ts}, {off}) of segment {} is below every record",
                    s.base_offset()
                );
            }
        }
        assert_eq!(p.offset_for_timestamp(0).unwrap().unwrap().offset, 0);
        p
    };
    let store = Store::open(dir.path()).unwrap();
    let p = check(&store, CRASH_RECORDS);
    for o in CRASH_RECORDS..CRASH_RECORDS + 30 {
        p.append(&[Record::new(format!("crash-{o}")).with_timestamp(5_000 + o as i64)])
            .unwrap();
    }
    check(&store, CRASH_RECORDS + 30);
    drop(p);
    store.close().unwrap();
    let store = Store::open(dir.path()).unwrap();
    check(&store, CRASH_RECORDS + 30);
    store.close().unwrap();
}

#[test]
fn create_list_delete_topics() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(store.topics().is_empty());
    for (name, n) in [("b", 1u32), ("a", 3), ("c-d.e_f", 2)] {
        let t = store
            .create_topic(name, TopicConfig::default().partitions(n))
            .unwrap();
        assert_eq!((t.name(), t.partition_count()), (name, n));
        for i in 0..n {
            assert!(dir.path().join(format!("{name}-{i}")).is_dir());
        }
    }
    assert_eq!(store.topics(), vec!["a", "b", "c-d.e_f"]);
    store.delete_topic("a").unwrap();
    assert_eq!(store.topics(), vec!["b", "c-d.e_f"]);
    for i in 0..3 {
        assert!(!dir.path().join(format!("a-{i}")).exists());
    }
    assert!(matches!(store.topic("a"), Err(Error::UnknownTopic(_))));
    store.close().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.topics(), vec!["b", "c-d.e_f"]);
    assert_eq!(store.topic("c-d.e_f").unwrap().partition_count(), 2);
    store.delete_topic("b").unwrap();
    store.delete_topic("c-d.e_f").unwrap();
    assert!(store.topics().is_empty());
    store.close().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(store.topics().is_empty());
    store.close().unwrap();
}

#[test]
fn topic_configs_are_restored_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let custom = TopicConfig {
        partitions: 3,
        segment_bytes: 12_345,
        segment_ms: 777,
        segment_index_bytes: 4_096,
        index_interval_bytes: 333,
        max_batch_bytes: 9_999,
        timestamp_type: TimestampType::LogAppendTime,
        flush_policy: FlushPolicy::EveryRecords(3),
        cleanup_policy: CleanupPolicy::CompactDelete,
        retention_ms: None,
        retention_bytes: Some(1 << 40),
        max_timestamp_skew_ms: Some(5),
        delete_retention_ms: 17,
        min_compaction_lag_ms: 19,
        max_compaction_lag_ms: Some(23),
        min_cleanable_dirty_ratio: 0.125,
        compression: seglog::TopicCompression::Codec(seglog::Compression::None),
    };
    // Every field differs from the default, so none can come back by accident.
    let d = TopicConfig::default();
    assert!(
        custom.partitions != d.partitions
            && custom.segment_bytes != d.segment_bytes
            && custom.segment_ms != d.segment_ms
            && custom.segment_index_bytes != d.segment_index_bytes
            && custom.index_interval_bytes != d.index_interval_bytes
            && custom.max_batch_bytes != d.max_batch_bytes
            && custom.timestamp_type != d.timestamp_type
            && custom.flush_policy != d.flush_policy
            && custom.cleanup_policy != d.cleanup_policy
            && custom.retention_ms != d.retention_ms
            && custom.retention_bytes != d.retention_bytes
            && custom.max_timestamp_skew_ms != d.max_timestamp_skew_ms
            && custom.delete_retention_ms != d.delete_retention_ms
            && custom.min_compaction_lag_ms != d.min_compaction_lag_ms
            && custom.max_compaction_lag_ms != d.max_compaction_lag_ms
            && custom.min_cleanable_dirty_ratio != d.min_cleanable_dirty_ratio
            && custom.compression != d.compression
    );
    let other = TopicConfig::default().partitions(2).index_interval_bytes(0);
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("custom", custom.clone()).unwrap();
    store.create_topic("other", other.clone()).unwrap();
    store.create_topic("plain", TopicConfig::default()).unwrap();
    store.close().unwrap();
    for _ in 0..2 {
        let store = Store::open(dir.path()).unwrap();
        let t = store.topic("custom").unwrap();
        assert_eq!(t.config(), &custom);
        for p in t.partitions() {
            assert_eq!(p.config(), &custom);
        }
        assert_eq!(store.topic("other").unwrap().config(), &other);
        assert_eq!(
            store.topic("plain").unwrap().config(),
            &TopicConfig::default()
        );
        // The restored config is in force: max_batch_bytes and log-append time.
        let p = t.partition(2).unwrap();
        assert!(matches!(
            p.append(&[Record::new(vec![0u8; 10_000])]),
            Err(Error::BatchTooLarge { limit: 9_999, .. })
        ));
        let info = p.append(&[Record::new("x").with_timestamp(1)]).unwrap();
        assert_ne!(info.max_timestamp, 1);
        store.close().unwrap();
    }
}

#[test]
fn deleted_topic_recreated_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let t = store
        .create_topic(
            "t",
            TopicConfig::default().partitions(2).segment_bytes(1000),
        )
        .unwrap();
    for i in 0..200 {
        t.send(Record::new(format!("old-{i}"))).unwrap();
    }
    assert!(t.partition(0).unwrap().segments().len() > 1);
    store.delete_topic("t").unwrap();
    let t2 = store
        .create_topic("t", TopicConfig::default().partitions(3))
        .unwrap();
    for p in t2.partitions() {
        assert_eq!(p.log_end_offset(), 0);
        assert_eq!(p.stats().segments, 1);
        assert!(p.read(0, 1 << 20).unwrap().is_empty());
    }
    t2.send_to(0, Record::new("new")).unwrap();
    // The old handle's data is not visible through the new topic and vice versa.
    drop((t, t2));
    store.close().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let t = store.topic("t").unwrap();
    assert_eq!(t.partition_count(), 3);
    let f = t.partition(0).unwrap().read(0, 1 << 20).unwrap();
    let vals: Vec<&[u8]> = f.records().map(|r| r.value().unwrap()).collect();
    assert_eq!(vals, vec![&b"new"[..]]);
    assert_eq!(t.partition(1).unwrap().log_end_offset(), 0);
    store.delete_topic("t").unwrap();
    store.close().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let t = store.create_topic("t", TopicConfig::default()).unwrap();
    assert_eq!(t.partition(0).unwrap().log_end_offset(), 0);
    store.close().unwrap();
}

fn snapshot(store: &Store) -> BTreeMap<String, TopicConfig> {
    store
        .topics()
        .into_iter()
        .map(|n| {
            let c = store.topic(&n).unwrap().config().clone();
            (n, c)
        })
        .collect()
}

#[test]
fn corrupt_topic_metadata_is_reported_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic(
            "alpha",
            TopicConfig::default().partitions(2).segment_ms(1234),
        )
        .unwrap();
    store
        .create_topic(
            "beta",
            TopicConfig::default().timestamp_type(TimestampType::LogAppendTime),
        )
        .unwrap();
    let want = snapshot(&store);
    store.close().unwrap();
    let path = dir.path().join(TOPICS_FILE);
    let good = std::fs::read(&path).unwrap();

    let try_open = |bytes: &[u8], what: &str| {
        std::fs::write(&path, bytes).unwrap();
        match Store::open(dir.path()) {
            Err(Error::Corrupt { path: p, .. }) => assert_eq!(p, path, "{what}"),
            // Only a change that means the same (trailing whitespace) may open.
            Ok(store) => {
                assert_eq!(snapshot(&store), want, "{what} opened with other topics");
                store.close().unwrap();
            }
            Err(e) => panic!("{what}: expected Corrupt, got {e:?}"),
        }
    };
    let mut corrupt_count = 0;
    for pos in 0..good.len() {
        for mask in [0x01u8, 0x80] {
            let mut bad = good.clone();
            bad[pos] ^= mask;
            try_open(&bad, &format!("byte {pos} ^ {mask:#x}"));
            std::fs::write(&path, &bad).unwrap();
            if matches!(Store::open(dir.path()), Err(Error::Corrupt { .. })) {
                corrupt_count += 1;
            }
        }
    }
    // All flips but those of the final newline are detected.
    assert!(corrupt_count >= 2 * (good.len() - 1), "{corrupt_count}");
    for len in 0..good.len() {
        try_open(&good[..len], &format!("truncated to {len}"));
    }
    // A flipped byte in the body is reported at the checksum line.
    let mut bad = good.clone();
    bad[20] ^= 0x01;
    std::fs::write(&path, &bad).unwrap();
    match Store::open(dir.path()) {
        Err(e @ Error::Corrupt { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(TOPICS_FILE) && msg.contains("checksum"),
                "{msg}"
            );
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    std::fs::write(&path, &good).unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(snapshot(&store), want);
    store.close().unwrap();
}

#[test]
fn send_uses_kafka_partitioner() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let n = 5u32;
    let t = store
        .create_topic("t", TopicConfig::default().partitions(n))
        .unwrap();
    let mut expected: Vec<Vec<Vec<u8>>> = vec![Vec::new(); n as usize];
    for i in 0..200 {
        let key = format!("user-{}", i % 37);
        let value = format!("v{i}");
        let meta = t
            .send(Record::new(value.clone()).with_key(key.clone()))
            .unwrap();
        assert_eq!(
            meta.partition,
            partition_for_key(key.as_bytes(), n),
            "key {key}"
        );
        assert_eq!(meta.offset, expected[meta.partition as usize].len() as u64);
        expected[meta.partition as usize].push(value.into_bytes());
    }
    // Keys spread over several partitions.
    assert!(expected.iter().filter(|v| !v.is_empty()).count() >= 3);
    // Unkeyed records go everywhere.
    let before: Vec<u64> = t.partitions().iter().map(|p| p.log_end_offset()).collect();
    for i in 0..(n * 4) {
        let meta = t.send(Record::new(format!("unkeyed-{i}"))).unwrap();
        expected[meta.partition as usize].push(format!("unkeyed-{i}").into_bytes());
    }
    for (i, p) in t.partitions().iter().enumerate() {
        assert!(
            p.log_end_offset() > before[i],
            "partition {i} got no unkeyed record"
        );
    }
    // send_to picks the partition given.
    for i in 0..n {
        let meta = t
            .send_to(i, Record::new("direct").with_key("user-1"))
            .unwrap();
        assert_eq!(meta.partition, i);
        expected[i as usize].push(b"direct".to_vec());
    }
    // send_batch groups by the same partitioner, keeping order.
    let batch: Vec<Record> = (0..30)
        .map(|i| Record::new(format!("b{i}")).with_key(format!("user-{}", i % 7)))
        .collect();
    for r in &batch {
        let p = partition_for_key(r.key.as_ref().unwrap(), n);
        expected[p as usize].push(r.value.clone().unwrap());
    }
    let infos = t.send_batch(batch).unwrap();
    assert!(infos.windows(2).all(|w| w[0].0 < w[1].0));
    for (i, p) in t.partitions().iter().enumerate() {
        let f = p.read(0, 1 << 20).unwrap();
        let got: Vec<Vec<u8>> = f.records().map(|r| r.value().unwrap().to_vec()).collect();
        assert_eq!(got, expected[i], "partition {i}");
        for r in f.records() {
            if let Some(k) = r.key() {
                if r.value() != Some(&b"direct"[..]) {
                    assert_eq!(partition_for_key(k, n), i as u32);
                }
            }
        }
    }
    store.close().unwrap();
}

/// Regression: the lock was an `flock` on an open file description, which a process
/// spawned by another thread shares from `fork` until its `exec`, so a store closed and
/// reopened in that window got a spurious `Error::Locked` (30-45% of reopens here). It is
/// now a process-owned POSIX lock plus an in-process registry.
#[test]
fn lock_is_not_held_by_a_concurrently_spawned_process() {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let spawned = Arc::new(AtomicU32::new(0));
    let spawner = {
        let (stop, spawned) = (Arc::clone(&stop), Arc::clone(&spawned));
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let _ = child::this_binary().arg("--list").output();
                spawned.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let (mut opens, mut locked) = (0, 0);
    while spawned.load(Ordering::SeqCst) < 30 {
        opens += 1;
        match Store::open(dir.path()) {
            Ok(s) => s.close().unwrap(),
            Err(Error::Locked { .. }) => locked += 1,
            Err(e) => panic!("{e}"),
        }
    }
    stop.store(true, Ordering::SeqCst);
    spawner.join().unwrap();
    assert_eq!(locked, 0, "spurious Locked errors in {opens} reopens");
}

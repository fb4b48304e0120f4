//! Bad input: invalid names, unknown topics and partitions, offsets out of range, batches
//! too large, invalid configs, empty appends, writes to deleted topics, and corrupt or
//! missing files on disk. Every one must give the right `Error`, never a panic.

mod common;

use std::path::Path;

use common::{flip, log_files, nth_partition, remove_files};
use seglog::record::{encode_batch, BatchIter, BatchSpec};
use seglog::{Error, Partition, Record, Store, TopicConfig};

fn value(i: u64) -> Vec<u8> {
    format!("value-{i:06}-{}", "x".repeat((i % 50) as usize)).into_bytes()
}

/// Appends batches of 1..=4 records whose values are `value(offset)`, timestamps
/// `1000 + offset`.
fn fill(p: &Partition, batches: u64) {
    for i in 0..batches {
        let base = p.log_end_offset();
        let recs: Vec<Record> = (0..1 + i % 4)
            .map(|j| Record::new(value(base + j)).with_timestamp(1000 + (base + j) as i64))
            .collect();
        p.append(&recs).unwrap();
    }
}

/// Reads everything and checks that offsets are dense from 0 and values are `value(o)`.
fn check_values(p: &Partition) {
    let mut next = 0;
    for r in p.records_from(0).fetch_bytes(700) {
        let r = r.unwrap();
        assert_eq!(r.offset, next);
        assert_eq!(r.value.unwrap(), value(next), "offset {next}");
        assert_eq!(r.timestamp, 1000 + next as i64);
        next += 1;
    }
    assert_eq!(next, p.log_end_offset());
}

#[test]
fn invalid_topic_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let long = "a".repeat(250);
    for name in [
        "..", ".", "/", "a/b", "", &long, "héllo", "top ic", "a\\b", "日本", "a\0b",
    ] {
        match store.create_topic(name, TopicConfig::default()) {
            Err(Error::InvalidTopicName { name: n, reason }) => {
                assert_eq!(n, name);
                assert!(!reason.is_empty());
            }
            other => panic!("{name:?}: expected InvalidTopicName, got {other:?}"),
        }
        assert!(matches!(
            seglog::validate_topic_name(name),
            Err(Error::InvalidTopicName { .. })
        ));
    }
    assert!(store.topics().is_empty());
    // Nothing was created on disk for them.
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_str().is_some_and(|n| n.ends_with("-0")))
        .collect();
    assert!(entries.is_empty(), "{entries:?}");
    let ok = "b".repeat(249);
    for name in [ok.as_str(), "a", "A-b_c.d", "...", "_", "-", "0"] {
        store.create_topic(name, TopicConfig::default()).unwrap();
    }
    assert_eq!(store.topics().len(), 7);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.topics().len(), 7);
    assert!(store.topic(&ok).is_ok());
    store.close().unwrap();
}

#[test]
fn unknown_topic_and_partition() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(matches!(store.topic("nope"), Err(Error::UnknownTopic(n)) if n == "nope"));
    assert!(matches!(store.delete_topic("nope"), Err(Error::UnknownTopic(n)) if n == "nope"));
    let t = store
        .create_topic("t", TopicConfig::default().partitions(3))
        .unwrap();
    assert!(matches!(
        store.create_topic("t", TopicConfig::default()),
        Err(Error::TopicExists(n)) if n == "t"
    ));
    for bad in [3u32, 4, u32::MAX] {
        match t.partition(bad) {
            Err(Error::UnknownPartition {
                topic,
                partition,
                count,
            }) => assert_eq!((topic.as_str(), partition, count), ("t", bad, 3)),
            other => panic!("expected UnknownPartition, got {other:?}"),
        }
        assert!(matches!(
            t.send_to(bad, Record::new("x")),
            Err(Error::UnknownPartition { partition, .. }) if partition == bad
        ));
    }
    store.close().unwrap();
}

#[test]
fn offsets_out_of_range_name_the_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    let p = nth_partition(&store, "t", 0);
    fill(&p, 10);
    let end = p.log_end_offset();
    for bad in [end + 1, end + 100, u64::MAX] {
        match p.read(bad, 100) {
            Err(e @ Error::OffsetOutOfRange { .. }) => {
                let Error::OffsetOutOfRange {
                    partition,
                    offset,
                    log_start,
                    log_end,
                } = &e
                else {
                    unreachable!()
                };
                assert_eq!(
                    (partition.as_str(), *offset, *log_start, *log_end),
                    ("t-0", bad, 0, end)
                );
                let msg = e.to_string();
                assert!(
                    msg.contains(&bad.to_string()) && msg.contains(&end.to_string()),
                    "{msg}"
                );
            }
            other => panic!("expected OffsetOutOfRange, got {other:?}"),
        }
        assert!(matches!(
            p.truncate_to(bad),
            Err(Error::OffsetOutOfRange { .. })
        ));
    }
    assert_eq!(p.log_end_offset(), end);
    store.close().unwrap();
}

/// A log whose first segment starts at offset 100 (as after retention), written as Kafka
/// batches by hand: reads below the log start are out of range.
#[test]
fn read_below_log_start_is_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    store.close().unwrap();
    let pdir = dir.path().join("t-0");
    remove_files(&pdir);
    let mut log = Vec::new();
    for b in 0..5u64 {
        let base = 100 + b * 2;
        let recs = [
            Record::new(value(base)).with_timestamp(1000 + base as i64),
            Record::new(value(base + 1)).with_timestamp(1001 + base as i64),
        ];
        encode_batch(&mut log, &BatchSpec::new(base, 0), &recs).unwrap();
    }
    std::fs::write(pdir.join("00000000000000000100.log"), &log).unwrap();
    // The log start offset 0 the close wrote would say offsets 0..100 went missing.
    std::fs::remove_file(dir.path().join(seglog::LOG_START_FILE)).unwrap();

    let store = Store::open(dir.path()).unwrap();
    let p = nth_partition(&store, "t", 0);
    assert_eq!((p.log_start_offset(), p.log_end_offset()), (100, 110));
    for bad in [0u64, 50, 99] {
        match p.read(bad, 100) {
            Err(Error::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
                ..
            }) => assert_eq!((offset, log_start, log_end), (bad, 100, 110)),
            other => panic!("expected OffsetOutOfRange, got {other:?}"),
        }
        assert!(matches!(
            p.truncate_to(bad),
            Err(Error::OffsetOutOfRange { .. })
        ));
    }
    let f = p.read(103, 1).unwrap();
    let r = f.records().next().unwrap();
    assert_eq!((r.offset(), r.value().unwrap()), (103, &value(103)[..]));
    let info = p.append(&[Record::new("next")]).unwrap();
    assert_eq!(info.base_offset, 110);
    store.close().unwrap();
}

#[test]
fn batch_too_large_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic("t", TopicConfig::default().max_batch_bytes(1000))
        .unwrap();
    let p = nth_partition(&store, "t", 0);
    fill(&p, 3);
    let end = p.log_end_offset();
    let size = p.stats().size_bytes;
    for recs in [
        vec![Record::new(vec![0u8; 1000])],
        (0..20)
            .map(|_| Record::new(vec![1u8; 60]))
            .collect::<Vec<_>>(),
    ] {
        match p.append(&recs) {
            Err(e @ Error::BatchTooLarge { .. }) => {
                let Error::BatchTooLarge {
                    size,
                    limit_name,
                    limit,
                } = &e
                else {
                    unreachable!()
                };
                assert_eq!((*limit_name, *limit), ("max_batch_bytes", 1000));
                assert!(*size > 1000);
                assert!(e.to_string().contains("max_batch_bytes"), "{e}");
            }
            other => panic!("expected BatchTooLarge, got {other:?}"),
        }
        assert_eq!(p.log_end_offset(), end);
        assert_eq!(p.stats().size_bytes, size);
    }
    // One that fits still goes at the right offset.
    assert_eq!(
        p.append(&[Record::new(vec![2u8; 500])])
            .unwrap()
            .base_offset,
        end
    );
    // A batch larger than a whole segment is refused too.
    store
        .create_topic(
            "small",
            TopicConfig::default()
                .segment_bytes(500)
                .max_batch_bytes(10_000),
        )
        .unwrap();
    let s = nth_partition(&store, "small", 0);
    assert!(matches!(
        s.append(&[Record::new(vec![0u8; 600])]),
        Err(Error::BatchTooLarge {
            limit_name: "segment_bytes",
            limit: 500,
            ..
        })
    ));
    assert_eq!(s.log_end_offset(), 0);
    store.close().unwrap();
}

#[test]
fn invalid_configs_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let d = TopicConfig::default;
    let cases: Vec<(&str, TopicConfig)> = vec![
        ("partitions", d().partitions(0)),
        ("partitions", d().partitions(seglog::MAX_PARTITIONS + 1)),
        ("partitions", d().partitions(u32::MAX)),
        ("segment_bytes", d().segment_bytes(0)),
        ("segment_bytes", d().segment_bytes(127)),
        ("segment_bytes", d().segment_bytes(1 << 31)),
        ("segment_bytes", d().segment_bytes(u64::MAX)),
        ("segment_ms", d().segment_ms(0)),
        ("segment_ms", d().segment_ms(u64::MAX)),
        ("segment_ms", d().segment_ms(i64::MAX as u64 + 1)),
        ("segment_index_bytes", d().segment_index_bytes(0)),
        ("segment_index_bytes", d().segment_index_bytes(23)),
        ("segment_index_bytes", d().segment_index_bytes(1 << 31)),
        ("segment_index_bytes", d().segment_index_bytes(u32::MAX)),
        ("index_interval_bytes", d().index_interval_bytes(1 << 31)),
        ("index_interval_bytes", d().index_interval_bytes(u32::MAX)),
        ("max_batch_bytes", d().max_batch_bytes(0)),
        ("max_batch_bytes", d().max_batch_bytes(60)),
        ("max_batch_bytes", d().max_batch_bytes(1 << 31)),
    ];
    for (field, cfg) in cases {
        match store.create_topic("t", cfg.clone()) {
            Err(e @ Error::InvalidConfig { .. }) => {
                let Error::InvalidConfig { field: f, .. } = &e else {
                    unreachable!()
                };
                assert_eq!(*f, field, "{cfg:?}");
                let msg = e.to_string();
                assert!(msg.contains(field), "message {msg:?} does not name {field}");
                assert!(msg.contains("allowed"), "message {msg:?} gives no range");
            }
            other => panic!("{field}: expected InvalidConfig, got {other:?}"),
        }
        assert!(cfg.validate().is_err());
    }
    assert!(store.topics().is_empty());
    // The bounds themselves are accepted.
    let edges = [
        d().partitions(1),
        d().partitions(2),
        d().segment_bytes(128),
        d().segment_bytes(i32::MAX as u64),
        d().segment_ms(1),
        d().segment_ms(i64::MAX as u64),
        d().segment_index_bytes(24),
        d().segment_index_bytes(1 << 20),
        d().index_interval_bytes(0),
        d().index_interval_bytes(i32::MAX as u32),
        d().max_batch_bytes(61),
        d().max_batch_bytes(i32::MAX as u32),
    ];
    for (i, cfg) in edges.into_iter().enumerate() {
        cfg.validate().unwrap();
        store.create_topic(&format!("edge{i}"), cfg).unwrap();
    }
    store.close().unwrap();
}

#[test]
fn empty_append_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    let p = nth_partition(&store, "t", 0);
    assert!(matches!(p.append::<Record>(&[]), Err(Error::EmptyAppend)));
    assert_eq!(p.log_end_offset(), 0);
    assert_eq!(p.stats().size_bytes, 0);
    assert!(matches!(
        store.topic("t").unwrap().send_batch(Vec::new()),
        Ok(v) if v.is_empty()
    ));
    store.close().unwrap();
}

#[test]
fn writes_after_delete_topic_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let t = store
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let p = t.partition(1).unwrap().clone();
    fill(&p, 3);
    store.delete_topic("t").unwrap();
    assert!(matches!(p.append(&[Record::new("x")]), Err(Error::Closed(n)) if n == "t-1"));
    assert!(matches!(p.truncate_to(0), Err(Error::Closed(_))));
    // Regression: flush on a deleted partition tried to fsync its removed directory.
    assert!(matches!(p.flush(), Err(Error::Closed(_))));
    assert!(matches!(t.flush(), Err(Error::Closed(_))));
    assert!(matches!(t.send(Record::new("x")), Err(Error::Closed(_))));
    assert!(matches!(
        t.send_to(0, Record::new("x")),
        Err(Error::Closed(_))
    ));
    assert!(matches!(
        t.send_batch(vec![Record::new("x")]),
        Err(Error::Closed(_))
    ));
    assert!(matches!(store.topic("t"), Err(Error::UnknownTopic(_))));
    // A new topic of the same name is independent of the old handle.
    let t2 = store.create_topic("t", TopicConfig::default()).unwrap();
    assert_eq!(t2.partition(0).unwrap().log_end_offset(), 0);
    assert!(matches!(
        p.append(&[Record::new("x")]),
        Err(Error::Closed(_))
    ));
    assert_eq!(t2.partition(0).unwrap().log_end_offset(), 0);
    store.close().unwrap();
}

/// Positions of the batches in a `.log` file's bytes, with their offset ranges.
fn batches_of(log: &[u8]) -> Vec<(usize, usize, u64, u64)> {
    BatchIter::new(log)
        .map(|b| {
            let (pos, b) = b.unwrap();
            (pos, b.as_bytes().len(), b.base_offset(), b.last_offset())
        })
        .collect()
}

fn expect_corrupt(r: seglog::Result<seglog::Fetch>, path: &Path, position: usize) {
    match r {
        Err(e @ Error::Corrupt { .. }) => {
            let Error::Corrupt {
                path: p,
                position: at,
                ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!(p, path);
            assert_eq!(*at, position as u64, "{e}");
            let msg = e.to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.contains(&position.to_string()), "{msg}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn flipped_byte_in_sealed_segment_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic(
            "t",
            TopicConfig::default()
                .segment_bytes(3000)
                .index_interval_bytes(200),
        )
        .unwrap();
    let p = nth_partition(&store, "t", 0);
    fill(&p, 100);
    let logs = log_files(p.dir());
    assert!(logs.len() >= 3);
    let path = logs[1].clone();
    let log = std::fs::read(&path).unwrap();
    let batches = batches_of(&log);
    let (pos, len, base, last) = batches[batches.len() / 2];
    // A byte inside a record value of that batch, flipped on disk while the store is closed
    // (a batch that this process wrote or already checked is not checked again: nothing
    // may modify the files of an open store).
    drop(p);
    store.close().unwrap();
    flip(&path, pos + len - 3, 0x40);
    let store = Store::open(dir.path()).unwrap();
    let p = nth_partition(&store, "t", 0);
    for o in base..=last {
        expect_corrupt(p.read(o, 1 << 20), &path, pos);
    }
    // A read that reaches the batch from an earlier offset fails at it too.
    let (_, _, first_base, _) = batches[0];
    expect_corrupt(p.read(first_base, 1 << 20), &path, pos);
    // Reads that stop before it, or start after it, are fine.
    let (_, _, before_base, before_last) = batches[batches.len() / 2 - 1];
    let f = p.read(before_base, 1).unwrap();
    assert_eq!(f.next_offset(), before_last + 1);
    let f = p.read(last + 1, 1 << 20).unwrap();
    assert_eq!(f.next_offset(), p.log_end_offset());
    drop(p);
    store.close().unwrap();

    // After reopening (sealed segments are not walked), the same.
    let store = Store::open(dir.path()).unwrap();
    let p = nth_partition(&store, "t", 0);
    expect_corrupt(p.read(base, 1 << 20), &path, pos);
    assert!(p.offset_for_timestamp(1000 + base as i64).is_err());
    // A flipped byte in the header (the length field) is corruption too, and no panic.
    let (pos2, _, base2, _) = batches[1];
    flip(&path, pos2 + 9, 0x40);
    match p.read(base2, 1 << 20) {
        Err(Error::Corrupt { path: p2, .. }) => assert_eq!(p2, path),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    store.close().unwrap();
}

/// Every sealed segment's reads and lookups must be the same with an index file deleted:
/// the index is rebuilt from the `.log`.
fn deleted_index_is_rebuilt(suffix: &str) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic(
            "t",
            TopicConfig::default()
                .segment_bytes(3000)
                .index_interval_bytes(100),
        )
        .unwrap();
    let p = nth_partition(&store, "t", 0);
    fill(&p, 100);
    let segs = p.segments();
    assert!(segs.len() >= 3);
    let before: Vec<_> = segs
        .iter()
        .map(|s| {
            (
                s.base_offset(),
                s.offset_index().unwrap(),
                s.time_index().unwrap(),
                s.max_timestamp().unwrap(),
            )
        })
        .collect();
    assert!(before[1].1.len() >= 3);
    let pdir = p.dir().to_path_buf();
    drop((segs, p));
    store.close().unwrap();
    let victim = pdir.join(format!("{:020}{suffix}", before[1].0));
    std::fs::remove_file(&victim).unwrap();

    let store = Store::open(dir.path()).unwrap();
    let p = nth_partition(&store, "t", 0);
    check_values(&p);
    for o in 0..p.log_end_offset() {
        assert_eq!(p.read(o, 1).unwrap().records().next().unwrap().offset(), o);
    }
    for o in 0..p.log_end_offset() as i64 + 2 {
        let t = 1000 + o;
        let want = (o < p.log_end_offset() as i64).then_some(o as u64);
        assert_eq!(
            p.offset_for_timestamp(t).unwrap().map(|x| x.offset),
            want,
            "timestamp {t}"
        );
    }
    let after: Vec<_> = p
        .segments()
        .iter()
        .map(|s| {
            (
                s.base_offset(),
                s.offset_index().unwrap(),
                s.time_index().unwrap(),
                s.max_timestamp().unwrap(),
            )
        })
        .collect();
    assert_eq!(after, before, "indexes after deleting {}", victim.display());
    assert!(victim.exists());
    store.close().unwrap();
}

// Regression: a missing .index was recreated empty and never rebuilt (sanity check passed).
#[test]
fn deleted_offset_index_of_sealed_segment_is_rebuilt() {
    deleted_index_is_rebuilt(".index");
}

// Regression: a missing .timeindex left max_timestamp -1, so offset_for_timestamp skipped the segment.
#[test]
fn deleted_time_index_of_sealed_segment_is_rebuilt() {
    deleted_index_is_rebuilt(".timeindex");
}

/// Leaves `dir` as a crash would: no clean-shutdown marker (the next open recovers), and
/// without `keep_recovery_points` no recovery-point checkpoint either (so that damage
/// anywhere is past the recovery point: a torn write, not corruption of flushed data).
fn as_after_crash(dir: &std::path::Path, keep_recovery_points: bool) {
    std::fs::remove_file(dir.join(seglog::CLEAN_SHUTDOWN_FILE)).unwrap();
    if !keep_recovery_points {
        std::fs::remove_file(dir.join(seglog::RECOVERY_POINT_FILE)).unwrap();
    }
}

/// Cuts the active segment's `.log` in the middle of its last batch and reopens.
fn torn_tail(index_interval_bytes: u32) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic(
            "t",
            TopicConfig::default()
                .segment_bytes(3000)
                .index_interval_bytes(index_interval_bytes),
        )
        .unwrap();
    let p = nth_partition(&store, "t", 0);
    fill(&p, 101);
    let active = p.segments().last().unwrap().log_path().to_path_buf();
    drop(p);
    store.close().unwrap();
    let log = std::fs::read(&active).unwrap();
    let batches = batches_of(&log);
    assert!(batches.len() >= 3);
    let (pos, len, base, _) = *batches.last().unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len((pos + len / 2) as u64)
        .unwrap();
    as_after_crash(dir.path(), false);

    let store = Store::open(dir.path()).unwrap();
    let p = nth_partition(&store, "t", 0);
    assert_eq!(
        p.log_end_offset(),
        base,
        "log end after cutting the last batch"
    );
    assert_eq!(std::fs::metadata(&active).unwrap().len(), pos as u64);
    check_values(&p);
    let last = p.segments().last().unwrap().clone();
    assert_eq!(last.next_offset(), base);
    assert_eq!(last.max_timestamp().unwrap(), 1000 + base as i64 - 1);
    // The cut records are not found by timestamp.
    assert_eq!(p.offset_for_timestamp(1000 + base as i64).unwrap(), None);
    drop(last);
    // Appends continue at the right offset, and everything reads back after reopening.
    fill(&p, 20);
    check_values(&p);
    drop(p);
    store.close().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let p = nth_partition(&store, "t", 0);
    check_values(&p);
    for o in (0..p.log_end_offset() as i64).step_by(7) {
        assert_eq!(
            p.offset_for_timestamp(1000 + o).unwrap().map(|x| x.offset),
            Some(o as u64)
        );
    }
    store.close().unwrap();
}

// Regression: the max timestamp of the cut batch (from the final time index entry) survived the cut.
#[test]
fn torn_tail_of_active_segment_is_cut() {
    torn_tail(4096);
}

// Regression: next offset loaded from the torn batch's index entry survived the cut (log end too high, a gap).
#[test]
fn torn_tail_of_active_segment_is_cut_with_every_batch_indexed() {
    torn_tail(0);
}

#[test]
fn garbage_files_in_partition_dir_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    let p = nth_partition(&store, "t", 0);
    fill(&p, 10);
    let pdir = p.dir().to_path_buf();
    drop(p);
    store.close().unwrap();
    // Random bytes as the active segment's time index and offset index.
    std::fs::write(
        pdir.join("00000000000000000000.index"),
        b"\xff\x01garbage-index!!",
    )
    .unwrap();
    std::fs::write(pdir.join("00000000000000000000.timeindex"), [0xffu8; 37]).unwrap();
    let store = Store::open(dir.path()).unwrap();
    let p = nth_partition(&store, "t", 0);
    check_values(&p);
    for o in 0..p.log_end_offset() {
        assert_eq!(p.read(o, 1).unwrap().records().next().unwrap().offset(), o);
        assert_eq!(
            p.offset_for_timestamp(1000 + o as i64)
                .unwrap()
                .map(|x| x.offset),
            Some(o)
        );
    }
    store.close().unwrap();
}

/// A `.log` whose batches lie below the offset its name says (a misnamed or copied file).
// Regression: rebuilding its index subtracted the base offset from smaller offsets (overflow panic).
#[test]
fn segment_with_batches_below_its_base_offset_is_corrupt_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic("t", TopicConfig::default().index_interval_bytes(0))
        .unwrap();
    store.close().unwrap();
    let pdir = dir.path().join("t-0");
    remove_files(&pdir);
    let mut log = Vec::new();
    for base in 0..5u64 {
        let recs = [Record::new(value(base)).with_timestamp(1000 + base as i64)];
        encode_batch(&mut log, &BatchSpec::new(base, 0), &recs).unwrap();
    }
    let path = pdir.join("00000000000000000100.log");
    std::fs::write(&path, &log).unwrap();
    // The log start offset 0 the close wrote would say offsets 0..100 went missing.
    std::fs::remove_file(dir.path().join(seglog::LOG_START_FILE)).unwrap();
    // An offset index that fails the sanity check (not increasing), so it is rebuilt.
    let index = [0, 0, 0, 5, 0, 0, 0, 10, 0, 0, 0, 3, 0, 0, 0, 20];
    std::fs::write(pdir.join("00000000000000000100.index"), index).unwrap();
    std::fs::write(pdir.join("00000000000000000100.timeindex"), [0u8; 0]).unwrap();
    match Store::open(dir.path()) {
        Err(Error::Corrupt { path: p, .. }) => assert_eq!(p, path),
        Ok(store) => {
            // If it opens, reads must not hand out offsets outside the segment either.
            let p = nth_partition(&store, "t", 0);
            let _ = p.read(p.log_start_offset(), 1 << 20);
            store.close().unwrap();
        }
        Err(e) => panic!("expected Corrupt, got {e:?}"),
    }
}

/// Segment file names at the edge of the 20-digit range, with index files present.
// Regression: a base offset near u64::MAX overflowed (panic) adding an index entry's relative offset.
#[test]
fn segment_names_past_kafka_offsets_do_not_panic() {
    for name in [
        "18446744073709551615",
        "09223372036854775807",
        "09223372036854775808",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create_topic("t", TopicConfig::default()).unwrap();
        store.close().unwrap();
        let pdir = dir.path().join("t-0");
        let mut log = Vec::new();
        encode_batch(&mut log, &BatchSpec::new(0, 0), &[Record::new("x")]).unwrap();
        std::fs::write(pdir.join(format!("{name}.log")), &log).unwrap();
        // An index entry (relative offset 1, position 0) that passes the sanity check.
        std::fs::write(pdir.join(format!("{name}.index")), [0, 0, 0, 1, 0, 0, 0, 0]).unwrap();
        std::fs::write(pdir.join(format!("{name}.timeindex")), [0u8; 0]).unwrap();
        match Store::open(dir.path()) {
            Ok(store) => {
                let p = nth_partition(&store, "t", 0);
                let _ = p.read(p.log_start_offset(), 1 << 20);
                let _ = p.append(&[Record::new("y")]);
                let _ = p.offset_for_timestamp(0);
                store.close().unwrap();
            }
            Err(Error::Corrupt { .. }) => {}
            Err(e) => panic!("{name}: expected Corrupt or a working store, got {e:?}"),
        }
    }
}

/// A CRC-valid batch with the gzip bit set, as a Kafka broker may have written it.
fn compressed_batch(base_offset: u64) -> Vec<u8> {
    use seglog::record::{crc32c, ATTRIBUTES_OFFSET, CRC_OFFSET};
    let spec = BatchSpec::new(base_offset, 5000);
    let mut b = Vec::new();
    encode_batch(&mut b, &spec, &[Record::new("a"), Record::new("b")]).unwrap();
    // The gzip bit over records that are not gzip: only the CRC matters here.
    b[ATTRIBUTES_OFFSET + 1] |= 1;
    let crc = crc32c(&b[ATTRIBUTES_OFFSET..]);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Regression: recovery validated the records of every batch, so a compressed batch in the
/// active segment was taken for a torn tail and cut off at open (losing durable data), and
/// one in a sealed segment being re-indexed was reported as corrupt. Recovery checks a
/// compressed batch by its CRC only (as Kafka's does); a read that cannot decompress it
/// names it.
#[test]
fn compressed_batches_are_kept_and_reads_name_the_codec() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TopicConfig::default().segment_bytes(2048);
    {
        let store = Store::open(dir.path()).unwrap();
        store.create_topic("z", cfg).unwrap();
        let p = nth_partition(&store, "z", 0);
        fill(&p, 40);
        store.close().unwrap();
    }
    let pdir = dir.path().join("z-0");
    let logs = log_files(&pdir);
    assert!(logs.len() >= 2, "needs a sealed and an active segment");
    let active = logs.last().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let end = nth_partition(&store, "z", 0).log_end_offset();
    drop(store);
    let at = std::fs::metadata(active).unwrap().len();
    let mut bytes = std::fs::read(active).unwrap();
    bytes.extend_from_slice(&compressed_batch(end));
    std::fs::write(active, &bytes).unwrap();
    // Make the sealed segment's indexes be rebuilt, walking its batches too.
    std::fs::remove_file(logs[0].with_extension("index")).unwrap();
    // Appended after the recovery point (as by a Kafka broker after a crash): recovery
    // checks it and keeps it.
    as_after_crash(dir.path(), true);

    let store = Store::open(dir.path()).unwrap();
    let p = nth_partition(&store, "z", 0);
    assert_eq!(
        p.log_end_offset(),
        end + 2,
        "the compressed batch survived the open"
    );
    // Its records section is not gzip at all: the read names the file, the byte and the
    // codec (a build without the `gzip` feature says which feature it lacks instead).
    match p.read(end, 1 << 20) {
        Err(Error::Corrupt {
            path,
            position,
            reason,
        }) => {
            assert_eq!(&path, active);
            assert!(
                (at..at + 100).contains(&position),
                "{position} vs batch at {at}"
            );
            assert!(reason.contains("gzip"), "{reason}");
        }
        Err(Error::CodecDisabled { path, position, .. }) => {
            assert_eq!(&path, active);
            assert_eq!(position, at);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let f = p.read(end - 1, 1).unwrap();
    assert_eq!(
        f.records().map(|r| r.offset()).collect::<Vec<_>>(),
        [end - 1]
    );
    p.append(&[Record::new("after")]).unwrap();
    assert_eq!(
        p.read(end + 2, 1 << 20)
            .unwrap()
            .records()
            .next()
            .unwrap()
            .value(),
        Some(&b"after"[..])
    );
}

/// A batch whose records are malformed but whose CRC was recomputed to match (a buggy or
/// hostile writer, not bit rot) is reported when read after a reopen: records of batches
/// this process did not write or check are decoded at read, not only CRC-checked.
#[test]
fn malformed_records_under_a_valid_crc_are_reported() {
    use seglog::record::{crc32c, Batch, ATTRIBUTES_OFFSET, BATCH_HEADER_SIZE, CRC_OFFSET};
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store
            .create_topic("m", TopicConfig::default().segment_bytes(2048))
            .unwrap();
        fill(&nth_partition(&store, "m", 0), 40);
        store.close().unwrap();
    }
    let logs = log_files(&dir.path().join("m-0"));
    assert!(logs.len() >= 2);
    let mut bytes = std::fs::read(&logs[0]).unwrap();
    let (pos, size, base, _) = batches_of(&bytes)[3];
    // The first record's length varint claims more bytes than the batch holds.
    bytes[pos + BATCH_HEADER_SIZE] = 0x7e;
    let crc = crc32c(&bytes[pos + ATTRIBUTES_OFFSET..pos + size]);
    bytes[pos + CRC_OFFSET..pos + CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    assert!(
        Batch::parse(&bytes[pos..pos + size]).is_ok(),
        "the CRC matches"
    );
    std::fs::write(&logs[0], &bytes).unwrap();

    let store = Store::open(dir.path()).unwrap();
    let p = nth_partition(&store, "m", 0);
    match p.read(base, 1) {
        Err(Error::Corrupt { path, position, .. }) => {
            assert_eq!(path, logs[0]);
            assert!(position >= pos as u64 && position < (pos + size) as u64);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Batches before it still read.
    assert!(p.read(0, 1).unwrap().records().next().is_some());
}

/// `Segment::open_read_only` (for dump/verify tools) reads a segment without a store, and
/// reports a bad file name or a corrupt batch instead of panicking.
#[test]
fn read_only_segment_open_reads_and_reports() {
    use seglog::Segment;
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store
            .create_topic("r", TopicConfig::default().segment_bytes(2048))
            .unwrap();
        fill(&nth_partition(&store, "r", 0), 40);
        store.close().unwrap();
    }
    let logs = log_files(&dir.path().join("r-0"));
    let seg = Segment::open_read_only(&logs[1]).unwrap();
    let base = seg.base_offset();
    assert_eq!(seg.size(), std::fs::metadata(&logs[1]).unwrap().len());
    let mut buf = Vec::new();
    let next = seg.read(base, 1 << 20, true, &mut buf).unwrap().unwrap();
    let all: Vec<u64> = BatchIter::new(&buf)
        .flat_map(|b| {
            b.unwrap()
                .1
                .records()
                .map(|r| r.unwrap().offset())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(all, (base..next).collect::<Vec<_>>());

    let renamed = dir.path().join("not-a-segment.log");
    std::fs::copy(&logs[1], &renamed).unwrap();
    assert!(matches!(
        Segment::open_read_only(&renamed),
        Err(Error::Corrupt { .. })
    ));

    let (pos, _, _, _) = batches_of(&std::fs::read(&logs[1]).unwrap())[1];
    flip(&logs[1], pos + 40, 0x40);
    match Segment::open_read_only(&logs[1]) {
        Err(Error::Corrupt { path, position, .. }) => {
            assert_eq!(path, logs[1]);
            assert_eq!(position, pos as u64);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}
